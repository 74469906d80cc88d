// A tiny cookie-keeping HTTP client and server helpers for the framework store tests.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One browser: keeps the cookies the server sets, sends them back. */
export class Browser {
  cookies = new Map<string, string>();
  constructor(private readonly base: string) {}

  async request(method: string, path: string): Promise<{ status: number; body: string; setCookie: string[] }> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(this.base + path, { method, headers: cookie ? { cookie } : {}, redirect: 'manual' });
    const setCookie = res.headers.getSetCookie();
    for (const line of setCookie) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return { status: res.status, body: await res.text(), setCookie };
  }

  get = (path: string) => this.request('GET', path);
  post = (path: string) => this.request('POST', path);
}

export function baseUrl(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The session id inside a signed cookie value (`s:<id>.<signature>`, URL-encoded). */
export function sessionIdOf(cookieValue: string | undefined): string {
  const v = decodeURIComponent(cookieValue ?? '');
  return v.replace(/^s:/, '').replace(/\.[^.]*$/, '');
}
