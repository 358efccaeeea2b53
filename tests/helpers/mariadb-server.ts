/**
 * A private MariaDB server for tests that must stop or kill the database
 * (the shared one on 3306 is never touched): its own datadir under a temp
 * dir, its own port and socket, no grant tables (root without password).
 * `kill()` / `shutdown()` stop it, `start()` brings it back on the same
 * datadir, so what was committed is still there.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';

const MARIADBD = process.env.ATS_MARIADBD ?? '/usr/sbin/mariadbd';
const INSTALL_DB = process.env.ATS_MARIADB_INSTALL_DB ?? '/usr/bin/mariadb-install-db';

export interface PrivateMariadb {
  port: number;
  /** `mysql://root@127.0.0.1:<port>` (no database). */
  url: string;
  datadir: string;
  /** Starts mariadbd on the datadir and waits until it accepts connections. */
  start(): Promise<void>;
  /** SIGKILL: no shutdown, InnoDB recovers on the next start. */
  kill(): Promise<void>;
  /** SIGTERM: a clean shutdown. */
  shutdown(): Promise<void>;
  running(): boolean;
  /** Stops the server (if running) and deletes the datadir. */
  destroy(): Promise<void>;
  /** The tail of mariadbd's error log. */
  errorLog(): string;
}

/** Creates a datadir (mariadb-install-db) for a server on `port`, started with `args` besides its own; call `start()` next. */
export function createPrivateMariadb(port: number, args: readonly string[] = []): PrivateMariadb {
  const base = mkdtempSync(join(tmpdir(), `ats-mariadb-${port}-`));
  const datadir = join(base, 'data');
  // Its own temp dir, not the machine's /tmp: once a bootstrap's temp table there was gone before
  // mariadbd deleted it ("Error on delete of '/tmp/#sql-temptable-…'") and the test failed in its hook.
  const tmp = join(base, 'tmp');
  mkdirSync(tmp);
  const install = spawnSync(INSTALL_DB, [
    '--no-defaults', `--datadir=${datadir}`, '--user=root', '--auth-root-authentication-method=normal',
    '--skip-test-db', '--skip-name-resolve', `--tmpdir=${tmp}`,
  ], { encoding: 'utf8', timeout: 120_000 });
  if (install.status !== 0) {
    rmSync(base, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed (${install.status}): ${install.stderr || install.stdout}`);
  }
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const url = `mysql://root@127.0.0.1:${port}`;

  const stopWith = async (signal: NodeJS.Signals) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };

  return {
    port, url, datadir,
    running: () => !!child && child.exitCode === null && child.signalCode === null,
    errorLog: () => log.slice(-4000),
    async start() {
      if (this.running()) return;
      child = spawn(MARIADBD, [
        '--no-defaults', `--datadir=${datadir}`, `--tmpdir=${tmp}`, `--port=${port}`, '--bind-address=127.0.0.1',
        `--socket=${join(base, 'mysqld.sock')}`, `--pid-file=${join(base, 'mysqld.pid')}`, '--user=root',
        '--skip-grant-tables', '--skip-name-resolve', '--skip-log-bin', '--innodb-buffer-pool-size=128M',
        // Survives a kill of the process (the OS keeps what was written), not of the machine: enough here.
        '--innodb-flush-log-at-trx-commit=2', '--max-connections=500', '--log-error=', ...args,
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      const c = child;
      const append = (d: Buffer) => { log = (log + d.toString()).slice(-20_000); };
      c.stdout!.on('data', append);
      c.stderr!.on('data', append);
      exited = new Promise((resolve) => c.once('exit', () => resolve()));
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (c.exitCode !== null || c.signalCode !== null) throw new Error(`mariadbd exited while starting:\n${log.slice(-3000)}`);
        try {
          const conn = await createConnection({ uri: url, connectTimeout: 1000 });
          await conn.end();
          return;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`mariadbd not ready after 60 s (${(err as Error).message}):\n${log.slice(-3000)}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
    kill: () => stopWith('SIGKILL'),
    shutdown: () => stopWith('SIGTERM'),
    async destroy() {
      await stopWith('SIGKILL');
      if (existsSync(base)) rmSync(base, { recursive: true, force: true });
    },
  };
}
