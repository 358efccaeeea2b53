/**
 * Runs an in-process CLI command with what it writes captured: the stdout
 * lines naming `marker` (the command's own output, picked out by a value it
 * prints) and all of stderr; anything else on stdout goes on (the test
 * runner's own output).
 */
export async function capturing<T>(marker: string, fn: (seen: { stdout: string; stderr: string }) => Promise<T>): Promise<{ code: T; stdout: string; stderr: string }> {
  const seen = { stdout: '', stderr: '' };
  const { stdout, stderr } = process;
  const writeOut = stdout.write;
  const writeErr = stderr.write;
  stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    if (!String(chunk).includes(marker)) return writeOut.call(stdout, chunk, ...rest);
    seen.stdout += String(chunk);
    return true;
  }) as typeof stdout.write;
  stderr.write = ((chunk: string | Uint8Array) => {
    seen.stderr += String(chunk);
    return true;
  }) as typeof stderr.write;
  try {
    return { code: await fn(seen), ...seen };
  } finally {
    stdout.write = writeOut;
    stderr.write = writeErr;
  }
}
