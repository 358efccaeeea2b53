/**
 * `ats submit TYPE [--payload JSON] [...]`: submit one job and print its id;
 * `--wait` follows it to its end, with the progress its handler reports
 * (exit 0 done, 1 dead or cancelled);
 * `--count N` submits N and waits for all (see submit-many.ts).
 */
import type { SubmitRequest } from '../client.js';
import { checkIdempotencyKeyText, idempotencyKey, int, isoTime, jobPolicy, json, MAX_IDEMPOTENCY_KEY_CHARS, RESERVED_KEY_PREFIX, str, UsageError, type Values } from './args.js';
import { followJob } from './follow.js';
import { AttemptTracker, progressLine, stateLine } from './output.js';
import { clientCommand, err, out, type CommandSpec, type Context } from './run.js';
import { itemKey, submitMany } from './submit-many.js';

export const submitSpec: CommandSpec = {
  usage: 'ats submit TYPE [--payload JSON] [--queue Q] [--max-attempts N] [--run-at ISO] [--idempotency-key K]\n' +
    '           [--timeout-ms N] [--priority N] [--concurrency-key K] [--wait | --count N] [--json]',
  details: [
    '--payload JSON         the handler\'s input (default null)',
    '--idempotency-key K    a repeat with the same K and job answers the job the first made (printable ASCII, no',
    `                       space at either end, at most ${MAX_IDEMPOTENCY_KEY_CHARS} characters, not starting with ${RESERVED_KEY_PREFIX}, the server's own)`,
    '--concurrency-key K    count the job\'s attempts against the limit of K ("ats limits set K ..."): over it, the job',
    '                       waits; a key without a limit is unlimited',
    '--wait                 print each state as it happens, and the progress the handler reports (ctx.progress)',
    '                       as it arrives; exit 0 when done, 1 when dead or cancelled',
    '--count N              submit N copies in batches of up to 1000 (POST /v1/jobs/batch), show progress on',
    '                       stderr, then a summary; exit 1 if any ends dead or cancelled (with --idempotency-key K,',
    `                       job i, from 0, gets K-i: K may be as long as leaves K-(N-1) within the API's ${MAX_IDEMPOTENCY_KEY_CHARS}`,
    '                       characters, else exit 2)',
    '--json                 print the job (or the summary) as JSON',
  ],
  options: {
    payload: { type: 'string' },
    queue: { type: 'string' },
    'max-attempts': { type: 'string' },
    'run-at': { type: 'string' },
    'idempotency-key': { type: 'string' },
    'timeout-ms': { type: 'string' },
    priority: { type: 'string' },
    'concurrency-key': { type: 'string' },
    wait: { type: 'boolean' },
    count: { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: [1, 1],
};

/** The request body from the command line (throws UsageError on a bad value). */
export function requestFrom(type: string, values: Values): SubmitRequest {
  const body: SubmitRequest = { type, payload: values.payload === undefined ? null : json(values, 'payload'), ...jobPolicy(values) };
  const queue = str(values, 'queue');
  const runAt = isoTime(values, 'run-at');
  const concurrencyKey = str(values, 'concurrency-key');
  if (queue !== undefined) body.queue = queue;
  if (runAt !== undefined) body.runAt = runAt;
  if (concurrencyKey !== undefined) body.concurrencyKey = concurrencyKey;
  return body;
}

async function submitOne(ctx: Context, body: SubmitRequest, key: string | undefined): Promise<number> {
  const { client, values } = ctx;
  const job = await client.submit(body, key === undefined ? {} : { idempotencyKey: key });
  if (!values.wait) {
    out(values.json ? JSON.stringify(job) : job.id);
    return 0;
  }
  if (!values.json) out(job.id);
  const attempts = new AttemptTracker(job.maxAttempts);
  const state = await followJob(client, job.id, (e) => {
    const line = stateLine(e, attempts.see(e));
    if (!values.json) out(line);
  }, { onNotice: err, ...(values.json ? {} : { onProgress: (p) => out(progressLine(p, job.maxAttempts)) }) });
  if (values.json) out(JSON.stringify(await client.get(job.id)));
  return state === 'done' ? 0 : 1;
}

/**
 * With `--count N` each job's key is `K-i`: one over the API's limit, or outside its pattern, would be refused with its
 * whole batch (400), and the run stop having submitted nothing; one starting with the server's own prefix, each item
 * 400. Refused up front instead, as a usage error, saying how long K may be, or what in it the API refuses.
 */
function checkItemKeys(key: string, count: number): void {
  const longest = itemKey(key, count - 1).length;
  if (longest > MAX_IDEMPOTENCY_KEY_CHARS) {
    throw new UsageError(
      `--idempotency-key: with --count ${count} each job's key is K-0 to K-${count - 1}, up to ${longest} characters; ` +
      `the API takes at most ${MAX_IDEMPOTENCY_KEY_CHARS}: give a key of at most ${MAX_IDEMPOTENCY_KEY_CHARS - (longest - key.length)} characters`,
    );
  }
  // Every K-i ends in a digit, so the API's pattern takes all of them or none, and starts with K, so the server's own
  // prefix is in all of them or none (each item refused 400): K-0 stands for them.
  checkIdempotencyKeyText(itemKey(key, 0), `with --count ${count} each job's key K-i`, { reservedRefused: true });
}

export const submitCommand = clientCommand(submitSpec, async (ctx) => {
  const { values, positionals } = ctx;
  const body = requestFrom(positionals[0]!, values);
  const count = int(values, 'count', 1, 1_000_000);
  if (count !== undefined && values.wait) throw new UsageError('--count already waits for every job; drop --wait');
  if (count === undefined) return submitOne(ctx, body, idempotencyKey(values, { reservedRefused: true }));
  const key = str(values, 'idempotency-key');
  if (key !== undefined) checkItemKeys(key, count);
  const summary = await submitMany(ctx.client, body, count, { idempotencyKey: key, onNotice: err });
  out(values.json ? JSON.stringify(summary) : summary.text);
  return summary.dead + summary.cancelled === 0 ? 0 : 1;
});
