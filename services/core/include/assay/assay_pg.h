/*
 * Helpers around libpq 15: connecting, running commands with classified failures, bulk
 * writes with COPY FROM STDIN (text format) and many small statements in one round trip
 * with libpq pipeline mode. Round trips, not SQL, dominate the cost of writing a batch
 * (reference/kafka-postgres-avro.md §6.1): write rows with assay_pg_copy() or an
 * assay_pipeline, never with one statement per row and round trip.
 *
 * Helpers, not a framework: callers own every PGconn and decide about transactions.
 * A PGconn is used by one thread at a time; nothing here keeps global state.
 *
 * Error messages (errstr) read "<what failed>: <server message>", followed where the server
 * sent them by "; detail: ...", "; context: ..." and "(sqlstate XXXXX)".
 */
#ifndef ASSAY_PG_H
#define ASSAY_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "assay_err.h"

/* application_name set on every connection whose URL does not name one */
#define ASSAY_PG_APPLICATION_NAME "assay"
/* connect_timeout (seconds) used when the URL does not set one */
#define ASSAY_PG_CONNECT_TIMEOUT "10"

/*
 * Opens a blocking connection. url: a libpq connection URI or key=value string, not NULL.
 * application_name defaults to ASSAY_PG_APPLICATION_NAME and connect_timeout to
 * ASSAY_PG_CONNECT_TIMEOUT; both can be overridden in the URL. Server notices are dropped
 * (library code never prints); install a receiver with PQsetNoticeReceiver() to log them.
 * Returns 0 with *out set (the caller owns it: PQfinish()); ASSAY_ERR_RETRY when the server
 * is unreachable or refuses the connection (errstr "postgresql connect failed: <libpq text>");
 * ASSAY_ERR_FATAL when url cannot be parsed or memory runs out. *out is NULL on failure.
 */
int assay_pg_connect(const char *url, PGconn **out, char *errstr, size_t errstr_size);

/*
 * The SQLSTATE of res ("" when res is NULL or carries none, e.g. a client-side error).
 * The string belongs to res.
 */
const char *assay_pg_sqlstate(const PGresult *res);

/*
 * Failure class of a SQLSTATE alone (NULL or "" classify as fatal):
 *   ASSAY_ERR_RETRY   class 08 connection exception, 40001 serialization_failure,
 *                     40P01 deadlock_detected, 57P01 admin_shutdown, 57P02 crash_shutdown,
 *                     57P03 cannot_connect_now, class 53 insufficient resources,
 *                     55P03 lock_not_available
 *   ASSAY_ERR_REJECT  class 22 data exception, class 23 integrity constraint violation
 *   ASSAY_ERR_FATAL   everything else (class 42 syntax / undefined object, XX internal, ...)
 * Pure: no libpq call, safe from any thread.
 */
int assay_pg_classify_sqlstate(const char *sqlstate);

/*
 * Failure class of a result, by what the caller must do:
 *   0                 res is a success status (COMMAND_OK, TUPLES_OK, SINGLE_TUPLE,
 *                     COPY_IN, COPY_OUT, COPY_BOTH, PIPELINE_SYNC, EMPTY_QUERY)
 *   ASSAY_ERR_RETRY   the connection is lost (conn not NULL and PQstatus CONNECTION_BAD),
 *                     or res is NULL or carries no SQLSTATE while conn is bad
 *   otherwise         assay_pg_classify_sqlstate() of its SQLSTATE; a NULL res on a good
 *                     connection (out of memory) and PGRES_PIPELINE_ABORTED are fatal
 * res and conn may be NULL. Neither is modified.
 */
int assay_pg_classify(const PGresult *res, PGconn *conn);

/*
 * Formats the error of res (or, when res is NULL, of conn) as "<what>: <message>; detail:
 * ...; context: ... (sqlstate XXXXX)" into errstr and returns assay_pg_classify(res, conn).
 * what: not NULL, e.g. "insert into evidence failed". res and conn may be NULL.
 * Useful to callers that run their own libpq calls.
 */
int assay_pg_result_error(const PGresult *res, PGconn *conn, const char *what, char *errstr,
                          size_t errstr_size);

/*
 * Runs sql (one or more statements separated by ';', no parameters: the simple query
 * protocol) and discards any rows. conn and sql not NULL.
 * Returns 0 or the class of the failure (assay_pg_classify()), errstr "query failed: ...".
 */
int assay_pg_exec(PGconn *conn, const char *sql, char *errstr, size_t errstr_size);

/*
 * Runs one statement with nparams text parameters ($1..$n; params[i] NULL is SQL NULL;
 * params may be NULL when nparams is 0) and discards any rows. affected: NULL, or receives
 * the number of rows the statement affected or returned (PQcmdTuples; 0 when the command
 * reports none), e.g. to check that a compare-and-set UPDATE touched one row.
 * Returns 0 or the class of the failure, errstr "query failed: ...".
 */
int assay_pg_exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                         int64_t *affected, char *errstr, size_t errstr_size);

/*
 * Runs one query with text parameters as assay_pg_exec_params() and hands back its result
 * (PGRES_TUPLES_OK or PGRES_COMMAND_OK) in *out, which the caller owns (PQclear()).
 * Results come in text format. *out is NULL on failure.
 * Returns 0 or the class of the failure, errstr "query failed: ...".
 */
int assay_pg_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                   PGresult **out, char *errstr, size_t errstr_size);

/*
 * A consistent read of several tables: when conn is idle, begins a read-only REPEATABLE READ
 * transaction and sets *own; inside a caller's transaction it does nothing (*own false).
 * Returns 0 or the class of the failure.
 */
int assay_pg_snapshot_begin(PGconn *conn, bool *own, char *errstr, size_t errstr_size);

/*
 * Ends what assay_pg_snapshot_begin started (nothing unless own): COMMIT when err is 0,
 * ROLLBACK otherwise. Returns err, or the failure to end the transaction when err was 0.
 */
int assay_pg_snapshot_end(PGconn *conn, bool own, int err, char *errstr, size_t errstr_size);

/*
 * Creates a named prepared statement on conn (PQprepare), for assay_pipeline_add_prepared()
 * or PQexecPrepared(). Preparing an existing name fails (42P05, fatal): prepare once per
 * connection. Returns 0 or the class of the failure, errstr "prepare <name> failed: ...".
 */
int assay_pg_prepare(PGconn *conn, const char *name, const char *sql, int nparams, char *errstr,
                     size_t errstr_size);

/*
 * COPY text-format buffer: rows for one COPY ... FROM STDIN, built column by column in
 * memory. A plain struct: assay_copybuf_init() before use, assay_copybuf_release() to free,
 * assay_copybuf_reset() to empty it for the next batch while keeping the memory.
 *
 * Each assay_copybuf_<type>() call appends one column value to the current row (the
 * separating tab is written for every column but the first of a row);
 * assay_copybuf_end_row() ends the row. Values are escaped as the COPY text format requires
 * (backslash, tab, newline and carriage return), so any UTF-8 text round-trips exactly.
 * Text must not contain NUL bytes (PostgreSQL text cannot hold them: the COPY is rejected).
 *
 * A failed allocation sets failed and makes later appends no-ops; assay_pg_copy() reports it
 * (ASSAY_ERR_FATAL), so callers need not check each append.
 */
struct assay_copybuf {
	char *data;       /* owned; len bytes of COPY text, not NUL-terminated; NULL when empty */
	size_t len;       /* bytes used */
	size_t cap;       /* bytes allocated */
	size_t rows;      /* complete rows (assay_copybuf_end_row() calls) */
	size_t columns;   /* columns written in the current, unfinished row */
	int failed;       /* an allocation failed: the contents are incomplete */
	int streaming;    /* between assay_pg_copy_begin() and assay_pg_copy_end() */
	size_t sent_rows; /* rows already sent by assay_pg_copy_flush() */
};

void assay_copybuf_init(struct assay_copybuf *b);
void assay_copybuf_release(struct assay_copybuf *b);
/* Empties the buffer (len, rows, columns and failed back to 0), keeping its memory. */
void assay_copybuf_reset(struct assay_copybuf *b);
/* Text of len bytes (s may be NULL when len is 0), escaped. */
void assay_copybuf_text(struct assay_copybuf *b, const char *s, size_t len);
/* A NUL-terminated string (s not NULL), as assay_copybuf_text(). */
void assay_copybuf_str(struct assay_copybuf *b, const char *s);
/* A decimal integer, for smallint/integer/bigint/numeric columns. */
void assay_copybuf_int64(struct assay_copybuf *b, int64_t v);
/* A bytea in hex format: the text \x0a1b... with its backslash doubled for COPY. p may be
 * NULL when len is 0 (the empty bytea). */
void assay_copybuf_bytea(struct assay_copybuf *b, const void *p, size_t len);
/* SQL NULL (\N). */
void assay_copybuf_null(struct assay_copybuf *b);
/* A boolean (t or f). */
void assay_copybuf_bool(struct assay_copybuf *b, int v);
/* Ends the current row (newline) and counts it. */
void assay_copybuf_end_row(struct assay_copybuf *b);
/* Complete rows in the buffer (with those already sent, while streaming). */
size_t assay_copybuf_rows(const struct assay_copybuf *b);

/*
 * Sends the rows of b with copy_sql ("COPY t (a, b) FROM STDIN", text format) on conn:
 * PQputCopyData in chunks of about 64 KiB, PQputCopyEnd, then the command's result.
 * Runs inside the caller's transaction if one is open (the usual case: COPY the batch, then
 * update offsets, then COMMIT); a COPY that fails leaves that transaction aborted and no
 * row of b is stored. Must not be called in pipeline mode (COPY is not allowed in a
 * pipeline). conn, copy_sql and b not NULL; an empty b still runs the COPY (0 rows).
 * Returns 0; ASSAY_ERR_FATAL when b->failed (out of memory), b has an unfinished row, or
 * the server stored a different number of rows than b holds;
 * otherwise the class of the failure: a bad row is ASSAY_ERR_REJECT (class 22/23) with the
 * server's message and its context ("COPY t, line 3, column b: ..."), a lost connection
 * ASSAY_ERR_RETRY. errstr "copy failed: ...".
 */
int assay_pg_copy(PGconn *conn, const char *copy_sql, const struct assay_copybuf *b, char *errstr,
                  size_t errstr_size);

/*
 * The same COPY sent while its rows are built, so that the server parses and stores them
 * while the caller builds the next ones (the two overlap on two cores):
 *
 *	assay_pg_copy_begin(conn, "COPY t (a, b) FROM STDIN", &b, ...);  // empties b
 *	for each row: assay_copybuf_...(&b, ...); assay_copybuf_end_row(&b);
 *	              assay_pg_copy_flush(conn, &b);   // sends b once it holds 64 KiB
 *	rc = assay_pg_copy_end(conn, &b, ...);           // the rest, then the result
 *
 * conn must not be used for anything else in between. assay_pg_copy_end() must follow a
 * successful begin, also when the caller gives up half-way (the transaction is rolled back
 * anyway); it returns what assay_pg_copy() would for all the rows. A failed send while
 * flushing is reported by assay_pg_copy_end().
 */
int assay_pg_copy_begin(PGconn *conn, const char *copy_sql, struct assay_copybuf *b, char *errstr,
                        size_t errstr_size);
void assay_pg_copy_flush(PGconn *conn, struct assay_copybuf *b);
int assay_pg_copy_end(PGconn *conn, struct assay_copybuf *b, char *errstr, size_t errstr_size);

/*
 * COPY binary-format buffer, for wide rows of bytes (an outbox of Avro events): no escaping
 * or hex on either side, about a third cheaper than text for 500-byte values. Each row
 * starts with assay_copybin_row(b, number of fields); then one call per field, whose type
 * must match the column exactly (int32 for integer, int64 for bigint, bytes for bytea and
 * for text, which must be valid UTF-8). Same ownership and failure rules as assay_copybuf.
 */
struct assay_copybin {
	char *data;  /* owned; the header and the rows */
	size_t len;  /* bytes used */
	size_t cap;  /* bytes allocated */
	size_t rows; /* rows started */
	int failed;  /* an allocation failed */
};

void assay_copybin_init(struct assay_copybin *b);
void assay_copybin_release(struct assay_copybin *b);
void assay_copybin_reset(struct assay_copybin *b);
void assay_copybin_row(struct assay_copybin *b, int fields);
void assay_copybin_int32(struct assay_copybin *b, int32_t v);
void assay_copybin_int64(struct assay_copybin *b, int64_t v);
/* bytea, or text given as UTF-8 bytes; p may be NULL when len is 0 */
void assay_copybin_bytes(struct assay_copybin *b, const void *p, size_t len);
void assay_copybin_null(struct assay_copybin *b);
/* A bytea field written in pieces: open returns where its length goes (0 when memory ran
 * out), append adds bytes, close writes the length of everything appended since open. */
size_t assay_copybin_bytes_open(struct assay_copybin *b);
void assay_copybin_append(struct assay_copybin *b, const void *p, size_t len);
void assay_copybin_bytes_close(struct assay_copybin *b, size_t at);

/* As assay_pg_copy() for "COPY t (...) FROM STDIN (FORMAT binary)". */
int assay_pg_copy_binary(PGconn *conn, const char *copy_sql, const struct assay_copybin *b,
                         char *errstr, size_t errstr_size);

/*
 * Many small parameterized statements sent in ONE round trip with libpq pipeline mode
 * (PQenterPipelineMode, PostgreSQL 14+ client API):
 *
 *	struct assay_pipeline p;
 *	assay_pipeline_init(&p);
 *	assay_pipeline_begin(&p, conn, ...);
 *	assay_pipeline_add(&p, "UPDATE ... WHERE next_offset = $3", 3, params, ...);  // n times
 *	rc = assay_pipeline_end(&p, ...);      // sync, collect every result, leave pipeline mode
 *	if (rc == 0 && p.affected[0] != 1) ... // compare-and-set lost
 *	assay_pipeline_release(&p);
 *
 * Transactions: with no BEGIN of its own, everything between begin and end runs as ONE
 * implicit transaction that commits at end, or rolls back entirely if any statement fails.
 * Inside a transaction the caller opened earlier, a failure leaves that transaction aborted:
 * the caller must ROLLBACK. "BEGIN" and "COMMIT" may also be added as statements.
 *
 * After a failure the counts of the statements before it describe work that was rolled back.
 *
 * Not allowed in a pipeline (libpq refuses or the server rejects them): COPY (refused by
 * assay_pipeline_add and assay_pg_copy), and strings of several statements (the server
 * rejects them, 42601). Run COPY before or after the pipeline on the same connection.
 * Sending does not deadlock on large pipelines: libpq reads replies while it waits to write
 * (tested with 50,000 statements).
 *
 * A plain struct, reusable for many pipelines: init once, release once. conn is borrowed.
 */
struct assay_pipeline {
	PGconn *conn;          /* borrowed between begin and end; NULL otherwise */
	size_t count;          /* statements added since begin */
	int64_t *affected;     /* owned; after end, count entries: rows affected or returned by
	                        * each statement (PQcmdTuples), -1 for a statement that failed or
	                        * was skipped after an earlier failure */
	size_t affected_cap;   /* entries allocated */
	int send_err;          /* class of the first failure while adding, 0 if none */
	char send_errstr[256]; /* its message, reported by end */
};

void assay_pipeline_init(struct assay_pipeline *p);
/* Frees the affected array. Must not be called between begin and end. */
void assay_pipeline_release(struct assay_pipeline *p);

/*
 * Puts conn into pipeline mode. conn must be idle (no result pending, not in pipeline mode).
 * Returns 0, or ASSAY_ERR_FATAL (conn busy, already in a pipeline) / ASSAY_ERR_RETRY
 * (connection lost), errstr "pipeline begin failed: ...".
 */
int assay_pipeline_begin(struct assay_pipeline *p, PGconn *conn, char *errstr, size_t errstr_size);

/*
 * Queues one statement with nparams text parameters (params[i] NULL is SQL NULL; params may
 * be NULL when nparams is 0). Nothing waits for the server. sql: a single statement.
 * Returns 0, or the class of a send failure (also remembered and reported by end, so a
 * caller may ignore the return value of add and check only end).
 */
int assay_pipeline_add(struct assay_pipeline *p, const char *sql, int nparams,
                       const char *const *params, char *errstr, size_t errstr_size);

/* As assay_pipeline_add() for a statement prepared with assay_pg_prepare(). */
int assay_pipeline_add_prepared(struct assay_pipeline *p, const char *name, int nparams,
                                const char *const *params, char *errstr, size_t errstr_size);

/*
 * Sends the sync, collects the result of every statement into p->affected, and takes conn
 * out of pipeline mode (unless the connection is lost). Always to be called after begin,
 * whatever add returned.
 * Returns 0 when every statement succeeded; otherwise the class of the first failure
 * (assay_pg_classify(); a send failure from add counts first), errstr
 * "pipeline statement <i> failed: ..." (i counted from 0). After ASSAY_ERR_RETRY with the
 * connection lost, reconnect.
 */
int assay_pipeline_end(struct assay_pipeline *p, char *errstr, size_t errstr_size);

#endif
