/**
 * better-sqlite3's native module: its install script builds (or downloads)
 * it for the node that runs the install, and its JavaScript loads it on the
 * first database it opens. An install that skipped the script (`npm install
 * --ignore-scripts`, an npm that did not allow it) or ran under another node
 * leaves a package that imports but cannot open any database: the first open
 * then fails with `bindings`' list of the paths it tried, or node's
 * NODE_MODULE_VERSION mismatch. `sqliteNativeProblem` opens an in-memory
 * database (which fails for no other reason) to tell that apart from a
 * problem of the data folder.
 */
import Database from 'better-sqlite3';

let checked: string | null | undefined;

/** Null once an in-memory database opens; else the first line of why not (`Could not locate the bindings file.`). */
export function sqliteNativeProblem(): string | null {
  if (checked !== undefined) return checked;
  try {
    new Database(':memory:').close();
    checked = null;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    checked = (message.split('\n')[0] ?? '').replace(/\s*Tried:\s*$/, '').trim() || 'no message';
  }
  return checked;
}
