// The API contract (test/contract/api.ts) against one database, as a login in session_client and
// session_admin. test/scaleout/api.test.ts runs the same cases through a PL/Proxy proxy.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { apiContract } from './contract/api.js';
import { freshDatabase, type TestDatabase } from './helpers.js';

let db: TestDatabase;
let url: string;
before(async () => {
  db = await freshDatabase('contract');
  url = await db.clientRole({ admin: true });
});
after(async () => {
  await db.drop();
});

apiContract('the API contract, on one database', () => ({
  url,
  async storedOnce(key) {
    const r = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`,
      [key],
    );
    assert.equal(r.rows[0]?.n, 1);
  },
}));
