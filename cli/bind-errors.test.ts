/**
 * A port of a setting that cannot be bound: the failure names the setting to
 * change (node's own message names neither PORT nor HOST), and keeps node's
 * code; what is not about the settings passes as it is.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { bindingPort } from './compose.js';

const failing = (code: string, message: string) => async (): Promise<never> => {
  throw Object.assign(new Error(message), { code });
};

async function refusal(setting: 'port' | 'metricsPort', port: number, host: string, code: string, message: string): Promise<Error & { code?: string }> {
  const err = await bindingPort(setting, port, host, failing(code, message)).then(() => assert.fail('bound'), (e: unknown) => e as Error & { code?: string });
  assert.equal(err.code, code, 'the code stays node\'s');
  return err;
}

it('names PORT or ATS_METRICS_PORT for a port in use or one below 1024 without the privilege, HOST for an address not of this machine or a name that does not resolve', async () => {
  assert.match((await refusal('port', 3000, '127.0.0.1', 'EADDRINUSE', 'listen EADDRINUSE: address already in use 127.0.0.1:3000')).message,
    /^PORT \(--port\) 3000 is in use on 127\.0\.0\.1 /);
  assert.match((await refusal('port', 80, '127.0.0.1', 'EACCES', 'listen EACCES: permission denied 127.0.0.1:80')).message,
    /^PORT \(--port\) 80 may not be listened on \(listen EACCES: permission denied 127\.0\.0\.1:80\): a port below 1024 needs privileges; set PORT to 1024 or above$/);
  assert.match((await refusal('metricsPort', 443, '127.0.0.1', 'EACCES', 'listen EACCES: permission denied 127.0.0.1:443')).message,
    /^ATS_METRICS_PORT \(--metrics-port\) 443 may not be listened on .*set ATS_METRICS_PORT to 1024 or above$/);
  assert.match((await refusal('port', 3000, '192.0.2.1', 'EADDRNOTAVAIL', 'listen EADDRNOTAVAIL: address not available 192.0.2.1')).message,
    /^HOST \(--host\) 192\.0\.2\.1 is not an address of this machine \(listen EADDRNOTAVAIL: .*\): set HOST to one of its addresses, or to 0\.0\.0\.0 or :: for all of them$/);
  assert.match((await refusal('metricsPort', 9464, 'nohost.invalid', 'ENOTFOUND', 'getaddrinfo ENOTFOUND nohost.invalid')).message,
    /^HOST \(--host\) nohost\.invalid does not resolve \(getaddrinfo ENOTFOUND nohost\.invalid\): set HOST to an address or a name of this machine$/);
  // Anything else passes as it is.
  const other = Object.assign(new Error('boom'), { code: 'EIO' });
  await assert.rejects(bindingPort('port', 3000, '127.0.0.1', async () => Promise.reject(other)), (e) => e === other);
});
