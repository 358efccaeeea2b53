/**
 * `ats watch`'s polling fallback (`pollTransitions`) against a fake API whose
 * jobs change between looks: what it remembers of the jobs it saw stays
 * within its cap however long it runs, and each transition that happens
 * while its job is among the newest is printed once, none twice, none missed.
 * And what `--job` prints at once of a job that had already ended (`endedAtStart`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AtsClient, JobDetail, JobEvent } from '../client.js';
import { endedAtStart, JobVersions, pollTransitions, type Transition } from './watch.js';

interface FakeJob {
  id: string;
  events: JobEvent[];
}

interface FakeApi {
  jobs: Map<string, FakeJob>;
  created: number;
  looks: number;
  onGet: ((id: string) => void) | null;
  /** Every event made after the first look: what the watch must print, each once. */
  expected: Set<string>;
  /** A new job (pending), newer than every other. */
  add(): string;
  /** The job's next transition, into `to`. */
  step(id: string, to: string): void;
}

/**
 * Jobs listed newest first (by id, as the API lists them), 100 a page; each
 * look (`listPage`) first runs the next step of `steps`, and after the last
 * one resolves `done`. `onGet` runs before a job's history is read.
 */
function fakeApi(steps: Array<(api: FakeApi) => void>) {
  const api: FakeApi = {
    jobs: new Map(),
    created: 0,
    looks: 0,
    onGet: null,
    expected: new Set(),
    add() {
      const id = `01J${String(++api.created).padStart(23, '0')}`;
      api.jobs.set(id, { id, events: [] });
      api.step(id, 'pending');
      return id;
    },
    step(id, to) {
      const job = api.jobs.get(id)!;
      const seq = job.events.length + 1;
      job.events.push({ seq, type: to.toUpperCase(), from: job.events.at(-1)?.to ?? null, to, at: new Date(1_700_000_000_000 + seq).toISOString(), data: {} });
      if (api.looks > 1) api.expected.add(`${id}#${seq}`);
    },
  };
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const view = (j: FakeJob) => {
    const last = j.events.at(-1)!;
    return { id: j.id, type: 'demo.echo', queue: 'default', state: last.to, version: last.seq, attempt: 1, maxAttempts: 3, payload: null, result: null, lastError: null, runAt: last.at, createdAt: j.events[0]!.at, updatedAt: last.at };
  };
  const client = {
    async listPage({ limit = 50 }: { limit?: number }) {
      const step = steps[api.looks++];
      if (step) step(api);
      else finish();
      const page = [...api.jobs.values()].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, limit);
      return { jobs: page.map(view), nextCursor: null };
    },
    async get(id: string) {
      api.onGet?.(id);
      const job = api.jobs.get(id)!;
      return { ...view(job), events: job.events };
    },
  } as unknown as AtsClient;
  return { api, client, done };
}

test('polling: the jobs remembered stay within the cap over a long watch, and each transition prints once, none missed', async () => {
  const steps: Array<(api: FakeApi) => void> = [];
  const recent: string[][] = [];
  // The first look: 100 jobs there before the watch.
  steps.push((api) => {
    for (let i = 0; i < 100; i++) api.add();
  });
  // Then 120 looks: 10 new jobs each, each job running a look after its submit and done the look after.
  for (let n = 0; n < 120; n++) {
    steps.push((api) => {
      for (const id of recent[n - 2] ?? []) api.step(id, 'done');
      for (const id of recent[n - 1] ?? []) api.step(id, 'running');
      recent[n] = Array.from({ length: 10 }, () => api.add());
    });
  }
  const { api, client, done } = fakeApi(steps);
  const versions = new JobVersions(150);
  const sizes: number[] = [];
  const printed: string[] = [];
  const print = (t: Transition) => printed.push(`${t.jobId}#${t.seq}`);
  let stop!: () => void;
  const until = new Promise<void>((resolve) => (stop = resolve));
  const spy = client.listPage.bind(client);
  client.listPage = async (...args) => {
    sizes.push(versions.size);
    return spy(...args);
  };
  void pollTransitions(client, {}, print, until, { periodMs: 1, versions });
  await done;
  stop();
  assert.ok(api.created >= 1300, `the watch saw ${api.created} jobs`);
  assert.ok(Math.max(...sizes) <= 150, `the watch remembered up to ${Math.max(...sizes)} jobs, beyond its cap of 150`);
  assert.equal(new Set(printed).size, printed.length, `printed twice: ${printed.filter((p, i) => printed.indexOf(p) !== i).slice(0, 5).join(', ')}`);
  assert.deepEqual(new Set(printed), api.expected, 'every transition after the first look, once');
});

test('polling: a job forgotten that comes back among the newest (newer ones deleted) is not printed again; a history read newer than the list is not either', async () => {
  let first: string[] = [];
  const steps: Array<(api: FakeApi) => void> = [
    () => undefined,
    // 100 jobs made while watching, each printed.
    (api) => {
      first = Array.from({ length: 100 }, () => api.add());
    },
    // 100 newer ones push them out of the list, and then out of what is remembered (cap 120).
    (api) => {
      for (let i = 0; i < 100; i++) api.add();
    },
    // A forgotten job moves while out of the list: polling cannot see that (the stream is the real way).
    (api) => {
      api.step(first[0]!, 'running');
      api.expected.delete(`${first[0]!}#2`);
    },
    // The newer ones deleted: the first 100 are the newest again; one still remembered moves.
    (api) => {
      for (const id of [...api.jobs.keys()].filter((id) => !first.includes(id))) api.jobs.delete(id);
      api.step(first[99]!, 'running');
    },
    () => undefined,
    // A job whose next transition lands between the list and the read of its history.
    (api) => {
      api.step(first[1]!, 'running');
      api.onGet = (id) => {
        if (id !== first[1]) return;
        api.onGet = null;
        api.step(id, 'done');
      };
    },
    () => undefined,
  ];
  const { api, client, done } = fakeApi(steps);
  const versions = new JobVersions(120);
  const printed: string[] = [];
  let stop!: () => void;
  const until = new Promise<void>((resolve) => (stop = resolve));
  void pollTransitions(client, {}, (t) => printed.push(`${t.jobId}#${t.seq}`), until, { periodMs: 1, versions });
  await done;
  stop();
  assert.ok(versions.size <= 120, `${versions.size} remembered`);
  assert.equal(new Set(printed).size, printed.length, `printed twice: ${printed.filter((p, i) => printed.indexOf(p) !== i).slice(0, 5).join(', ')}`);
  assert.deepEqual(new Set(printed), api.expected);
  assert.ok(printed.includes(`${first[99]}#2`) && printed.includes(`${first[1]}#2`) && printed.includes(`${first[1]}#3`), printed.slice(100).join(' '));
});

test('polling one job (--job) with --type or --queue: its transitions only when the job is of that type and queue, as over the stream (the filters ANDed)', async () => {
  const id = '01J0000000000000000000JOB1';
  const events: JobEvent[] = [];
  const step = (to: string) => {
    const seq = events.length + 1;
    events.push({ seq, type: to.toUpperCase(), from: events.at(-1)?.to ?? null, to, at: new Date(1_700_000_000_000 + seq).toISOString(), data: {} });
  };
  step('pending');
  let gets = 0;
  const client = {
    async get(jobId: string) {
      assert.equal(jobId, id);
      // Every read after the first finds the job a step further.
      if (gets++ > 0 && events.length < 4) step(['published', 'running', 'done'][events.length - 1]!);
      const last = events.at(-1)!;
      return { id, type: 'demo.echo', queue: 'default', state: last.to, version: last.seq, attempt: 1, maxAttempts: 3, payload: null, result: null, lastError: null, runAt: last.at, createdAt: events[0]!.at, updatedAt: last.at, events: [...events] };
    },
    async listPage() {
      throw new Error('one job is read, not listed');
    },
  } as unknown as AtsClient;
  const watch = async (filter: { type?: string; queue?: string }) => {
    events.length = 0;
    step('pending');
    gets = 0;
    const printed: string[] = [];
    let stop!: () => void;
    const until = new Promise<void>((resolve) => (stop = resolve));
    void pollTransitions(client, { jobId: id, ...filter }, (t) => printed.push(`${t.to}`), until, { periodMs: 1 });
    while (gets < 6) await new Promise((r) => setTimeout(r, 2));
    stop();
    return printed;
  };
  assert.deepEqual(await watch({ type: 'demo.echo', queue: 'default' }), ['published', 'running', 'done'], 'the job of that type and queue');
  assert.deepEqual(await watch({ type: 'demo.other' }), [], 'a job of another type: none of its transitions');
  assert.deepEqual(await watch({ queue: 'other' }), [], 'a job in another queue: none of its transitions');
  assert.deepEqual(await watch({ type: 'demo.echo', queue: 'other' }), [], 'both must match');
});

test('--job of a job that had already ended: its last transition, as it would have printed; none for a job not ended, or one the filters leave out', () => {
  const at = (seq: number) => new Date(1_700_000_000_000 + seq).toISOString();
  const job = (...moves: Array<[string, string]>): JobDetail => {
    const events: JobEvent[] = moves.map(([type, to], i) => ({ seq: i + 1, type, from: i === 0 ? null : moves[i - 1]![1], to, at: at(i + 1), data: {} }));
    const last = events.at(-1)!;
    return { id: 'J', type: 'demo.echo', queue: 'default', state: last.to, version: last.seq, attempt: 1, maxAttempts: 3, payload: null, result: null, lastError: null, runAt: last.at, createdAt: at(1), updatedAt: last.at, events } as JobDetail;
  };
  const cancelled = job(['SUBMITTED', 'pending'], ['CANCEL', 'cancelled']);
  assert.deepEqual(endedAtStart(cancelled, { jobId: 'J' }), { ...cancelled.events[1]!, jobId: 'J', jobType: 'demo.echo', queue: 'default' });
  assert.equal(endedAtStart(job(['SUBMITTED', 'pending'], ['DISPATCH', 'published']), { jobId: 'J' }), null, 'not ended');
  assert.equal(endedAtStart(cancelled, { jobId: 'J', states: ['pending', 'done'] }), null, '--state not naming its end');
  assert.equal(endedAtStart(cancelled, { jobId: 'J', states: ['cancelled'] })?.to, 'cancelled');
  assert.equal(endedAtStart(cancelled, { jobId: 'J', type: 'demo.other' }), null, 'another type');
  assert.equal(endedAtStart(cancelled, { jobId: 'J', queue: 'other' }), null, 'another queue');
});
