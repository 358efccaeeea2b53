/** `ats verify ID`: a job's history replayed through the job machine against the stored job (`GET /v1/jobs/:id/verify`). */
import type { JobVerification } from '../../client/index.js';
import { oneLine } from './output.js';
import { clientCommand, out, type CommandSpec } from './run.js';

export const verifySpec: CommandSpec = {
  usage: 'ats verify ID [--json]',
  details: [
    'Checks the job\'s history: no gap in its seq, each event from the state the one before left, and a replay through the job machine equal to the stored job.',
    'Exit 0 when they match, 1 when not (each problem on a line of its own).',
  ],
  options: { json: { type: 'boolean' } },
  positionals: [1, 1],
};

/** Most characters of one problem a line shows (a replay's difference prints the job's context; `--json` has it whole). */
const PROBLEM_CHARS = 500;

/** `ok: 4 events replayed`, or `not ok` and each problem found, one a line, escaped (it may quote a handler's text). */
export function jobVerifyText(v: JobVerification): string {
  if (v.ok) return `ok: ${v.events} events replayed`;
  return [`not ok: ${v.events} events checked`, ...v.problems.map((p) => `  ${oneLine(p, PROBLEM_CHARS)}`)].join('\n');
}

export const verifyCommand = clientCommand(verifySpec, async ({ client, values, positionals }) => {
  const v = await client.verifyJob(positionals[0]!);
  // Not the API's answer (a --url that is not ats): told as that, never as a history that did not replay ("not ok").
  if (typeof v?.ok !== 'boolean' || typeof v.events !== 'number' || !Array.isArray(v.problems)) {
    throw new Error(`GET /v1/jobs/${positionals[0]!}/verify answered without a boolean "ok", a number "events" and a list "problems" (not an ats server?)`);
  }
  out(values.json ? JSON.stringify(v) : jobVerifyText(v));
  return v.ok ? 0 : 1;
});
