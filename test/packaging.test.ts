// What the npm package ships and what installing it runs; the documentation's links; the Python
// example's usage errors. No database needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { license: string; scripts: Record<string, string> };

// npm runs prepare in a clone (and for a git dependency), never for a package from the registry:
// `npm install` in a clone builds dist/, so that `npx session-pg` works right after it.
test('installing the package runs no script; a clone builds on npm install; the build for the tarball is prepack', () => {
  for (const hook of ['preinstall', 'install', 'postinstall']) assert.equal(pkg.scripts[hook], undefined, hook);
  assert.equal(pkg.scripts.prepare, 'tsc -p tsconfig.json');
  assert.match(pkg.scripts.prepack ?? '', /tsc .*--sourceMap false/);
  assert.equal(pkg.license, 'MIT');
  assert.match(readFileSync(join(root, 'LICENSE'), 'utf8'), /^MIT License\n/);
});

test('the tarball has the license and the docs, and no source map or TypeScript source', () => {
  // --ignore-scripts: prepack would rebuild dist/ under the running tests.
  const r = spawnSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  for (const f of ['LICENSE', 'README.md', 'docs/cli.md', 'dist/src/cli.js', 'dist/src/index.d.ts', 'sql/install.sql']) {
    assert.ok(files.includes(f), `${f} is shipped`);
  }
  assert.deepEqual(
    files.filter((f) => f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts'))),
    [],
  );
});

// GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

test('every relative link in README.md and docs/ points at a file, and at a heading there', () => {
  const docs = [
    'README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const missing: string[] = [];
  for (const doc of docs) {
    const text = readFileSync(join(root, doc), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const [, target = ''] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? join(root, doc) : join(root, dirname(doc), path);
      if (!existsSync(file)) {
        missing.push(relative(root, file));
        continue;
      }
      if (anchor === undefined) continue;
      const headings = [...readFileSync(file, 'utf8').matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1] ?? ''));
      assert.ok(headings.includes(anchor), `${doc}: ${target}: no heading "${anchor}"`);
    }
  }
  assert.deepEqual(missing, []);
});

test("the README's first screen: what it is, how to try it, an example, in 40 lines", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8').split('\n');
  const firstScreen = readme.slice(0, 40).join('\n');
  assert.match(firstScreen, /npm run demo/);
  assert.match(firstScreen, /npm test/);
  assert.match(firstScreen, /session-pg migrate/);
  assert.match(firstScreen, /```ts\n[\s\S]*store\.get\(/);
  assert.doesNotMatch(readme.join('\n'), /the issue|yardstick|other engineers|\| met \|/i);
});

test('the README lists every Debian package CI installs', () => {
  const ci = readFileSync(join(root, '.ci/run'), 'utf8');
  const list = /for pkg in ([^;]+);/.exec(ci)?.[1];
  assert.ok(list, '.ci/run installs its packages in a "for pkg in ...;" loop');
  const packages = list.split(/[\s\\]+/).filter((p) => p !== '');
  assert.ok(packages.includes('postgresql-15'), packages.join(' '));
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  for (const p of packages) assert.ok(readme.includes(`\`${p}\``), `README.md lists ${p}`);
});

test('the Python example: wrong usage exits 2 with the usage text, never a traceback', (t) => {
  const python = process.env.PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  if (spawnSync(python, ['-c', 'import psycopg'], { encoding: 'utf8' }).status !== 0) {
    t.skip(`psycopg is not importable by ${python} (apt-get install python3-psycopg)`);
    return;
  }
  const script = join(root, 'examples/python/session_demo.py');
  for (const args of [['set'], ['set', 'key'], ['get'], ['clear'], ['get', 'a', 'b'], ['frobnicate']]) {
    const r = spawnSync(python, [script, ...args], {
      encoding: 'utf8',
      env: { ...process.env, DATABASE_URL: 'postgresql://127.0.0.1:1/none' },
    });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /python3 session_demo\.py set KEY VALUE/);
    assert.doesNotMatch(r.stderr, /Traceback/);
  }
  // No command, or no database named: the usage and what to set, not libpq's "No such file or directory".
  const bare = { ...process.env };
  for (const v of ['DATABASE_URL', 'PGHOST', 'PGSERVICE', 'PGDATABASE']) delete bare[v];
  const none = spawnSync(python, [script], { encoding: 'utf8', env: bare });
  assert.equal(none.status, 2, none.stderr);
  assert.match(none.stderr, /python3 session_demo\.py set KEY VALUE/);
  const unset = spawnSync(python, [script, 'demo'], { encoding: 'utf8', env: bare });
  assert.equal(unset.status, 2, unset.stderr);
  assert.match(unset.stderr, /^session_demo: set DATABASE_URL to the database to use/);
  assert.doesNotMatch(unset.stderr + none.stderr, /Traceback|OperationalError/);
  const down = spawnSync(python, [script, 'get', 'k'], {
    encoding: 'utf8',
    env: { ...process.env, DATABASE_URL: 'postgresql://127.0.0.1:1/none' },
  });
  assert.equal(down.status, 1);
  assert.match(down.stderr, /^session_demo: OperationalError: /);
  assert.doesNotMatch(down.stderr, /Traceback/);
});
