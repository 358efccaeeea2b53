/**
 * The handler registry (by job type), `defineHandler` (a handler with a typed
 * payload schema), the loading of handler modules, and the built-in demo
 * handlers.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Static, TSchema } from '@sinclair/typebox';
import { NonRetryableError } from './errors.js';
import { compilePayloadSchema, type PayloadCheck } from './payload-schema.js';
import type { Handler, HandlerContext } from './ports.js';
import { jobTypeProblem } from '../machines/job-bounds.js';
import { defineWorkflow, type WorkflowDefinition, type WorkflowJobOptions, type WorkflowMigration } from '../machines/workflow.js';
import type { AnyStateMachine } from 'xstate';

/** A handler made by `defineHandler`: its type, its payload schema (compiled) and its run function. */
export interface HandlerDefinition<S extends TSchema = TSchema, R = unknown> {
  readonly type: string;
  readonly payload: S;
  readonly run: (payload: Static<S>, ctx: HandlerContext) => Promise<R> | R;
  /** null when the payload fits the schema, else its first problem (`/to must be string`). */
  readonly check: PayloadCheck;
}

/**
 * A handler whose payload has a schema (TypeBox): `run` gets it typed
 * `Static<schema>`, the API answers a submit with a payload that does not fit
 * 400 ATS_ERR_INVALID_PAYLOAD (writing nothing), and the worker fails such a
 * job without retries rather than run it. Register with
 * `registry.register(defineHandler(...))` or export it in `handlers`.
 */
export function defineHandler<S extends TSchema, R>(
  type: string,
  spec: { payload: S; run: (payload: Static<S>, ctx: HandlerContext) => Promise<R> | R },
): HandlerDefinition<S, R> {
  if (typeof type !== 'string' || type.length === 0) throw new TypeError('defineHandler: the job type must be a non-empty string');
  const problem = jobTypeProblem(type);
  if (problem) throw new TypeError(`defineHandler(${JSON.stringify(type)}): ${problem}`);
  if (typeof spec?.run !== 'function') throw new TypeError(`defineHandler(${type}): run must be a function`);
  let check: PayloadCheck;
  try {
    check = compilePayloadSchema(spec.payload);
  } catch (err) {
    throw new TypeError(`defineHandler(${type}): the payload schema does not compile: ${(err as Error).message}`, { cause: err });
  }
  return Object.freeze({ type, payload: spec.payload, run: spec.run, check });
}

const isDefinition = (v: unknown): v is HandlerDefinition =>
  typeof v === 'object' && v !== null && typeof (v as HandlerDefinition).type === 'string'
  && typeof (v as HandlerDefinition).run === 'function' && typeof (v as HandlerDefinition).check === 'function';

interface Entry {
  handler: Handler;
  check: PayloadCheck | null;
}

export class HandlerRegistry {
  private readonly handlers = new Map<string, Entry>();
  /** Workflow definitions by name, then version. */
  private readonly workflows = new Map<string, Map<number, WorkflowDefinition>>();
  /** The promise creators of workflows' fromPromise actors, by job type: the newest version's runs. */
  private readonly actorRuns = new Map<string, NonNullable<WorkflowDefinition['actors'][number]['run']>>();
  /** Whose fromPromise actor each of those job types is: the workflow's name and the actor's. */
  private readonly actorOwners = new Map<string, { workflow: string; actor: string }>();

  /**
   * Registers a workflow: `registry.workflow('order.fulfil', machine, { version: 3 })`
   * (machines/workflow.ts checks the machine). Several versions of one name
   * may be registered: new instances start on the highest, running ones keep
   * theirs. Each `fromPromise` actor of the machine becomes the job type
   * `<name>.<actor>`, its promise creator that type's handler (the highest
   * version's when versions share an actor; another workflow's actor of the
   * same job type is refused); `job(type)` actors need a handler of their own. `migrate: { from, state }` moves live instances of
   * version `from` to this one at their next step (machines/workflow-migration.ts).
   */
  workflow(
    name: string, machine: AnyStateMachine,
    options: { version?: number; jobs?: ReadonlyMap<string, WorkflowJobOptions>; migrate?: WorkflowMigration } = {},
  ): this {
    const def = defineWorkflow(name, machine, options);
    let versions = this.workflows.get(name);
    if (versions?.has(def.version)) throw new Error(`workflow ${name} version ${def.version} is already registered`);
    const runs = def.actors.filter((a) => a.run !== undefined);
    // Checked before anything is registered: a refused workflow leaves no handler of its actors behind.
    for (const actor of runs) {
      const owner = this.actorOwners.get(actor.jobType);
      // Another workflow's actor of the same job type (workflow `a`'s actor `b.c`, workflow `a.b`'s `c`): one
      // handler would run both's jobs, with the promise creator of whichever registered last.
      if (owner && owner.workflow !== name) {
        throw new Error(
          `workflow ${name}: its actor ${actor.name} runs as job type ${actor.jobType}, which is already the job type of workflow ${owner.workflow}'s actor ${owner.actor}; rename one of them`,
        );
      }
      if (!owner && this.handlers.has(actor.jobType)) throw new Error(`a handler for ${actor.jobType} is already registered`);
    }
    const newest = !versions || def.version > Math.max(...versions.keys());
    for (const actor of runs) {
      const ownedByWorkflow = this.actorOwners.has(actor.jobType);
      if (!ownedByWorkflow || newest) this.actorRuns.set(actor.jobType, actor.run!);
      if (!ownedByWorkflow) {
        const type = actor.jobType;
        this.add(type, { check: null, handler: async (payload, ctx) => this.actorRuns.get(type)!({ input: payload, signal: ctx.signal }) });
        this.actorOwners.set(type, { workflow: name, actor: actor.name! });
      }
    }
    if (!versions) this.workflows.set(name, (versions = new Map()));
    versions.set(def.version, def);
    return this;
  }

  /** The workflow `name` at `version`, or at its highest version; undefined when not registered. */
  workflowDefinition(name: string, version?: number): WorkflowDefinition | undefined {
    const versions = this.workflows.get(name);
    if (!versions) return undefined;
    return versions.get(version ?? Math.max(...versions.keys()));
  }

  /** Registered workflow names, sorted. */
  workflowNames(): string[] {
    return [...this.workflows.keys()].sort();
  }

  /** `register(type, handler)` (any payload), or `register(defineHandler(...))` (a checked payload). */
  register(type: string, handler: Handler): this;
  register(definition: HandlerDefinition<any, any>): this;
  register(typeOrDefinition: string | HandlerDefinition<any, any>, handler?: Handler): this {
    if (typeof typeOrDefinition === 'string') {
      if (typeof handler !== 'function') throw new TypeError(`the handler for ${typeOrDefinition} must be a function`);
      return this.add(typeOrDefinition, { handler, check: null });
    }
    if (!isDefinition(typeOrDefinition)) throw new TypeError('register() takes (type, handler) or a defineHandler(...) result');
    const { type, run, check } = typeOrDefinition;
    return this.add(type, {
      check,
      handler: async (payload, ctx) => {
        const problem = check(payload);
        if (problem) throw new NonRetryableError(`the payload does not fit the schema of ${type}: ${problem}`);
        return run(payload, ctx);
      },
    });
  }

  /** A type no submit could name (NAME_PATTERN, MAX_NAME_CHARS) is refused: its handler would never get a job. */
  private add(type: string, entry: Entry): this {
    const problem = jobTypeProblem(type);
    if (problem) throw new TypeError(`register(${JSON.stringify(type)}): ${problem}`);
    if (this.handlers.has(type)) throw new Error(`a handler for ${type} is already registered`);
    this.handlers.set(type, entry);
    return this;
  }

  get(type: string): Handler | undefined {
    return this.handlers.get(type)?.handler;
  }

  types(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /** null when `payload` fits the schema of `type` (or `type` has none, or no handler), else the first problem. */
  checkPayload(type: string, payload: unknown): string | null {
    return this.handlers.get(type)?.check?.(payload) ?? null;
  }
}

/**
 * What a handler module (ATS_HANDLERS) exports: `handlers`, an array of
 * `defineHandler(...)` results, and/or `register(registry)` (sync or async),
 * which may also register workflows (`registry.workflow(...)`).
 */
export interface HandlerModule {
  handlers?: readonly HandlerDefinition<any, any>[];
  register?: (registry: HandlerRegistry) => unknown;
}

/** What a handler module exports is not what it must be: `problem` says what, without the module's name. */
export class HandlerModuleError extends Error {
  constructor(readonly module: string, readonly problem: string) {
    super(`handler module ${module}: ${problem}`);
    this.name = 'HandlerModuleError';
  }
}

/**
 * What a loaded module offers as a handler module: its own `handlers` and
 * `register`, or, when it exports neither by name, its default export's: a
 * CommonJS `module.exports = { handlers }` reaches `import()` as the default
 * export alone when node cannot tell its fields by reading it (an object made
 * in steps, or by a call), and `export default { handlers }` alike.
 */
export function handlerModuleOf(mod: HandlerModule & { default?: unknown }): HandlerModule {
  if (mod.handlers !== undefined || typeof mod.register === 'function') return mod;
  const fallback = mod.default as HandlerModule | null | undefined;
  if (typeof fallback !== 'object' || fallback === null) return mod;
  return fallback.handlers !== undefined || typeof fallback.register === 'function' ? fallback : mod;
}

/** Adds a loaded handler module's handlers to `registry` (see handlerModuleOf); `name` is for errors. */
export async function registerModule(mod: HandlerModule, registry: HandlerRegistry, name: string): Promise<void> {
  const { handlers, register } = handlerModuleOf(mod);
  if (handlers === undefined && typeof register !== 'function') {
    throw new HandlerModuleError(name, 'exports neither register(registry) nor handlers');
  }
  if (handlers !== undefined) {
    if (!Array.isArray(handlers)) throw new HandlerModuleError(name, 'handlers must be an array of defineHandler(...) results');
    // Every index, holes of a sparse array too (forEach skips them).
    for (let i = 0; i < handlers.length; i++) {
      const h: unknown = handlers[i];
      // Named by its place: `undefined` from an import cycle, or a run function not wrapped in defineHandler.
      if (!isDefinition(h)) throw new HandlerModuleError(name, `handlers[${i}] is ${kindOf(h)}, not a defineHandler(...) result`);
      registry.register(h);
    }
  }
  if (typeof register === 'function') await register(registry);
}

const kindOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : typeof v === 'function' ? 'a function' : typeof v === 'undefined' ? 'undefined' : `a ${typeof v}`;

const obj = (p: unknown): Record<string, unknown> => (p && typeof p === 'object' ? (p as Record<string, unknown>) : {});

/** `demo.echo`: returns its payload. */
export const echo: Handler = async (payload) => payload;

/** `demo.sleep` `{ms}`: sleeps (abortable), then returns `{slept: ms}`. */
export const sleep: Handler = async (payload, ctx) => {
  const ms = Math.max(0, Math.min(Number(obj(payload).ms ?? 1000) || 0, 3_600_000));
  await delay(ms, undefined, { signal: ctx.signal });
  return { slept: ms };
};

/**
 * `demo.fail`: `{failTimes: n}` fails the first n attempts then succeeds;
 * `{always: true}` always fails; `{retryable: false}` fails without retries.
 */
export const fail: Handler = async (payload, ctx) => {
  const p = obj(payload);
  if (p.retryable === false) throw new NonRetryableError(`demo.fail: non-retryable failure on attempt ${ctx.attempt}`);
  if (p.always === true) throw new Error(`demo.fail: failure on attempt ${ctx.attempt}`);
  const failTimes = Number(p.failTimes ?? 1) || 0;
  if (ctx.attempt <= failTimes) throw new Error(`demo.fail: failure ${ctx.attempt} of ${failTimes}`);
  return { attempts: ctx.attempt };
};

export function registerDemoHandlers(registry: HandlerRegistry): HandlerRegistry {
  return registry.register('demo.echo', echo).register('demo.sleep', sleep).register('demo.fail', fail);
}
