/**
 * Run as a script (server/workflow-wildcard-signal.test.ts runs it under
 * `--conditions=development`, where XState's development build throws on an
 * event of the wildcard type `*`): starts an instance whose machine has a `*`
 * transition, signals it `{"type": "*"}` over HTTP and in process, and prints
 * one JSON line: whether the development build is loaded, the route's answer,
 * the service's, and the instance afterwards.
 */
import { createMachine, initialTransition, transition } from 'xstate';
import { HandlerRegistry } from '../../engine/handlers.js';
import { isAtsError } from '../../engine/errors.js';
import { startSqliteTestApp } from './app.js';

/** Waits for GO; `*` (any other event) is taken and changes nothing. */
export const wildcardMachine = () => createMachine({
  id: 'wildcard', initial: 'waiting',
  states: { waiting: { on: { GO: 'gone', '*': { actions: [] } } }, gone: { type: 'final' } },
});

/** Whether XState's development build is the one loaded: it throws on taking `*`. */
function developmentBuild(): boolean {
  const machine = createMachine({ id: 'probe' });
  try {
    transition(machine, initialTransition(machine)[0], { type: '*' });
    return false;
  } catch {
    return true;
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const definitions = new HandlerRegistry();
  definitions.workflow('wildcard', wildcardMachine(), { version: 1 });
  const t = await startSqliteTestApp({}, { workflows: definitions });
  try {
    const started = await t.app.inject({ method: 'POST', url: '/v1/workflows', payload: { name: 'wildcard', input: null } });
    const id = (started.json() as { id: string }).id;
    const route = await t.app.inject({ method: 'POST', url: `/v1/workflows/${id}/events`, payload: { type: '*' } });
    const service = await t.workflows!.signal(id, 'default', { type: '*' }).then(
      (r) => ({ ok: r.ok }),
      (err: unknown) => ({ code: isAtsError(err) ? err.code : String(err) }),
    );
    const after = (await t.app.inject({ url: `/v1/workflows/${id}` })).json() as { status: string; version: number; error: unknown };
    const out = { development: developmentBuild(), route: { status: route.statusCode, code: (route.json() as { code?: string }).code }, service, after };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await t.close();
  }
}
