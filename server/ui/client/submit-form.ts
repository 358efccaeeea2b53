/**
 * The "submit a job" form: a type, a JSON payload, and one-click examples of
 * the demo handlers so a newcomer can watch a job run, retry or die.
 */
import { errorText, type Api, type JobView } from './api.js';
import { byId, h } from './dom.js';
import { submitTypeNames } from './console-data.js';
import { explain, UNKNOWN_PERMISSIONS, type Permissions } from './permissions.js';
import { inexactIntegerIn, inexactIntegerProblem, numberOutOfRangeIn, numberOutOfRangeProblem } from '../../../machines/json-integers.js';

interface Example {
  label: string;
  type: string;
  payload: unknown;
}

/** The built-in demo handlers (`engine/handlers.ts`; listed in the README): each shows a different path through the machine. */
const EXAMPLES: readonly Example[] = [
  { label: 'echo', type: 'demo.echo', payload: { hello: 'world' } },
  { label: 'sleep 3 s', type: 'demo.sleep', payload: { ms: 3000 } },
  { label: 'fail twice, then succeed', type: 'demo.fail', payload: { failTimes: 2 } },
  { label: 'always fail', type: 'demo.fail', payload: { always: true } },
  { label: 'non-retryable', type: 'demo.fail', payload: { retryable: false } },
];

/** Parse the payload field; an empty field means `{}`. */
function parsePayload(text: string): unknown {
  if (!text.trim()) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`The payload is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  // Sent on, JSON.parse's rounding would be the payload stored.
  const inexact = inexactIntegerIn(text);
  if (inexact) throw new Error(`In the payload, ${inexactIntegerProblem(inexact)}`);
  // 1e400 parses to Infinity, which would be sent as null.
  const outOfRange = numberOutOfRangeIn(value);
  if (outOfRange !== undefined) throw new Error(`The payload holds a number out of range: ${numberOutOfRangeProblem(outOfRange)}`);
  return value;
}

export interface SubmitForm {
  /** Suggest these job types (those the server has seen, from the stats) in the type field, beside the demo handlers'. */
  suggest(types: readonly string[]): void;
}

export function bindSubmitForm(api: Api, onSubmitted: (job: JobView) => void, permissions: Permissions = UNKNOWN_PERMISSIONS): SubmitForm {
  const form = byId<HTMLFormElement>('submit-form');
  const type = byId<HTMLInputElement>('submit-type');
  const payload = byId<HTMLTextAreaElement>('submit-payload');
  const status = byId('submit-status');
  const button = form.querySelector('button[type=submit]') as HTMLButtonElement;
  // A key without the submit scope: the button stays disabled, and the status line says why.
  const denied = permissions.denied('submit');
  explain(button, denied);
  if (denied) {
    button.disabled = true;
    status.className = 'status muted';
    status.textContent = denied;
  }

  byId('submit-examples').replaceChildren(...EXAMPLES.map((ex) => {
    const b = h('button', { type: 'button', class: 'chip', title: `${ex.type} ${JSON.stringify(ex.payload)}` }, ex.label);
    b.addEventListener('click', () => {
      type.value = ex.type;
      payload.value = JSON.stringify(ex.payload, null, 2);
    });
    return b;
  }));
  const typeList = byId('job-types');
  const demoTypes = EXAMPLES.map((e) => e.type);
  let suggested = '';
  const suggest = (seen: readonly string[]) => {
    const names = submitTypeNames(demoTypes, seen);
    const sig = names.join('\n');
    if (sig === suggested) return; // the stats come once a second, mostly with the same types
    suggested = sig;
    typeList.replaceChildren(...names.map((t) => h('option', { value: t })));
  };
  suggest([]);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (denied) return; // Enter in a field submits a form whose button is disabled
    status.className = 'status';
    button.disabled = true;
    try {
      const job = await api.submit(type.value.trim(), parsePayload(payload.value));
      status.textContent = `Submitted ${job.id}`;
      onSubmitted(job);
    } catch (err) {
      status.className = 'status error-note';
      status.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  });
  return { suggest };
}
