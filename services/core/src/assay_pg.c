/*
 * The PostgreSQL layer of libassay: connecting with assay's defaults, the mapping of
 * SQLSTATEs and connection loss onto the failure classes of assay_err.h, error messages in
 * house style, the COPY text-format buffer and its sender, and a pipeline-mode batch of small
 * statements. The functions here keep no state of their own beyond what the caller passes in.
 */
#include "assay_pg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* PQputCopyData chunk size: large enough to amortize the call, small enough to stream */
#define COPY_CHUNK (64 * 1024)

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
static int check_result(PGresult *res, PGconn *conn, const char *what, char *errstr,
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

static int64_t cmd_tuples(PGresult *res)
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
	int rc = check_result(res, conn, "query failed", errstr, errstr_size);

	PQclear(res);
	return rc;
}

int assay_pg_exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                         int64_t *affected, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int rc = check_result(res, conn, "query failed", errstr, errstr_size);

	if (affected != NULL)
		*affected = rc == 0 ? cmd_tuples(res) : 0;
	PQclear(res);
	return rc;
}

int assay_pg_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                   PGresult **out, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int rc = check_result(res, conn, "query failed", errstr, errstr_size);

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
	rc = check_result(res, conn, what, errstr, errstr_size);
	PQclear(res);
	return rc;
}

/* ---- COPY text-format buffer ---- */

void assay_copybuf_init(struct assay_copybuf *b)
{
	memset(b, 0, sizeof(*b));
}

void assay_copybuf_release(struct assay_copybuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void assay_copybuf_reset(struct assay_copybuf *b)
{
	b->len = 0;
	b->rows = 0;
	b->columns = 0;
	b->failed = 0;
	b->streaming = 0;
	b->sent_rows = 0;
}

/* Room for extra more bytes; 0, or -1 with failed set. */
/* Makes room in *data (capacity *cap, len used) for extra more bytes, doubling from 4 KiB.
 * Returns 0, or -1 when the size overflows or memory runs out (*data is then unchanged). */
static int grow(char **data, size_t *cap, size_t len, size_t extra)
{
	size_t need, want;
	char *p;

	if (extra > SIZE_MAX - len)
		return -1;
	need = len + extra;
	if (need <= *cap)
		return 0;
	want = *cap != 0 ? *cap : 4096;
	while (want < need)
		want = want > SIZE_MAX / 2 ? need : want * 2;
	p = realloc(*data, want);
	if (p == NULL)
		return -1;
	*data = p;
	*cap = want;
	return 0;
}

static int copybuf_reserve(struct assay_copybuf *b, size_t extra)
{
	if (b->failed || grow(&b->data, &b->cap, b->len, extra) != 0) {
		b->failed = 1;
		return -1;
	}
	return 0;
}

/* Reserves room for a column of up to width bytes plus its separator and writes the tab. */
static int copybuf_column(struct assay_copybuf *b, size_t width)
{
	if (width > SIZE_MAX - 1 || copybuf_reserve(b, width + 1) != 0) {
		b->failed = 1;
		return -1;
	}
	if (b->columns > 0)
		b->data[b->len++] = '\t';
	b->columns++;
	return 0;
}

void assay_copybuf_text(struct assay_copybuf *b, const char *s, size_t len)
{
	char *w;
	size_t i;

	if (len > (SIZE_MAX - 1) / 2) {
		b->failed = 1;
		return;
	}
	if (copybuf_column(b, 2 * len) != 0)
		return;
	w = b->data + b->len;
	for (i = 0; i < len; i++) {
		char c = s[i];

		switch (c) {
		case '\\':
			*w++ = '\\';
			*w++ = '\\';
			break;
		case '\t':
			*w++ = '\\';
			*w++ = 't';
			break;
		case '\n':
			*w++ = '\\';
			*w++ = 'n';
			break;
		case '\r':
			*w++ = '\\';
			*w++ = 'r';
			break;
		default:
			*w++ = c;
		}
	}
	b->len = (size_t)(w - b->data);
}

void assay_copybuf_str(struct assay_copybuf *b, const char *s)
{
	assay_copybuf_text(b, s, strlen(s));
}

void assay_copybuf_int64(struct assay_copybuf *b, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);

	if (copybuf_column(b, (size_t)n) != 0)
		return;
	memcpy(b->data + b->len, tmp, (size_t)n);
	b->len += (size_t)n;
}

void assay_copybuf_bytea(struct assay_copybuf *b, const void *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *in = p;
	char *w;
	size_t i;

	if (len > (SIZE_MAX - 4) / 2) {
		b->failed = 1;
		return;
	}
	if (copybuf_column(b, 3 + 2 * len) != 0)
		return;
	w = b->data + b->len;
	*w++ = '\\'; /* bytea's "\x" prefix, its backslash doubled for COPY */
	*w++ = '\\';
	*w++ = 'x';
	for (i = 0; i < len; i++) {
		*w++ = hex[in[i] >> 4];
		*w++ = hex[in[i] & 0x0f];
	}
	b->len = (size_t)(w - b->data);
}

void assay_copybuf_null(struct assay_copybuf *b)
{
	if (copybuf_column(b, 2) != 0)
		return;
	b->data[b->len++] = '\\';
	b->data[b->len++] = 'N';
}

void assay_copybuf_bool(struct assay_copybuf *b, int v)
{
	if (copybuf_column(b, 1) != 0)
		return;
	b->data[b->len++] = v ? 't' : 'f';
}

void assay_copybuf_end_row(struct assay_copybuf *b)
{
	if (copybuf_reserve(b, 1) != 0)
		return;
	b->data[b->len++] = '\n';
	b->rows++;
	b->columns = 0;
}

size_t assay_copybuf_rows(const struct assay_copybuf *b)
{
	return b->sent_rows + b->rows;
}

/* ---- COPY FROM STDIN ---- */

/* Runs copy_sql, which must be a COPY FROM STDIN: 0 with conn in the copy-in state, or the
 * class of the failure. */
static int copy_open(PGconn *conn, const char *copy_sql, char *errstr, size_t errstr_size)
{
	PGresult *res;
	int rc;

	if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "copy failed: not allowed in pipeline mode");
	res = PQexec(conn, copy_sql);
	if (res != NULL && PQresultStatus(res) == PGRES_COPY_IN) {
		PQclear(res);
		return 0;
	}
	rc = check_result(res, conn, "copy failed", errstr, errstr_size);
	if (rc == 0) /* a statement that was not COPY FROM STDIN */
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "copy failed: statement is not COPY FROM STDIN");
	PQclear(res);
	return rc;
}

/* Sends len bytes of copy data in chunks; 0, or -1 when libpq could not send them. */
static int copy_put(PGconn *conn, const char *data, size_t len)
{
	for (size_t off = 0; off < len; off += COPY_CHUNK) {
		size_t n = len - off < COPY_CHUNK ? len - off : COPY_CHUNK;

		if (PQputCopyData(conn, data + off, (int)n) != 1)
			return -1;
	}
	return 0;
}

/* Ends the copy (failing it on purpose with why when why is not NULL), reads every result
 * so that conn is idle afterwards, and checks that the server stored rows rows. */
static int copy_close(PGconn *conn, const char *why, size_t rows, char *errstr, size_t errstr_size)
{
	PGresult *res;
	int rc = 0, guard;
	int64_t stored = -1;

	if (PQputCopyEnd(conn, why) != 1) {
		/* the connection is gone: report libpq's reason */
		rc = assay_pg_result_error(NULL, conn, "copy failed", errstr, errstr_size);
		if (rc == 0)
			rc = ASSAY_ERR_FATAL;
	}
	/* the first failure wins */
	for (guard = 0; guard < 100 && (res = PQgetResult(conn)) != NULL; guard++) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_COMMAND_OK) {
			stored = cmd_tuples(res);
		} else if (rc == 0) {
			rc = assay_pg_result_error(res, conn, "copy failed", errstr, errstr_size);
			if (rc == 0)
				rc = ASSAY_ERR_FATAL;
		}
		PQclear(res);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
			break; /* libpq could not leave the copy state: the connection is unusable
			        */
	}
	if (why != NULL) {
		/* the server's answer is the failure we asked for: report ours, or libpq's
		 * reason when the connection broke */
		if (PQstatus(conn) == CONNECTION_BAD)
			return assay_pg_result_error(NULL, conn, "copy failed", errstr,
			                             errstr_size);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "copy failed: %s", why);
	}
	if (rc == 0 && stored != (int64_t)rows)
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "copy failed: server stored %" PRId64 " rows, the buffer holds %zu",
		                stored, rows);
	return rc;
}

/* Runs copy_sql and sends data (then trailer, which may be NULL) as its input; checks that
 * the server stored rows rows. Shared by the text and the binary buffers. */
static int copy_send(PGconn *conn, const char *copy_sql, const char *data, size_t len,
                     const char *trailer, size_t trailer_len, size_t rows, char *errstr,
                     size_t errstr_size)
{
	int rc = copy_open(conn, copy_sql, errstr, errstr_size);

	if (rc)
		return rc;
	if (copy_put(conn, data, len) != 0 ||
	    (trailer != NULL && copy_put(conn, trailer, trailer_len) != 0))
		return copy_close(conn, "client failed to send the copy data", rows, errstr,
		                  errstr_size);
	return copy_close(conn, NULL, rows, errstr, errstr_size);
}

int assay_pg_copy(PGconn *conn, const char *copy_sql, const struct assay_copybuf *b, char *errstr,
                  size_t errstr_size)
{
	if (b->failed)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "copy failed: out of memory while building the rows");
	if (b->columns != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "copy failed: the last row is unfinished (no end_row)");
	return copy_send(conn, copy_sql, b->data, b->len, NULL, 0, b->rows, errstr, errstr_size);
}

int assay_pg_copy_begin(PGconn *conn, const char *copy_sql, struct assay_copybuf *b, char *errstr,
                        size_t errstr_size)
{
	int rc;

	assay_copybuf_reset(b);
	rc = copy_open(conn, copy_sql, errstr, errstr_size);
	b->streaming = rc == 0;
	return rc;
}

void assay_pg_copy_flush(PGconn *conn, struct assay_copybuf *b)
{
	if (!b->streaming || b->failed || b->columns != 0 || b->len < COPY_CHUNK)
		return;
	if (copy_put(conn, b->data, b->len) != 0) {
		b->failed = 1; /* reported by assay_pg_copy_end */
		return;
	}
	b->sent_rows += b->rows;
	b->rows = 0;
	b->len = 0;
}

int assay_pg_copy_end(PGconn *conn, struct assay_copybuf *b, char *errstr, size_t errstr_size)
{
	const char *why = NULL;
	size_t rows = b->sent_rows + b->rows;

	if (!b->streaming)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "copy failed: no copy was begun");
	b->streaming = 0;
	if (b->failed)
		why = "out of memory or a failed send while building the rows";
	else if (b->columns != 0)
		why = "the last row is unfinished (no end_row)";
	else if (copy_put(conn, b->data, b->len) != 0)
		why = "client failed to send the copy data";
	b->sent_rows = rows;
	return copy_close(conn, why, rows, errstr, errstr_size);
}

/* ---- COPY binary-format buffer ---- */

/* "PGCOPY\n\377\r\n\0", flags 0, header extension length 0 */
static const char copybin_header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n',
                                        0,   0,   0,   0,   0,   0,   0,    0,      0};

void assay_copybin_init(struct assay_copybin *b)
{
	memset(b, 0, sizeof(*b));
}

void assay_copybin_release(struct assay_copybin *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void assay_copybin_reset(struct assay_copybin *b)
{
	b->len = 0;
	b->rows = 0;
	b->failed = 0;
}

/* Room for extra more bytes (and the header, first); 0, or -1 with failed set. */
static int copybin_reserve(struct assay_copybin *b, size_t extra)
{
	if (b->failed || extra > SIZE_MAX - sizeof(copybin_header) ||
	    grow(&b->data, &b->cap, b->len, extra + sizeof(copybin_header)) != 0) {
		b->failed = 1;
		return -1;
	}
	if (b->len == 0) {
		memcpy(b->data, copybin_header, sizeof(copybin_header));
		b->len = sizeof(copybin_header);
	}
	return 0;
}

static void put_be(char *w, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w[i] = (char)(v >> (8 * (n - 1 - i)));
}

void assay_copybin_row(struct assay_copybin *b, int fields)
{
	if (copybin_reserve(b, 2) != 0)
		return;
	put_be(b->data + b->len, (uint64_t)fields, 2);
	b->len += 2;
	b->rows++;
}

/* A field of len bytes: its 4-byte length and the bytes. */
static void copybin_field(struct assay_copybin *b, const void *p, size_t len)
{
	if (len > INT32_MAX || copybin_reserve(b, 4 + len) != 0) {
		b->failed = 1;
		return;
	}
	put_be(b->data + b->len, (uint64_t)len, 4);
	if (len)
		memcpy(b->data + b->len + 4, p, len);
	b->len += 4 + len;
}

void assay_copybin_int32(struct assay_copybin *b, int32_t v)
{
	char w[4];

	put_be(w, (uint32_t)v, 4);
	copybin_field(b, w, 4);
}

void assay_copybin_int64(struct assay_copybin *b, int64_t v)
{
	char w[8];

	put_be(w, (uint64_t)v, 8);
	copybin_field(b, w, 8);
}

void assay_copybin_bytes(struct assay_copybin *b, const void *p, size_t len)
{
	copybin_field(b, p, len);
}

size_t assay_copybin_bytes_open(struct assay_copybin *b)
{
	size_t at;

	if (copybin_reserve(b, 4) != 0)
		return 0;
	at = b->len;
	b->len += 4;
	return at;
}

void assay_copybin_append(struct assay_copybin *b, const void *p, size_t len)
{
	if (copybin_reserve(b, len) != 0)
		return;
	if (len)
		memcpy(b->data + b->len, p, len);
	b->len += len;
}

void assay_copybin_bytes_close(struct assay_copybin *b, size_t at)
{
	if (b->failed || at == 0)
		return;
	if (b->len - at - 4 > INT32_MAX) {
		b->failed = 1;
		return;
	}
	put_be(b->data + at, (uint64_t)(b->len - at - 4), 4);
}

void assay_copybin_null(struct assay_copybin *b)
{
	if (copybin_reserve(b, 4) != 0)
		return;
	put_be(b->data + b->len, 0xffffffffu, 4); /* length -1 */
	b->len += 4;
}

int assay_pg_copy_binary(PGconn *conn, const char *copy_sql, const struct assay_copybin *b,
                         char *errstr, size_t errstr_size)
{
	static const char trailer[2] = {(char)0xff, (char)0xff};

	if (b->failed)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "copy failed: out of memory while building the rows");
	return copy_send(conn, copy_sql, b->len ? b->data : copybin_header,
	                 b->len ? b->len : sizeof(copybin_header), trailer, sizeof(trailer),
	                 b->rows, errstr, errstr_size);
}

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
			p->affected[i] = cmd_tuples(res);
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
