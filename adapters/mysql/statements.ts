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

/** Reachability check. Params: none */
export const PING = 'SELECT 1 AS ok';
