/*
 * The PostgreSQL layer of libassay: connecting with assay's defaults, the mapping of
 * SQLSTATEs and connection loss onto the failure classes of assay_err.h, error messages in
 * house style, statements and snapshots. COPY is in assay_pg_copy.c, pipeline mode in
 * assay_pg_pipeline.c. The functions keep no state of their own beyond what the caller passes.
 */
#include "assay_pg.h"
#include "assay_pg_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- classification ---- */

const char *assay_pg_sqlstate(const PGresult *res)
{
	const char *state;

	if (res == NULL)
		return "";
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return state != NULL ? state : "";
}
int assay_pg_classify_sqlstate(const char *sqlstate)
{
	static const char *const retry[] = {"40001", "40P01", "57P01", "57P02", "57P03", "55P03"};
	size_t i;

	if (sqlstate == NULL || strlen(sqlstate) != 5)
		return ASSAY_ERR_FATAL;
	if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0)
		return ASSAY_ERR_RETRY;
	for (i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
		if (strcmp(sqlstate, retry[i]) == 0)
			return ASSAY_ERR_RETRY;
	if (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0)
		return ASSAY_ERR_REJECT;
	return ASSAY_ERR_FATAL;
}

static int status_is_success(ExecStatusType st)
{
	switch (st) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_SINGLE_TUPLE:
	case PGRES_COPY_IN:
	case PGRES_COPY_OUT:
	case PGRES_COPY_BOTH:
	case PGRES_PIPELINE_SYNC:
	case PGRES_EMPTY_QUERY:
		return 1;
	default:
		return 0;
	}
}

int assay_pg_classify(const PGresult *res, PGconn *conn)
{
	int conn_bad = conn != NULL && PQstatus(conn) == CONNECTION_BAD;
	const char *state;

	if (res != NULL && status_is_success(PQresultStatus(res)))
		return 0;
	if (conn_bad)
		return ASSAY_ERR_RETRY;
	if (res == NULL)
		return ASSAY_ERR_FATAL; /* out of memory, or misuse on a good connection */
	state = assay_pg_sqlstate(res);
	if (*state == '\0')
		return ASSAY_ERR_FATAL; /* a client-side error: pipeline aborted, misuse */
	return assay_pg_classify_sqlstate(state);
}

/* ---- error messages ---- */

struct msgbuf {
	char *buf;
	size_t size;
	size_t len;
};

static void msg_add(struct msgbuf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void msg_add(struct msgbuf *m, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (m->buf == NULL || m->size == 0 || m->len >= m->size - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(m->buf + m->len, m->size - m->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	m->len += (size_t)n;
	if (m->len > m->size - 1)
		m->len = m->size - 1;
}

/* Length of s without trailing newlines and spaces. */
static size_t trimmed_len(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
		n--;
	return n;
}

/* libpq's own text for a failure: "ERROR:  " prefix and trailing newline removed. */
static void msg_add_libpq(struct msgbuf *m, const char *text)
{
	size_t n;

	if (strncmp(text, "ERROR:  ", 8) == 0 || strncmp(text, "FATAL:  ", 8) == 0)
		text += 8;
	n = trimmed_len(text);
	msg_add(m, "%.*s", (int)(n > INT32_MAX ? INT32_MAX : n), text);
}

/* One line: newlines inside server texts (multi-line contexts) become spaces. */
static void flatten(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\n' || *s == '\r')
			*s = ' ';
}

int assay_pg_result_error(const PGresult *res, PGconn *conn, const char *what, char *errstr,
                          size_t errstr_size)
{
	struct msgbuf m = {errstr, errstr_size, 0};
	const char *primary = NULL, *detail = NULL, *hint = NULL, *context = NULL;
	const char *state = assay_pg_sqlstate(res);

	if (errstr != NULL && errstr_size > 0)
		errstr[0] = '\0';
	if (res != NULL) {
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		context = PQresultErrorField(res, PG_DIAG_CONTEXT);
	}
	msg_add(&m, "%s: ", what);
	if (primary != NULL)
		msg_add(&m, "%s", primary);
	else if (res != NULL && *PQresultErrorMessage(res) != '\0')
		msg_add_libpq(&m, PQresultErrorMessage(res));
	else if (conn != NULL && *PQerrorMessage(conn) != '\0')
		msg_add_libpq(&m, PQerrorMessage(conn));
	else if (res != NULL)
		msg_add(&m, "unexpected result %s", PQresStatus(PQresultStatus(res)));
	else
		msg_add(&m, "no result (out of memory)");
	if (detail != NULL)
		msg_add(&m, "; detail: %s", detail);
	if (hint != NULL)
		msg_add(&m, "; hint: %s", hint);
	if (context != NULL)
		msg_add(&m, "; context: %s", context);
	if (*state != '\0')
		msg_add(&m, " (sqlstate %s)", state);
	if (errstr != NULL && errstr_size > 0)
		flatten(errstr);
	return assay_pg_classify(res, conn);
}

/* ---- connecting ---- */

/* Library code never prints: notices (NOTICE, WARNING) are dropped unless the caller
 * installs its own receiver with PQsetNoticeReceiver(). */
static void ignore_notice(void *arg, const PGresult *res)
{
	(void)arg;
	(void)res;
}

int assay_pg_connect(const char *url, PGconn **out, char *errstr, size_t errstr_size)
{
	/* Keywords before dbname are defaults: the expanded URL overrides them. */
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {ASSAY_PG_CONNECT_TIMEOUT, ASSAY_PG_APPLICATION_NAME, url, NULL};
	PQconninfoOption *opts;
	char *perr = NULL;
	PGconn *conn;
	int rc;

	*out = NULL;
	if (url == NULL || *url == '\0')
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "postgresql url invalid: empty");
	opts = PQconninfoParse(url, &perr);
	if (opts == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "postgresql url invalid: %.*s",
		                perr != NULL ? (int)trimmed_len(perr) : 13,
		                perr != NULL ? perr : "out of memory");
		PQfreemem(perr);
		return rc;
	}
	PQconninfoFree(opts);

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "postgresql connect failed: out of memory");
	if (PQstatus(conn) != CONNECTION_OK) {
		struct msgbuf m = {errstr, errstr_size, 0};

		msg_add(&m, "postgresql connect failed: ");
		msg_add_libpq(&m, PQerrorMessage(conn));
		if (errstr != NULL && errstr_size > 0)
			flatten(errstr);
		PQfinish(conn);
		return ASSAY_ERR_RETRY;
	}
	PQsetNoticeReceiver(conn, ignore_notice, NULL);
	*out = conn;
	return 0;
}

/* ---- commands ---- */

/*
 * Leaves conn idle after an unexpected COPY state or extra results, so that it stays usable.
 * Bounded: a connection that keeps producing results is given up on (it is broken anyway).
 */
static void drain(PGconn *conn)
{
	PGresult *res;
	int guard;

	for (guard = 0; guard < 1000 && (res = PQgetResult(conn)) != NULL; guard++) {
		ExecStatusType st = PQresultStatus(res);

		PQclear(res);
		if (st == PGRES_COPY_IN) {
			if (PQputCopyEnd(conn, "unexpected copy") < 0)
				return;
		} else if (st == PGRES_COPY_OUT) {
			char *buf;
			int n;

			while ((n = PQgetCopyData(conn, &buf, 0)) > 0)
				PQfreemem(buf);
			if (n == -2)
				return;
		} else if (st == PGRES_COPY_BOTH) {
			return;
		}
	}
}

/*
 * 0 when res is COMMAND_OK, TUPLES_OK or EMPTY_QUERY; otherwise the failure class with errstr
 * filled (an unexpected COPY is fatal and is ended so conn stays usable).
 */
int assay_pg_check_result(PGresult *res, PGconn *conn, const char *what, char *errstr,
                          size_t errstr_size)
{
	ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int rc;

	if (res != NULL &&
	    (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY))
		return 0;
	if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "%s: unexpected %s (use assay_pg_copy)", what, PQresStatus(st));
		if (st == PGRES_COPY_IN && PQputCopyEnd(conn, "unexpected copy") < 0)
			return ASSAY_ERR_FATAL;
		drain(conn);
		return ASSAY_ERR_FATAL;
	}
	rc = assay_pg_result_error(res, conn, what, errstr, errstr_size);
	return rc != 0 ? rc : ASSAY_ERR_FATAL;
}

int64_t assay_pg_cmd_tuples(PGresult *res)
{
	const char *s = PQcmdTuples(res);
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return 0;
	v = strtoll(s, &end, 10);
	return *end == '\0' && v >= 0 ? (int64_t)v : 0;
}

int assay_pg_exec(PGconn *conn, const char *sql, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexec(conn, sql);
	int rc = assay_pg_check_result(res, conn, "query failed", errstr, errstr_size);

	PQclear(res);
	return rc;
}

int assay_pg_exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                         int64_t *affected, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int rc = assay_pg_check_result(res, conn, "query failed", errstr, errstr_size);

	if (affected != NULL)
		*affected = rc == 0 ? assay_pg_cmd_tuples(res) : 0;
	PQclear(res);
	return rc;
}

int assay_pg_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                   PGresult **out, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int rc = assay_pg_check_result(res, conn, "query failed", errstr, errstr_size);

	if (rc != 0) {
		PQclear(res);
		*out = NULL;
		return rc;
	}
	*out = res; /* handed to the caller */
	return 0;
}

int assay_pg_snapshot_begin(PGconn *conn, bool *own, char *errstr, size_t errstr_size)
{
	*own = PQtransactionStatus(conn) == PQTRANS_IDLE;
	if (!*own)
		return 0;
	return assay_pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", errstr,
	                     errstr_size);
}

int assay_pg_snapshot_end(PGconn *conn, bool own, int err, char *errstr, size_t errstr_size)
{
	PGTransactionStatusType st = PQtransactionStatus(conn);
	char why[256];
	int end;

	if (!own || st == PQTRANS_IDLE || st == PQTRANS_UNKNOWN)
		return err;
	end = assay_pg_exec(conn, err ? "ROLLBACK" : "COMMIT", why, sizeof(why));
	if (end && !err)
		return assay_errf(end, errstr, errstr_size, "%s", why);
	return err;
}

int assay_pg_prepare(PGconn *conn, const char *name, const char *sql, int nparams, char *errstr,
                     size_t errstr_size)
{
	PGresult *res = PQprepare(conn, name, sql, nparams, NULL);
	char what[128];
	int rc;

	snprintf(what, sizeof(what), "prepare %s failed", name);
	rc = assay_pg_check_result(res, conn, what, errstr, errstr_size);
	PQclear(res);
	return rc;
}
