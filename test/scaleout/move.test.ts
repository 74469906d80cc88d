// Moving a partition to a new server while writers run through the proxy: every acknowledged
// write is found afterwards, on the new server; the calls that failed during the switch failed
// with `connection` and were not applied (or their value is the one the caller tried to write).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, SessionError, type SessionStore } from '../../src/index.js';
import { installProxy, movePartition, proxyStatus } from '../../src/scaleout.js';
import { startCluster, type Cluster } from '../harness/cluster.js';
import { deploy, newPartition, partitionsOf, sql, type Deployment } from './deployment.js';

let d: Deployment;
let target: Cluster;
let store: SessionStore;
/** A second proxy database, on the other server, over the same partitions. */
let proxy2 = '';
let store2: SessionStore;
before(async () => {
  d = await deploy({ partitions: 4, servers: 2 });
  target = await startCluster({ cron: false });
  store = connect({ connectionString: d.clientUrl, connections: 4 });
  const second = d.clusters[1] as Cluster;
  await sql(second.url, 'CREATE DATABASE proxy_two');
  proxy2 = second.urlFor('proxy_two');
  await installProxy({ connectionString: proxy2, partitions: d.proxyPartitionUrls, log: false });
  store2 = connect({ connectionString: proxy2, connections: 4 });
});
after(async () => {
  await store?.close();
  await store2?.close();
  target?.destroy();
  await d?.destroy();
});

const moving = 1;
const partitionOf = async (key: string) => (await partitionsOf(d.proxyUrl, [key]))[0];

test('a partition moves to a new server under writes through two proxies: 0 acknowledged writes lost', {
  timeout: 300_000,
}, async (t) => {
  const newUrl = await newPartition(d, target, 'part1_moved');

  // Sessions to write to: 40 on the moving partition, 10 elsewhere; plus 3000 to copy.
  await Promise.all(Array.from({ length: 3000 }, (_, i) => store.generate({ value: `bulk${i}` })));
  const mine: string[] = [];
  const others: string[] = [];
  while (mine.length < 40 || others.length < 10) {
    const key = await store.generate({ value: 'start' });
    if ((await partitionOf(key)) === moving) mine.push(key);
    else others.push(key);
  }

  // Writers: each owns some keys and writes them one call at a time, so for every key the last
  // acknowledged value, and the values tried after it, are known. Generators record new sessions.
  const acked = new Map<string, string>([...mine, ...others].map((k) => [k, 'start']));
  const tried = new Map<string, string[]>();
  const generated = new Map<string, string>();
  const errors: string[] = [];
  let writes = 0;
  let running = true;
  // Writers 0-2 go through the second proxy: both proxies are switched by the move.
  const writer = async (keys: string[], w: number) => {
    const via = w < 3 ? store2 : store;
    for (let n = 0; running; n++) {
      const key = keys[n % keys.length] as string;
      const value = `w${w}-${n}`;
      try {
        assert.equal(await via.set(key, value), true);
        acked.set(key, value);
        tried.delete(key);
        writes += 1;
      } catch (err) {
        assert.ok(err instanceof SessionError, String(err));
        errors.push(err.code);
        tried.set(key, [...(tried.get(key) ?? []), value]);
      }
    }
  };
  const generator = async (g: number) => {
    for (let n = 0; running; n++) {
      try {
        generated.set(await store.generate({ value: `g${g}-${n}` }), `g${g}-${n}`);
      } catch (err) {
        assert.ok(err instanceof SessionError, String(err));
        errors.push(err.code);
      }
    }
  };
  const split = (keys: string[], parts: number) =>
    Array.from({ length: parts }, (_, i) => keys.filter((_, j) => j % parts === i));
  const workers = [...split(mine, 6).map((k, i) => writer(k, i)), writer(others, 6), generator(0), generator(1)];
  await sleep(500);

  let result;
  try {
    result = await movePartition({
      proxies: [d.proxyUrl, proxy2],
      partition: moving,
      from: d.partitionUrls[moving] as string,
      to: newUrl,
      log: false,
    });
    await sleep(500);
  } finally {
    running = false;
    await Promise.all(workers);
  }

  // Every acknowledged write is there, read through the proxy.
  let lost = 0;
  for (const [key, value] of acked) {
    const r = await store.get(key);
    const ok = r.ok && (r.value === value || (tried.get(key) ?? []).includes(r.value));
    if (!ok) lost += 1;
  }
  for (const [key, value] of generated) {
    const r = await store.get(key);
    if (!(r.ok && r.value === value)) lost += 1;
  }
  const movedGenerated = (await partitionsOf(d.proxyUrl, [...generated.keys()])).filter((p) => p === moving).length;
  t.diagnostic(
    `moved ${result.rows} rows; writes paused ${result.pausedMs.toFixed(0)} ms; ${result.terminated} waiting call(s) ended; ` +
      `${writes} sets and ${generated.size} generates acknowledged (${movedGenerated} on the moved partition), ` +
      `${errors.length} calls failed (${[...new Set(errors)].join(', ') || 'none'}); ${lost} acknowledged writes lost`,
  );
  assert.equal(lost, 0);
  assert.ok(
    errors.every((c) => c === 'connection'),
    errors.join(' '),
  );
  assert.ok(movedGenerated > 0 && writes > 0);

  // The sessions live on the new server now, and the old database takes no connection.
  const onNew = Number((await sql<{ n: string }>(newUrl, 'SELECT count(*) AS n FROM session.sessions')).rows[0]?.n);
  assert.ok(onNew >= result.rows, `${onNew} rows on the new server`);
  for (const key of mine.slice(0, 5)) {
    const r = await sql(newUrl, `SELECT 1 FROM session.sessions WHERE digest = sha256(convert_to($1, 'UTF8'))`, [key]);
    assert.equal(r.rowCount, 1);
  }
  await assert.rejects(sql(d.partitionUrls[moving] as string, 'SELECT 1'), /not currently accepting connections/);
  for (const url of [d.proxyUrl, proxy2]) {
    const status = await proxyStatus({ connectionString: url });
    assert.equal(status.partitions[moving]?.database, 'part1_moved');
    assert.ok(status.partitions.every((p) => p.error === null));
  }
  const r = await store2.get(mine[0] as string);
  assert.ok(r.ok && r.value === acked.get(mine[0] as string));
});
