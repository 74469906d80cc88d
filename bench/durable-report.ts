// Medians, ratios, the targets table and Markdown for `npm run bench:durable`.
import { median } from './load.js';

/** A median that keeps infinite latencies (dropped requests) but skips missing values. */
function medianInf(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
import type { NodeContenderName } from './contenders.js';

export type DiskName = 'fast' | 'slow' | 'nofsync';
export type Scenario = 'closed' | 'mixed' | 'open';

/** What the server counted during a cell (deltas), warm-up included, and the calls the client made. */
export interface ServerDelta {
  calls: number;
  /** pg_stat_database.xact_commit, summed over the cluster's databases. */
  commits: number;
  /** pg_stat_wal.wal_sync: WAL flushes to disk. */
  walSyncs: number;
  /** Transaction ids assigned: write transactions (reads get none). */
  xids: number;
}

export interface DurableCell {
  disk: DiskName;
  round: number;
  scenario: Scenario;
  /** get/set/generate/clear; in the mixed scenario get or set; in the open loop set. */
  op: string;
  contender: NodeContenderName;
  /** Callers (closed loop, loops per kind in mixed) or offered requests/s (open loop). */
  load: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Open loop: arrivals dropped because too many were in flight. */
  dropped?: number;
  server?: ServerDelta;
}

export const contenderLabels: Record<NodeContenderName, string> = {
  ours: 'ours',
  'ours-pool10': 'ours, pg.Pool(10)',
  'raw-fn': 'pg.Pool(10) → SQL function',
  raw: 'pg.Pool(10) plain UPDATE',
  cps: 'connect-pg-simple',
};

export const diskLabels: Record<DiskName, string> = {
  fast: "this machine's disk, fsync = on",
  slow: 'slow disk (~1 ms per fdatasync), fsync = on',
  nofsync: 'fsync = off (extra; not durable)',
};

type Pick = { disk: DiskName; scenario: Scenario; op: string; load: number };
const matches = (c: DurableCell, p: Pick) => c.disk === p.disk && c.scenario === p.scenario && c.op === p.op && c.load === p.load;

export function medianOf(cells: DurableCell[], p: Pick, who: NodeContenderName, field: 'opsPerSec' | 'p50Ms' | 'p99Ms'): number {
  return medianInf(cells.filter((c) => matches(c, p) && c.contender === who).map((c) => c[field]));
}

/** Median over rounds of a's ops/s over b's, both from the same round. */
export function ratio(cells: DurableCell[], a: Pick & { who: NodeContenderName }, b: Pick & { who: NodeContenderName }): number {
  const rounds = [...new Set(cells.map((c) => c.round))];
  return median(
    rounds.flatMap((round) => {
      const x = cells.find((c) => c.round === round && matches(c, a) && c.contender === a.who);
      const y = cells.find((c) => c.round === round && matches(c, b) && c.contender === b.who);
      return x && y && y.opsPerSec > 0 ? [x.opsPerSec / y.opsPerSec] : [];
    }),
  );
}

/** Calls per committed transaction and commits per WAL flush, summed over rounds. */
export function serverFigures(
  cells: DurableCell[],
  p: Pick,
  who: NodeContenderName,
  writes: 'commits' | 'xids' = 'commits',
): { batch: number; perFlush: number } {
  const mine = cells.filter((c) => matches(c, p) && c.contender === who && c.server);
  const sum = (f: keyof ServerDelta) => mine.reduce((s, c) => s + (c.server?.[f] ?? 0), 0);
  const w = sum(writes);
  return { batch: w > 0 ? sum('calls') / w : NaN, perFlush: sum('walSyncs') > 0 ? w / sum('walSyncs') : NaN };
}

export interface TargetRow {
  what: string;
  measured: number;
  target: number;
  unit: '×' | 'ms' | '/s';
  /** true: measured must be at least the target; false: at most. */
  atLeast: boolean;
}

/** An infinite latency (more than 1% of arrivals dropped) is measured, and misses the target. */
export const targetMet = (t: TargetRow): boolean | undefined =>
  Number.isNaN(t.measured) ? undefined : t.atLeast ? t.measured >= t.target : t.measured <= t.target;

/** The targets for this store's durable writes; "ours" is connect() with default options. */
export function durableTargets(cells: DurableCell[]): TargetRow[] {
  const ours = (disk: DiskName, scenario: Scenario, op: string, load: number) => ({
    disk,
    scenario,
    op,
    load,
    who: 'ours' as const,
  });
  const other = (who: NodeContenderName, disk: DiskName, scenario: Scenario, op: string, load: number) => ({
    disk,
    scenario,
    op,
    load,
    who,
  });
  const r = (what: string, measured: number, target: number, unit: TargetRow['unit'] = '×', atLeast = true): TargetRow => ({
    what,
    measured,
    target,
    unit,
    atLeast,
  });
  return [
    r(
      'fast disk, 32 callers: set, ours / pg.Pool UPDATE',
      ratio(cells, ours('fast', 'closed', 'set', 32), other('raw', 'fast', 'closed', 'set', 32)),
      1.5,
    ),
    r(
      'fast disk, 32 callers: set, ours / connect-pg-simple',
      ratio(cells, ours('fast', 'closed', 'set', 32), other('cps', 'fast', 'closed', 'set', 32)),
      2.5,
    ),
    r(
      "fast disk, 32 callers: generate, ours / connect-pg-simple's set",
      ratio(cells, ours('fast', 'closed', 'generate', 32), other('cps', 'fast', 'closed', 'set', 32)),
      2.5,
    ),
    r(
      'fast disk, 32 callers: get, ours / pg.Pool SELECT',
      ratio(cells, ours('fast', 'closed', 'get', 32), other('raw', 'fast', 'closed', 'get', 32)),
      1.9,
    ),
    r(
      'slow disk, 32 callers: set, ours / pg.Pool UPDATE',
      ratio(cells, ours('slow', 'closed', 'set', 32), other('raw', 'slow', 'closed', 'set', 32)),
      3,
    ),
    r(
      'slow disk, 128 callers: set, ours / pg.Pool UPDATE',
      ratio(cells, ours('slow', 'closed', 'set', 128), other('raw', 'slow', 'closed', 'set', 128)),
      5,
    ),
    r(
      'slow disk, 128 callers: set p99 of ours',
      medianOf(cells, { disk: 'slow', scenario: 'closed', op: 'set', load: 128 }, 'ours', 'p99Ms'),
      10,
      'ms',
      false,
    ),
    r(
      'slow disk, mixed 32 get + 32 set loops: gets, ours / pg.Pool',
      ratio(cells, ours('slow', 'mixed', 'get', 32), other('raw', 'slow', 'mixed', 'get', 32)),
      3,
    ),
    r(
      'slow disk, open loop 16,000 sets/s offered: served by ours',
      medianOf(cells, { disk: 'slow', scenario: 'open', op: 'set', load: 16000 }, 'ours', 'opsPerSec'),
      15000,
      '/s',
    ),
    r(
      'slow disk, open loop 16,000 sets/s offered: p99 of ours',
      medianOf(cells, { disk: 'slow', scenario: 'open', op: 'set', load: 16000 }, 'ours', 'p99Ms'),
      20,
      'ms',
      false,
    ),
  ];
}

export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : n === Infinity
      ? '∞'
      : '—';
export const ms = (n: number): string =>
  n === Infinity ? '∞' : Number.isFinite(n) ? (n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1)) : '—';
const times = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '—');
const value = (n: number, unit: TargetRow['unit']) => (unit === '×' ? times(n) : unit === 'ms' ? `${ms(n)} ms` : `${fmt(n)}/s`);

export function targetTable(ts: TargetRow[]): string {
  return [
    '| target (ours = `connect()` with default options) | measured | target | met |',
    '|---|---:|---:|---|',
    ...ts.map((t) => {
      const met = targetMet(t);
      return `| ${t.what} | ${value(t.measured, t.unit)} | ${t.atLeast ? '≥' : '≤'} ${value(t.target, t.unit)} | ${met === undefined ? 'not measured' : met ? 'yes' : '**no**'} |`;
    }),
  ].join('\n');
}

const loads = (cells: DurableCell[], disk: DiskName, scenario: Scenario, op: string) =>
  [...new Set(cells.filter((c) => c.disk === disk && c.scenario === scenario && c.op === op).map((c) => c.load))].sort(
    (a, b) => a - b,
  );

/** Closed loop: ops/s (p50 / p99 ms) per contender, then ratios and the server's figures. */
export function closedTable(cells: DurableCell[], disk: DiskName, contenders: NodeContenderName[]): string {
  const head = ['op', 'callers', ...contenders.map((c) => contenderLabels[c]), 'ours / UPDATE', 'ours / cps'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 1 ? '---' : '---:')).join('|')}|`];
  const server = [
    `| op | callers | ${contenders.map((c) => contenderLabels[c]).join(' | ')} |`,
    `|---|---:|${contenders.map(() => '---:').join('|')}|`,
  ];
  for (const op of ['get', 'set', 'generate', 'clear']) {
    for (const load of loads(cells, disk, 'closed', op)) {
      const p = { disk, scenario: 'closed' as const, op, load };
      const cell = (who: NodeContenderName) => {
        const ops = medianOf(cells, p, who, 'opsPerSec');
        return Number.isFinite(ops)
          ? `${fmt(ops)} (${ms(medianOf(cells, p, who, 'p50Ms'))} / ${ms(medianOf(cells, p, who, 'p99Ms'))})`
          : '—';
      };
      const vs = (who: NodeContenderName) => times(ratio(cells, { ...p, who: 'ours' }, { ...p, who }));
      lines.push(`| ${op} | ${load} | ${contenders.map(cell).join(' | ')} | ${vs('raw')} | ${vs('cps')} |`);
      if (op === 'get') continue;
      const fig = (who: NodeContenderName) => {
        const f = serverFigures(cells, p, who);
        return Number.isFinite(f.batch) ? `${f.batch.toFixed(2)} / ${f.perFlush.toFixed(2)}` : '—';
      };
      server.push(`| ${op} | ${load} | ${contenders.map(fig).join(' | ')} |`);
    }
  }
  return [
    'ops/s (p50 / p99 ms), medians over rounds; ratios are medians of same-round ratios:',
    '',
    ...lines,
    '',
    'Measured by the server over each cell (warm-up included, summed over rounds): calls per committed transaction (mean batch size) / commits per WAL flush:',
    '',
    ...server,
  ].join('\n');
}

export function mixedTable(cells: DurableCell[], disk: DiskName, contenders: NodeContenderName[]): string {
  const loops = loads(cells, disk, 'mixed', 'get')[0];
  if (loops === undefined) return '';
  const lines = [
    `${loops} get loops and ${loops} set loops at once (closed loops), medians over rounds:`,
    '',
    '| contender | gets/s | get p50 / p99 ms | sets/s | set p50 / p99 ms | write transactions per WAL flush | ours gets / its gets |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const who of contenders) {
    const g = { disk, scenario: 'mixed' as const, op: 'get', load: loops };
    const s = { ...g, op: 'set' };
    if (!Number.isFinite(medianOf(cells, g, who, 'opsPerSec'))) continue;
    lines.push(
      `| ${contenderLabels[who]} | ${fmt(medianOf(cells, g, who, 'opsPerSec'))} | ${ms(medianOf(cells, g, who, 'p50Ms'))} / ${ms(medianOf(cells, g, who, 'p99Ms'))} | ${fmt(medianOf(cells, s, who, 'opsPerSec'))} | ${ms(medianOf(cells, s, who, 'p50Ms'))} / ${ms(medianOf(cells, s, who, 'p99Ms'))} | ${serverFigures(cells, s, who, 'xids').perFlush.toFixed(2)} | ${times(ratio(cells, { ...g, who: 'ours' }, { ...g, who }))} |`,
    );
  }
  return lines.join('\n');
}

export function openTable(cells: DurableCell[], disk: DiskName, contenders: NodeContenderName[]): string {
  const lines = [
    'Sets arriving at a fixed rate, each in its own event-loop turn; latency from the scheduled arrival; medians over rounds:',
    '',
    '| offered sets/s | contender | served/s | p50 ms | p99 ms | dropped | mean batch (calls per commit) | commits per WAL flush |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const load of loads(cells, disk, 'open', 'set')) {
    for (const who of contenders) {
      const p = { disk, scenario: 'open' as const, op: 'set', load };
      const mine = cells.filter((c) => matches(c, p) && c.contender === who);
      if (mine.length === 0) continue;
      const f = serverFigures(cells, p, who);
      const dropped = mine.reduce((s, c) => s + (c.dropped ?? 0), 0);
      lines.push(
        `| ${fmt(load)} | ${contenderLabels[who]} | ${fmt(medianOf(cells, p, who, 'opsPerSec'))} | ${ms(medianOf(cells, p, who, 'p50Ms'))} | ${ms(medianOf(cells, p, who, 'p99Ms'))} | ${fmt(dropped)} | ${f.batch.toFixed(2)} | ${f.perFlush.toFixed(2)} |`,
      );
    }
  }
  return lines.join('\n');
}
