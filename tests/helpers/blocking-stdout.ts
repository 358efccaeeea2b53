/**
 * Preloaded into every process of `npm test` (scripts/test.sh): the runner and
 * each test file's process. A test file's process sends its report to the
 * runner through a pipe, and Node writes to a full pipe asynchronously;
 * `--test-force-exit` then ends the process without waiting for those writes,
 * and the report arrives cut short: tests missing from the counts, a failure
 * without its name ("test failed" for the whole file). Blocking writes finish
 * before the next line runs, so nothing is left in a queue at the exit.
 */
const handle = (process.stdout as unknown as { _handle?: { setBlocking?: (blocking: boolean) => number } })._handle;
handle?.setBlocking?.(true);
