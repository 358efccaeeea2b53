/**
 * The client against a server running examples/handlers.ts:
 * `ATS_URL=http://localhost:3000 node --conditions=ats-source --import tsx examples/client.ts`.
 * Submits an email.send job, watches it to its end and prints the result.
 */
import { ApiError, createClient } from 'ai-task-scheduler/client';

const ats = createClient({ url: process.env.ATS_URL ?? 'http://localhost:3000' });

// A payload that does not fit email.send's schema is refused; no job is made.
try {
  await ats.submit({ type: 'email.send', payload: { to: 'nobody', subject: 'Hi', body: '' } });
} catch (err) {
  if (!(err instanceof ApiError)) throw err;
  console.log(`refused: ${err.status} ${err.code}: ${err.message}`);
}

// Subscribe before submitting, so the job cannot end unseen.
const ends = ats.watch({ type: 'email.send', states: ['done', 'dead', 'cancelled'] });
await ends.ready;
const job = await ats.submit({ type: 'email.send', payload: { to: 'ada@example.com', subject: 'Hello', body: 'Hi Ada!' } });
console.log(`submitted ${job.id}`);
for await (const e of ends) {
  if (e.jobId !== job.id) continue;
  const { state, result, lastError } = await ats.get(job.id);
  console.log(state === 'done' ? `done: ${JSON.stringify(result)}` : `${state}: ${lastError?.message ?? ''}`);
  break; // ends the watch
}
