/** What the api role says about keys at start-up, and when it refuses to start. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAtsError } from '../engine/errors.js';
import { checkAccess } from './auth-startup.js';
import { compileConfig } from './config.js';

const keys = (n: number) => ({ countActiveKeys: async () => n });
const config = (host: string, auth = 'auto') => compileConfig({ host, auth });

test('loopback without keys: open, and says so in one line naming how to require keys', async () => {
  for (const host of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.0.0.2']) {
    const line = await checkAccess(config(host), keys(0));
    assert.equal(line.level, 'info');
    assert.match(line.message, /open without keys \(loopback only/);
  }
});

test('another interface without keys: refused with ATS_ERR_CONFIG naming HOST and ATS_AUTH', async () => {
  for (const host of ['0.0.0.0', '::', '10.0.0.5', 'example.com']) {
    await assert.rejects(checkAccess(config(host), keys(0)), (e: unknown) => {
      assert.ok(isAtsError(e) && e.code === 'ATS_ERR_CONFIG');
      assert.match(e.message, new RegExp(`^HOST \\(--host\\) is ${host.replace(/\./g, '\\.')}, not loopback`));
      assert.match(e.message, /ATS_AUTH=off/);
      return true;
    });
  }
});

test('another interface with a key, or ATS_AUTH=off: starts', async () => {
  assert.equal((await checkAccess(config('0.0.0.0'), keys(1))).level, 'info');
  const off = await checkAccess(config('0.0.0.0', 'off'), keys(0));
  assert.equal(off.level, 'warn');
  assert.match(off.message, /ATS_AUTH=off/);
});

test('ATS_AUTH=on without keys: starts, warning that every request is refused', async () => {
  const line = await checkAccess(config('127.0.0.1', 'on'), keys(0));
  assert.equal(line.level, 'warn');
  assert.match(line.message, /every request is refused/);
});

test('ATS_AUTH takes auto, on or off only', () => {
  assert.throws(() => compileConfig({ auth: 'maybe' }), /ATS_AUTH \(--auth\): unknown mode "maybe"/);
});

test('loopback without keys but with ATS_ALLOWED_HOSTS: keys required, warning that every request is refused', async () => {
  const line = await checkAccess(compileConfig({ host: '127.0.0.1', allowedHosts: 'ats.example.com' }), keys(0));
  assert.equal(line.level, 'warn');
  assert.match(line.message, /ATS_ALLOWED_HOSTS.*every request is refused/);
});

test('loopback without keys but with ATS_TRUST_PROXY (a proxy forwards other clients): keys required, warning that every request is refused', async () => {
  const line = await checkAccess(compileConfig({ host: '127.0.0.1', trustProxy: '127.0.0.1' }), keys(0));
  assert.equal(line.level, 'warn');
  assert.match(line.message, /ATS_TRUST_PROXY.*every request is refused/);
});
