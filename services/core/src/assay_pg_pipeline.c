/*
 * Many small statements in one round trip with libpq's pipeline mode (assay_pipeline): the
 * results are collected in order and the first failure is classified like any other.
 */
#include "assay_pg.h"
#include "assay_pg_int.h"
#include "assay_err.h"

#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pipeline mode ---- */

void assay_pipeline_init(struct assay_pipeline *p)
{
	memset(p, 0, sizeof(*p));
}

void assay_pipeline_release(struct assay_pipeline *p)
{
	free(p->affected);
	memset(p, 0, sizeof(*p));
}

int assay_pipeline_begin(struct assay_pipeline *p, PGconn *conn, char *errstr, size_t errstr_size)
{
	if (p->conn != NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "pipeline begin failed: the previous pipeline was not ended");
	if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "pipeline begin failed: connection already in pipeline mode");
	if (PQenterPipelineMode(conn) != 1) {
		int rc = assay_pg_result_error(NULL, conn, "pipeline begin failed", errstr,
		                               errstr_size);
		return rc != 0 ? rc : ASSAY_ERR_FATAL;
	}
	p->conn = conn;
	p->count = 0;
	p->send_err = 0;
	p->send_errstr[0] = '\0';
	return 0;
}

/* Room for one more statement's count; 0 or ASSAY_ERR_FATAL. */
static int pipeline_reserve(struct assay_pipeline *p)
{
	size_t cap;
	int64_t *a;

	if (p->count < p->affected_cap)
		return 0;
	cap = p->affected_cap != 0 ? p->affected_cap * 2 : 64;
	if (cap > SIZE_MAX / sizeof(*a))
		return ASSAY_ERR_FATAL;
	a = realloc(p->affected, cap * sizeof(*a));
	if (a == NULL)
		return ASSAY_ERR_FATAL;
	p->affected = a;
	p->affected_cap = cap;
	return 0;
}

/* Whether sql starts with the word COPY (after blanks): COPY cannot run in a pipeline. */
static int is_copy(const char *sql)
{
	while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r')
		sql++;
	return strncasecmp(sql, "copy", 4) == 0 &&
	       (sql[4] == ' ' || sql[4] == '\t' || sql[4] == '\n' || sql[4] == '\r');
}

static int pipeline_send(struct assay_pipeline *p, const char *sql, const char *name, int nparams,
                         const char *const *params, char *errstr, size_t errstr_size)
{
	int ok;

	if (p->conn == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "pipeline add failed: no pipeline begun");
	if (p->send_err != 0) /* nothing more is sent after a failure; end reports it */
		return assay_errf(p->send_err, errstr, errstr_size, "%s", p->send_errstr);
	if (pipeline_reserve(p) != 0) {
		p->send_err =
		        assay_errf(ASSAY_ERR_FATAL, p->send_errstr, sizeof(p->send_errstr),
		                   "pipeline statement %zu not sent: out of memory", p->count);
		return assay_errf(p->send_err, errstr, errstr_size, "%s", p->send_errstr);
	}
	if (sql != NULL && is_copy(sql)) {
		p->send_err = assay_errf(ASSAY_ERR_FATAL, p->send_errstr, sizeof(p->send_errstr),
		                         "pipeline statement %zu not sent: copy is not allowed in "
		                         "a pipeline",
		                         p->count);
		return assay_errf(p->send_err, errstr, errstr_size, "%s", p->send_errstr);
	}
	if (sql != NULL)
		ok = PQsendQueryParams(p->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	else
		ok = PQsendQueryPrepared(p->conn, name, nparams, params, NULL, NULL, 0);
	if (ok != 1) {
		char what[64];
		int rc;

		snprintf(what, sizeof(what), "pipeline statement %zu not sent", p->count);
		rc = assay_pg_result_error(NULL, p->conn, what, p->send_errstr,
		                           sizeof(p->send_errstr));
		p->send_err = rc != 0 ? rc : ASSAY_ERR_FATAL;
		return assay_errf(p->send_err, errstr, errstr_size, "%s", p->send_errstr);
	}
	p->affected[p->count++] = -1;
	return 0;
}

int assay_pipeline_add(struct assay_pipeline *p, const char *sql, int nparams,
                       const char *const *params, char *errstr, size_t errstr_size)
{
	return pipeline_send(p, sql, NULL, nparams, params, errstr, errstr_size);
}

int assay_pipeline_add_prepared(struct assay_pipeline *p, const char *name, int nparams,
                                const char *const *params, char *errstr, size_t errstr_size)
{
	return pipeline_send(p, NULL, name, nparams, params, errstr, errstr_size);
}

/* Records the first failure of the pipeline: class rc (never 0) and its message. */
static int first_failure(int rc, int new_rc, const char *msg, char *errstr, size_t errstr_size)
{
	if (rc != 0)
		return rc;
	if (new_rc == 0)
		new_rc = ASSAY_ERR_FATAL;
	return assay_errf(new_rc, errstr, errstr_size, "%s", msg);
}

int assay_pipeline_end(struct assay_pipeline *p, char *errstr, size_t errstr_size)
{
	PGconn *conn = p->conn;
	char msg[512], what[64];
	PGresult *res;
	size_t i;
	int rc = 0, guard;

	if (conn == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "pipeline end failed: no pipeline begun");
	if (p->send_err != 0)
		rc = first_failure(rc, p->send_err, p->send_errstr, errstr, errstr_size);

	if (PQpipelineSync(conn) != 1) {
		int sync_rc =
		        assay_pg_result_error(NULL, conn, "pipeline sync failed", msg, sizeof(msg));
		rc = first_failure(rc, sync_rc, msg, errstr, errstr_size);
		goto out;
	}

	for (i = 0; i < p->count; i++) {
		ExecStatusType st;

		res = PQgetResult(conn);
		if (res == NULL) {
			snprintf(what, sizeof(what), "pipeline statement %zu failed", i);
			rc = first_failure(
			        rc, assay_pg_result_error(NULL, conn, what, msg, sizeof(msg)), msg,
			        errstr, errstr_size);
			goto out; /* the connection is lost: nothing more will come */
		}
		st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			p->affected[i] = assay_pg_cmd_tuples(res);
		} else if (st != PGRES_PIPELINE_ABORTED || rc == 0) {
			snprintf(what, sizeof(what), "pipeline statement %zu failed", i);
			rc = first_failure(rc,
			                   assay_pg_result_error(res, conn, what, msg, sizeof(msg)),
			                   msg, errstr, errstr_size);
		}
		PQclear(res);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
			goto out; /* cannot happen (is_copy), and libpq could not recover */
		/* the NULL that ends this statement's results */
		for (guard = 0; guard < 100 && (res = PQgetResult(conn)) != NULL; guard++)
			PQclear(res);
	}

	res = PQgetResult(conn);
	if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
		int sync_rc =
		        assay_pg_result_error(res, conn, "pipeline sync failed", msg, sizeof(msg));
		rc = first_failure(rc, sync_rc, msg, errstr, errstr_size);
	}
	PQclear(res);
	if (PQexitPipelineMode(conn) != 1) {
		int exit_rc =
		        assay_pg_result_error(NULL, conn, "pipeline exit failed", msg, sizeof(msg));
		rc = first_failure(rc, exit_rc, msg, errstr, errstr_size);
	}
out:
	p->conn = NULL;
	return rc;
}
