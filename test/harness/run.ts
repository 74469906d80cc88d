// `npm test`: starts a throwaway cluster (or uses $DATABASE_URL), migrates a template database with
// the Node migrations, runs every test file (each clones the template into its own database), and
// removes the cluster again.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../../src/admin-index.js';
import { findBindir, startCluster, type Cluster } from './cluster.js';
import { databaseUrl } from './urls.js';

export const templateName = 'session_test_template';

/** The options run.ts knows; any other `--` argument is refused rather than silently ignored. */
const knownOptions = ['--stress'];

async function main(): Promise<number> {
  const unknown = process.argv.slice(2).filter((a) => a.startsWith('--') && !knownOptions.includes(a));
  if (unknown.length > 0) {
    console.error(
      `run.js: unknown option ${unknown.join(' ')} (options: ${knownOptions.join(' ')}; other arguments pick test files by name)`,
    );
    return 2;
  }
  let cluster: Cluster | undefined;
  const cleanup = () => cluster?.destroy();
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  process.on('SIGTERM', () => {
    cleanup();
    process.exit(143);
  });
  try {
    let adminUrl = process.env.DATABASE_URL;
    if (adminUrl) {
      console.log('# using DATABASE_URL (the tests create and drop databases and roles there)');
    } else {
      cluster = await startCluster();
      adminUrl = cluster.url;
      console.log(
        `# throwaway cluster on port ${cluster.port}: ${cluster.version}${cluster.embedded ? ', embedded' : ''} (${cluster.bindir}), pg_cron ${cluster.cron ? 'preloaded' : 'not installed'}`,
      );
    }
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${templateName} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${templateName}`);
    await admin.end();
    await migrate({ connectionString: databaseUrl(adminUrl, templateName), log: false });

    // --stress runs the long tests in test/stress/ (npm run test:stress) instead of test/.
    // Without it, the unit tests in test/unit/ (no database) run too.
    const stress = process.argv.includes('--stress');
    const dirs = (stress ? ['../stress/'] : ['..', '../unit/']).map((d) => fileURLToPath(new URL(d, import.meta.url)));
    const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
    const files = dirs.flatMap((dir) =>
      readdirSync(dir)
        .filter((f) => f.endsWith('.test.js') && (only.length === 0 || only.some((o) => f.includes(o))))
        .sort()
        .map((f) => join(dir, f)),
    );
    const env = {
      ...process.env,
      TEST_ADMIN_URL: adminUrl,
      TEST_TEMPLATE: templateName,
      PG_BINDIR: cluster?.bindir ?? findBindir(),
      TEST_CRON_DATABASE: cluster?.cron ? cluster.cronDatabase : '',
    };
    // One file at a time, whatever the core count: the files share one cluster, and some compare
    // cluster-wide state (roles, a table's growth) that another file running alongside would change.
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit', env });
    return await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  } finally {
    cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
