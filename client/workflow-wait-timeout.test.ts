/**
 * A workflow wait's `timeoutMs` that is not a number (NaN: `Number()` of an
 * unset environment variable, say) goes to the server, which refuses it
 * with its 400, as it refuses Infinity, -1 or 2.5. The attempt's own
 * timeout is the wait's plus slack: computed from NaN it was NaN, and the
 * call threw a RangeError from the timer ("The value of "delay" is out of
 * range") before anything was sent, an error no caller can tell by its code.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, createClient } from './index.js';

const ID = '01M96C1F4QYZF8655WTP27BYWR';

/** A server that refuses every wait's timeoutMs, as the real one refuses one not in decimal digits; it records the queries. */
function refusingServer() {
  const asked: string[] = [];
  const fetch = async (input: string | URL | Request): Promise<Response> => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    asked.push(url.search);
    return new Response(JSON.stringify({ code: 'ATS_ERR_VALIDATION', message: 'querystring/timeoutMs must be an integer in decimal digits' }), {
      status: 400, headers: { 'content-type': 'application/json' },
    });
  };
  return { asked, ats: createClient({ url: 'http://ats.invalid', fetch, retries: 0 }) };
}

const refusedByServer = (e: unknown) => e instanceof ApiError && e.status === 400 && e.code === 'ATS_ERR_VALIDATION';

for (const t of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
  test(`waitWorkflow with timeoutMs ${t} is sent and answered by the server's 400, not a RangeError of the timer`, async () => {
    const { asked, ats } = refusingServer();
    await assert.rejects(ats.waitWorkflow(ID, { timeoutMs: t }), refusedByServer);
    assert.deepEqual(asked, [`?until=done&timeoutMs=${t}`]);
  });

  test(`startWorkflow waiting with timeoutMs ${t} is sent and answered by the server's 400, not a RangeError of the timer`, async () => {
    const { asked, ats } = refusingServer();
    await assert.rejects(ats.startWorkflow({ name: 'order.fulfil' }, { wait: { until: 'done', timeoutMs: t } }), refusedByServer);
    assert.deepEqual(asked, [`?wait=done&timeoutMs=${t}`]);
  });
}
