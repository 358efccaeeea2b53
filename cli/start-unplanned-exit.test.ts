/**
 * `ats start` ended by something other than its own stop: a handler that
 * calls `process.exit()`, or an error thrown where nothing catches it (a
 * timer's callback). Nothing of ats can keep the process up then, but it
 * must not vanish without a word: a last line says how it exits and which
 * attempts it leaves to their leases.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { embeddedDirs, startEmbedded } from '../tests/helpers/embedded-start.js';

const data = embeddedDirs();
after(data.remove);

const HANDLERS = [
  'export function register(registry) {',
  "  registry.register('t.exit', async () => { process.exit(3); });",
  "  registry.register('t.logexit', async (_payload, ctx) => { ctx.log.info('the handler logs, then exits'); process.exit(3); });",
  "  registry.register('t.timer', async () => { setTimeout(() => { throw new Error('thrown from a timer'); }, 10); await new Promise(() => {}); });",
  '}',
].join('\n');

/** `ats start` on a fresh data dir with a job of `type` submitted once ready: the job's id, the exit code and all the output. */
async function runUntilExit(type: string): Promise<{ id: string; code: number | null; out: string }> {
  const started = await startEmbedded(HANDLERS, data.dirs);
  const r = await fetch(`${started.api}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type, payload: {} }) });
  assert.equal(r.status, 201);
  const { id } = (await r.json()) as { id: string };
  return { id, code: await started.exited, out: started.output() };
}

/** The JSON log lines of `out` whose msg matches `re`. */
const linesMatching = (out: string, re: RegExp) =>
  out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => re.test(String(l.msg)));

it('a handler that calls process.exit(): the process exits with its code, and says so in a last line naming the attempt it leaves to its lease', { timeout: 90_000 }, async () => {
  const { id, code, out } = await runUntilExit('t.exit');
  assert.equal(code, 3, out);
  const [line] = linesMatching(out, /ats: the process is exiting/);
  assert.ok(line, out);
  assert.equal(line.level, 'error');
  assert.equal(line.code, 3);
  assert.match(String(line.msg), /process\.exit\(\)/);
  assert.deepEqual(line.running, [{ jobId: id, type: 't.exit', attempt: 1 }]);
});

it('an error thrown from a handler\'s timer: exit 1, its stack on stderr, and the same last line', { timeout: 90_000 }, async () => {
  const { id, code, out } = await runUntilExit('t.timer');
  assert.equal(code, 1, out);
  assert.match(out, /Error: thrown from a timer/);
  const [line] = linesMatching(out, /ats: the process is exiting/);
  assert.ok(line, out);
  assert.equal(line.code, 1);
  assert.deepEqual(line.running, [{ jobId: id, type: 't.timer', attempt: 1 }]);
});

it('a handler that logs a line and then calls process.exit() (that line still being written): the last line is written all the same', { timeout: 90_000 }, async () => {
  // The JSON logs go to stdout asynchronously; at the exit, pino writes what is left synchronously: the
  // last line must be in its stream by then, not after (where an earlier write still under way leaves it).
  const { id, code, out } = await runUntilExit('t.logexit');
  assert.equal(code, 3, out);
  assert.equal(linesMatching(out, /the handler logs, then exits/).length, 1, out);
  const [line] = linesMatching(out, /ats: the process is exiting/);
  assert.ok(line, out);
  assert.deepEqual(line.running, [{ jobId: id, type: 't.logexit', attempt: 1 }]);
});
