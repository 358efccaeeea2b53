/**
 * The cluster id `scripts/kafka/kafka.sh start` formats a fresh broker with:
 * never one starting with '-', which Kafka's storage tool reads as an option
 * (and refuses to format: the broker does not start). One random draw in 64
 * starts so; a `head` that gives such bytes first shows the id drawn again.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Kafka's Uuid as a string: URL-safe base64 of 16 bytes, no padding. */
const KAFKA_UUID = /^[A-Za-z0-9_-]{22}$/;

function clusterIds(n: number, env: NodeJS.ProcessEnv = process.env): string[] {
  const r = spawnSync('bash', ['scripts/kafka/kafka.sh', 'cluster-ids', String(n)], { cwd: root, env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

it('draws the id again when the random bytes make it start with "-"', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ats-cluster-id-'));
  try {
    // 0xF8 bytes encode as "-Pj4…"; the second draw gives 0x01 bytes ("AQEB…").
    const fake = join(dir, 'head');
    writeFileSync(fake, `#!/bin/sh
n=$(cat "$FAKE_HEAD_STATE" 2>/dev/null || echo 0)
echo $((n + 1)) > "$FAKE_HEAD_STATE"
if [ "$n" = 0 ]; then printf '${'\\370'.repeat(16)}'; else printf '${'\\001'.repeat(16)}'; fi
`);
    chmodSync(fake, 0o755);
    const state = join(dir, 'draws');
    const [id] = clusterIds(1, { ...process.env, PATH: `${dir}:${process.env.PATH}`, FAKE_HEAD_STATE: state });
    assert.equal(id, 'AQEBAQEBAQEBAQEBAQEBAQ');
    assert.equal(readFileSync(state, 'utf8').trim(), '2', 'two draws: the first made an id starting with "-"');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('gives ids of Kafka\'s form, none starting with "-"', () => {
  const ids = clusterIds(20);
  assert.equal(ids.length, 20);
  for (const id of ids) {
    assert.match(id, KAFKA_UUID);
    assert.ok(!id.startsWith('-'), id);
  }
  assert.equal(new Set(ids).size, 20);
});
