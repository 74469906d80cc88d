// The SQL lives in sql/ (the single source of truth, also used by sql/install.sql for psql);
// this file only tells node-pg-migrate where to find it. Never edit a shipped migration.
import { readFileSync } from 'node:fs';

const sql = (file) => readFileSync(new URL(`../sql/${file}`, import.meta.url), 'utf8');

export const up = (pgm) => pgm.sql(sql('011_merge_versions.up.sql'));
export const down = (pgm) => pgm.sql(sql('011_merge_versions.down.sql'));
