/**
 * What the console lets its key do (server/ui/client/permissions.ts), under
 * node: from `GET /v1/keys/self`'s scopes, each write action needs its own
 * (Submit `submit`, Cancel and Redrive `operate`), and an action denied says
 * which scope it needs and which the key has. Scopes not known (an older
 * server, an answer of another shape) leave every action enabled.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { permissionsOf, type Action } from './client/permissions.js';

const ACTIONS: readonly Action[] = ['submit', 'cancel', 'redrive'];
const deniedOf = (scopes: string[]) => ACTIONS.filter((a) => permissionsOf({ keyId: 'k', tenant: 'default', scopes }).denied(a) !== null);

describe('the console\'s permissions', () => {
  test('a read-only key may take none of the write actions, each saying the scope it needs and the key\'s', () => {
    const p = permissionsOf({ keyId: 'k', tenant: 'default', scopes: ['read'] });
    assert.match(p.denied('submit') ?? '', /may not submit jobs: that needs the submit scope, and the key has read\.$/);
    assert.match(p.denied('cancel') ?? '', /may not cancel jobs: that needs the operate scope, and the key has read\.$/);
    assert.match(p.denied('redrive') ?? '', /may not redrive jobs: that needs the operate scope/);
    assert.equal(p.summary(), 'Key scopes: read. Submit, Cancel, Redrive are disabled (submit, operate scope needed).');
  });

  test('each action needs its own scope; a key with all of them (or the open mode) has nothing disabled', () => {
    assert.deepEqual(deniedOf(['read', 'submit']), ['cancel', 'redrive']);
    assert.deepEqual(deniedOf(['read', 'operate']), ['submit']);
    assert.deepEqual(deniedOf(['admin', 'read']), ACTIONS, 'admin is not operate: it changes keys, schedules and limits');
    assert.deepEqual(deniedOf(['submit', 'read', 'operate', 'admin']), []);
    assert.equal(permissionsOf({ keyId: null, tenant: 'default', scopes: ['submit', 'read', 'operate', 'admin'] }).summary(), '');
    assert.match(permissionsOf({ scopes: ['read', 'operate'] }).summary(), /^Key scopes: read, operate\. Submit is disabled \(submit scope needed\)\.$/);
  });

  test('scopes not known (no answer: an older server; an answer of another shape) leave every action enabled', () => {
    for (const answer of [null, undefined, {}, { scopes: 'read' }, { scopes: [1] }, 'read']) {
      const p = permissionsOf(answer);
      assert.deepEqual(ACTIONS.map((a) => p.denied(a)), [null, null, null], JSON.stringify(answer));
      assert.equal(p.summary(), '');
    }
  });
});
