/**
 * The sync the embedded store's group commit runs (group-sync.ts): an
 * `fdatasync` of the database's write-ahead log (`<file>-wal`), on libuv's
 * thread pool. The log is opened once and again only if SQLite replaced the
 * file (it deletes it when the last connection closes); each newly opened
 * log's folder is synced once too, so a new file's name survives a power cut
 * with its frames (what SQLite itself does the first time it syncs a log it
 * created).
 */
import { closeSync, fsyncSync, openSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface WalFile {
  /** Makes everything written to the log so far durable. */
  sync(): Promise<void>;
  /** Closes the handle (after the last sync). */
  release(): Promise<void>;
}

/** The log of the database `file` (a path on disk, not ':memory:'). */
export function walFile(file: string): WalFile {
  const path = `${file}-wal`;
  let handle: FileHandle | null = null;
  let inode = -1;

  const current = async (): Promise<FileHandle | null> => {
    let ino: number;
    try {
      ino = statSync(path).ino;
    } catch (err) {
      // No log: nothing is waiting in one (SQLite holds it while a connection is open).
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (handle && ino === inode) return handle;
    await handle?.close();
    handle = await open(path, 'r');
    inode = (await handle.stat()).ino;
    syncFolder(dirname(path));
    return handle;
  };

  return {
    sync: async () => {
      await (await current())?.datasync();
    },
    release: async () => {
      await handle?.close();
      handle = null;
    },
  };
}

function syncFolder(folder: string): void {
  const fd = openSync(folder, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
