/**
 * How a client command tells a failure (`report`): what the server said (an
 * error's code and message, a proxy's page, a network reason) is printed on
 * one line with its control characters and bidi overrides escaped, so no
 * terminal sequence it holds runs and no line of its own is faked.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ApiError, UnreachableError, type ApiErrorCode } from '../../client/index.js';
import { waitOut } from './follow.js';
import { getCommand, getSpec } from './get.js';
import { report } from './run.js';

/** What `fn` writes to stderr (and its return value). */
async function stderrOf<T>(fn: () => T | Promise<T>): Promise<{ text: string; value: T }> {
  const write = process.stderr.write.bind(process.stderr);
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stderr.write;
  try {
    const value = await fn();
    return { text, value };
  } finally {
    process.stderr.write = write;
  }
}

/** ESC (a terminal's control sequences: clear the screen, a colour), a newline that fakes a line, and a right-to-left override. */
const HOSTILE = 'bad \u001b[2J\u001b[31mred\nATS_ERR_OK: all fine \u202Eevil';
const ESCAPED = 'bad \\u001b[2J\\u001b[31mred\\nATS_ERR_OK: all fine \\u202eevil';

/** No raw control character, line separator or bidi control in `text` but its final newline. */
function assertInert(text: string): void {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  assert.doesNotMatch(body, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/, JSON.stringify(text));
}

describe('report: what the server said, on one line and inert', () => {
  test('an API error: its code and message', async () => {
    const e = new ApiError(400, `ATS_ERR_\u001b[31mX\u202E` as ApiErrorCode, HOSTILE);
    const { text, value } = await stderrOf(() => report(e, getSpec, 'http://127.0.0.1:1'));
    assert.equal(value, 1);
    assertInert(text);
    assert.equal(text, `ATS_ERR_\\u001b[31mX\\u202e: ${ESCAPED}\n`);
  });

  test('a network reason (as TLS or DNS words it, naming what the peer sent)', async () => {
    const e = new UnreachableError('http://127.0.0.1:1', `certificate names \u001b]0;pwned\u0007 \u202Eevil`);
    const { text, value } = await stderrOf(() => report(e, getSpec, 'http://127.0.0.1:1'));
    assert.equal(value, 1);
    // Two lines of the CLI's own: the reason on the first, the hint on the second.
    const [first, second, ...rest] = text.split('\n');
    assert.deepEqual(rest, ['']);
    assertInert(first!);
    assertInert(second!);
    assert.ok(first!.includes('certificate names \\u001b]0;pwned\\u0007 \\u202eevil'), first);
  });

  test('an answer of a shape the command did not expect', async () => {
    const { text, value } = await stderrOf(() => report(new Error(HOSTILE), getSpec, 'http://127.0.0.1:1'));
    assert.equal(value, 1);
    assertInert(text);
    assert.equal(text, `ats: unexpected answer from http://127.0.0.1:1: ${ESCAPED}\n`);
  });

  describe('from a server', () => {
    let server: Server;
    let url: string;
    before(async () => {
      server = createServer((req, res) => {
        if (req.url?.includes('proxy')) {
          // A proxy's page (no JSON): its text is the message.
          res.writeHead(418, { 'content-type': 'text/html' }).end(`<h1>${HOSTILE}</h1>`);
          return;
        }
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'ATS_ERR_NOT_FOUND', message: HOSTILE }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    test('`ats get` of an error answer, and of a page that is not JSON', async () => {
      const api = await stderrOf(() => getCommand(['01ABC', '--url', url], {}));
      assert.equal(api.value, 1);
      assertInert(api.text);
      assert.equal(api.text, `ATS_ERR_NOT_FOUND: ${ESCAPED}\n`);
      const page = await stderrOf(() => getCommand(['proxy', '--url', url], {}));
      assert.equal(page.value, 1);
      assertInert(page.text);
      assert.equal(page.text, `HTTP_418: <h1>${ESCAPED}</h1>\n`);
    });
  });
});

describe('retry notices (ats watch, ats submit --wait and --count): what the server said, on one line and inert', () => {
  test('a 503, a 429 and an unreachable server, as the notice of the wait before the next try', () => {
    const errors = [
      new ApiError(503, 'ATS_ERR_STORE_UNAVAILABLE', HOSTILE),
      new ApiError(429, `ATS_ERR_\u001b[31mX` as ApiErrorCode, HOSTILE),
      new UnreachableError('http://127.0.0.1:1', `certificate names \u001b]0;pwned\u0007 \u202Eevil`),
    ];
    for (const e of errors) {
      const wait = waitOut(e, 1000, 0);
      assert.ok(wait, e.message);
      assertInert(wait.notice);
    }
    assert.equal(waitOut(errors[0], 1000, 0)!.notice, `ATS_ERR_STORE_UNAVAILABLE: ${ESCAPED}; still trying`);
  });
});
