// `session-pg scaleout ...`: the DBA's commands for a PL/Proxy deployment (docs/scale-out.md).
// Kept apart from src/cli.ts, which only dispatches here. Passwords are never printed: URLs are
// shown redacted, and partition URLs may come from $SESSION_PG_PARTITIONS instead of the command
// line (which other users of the machine can see in the process list).
import { parseArgs } from 'node:util';
import { SessionError } from './errors.js';
import { installProxy, migratePartitions, movePartition, proxyStatus, redact } from './scaleout.js';

export const scaleoutHelp = `Usage: session-pg scaleout <command> [options]

Commands:
  migrate --partition URL...          session-pg migrate on every partition (owner URLs)
  install --database-url PROXY --partition URL...
                                      install or update the proxy database: its functions and the
                                      partitions (URLs with the proxy's login, in partition order)
  status --database-url PROXY         each partition: database, live and expired sessions, errors
  move N --database-url PROXY [--proxy URL...] --from URL --to URL
                                      move partition N to another database (superuser URLs; the
                                      old server needs wal_level = logical); --proxy: every
                                      further proxy database, all switched together

Options:
  --partition URL       repeatable; default: $SESSION_PG_PARTITIONS (URLs separated by spaces)
  --database-url URL    the proxy database, as its owner (default: $DATABASE_URL)
  --client-role NAME, --admin-role NAME, --proxy-role NAME   role names (first install)
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
    const partitions = values.partition ?? (process.env.SESSION_PG_PARTITIONS ?? '').split(/\s+/).filter(Boolean);
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
        if (partitions.length === 0) throw new Usage('give the partitions with --partition URL or $SESSION_PG_PARTITIONS');
        await migratePartitions(partitions, { ...roles, ...(values['proxy-role'] === undefined ? {} : { proxyRole: values['proxy-role'] }), log: (l) => console.error(l) });
        console.log(`Migrated ${partitions.length} partitions.`);
        return 0;
      }
      case 'install': {
        if (partitions.length === 0) throw new Usage('give the partitions with --partition URL or $SESSION_PG_PARTITIONS');
        const queryTimeout = whole('--query-timeout', values['query-timeout']);
        const tcp = whole('--tcp-user-timeout', values['tcp-user-timeout']);
        const ran = await installProxy({
          connectionString: needProxy(), partitions, ...roles, log: (l) => console.error(l),
          ...(queryTimeout === undefined ? {} : { queryTimeoutSeconds: queryTimeout }),
          ...(tcp === undefined ? {} : { tcpUserTimeoutMs: tcp }),
        });
        console.log(ran.length === 0 ? `Proxy up to date; ${partitions.length} partitions set.` : `Applied ${ran.join(', ')}; ${partitions.length} partitions set.`);
        return 0;
      }
      case 'status': {
        const s = await proxyStatus({ connectionString: needProxy() });
        if (values.json) {
          console.log(JSON.stringify(s, null, 2));
          return 0;
        }
        for (const m of s.migrations) console.log(`${m.applied ? 'applied' : 'pending'}  sql/proxy/${m.name}.sql`);
        for (const p of s.partitions) {
          const where = p.conninfo.replace(/ (tcp_user_timeout|application_name|options)=.*$/, '');
          console.log(p.error === null
            ? `p${p.part}  ${where}  live ${p.live}  expired ${p.expired}  default period ${p.defaultPeriod} s`
            : `p${p.part}  ${where}  DOWN: ${p.error}`);
        }
        return s.partitions.some((p) => p.error !== null) ? 1 : 0;
      }
      case 'move': {
        const n = whole('partition number', rest[0]);
        if (n === undefined || values.from === undefined || values.to === undefined) throw new Usage('usage: session-pg scaleout move N --database-url PROXY --from URL --to URL');
        const r = await movePartition({ proxies: [needProxy(), ...(values.proxy ?? [])], partition: n, from: values.from, to: values.to, log: (l) => console.error(l) });
        console.log(`Moved partition ${n} to ${redact(values.to)}: ${r.rows} sessions; writes paused ${r.pausedMs.toFixed(0)} ms.`);
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
