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
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'toLocaleString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
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

/** Whether {@link parseSession} left keys of `text` out of `sess`. */
export function droppedKeys(text: string, sess: SessionData): boolean {
  return maybeUnsafe.test(text) && JSON.stringify(sess) !== JSON.stringify(JSON.parse(text));
}

/** What express-session and @fastify/session rewrite on every save. */
export const rewrittenByDefault: readonly string[] = ['cookie'];

/** The session as JSON without the top-level fields that a save rewrites anyway (the cookie). */
export function dataOf(sess: object, ignored: readonly string[] = rewrittenByDefault): string {
  return JSON.stringify(sess, function (this: unknown, key, val: unknown) {
    return this === sess && ignored.includes(key) ? undefined : val;
  });
}

/** Top-level field changes, as {@link SessionStore.merge} takes them. */
export interface FieldChanges {
  set: Record<string, unknown>;
  unset: string[];
}

/**
 * The top-level fields whose JSON differs between the value a request loaded (`before`) and the
 * one it saves (`after`), and those it removed; null when their JSON forms are equal field by
 * field (the order of keys in an object does not count). Nested objects count as one field. Both
 * sides are read by {@link parseSession}, so a key it drops is neither set nor unset.
 * Errors: those of parseSession.
 */
export function changesOf(before: string, after: string): FieldChanges | null {
  const old = parseSession(before);
  const now = parseSession(after);
  // Object.fromEntries defines own properties: a field named like a prototype member stays data.
  const set = Object.entries(now).filter(([k, v]) => !Object.hasOwn(old, k) || !sameJson(old[k], v));
  const unset = Object.keys(old).filter((k) => !Object.hasOwn(now, k));
  return set.length === 0 && unset.length === 0 ? null : { set: Object.fromEntries(set), unset };
}

/** Equality of two values made by JSON.parse; about half the cost of comparing their JSON texts. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  return keys.length === Object.keys(y).length && keys.every((k) => Object.hasOwn(y, k) && sameJson(x[k], y[k]));
}
