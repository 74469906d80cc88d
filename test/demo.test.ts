// `npm run demo`, as a user runs it: its own throwaway database, the walk-through, the web counter.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Browser } from './web.js';

const script = fileURLToPath(new URL('../scripts/demo.js', import.meta.url));

test('the demo counts visits per session, resets, and removes its database on Ctrl-C', { timeout: 120_000 }, async () => {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Counter demo: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      void exited.then(() => reject(new Error(`demo exited early:\n${out}`)));
    });
    assert.match(out, /set\(key, "x"\) after clear {7}→ false/);
    assert.match(out, /get\(key\) {24}→ not_found/);
    const b = new Browser(url.slice(0, -1));
    const visits = async () => /id="visits">(\d+)</.exec((await b.get('/')).body)?.[1];
    assert.equal(await visits(), '1');
    assert.equal(await visits(), '2');
    const other = new Browser(url.slice(0, -1));
    assert.match((await other.get('/')).body, /id="visits">1</);
    await b.post('/reset');
    assert.equal(await visits(), '1');
    await b.post('/regenerate');
    assert.equal(await visits(), '2');
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, out);
  assert.match(out, /Throwaway PostgreSQL removed\./);
});
