/**
 * The visualizer's entry point (bundled by esbuild, served at /ui/assets/app.js).
 * Draws the job machine from `GET /v1/machine`, then wires the live counts, the
 * recent jobs, the inspector and the submit form together.
 */
import { api, errorText } from './api.js';
import { byId, h } from './dom.js';
import { edgeKey } from './graph-layout.js';
import { renderMachine, type MachineView } from './graph-view.js';
import { createInspector } from './inspector.js';
import { startLive, type LiveMode } from './live.js';
import { createRecentJobs } from './recent-jobs.js';
import { bindSubmitForm } from './submit-form.js';

const MODE_TEXT: Record<LiveMode, string> = {
  stream: 'live (stream)',
  polling: 'live (polling every second)',
  offline: 'server not answering',
};

async function drawMachine(): Promise<MachineView | null> {
  const svg = byId<SVGSVGElement>('machine');
  try {
    return renderMachine(svg, await api.machine());
  } catch (err) {
    byId('graph-error').textContent = `Could not load the machine: ${errorText(err)}`;
    return null;
  }
}

/** `#<job id>` in the address opens that job, so a job's view can be shared. */
const jobFromHash = (): string | null => decodeURIComponent(location.hash.slice(1)) || null;

async function main(): Promise<void> {
  const view = await drawMachine();
  if (!view) return;
  const mode = byId('live-mode');
  const total = byId('total-jobs');

  const recent = createRecentJobs(byId('recent-jobs'), api, (id) => void inspector.open(id));
  const inspector = createInspector({
    api,
    view,
    onOpen(id) {
      recent.select(id);
      history.replaceState(null, '', id ? `#${encodeURIComponent(id)}` : location.pathname);
    },
  });
  bindSubmitForm(api, (job) => {
    recent.refreshSoon();
    void inspector.open(job.id);
  });
  byId<HTMLFormElement>('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = byId<HTMLInputElement>('job-search').value.trim();
    if (id) void inspector.open(id);
  });

  let lastCounts = '';
  startLive(api, {
    onStats(byState) {
      view.setCounts(byState);
      const sum = Object.values(byState).reduce((a, n) => a + n, 0);
      total.textContent = `${sum} job${sum === 1 ? '' : 's'}`;
      // Counts moved: some job changed state. Without the stream this is the only hint.
      const sig = JSON.stringify(byState);
      if (sig !== lastCounts) {
        lastCounts = sig;
        recent.refreshSoon();
        inspector.refreshSoon();
      }
    },
    onEvent(e) {
      view.flash(edgeKey(e.from, e.type, e.to));
      if (e.jobId === inspector.jobId) inspector.refreshSoon();
    },
    onMode(m) {
      mode.textContent = MODE_TEXT[m];
      mode.setAttribute('data-mode', m);
    },
  });

  await recent.refresh();
  const linked = jobFromHash();
  if (linked) await inspector.open(linked);
  // A hand-edited address; the inspector's own replaceState fires no hashchange.
  window.addEventListener('hashchange', () => {
    const id = jobFromHash();
    if (id && id !== inspector.jobId) void inspector.open(id);
  });
}

main().catch((err: unknown) => {
  document.body.prepend(h('p', { class: 'error-note', role: 'alert' }, `The visualizer failed to start: ${errorText(err)}`));
});
