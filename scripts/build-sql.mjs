// Builds sql/steps/001_baseline.sql from the area files of sql/schema/, in file-name order, and
// sql/proxy/steps/001_baseline.sql (a PL/Proxy proxy database) from sql/proxy/schema/.
//   node scripts/build-sql.mjs          writes it (npm run build:sql)
//   node scripts/build-sql.mjs --check  exits 1 when the committed file differs from the build
// Until 1.0.0 is published the baseline is rebuilt from sql/schema/ on every change; from then on
// it is frozen and each change ships as a new step (sql/steps/002_<what>.sql), see CONTRIBUTING.md.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const sqlDir = fileURLToPath(new URL('../sql/', import.meta.url));
/** The two schemas built: a database's (sql/) and a PL/Proxy proxy's (sql/proxy/). */
export const targets = [`${sqlDir}`, `${sqlDir}proxy/`].map((dir) => ({
  schemaDir: `${dir}schema/`,
  baselineFile: `${dir}steps/001_baseline.sql`,
}));
export const { schemaDir, baselineFile } = targets[0];
/**
 * Set to true in the commit that publishes 1.0.0: the baseline is then never rebuilt, --check
 * passes, and test/catalog.test.ts still compares the whole chain of steps with sql/schema/.
 */
export const frozen = false;

/** The area files of a schema folder (default sql/schema/), in the order they apply. */
export const areaFiles = (dir = schemaDir) => readdirSync(dir).filter((f) => /^\d\d_\w+\.sql$/.test(f)).sort();

const relative = (path) => path.slice(sqlDir.length - 'sql/'.length);
const header = (dir) => `-- GENERATED from ${relative(dir)} by \`npm run build:sql\`: do not edit. Change the area file instead.
-- session-postgresql 1.0 baseline: the whole schema in one step. Frozen once 1.0.0 is published:
-- from then on a change is an edit of its area file plus a new small frozen step
-- (${relative(dir).replace(/schema\/$/, "steps/")}002_<what>.sql), see CONTRIBUTING.md.

-- Whatever the runner does: no name below may resolve to another role's object.
SET search_path = pg_catalog, pg_temp;
`;

/** The baseline built from the area files of dir; throws when a function is defined twice. */
export function buildBaseline(dir = schemaDir) {
  const seen = new Map();
  const parts = areaFiles(dir).map((file) => {
    const text = readFileSync(`${dir}${file}`, 'utf8');
    for (const m of text.matchAll(/^CREATE (?:OR REPLACE )?(?:FUNCTION|PROCEDURE) (session\w*\.\w+)\(/gm)) {
      if (seen.has(m[1])) throw new Error(`${m[1]} is defined in ${seen.get(m[1])} and ${file}: define each function once`);
      seen.set(m[1], file);
    }
    return `\n-- ---------------------------------------------------------------- ${relative(dir)}${file}\n\n${text.trimEnd()}\n`;
  });
  return header(dir) + parts.join('');
}

if (process.argv[1] === fileURLToPath(import.meta.url) && frozen) {
  if (!process.argv.includes('--check')) {
    console.error('the baselines are frozen (1.0.0 is published): add a step sql/steps/NNN_<what>.sql instead, see CONTRIBUTING.md');
    process.exit(1);
  }
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const t of targets) {
    const built = buildBaseline(t.schemaDir);
    if (process.argv.includes('--check')) {
      let committed = '';
      try { committed = readFileSync(t.baselineFile, 'utf8'); } catch { /* missing: differs */ }
      if (committed !== built) {
        console.error(`${relative(t.baselineFile)} differs from what ${relative(t.schemaDir)} builds: run npm run build:sql and commit the result`);
        process.exitCode = 1;
      }
    } else {
      writeFileSync(t.baselineFile, built);
    }
  }
}
