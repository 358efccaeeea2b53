/**
 * A MySQL server whose `max_allowed_packet` is below the 16 MiB one statement
 * of the store may take (a private MariaDB started with 1 MiB; the shared one
 * is never changed): the store refuses it at connect, naming the value and how
 * to raise it, instead of answering a large request with a 500 or a 503 later.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createConnection } from 'mysql2/promise';
import { isAtsError } from '../../engine/errors.js';
import { createPrivateMariadb, type PrivateMariadb } from '../../tests/helpers/mariadb-server.js';
import { freePort } from '../../tests/helpers/ports.js';
import { createMysqlStore } from './index.js';

let small: PrivateMariadb;

before(async () => {
  small = createPrivateMariadb(await freePort(), ['--max-allowed-packet=1M']);
  await small.start();
  const c = await createConnection({ host: '127.0.0.1', port: small.port, user: 'root' });
  try { await c.query('CREATE DATABASE ats'); } finally { await c.end(); }
});
after(async () => {
  await small?.destroy();
});

test('a server with max_allowed_packet at 1 MiB is refused at connect (ATS_ERR_CONFIG), with how to raise it', async () => {
  await assert.rejects(createMysqlStore({ url: `${small.url}/ats` }), (err: unknown) => {
    assert.ok(isAtsError(err) && err.code === 'ATS_ERR_CONFIG', String(err));
    assert.match(err.message, /has max_allowed_packet at 1048576 bytes, below the 16777216 \(16 MiB\).*SET GLOBAL max_allowed_packet = 16777216/);
    return true;
  });
});
