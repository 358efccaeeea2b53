/**
 * Numbered, append-only migration files (`0001_init.sql`, `0002_...`), read
 * from a dialect's `migrations/` folder. Never edit a file that has shipped:
 * add the next number.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../../engine/logger.js';
import type { Logger } from '../../engine/ports.js';

export interface Migration {
  version: number;
  name: string;
  /** The whole file. */
  sql: string;
  /** The file split into statements (MySQL's driver runs one at a time). */
  statements: string[];
}

const FILE = /^(\d{4})_([\w-]+)\.sql$/;

/**
 * A migration whose statement failed on what the database holds (another
 * program's tables of the same names), not on an outage: the message names
 * the migration (`before` and `where` say more of the place, `after` what
 * stays), and the driver's `code` is kept.
 */
export class MigrationFailed extends Error {
  readonly code: string | undefined;
  constructor(m: Migration, err: unknown, words: { before?: string; where?: string; after?: string } = {}) {
    const file = `${String(m.version).padStart(4, '0')}_${m.name}`;
    const { before = '', where = '', after = '' } = words;
    super(`${before}migration ${file} failed${where}: ${(err as Error | null)?.message ?? String(err)}${after}`, { cause: err });
    this.name = 'MigrationFailed';
    const code = (err as { code?: unknown } | null)?.code;
    this.code = typeof code === 'string' ? code : undefined;
  }
}

/** The migrations in `dir`, by version. Throws on two files with one number. */
export function loadMigrations(dir: string): Migration[] {
  const migrations = readdirSync(dir)
    .map((file) => ({ file, m: FILE.exec(file) }))
    .filter((x): x is { file: string; m: RegExpExecArray } => x.m !== null)
    .map(({ file, m }) => {
      const sql = readFileSync(join(dir, file), 'utf8');
      return { version: Number(m[1]), name: m[2]!, sql, statements: splitStatements(sql) };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (i > 0 && migrations[i - 1]!.version === m.version) throw new Error(`two migrations numbered ${m.version} in ${dir}`);
  });
  return migrations;
}

/**
 * Split on `;` at the end of a line, after dropping `--` comment lines.
 * Enough for our DDL files; a `;` at the end of a line inside a string
 * literal would break it (do not write one).
 */
export function splitStatements(sql: string): string[] {
  return sql
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Migrations not yet in `applied`. */
export const pending = (all: readonly Migration[], applied: Iterable<number>): Migration[] => {
  const done = new Set(applied);
  return all.filter((m) => !done.has(m.version));
};

/**
 * Applied migrations this code does not have: the database was migrated by a
 * newer build (a rollback, or an older process of a rolling deployment). It
 * still starts, as additive migrations leave the older code working, but
 * says so: a failure that follows is then no mystery.
 */
export const unknownApplied = (all: readonly Migration[], applied: Iterable<number>): number[] => {
  const known = new Set(all.map((m) => m.version));
  return [...applied].filter((v) => !known.has(v)).sort((a, b) => a - b);
};

/** Logs (a warning) the `unknownApplied` versions, if any. */
export function warnOfNewerSchema(all: readonly Migration[], unknown: readonly number[], logger: Logger | undefined): void {
  if (unknown.length === 0) return;
  (logger ?? createLogger('info')).warn(
    'the database holds migrations this build does not know (a newer build migrated it); this build runs on it as it is',
    { newestKnown: all.length > 0 ? all[all.length - 1]!.version : 0, unknownApplied: unknown },
  );
}

/** The columns of the scheduler's own `schema_migrations` (CREATE_SCHEMA_MIGRATIONS). */
const LEDGER_COLUMNS = ['version', 'name', 'applied_at'] as const;

/** The tables the migrations create (`CREATE TABLE IF NOT EXISTS name`), by name. */
export function tablesCreatedBy(all: readonly Migration[]): string[] {
  const names = new Set<string>();
  for (const m of all) for (const [, name] of m.sql.matchAll(/CREATE TABLE IF NOT EXISTS `?(\w+)`?/gi)) names.add(name!);
  return [...names].sort();
}

/** What a database holds before the first migration: its tables, and the columns of its `schema_migrations` if it has one. */
export interface DatabaseTables {
  tables: readonly string[];
  /** Null: no `schema_migrations` table. */
  ledgerColumns: readonly string[] | null;
}

/**
 * Why a database is another program's, or null when the scheduler may migrate
 * it. Its migrations never ran there when it has no `schema_migrations`: a
 * table of one of the scheduler's names is then someone else's (`CREATE TABLE
 * IF NOT EXISTS` would pass over it, and a later statement fail on it, half
 * of the schema made). A `schema_migrations` of other columns is another
 * migration tool's ledger. Tables of other names are left as they are.
 */
export function foreignTables(all: readonly Migration[], db: DatabaseTables): string | null {
  const lower = (names: readonly string[]) => new Set(names.map((n) => n.toLowerCase()));
  if (db.ledgerColumns !== null) {
    const has = lower(db.ledgerColumns);
    const missing = LEDGER_COLUMNS.filter((c) => !has.has(c));
    return missing.length === 0 ? null
      : `its table schema_migrations is not the scheduler's (it has no column ${missing.join(', ')}: another migration tool's)`;
  }
  const present = lower(db.tables);
  const clash = tablesCreatedBy(all).filter((t) => present.has(t));
  return clash.length === 0 ? null
    : `it holds ${clash.length === 1 ? 'a table' : 'tables'} named as the scheduler's (${clash.join(', ')}) and no record of the scheduler's migrations (schema_migrations)`;
}
