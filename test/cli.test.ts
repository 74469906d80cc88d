// The session-pg CLI as a DBA runs it: a separate process, exit codes, output.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { purgeAll, type PurgeProgress } from '../src/admin.js';
import type { SessionError } from '../src/index.js';
import { freePort } from './harness/cluster.js';
import { databaseUrl } from './harness/urls.js';
import {
  adminQuery,
  adminUrl,
  bindir,
  cli,
  cliPath,
  cronDatabase,
  freshDatabase,
  missingTool,
  pgTool,
  psql,
  schemaDump,
  shippedMigrations,
  uniqueName,
  type TestDatabase,
} from './helpers.js';

const shipped = shippedMigrations();

let db: TestDatabase;
before(async () => {
  db = await freshDatabase('cli');
});
after(async () => {
  await db.drop();
});

describe('migrations', () => {
  test('migrate, status, with --database-url or DATABASE_URL; migrate down is a usage error', async () => {
    const empty = await freshDatabase('climig', { empty: true });
    try {
      let r = cli(['migrate', '--database-url', empty.url]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `Applied: ${shipped.join(', ')}\n`);
      r = cli(['migrate'], { DATABASE_URL: empty.url });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /Nothing to do/);
      assert.match(cli(['status'], { DATABASE_URL: empty.url }).stdout, new RegExp(`^applied {2}${shipped[0]}`, 'm'));
      // Forward-only: the way to remove everything is named, and nothing changes.
      for (const args of [
        ['migrate', 'down'],
        ['migrate', 'down', '--count', '3'],
      ]) {
        r = cli([...args, '--database-url', empty.url]);
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, /forward-only: there is no down step.*sql\/uninstall\.sql/);
        assert.equal(r.stdout, '');
      }
      assert.match(cli(['status', '--database-url', empty.url]).stdout, new RegExp(`^applied {2}${shipped[0]}`, 'm'));
    } finally {
      await empty.drop();
    }
  });

  test('`session-pg sql | psql` installs the same schema as migrate, and again is a no-op', {
    skip: missingTool('psql') || missingTool('pg_dump'),
  }, async () => {
    const empty = await freshDatabase('clisql', { empty: true });
    try {
      const script = cli(['sql']).stdout;
      assert.ok(!script.includes('\\ir '), 'the files are inlined');
      const first = spawnSync(join(bindir, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', empty.url], {
        encoding: 'utf8',
        input: script,
      });
      assert.equal(first.status, 0, first.stderr);
      // No result table (the files' search_path pins), and one word on the purge job: the final one.
      assert.equal(first.stdout, '');
      assert.doesNotMatch(first.stderr, /session\.session_purge\(\)/);
      assert.match(first.stderr, /session_purge_job\(\)/);
      pgTool('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', empty.url], script);
      assert.equal(schemaDump(empty.url), schemaDump(db.url));
      assert.match(cli(['status', '--database-url', empty.url]).stdout, new RegExp(`^applied {2}${shipped[0]}`, 'm'));
    } finally {
      await empty.drop();
    }
  });
});

describe('operations', () => {
  test('purge deletes every expired session, printing progress lines off a terminal', async () => {
    await db.query(`INSERT INTO session.sessions (digest, expires_at, value)
                    SELECT sha256(('cli' || i)::bytea), now() - interval '1 s', 'x' FROM generate_series(1, 5000) i`);
    const r = cli(['purge', '--batch-size', '1000', '--database-url', db.url]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^purged \d+ rows in 1 batches, \d+ rows\/s, [\d.]+ s$/m);
    assert.match(r.stdout, /Done: 5000 expired sessions deleted\./);
    assert.equal(psql(db.url, 'SELECT count(*) FROM session.sessions WHERE expires_at <= now()'), '0');
  });

  test('purge rests after each call (--pause, default 4x the call) and refuses a bad factor', async () => {
    const expire = async (n: number) =>
      db.query(`INSERT INTO session.sessions (digest, expires_at, value)
      SELECT sha256(('pace' || i || random())::bytea), now() - interval '1 s', repeat('x', 1500) FROM generate_series(1, ${n}) i`);
    for (const bad of ['-1', 'abc', '', '1001']) {
      const r = cli(['purge', `--pause=${bad}`, '--database-url', db.url]);
      assert.equal(r.status, 2, `--pause ${bad}: ${r.stderr}`);
      assert.match(r.stderr, /--pause must be a number from 0 to 1000/);
    }
    await expire(3000);
    const r = cli(['purge', '--batch-size', '1000', '--pause', '0.5', '--database-url', db.url]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Done: 3000 expired sessions deleted\./);

    // The rest after each call that deleted rows is at least factor x its duration (a lower bound:
    // timers never fire early), and none follows the final call that found nothing.
    for (const pause of [0, 2]) {
      await expire(3000);
      const seen: PurgeProgress[] = [];
      const done = await purgeAll({ connectionString: db.url, batchSize: 1000, pause }, (p) => {
        seen.push(p);
      });
      assert.equal(done.deleted, 3000);
      // About 5 rows a page: each call sweeps 1 MiB ranges until it has 1000 rows, so several calls.
      assert.ok(done.batches >= 3, `${done.batches} batches`);
      assert.equal(seen.length, done.batches);
      assert.equal(seen.at(-2)!.deleted, 3000);
      const lastCall = done.busyMs - seen.at(-2)!.busyMs;
      const rested = done.elapsedMs - done.busyMs;
      assert.ok(
        rested >= pause * (done.busyMs - lastCall) - 5,
        `rested ${rested} ms after ${done.busyMs} ms of calls (pause ${pause})`,
      );
    }
    await assert.rejects(
      purgeAll({ connectionString: db.url, pause: -1 }, () => {}),
      (e: SessionError) => e.code === 'invalid_argument',
    );
  });

  test('purge --batch-size N: each call deletes N or more, up to one 1 MiB block range more (as its help says)', async () => {
    assert.match(cli(['purge', '--help']).stdout, /stops at the end of the range in which it reached N deleted rows/);
    await db.query(`INSERT INTO session.sessions (digest, expires_at, value)
                    SELECT sha256(('batch' || i)::bytea), now() - interval '1 s', repeat('x', 200) FROM generate_series(1, 20000) i`);
    // Rows in the fullest 128-page (1 MiB) range: the most a call can delete beyond N.
    const perRange = Number(
      psql(
        db.url,
        `SELECT max(c) FROM (SELECT count(*) c FROM session.sessions
                                          GROUP BY (ctid::text::point)[0]::bigint / 128) r`,
      ),
    );
    let left = 20000;
    while (left > 0) {
      const n = Number(psql(db.url, 'SELECT session.session_purge(3000)'));
      assert.ok(
        n >= Math.min(3000, left) && n < 3000 + perRange,
        `deleted ${n} (N 3000, ${perRange} rows a range, ${left} left)`,
      );
      left -= n;
    }
    assert.equal(psql(db.url, 'SELECT session.session_purge(3000)'), '0');
  });

  test('stats reports counts, sizes and settings; needs the admin role; says to migrate where nothing is installed', async () => {
    psql(db.url, `SELECT session.session_generate(600, 'a'), session.session_generate(0, 'b')`);
    const r = cli(['stats', '--json', '--database-url', db.url]);
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.ok(Number(s.live) >= 1 && Number(s.expired) >= 1, r.stdout);
    assert.ok(Number(s.tableBytes) > 0 && Number(s.indexBytes) > 0);
    assert.equal(s.defaultPeriod, 604800);
    assert.equal(s.maxValueBytes, 1048576);
    assert.equal(s.cron, null);
    const text = cli(['stats', '--database-url', db.url]).stdout;
    assert.match(text, /^live sessions +\d+$/m);
    assert.match(text, /^table size +\d+\.\d (KiB|MiB)$/m);
    assert.match(text, /^default period +604800 s \(7 d\)$/m);
    assert.match(text, /^max value size +1\.0 MiB$/m);

    const app = await db.clientRole();
    const refused = cli(['stats', '--database-url', app]);
    assert.equal(refused.status, 1);
    assert.equal(refused.stderr.split('\n').length, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /^session-pg: permission_denied: permission denied for function session_stats \(SQLSTATE 42501\) HINT: session-pg stats needs the admin role/,
    );
    const operator = uniqueName('ops');
    await adminQuery(`CREATE ROLE ${operator} LOGIN PASSWORD 'pw' IN ROLE session_admin`);
    try {
      const allowed = cli(['stats', '--database-url', databaseUrl(db.url, db.name, { user: operator, password: 'pw' })]);
      assert.equal(allowed.status, 0, allowed.stderr);
    } finally {
      await adminQuery(`DROP ROLE ${operator}`);
    }

    const empty = await freshDatabase('clistats', { empty: true });
    try {
      const missing = cli(['stats', '--database-url', empty.url]);
      assert.equal(missing.status, 1);
      assert.match(
        missing.stderr,
        /^session-pg: not_installed: session-postgresql is not installed in this database: run session-pg migrate \(SQLSTATE 3F000\)\n$/,
      );
      for (const args of [['default-period'], ['default-period', '60'], ['purge'], ['sessions', 'alice'], ['revoke', 'alice']]) {
        const r = cli([...args, '--database-url', empty.url]);
        assert.equal(r.status, 1, args.join(' '));
        assert.match(
          r.stderr,
          /^session-pg: not_installed: .* \(SQLSTATE (3F000|42883)\) HINT: session-postgresql is not installed in this database: run session-pg migrate\n$/,
          args.join(' '),
        );
      }
    } finally {
      await empty.drop();
    }
  });

  test('default-period shows and changes; bad values are usage errors, one line each, and change nothing', () => {
    assert.equal(cli(['default-period', '--database-url', db.url]).stdout.trim(), '604800');
    assert.equal(cli(['default-period', '86400', '--database-url', db.url]).stdout.trim(), '86400');
    const range = 'SECONDS must be a whole number from 1 to 3155760000';
    for (const [args, message] of [
      [['0'], `${range}, got "0"`],
      [['-5'], `${range}, got "-5"`],
      [['3155760001'], `${range}, got "3155760001"`],
      [['1.5'], `${range}, got "1.5"`],
      [['soon'], `${range}, got "soon"`],
      [['86400', 'extra'], 'takes at most one argument; unexpected: extra'],
    ] as const) {
      const r = cli(['default-period', ...args, '--database-url', db.url]);
      assert.equal(r.status, 2, args.join(' '));
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `session-pg default-period: ${message} (see session-pg default-period --help)\n`);
    }
    assert.equal(cli(['default-period', '--database-url', db.url]).stdout.trim(), '86400');
    assert.equal(cli(['default-period', '604800', '--database-url', db.url]).stdout.trim(), '604800');
  });

  test('schedule / unschedule the pg_cron job from another database', async (t) => {
    // Without the procedure (dropped by hand): no job that would fail every minute is scheduled.
    const old = await freshDatabase('clinojob', { empty: true });
    try {
      assert.equal(cli(['migrate', '--database-url', old.url]).status, 0);
      psql(old.url, 'DROP PROCEDURE session.session_purge_job(integer, double precision)');
      const early = cli(['schedule', '--database-url', old.url]);
      assert.equal(early.status, 1);
      assert.match(early.stderr, /not_installed: session\.session_purge_job is missing.*run session-pg migrate first/);
    } finally {
      await old.drop();
    }
    const refused = () => {
      const r = cli(['schedule', '--database-url', db.url]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /not_installed: pg_cron is not installed/);
      return r.stderr;
    };
    if (!cronDatabase) {
      refused();
      t.skip('pg_cron is not installed on this machine; scheduling itself is not tested');
      return;
    }
    const cronUrl = databaseUrl(adminUrl, cronDatabase);
    // Before CREATE EXTENSION in pg_cron's database (another test file may have run it): what is missing, and where.
    psql(cronUrl, 'DROP EXTENSION IF EXISTS pg_cron');
    assert.match(
      refused(),
      new RegExp(
        `pg_cron is not installed in this database nor in ${cronDatabase}, which cron\\.database_name names: as a superuser .*CREATE EXTENSION pg_cron;`,
      ),
    );
    psql(cronUrl, 'CREATE EXTENSION pg_cron');
    // Found without the flag (a superuser reads cron.database_name): the same job as with it.
    const found = cli(['schedule', '--database-url', db.url]);
    assert.equal(found.status, 0, found.stderr);
    assert.equal(found.stdout, `Scheduled pg_cron job session-purge-${db.name}.\n`);
    const args = ['--database-url', db.url, '--cron-database-url', cronUrl];
    const r = cli(['schedule', '--every', '*/5 * * * *', ...args]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`session-purge-${db.name}`));
    const stats = JSON.parse(cli(['stats', '--json', ...args]).stdout) as { cron: { schedule: string; database: string } };
    assert.equal(stats.cron.schedule, '*/5 * * * *');
    assert.equal(stats.cron.database, db.name);
    assert.match(cli(['unschedule', ...args]).stdout, /Removed/);
    assert.match(cli(['unschedule', ...args]).stdout, /There was no purge job/);
  });
});

describe('usage', () => {
  test('--help on every command; usage errors exit 2 with one line; database errors exit 1', async () => {
    for (const c of ['', 'migrate', 'status', 'purge', 'stats', 'default-period', 'schedule', 'unschedule', 'sql']) {
      const r = cli(c ? [c, '--help'] : ['--help']);
      assert.equal(r.status, 0, c);
      assert.match(r.stdout, /Usage: session-pg/, c);
    }
    for (const c of ['purge', 'stats', 'default-period']) assert.match(cli([c, '--help']).stdout, /admin role/, c);
    assert.match(cli(['sql', '--help']).stdout, /-v client_role=\S+ -v admin_role=\S+/);
    assert.equal(cli([]).status, 2);
    for (const args of [
      ['frobnicate'],
      ['migrate', 'sideways'],
      ['migrate', '--count', 'x'],
      ['migrate', '--count', '-1'],
      ['status', 'extra'],
      ['--bogus-flag'],
      ['status', '--every', '5'],
      ['purge', '--batch-size', '0'],
    ]) {
      const r = cli(args);
      assert.equal(r.status, 2, args.join(' '));
      assert.equal(r.stderr.split('\n').length, 2, `one line for ${args.join(' ')}: ${r.stderr}`);
    }
    const r = cli(['status', '--database-url', `postgresql://postgres@127.0.0.1:${await freePort()}/x`]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^session-pg: connection: /);
  });

  test('a reader that leaves early (session-pg sql | head -3) ends the output quietly', async () => {
    const child = spawn(process.execPath, [cliPath, 'sql'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Closed before the command writes a byte: its first write meets EPIPE, whatever the pipe's size.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });

  test('names of Object.prototype are unknown commands', () => {
    for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'main']) {
      const r = cli([name]);
      assert.equal(r.status, 2, name);
      assert.equal(r.stderr, `session-pg: unknown command "${name}" (see session-pg --help)\n`);
    }
  });

  test('a database URL that is not a postgresql:// URL is a usage error, never a connection to 127.0.0.1:5432', () => {
    const cases: [string, RegExp][] = [
      ['not a url', /--database-url must be a postgresql:\/\/ URL, e\.g\./],
      ['mysql://root:secret@db.example/app', /--database-url must be a postgresql:\/\/ URL, not mysql:\/\/\.\.\./],
      ['postgresql://u@host:notaport/app', /--database-url has a bad port: a port is a number from 1 to 65535/],
      ['postgresql://postgres@127.0.0.1:5501O/app', /--database-url has a bad port: a port is a number from 1 to 65535/],
      ['postgresql://u:secret@[::1]:99999/app', /--database-url has a bad port/],
      ['postgresql://u:secret/app', /--database-url has a bad port/],
      ['postgresql://u:%zz@localhost/app', /--database-url is not a valid URL: bad %-escape/],
    ];
    for (const [url, message] of cases) {
      for (const command of ['status', 'migrate', 'stats']) {
        const r = cli([command, '--database-url', url]);
        assert.equal(r.status, 2, `${command} ${url}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.ok(!r.stderr.includes('secret'), 'the password is not echoed');
      }
      const env = cli(['status'], { DATABASE_URL: url });
      assert.equal(env.status, 2, url);
      assert.match(env.stderr, /DATABASE_URL (must be|is not|has a bad port)/);
    }
    assert.equal(cli(['stats', '--cron-database-url', 'cron', '--database-url', db.url]).status, 2);
  });
});
