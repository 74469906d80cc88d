// The client entry: what an application needs to use sessions. It loads no migration, import or
// scale-out code; those are for operations, in session-postgresql/admin (admin-index.ts).
export {
  connect,
  type GenerateOptions,
  type GetResult,
  type MergeFields,
  type SessionInfo,
  type SessionStore,
  type StoreOptions,
  type WriteOptions,
} from './store.js';
export { SessionError, type SessionErrorCode } from './errors.js';
export type { ConnectionOptions } from './connection.js';
export type { TargetSessionAttrs } from './hosts.js';
