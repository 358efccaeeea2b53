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

/** Null once an in-memory database opens; else why not, on one line (`Could not locate the bindings file.`). */
export function sqliteNativeProblem(): string | null {
  if (checked !== undefined) return checked;
  try {
    new Database(':memory:').close();
    checked = null;
  } catch (err) {
    checked = nativeProblemText(err instanceof Error ? err.message : String(err));
  }
  return checked;
}

/**
 * The message of a native module that did not load, on one line, without
 * `bindings`' list of the paths it tried or node's advice (the caller gives
 * its own): `Could not locate the bindings file.`, or node's mismatch
 * `The module '…/better_sqlite3.node' was compiled against a different
 * Node.js version using NODE_MODULE_VERSION 108. This version of Node.js
 * requires NODE_MODULE_VERSION 115.` (whose first line alone names no cause).
 */
export function nativeProblemText(message: string): string {
  const text = message.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).join(' ');
  return text.replace(/\s*(Tried:|Please try re-compiling).*$/, '').trim() || 'no message';
}

/** Is `problem` (`nativeProblemText`) node's: a module built for another node (its NODE_MODULE_VERSION differs)? */
export function builtForAnotherNode(problem: string): boolean {
  return /NODE_MODULE_VERSION/.test(problem);
}
