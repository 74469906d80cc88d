// The store's argument checks, made before anything is sent: against a port where nothing
// listens, so no database is needed (moved here from client.test.ts).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, SessionError, type SessionStore } from '../../src/index.js';
import { connectAdmin, type SessionAdmin } from '../../src/admin-index.js';
import { freePort } from '../harness/cluster.js';

/** The code of the SessionError `p` rejects with. */
const code = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => assert.fail('expected a rejection'),
    (err: unknown) => (err instanceof SessionError ? err.code : assert.fail(`not a SessionError: ${String(err)}`)),
  );

describe('input checks happen before any query is sent', () => {
  // A store whose database is unreachable: any query would fail with `connection`.
  let offline: SessionStore;
  let offlineAdmin: SessionAdmin;
  before(async () => {
    const port = await freePort();
    offline = connect({ host: '127.0.0.1', port, connectTimeoutMs: 2000 });
    offlineAdmin = connectAdmin({ host: '127.0.0.1', port, connectTimeoutMs: 2000 });
  });
  after(async () => {
    await offline.close();
    await offlineAdmin.close();
  });

  const bad: [string, () => Promise<unknown>][] = [
    ['non-string key to get', () => offline.get(42 as unknown as string)],
    ['undefined key to set', () => offline.set(undefined as unknown as string, 'v')],
    ['object key to clear', () => offline.clear({} as unknown as string)],
    ['non-string value', () => offline.set('k', 1 as unknown as string)],
    ['NUL in a value', () => offline.generate({ value: 'a\u0000b' })],
    ['lone surrogate in a value', () => offline.set('k', 'a\uD800b')],
    ['fractional expiry', () => offline.generate({ expiry: 1.5 })],
    ['NaN expiry', () => offline.generate({ expiry: NaN })],
    ['Infinity expiry', () => offline.set('k', 'v', { expiry: Infinity })],
    ['string expiry', () => offline.generate({ expiry: '60' as unknown as number })],
    ['unsafe integer expiry', () => offline.generate({ expiry: 2 ** 62 })],
    ['fractional period', () => offlineAdmin.setDefaultPeriod(0.5)],
    ['string period', () => offlineAdmin.setDefaultPeriod('86400' as unknown as number)],
    ['bigint period', () => offlineAdmin.setDefaultPeriod(10n as unknown as number)],
    ['fractional batch size', () => offlineAdmin.purge({ batchSize: 1.5 })],
  ];
  for (const [name, call] of bad) {
    test(name, async () => assert.equal(await code(call()), 'invalid_argument'));
  }
  test('keys PostgreSQL cannot receive are simply not found', async () => {
    assert.deepEqual(await offline.get('a\u0000b'), { ok: false, error: 'not_found' });
    assert.equal(await offline.set('a\uDC00', 'v'), false);
    await offline.clear('\u0000');
  });
  test('an unreachable database gives `connection`, without hanging', async () => {
    const started = Date.now();
    assert.equal(await code(offline.get('k')), 'connection');
    assert.ok(Date.now() - started < 10_000);
  });
});
