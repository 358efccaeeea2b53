/**
 * `ats workflow start|ls|show|history|signal|cancel|delete|verify`: workflow
 * instances (`/v1/workflows`, docs/workflows.md). Each sub-command is a
 * client command of its own (its usage, `--url`, `--help`, the exit codes of
 * run.ts); `ats workflow` picks one by its first argument, as `ats schedule`.
 */
import type { Workflow, WorkflowEvent, WorkflowListQuery, WorkflowSignal, WorkflowVerification } from '../../client/index.js';
import { WORKFLOW_STATUSES } from '../../machines/workflow.js';
import { MAX_WORKFLOW_NAME } from '../../server/schemas.js';
import { ApiError } from '../client.js';
import { idempotencyKey, int, json, MAX_IDEMPOTENCY_KEY_CHARS, nameOption, oneOf, RESERVED_KEY_PREFIX, str, UsageError, type Values } from './args.js';
import { labelled, moreHint, oneLine, short, table } from './output.js';
import { deleteEach } from './delete.js';
import { clientCommand, err, out, usageOf, type Command, type CommandSpec, type Context } from './run.js';

export const workflowStartSpec: CommandSpec = {
  usage: 'ats workflow start NAME [--input JSON] [--idempotency-key K] [--json]',
  details: [
    'NAME                   a registered workflow (registry.workflow in an ATS_HANDLERS module)',
    '--input JSON           the machine\'s input (default null)',
    '--idempotency-key K    the same key, name and input again print the instance the first start started;',
    '                       the key with another input is refused (ATS_ERR_IDEMPOTENCY_CONFLICT); printable ASCII,',
    `                       no space at either end, at most ${MAX_IDEMPOTENCY_KEY_CHARS} characters, not starting with ${RESERVED_KEY_PREFIX}`,
    '                       (the server\'s own; a signal\'s key may)',
    '--json                 print the instance as JSON (else its id)',
  ],
  options: { input: { type: 'string' }, 'idempotency-key': { type: 'string' }, json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const workflowLsSpec: CommandSpec = {
  usage: 'ats workflow ls [--name N] [--status S] [--limit N] [--cursor C] [--json]',
  details: [
    '--name N    only instances of this workflow',
    `--status S  one of ${WORKFLOW_STATUSES.join(', ')}`,
    '--limit N   instances per page (default 50, at most 500)',
    '--cursor C  the next page (printed under a page with more after it: a page may end short, or empty, before the end)',
  ],
  options: {
    name: { type: 'string' }, status: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' },
  },
  positionals: [0, 0],
};

export const workflowShowSpec: CommandSpec = {
  usage: 'ats workflow show ID [--json]',
  details: [
    'The instance: status, state, context, output or error, its live children and their jobs\' states, its timers, and the signals it takes now.',
    '`ats workflow get ID` is the same.',
  ],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const workflowHistorySpec: CommandSpec = {
  usage: 'ats workflow history ID [--json]',
  details: [
    'One line per event, oldest first: what entered the instance (START, SIGNAL, MESSAGE, CHILD, TIMER, CANCEL, MIGRATE), its status',
    'after it, and the jobs the step started (with their types)',
    '--json  print the API\'s JSON ({events})',
  ],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const workflowSignalSpec: CommandSpec = {
  usage: 'ats workflow signal ID TYPE [--data JSON] [--idempotency-key K] [--json]',
  details: [
    'Sends the event {type: TYPE, ...data} to the instance\'s machine. When no transition takes TYPE now, exit 1',
    'with ATS_ERR_WORKFLOW_EVENT_NOT_ACCEPTED and the event types it takes. The event goes with an Idempotency-Key,',
    'so a retry after a lost answer is taken once.',
    '--data JSON            the event\'s other fields: a JSON object without "type"',
    '--idempotency-key K    the key (default: a new one): the same key and event again take nothing more',
    `                       (printable ASCII, no space at either end, at most ${MAX_IDEMPOTENCY_KEY_CHARS} characters)`,
    '--json                 print the instance after the step as JSON; a refusal as {code, message, accepts}',
  ],
  options: { data: { type: 'string' }, 'idempotency-key': { type: 'string' }, json: { type: 'boolean' } },
  positionals: [2, 2],
};

export const workflowCancelSpec: CommandSpec = {
  usage: 'ats workflow cancel ID [--reason TEXT] [--json]',
  details: ['Ends the instance as cancelled and cancels its live children\'s jobs. Exit 1 with ATS_ERR_WORKFLOW_ENDED when it has ended.'],
  options: { reason: { type: 'string', emptyOk: true }, json: { type: 'boolean' } },
  positionals: [1, 1],
};

export const workflowDeleteSpec: CommandSpec = {
  usage: 'ats workflow delete ID [ID...] [--json]',
  details: [
    'Deletes each ended (done, error or cancelled) instance and its history (a key needs the operate scope), one after the',
    'other, in the order given, a line each: "ID deleted", "ID not found" (no such instance, or another tenant\'s),',
    '"ID active (refused)" (cancel it first), with the API\'s code and message on stderr. Its child jobs stay (ats delete',
    'deletes them). An instance refused does not stop the others. Exit 0 when every instance was deleted, else 1.',
    'A failure that is not about one instance (no server, a 401, 403, 429 or 503 after the retries, an answer that is',
    'not the API\'s) stops at that instance (deleted only if an answer was lost): the ones before stay deleted, the ones',
    'after are named on stderr as not tried.',
    'A delete whose answer was lost (a timeout, a dropped connection, a 503) is sent again; a 404 to that retry counts',
    'as deleted (the first try may have deleted it), exit 0. An ID that is no instance id (a ULID) is exit 2, nothing',
    'deleted. An ID given twice is deleted once. An instance changed meanwhile (409 ATS_ERR_CONCURRENT_UPDATE) is',
    '"ID refused".',
    '--json  one JSON object per instance tried: {"id","deleted":true}, or {"id","deleted":false,"status","code","message"}',
  ],
  options: { json: { type: 'boolean' } },
  positionals: [1, Infinity],
};

export const workflowVerifySpec: CommandSpec = {
  usage: 'ats workflow verify ID [--json]',
  details: ['Replays the history through the instance\'s definition and compares the result with the stored state: exit 0 when they match, 1 when not.'],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

/** The signal's event from the command line: `{type, ...data}` (throws UsageError on bad `--data`). */
export function signalFrom(type: string, values: Values): WorkflowSignal {
  const data = json(values, 'data');
  if (data === undefined) return { type };
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new UsageError('--data must be a JSON object (the event\'s fields besides its type)');
  if (Object.hasOwn(data, 'type')) throw new UsageError('--data must not hold "type": TYPE is the event\'s type');
  return { type, ...(data as Record<string, unknown>) };
}

/** JSON on one line, shortened past `max` characters (`short`, at the width of a workflow's lines). */
export function compact(value: unknown, max = 120): string {
  return short(value, max);
}

/**
 * A machine's state value on one line: `waiting`, `fulfilling.shipping.booking`,
 * and the regions of a parallel state in braces:
 * `fulfilling.{stock.reserved, shipping.booking}`.
 */
export function stateText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return compact(value);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 1) return `${entries[0]![0]}.${stateText(entries[0]![1])}`;
  return `{${entries.map(([k, v]) => `${k}.${stateText(v)}`).join(', ')}}`;
}

/** Rows of instances, as `ats workflow ls` prints them. */
export function workflowTable(workflows: readonly Workflow[]): string[] {
  return table(
    ['ID', 'NAME', 'STATUS', 'STATE', 'UPDATED'],
    workflows.map((w) => [w.id, w.name, w.status, stateText(w.value), w.updatedAt]),
  );
}

/** An instance, as `ats workflow show` prints it. */
export function workflowDetail(w: Workflow): string {
  const fields: Array<[string, string]> = [
    ['id', w.id], ['name', `${w.name} (definition ${w.definitionVersion})`], ['status', w.status], ['state', stateText(w.value)],
    ['context', compact(w.context, 1000)], ['input', compact(w.input, 1000)],
    ...(w.status === 'done' ? [['output', compact(w.output, 1000)] as [string, string]] : []),
    ...(w.error !== null ? [['error', errorText(w.error)] as [string, string]] : []),
    ['accepts', w.accepts.length > 0 ? w.accepts.join(', ') : '-'],
    ['version', String(w.version)], ['idempotencyKey', w.idempotencyKey ?? '-'],
    ['createdAt', w.createdAt], ['updatedAt', w.updatedAt],
  ];
  const head = labelled(fields, 14);
  const children = w.children.length > 0
    ? table(['INVOKE', 'JOB', 'TYPE', 'STATE'], w.children.map((c) => [c.invokeId, c.jobId, c.jobType, c.state ?? '(deleted)']))
    : ['none'];
  const timers = w.timers.length > 0 ? table(['TIMER', 'DUE'], w.timers.map((t) => [t.id, t.dueAt])) : ['none'];
  return [...head, '', 'children', ...children.map((l) => `  ${l}`), '', 'timers', ...timers.map((l) => `  ${l}`)].join('\n');
}

/** An error as a person reads it, on one line (`oneLine`): its message when it has one, else its JSON; cut past `max` characters. */
function errorText(error: unknown, max = Infinity): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? oneLine(message, max) : compact(error, max);
}

/** The job ids a history's steps started, in order, without repeats (the jobs `history` looks up for their types). */
export function startedJobIds(events: readonly WorkflowEvent[]): string[] {
  const ids = new Set<string>();
  for (const e of events) for (const id of (e.data as { jobIds?: unknown } | null)?.jobIds as string[] | undefined ?? []) ids.add(id);
  return [...ids];
}

/** `payment.charge 01J...`, or the id alone when the job's type is unknown (the job was deleted, or never started). */
const jobText = (id: string, types: ReadonlyMap<string, string>): string => {
  const type = types.get(id);
  return type === undefined ? id : `${type} ${id}`;
};

/** What entered the instance, in a few words. */
function eventText(e: WorkflowEvent, types: ReadonlyMap<string, string>): string {
  const d = (e.data ?? {}) as {
    input?: unknown; event?: { type?: string } & Record<string, unknown>; jobId?: string;
    outcome?: { state: string; result?: unknown; error?: unknown }; timerId?: string; reason?: string;
    from?: number | string; to?: number;
  };
  switch (e.type) {
    case 'START':
      return `input ${compact(d.input ?? null, 80)}`;
    case 'SIGNAL':
    case 'MESSAGE': {
      const { type, ...fields } = d.event ?? {};
      const text = Object.keys(fields).length > 0 ? `${type} ${compact(fields, 80)}` : String(type);
      return e.type === 'MESSAGE' ? `${text} from workflow ${d.from ?? '?'}` : text;
    }
    case 'CHILD': {
      const o = d.outcome;
      const how = !o ? '?' : o.state === 'done' ? `done ${compact(o.result ?? null, 80)}` : `${o.state}: ${errorText(o.error, 300)}`;
      return `${jobText(d.jobId ?? '?', types)} ${how}`;
    }
    case 'TIMER':
      return `${d.timerId ?? '?'} fired`;
    case 'CANCEL':
      return typeof d.reason === 'string' && d.reason ? `reason: ${oneLine(d.reason, 300)}` : 'no reason given';
    case 'MIGRATE':
      return `definition ${d.from ?? '?'} -> ${d.to ?? '?'}`;
  }
}

/**
 * A history, as `ats workflow history` prints it: one line per event, with
 * the status after it and the jobs the step started (`types` names them; a
 * job not in it shows by id alone).
 */
export function workflowHistory(events: readonly WorkflowEvent[], types: ReadonlyMap<string, string>): string[] {
  return table(['SEQ', 'AT', 'EVENT', 'STATUS', 'WHAT'], events.map((e) => {
    const started = ((e.data as { jobIds?: string[] } | null)?.jobIds ?? []).map((id) => jobText(id, types));
    const what = eventText(e, types) + (started.length > 0 ? `  -> started ${started.join(', ')}` : '');
    return [String(e.seq), e.at, e.type, e.status, what];
  }));
}

/** Most jobs `history` looks up for their types, and how many at a time; past the cap, jobs show by id alone. */
const MAX_TYPE_LOOKUPS = 200;
const LOOKUPS_AT_ONCE = 8;

/**
 * The type of each job a history started, read from the job (the history
 * records ids only). A job that is gone (retention, or an invocation entered
 * and left within one step, which started none) is left out.
 */
async function jobTypes(ctx: Context, ids: readonly string[]): Promise<Map<string, string>> {
  const types = new Map<string, string>();
  const queue = ids.slice(0, MAX_TYPE_LOOKUPS);
  const next = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      try {
        types.set(id, (await ctx.client.get(id)).type);
      } catch (e) {
        if (!(e instanceof ApiError && e.code === 'ATS_ERR_JOB_NOT_FOUND')) throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: LOOKUPS_AT_ONCE }, next));
  return types;
}

/** `01J... done approved` (what start-like steps print without --json). */
const stepLine = (w: Workflow): string => `${w.id} ${w.status} ${stateText(w.value)}`;

const startCommand = clientCommand(workflowStartSpec, async ({ client, values, positionals }) => {
  const input = json(values, 'input');
  const key = idempotencyKey(values, { reservedRefused: true });
  const wf = await client.startWorkflow({ name: positionals[0]!, ...(input === undefined ? {} : { input }) }, key === undefined ? {} : { idempotencyKey: key });
  out(values.json ? JSON.stringify(wf) : wf.id);
  return 0;
});

const lsCommand = clientCommand(workflowLsSpec, async ({ client, values }) => {
  const query: WorkflowListQuery = {
    name: nameOption(values, 'name', MAX_WORKFLOW_NAME), status: oneOf(values, 'status', WORKFLOW_STATUSES)?.[0] as WorkflowListQuery['status'],
    limit: int(values, 'limit', 1, 500), cursor: str(values, 'cursor'),
  };
  const page = await client.listWorkflows(query);
  if (values.json) {
    out(JSON.stringify(page));
    return 0;
  }
  if (page.workflows.length === 0) err(page.nextCursor ? 'no workflows on this page (it stopped at its read bound; older ones may match)' : 'no workflows');
  else out(workflowTable(page.workflows).join('\n'));
  if (page.nextCursor) {
    err(moreHint('ats workflow ls', [
      ['cursor', page.nextCursor], ['limit', query.limit], ['name', query.name], ['status', query.status], ['url', str(values, 'url')],
    ]));
  }
  return 0;
});

const showCommand = clientCommand(workflowShowSpec, async ({ client, values, positionals }) => {
  const wf = await client.getWorkflow(positionals[0]!);
  out(values.json ? JSON.stringify(wf) : workflowDetail(wf));
  return 0;
});

const historyCommand = clientCommand(workflowHistorySpec, async (ctx) => {
  const events = await ctx.client.workflowEvents(ctx.positionals[0]!);
  if (ctx.values.json) out(JSON.stringify({ events }));
  else out(workflowHistory(events, await jobTypes(ctx, startedJobIds(events))).join('\n'));
  return 0;
});

const signalCommand = clientCommand(workflowSignalSpec, async ({ client, values, positionals }) => {
  const [id, type] = positionals as [string, string];
  try {
    // A signal's key is the instance's alone: the API takes one starting with ats:.
    const key = idempotencyKey(values, { reservedRefused: false });
    const wf = await client.signalWorkflow(id, signalFrom(type, values), key === undefined ? {} : { idempotencyKey: key });
    out(values.json ? JSON.stringify(wf) : stepLine(wf));
    return 0;
  } catch (e) {
    // The server's message names what the instance takes now; a script gets the list itself with --json.
    if (!values.json || !(e instanceof ApiError) || e.accepts === undefined) throw e;
    out(JSON.stringify({ code: e.code, message: e.message, accepts: e.accepts }));
    return 1;
  }
});

const cancelCommand = clientCommand(workflowCancelSpec, async ({ client, values, positionals }) => {
  const wf = await client.cancelWorkflow(positionals[0]!, { reason: str(values, 'reason') });
  out(values.json ? JSON.stringify(wf) : stepLine(wf));
  return 0;
});

/** `ats workflow delete`, as `ats delete` deletes jobs (cli/commands/delete.ts). */
const deleteCommand = clientCommand(workflowDeleteSpec, async ({ client, values, positionals }) =>
  deleteEach({
    spec: workflowDeleteSpec,
    noun: 'workflow instance',
    nouns: 'instances',
    printedBy: 'ats workflow start',
    refused: new Map([
      ['ATS_ERR_WORKFLOW_NOT_FOUND', 'not found'],
      ['ATS_ERR_WORKFLOW_ACTIVE', 'active (refused)'],
    ]),
    act: (id) => client.deleteWorkflow(id),
  }, positionals, values.json === true, client.url));

/** `ok: 7 events replayed`, or the first difference replay found (escaped: it may be what a definition's own code threw). */
export function verifyText(v: WorkflowVerification): string {
  return v.ok ? `ok: ${v.events} events replayed` : `not ok: ${oneLine(v.problem ?? 'the replayed state differs')} (${v.events} events replayed)`;
}

const verifyCommand = clientCommand(workflowVerifySpec, async ({ client, values, positionals }) => {
  const v = await client.verifyWorkflow(positionals[0]!);
  // Not the API's answer (a --url that is not ats): told as that, never as a replay that did not match ("not ok").
  if (typeof v?.ok !== 'boolean' || typeof v.events !== 'number') {
    throw new Error(`GET /v1/workflows/${positionals[0]!}/verify answered without a boolean "ok" and a number "events" (not an ats server?)`);
  }
  out(values.json ? JSON.stringify(v) : verifyText(v));
  return v.ok ? 0 : 1;
});

/** The sub-commands by name (a Map: the name comes from the command line). */
const SUBCOMMANDS = new Map<string, { spec: CommandSpec; run: Command }>([
  ['start', { spec: workflowStartSpec, run: startCommand }],
  ['ls', { spec: workflowLsSpec, run: lsCommand }],
  ['show', { spec: workflowShowSpec, run: showCommand }],
  ['history', { spec: workflowHistorySpec, run: historyCommand }],
  ['signal', { spec: workflowSignalSpec, run: signalCommand }],
  ['cancel', { spec: workflowCancelSpec, run: cancelCommand }],
  ['delete', { spec: workflowDeleteSpec, run: deleteCommand }],
  ['verify', { spec: workflowVerifySpec, run: verifyCommand }],
]);

/** Other names of sub-commands (as `ats get` reads a job). */
const ALIASES = new Map([['get', 'show']]);

/** Every sub-command's usage. */
export function workflowUsage(): string {
  return [...SUBCOMMANDS.values()].map((c) => usageOf(c.spec)).join('\n\n');
}

export const workflowCommand: Command = async (args, env) => {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    out(workflowUsage());
    return 0;
  }
  const command = sub === undefined ? undefined : SUBCOMMANDS.get(ALIASES.get(sub) ?? sub);
  if (!command) {
    const names = [...SUBCOMMANDS.keys(), ...ALIASES.keys()].join(', ');
    err(`ats: ${sub === undefined ? 'missing workflow command' : `unknown workflow command "${sub}"`} (${names})\n${workflowUsage()}`);
    return 2;
  }
  return command.run(rest, env);
};
