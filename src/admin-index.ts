// The operations entry, session-postgresql/admin: installing and upgrading the schema, the admin
// role's calls, importing from connect-pg-simple, and scale-out. Kept out of the client entry so
// that an application does not load node-pg-migrate or the scale-out tools.
export { connectAdmin, type SessionAdmin } from './admin-store.js';
export { migrate, migrationStatus, type MigrateOptions, type MigrationState } from './migrate.js';
export {
  installRoles,
  purgeAll,
  purgeJobStatus,
  schedulePurge,
  stats,
  unschedulePurge,
  type CronJob,
  type CronRun,
  type InstallRoles,
  type PurgeJobState,
  type PurgeProgress,
  type Stats,
} from './admin.js';
export { importConnectPgSimple, type ConnectPgSimpleImportOptions, type ImportProgress } from './import.js';
export {
  installProxy,
  migratePartitions,
  movePartition,
  proxyStatus,
  type MovePartitionOptions,
  type MoveResult,
  type PartitionStatus,
  type ProxyInstallOptions,
  type ProxyStatus,
} from './scaleout.js';
export { SessionError, type SessionErrorCode } from './errors.js';
export type { ConnectionOptions } from './connection.js';
export type { StoreOptions } from './store.js';
