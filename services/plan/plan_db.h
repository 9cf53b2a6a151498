/*
 * assay-plan's tables (sql/004_plan.sql): loading them into the in-memory state at start, and
 * writing a batch's changes inside the batch transaction: one pipeline for the upserts and
 * deletes of replaced entities, then one COPY per table for the new rows. Never a round trip
 * per row.
 */
#ifndef PLAN_DB_H
#define PLAN_DB_H

#include "plan_rules.h"
#include "assay_pg.h"

#include <libpq-fe.h>

/* One handled command, for assay_plan_commands. Strings borrowed for the write. */
struct plan_cmdlog {
	const char *command_id;
	int kind;   /* enum plan_cmd_kind */
	int status; /* enum plan_status */
	size_t nreasons;
	const char *topic;
	int32_t partition;
	int64_t offset;
};

/* The COPY buffers of a writer: a plain struct, init once, release once. */
struct plan_db {
	struct assay_copybuf copy[20];
	struct assay_pipeline pipe;
};
void plan_db_init(struct plan_db *db);
void plan_db_release(struct plan_db *db);

/*
 * Reads every plan table through conn (migrated, outside a transaction or inside one the
 * caller owns) into st, which must be empty and have no open batch. Returns 0,
 * ASSAY_ERR_RETRY (connection lost) or ASSAY_ERR_FATAL (tables missing, out of memory).
 */
int plan_db_load(PGconn *conn, struct plan_state *st, char *errstr, size_t errstr_size);

/*
 * Writes what the open batch of st changed, and the handled commands log[0..nlog), on conn
 * inside the caller's transaction. Returns 0 or the class of the failure (assay_pg: RETRY,
 * REJECT for a refused row, FATAL).
 */
int plan_db_write(struct plan_db *db, PGconn *conn, const struct plan_state *st,
                  const struct plan_cmdlog *log, size_t nlog, char *errstr, size_t errstr_size);

#endif
