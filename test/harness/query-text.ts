// `node query-text.js URL < statements.sql`: what `psql -X -A -t -q -v ON_ERROR_STOP=1` prints for
// plain SQL (rows as text, columns joined by |, NULL as an empty string), for the tests' psql()
// helper where PostgreSQL's client tools are not installed (the embedded server binaries).
// psql's backslash commands are not understood: tests that need them need psql itself.
import pg from 'pg';

async function main(url: string): Promise<void> {
  let sql = '';
  for await (const chunk of process.stdin) sql += String(chunk);
  const client = new pg.Client({ connectionString: url, types: { getTypeParser: () => (value: string) => value } });
  await client.connect();
  try {
    // Several statements come back as one result each.
    const results = (await client.query({ text: sql, rowMode: 'array' })) as unknown as
      | pg.QueryArrayResult
      | pg.QueryArrayResult[];
    for (const r of Array.isArray(results) ? results : [results]) {
      for (const row of r.rows as (string | null)[][]) process.stdout.write(`${row.map((v) => v ?? '').join('|')}\n`);
    }
  } finally {
    await client.end();
  }
}

main(process.argv[2] ?? '').catch((err: unknown) => {
  console.error(`ERROR:  ${(err as Error).message}`);
  process.exit(3);
});
