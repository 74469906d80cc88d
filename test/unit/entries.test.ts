// What each package entry loads, seen from a fresh node process: every module it resolves is
// recorded by a resolve hook (module.register), before its import settles.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const hook = `
import { appendFileSync } from 'node:fs';
let file;
export function initialize(data) { file = data.file; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(file, resolved.url + '\\n');
  return resolved;
}`;

/** The URLs of the modules that importing `entry` (a path under dist/src) resolves. */
function loadedBy(entry: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'session-pg-entries-'));
  const file = join(dir, 'resolved.txt');
  try {
    const script = `
      import { register } from 'node:module';
      register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)}, { data: { file: ${JSON.stringify(file)} } });
      await import(${JSON.stringify(new URL(`../../src/${entry}`, import.meta.url).href)});`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Modules only operations need: migrations, the admin tools, the importer, scale-out. */
const operations = /node-pg-migrate|\/dist\/src\/(migrate|admin|admin-store|admin-index|import|scaleout|scaleout-cli|cli)\.js$/;

test('the client entry (session-postgresql) loads no migration, admin, import or scale-out module', () => {
  const loaded = loadedBy('index.js');
  assert.ok(
    loaded.some((u) => u.endsWith('/dist/src/store.js')),
    'the hook saw the client modules',
  );
  assert.deepEqual(
    loaded.filter((u) => operations.test(u)),
    [],
  );
});

test('the framework entries load none of them either', () => {
  for (const entry of ['express.js', 'fastify.js', 'koa.js']) {
    assert.deepEqual(
      loadedBy(entry).filter((u) => operations.test(u)),
      [],
      entry,
    );
  }
});

test('the admin entry (session-postgresql/admin) loads them: the check above can see them', () => {
  const loaded = loadedBy('admin-index.js');
  for (const name of [
    'node-pg-migrate',
    '/dist/src/migrate.js',
    '/dist/src/scaleout.js',
    '/dist/src/import.js',
    '/dist/src/admin-store.js',
  ]) {
    assert.ok(
      loaded.some((u) => u.includes(name)),
      name,
    );
  }
});
