/** The database clock: offset measured halfway through the round trip, shortest round trip kept. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { DbClock, measureOffset } from './db-clock.js';
import type { Clock } from './ports.js';

/** A host clock that advances only when told; sleeps resolve at once. */
function manualClock(start: number): Clock & { t: number } {
  const c = { t: start, now: () => c.t, sleep: async () => undefined };
  return c;
}

it('measures the offset halfway through the round trip and keeps the shortest round trip', async () => {
  const host = manualClock(1_000_000);
  const trips = [40, 10, 30];
  // The database runs 60 000 ms ahead of the host; it answers halfway through each trip.
  const dbNow = async () => {
    const trip = trips.shift()!;
    host.t += trip / 2;
    const db = host.t + 60_000;
    host.t += trip / 2;
    return db;
  };
  const m = await measureOffset(host, dbNow, 3);
  assert.deepEqual(m, { offsetMs: 60_000, rttMs: 10 });
});

it('now() is the host clock plus the offset; a failed re-sync keeps the last offset', async () => {
  const host = manualClock(5_000);
  let answer: () => Promise<number> = async () => host.t - 60_000;
  const clock = new DbClock({ base: host, dbNow: () => answer(), samples: 1 });
  assert.equal(clock.now(), 5_000, 'before the first sync: the host clock');
  await clock.sync();
  assert.equal(clock.now(), 5_000 - 60_000);
  host.t += 1000;
  assert.equal(clock.now(), 6_000 - 60_000);
  answer = async () => { throw new Error('database down'); };
  await assert.rejects(clock.sync(), /database down/);
  assert.equal(clock.now(), 6_000 - 60_000, 'the last offset stays');
});

it('a step of the host time of day between measurements does not move now(): the offset is of the host clock that does not step', async () => {
  // `now` is the host's time of day, `elapsed` its clock that steps do not move.
  const host = { day: 1_000_000, up: 5_000, now: () => host.day, elapsed: () => host.up, sleep: async () => undefined };
  const db = { t: 2_000_000 };
  const clock = new DbClock({ base: host, dbNow: async () => db.t, samples: 1 });
  await clock.sync();
  assert.equal(clock.now(), 2_000_000);
  host.day += 1000;
  host.up += 1000;
  db.t += 1000;
  assert.equal(clock.now(), 2_001_000, 'both host clocks ran on');
  host.day += 600_000; // an NTP correction
  assert.equal(clock.now(), 2_001_000, 'the time of day stepped: the database time did not');
  host.day -= 1_200_000;
  assert.equal(clock.now(), 2_001_000);
  await clock.sync();
  assert.equal(clock.now(), 2_001_000, 'measured again: the same');
});

it('after a suspend (the time of day and the database ran on, the monotonic clock did not), the offset is measured again at once', async () => {
  const host = { day: 1_000_000, up: 5_000, now: () => host.day, elapsed: () => host.up, sleep: async () => undefined };
  const db = { t: 2_000_000 };
  let measured = 0;
  const clock = new DbClock({ base: host, dbNow: async () => { measured++; return db.t; }, samples: 1 });
  await clock.sync();
  host.day += 500;
  host.up += 500;
  db.t += 500;
  assert.equal(clock.now(), 2_000_500);
  assert.equal(measured, 1, 'clocks that ran alike: no measurement out of turn');
  // Suspended 10 minutes (Linux's monotonic clock does not count it).
  host.day += 600_000;
  db.t += 600_000;
  clock.now(); // sees the host clocks 10 minutes apart: measures again
  await new Promise((r) => setImmediate(r));
  assert.equal(measured, 2);
  assert.equal(clock.now(), 2_600_500, 'the database time again');
  assert.equal(measured, 2, 'measured once');
});

it('a measurement out of turn that fails keeps the offset, and is not tried again at every read', async () => {
  const host = { day: 1_000_000, up: 5_000, now: () => host.day, elapsed: () => host.up, sleep: async () => undefined };
  let answer: () => Promise<number> = async () => 2_000_000;
  let tries = 0;
  const clock = new DbClock({ base: host, dbNow: () => { tries++; return answer(); }, samples: 1 });
  await clock.sync();
  answer = async () => { throw new Error('database down'); };
  host.day += 600_000;
  clock.now();
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 5; i++) assert.equal(clock.now(), 2_000_000);
  await new Promise((r) => setImmediate(r));
  assert.equal(tries, 2, 'the first sync and one try out of turn');
});

it('a host whose time of day is off from the database\'s by more than a second says so in the log, once until it changes', async () => {
  const host = { day: 1_120_000, up: 5_000, now: () => host.day, elapsed: () => host.up, sleep: async () => undefined };
  const db = { t: 1_000_000 };
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push({ level, msg, ...(fields ? { fields } : {}) });
  const logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
  const clock = new DbClock({ base: host, dbNow: async () => db.t, samples: 1, logger });
  await clock.sync();
  const said = () => lines.filter((l) => l.level === 'warn' && /time of day/.test(l.msg));
  assert.equal(said().length, 1, 'a host 120 s ahead of the database is named in the log');
  assert.equal(said()[0].fields?.hostAheadMs, 120_000);
  await clock.sync();
  assert.equal(said().length, 1, 'the same gap measured again: not said again');
  host.day -= 240_000; // the host's clock now runs 120 s behind
  await clock.sync();
  assert.equal(said().length, 2);
  assert.equal(said()[1].fields?.hostAheadMs, -120_000);

  // A host within a second of the database's says nothing.
  const inTime = { day: 1_000_300, up: 5_000, now: () => inTime.day, elapsed: () => inTime.up, sleep: async () => undefined };
  const quiet: string[] = [];
  const note = (msg: string) => quiet.push(msg);
  await new DbClock({ base: inTime, dbNow: async () => db.t, samples: 1, logger: { debug: note, info: note, warn: note, error: note } }).sync();
  assert.deepEqual(quiet, []);
});

it('re-syncs that fail (the database down) are told as an outage: the first, a line a minute with the failures, then once when measuring works again', async () => {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  const logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
  // A host clock whose sleeps end when the test says: each moves the time on by its length.
  const host = { t: 0, now: () => host.t, sleep: (ms: number, signal?: AbortSignal) => new Promise<void>((resolve, reject) => {
    waking.push(() => { host.t += ms; resolve(); });
    signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  }) };
  const waking: (() => void)[] = [];
  let down = false;
  const clock = new DbClock({ base: host, dbNow: async () => { if (down) throw new Error('connect ECONNREFUSED 127.0.0.1:3306'); return host.t; }, samples: 1, resyncMs: 20_000, logger });
  await clock.sync();
  clock.start();
  const resync = async () => {
    while (waking.length === 0) await new Promise((r) => setImmediate(r));
    waking.shift()!();
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  try {
    down = true;
    for (let i = 0; i < 7; i++) await resync(); // 7 failed re-syncs, 20 s apart: 2 minutes
    const failed = lines.filter((l) => l.msg === 'clock: measuring the database clock failed, keeping the last offset');
    assert.deepEqual(failed.map((l) => [l.level, l.fields!.failures]), [['warn', 1], ['warn', 4], ['warn', 7]], 'the first, then one a minute with the count');
    assert.match(String(failed[0]!.fields!.err), /ECONNREFUSED 127.0.0.1:3306/, 'it names what failed');
    down = false;
    await resync();
    assert.deepEqual(lines.filter((l) => l.level === 'info').map((l) => [l.msg, l.fields]), [['clock: measuring the database clock works again', { failures: 7 }]]);
    await resync();
    assert.equal(lines.length, 4, 'nothing more once it works');
  } finally {
    await clock.stop();
  }
});
