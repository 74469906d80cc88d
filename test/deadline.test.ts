// The client-side deadline of statementTimeoutMs: every call settles within that time plus a
// margin whatever the server does (a commit waiting for a synchronous standby that is gone, a
// peer that vanished without a FIN, a server stopped with SIGSTOP), and the store serves again.
import assert from 'node:assert/strict';
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { connect, SessionError, type SessionStore } from '../src/index.js';
import { startCluster, type Cluster } from './harness/cluster.js';
import { installApp, postmasterOf } from './harness/standby.js';

const statementTimeoutMs = 1000;
/** What the client promises: statementTimeoutMs + max(250 ms, a tenth), checked every half margin. */
const deadline = statementTimeoutMs + 250 + 125;
/** Slack for a machine shared with other test runs (no call should need it). */
const slack = 1000;

/** Awaits a call and returns its error and how long it took to settle. */
async function timed(call: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const started = performance.now();
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err, ms: performance.now() - started };
}

/** Opens both read connections of a store (until both are open, calls are spread over them). */
async function openReads(store: SessionStore): Promise<void> {
  await Promise.all([store.count(), store.count()]);
}

/**
 * Calls `call` until one fails to connect (a read connection still open fails with `timeout`
 * first); each must settle by the deadline. Returns the slowest.
 */
async function untilConnecting(call: () => Promise<unknown>, what: string): Promise<number> {
  let slowest = 0;
  for (let i = 0; i < 3; i += 1) {
    const r = await timed(call());
    assert.ok(r.err instanceof SessionError, `${what}: ${String(r.err)}`);
    assertSettled(r, r.err.code === 'timeout' ? 'timeout' : 'connection', what);
    slowest = Math.max(slowest, r.ms);
    if (r.err.code === 'connection') return slowest;
  }
  assert.fail(`${what}: no call tried to connect`);
}

function assertSettled(r: { err: unknown; ms: number }, code: string, what: string): void {
  assert.ok(r.err instanceof SessionError, `${what}: ${String(r.err)}`);
  assert.equal(r.err.code, code, `${what}: ${r.err.message}`);
  assert.ok(r.ms < deadline + slack, `${what}: settled after ${Math.round(r.ms)} ms`);
}

let cluster: Cluster;
let appUrl = '';
let owner: pg.Client;
const figures: string[] = [];

before(async () => {
  // A synchronous standby that never connects; only sessions that ask for synchronous_commit = on
  // wait for it (setting it by reload instead would race with the checkpointer taking it up).
  cluster = await startCluster({ cron: false, settings: [`synchronous_standby_names = 'gone'`, 'synchronous_commit = local'] });
  await installApp(cluster.url, cluster.urlFor('app'));
  appUrl = cluster.urlFor('app', 'app');
  owner = new pg.Client({ connectionString: cluster.urlFor('app') });
  await owner.connect();
});
after(async () => {
  await owner?.end().catch(() => {});
  cluster?.destroy();
  console.log(`# deadline ${deadline} ms: ${figures.join('; ')}`);
});

describe('a commit waiting for a synchronous standby that is gone', () => {
  let store: SessionStore;
  let waiting: SessionStore;
  before(() => {
    store = connect({ connectionString: appUrl, statementTimeoutMs });
    waiting = connect({ connectionString: appUrl, statementTimeoutMs, options: '-c synchronous_commit=on' });
  });
  after(async () => {
    await store.close();
    await waiting.close();
  });

  test('rejects with `timeout` by the deadline; the write may have committed; reads go on', async (t) => {
    const key = await store.generate({ value: 'before', expiry: 3600 });
    const set = await timed(waiting.set(key, 'after'));
    assertSettled(set, 'timeout', 'set');
    assert.match((set.err as Error).message, /may have taken effect/);
    // Several writes at once (one batch) all settle by the deadline too.
    const batch = await Promise.all(Array.from({ length: 8 }, () => timed(waiting.generate({ value: 'b' }))));
    for (const [i, r] of batch.entries()) assertSettled(r, 'timeout', `batched generate ${i}`);
    // Reads are not held up by the stuck commits: they have their own connections.
    assert.ok((await waiting.get(key)).ok);
    // The client cancelled the waits it gave up on, and a cancelled wait for a standby leaves the
    // commit in place on this server: the set that rejected with `timeout` did take effect here
    // (but no standby has it), which is what the error warns about.
    let value: string | undefined;
    for (let i = 0; i < 100 && value !== 'after'; i += 1) {
      const r = await store.get(key);
      value = r.ok ? r.value : undefined;
      if (value !== 'after') await sleep(50);
    }
    assert.equal(value, 'after');
    assert.equal(await store.set(key, 'again'), true);
    figures.push(
      `sync standby gone: set settled in ${Math.round(set.ms)} ms, batched generates in at most ${Math.round(Math.max(...batch.map((r) => r.ms)))} ms`,
    );
    t.diagnostic(figures[figures.length - 1] as string);
  });
});

describe('a server that stopped answering (SIGSTOP)', () => {
  test('the backend stopped: `timeout`; the postmaster too: `connection`; both resumed: served again', async (t) => {
    const store = connect({ connectionString: appUrl, statementTimeoutMs, applicationName: 'deadline-sigstop' });
    const stopped: number[] = [];
    try {
      const key = await store.generate({ value: 'v', expiry: 3600 });
      await openReads(store);
      const backends = (
        await owner.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'deadline-sigstop'`)
      ).rows.map((r) => r.pid);
      assert.ok(backends.length > 0);
      for (const pid of backends) {
        process.kill(pid, 'SIGSTOP');
        stopped.push(pid);
      }
      const get = await timed(store.get(key));
      assertSettled(get, 'timeout', 'get on a stopped backend');
      const set = await timed(store.set(key, 'w'));
      assertSettled(set, 'timeout', 'set on a stopped backend');
      // New connections: the postmaster stopped too, so connecting never completes.
      const postmaster = postmasterOf(backends[0] as number);
      process.kill(postmaster, 'SIGSTOP');
      stopped.push(postmaster);
      const connecting = await untilConnecting(() => store.get(key), 'get with the postmaster stopped');
      for (const pid of stopped.splice(0)) process.kill(pid, 'SIGCONT');
      const r = await store.get(key);
      assert.ok(r.ok);
      assert.equal(await store.touch(key), true);
      figures.push(
        `SIGSTOP: get ${Math.round(get.ms)} ms, set ${Math.round(set.ms)} ms (timeout), connecting ${Math.round(connecting)} ms (connection)`,
      );
      t.diagnostic(figures[figures.length - 1] as string);
    } finally {
      for (const pid of stopped) process.kill(pid, 'SIGCONT');
      await store.close();
    }
  });
});

/** A TCP relay to the server that can go silent in both directions without closing anything. */
async function relay(port: number): Promise<{ port: number; silent: boolean; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const state = { silent: false };
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    sockets.push(client, upstream);
    for (const s of [client, upstream]) s.on('error', () => {});
    client.on('data', (d) => {
      if (!state.silent) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!state.silent) client.write(d);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    get silent() {
      return state.silent;
    },
    set silent(v: boolean) {
      state.silent = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('a peer gone without a FIN', () => {
  test('calls in flight: `timeout`; new connections: `connection`; the network back: served again', async (t) => {
    const net = await relay(cluster.port);
    const store = connect({ connectionString: `postgresql://app@127.0.0.1:${net.port}/app`, statementTimeoutMs });
    try {
      const key = await store.generate({ value: 'v', expiry: 3600 });
      await openReads(store);
      net.silent = true;
      const [get, set, gen] = await Promise.all([timed(store.get(key)), timed(store.set(key, 'w')), timed(store.generate())]);
      assertSettled(get, 'timeout', 'get');
      assertSettled(set, 'timeout', 'set');
      assertSettled(gen, 'timeout', 'generate');
      const connecting = await untilConnecting(() => store.get(key), 'get while connecting gets no answer');
      net.silent = false;
      assert.ok((await store.get(key)).ok);
      assert.equal(typeof (await store.generate()), 'string');
      figures.push(
        `no FIN: calls in flight ${Math.round(Math.max(get.ms, set.ms, gen.ms))} ms (timeout), connecting ${Math.round(connecting)} ms (connection)`,
      );
      t.diagnostic(figures[figures.length - 1] as string);
    } finally {
      await store.close();
      await net.close();
    }
  });
});

describe('a host that stops taking writes', () => {
  test('with target_session_attrs=read-write, a `read_only` answer drops the connection and the host is checked again', async () => {
    const store = connect({ connectionString: `${appUrl}?target_session_attrs=read-write`, writeConnections: 1 });
    const setReadOnly = async (on: boolean) => {
      await owner.query(
        on ? 'ALTER SYSTEM SET default_transaction_read_only = on' : 'ALTER SYSTEM RESET default_transaction_read_only',
      );
      await owner.query('SELECT pg_reload_conf()');
    };
    try {
      const key = await store.generate({ value: 'v', expiry: 3600 });
      await setReadOnly(true);
      // Each backend takes the reloaded setting up at its next command.
      let first: unknown;
      for (let i = 0; i < 100 && first === undefined; i += 1) {
        first = await store.set(key, 'w').then(
          () => undefined,
          (e: unknown) => e,
        );
        if (first === undefined) await sleep(50);
      }
      assert.ok(first instanceof SessionError && first.code === 'read_only', String(first));
      // Not the same connection again: a new one, which the check refuses.
      const next = await store.set(key, 'w').then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(next instanceof SessionError && next.code === 'connection', String(next));
      assert.match(next.message, /not read-write/);
      await setReadOnly(false);
      assert.equal(await store.set(key, 'w'), true);
    } finally {
      await setReadOnly(false);
      await store.close();
    }
  });
});
