/*
 * Internals shared by assay_pg.c, assay_pg_copy.c and assay_pg_pipeline.c.
 */
#ifndef ASSAY_PG_INT_H
#define ASSAY_PG_INT_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* PQputCopyData chunk size: large enough to amortize the call, small enough to stream */
#define ASSAY_PG_COPY_CHUNK (64 * 1024)

/* 0 when res is COMMAND_OK, TUPLES_OK or EMPTY_QUERY; otherwise the failure class with errstr
 * filled (an unexpected COPY is fatal and is ended so conn stays usable). */
int assay_pg_check_result(PGresult *res, PGconn *conn, const char *what, char *errstr,
                          size_t errstr_size);

/* The rows a command affected (PQcmdTuples), 0 when it does not say. */
int64_t assay_pg_cmd_tuples(PGresult *res);

#endif
