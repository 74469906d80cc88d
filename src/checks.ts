// Checks of the arguments of the store's calls, made before anything is sent: a bad argument is
// refused with `invalid_argument` rather than turned into something else on the way.
import { SessionError } from './errors.js';

export function checkKey(key: unknown): string {
  if (typeof key !== 'string') throw new SessionError('invalid_argument', 'key must be a string');
  return key;
}

// PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate (Buffer would turn
// it into U+FFFD): refuse rather than store something other than what was given.
export const checkValue = (value: unknown): string => checkText('value', value);

/** Values, subjects and labels: strings PostgreSQL text can hold (the server checks their length). */
export function checkText(name: string, text: unknown): string {
  if (typeof text !== 'string') throw new SessionError('invalid_argument', `${name} must be a string`);
  if (text.includes('\u0000')) throw new SessionError('invalid_argument', `${name} must not contain NUL characters`);
  if (!text.isWellFormed()) throw new SessionError('invalid_argument', `${name} must not contain lone surrogates`);
  return text;
}

export function checkInteger(name: string, n: unknown, unit = ''): string {
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
    throw new SessionError('invalid_argument', `${name} must be a safe integer${unit}`);
  }
  return String(n);
}

export const checkSeconds = (name: string, n: unknown) => checkInteger(name, n, ' of seconds');

export function optionalSeconds(name: string, n: unknown): string | null {
  return n === undefined || n === null ? null : checkSeconds(name, n);
}

/** An options argument must be an object: `generate(3600)` must not silently mean "the default". */
export function checkOptions<T extends object>(options: T | undefined): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new SessionError('invalid_argument', 'options must be an object');
  }
  return options;
}

/** session_purge takes an int4: a larger batch size would reach the server as an overflow. */
export function checkBatchSize(n: unknown): string {
  const s = checkInteger('batchSize', n);
  if (Math.abs(n as number) > 2147483647) throw new SessionError('invalid_argument', 'batchSize must fit a 32-bit integer');
  return s;
}

/** A key that PostgreSQL could not even receive names no session: answer locally. */
export function unsendable(key: string): boolean {
  return key.includes('\u0000') || !key.isWellFormed();
}

export function positive(name: string, n: number | undefined, otherwise: number): number {
  if (n === undefined) return otherwise;
  if (!Number.isSafeInteger(n) || n < 1) throw new SessionError('invalid_argument', `${name} must be a positive integer`);
  return n;
}

const optionalVersion = (n: unknown): string | null => (n === undefined || n === null ? null : checkInteger('ifVersion', n));

/** The options of set, put and merge, as their SQL arguments. */
export function writeOptions(options: { expiry?: number; ifVersion?: number } | undefined): {
  expiry: string | null;
  ifVersion: string | null;
} {
  const { expiry, ifVersion } = checkOptions(options);
  return { expiry: optionalSeconds('expiry', expiry), ifVersion: optionalVersion(ifVersion) };
}

/** `fields.set` as JSON text; invalid_argument for what JSON or PostgreSQL text cannot hold. */
export function setFieldsJson(set: unknown): string {
  if (set === undefined) return '{}';
  if (typeof set !== 'object' || set === null || Array.isArray(set)) {
    throw new SessionError('invalid_argument', 'fields.set must be an object');
  }
  let json: string | undefined;
  try {
    // jsonb refuses \u0000 and lone surrogates: each key and string is checked as a value is.
    json = JSON.stringify(set, (k: string, v: unknown) => {
      checkText('fields.set', k);
      if (typeof v === 'string') checkText('fields.set', v);
      return v;
    });
  } catch (err) {
    if (err instanceof SessionError) throw err;
    throw new SessionError('invalid_argument', `fields.set cannot be written as JSON: ${(err as Error).message}`);
  }
  if (json === undefined) throw new SessionError('invalid_argument', 'fields.set cannot be written as JSON');
  return json;
}

export function unsetFields(unset: unknown): string[] {
  if (unset === undefined) return [];
  if (!Array.isArray(unset)) throw new SessionError('invalid_argument', 'fields.unset must be an array of strings');
  return unset.map((field) => checkText('fields.unset', field));
}
