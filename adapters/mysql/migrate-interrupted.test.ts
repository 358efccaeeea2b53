/**
 * A MySQL migration cut short. DDL commits on its own there, so a process
 * that dies in the middle of a migration (killed, the server gone) leaves the
 * statements before that point applied and no ledger row: the next start runs
 * the whole migration again (adapters/mysql/migrate.ts). Every migration must
 * then complete, whichever statement it died after, and leave the schema a
 * migration never interrupted leaves.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { loadMigrations } from '../sql/migrations.js';
import { createTestDatabase, requireMysql } from '../../tests/helpers/mysql.js';
import { createMysqlStore } from './index.js';
import { migrateMysql, MYSQL_MIGRATIONS_DIR } from './migrate.js';

const clock = { now: () => Date.now() };
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const fileOf = (m: { version: number; name: string }): string => `${String(m.version).padStart(4, '0')}_${m.name}.sql`;

/** Every table's definition, its lines sorted (an index made again after a rerun is listed last), without the AUTO_INCREMENT counter. */
async function schemaOf(pool: Pool): Promise<Map<string, string>> {
  const [tables] = await pool.query<RowDataPacket[]>(
    "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name <> 'schema_migrations' ORDER BY table_name");
  const out = new Map<string, string>();
  for (const { t } of tables) {
    const [[row]] = await pool.query<RowDataPacket[]>(`SHOW CREATE TABLE \`${String(t)}\``);
    const text = String(row!['Create Table']).replace(/ AUTO_INCREMENT=\d+/, '');
    out.set(String(t), text.split('\n').map((l) => l.trim().replace(/,$/, '')).sort().join('\n'));
  }
  return out;
}

test('a MySQL migration that died after any of its statements completes at the next start, leaving the schema of one never cut short', { timeout: 300_000 }, async (t) => {
  if (!(await requireMysql())) return t.skip('MariaDB not reachable');
  const all = loadMigrations(MYSQL_MIGRATIONS_DIR);
  const cut = await createTestDatabase();
  const whole = await createTestDatabase();
  const cutStore = await createMysqlStore({ url: cut.url, poolSize: 2 });
  const wholeStore = await createMysqlStore({ url: whole.url, poolSize: 2 });
  try {
    const dir = mkdtempSync(join(tmpdir(), 'ats-mig-cut-'));
    dirs.push(dir);
    let cuts = 0;
    for (const m of all) {
      // Died after its first i statements, at each start in turn: each rerun runs those again, then one more.
      for (let i = 1; i < m.statements.length; i++) {
        writeFileSync(join(dir, fileOf(m)), m.statements.slice(0, i).map((s) => `${s};\n`).join(''));
        await migrateMysql(cutStore.pool, clock, dir);
        await cutStore.pool.query('DELETE FROM schema_migrations WHERE version = ?', [m.version]);
        cuts++;
      }
      writeFileSync(join(dir, fileOf(m)), m.sql);
      await assert.doesNotReject(migrateMysql(cutStore.pool, clock, dir), `migration ${fileOf(m)} run again after dying part way`);
    }
    assert.ok(cuts >= 20, `every migration of several statements is cut after each (${cuts} cuts)`);
    await wholeStore.migrate();
    const [cutSchema, wholeSchema] = [await schemaOf(cutStore.pool), await schemaOf(wholeStore.pool)];
    assert.deepEqual([...cutSchema.keys()], [...wholeSchema.keys()]);
    for (const [table, text] of wholeSchema) assert.equal(cutSchema.get(table), text, `table ${table}`);
    const [ledger] = await cutStore.pool.query<RowDataPacket[]>('SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(ledger.map((r) => Number(r.version)), all.map((m) => m.version));
  } finally {
    await cutStore.close();
    await wholeStore.close();
    await cut.drop();
    await whole.drop();
  }
});
