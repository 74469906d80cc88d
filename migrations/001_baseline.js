// The SQL lives in sql/steps/ (built from sql/schema/, also applied by sql/install.sql for psql);
// this file only tells node-pg-migrate where to find it. Forward-only: there is no down step
// (sql/uninstall.sql removes everything).
import { readFileSync } from 'node:fs';

export const up = (pgm) => pgm.sql(readFileSync(new URL('../sql/steps/001_baseline.sql', import.meta.url), 'utf8'));
export const down = false;
