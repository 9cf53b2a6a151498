/*
 * COPY FROM STDIN for the batch transaction: text rows (assay_copybuf, escaped as COPY's text
 * format wants) and binary rows (assay_copybin, PostgreSQL's binary COPY format), sent whole
 * or streamed in pieces while they are built (assay_pg_copy_begin/flush/end).
 */
#include "assay_pg.h"
#include "assay_pg_int.h"
#include "assay_err.h"

#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	rc = assay_pg_check_result(res, conn, "copy failed", errstr, errstr_size);
	if (rc == 0) /* a statement that was not COPY FROM STDIN */
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "copy failed: statement is not COPY FROM STDIN");
	PQclear(res);
	return rc;
}

/* Sends len bytes of copy data in chunks; 0, or -1 when libpq could not send them. */
static int copy_put(PGconn *conn, const char *data, size_t len)
{
	for (size_t off = 0; off < len; off += ASSAY_PG_COPY_CHUNK) {
		size_t n = len - off < ASSAY_PG_COPY_CHUNK ? len - off : ASSAY_PG_COPY_CHUNK;

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
			stored = assay_pg_cmd_tuples(res);
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
	if (!b->streaming || b->failed || b->columns != 0 || b->len < ASSAY_PG_COPY_CHUNK)
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
