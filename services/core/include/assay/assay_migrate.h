/*
 * Schema migrations: the files of sql/ (embedded in libassay as assay_embedded_migrations)
 * applied in order, each once, and recorded in the table assay_migrations together with the
 * SHA-256 of the text that was applied. Every service calls this at start; concurrent callers
 * serialize on a session advisory lock, so each migration is applied exactly once.
 *
 * Rules for migration files:
 *   - named NNN_name.sql: NNN one to nine digits (the version), name of letters, digits, '_'
 *     and '-'; versions unique and strictly increasing in file-name order;
 *   - never edited once applied (a changed file is a fatal error naming it): add a new file;
 *   - no BEGIN/COMMIT of their own (each file runs inside the transaction that records it)
 *     and no statement that cannot run in a transaction (CREATE INDEX CONCURRENTLY, ...).
 */
#ifndef ASSAY_MIGRATE_H
#define ASSAY_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "assay_embed.h"
#include "assay_err.h"

/* pg_advisory_lock key held while migrating: the ASCII bytes "assaymig" (0x61737361796d6967) */
#define ASSAY_MIGRATE_LOCK_KEY "7022083106486970727"

/*
 * Applies every file of files not yet recorded in assay_migrations, in order, each in its own
 * transaction together with its assay_migrations row; creates assay_migrations if missing.
 * Holds pg_advisory_lock(ASSAY_MIGRATE_LOCK_KEY) for the whole run and releases it on every
 * path (a lost connection releases it on the server).
 * conn: a connection outside any transaction, not in pipeline mode; not NULL.
 * files: an array ending with an entry whose name is NULL (assay_embedded_migrations); not NULL.
 * applied: NULL, or receives the number of files applied by this call (also on failure: the
 * ones committed before it).
 * Returns 0, or:
 *   ASSAY_ERR_FATAL  a bad file name or version order (errstr names the file); an applied file
 *                    whose SHA-256 differs from the recorded one ("migration 001_core.sql was
 *                    changed after it was applied"); a recorded version with no file, or with
 *                    a different name; a file older than the newest applied version; a file
 *                    that fails to apply (syntax, constraint: "migration 002_x.sql failed:
 *                    ..."); conn inside a transaction.
 *   ASSAY_ERR_RETRY  the connection was lost, or a serialization failure / deadlock: try again
 *                    later (what was committed stays committed and recorded).
 * Blocks while another session holds the lock.
 */
int assay_migrate_run(PGconn *conn, const struct assay_embedded *files, size_t *applied,
                      char *errstr, size_t errstr_size);

/* assay_migrate_run() without the count. */
int assay_migrate(PGconn *conn, const struct assay_embedded *files, char *errstr,
                  size_t errstr_size);

/*
 * The version of a migration file name "NNN_name.sql", or -1 when the name does not follow
 * the rules above. name may be NULL (-1). Pure.
 */
long assay_migrate_version(const char *name);

#endif
