/**
 * The visualizer's entry point (bundled by esbuild, served at /ui/assets/app.js).
 * Draws the job machine from `GET /v1/machine`, then wires the live counts, the
 * job list, the inspector, the operator's charts and tables, the cron
 * schedules, the workers and the job types no live worker handles, the
 * concurrency and rate limits, the workflow instances, the
 * advisor's insights and anomalies, and the submit form together.
 */
import { api as serverApi, ApiError, errorText, type Api, type MachineGraph } from './api.js';
import { askForKey, bindForgetKey, guardKey, isKeyRefused, storedKey } from './key-gate.js';
import { suggestNames } from './console-data.js';
import { createConsoleView } from './console-view.js';
import { byId, h } from './dom.js';
import { edgeKey } from './graph-layout.js';
import { renderMachine, type MachineView } from './graph-view.js';
import { createInsightsView } from './insights-view.js';
import { createInspector } from './inspector.js';
import { createJobList } from './job-list.js';
import { jobIdFromHash } from './job-link.js';
import { createLimitsView } from './limits-view.js';
import { permissionsOf, UNKNOWN_PERMISSIONS, type Permissions } from './permissions.js';
import { startLive, type LiveMode } from './live.js';
import { createSchedulesView } from './schedules-view.js';
import { bindSubmitForm } from './submit-form.js';
import { createWorkersView } from './workers-view.js';
import { createWorkflowsView } from './workflows-view.js';

const MODE_TEXT: Record<LiveMode, string> = {
  stream: 'live (stream)',
  polling: 'live (polling every second; charts need the stream)',
  offline: 'server not answering',
  unavailable: 'database not answering: counts as last read',
  limited: 'rate limited: counts as last read',
  refused: 'stopped: the server refuses this tab\'s API key',
};

/** Why the key form shows: the tab holds a key the server does not take, or none where one is required. */
const keyReason = (): string => (storedKey()
  ? 'The key this tab holds is not valid (revoked or mistyped): enter another.'
  : 'This server requires an API key (any key with the read scope shows the console).');

/** Pause before reading the machine again after try `n` failed (the client's own retries came first): 2 s doubling, at most 30 s. */
const machineRetryMs = (n: number): number => Math.min(30_000, 2000 * 2 ** n);

/**
 * The machine, drawn; read again until the server answers (a server starting,
 * restarting or rate limiting this tab comes up on the page by itself). Null
 * when the server refuses the tab's key: the key form takes over.
 */
async function drawMachine(): Promise<{ view: MachineView; graph: MachineGraph } | null> {
  const svg = byId<SVGSVGElement>('machine');
  const note = byId('graph-error');
  for (let n = 0; ; n++) {
    try {
      const graph = await serverApi.machine();
      note.textContent = '';
      return { view: renderMachine(svg, graph), graph };
    } catch (err) {
      if (isKeyRefused(err)) {
        askForKey(keyReason());
        note.textContent = `Could not load the machine: ${errorText(err)}`;
        return null;
      }
      if (err instanceof ApiError && err.status === 403) {
        // A key without the read scope: every read of the console answers so, however long the page waits.
        askForKey(`This tab's key cannot show the console: ${errorText(err)}: enter another.`);
        note.textContent = `Could not load the machine: ${errorText(err)}`;
        return null;
      }
      const waitMs = machineRetryMs(n);
      note.textContent = `Could not load the machine: ${errorText(err)}; trying again in ${Math.round(waitMs / 1000)} s`;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

const jobFromHash = (): string | null => jobIdFromHash(location.hash);

/**
 * What the tab's key may do (`GET /v1/keys/self`). A server without the
 * route, or that cannot answer it now, leaves every action enabled: its
 * answers to them then tell (a 403 says which scope is missing).
 */
async function readPermissions(api: Api): Promise<Permissions> {
  try {
    return permissionsOf(await api.caller());
  } catch {
    return UNKNOWN_PERMISSIONS;
  }
}

async function main(): Promise<void> {
  bindForgetKey();
  const drawn = await drawMachine();
  if (!drawn) return;
  const { view, graph } = drawn;
  const mode = byId('live-mode');
  const total = byId('total-jobs');
  const flashNote = byId('flash-note');

  // The key revoked (or keys required) while the page is open: ask for one, and send nothing more until then.
  const guard = guardKey(serverApi, () => askForKey(keyReason()), ['watch']);
  const api = guard.api;
  const permissions = await readPermissions(api);
  const scopesNote = byId('key-scopes');
  scopesNote.textContent = permissions.summary();
  scopesNote.hidden = !scopesNote.textContent;
  const states = graph.states.map((st) => st.id);
  byId('filter-state').append(...states.map((st) => h('option', { value: st }, st)));
  const list = createJobList(api, (id) => void inspector.open(id), permissions);
  const panels = createConsoleView(api, view, states, () => Date.now());
  const insights = createInsightsView(api, () => Date.now());
  const schedules = createSchedulesView(api, () => Date.now());
  const workers = createWorkersView(api, () => Date.now());
  const limits = createLimitsView(api, () => Date.now());
  const workflows = createWorkflowsView(api, () => Date.now(), (id) => void inspector.open(id));
  const inspector = createInspector({
    api,
    view,
    now: () => Date.now(),
    permissions,
    onOpen(id) {
      list.select(id);
      history.replaceState(null, '', id ? `#${encodeURIComponent(id)}` : location.pathname + location.search);
    },
    onTimeTravel(active) {
      // Other jobs' flashes would mix with the step shown: hold them, and show them once after.
      view.pauseFlashes(active);
      flashNote.textContent = active ? 'Live flashes of other jobs are held while you time-travel.' : '';
    },
  });
  const submitForm = bindSubmitForm(api, (job) => {
    list.refreshSoon();
    void inspector.open(job.id);
  }, permissions);
  byId<HTMLFormElement>('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = byId<HTMLInputElement>('job-search').value.trim();
    if (id) void inspector.open(id);
  });

  let lastCounts = '';
  startLive(api, {
    onStats(stats) {
      view.setCounts(stats.byState);
      panels.onStats(stats);
      workers.onStats(stats); // GET /v1/stats (polling) carries `unserved`; the stream's stats do not
      insights.markTypes(); // the per-type table may have been redrawn
      const types = suggestNames(stats.byType); // at most COUNT_ROWS, those with the most jobs
      list.suggest(types, suggestNames(stats.byQueue));
      submitForm.suggest(types);
      const sum = Object.values(stats.byState).reduce((a, n) => a + n, 0);
      total.textContent = `${sum} job${sum === 1 ? '' : 's'}`;
      // Counts moved: some job changed state. Without the stream this is the only hint.
      const sig = JSON.stringify(stats.byState);
      if (sig !== lastCounts) {
        lastCounts = sig;
        list.refreshSoon();
        inspector.refreshSoon();
      }
    },
    onEvent(e) {
      const mine = e.jobId === inspector.jobId;
      view.flash(edgeKey(e.from, e.type, e.to), mine);
      panels.onEvent(e);
      workflows.onJobEvent(e);
      if (mine) inspector.refreshSoon();
      if (view.heldFlashes) flashNote.textContent = `Live flashes of other jobs are held while you time-travel (${view.heldFlashes} edge${view.heldFlashes === 1 ? '' : 's'} waiting).`;
    },
    onInsight(m) {
      insights.onInsight(m);
    },
    onProgress(m) {
      inspector.showProgress(m);
    },
    onRefused(err) {
      guard.refuse(err); // the stream closed with 4401, or a poll answered 401
    },
    onMode(m, retryInMs) {
      // Rate limited: when the next read goes, as the server's Retry-After (or the page's own pause) says.
      mode.textContent = m === 'limited' && retryInMs !== undefined ? `${MODE_TEXT[m]}; reading again in ${Math.ceil(retryInMs / 1000)} s` : MODE_TEXT[m];
      mode.setAttribute('data-mode', m);
    },
  });

  await Promise.all([list.refresh(), panels.start(), insights.start(), schedules.start(), workers.start(), limits.start(), workflows.start()]);
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
