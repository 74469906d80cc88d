// Races of the per-subject calls, checked against real time: "log out everywhere" while the
// subject's requests keep writing and rotating, and rotation while requests use the old key.
// Seeded: RACE_SEED replays the choices.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type SessionStore } from '../../src/index.js';
import { freshDatabase, type TestDatabase } from '../helpers.js';

const seed = Number(process.env.RACE_SEED ?? Date.now() % 1_000_000);
let state = seed;
const random = () => {
  state = (state * 1103515245 + 12345) % 2147483648;
  return state / 2147483648;
};

let db: TestDatabase;
const stores: SessionStore[] = [];
before(async () => {
  db = await freshDatabase('accountraces');
  const url = await db.clientRole();
  for (let i = 0; i < 4; i += 1) stores.push(connect({ connectionString: url }));
  console.log(`# accounts races: RACE_SEED=${seed}`);
});
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await db.drop();
});
const store = (i: number) => stores[i % stores.length] as SessionStore;

describe('per-subject races', () => {
  test("revoke-all against concurrent set, put, touch and rotate of the subject's sessions: nothing revoked comes back", {
    timeout: 120_000,
  }, async (t) => {
    let rounds = 0;
    let writes = 0;
    let rotations = 0;
    for (let round = 0; round < 10; round += 1) {
      const subject = `user-${round}`;
      const pool = await Promise.all(
        Array.from({ length: 40 }, (_, i) => store(i).generate({ value: `v${i}`, subject, label: `device ${i}` })),
      );
      const everKey = new Set(pool);
      let revokedAt = Infinity;
      let stop = false;
      const workers = Array.from({ length: 8 }, async (_, w) => {
        while (!stop) {
          const i = Math.floor(random() * pool.length);
          const key = pool[i] as string;
          const roll = random();
          const s = store(w);
          if (roll < 0.25) {
            const fresh = await s.rotate(key);
            if (fresh !== null) {
              everKey.add(fresh);
              pool[i] = fresh;
              rotations += 1;
            }
          } else if (roll < 0.5) {
            await s.set(key, `w${w}`);
          } else if (roll < 0.75) {
            await s.touch(key, { expiry: 3600 });
          } else {
            await s.put(key, `p${w}`);
          }
          writes += 1;
        }
      });
      await sleep(50 + random() * 100);
      const revoked = await store(round).revoke(subject);
      revokedAt = performance.now();
      assert.ok(revoked >= 1);
      await sleep(100);
      stop = true;
      await Promise.all(workers);
      assert.ok(revokedAt < Infinity);
      for (const key of everKey) assert.equal((await store(0).get(key)).ok, false, 'a revoked session is live again');
      assert.deepEqual(await store(0).list(subject), []);
      rounds += 1;
    }
    t.diagnostic(
      `${rounds} rounds: ${writes} writes and ${rotations} rotations raced a revoke; no session of the subject survived`,
    );
  });

  test('rotate against concurrent get and set on the old key: nothing written after the rotation returned lands anywhere', {
    timeout: 120_000,
  }, async (t) => {
    let lateWrites = 0;
    for (let round = 0; round < 30; round += 1) {
      const old = await store(0).generate({ value: 'initial', subject: 'rotator' });
      const acknowledged = new Set(['initial']);
      let rotatedAt = Infinity;
      let stop = false;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let n = 0; !stop; n += 1) {
          const value = `w${w}:${n}`;
          const started = performance.now();
          const ok = await store(w + 1).set(old, value);
          if (ok) {
            assert.ok(started < rotatedAt, 'a set called after the rotation returned succeeded on the old key');
            acknowledged.add(value);
          } else if (started > rotatedAt) {
            lateWrites += 1;
          }
          const readAt = performance.now();
          const got = await store(w + 1).get(old);
          assert.ok(!(readAt > rotatedAt && got.ok), 'a get called after the rotation returned found the old key');
        }
      });
      await sleep(random() * 20);
      const fresh = await store(0).rotate(old);
      rotatedAt = performance.now();
      assert.ok(fresh);
      await sleep(20);
      stop = true;
      await Promise.all(writers);
      const got = await store(0).get(fresh);
      assert.ok(got.ok && acknowledged.has(got.value), `the new key holds ${JSON.stringify(got)}`);
      assert.equal((await store(0).get(old)).ok, false);
    }
    t.diagnostic(`30 rotations; ${lateWrites} writes to the old key after a rotation returned, all refused`);
  });
});
