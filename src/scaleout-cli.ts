// `session-pg scaleout ...`: the DBA's commands for a PL/Proxy deployment (docs/scale-out.md).
// Kept apart from src/cli.ts, which only dispatches here. Passwords are never printed: URLs are
// shown redacted, and partition URLs may come from the environment instead of the command line
// (which other users of the machine can see in the process list): $SESSION_PG_PROXY_PARTITIONS for
// install (the proxy's login), $SESSION_PG_PARTITION_OWNERS for migrate (the owners).
import { parseArgs } from 'node:util';
import type { CronRun } from './admin.js';
import { SessionError } from './errors.js';
import {
  bypassWarnings,
  installProxy,
  migratePartitions,
  movePartition,
  proxyStatus,
  redact,
  type PartitionPurgeJob,
} from './scaleout.js';

export const scaleoutHelp = `Usage: session-pg scaleout <command> [options]

Commands:
  migrate --partition URL...          session-pg migrate on every partition (owner URLs;
                                      default: $SESSION_PG_PARTITION_OWNERS)
  install --database-url PROXY --partition URL...
                                      install or update the proxy database: its functions and the
                                      partitions (URLs with the proxy's login, in partition order;
                                      default: $SESSION_PG_PROXY_PARTITIONS)
  status --database-url PROXY         each partition: database, live and expired sessions, errors
  move N --database-url PROXY [--proxy URL...] --from URL --to URL
                                      move partition N to another database (superuser URLs; the
                                      old server needs wal_level = logical); --proxy: every
                                      further proxy database, all switched together

Options:
  --partition URL       repeatable; default: the variable named above (URLs separated by spaces)
  --database-url URL    the proxy database, as its owner (default: $DATABASE_URL)
  --client-role NAME, --admin-role NAME   role names (first install; for install, the proxy's:
                        default session_proxy_client, session_proxy_admin)
  --proxy-role NAME     migrate: the role the proxy's login is in (default session_proxy)
  --query-timeout SECS  PL/Proxy's query_timeout (default 10)
  --tcp-user-timeout MS unanswered packets to a partition (default 5000)
  --json                status as JSON

Exit codes: 0 success, 1 the database failed or refused, 2 wrong usage.`;

class Usage extends Error {}

function whole(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Usage(`${name} must be a whole number`);
  return n;
}

/** Runs `session-pg scaleout <args>`; resolves the exit code. */
export async function scaleoutCommand(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        partition: { type: 'string', multiple: true },
        'database-url': { type: 'string' },
        proxy: { type: 'string', multiple: true },
        from: { type: 'string' },
        to: { type: 'string' },
        'client-role': { type: 'string' },
        'admin-role': { type: 'string' },
        'proxy-role': { type: 'string' },
        'query-timeout': { type: 'string' },
        'tcp-user-timeout': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const [command, ...rest] = positionals;
    if (values.help || command === undefined) {
      console.log(scaleoutHelp);
      return command === undefined && !values.help ? 2 : 0;
    }
    const partitions = (variable: string) => {
      if (values.partition !== undefined) return values.partition;
      if (process.env.SESSION_PG_PARTITIONS !== undefined) {
        // It meant proxy logins to install and owner URLs to migrate: refused, not guessed.
        throw new Usage(
          "$SESSION_PG_PARTITIONS is no longer read: set $SESSION_PG_PROXY_PARTITIONS (the proxy's login, for install) " +
            'or $SESSION_PG_PARTITION_OWNERS (owner URLs, for migrate), and unset it',
        );
      }
      const list = (process.env[variable] ?? '').split(/\s+/).filter(Boolean);
      if (list.length === 0) throw new Usage(`give the partitions with --partition URL or $${variable}`);
      return list;
    };
    const proxyUrl = values['database-url'] ?? process.env.DATABASE_URL;
    const roles = {
      ...(values['client-role'] === undefined ? {} : { clientRole: values['client-role'] }),
      ...(values['admin-role'] === undefined ? {} : { adminRole: values['admin-role'] }),
    };
    const needProxy = () => {
      if (proxyUrl === undefined) throw new Usage('--database-url (the proxy database) is required');
      return proxyUrl;
    };
    switch (command) {
      case 'migrate': {
        const owners = partitions('SESSION_PG_PARTITION_OWNERS');
        await migratePartitions(owners, {
          ...roles,
          ...(values['proxy-role'] === undefined ? {} : { proxyRole: values['proxy-role'] }),
          log: (l) => console.error(l),
        });
        console.log(`Migrated ${owners.length} partitions.`);
        return 0;
      }
      case 'install': {
        const logins = partitions('SESSION_PG_PROXY_PARTITIONS');
        const queryTimeout = whole('--query-timeout', values['query-timeout']);
        const tcp = whole('--tcp-user-timeout', values['tcp-user-timeout']);
        const ran = await installProxy({
          connectionString: needProxy(),
          partitions: logins,
          ...roles,
          log: (l) => console.error(l),
          ...(queryTimeout === undefined ? {} : { queryTimeoutSeconds: queryTimeout }),
          ...(tcp === undefined ? {} : { tcpUserTimeoutMs: tcp }),
        });
        console.log(
          ran.length === 0
            ? `Proxy up to date; ${logins.length} partitions set.`
            : `Applied ${ran.join(', ')}; ${logins.length} partitions set.`,
        );
        return 0;
      }
      case 'status': {
        const s = await proxyStatus({ connectionString: needProxy() });
        if (values.json) {
          console.log(JSON.stringify(s, null, 2));
          return 0;
        }
        for (const m of s.migrations) console.log(`${m.applied ? 'applied' : 'pending'}  sql/proxy/steps/${m.name}.sql`);
        for (const p of s.partitions) {
          const where = p.conninfo.replace(/ (tcp_user_timeout|application_name|options)=.*$/, '');
          console.log(
            p.error === null
              ? `p${p.part}  ${where}  live ${p.live}  expired ${p.expired}  default period ${p.defaultPeriod} s`
              : `p${p.part}  ${where}  DOWN: ${p.error}`,
          );
        }
        for (const w of bypassWarnings(s.partitions)) console.error(`session-pg scaleout: warning: ${w}`);
        return s.partitions.some((p) => p.error !== null) ? 1 : 0;
      }
      case 'move': {
        const n = whole('partition number', rest[0]);
        if (n === undefined || values.from === undefined || values.to === undefined)
          throw new Usage('usage: session-pg scaleout move N --database-url PROXY --from URL --to URL');
        const r = await movePartition({
          proxies: [needProxy(), ...(values.proxy ?? [])],
          partition: n,
          from: values.from,
          to: values.to,
          log: (l) => console.error(l),
        });
        console.log(
          `Moved partition ${n} to ${redact(values.to)}: ${r.rows} sessions; writes paused ${r.pausedMs.toFixed(0)} ms.`,
        );
        return 0;
      }
      default:
        throw new Usage(`Unknown command "${command}".\n\n${scaleoutHelp}`);
    }
  } catch (err) {
    if (err instanceof Usage || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error((err as Error).message);
      return 2;
    }
    const code = err instanceof SessionError ? err.code : 'error';
    console.error(`session-pg scaleout: ${code}: ${(err as Error).message}`);
    return 1;
  }
}

/** `session-pg stats` on a proxy: each partition's purge job instead of the proxy's (it has none). */
export function printPartitionJobs(jobs: PartitionPurgeJob[], runLine: (r: CronRun) => string): void {
  console.log('purge jobs         on each partition:');
  for (const j of jobs) {
    const name = j.part < 0 ? '' : `p${j.part} ${j.database}: `;
    if (j.cron === null) {
      console.log(`  ${name}none: ${j.note ?? ''}`);
      continue;
    }
    console.log(`  ${name}"${j.cron.schedule}" ${j.cron.command} in ${j.cron.database}${j.cron.active ? '' : ' (inactive)'}`);
    for (const r of j.cron.lastRuns.slice(0, 1)) console.log(`  ${runLine(r)}`);
    if (j.warning !== undefined) console.error(`session-pg: warning: p${j.part}: ${j.warning}`);
  }
}
