/**
 * Whether the api role may start as configured, and the one line it says
 * about access at start-up. Without keys the API is open, which is for local
 * development only: bound to any other interface than loopback with no key,
 * the start is refused unless ATS_AUTH=off says so explicitly.
 */
import { isLoopbackHost } from '../engine/auth.js';
import { AtsError } from '../engine/errors.js';
import type { KeyStore } from '../engine/ports.js';
import type { Config } from './config.js';

export interface AccessLine {
  level: 'info' | 'warn';
  message: string;
}

/** Throws ATS_ERR_CONFIG (exit 2) when the API would be open on a non-loopback interface; else the line to log. */
export async function checkAccess(config: Pick<Config, 'host' | 'security'>, keys: Pick<KeyStore, 'countActiveKeys'>): Promise<AccessLine> {
  const { auth } = config.security;
  const loopback = isLoopbackHost(config.host);
  if (auth === 'off') {
    return { level: 'warn', message: `ats: API keys are off (ATS_AUTH=off): anyone who reaches ${config.host} acts as the default tenant with every scope` };
  }
  const keysExist = (await keys.countActiveKeys()) > 0;
  if (keysExist) return { level: 'info', message: 'ats: API keys required (Authorization: Bearer <key>)' };
  if (auth === 'on') {
    return { level: 'warn', message: 'ats: API keys required (ATS_AUTH=on) and none exists: every request is refused until one is made with `ats keys create`' };
  }
  if (!loopback) {
    throw new AtsError(
      'ATS_ERR_CONFIG',
      `HOST (--host) is ${config.host}, not loopback, and no API key exists: create one with ` +
        '`ats keys create --tenant default --scopes submit,read,operate,admin --name admin`, or set ATS_AUTH=off (--auth off) to serve without keys',
    );
  }
  if (config.security.allowedHosts.length > 0) {
    // Names to be reached by: a proxy exposes it, so it is never open.
    return { level: 'warn', message: 'ats: API keys required (ATS_ALLOWED_HOSTS names hosts to be reached by) and none exists: every request is refused until one is made with `ats keys create`' };
  }
  if (config.security.trustProxy.length > 0) {
    // A proxy forwards other clients' requests: it is never open either.
    return { level: 'warn', message: 'ats: API keys required (ATS_TRUST_PROXY names proxies that forward other clients) and none exists: every request is refused until one is made with `ats keys create`' };
  }
  return { level: 'info', message: 'ats: API open without keys (loopback only, for local development): `ats keys create` makes the first key and keys are required from then on' };
}
