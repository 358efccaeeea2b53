/**
 * MySQL-only statements (the shared ones are in adapters/sql/statements.ts).
 */

/**
 * Take the migration lock, waiting up to ? seconds; returns `locked` = 1 on
 * success, 0 on timeout. Named per database (MySQL lock names are server-wide
 * and at most 64 characters), so two databases on one server migrate apart.
 * Params: timeout_s
 */
export const GET_MIGRATION_LOCK =
  "SELECT GET_LOCK(LEFT(CONCAT('ats_migrate:', DATABASE()), 64), ?) AS locked";

/**
 * Release the migration lock (it is also released when the session ends).
 * Params: none
 */
export const RELEASE_MIGRATION_LOCK = "SELECT RELEASE_LOCK(LEFT(CONCAT('ats_migrate:', DATABASE()), 64)) AS released";

/**
 * Readiness (`/readyz`): a write that changes nothing, so a server that still
 * answers reads but refuses this user's writes (read only, as a primary
 * demoted by a failover) fails the check as it fails every submit. A user
 * the server lets write past `read_only` passes, as its writes do. Params: none
 */
export const PING = 'UPDATE schema_migrations SET version = version WHERE 1 = 0';

/**
 * How long `PING` may wait for the server: a write can wait on a lock (a
 * backup's global read lock) where a read would not, and each readiness probe
 * would hold a connection of the pool until its query timeout (60 s).
 */
export const PING_TIMEOUT_MS = 5000;

/** The session settings the store's literals (sql-text.ts) and statements' sizes rely on, checked at connect. Params: none. */
export const SESSION_SETTINGS = 'SELECT @@SESSION.sql_mode AS sql_mode, @@SESSION.character_set_client AS charset, '
  + '@@SESSION.max_allowed_packet AS max_packet, VERSION() AS version';

/**
 * The server's time, epoch ms. From UTC_TIMESTAMP by plain arithmetic, so the
 * session's time zone plays no part (UNIX_TIMESTAMP(NOW()) goes through it,
 * and is ambiguous for an hour when a DST zone falls back). Params: none
 */
export const DB_NOW = "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000 AS now";
