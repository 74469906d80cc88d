// Faults that are quick and deterministic: an unreachable or silent server at start, statement and
// lock timeouts, and a migration killed halfway. (Server crashes: test/stress/crash.test.ts.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { PG_MIGRATE_LOCK_ID } from 'node-pg-migrate';
import { connect, SessionError, type SessionStore } from '../src/index.js';
import { connectAdmin, migrate } from '../src/admin-index.js';
import { migrationNames } from '../src/migrate.js';
import { freePort } from './harness/cluster.js';
import { cliPath, errorCode, freshDatabase, missingTool, schemaDump, type TestDatabase } from './helpers.js';

const figures = { faults: 0, rejectedAsExpected: 0 };

const code = errorCode;

/** A TCP server on loopback that accepts connections and then does `onSocket` with them. */
async function fakeServer(onSocket: (s: Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => {
    sockets.push(s);
    onSocket(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('the database is unreachable at start', () => {
  const target = { dbname: 'app', user: 'app', password: 'pw', connectTimeoutMs: 300 };
  const expectConnection = async (port: number, what: string, message: RegExp) => {
    const store = connect({ ...target, host: '127.0.0.1', port });
    const admin = connectAdmin({ ...target, host: '127.0.0.1', port });
    try {
      for (const call of [() => store.get('k'), () => store.generate(), () => admin.purge()]) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof SessionError, `${what}: ${String(err)}`);
        assert.equal(err.code, 'connection', what);
        assert.match(err.message, message, what);
        figures.rejectedAsExpected += 1;
      }
    } finally {
      await store.close();
      await admin.close();
    }
    figures.faults += 1;
  };

  test('nothing listens: `connection` (refused)', async () => {
    await expectConnection(await freePort(), 'refused', /ECONNREFUSED|connect/);
  });
  test('a server that accepts and never answers: `connection` after connectTimeoutMs, no hang', async (t) => {
    const silent = await fakeServer(() => {});
    try {
      const started = performance.now();
      await expectConnection(silent.port, 'silent server', /timeout/i);
      t.diagnostic(`3 calls gave up after ${Math.round(performance.now() - started)} ms in all (connectTimeoutMs 300)`);
    } finally {
      await silent.close();
    }
  });
  test('a server that hangs up at once: `connection`', async () => {
    const rude = await fakeServer((s) => s.destroy());
    try {
      await expectConnection(rude.port, 'hang-up', /terminated|ECONNRESET|closed/i);
    } finally {
      await rude.close();
    }
  });
  test('migrate against a silent server: `connection`, no hang', async () => {
    const silent = await fakeServer(() => {});
    try {
      assert.equal(await code(migrate({ ...target, host: '127.0.0.1', port: silent.port, log: false })), 'connection');
      figures.rejectedAsExpected += 1;
      figures.faults += 1;
    } finally {
      await silent.close();
    }
  });
});

describe('statement and lock timeouts', () => {
  let db: TestDatabase;
  let url = '';
  let holder: pg.Client;
  let key = '';
  before(async () => {
    db = await freshDatabase('timeouts');
    url = await db.clientRole({ admin: true });
    holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    const s = connect({ connectionString: url });
    key = await s.generate({ expiry: 3600, value: 'kept' });
    await s.close();
  });
  after(async () => {
    await holder.end();
    await db.drop();
  });

  /** Runs `calls` on a fresh store while the owner holds `lock`; each must reject with `expected`. */
  async function underLock(options: { statementTimeoutMs?: number; lockTimeoutMs?: number }, lock: string, expected: string) {
    const store: SessionStore = connect({ connectionString: url, ...options });
    const admin = connectAdmin({ connectionString: url, ...options });
    try {
      await holder.query('BEGIN');
      await holder.query(lock, lock.includes('$1') ? [key] : []);
      const calls = [() => store.get(key), () => store.set(key, 'changed'), () => store.clear(key), () => admin.purge()];
      for (const call of calls) {
        assert.equal(await code(call()), expected);
        figures.rejectedAsExpected += 1;
      }
      await holder.query('ROLLBACK');
      figures.faults += 1;
      // The same store serves again, and nothing was changed by the cancelled calls.
      const r = await store.get(key);
      assert.ok(r.ok && r.value === 'kept', JSON.stringify(r));
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await store.close();
      await admin.close();
    }
  }

  test('statement_timeout: a table lock held by another session', async () => {
    await underLock({ statementTimeoutMs: 200 }, 'LOCK TABLE session.sessions IN ACCESS EXCLUSIVE MODE', 'statement_timeout');
  });
  test('lock_timeout: a table lock held by another session', async () => {
    await underLock({ lockTimeoutMs: 200 }, 'LOCK TABLE session.sessions IN ACCESS EXCLUSIVE MODE', 'lock_timeout');
  });
  test('lock_timeout: the row locked by another session (get does not wait for row locks)', async () => {
    const store = connect({ connectionString: url, lockTimeoutMs: 200 });
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8')) FOR UPDATE`, [key]);
      assert.equal(await code(store.set(key, 'changed')), 'lock_timeout');
      assert.equal(await code(store.clear(key)), 'lock_timeout');
      const r = await store.get(key);
      assert.ok(r.ok && r.value === 'kept');
      figures.rejectedAsExpected += 2;
      figures.faults += 1;
    } finally {
      await holder.query('ROLLBACK');
      await store.close();
    }
    const s = connect({ connectionString: url });
    const r = await s.get(key);
    await s.close();
    assert.ok(r.ok && r.value === 'kept');
  });
});

describe('a migration killed halfway', () => {
  /** `session-pg migrate` in its own process. */
  function migrateProcess(url: string) {
    const child = spawn(process.execPath, [cliPath, 'migrate', '--database-url', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += String(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      out += String(d);
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal, out })),
    );
    return { child, exited };
  }

  /** Waits (bounded) until a backend other than `except` waits on a lock of `kind` in the database. */
  async function waitForLockWait(db: TestDatabase, except: number, kind: string): Promise<void> {
    for (let i = 0; i < 600; i += 1) {
      const r = await db.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
                                 WHERE datname = current_database() AND pid <> $1 AND wait_event_type = 'Lock' AND wait_event = $2`,
        [except, kind],
      );
      if (r.rows[0]?.n === 1) return;
      await sleep(50);
    }
    throw new Error(`no migration waited on a ${kind} lock`);
  }

  let reference: TestDatabase;
  before(async () => {
    reference = await freshDatabase('ref', { empty: true });
    await migrate({ connectionString: reference.url, log: false });
  });
  after(async () => {
    await reference.drop();
  });

  async function killedThenRerun(
    prepare: (db: TestDatabase) => Promise<void>,
    lock: (holder: pg.Client) => Promise<void>,
    kind: string,
    t: { diagnostic(m: string): void },
  ) {
    const db = await freshDatabase('killed', { empty: true });
    const holder = new pg.Client({ connectionString: db.url });
    try {
      await prepare(db);
      await holder.connect();
      await lock(holder);
      const pid = Number((await holder.query('SELECT pg_backend_pid() AS p')).rows[0]?.p);
      const run = migrateProcess(db.url);
      await waitForLockWait(db, pid, kind);
      run.child.kill('SIGKILL');
      const killed = await run.exited;
      assert.equal(killed.signal, 'SIGKILL');
      figures.faults += 1;
      // Nothing of the killed run is visible: its transaction never committed.
      assert.equal((await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'session'`)).rows[0]?.n, 0);
      await holder.end();
      const rerun = await migrateProcess(db.url).exited;
      assert.equal(rerun.code, 0, rerun.out);
      assert.match(rerun.out, new RegExp(`Applied: ${migrationNames().join(', ')}`));
      if (missingTool('pg_dump'))
        t.diagnostic(`the schema is not compared with a single run's: ${String(missingTool('pg_dump'))}`);
      else assert.equal(schemaDump(db.url), schemaDump(reference.url));
      const store = connect({ connectionString: await db.clientRole() });
      try {
        const r = await store.get(await store.generate({ value: 'after the rerun' }));
        assert.ok(r.ok && r.value === 'after the rerun');
      } finally {
        await store.close();
      }
      t.diagnostic(
        `killed while waiting on a lock (${kind}); the re-run applied every migration and the schema equals a single-run install`,
      );
    } finally {
      await holder.end().catch(() => {});
      await db.drop();
    }
  }

  test('with all of the baseline executed but not committed (blocked recording itself): re-running completes', async (t) => {
    // The migrations table exists (an install removed again, as sql/uninstall.sql does), and the owner holds a SHARE lock on it: the
    // migration runs all of its SQL, then waits to INSERT its row, inside its one transaction.
    await killedThenRerun(
      async (db) => {
        await migrate({ connectionString: db.url, log: false });
        await db.query('DROP SCHEMA session CASCADE; DELETE FROM public.session_migrations');
      },
      async (holder) => {
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE public.session_migrations IN SHARE MODE');
      },
      'relation',
      t,
    );
  });

  test('while waiting for the advisory lock of another migration: re-running completes', async (t) => {
    await killedThenRerun(
      async () => {},
      async (holder) => {
        await holder.query(`SELECT pg_advisory_lock(${PG_MIGRATE_LOCK_ID})`);
      },
      'advisory',
      t,
    );
  });

  test('figures', (t) => {
    assert.ok(figures.faults >= 9);
    const line = `quick faults: ${figures.faults} injected (unreachable/silent/hang-up servers, statement and lock timeouts, killed migrations), ${figures.rejectedAsExpected} calls rejected with the expected SessionError code`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });
});
