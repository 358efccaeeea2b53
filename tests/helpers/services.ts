/**
 * The rule for tests that need a real service (MariaDB, Kafka): a service
 * that is not reachable FAILS the test. Skipping is opt-in for local runs
 * (`ATS_ALLOW_SKIP=1`) and never allowed in CI (`CI=true`).
 */

/**
 * Resolves true when `probe` succeeds. When it fails: returns false only if
 * `ATS_ALLOW_SKIP=1` and `CI` is not `true` (the caller then calls
 * `t.skip('... not reachable')`); otherwise throws, naming the service and the cause.
 */
export async function requireService(name: string, probe: () => Promise<void>): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (process.env.CI !== 'true' && process.env.ATS_ALLOW_SKIP === '1') return false;
    const hint = process.env.CI === 'true' ? 'CI=true: a missing service fails the run' : 'set ATS_ALLOW_SKIP=1 to skip instead (never in CI)';
    throw new Error(`${name} is not reachable (${why}); ${hint}`, { cause: error });
  }
}
