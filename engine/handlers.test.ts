/**
 * The handler registry's two forms (a bare handler, a defineHandler
 * definition with a payload schema), the worker-side payload check, and the
 * handler module contract (`handlers` and/or `register`).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { fromPromise, setup } from 'xstate';
import { NonRetryableError } from './errors.js';
import { defineHandler, HandlerRegistry, registerModule } from './handlers.js';
import { silentLogger } from './logger.js';
import type { HandlerContext } from './ports.js';

const ctx: HandlerContext = {
  jobId: '01J00000000000000000000001', tenant: 'default', type: 't', queue: 'default', attempt: 1, idempotencyKey: '01J00000000000000000000001',
  signal: new AbortController().signal, heartbeat: async () => undefined, log: silentLogger, progress: async () => undefined,
};

const double = defineHandler('math.double', {
  payload: Type.Object({ n: Type.Number() }),
  run: (payload) => payload.n * 2,
});

describe('defineHandler and the registry', () => {
  test('the worker gets a handler that runs a fitting payload and refuses another without retries', async () => {
    const registry = new HandlerRegistry().register(double).register('bare', async (p) => p);
    const run = registry.get('math.double')!;
    assert.equal(await run({ n: 21 }, ctx), 42);
    await assert.rejects(run({ n: 'x' }, ctx), (e: unknown) => e instanceof NonRetryableError && /math\.double: \/n must be number/.test(e.message));
    assert.equal(registry.checkPayload('math.double', { n: 1 }), null);
    assert.equal(registry.checkPayload('math.double', {}), "must have required property 'n'");
    assert.equal(registry.checkPayload('bare', 'anything'), null, 'no schema: anything goes');
    assert.equal(registry.checkPayload('unknown', 'anything'), null);
    assert.deepEqual(registry.types(), ['bare', 'math.double']);
  });

  test('schemas of different handlers may share an $id (two modules, or one imported twice)', () => {
    const a = defineHandler('shared.a', { payload: Type.Object({ n: Type.Number() }, { $id: 'Payload' }), run: () => 1 });
    const b = defineHandler('shared.b', { payload: Type.Object({ s: Type.String() }, { $id: 'Payload' }), run: () => 2 });
    const registry = new HandlerRegistry().register(a).register(b);
    assert.equal(registry.checkPayload('shared.a', { n: 1 }), null);
    assert.equal(registry.checkPayload('shared.b', { s: 'x' }), null);
    assert.match(registry.checkPayload('shared.b', { n: 1 }) ?? '', /required property 's'/);
  });

  test('a type is registered once, in either form', () => {
    assert.throws(() => new HandlerRegistry().register(double).register('math.double', async () => 1), /already registered/);
    assert.throws(() => new HandlerRegistry().register({ type: 'x' } as never), /defineHandler/);
  });

  test('a fromPromise actor\'s job type is its workflow\'s alone: versions of one workflow share it, another workflow whose actor makes the same type is refused', async () => {
    /** A machine whose one state invokes the fromPromise actor `actor`, which answers `answer`. */
    const machine = (actor: string, answer: string) => setup({ actors: { [actor]: fromPromise(async () => answer) } }).createMachine({
      initial: 'run', states: { run: { invoke: { src: actor, onDone: 'done' } }, done: { type: 'final' } },
    });
    const registry = new HandlerRegistry().workflow('a', machine('b.c', 'a v1'));
    // Workflow a.b's actor c would be job type a.b.c too: its promise creator would run a's jobs (and a's, its).
    assert.throws(() => registry.workflow('a.b', machine('c', 'a.b')), /workflow a\.b: its actor c runs as job type a\.b\.c, which is already the job type of workflow a's actor b\.c/);
    assert.equal(registry.workflowDefinition('a.b'), undefined, 'not registered');
    assert.equal(await registry.get('a.b.c')!({}, ctx), 'a v1');
    // A later version of the same workflow takes it over, for both.
    registry.workflow('a', machine('b.c', 'a v2'), { version: 2 });
    assert.equal(await registry.get('a.b.c')!({}, ctx), 'a v2');
    // A refused registration leaves nothing behind: not its other actors' handlers either.
    const two = setup({ actors: { x: fromPromise(async () => 'x'), c: fromPromise(async () => 'c') } }).createMachine({
      initial: 'run', states: { run: { invoke: [{ src: 'x' }, { src: 'c' }] } },
    });
    assert.throws(() => registry.workflow('a.b', two), /already the job type of workflow a's actor/);
    assert.equal(registry.get('a.b.x'), undefined);
    assert.throws(() => new HandlerRegistry().register('w.p', async () => 1).workflow('w', machine('p', 'w')), /a handler for w\.p is already registered/);
  });

  test('a job type no submit could name (outside ^[A-Za-z0-9._:-]+$, or over 200 characters) is refused at definition and at registration', () => {
    for (const type of ['send email', 'mail/send', 'é', '(other)', 'x'.repeat(201)]) {
      assert.throws(() => defineHandler(type, { payload: Type.Null(), run: () => null }),
        (e: unknown) => e instanceof TypeError && e.message.startsWith(`defineHandler(${JSON.stringify(type)}): a job type is`), type);
      assert.throws(() => new HandlerRegistry().register(type, async () => null),
        (e: unknown) => e instanceof TypeError && e.message.startsWith(`register(${JSON.stringify(type)}): a job type is`), type);
      // A definition made by hand (not by defineHandler) is held to it as well.
      assert.throws(() => new HandlerRegistry().register({ ...double, type }), /a job type is/, type);
    }
    assert.throws(() => defineHandler('send email', { payload: Type.Null(), run: () => null }), /\^\[A-Za-z0-9\._:-\]\+\$/, 'the message names the pattern');
    assert.doesNotThrow(() => new HandlerRegistry().register(defineHandler('mail.send:v2_x-y', { payload: Type.Null(), run: () => null })).register('x'.repeat(200), async () => null));
  });

  test('a schema Ajv cannot compile fails at definition, naming the type', () => {
    assert.throws(() => defineHandler('bad.schema', { payload: Type.Date(), run: () => null }), /defineHandler\(bad\.schema\): the payload schema does not compile/);
  });

  test('a handler module exports handlers, register, or both', async () => {
    const registry = new HandlerRegistry();
    await registerModule({ handlers: [double] }, registry, 'a.ts');
    await registerModule({ register: (r) => r.register('b', async () => null) }, registry, 'b.ts');
    await registerModule({ handlers: [defineHandler('c', { payload: Type.Null(), run: () => null })], register: async (r) => void r.register('d', async () => null) }, registry, 'cd.ts');
    assert.deepEqual(registry.types(), ['b', 'c', 'd', 'math.double']);
    await assert.rejects(registerModule({}, registry, 'empty.ts'), /empty\.ts: exports neither register\(registry\) nor handlers/);
    await assert.rejects(registerModule({ handlers: double as never }, registry, 'one.ts'), /handlers must be an array/);
    // An item that is not a definition is named by its place, and nothing of the module is registered after it.
    await assert.rejects(registerModule({ handlers: [defineHandler('e', { payload: Type.Null(), run: () => null }), undefined as never] }, registry, 'cycle.ts'),
      /^HandlerModuleError: handler module cycle\.ts: handlers\[1\] is undefined, not a defineHandler\(\.\.\.\) result$/);
    await assert.rejects(registerModule({ handlers: [(async () => null) as never] }, registry, 'bare.ts'), /handlers\[0\] is a function, not a defineHandler/);
    // A hole of a sparse array is an item too.
    // eslint-disable-next-line no-sparse-arrays
    await assert.rejects(registerModule({ handlers: [, defineHandler('f', { payload: Type.Null(), run: () => null })] as never }, registry, 'sparse.ts'),
      /^HandlerModuleError: handler module sparse\.ts: handlers\[0\] is undefined, not a defineHandler/);
  });

  test('a CommonJS module (module.exports = { handlers, register }), whose fields node gives only as its default export, is a handler module too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ats-cjs-'));
    try {
      // module.exports made in steps: node's import finds no named export in it, only `default`.
      const file = join(dir, 'handlers.cjs');
      await writeFile(file, 'const m = {};\nm.register = (registry) => { registry.register("cjs.job", async () => 1); };\nmodule.exports = m;\n');
      const ns = await import(pathToFileURL(file).href) as Record<string, unknown>;
      assert.equal(ns.register, undefined, 'node names no export of it');
      const registry = new HandlerRegistry();
      await registerModule(ns, registry, 'handlers.cjs');
      assert.deepEqual(registry.types(), ['cjs.job']);
      // And `export default { handlers }` alike; a module whose default export has neither is still refused.
      await registerModule({ default: { handlers: [double] } } as never, registry, 'default.ts');
      assert.deepEqual(registry.types(), ['cjs.job', 'math.double']);
      await assert.rejects(registerModule({ default: { other: 1 } } as never, registry, 'other.ts'), /other\.ts: exports neither register\(registry\) nor handlers/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
