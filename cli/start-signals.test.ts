/**
 * `ats start` and the signals that stop it: a signal within REPEAT_SIGNAL_MS
 * of the first (npm forwards to its child the Ctrl+C or SIGTERM the whole
 * process group got) counts as the first, and the stop finishes (exit 0); a
 * second signal after that gives the shutdown up (exit 1).
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { embeddedDirs, startEmbedded, type StartedEmbedded as Started } from '../tests/helpers/embedded-start.js';
import { REPEAT_SIGNAL_MS } from './start.js';

const data = embeddedDirs();
after(data.remove);

/** A handler module whose `t.hang` runs until the process ends, whatever its signal says. */
const HANDLERS = "export function register(registry) { registry.register('t.hang', () => new Promise(() => {})); }\n";

/** `ats start` on a fresh data dir, once it said it is ready. */
const start = (extra: Record<string, string> = {}): Promise<Started> => startEmbedded(HANDLERS, data.dirs, extra);

/** Submits a `t.hang` job and waits until it runs. */
async function hangingJob(s: Started): Promise<void> {
  const r = await fetch(`${s.api}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 't.hang', payload: {} }) });
  assert.equal(r.status, 201);
  const { id } = (await r.json()) as { id: string };
  for (const deadline = Date.now() + 20_000; ;) {
    const job = (await (await fetch(`${s.api}/v1/jobs/${id}`)).json()) as { state: string };
    if (job.state === 'running') return;
    assert.ok(Date.now() < deadline, `the job is ${job.state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('the same signal twice within REPEAT_SIGNAL_MS is one: the shutdown finishes, exit 0', { timeout: 90_000 }, async () => {
  // A handler holding the shutdown for its grace (1.5 s): the repeat comes while the stop is under way.
  const s = await start({ ATS_SHUTDOWN_GRACE_MS: '1500' });
  await hangingJob(s);
  s.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 50));
  s.child.kill('SIGINT');
  assert.equal(await s.exited, 0, s.output());
  assert.match(s.output(), /ats: shutting down/);
  assert.doesNotMatch(s.output(), /second signal/);
  // A stop it decided: no line of an unplanned exit (cli/start.ts, watchUnplannedExit).
  assert.doesNotMatch(s.output(), /the process is exiting/);
});

it('a second signal later than REPEAT_SIGNAL_MS gives the shutdown up: exit 1', { timeout: 90_000 }, async () => {
  const s = await start({ ATS_SHUTDOWN_GRACE_MS: '20000' });
  await hangingJob(s);
  s.child.kill('SIGTERM');
  // Timed from when the process took the first (a loaded machine may take it late).
  while (!/ats: shutting down/.test(s.output())) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, REPEAT_SIGNAL_MS + 500));
  s.child.kill('SIGTERM');
  assert.equal(await s.exited, 1, s.output());
  // The stop was still waiting on the worker, whose handler had its grace to finish.
  assert.match(s.output(), /second signal; exiting without finishing the shutdown while still waiting on worker \(\d+ ms\)/);
  // Given up, it exits by its own decision too: no line of an unplanned exit.
  assert.doesNotMatch(s.output(), /the process is exiting/);
});
