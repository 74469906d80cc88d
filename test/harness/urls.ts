/** The same server and credentials, another database (and optionally another role). */
export function databaseUrl(url: string, database: string, role?: { user: string; password?: string }): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  if (role) {
    u.username = role.user;
    u.password = role.password ?? '';
  }
  return u.toString();
}
