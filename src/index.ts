export { connect, type GenerateOptions, type GetResult, type MergeFields, type SessionInfo, type SessionStore, type StoreOptions, type WriteOptions } from './store.js';
export { migrate, migrationStatus, type MigrateOptions, type MigrationState } from './migrate.js';
export { SessionError, type SessionErrorCode } from './errors.js';
export { type ConnectionOptions } from './connection.js';
export { type TargetSessionAttrs } from './hosts.js';
export { installProxy, migratePartitions, movePartition, proxyStatus, type MovePartitionOptions, type MoveResult, type PartitionStatus, type ProxyInstallOptions, type ProxyStatus } from './scaleout.js';
