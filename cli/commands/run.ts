/**
 * What every client command shares: `--url` / `ATS_URL`, the API key from
 * `ATS_API_KEY`, `--help`, and the
 * exit codes — 0 success, 1 the server said no or could not be reached
 * (`code: message` on stderr), 2 a wrong command line (the usage on stderr).
 */
import { ApiError, AtsClient, UnreachableError } from '../client.js';
import { NodeWebSocket } from './stream.js';
import { parse, str, UsageError, type OptionsConfig, type Parsed } from './args.js';
import { oneLine } from './output.js';

export const DEFAULT_URL = 'http://localhost:3000';

/** Same shape as the entries of `COMMANDS` in cli/main.ts. */
export type Command = (args: readonly string[], env: Record<string, string | undefined>) => Promise<number>;

export interface CommandSpec {
  /** One line per form, without the leading "usage: ". */
  usage: string;
  /** Option lines shown under the usage. */
  details?: string[];
  options: OptionsConfig;
  positionals: readonly [number, number];
}

export interface Context extends Parsed {
  client: AtsClient;
  env: Record<string, string | undefined>;
}

const COMMON: OptionsConfig = { url: { type: 'string' }, help: { type: 'boolean', short: 'h' } };
const COMMON_HELP = '--url URL  the server (default: $ATS_URL or ' + DEFAULT_URL + '); the API key, when the server requires one: $ATS_API_KEY';

export const out = (text: string): void => void process.stdout.write(text + '\n');
export const err = (text: string): void => void process.stderr.write(text + '\n');

/** How often a command's request is tried again after a timeout, a network error or a 503. */
const RETRIES = 3;

/** The usage text of a command. */
export function usageOf(spec: CommandSpec): string {
  const lines = spec.usage.split('\n').map((l, i) => (i === 0 ? `usage: ${l}` : `       ${l}`));
  return [...lines, ...(spec.details ?? []).map((d) => `  ${d}`), `  ${COMMON_HELP}`].join('\n');
}

/**
 * The server URL from `--url`, else `ATS_URL` (only spaces: unset, as for the
 * API key), else the default; must be http(s). The spaces around it are no
 * part of it: `new URL()` drops them but fetch does not, so a URL read from a
 * file (ending in a newline) was reported as an unreachable server. A query
 * or a fragment is refused: the API's paths are added after the URL.
 */
export function serverUrl(values: Parsed['values'], env: Record<string, string | undefined>): string {
  const text = (str(values, 'url') ?? (env.ATS_URL?.trim() || DEFAULT_URL)).trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`the server URL "${text}" is not a URL (e.g. ${DEFAULT_URL})`);
  }
  // Not echoed: a password would land in the terminal and the logs, and fetch refuses to send one in a URL anyway.
  if (url.username || url.password) {
    throw new UsageError(`the server URL must not hold a user or password (${url.protocol}//${url.host} with credentials): give the API key in ATS_API_KEY`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`the server URL must be http:// or https://, got "${text}"`);
  // The API's paths go after the URL: `http://h/?x=1` would send `GET /?x=1/v1/jobs` (a page that is not the API's).
  const extra = text.search(/[?#]/);
  if (extra >= 0) {
    throw new UsageError(`the server URL must not hold a query or a fragment (${text.slice(extra)}): give its scheme, host, port and path only, e.g. ${DEFAULT_URL}`);
  }
  return text.replace(/\/+$/, '');
}

/** Turns a command body into a `Command` with the shared parsing and error reporting. */
export function clientCommand(spec: CommandSpec, body: (ctx: Context) => Promise<number>): Command {
  return async (args, env) => {
    let ctx: Context | undefined;
    try {
      const parsed = parse(args, { ...COMMON, ...spec.options }, [0, Infinity]);
      if (parsed.values.help) {
        out(usageOf(spec));
        return 0;
      }
      checkPositionals(parsed.positionals, spec.positionals);
      // The key only from the environment: a flag would land in the shell's history and the process list.
      const apiKey = env.ATS_API_KEY?.trim() || undefined;
      // A retry after a timeout said on stderr: a server that does not answer is waited for (30 s an attempt, 3 retries),
      // not in silence. Other failures (refused connections, 503s) are retried within seconds.
      const onRetry = (e: ApiError, n: number) => {
        if (e instanceof UnreachableError && e.reason === 'timed out') err(`ats: ${e.message}; trying again (${n} of ${RETRIES})`);
      };
      ctx = {
        ...parsed, env,
        client: new AtsClient({ url: serverUrl(parsed.values, env), WebSocket: NodeWebSocket, retries: RETRIES, onRetry, ...(apiKey ? { apiKey } : {}) }),
      };
      return await body(ctx);
    } catch (e) {
      return report(e, spec, ctx?.client.url);
    }
  };
}

function checkPositionals(positionals: readonly string[], [min, max]: readonly [number, number]): void {
  if (positionals.length < min) throw new UsageError(`missing argument${min - positionals.length > 1 ? 's' : ''}`);
  if (positionals.length > max) throw new UsageError(`unexpected argument "${positionals[max]}"`);
}

/**
 * The exit code for an error, after saying what went wrong. Once the command
 * has its client (`url`), any error but the client's is an answer of a shape
 * the command did not expect — `{}` from a server that is not ats, say — and
 * is told as that, without a stack trace. What the server or the network
 * said (a code, a message, a proxy's page, a TLS or DNS reason naming what
 * the peer sent) is printed through `oneLine`: no terminal sequence it holds
 * runs, no bidi override turns the line round, no newline fakes a line.
 */
export function report(e: unknown, spec: CommandSpec, url?: string): number {
  if (e instanceof UsageError) {
    err(`ats: ${e.message}\n${usageOf(spec)}`);
    return 2;
  }
  if (e instanceof UnreachableError) {
    err(`ats: cannot reach the ats server at ${oneLine(e.url)} (${oneLine(e.reason)}).\n` +
      `Is it running? Start one with "npx ats start", or point --url / ATS_URL at it.`);
    return 1;
  }
  // A success the client could not read (not JSON, or without the fields every answer of its kind has): not the API's.
  const unread = e instanceof ApiError && e.status >= 200 && e.status < 300;
  if (e instanceof ApiError && !unread) {
    err(`${oneLine(e.code)}: ${oneLine(e.message)}`);
    return 1;
  }
  if (url !== undefined && e instanceof Error) {
    err(`ats: unexpected answer from ${oneLine(url)}: ${oneLine(e.message)}`);
    return 1;
  }
  throw e;
}
