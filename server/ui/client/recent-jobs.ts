/**
 * The newest jobs (`GET /v1/jobs?limit=20`), each a `li[data-job-id]` that opens
 * the job in the inspector when clicked.
 */
import { errorText, type Api, type JobView } from './api.js';
import { clockTime, h, stateBadge } from './dom.js';

export interface RecentJobs {
  refresh(): Promise<void>;
  /** Refresh shortly, at most once per 400 ms: a burst of transitions costs one request. */
  refreshSoon(): void;
  /** Mark the job open in the inspector. */
  select(id: string | null): void;
}

const LIMIT = 20;
const SOON_MS = 400;

function jobItem(job: JobView, selected: boolean): HTMLLIElement {
  return h('li', { 'data-job-id': job.id, 'aria-current': selected ? 'true' : false },
    h('button', { type: 'button', title: `${job.id}\nsubmitted ${job.createdAt}` },
      stateBadge(job.state),
      h('span', { class: 'job-type' }, job.type),
      h('code', { class: 'job-id' }, job.id.slice(-8)),
      h('time', { datetime: job.createdAt }, clockTime(job.createdAt)),
    ),
  );
}

export function createRecentJobs(list: HTMLElement, api: Api, onPick: (id: string) => void): RecentJobs {
  let selected: string | null = null;
  let soon: number | undefined;

  list.addEventListener('click', (ev) => {
    const item = (ev.target as Element).closest('[data-job-id]');
    const id = item?.getAttribute('data-job-id');
    if (id) onPick(id);
  });

  const refresh = async () => {
    try {
      const { jobs } = await api.recentJobs(LIMIT);
      list.replaceChildren(...(jobs.length
        ? jobs.map((j) => jobItem(j, j.id === selected))
        : [h('li', { class: 'empty-note' }, 'No jobs yet: submit one above.')]));
    } catch (err) {
      list.replaceChildren(h('li', { class: 'error-note' }, `Could not list jobs: ${errorText(err)}`));
    }
  };

  return {
    refresh,
    refreshSoon() {
      if (soon !== undefined) return;
      soon = window.setTimeout(() => {
        soon = undefined;
        void refresh();
      }, SOON_MS);
    },
    select(id) {
      selected = id;
      for (const li of Array.from(list.querySelectorAll('[data-job-id]'))) {
        if (li.getAttribute('data-job-id') === id) li.setAttribute('aria-current', 'true');
        else li.removeAttribute('aria-current');
      }
    },
  };
}
