import type { Writable } from 'node:stream';
import pg from 'pg';
import { parseConninfo, type ConnectionOptions } from './connection.js';
import { SessionError } from './errors.js';

/**
 * libpq's `target_session_attrs`: which of the listed hosts a connection may use.
 * - `any`: the first host that accepts the connection (the default).
 * - `read-write`: one whose sessions accept writes (`transaction_read_only` off).
 * - `read-only`: one whose sessions do not (a standby, or `default_transaction_read_only` on).
 * - `primary`: one not in recovery (`pg_is_in_recovery()` false).
 * - `standby`: one in recovery.
 * - `prefer-standby`: a standby if one is reachable, otherwise any host.
 */
export type TargetSessionAttrs = 'any' | 'read-write' | 'read-only' | 'primary' | 'standby' | 'prefer-standby';

const attrsValues: readonly TargetSessionAttrs[] = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'];

/** The hosts to try in order, each as options naming that host alone, and how to choose among them. */
export interface HostPlan {
  attrs: TargetSessionAttrs;
  hosts: ConnectionOptions[];
}

function checkAttrs(value: string | undefined): TargetSessionAttrs {
  if (value === undefined) return 'any';
  if (!(attrsValues as readonly string[]).includes(value)) {
    throw new SessionError('invalid_argument', `target_session_attrs must be one of ${attrsValues.join(', ')}`);
  }
  return value as TargetSessionAttrs;
}

/** `host:port`, `[v6]:port` or `host`: the port as text, '' when absent. */
function splitHostPort(entry: string): { host: string; port: string } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(entry);
  if (m === null || m[1] === '')
    throw new SessionError('invalid_argument', 'connection URL: a host in the host list is malformed');
  return { host: m[1] as string, port: m[2] ?? '' };
}

/** A URL's hosts and, for each, the same URL naming that host alone, without target_session_attrs. */
function urlHosts(url: string): { attrs: string | undefined; urls: string[] } | undefined {
  const m = /^(postgres(?:ql)?:\/\/)([^@/?#]*@)?([^/?#]*)(.*)$/s.exec(url);
  if (m === null) return undefined;
  const [, scheme = '', userinfo = '', hostList = '', rest = ''] = m;
  const q = rest.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1).replace(/#.*$/s, ''));
  const attrs = params.get('target_session_attrs') ?? undefined;
  if (!hostList.includes(',') && attrs === undefined) return undefined;
  params.delete('target_session_attrs');
  const query = params.toString();
  const tail = (q < 0 ? rest : rest.slice(0, q)) + (query === '' ? '' : `?${query}`);
  const urls = hostList.split(',').map((entry) => {
    const { host, port } = splitHostPort(entry);
    return `${scheme}${userinfo}${host}${port === '' ? '' : `:${port}`}${tail}`;
  });
  return { attrs, urls };
}

/**
 * Splits libpq's host lists: a URL `postgresql://u@h1:5432,h2:5433/db?target_session_attrs=...`,
 * or `host: 'h1,h2'` with `port` a single port or one per host (also from `conninfo`).
 * One host without `target_session_attrs` gives the options back unchanged.
 */
export function hostPlan(options: ConnectionOptions): HostPlan {
  const o = without(options.conninfo === undefined ? options : { ...parseConninfo(options.conninfo), ...options }, 'conninfo');
  if (o.connectionString !== undefined) {
    const split = urlHosts(o.connectionString);
    if (split === undefined) return { attrs: checkAttrs(o.targetSessionAttrs), hosts: [o] };
    const attrs = checkAttrs(o.targetSessionAttrs ?? split.attrs);
    return { attrs, hosts: split.urls.map((connectionString) => ({ ...o, connectionString })) };
  }
  const attrs = checkAttrs(o.targetSessionAttrs);
  const hosts = (o.host ?? o.hostaddr)?.split(',');
  const ports = o.port === undefined ? [] : String(o.port).split(',');
  if (hosts === undefined || (hosts.length === 1 && ports.length <= 1)) {
    return { attrs, hosts: [ports.length === 1 ? { ...o, port: Number(ports[0]) } : o] };
  }
  if (ports.length > 1 && ports.length !== hosts.length) {
    throw new SessionError(
      'invalid_argument',
      `port lists ${ports.length} ports for ${hosts.length} hosts (give one port, or one per host)`,
    );
  }
  return {
    attrs,
    hosts: hosts.map((host, i) => {
      const port = ports[ports.length === 1 ? 0 : i];
      const one = { ...without(o, 'hostaddr'), host: host.trim() };
      return port === undefined || port === '' ? without(one, 'port') : { ...one, port: Number(port) };
    }),
  };
}

function without(o: ConnectionOptions, key: keyof ConnectionOptions): ConnectionOptions {
  const copy = { ...o };
  delete copy[key];
  return copy;
}

/** pg's socket of a client (not part of its typed API). */
export const socketOf = (client: pg.Client) =>
  (client as unknown as { connection?: { stream?: Partial<Writable> } }).connection?.stream;

/** Where a host stands, as libpq asks it after connecting. */
interface HostState {
  inRecovery: boolean;
  readOnly: boolean;
}

/** Asks within `timeoutMs` (pg's connect timeout ends with the handshake), else drops the connection. */
async function hostState(client: pg.Client, timeoutMs: number): Promise<HostState> {
  const timer = Number.isFinite(timeoutMs) ? setTimeout(() => socketOf(client)?.destroy?.(), timeoutMs) : undefined;
  try {
    const r = await client.query<[boolean, string]>({
      text: `SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only')`,
      rowMode: 'array',
    });
    const [inRecovery, readOnly] = r.rows[0] ?? [false, 'off'];
    return { inRecovery, readOnly: readOnly === 'on' };
  } finally {
    clearTimeout(timer);
  }
}

function fits(attrs: TargetSessionAttrs, s: HostState): boolean {
  switch (attrs) {
    case 'read-write':
      return !s.readOnly;
    case 'read-only':
      return s.readOnly;
    case 'primary':
      return !s.inRecovery;
    case 'standby':
      return s.inRecovery;
    default:
      return true;
  }
}

/** What a refused host was, for the error message: never a URL (it may hold a password). */
function describe(config: pg.ClientConfig): string {
  if (config.connectionString !== undefined) {
    const m = /^postgres(?:ql)?:\/\/(?:[^@/?#]*@)?([^/?#]*)/.exec(config.connectionString);
    if (m?.[1]) return m[1];
  }
  return `${config.host ?? 'default host'}${config.port === undefined ? '' : `:${config.port}`}`;
}

/** Opens connections for a {@link HostPlan}: libpq's host list and target_session_attrs. */
export class Connector {
  constructor(
    private readonly configs: pg.ClientConfig[],
    readonly attrs: TargetSessionAttrs,
  ) {}

  /** Whether a read-only answer (25006) means this connection is on the wrong host. */
  get wantsWrites(): boolean {
    return this.attrs === 'read-write' || this.attrs === 'primary';
  }

  /**
   * Tries the hosts in order, as libpq does, and resolves the first connection whose host fits
   * `attrs`; `prefer-standby` tries for a standby first, then takes any host. With `budgetMs`, no
   * attempt starts after that long and none lasts longer than what is left of it. Rejects with
   * `connection`, naming each host and why it was passed over.
   */
  async connect(extra: pg.ClientConfig, budgetMs?: number): Promise<pg.Client> {
    const end = budgetMs === undefined ? Infinity : performance.now() + budgetMs;
    const passes: TargetSessionAttrs[] = this.attrs === 'prefer-standby' ? ['standby', 'any'] : [this.attrs];
    const why: string[] = [];
    let last: unknown;
    for (const attrs of passes) {
      for (const config of this.configs) {
        const left = end - performance.now();
        if (left <= 0) break;
        const timeout = Math.max(1, Math.min(config.connectionTimeoutMillis ?? Infinity, left));
        const client = new pg.Client({
          ...config,
          ...extra,
          connectionTimeoutMillis: Number.isFinite(timeout) ? Math.ceil(timeout) : 0,
        });
        // Without a listener, an error while connecting would crash the process.
        client.on('error', () => {});
        try {
          await client.connect();
          if (attrs === 'any' || fits(attrs, await hostState(client, timeout))) return client;
          why.push(`${describe(config)} (not ${attrs})`);
        } catch (err) {
          last = err;
          why.push(`${describe(config)} (${err instanceof Error ? err.message.split('\n', 1)[0] : String(err)})`);
        }
        await client.end().catch(() => {});
      }
    }
    if (this.configs.length === 1 && this.attrs === 'any' && last !== undefined) throw last;
    const budget = performance.now() >= end ? ' within the deadline' : '';
    throw new SessionError(
      'connection',
      `no host fits target_session_attrs=${this.attrs}${budget}: ${why.join(', ') || 'none tried'}`,
      { cause: last },
    );
  }
}
