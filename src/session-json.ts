// Stored session values as the framework stores read and compare them. A value comes back from the
// database, where anyone with the app's role could have written it, so it is parsed defensively.
import { SessionError } from './errors.js';

/** The cookie fields the frameworks expose. `maxAge` is in milliseconds, null for browser-session cookies. */
export interface CookieLike {
  maxAge?: number | null;
  expires?: Date | string | null;
}

export interface SessionData {
  cookie?: CookieLike;
  [key: string]: unknown;
}

/**
 * Keys dropped at every level of a stored value: the names of Object.prototype's members and
 * `prototype`. An own `__proto__` assigned by a framework's copy loop replaces an object's
 * prototype; an own `valueOf`/`toString` that is not a function makes `new Date(x)` or `x + 1`
 * throw, inside a store callback where nothing catches it.
 */
const unsafeKeys: ReadonlySet<string> = new Set([
  '__proto__', 'constructor', 'prototype', 'toString', 'toLocaleString', 'valueOf', 'hasOwnProperty',
  'isPrototypeOf', 'propertyIsEnumerable', '__defineGetter__', '__defineSetter__', '__lookupGetter__',
  '__lookupSetter__',
]);

function dropUnsafe(key: string, value: unknown): unknown {
  return unsafeKeys.has(key) ? undefined : value;
}

// A JSON key can spell one of those names only literally or through a \u escape: text with
// neither is parsed without the reviver, which costs about four times the parse itself.
const maybeUnsafe = new RegExp([...unsafeKeys, '\\\\u'].join('|'));

/**
 * Parses a stored session value. Keys that could replace a prototype or shadow Object.prototype's
 * methods are dropped at every level (see `unsafeKeys`); the rest is kept.
 * Errors (`SessionError`, code `database`): the value is not JSON, or not a JSON object (an array,
 * a string, a number, null). Nothing is changed in the database: the value stays for inspection.
 */
export function parseSession(text: string): SessionData {
  let value: unknown;
  try {
    value = maybeUnsafe.test(text) ? JSON.parse(text, dropUnsafe) : JSON.parse(text);
  } catch (err) {
    throw new SessionError('database', 'the stored session value is not JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SessionError('database', 'the stored session value is not a JSON object');
  }
  return value as SessionData;
}

/** The session as JSON without the top-level fields that a save rewrites anyway (the cookie). */
export function dataOf(sess: object, ignored: readonly string[] = ['cookie']): string {
  return JSON.stringify(sess, function (this: unknown, key, val: unknown) {
    return this === sess && ignored.includes(key) ? undefined : val;
  });
}
