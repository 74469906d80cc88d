// A tiny cookie-keeping HTTP client and server helpers for the framework store tests.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One browser: keeps the cookies the server sets, sends them back, and `headers` (e.g. a User-Agent). */
export class Browser {
  cookies = new Map<string, string>();
  constructor(
    private readonly base: string,
    readonly headers: Record<string, string> = {},
  ) {}

  /** `form`: sent as an HTML form would (application/x-www-form-urlencoded). */
  async request(
    method: string,
    path: string,
    form?: Record<string, string>,
  ): Promise<{ status: number; body: string; setCookie: string[] }> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const headers: Record<string, string> = { ...this.headers, ...(cookie ? { cookie } : {}) };
    const init: RequestInit = { method, headers, redirect: 'manual' };
    if (form !== undefined) init.body = new URLSearchParams(form);
    const res = await fetch(this.base + path, init);
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
  post = (path: string, form?: Record<string, string>) => this.request('POST', path, form);
}

export function baseUrl(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The session id inside a signed cookie value (`s:<id>.<signature>`, URL-encoded). */
export function sessionIdOf(cookieValue: string | undefined): string {
  const v = decodeURIComponent(cookieValue ?? '');
  return v.replace(/^s:/, '').replace(/\.[^.]*$/, '');
}
