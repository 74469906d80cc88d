// Turns the rounds' measurements into medians, ratios, a Markdown table and an SVG chart.
import { median, type Measurement } from './load.js';

export const contenderNames = ['ours', 'raw', 'cps', 'pgbench'] as const;
export type ContenderName = (typeof contenderNames)[number];
export const opNames = ['get', 'set', 'generate', 'clear'] as const;
export type OpName = (typeof opNames)[number];

export const labels: Record<ContenderName, string> = {
  ours: 'ours',
  raw: 'raw pg.Pool',
  cps: 'connect-pg-simple',
  pgbench: 'pgbench',
};

export interface Cell extends Measurement {
  round: number;
  contender: ContenderName;
  op: OpName;
  concurrency: number;
}

export interface Summary {
  contender: ContenderName;
  op: OpName;
  concurrency: number;
  rounds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

export interface RatioSummary {
  op: OpName;
  concurrency: number;
  /** Median over rounds of ours / other, each ratio taken within one round. */
  vsRaw: number;
  vsCps: number;
  vsPgbench: number;
}

export function summarizeCells(cells: Cell[]): { summaries: Summary[]; ratios: RatioSummary[] } {
  const summaries: Summary[] = [];
  const ratios: RatioSummary[] = [];
  const concurrencies = [...new Set(cells.map((c) => c.concurrency))].sort((a, b) => a - b);
  for (const op of opNames) {
    for (const concurrency of concurrencies) {
      const here = cells.filter((c) => c.op === op && c.concurrency === concurrency);
      if (here.length === 0) continue;
      for (const contender of contenderNames) {
        const mine = here.filter((c) => c.contender === contender);
        if (mine.length === 0) continue;
        summaries.push({
          contender,
          op,
          concurrency,
          rounds: mine.length,
          opsPerSec: median(mine.map((c) => c.opsPerSec)),
          p50Ms: median(mine.map((c) => c.p50Ms)),
          p99Ms: median(mine.map((c) => c.p99Ms)),
        });
      }
      ratios.push({
        op,
        concurrency,
        vsRaw: roundRatio(here, 'ours', op, 'raw', op),
        vsCps: roundRatio(here, 'ours', op, 'cps', op),
        vsPgbench: roundRatio(here, 'ours', op, 'pgbench', op),
      });
    }
  }
  return { summaries, ratios };
}

/** Median over rounds of a/b, both measured in the same round (so drift between rounds cancels). */
export function roundRatio(
  cells: Cell[],
  a: ContenderName,
  aOp: OpName,
  b: ContenderName,
  bOp: OpName,
  concurrency?: number,
): number {
  const pick = (who: ContenderName, op: OpName, round: number) =>
    cells.find(
      (c) =>
        c.contender === who && c.op === op && c.round === round && (concurrency === undefined || c.concurrency === concurrency),
    );
  const rounds = [...new Set(cells.map((c) => c.round))];
  const rs = rounds.flatMap((r) => {
    const x = pick(a, aOp, r);
    const y = pick(b, bOp, r);
    return x && y && y.opsPerSec > 0 ? [x.opsPerSec / y.opsPerSec] : [];
  });
  return median(rs);
}

export interface Target {
  what: string;
  ratio: number;
  target: number;
  met: boolean;
}

/**
 * Median over rounds of ours' get at `concurrency` over pgbench's best get of the same round at any
 * number of clients: pgbench opens one connection per request in flight, which on a small machine
 * can be slower at 32 than at 8, so its best is the stricter yardstick.
 */
function vsBestPgbench(cells: Cell[], concurrency: number): number {
  const rounds = [...new Set(cells.map((c) => c.round))];
  return median(
    rounds.flatMap((r) => {
      const ours = cells.find((c) => c.round === r && c.contender === 'ours' && c.op === 'get' && c.concurrency === concurrency);
      const best = Math.max(
        ...cells.filter((c) => c.round === r && c.contender === 'pgbench' && c.op === 'get').map((c) => c.opsPerSec),
      );
      return ours && best > 0 ? [ours.opsPerSec / best] : [];
    }),
  );
}

/** The targets, at 32 in flight. */
export function targets(cells: Cell[], concurrency = 32): Target[] {
  const at = cells.filter((c) => c.concurrency === concurrency);
  const t = (what: string, ratio: number, target: number): Target => ({ what, ratio, target, met: ratio >= target });
  return [
    t('get: ours / raw', roundRatio(at, 'ours', 'get', 'raw', 'get'), 1.0),
    t('get: ours / connect-pg-simple', roundRatio(at, 'ours', 'get', 'cps', 'get'), 2.0),
    t('get: ours / pgbench (32 clients)', roundRatio(at, 'ours', 'get', 'pgbench', 'get'), 0.75),
    t("get: ours / pgbench's best client count (stricter)", vsBestPgbench(cells, concurrency), 0.75),
    t('set: ours / connect-pg-simple', roundRatio(at, 'ours', 'set', 'cps', 'set'), 1.8),
    t("generate: ours / connect-pg-simple's set", roundRatio(at, 'ours', 'generate', 'cps', 'set'), 1.5),
  ];
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—';
const ms = (n: number) => (Number.isFinite(n) ? (n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1)) : '—');
const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '—');

export function markdownTable(summaries: Summary[], ratios: RatioSummary[], concurrencies?: number[]): string {
  const lines = [
    '| op | in flight | ours ops/s (p50 / p99 ms) | raw pg.Pool | connect-pg-simple | pgbench | ours/raw | ours/cps | ours/pgbench |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of ratios) {
    if (concurrencies && !concurrencies.includes(r.concurrency)) continue;
    const cell = (who: ContenderName) => {
      const s = summaries.find((s) => s.contender === who && s.op === r.op && s.concurrency === r.concurrency);
      return s ? `${fmt(s.opsPerSec)} (${ms(s.p50Ms)} / ${ms(s.p99Ms)})` : '—';
    };
    lines.push(
      `| ${r.op} | ${r.concurrency} | ${cell('ours')} | ${cell('raw')} | ${cell('cps')} | ${cell('pgbench')} | ${x(r.vsRaw)} | ${x(r.vsCps)} | ${x(r.vsPgbench)} |`,
    );
  }
  return lines.join('\n');
}

export function targetTable(ts: Target[]): string {
  return [
    '| target (ours at 32 in flight) | measured | target | met |',
    '|---|---:|---:|---|',
    ...ts.map(
      (t) =>
        `| ${t.what} | ${x(t.ratio)} | ≥ ${t.target.toFixed(2)}× | ${Number.isFinite(t.ratio) ? (t.met ? 'yes' : '**no**') : 'not measured'} |`,
    ),
  ].join('\n');
}

const colors: Record<ContenderName, string> = { ours: '#1f77b4', raw: '#7f7f7f', cps: '#ff7f0e', pgbench: '#2ca02c' };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** A grouped bar chart: one panel per operation, bars per contender at each concurrency. */
export function svgChart(summaries: Summary[], title: string, subtitle = ''): string {
  const concurrencies = [...new Set(summaries.map((s) => s.concurrency))].sort((a, b) => a - b);
  const ops = opNames.filter((op) => summaries.some((s) => s.op === op));
  const panelW = 300;
  const panelH = 220;
  const left = 56;
  const top = 62;
  const gap = 30;
  const width = Math.max(left + ops.length * (panelW + gap), left + 4 * 160);
  const height = top + panelH + 80;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left}" y="36" fill="#555">${esc(subtitle)}</text>`,
  ];
  ops.forEach((op, pi) => {
    const x0 = left + pi * (panelW + gap);
    const mine = summaries.filter((s) => s.op === op);
    const step = niceStep(Math.max(1, ...mine.map((s) => s.opsPerSec)) / 4);
    const max = step * Math.ceil(Math.max(1, ...mine.map((s) => s.opsPerSec)) / step);
    out.push(`<text x="${x0 + panelW / 2}" y="${top - 8}" text-anchor="middle" font-size="13" font-weight="bold">${op}</text>`);
    for (let v = 0; v <= max + step / 2; v += step) {
      const y = top + panelH - (v / max) * panelH;
      out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + panelW}" y2="${y}" stroke="#ddd"/>`);
      out.push(`<text x="${x0 - 4}" y="${y + 4}" text-anchor="end" fill="#555">${short(v)}</text>`);
    }
    const groupW = panelW / concurrencies.length;
    const barW = (groupW - 12) / contenderNames.length;
    concurrencies.forEach((c, gi) => {
      const gx = x0 + gi * groupW + 6;
      contenderNames.forEach((who, bi) => {
        const s = mine.find((m) => m.contender === who && m.concurrency === c);
        if (!s || !Number.isFinite(s.opsPerSec)) return;
        const h = (s.opsPerSec / max) * panelH;
        out.push(
          `<rect x="${(gx + bi * barW).toFixed(1)}" y="${(top + panelH - h).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${h.toFixed(1)}" fill="${colors[who]}"><title>${esc(labels[who])} ${op} @${c}: ${Math.round(s.opsPerSec)} ops/s</title></rect>`,
        );
      });
      out.push(`<text x="${gx + (groupW - 12) / 2}" y="${top + panelH + 14}" text-anchor="middle">${c}</text>`);
    });
    out.push(`<text x="${x0 + panelW / 2}" y="${top + panelH + 30}" text-anchor="middle" fill="#555">requests in flight</text>`);
  });
  out.push(
    `<text x="14" y="${top + panelH / 2}" transform="rotate(-90 14 ${top + panelH / 2})" text-anchor="middle" fill="#555">operations per second</text>`,
  );
  contenderNames.forEach((who, i) => {
    const lx = left + i * 170;
    const ly = height - 18;
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${colors[who]}"/><text x="${lx + 18}" y="${ly}">${esc(labels[who])}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least v. */
function niceStep(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5]) if (m * p >= v) return m * p;
  return 10 * p;
}

const short = (n: number) => (n >= 1000 ? `${Math.round(n / 100) / 10}k` : String(Math.round(n)));
