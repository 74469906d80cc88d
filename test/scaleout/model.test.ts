// test/stress/model.ts's model-based test, against a PL/Proxy proxy over 4 partitions on 2
// clusters: the same random sequences of generate (with subject and lifetime)/get/set/put/touch/
// clear/setSubject/list/revoke/rotate/count/defaultPeriod/setDefaultPeriod/purge (with waits, so
// sessions really expire), through the TypeScript client and through the SQL functions, checked
// against the same in-memory model of the semantics. (One call at a time: batched writes are
// compared with one database by the differential test below, and run concurrently in
// api.test.ts, faults.test.ts and move.test.ts.)
// MODEL_RUNS (default 100) sequences per implementation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { connect, type SessionStore } from '../../src/index.js';
import { connectAdmin, type SessionAdmin } from '../../src/admin-index.js';
import { clientApi, commandArb, Model, sqlApi, type Api, type Real } from '../stress/model.js';
import { deploy, type Deployment } from './deployment.js';

const runs = Number(process.env.MODEL_RUNS ?? 100);

let d: Deployment;
let store: SessionStore;
let admin: SessionAdmin;
let sql: pg.Client;
before(async () => {
  d = await deploy({ partitions: 4, servers: 2 });
  store = connect({ connectionString: d.clientAdminUrl });
  admin = connectAdmin({ connectionString: d.clientAdminUrl });
  sql = new pg.Client({ connectionString: d.clientAdminUrl });
  await sql.connect();
});
after(async () => {
  await store?.close();
  await admin?.close();
  await sql?.end();
  await d?.destroy();
});

let sequences = 0;
let calls = 0;

/** Empty partitions and default settings for every sequence (the model starts empty). */
async function setup(api: Api): Promise<{ model: Model; real: Real }> {
  await Promise.all(
    d.partitionUrls.map((url) =>
      d.query(
        url,
        'TRUNCATE session.sessions; UPDATE session.config SET default_period = 604800; UPDATE session.purge_state SET next_block = 0',
      ),
    ),
  );
  const real: Real = {
    api,
    present: async (keys) => {
      const found = await Promise.all(
        d.partitionUrls.map((url) =>
          d.query<{ k: string }>(
            url,
            `SELECT k FROM unnest($1::text[]) k JOIN session.sessions s ON s.digest = sha256(convert_to(k, 'UTF8'))`,
            [keys],
          ),
        ),
      );
      return new Set(found.flatMap((r) => r.rows.map((x) => x.k)));
    },
  };
  return { model: new Model(), real };
}

const property = (api: () => Api) =>
  fc.asyncProperty(fc.commands([commandArb], { maxCommands: 40, size: 'max' }), async (cmds) => {
    let model: Model | undefined;
    await fc.asyncModelRun(async () => {
      const s = await setup(api());
      model = s.model;
      return s;
    }, cmds);
    sequences += 1;
    calls += model?.calls ?? 0;
  });

describe('model-based, through the proxy', () => {
  test(`through the TypeScript client (${runs} sequences)`, { timeout: 900_000 }, async () => {
    await fc.assert(
      property(() => clientApi(store, admin)),
      { numRuns: runs },
    );
  });
  test(`through the SQL functions (${runs} sequences)`, { timeout: 900_000 }, async () => {
    await fc.assert(
      property(() => sqlApi(sql)),
      { numRuns: runs },
    );
  });
  test('figures', (t) => {
    assert.ok(sequences >= 2 * runs);
    t.diagnostic(`model-based through the proxy: ${sequences} sequences, ${calls} calls`);
  });
});

// Differential: the same random sequences through the proxy and on one ordinary database, answer
// for answer (keys compared by the order they were generated in). Independent of the model: any
// difference between the proxy and one database is a failure. Expiries are whole minutes or <= 0,
// so no session expires between the two calls. Covers the API of 005 (subjects, list, revoke,
// rotate, absolute lifetime) and session_write_batch too.
describe('differential: the proxy answers as one database does', () => {
  let direct: pg.Client;
  let directUrl = '';
  before(async () => {
    const cluster = d.clusters[0];
    assert.ok(cluster !== undefined);
    await d.query(cluster.url, 'CREATE DATABASE reference_db');
    directUrl = cluster.urlFor('reference_db');
    const { migrate } = await import('../../src/admin-index.js');
    await migrate({ connectionString: directUrl, log: false });
    direct = new pg.Client({ connectionString: directUrl });
    await direct.connect();
  });
  after(async () => {
    await direct?.end();
  });

  const expiry = fc.constantFrom(undefined, -1, 0, 60, 3600, 3155760001);
  const value = fc.oneof(
    fc.constantFrom(undefined, '', 'v', 'é€😀'),
    fc.string({ maxLength: 8 }),
    fc.constant('x'.repeat(1048577)),
  );
  const ref = fc.nat(7);
  const subject = fc.constantFrom(null, 'alice', 'bob', 'alice', '', 's'.repeat(257));
  const label = fc.constantFrom(null, 'L', 'M', 'l'.repeat(257));
  const lifetime = fc.constantFrom(null, null, 0, 60, 3600, 3155760001);
  const step = fc.oneof(
    fc.record({ op: fc.constant('generate'), expiry, value }),
    fc.record({ op: fc.constantFrom('get', 'clear'), ref }),
    fc.record({ op: fc.constantFrom('set', 'put'), ref, expiry, value: value.map((v) => v ?? null) }),
    fc.record({ op: fc.constant('touch'), ref, expiry }),
    fc.record({
      op: fc.constant('putFixed'),
      key: fc.constantFrom('F'.repeat(32), 'G'.repeat(40), 'short', 'a b'.repeat(20)),
      value: value.map((v) => v ?? null),
      expiry,
    }),
    fc.record({ op: fc.constantFrom('count', 'defaultPeriod') }),
    fc.record({ op: fc.constant('setDefaultPeriod'), period: fc.constantFrom(0, 60, 86400, 604800) }),
    fc.record({ op: fc.constant('purge'), batch: fc.constantFrom(undefined, 0, 1, 1000) }),
    // The API of 005 and batched writes.
    fc.record({ op: fc.constant('generateFor'), expiry, value, subject, label, lifetime }),
    fc.record({ op: fc.constant('setSubject'), ref, subject, label }),
    fc.record({ op: fc.constant('list'), subject, max: fc.constantFrom(undefined, 1, 2, 0) }),
    fc.record({ op: fc.constant('revoke'), subject, except: fc.option(ref, { nil: undefined }) }),
    fc.record({ op: fc.constant('revokeHandle'), subject, nth: fc.nat(3) }),
    fc.record({ op: fc.constant('rotate'), ref }),
    fc.record({ op: fc.constant('setAbsoluteLifetime'), lifetime }),
    fc.record({
      op: fc.constant('batch'),
      elements: fc.array(
        fc.record({
          kind: fc.constantFrom('generate', 'set', 'touch', 'put', 'clear', 'bogus'),
          ref,
          value: value.map((v) => v ?? null),
          expiry,
        }),
        { maxLength: 8 },
      ),
    }),
  );
  type Element = { kind: string; ref: number; value: string | null; expiry: number | undefined };
  type Step = {
    op: string;
    expiry?: number | undefined;
    value?: string | null | undefined;
    ref?: number;
    key?: string;
    period?: number;
    batch?: number | undefined;
    subject?: string | null;
    label?: string | null;
    lifetime?: number | null;
    max?: number | undefined;
    except?: number | undefined;
    nth?: number;
    elements?: Element[];
  };

  /** Runs one step; keys are replaced by their index so that both sides compare equal. */
  async function apply(c: pg.Client, keys: string[], s: Step): Promise<unknown> {
    const keyAt = (ref: number) => (keys.length === 0 ? 'none' : keys[ref % keys.length]);
    const key = s.ref === undefined ? null : keyAt(s.ref);
    const q = async (text: string, values: unknown[]) => {
      try {
        const rows = (await c.query({ text, values, rowMode: 'array' })).rows;
        return rows.map((r) => r.map((x) => (typeof x === 'string' && keys.includes(x) ? `key#${keys.indexOf(x)}` : x)));
      } catch (err) {
        return `SQLSTATE ${String((err as { code?: unknown }).code)}`;
      }
    };
    switch (s.op) {
      case 'generate': {
        const r = await c
          .query({
            text: 'SELECT session.session_generate($1, $2)',
            values: [s.expiry ?? null, s.value ?? null],
            rowMode: 'array',
          })
          .catch((e: { code?: string }) => e.code);
        if (typeof r === 'string' || r === undefined) return `SQLSTATE ${String(r)}`;
        keys.push(String(r.rows[0]?.[0]));
        return 'generated';
      }
      case 'get':
        return q('SELECT value, period FROM session.session_get($1)', [key]);
      case 'clear':
        return q('SELECT session.session_clear($1)', [key]);
      case 'set':
        return q('SELECT session.session_set($1, $2, $3)', [key, s.value, s.expiry ?? null]);
      case 'put':
        return q('SELECT session.session_put($1, $2, $3)', [key, s.value, s.expiry ?? null]);
      case 'putFixed':
        return q('SELECT session.session_put($1, $2, $3)', [s.key, s.value, s.expiry ?? null]);
      case 'touch':
        return q('SELECT session.session_touch($1, $2)', [key, s.expiry ?? null]);
      case 'count':
        return q('SELECT session.session_count()', []);
      case 'defaultPeriod':
        return q('SELECT session.session_default_period()', []);
      case 'setDefaultPeriod':
        return q('SELECT session.session_set_default_period($1)', [s.period]);
      case 'generateFor': {
        const r = await c
          .query({
            text: 'SELECT session.session_generate($1, $2, $3, $4, $5)',
            rowMode: 'array',
            values: [s.expiry ?? null, s.value ?? null, s.subject ?? null, s.label ?? null, s.lifetime ?? null],
          })
          .catch((e: { code?: string }) => e.code);
        if (typeof r === 'string' || r === undefined) return `SQLSTATE ${String(r)}`;
        keys.push(String(r.rows[0]?.[0]));
        return 'generated';
      }
      case 'setSubject':
        return q('SELECT session.session_set_subject($1, $2, $3)', [key, s.subject, s.label]);
      // Handles and times differ between the two; labels and their order must not.
      case 'list':
        return q(
          `SELECT label FROM session.session_list($1${s.max === undefined ? '' : ', $2'})`,
          s.max === undefined ? [s.subject] : [s.subject, s.max],
        );
      case 'revoke':
        return q('SELECT session.session_revoke($1, $2)', [s.subject, s.except === undefined ? null : keyAt(s.except)]);
      case 'revokeHandle': {
        const handles = await c.query<{ handle: string }>('SELECT handle::text FROM session.session_list($1)', [s.subject]).then(
          (r) => r.rows,
          () => [],
        );
        return q('SELECT session.session_revoke_handle($1, $2)', [
          s.subject,
          handles[(s.nth ?? 0) % Math.max(1, handles.length)]?.handle ?? null,
        ]);
      }
      case 'rotate': {
        const r = await c
          .query({ text: 'SELECT session.session_rotate($1)', values: [key], rowMode: 'array' })
          .catch((e: { code?: string }) => e.code);
        if (typeof r === 'string' || r === undefined) return `SQLSTATE ${String(r)}`;
        const fresh = r.rows[0]?.[0] as string | null;
        if (fresh === null) return 'not rotated';
        keys.push(fresh);
        return 'rotated';
      }
      case 'setAbsoluteLifetime':
        return q('SELECT session.session_set_absolute_lifetime($1)', [s.lifetime]);
      case 'batch': {
        const els = s.elements ?? [];
        const r = await c
          .query({
            text: 'SELECT ord, sqlstate, ok, key FROM session.session_write_batch($1::text[], $2::text[], $3::text[], $4::bigint[])',
            rowMode: 'array',
            values: [
              els.map((e) => e.kind),
              els.map((e) => (e.kind === 'generate' ? null : keyAt(e.ref))),
              els.map((e) => e.value),
              els.map((e) => e.expiry ?? null),
            ],
          })
          .catch((e: { code?: string }) => e.code);
        if (typeof r === 'string' || r === undefined) return `SQLSTATE ${String(r)}`;
        return r.rows.map(([ord, state, ok, made]) => {
          if (typeof made !== 'string') return [ord, state, ok];
          keys.push(made);
          return [ord, state, ok, 'generated'];
        });
      }
      default:
        return q(
          s.batch === undefined ? 'SELECT session.session_purge()' : 'SELECT session.session_purge($1)',
          s.batch === undefined ? [] : [s.batch],
        );
    }
  }

  test(`${runs} random sequences of up to 40 calls: the same answers`, { timeout: 900_000 }, async (t) => {
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 40, size: 'max' }), async (seq) => {
        const reset = 'TRUNCATE session.sessions; UPDATE session.config SET default_period = 604800, absolute_lifetime = NULL';
        await d.query(directUrl, reset);
        await Promise.all(d.partitionUrls.map((url) => d.query(url, reset)));
        const viaProxy: string[] = [];
        const viaOne: string[] = [];
        for (const s of seq as Step[]) {
          // Periods (the last column of get's row) are whole minutes minus the second or two that
          // passed: compared rounded up to the minute.
          const norm = (r: unknown) => JSON.stringify(r).replace(/,(\d+)\]/g, (_, n: string) => `,${Math.ceil(Number(n) / 60)}]`);
          assert.equal(norm(await apply(sql, viaProxy, s)), norm(await apply(direct, viaOne, s)), JSON.stringify(s));
          steps += 1;
        }
      }),
      { numRuns: runs },
    );
    t.diagnostic(`${steps} calls compared`);
  });
});
