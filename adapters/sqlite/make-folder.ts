/**
 * A folder and the parents it lacks, made one level at a time. Node's
 * `mkdirSync(path, { recursive: true })` never returns on a file system that
 * answers ENOENT for a folder whose parent exists (procfs, sysfs: `/proc/x`):
 * it makes the parent (there already), tries again, gets ENOENT again, without
 * end. Here each level is tried again once, after its parent is made; an
 * error past that is thrown.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export function makeFolder(path: string): void {
  const dir = resolve(path);
  try {
    mkdirSync(dir);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && isFolder(dir)) return; // there already (or made by another process meanwhile)
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
  }
  makeFolder(dirname(dir));
  try {
    mkdirSync(dir);
  } catch (err) {
    if (!((err as NodeJS.ErrnoException).code === 'EEXIST' && isFolder(dir))) throw err;
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
