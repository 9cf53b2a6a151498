/*
 * libpq against the local PostgreSQL: connecting, a parameter round trip, failure classes of
 * real server errors, COPY FROM STDIN of 10,000 tricky rows read back byte for byte, a COPY
 * with a bad row, and pipeline mode (1,000 INSERTs in one transaction, compare-and-set
 * counts, a failing statement, a pipeline large enough to fill the socket buffers).
 * Each run works in its own fresh database.
 */
#include "assay_test.h"
#include "assay_test_pg.h"
#include "assay_pg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
	*state = assay_test_pg_db_new("test_pg_stack");
	return 0;
}

static int teardown(void **state)
{
	assay_test_pg_db_destroy(*state);
	return 0;
}

static void test_connect_unreachable_is_retry(void **state)
{
	char err[512];
	PGconn *conn = (PGconn *)1;

	(void)state;
	/* port 1 on loopback: nothing listens, the connection is refused */
	assert_int_equal(
	        assay_pg_connect("postgresql://assay@127.0.0.1:1/assay", &conn, err, sizeof(err)),
	        ASSAY_ERR_RETRY);
	assert_null(conn);
	assert_non_null(strstr(err, "postgresql connect failed: "));
	assert_non_null(strstr(err, "127.0.0.1")); /* libpq's own text names the server */
	assert_null(strchr(err, '\n'));

	assert_int_equal(assay_pg_connect("postgresql://[::1/x", &conn, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "postgresql url invalid"));
}

static void test_application_name(void **state)
{
	struct assay_test_pg_db *fx = *state;
	char url[600], err[512];
	PGresult *res = NULL;
	PGconn *conn = NULL;

	assert_int_equal(
	        assay_pg_query(fx->conn, "SHOW application_name", 0, NULL, &res, err, sizeof(err)),
	        0);
	assert_string_equal(PQgetvalue(res, 0, 0), ASSAY_PG_APPLICATION_NAME);
	PQclear(res);

	snprintf(url, sizeof(url), "%s%capplication_name=assay_intake", fx->url,
	         strchr(fx->url, '?') != NULL ? '&' : '?');
	if (assay_pg_connect(url, &conn, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(
	        assay_pg_query(conn, "SHOW application_name", 0, NULL, &res, err, sizeof(err)), 0);
	assert_string_equal(PQgetvalue(res, 0, 0), "assay_intake");
	PQclear(res);
	PQfinish(conn);
}

static void test_round_trip(void **state)
{
	struct assay_test_pg_db *fx = *state;
	const char *param = "h\xc3\xa9llo\t\xe6\x97\xa5\xe6\x9c\xac\n'\"\\";
	const char *params[2] = {param, NULL};
	char err[512], want[128];
	PGresult *res = NULL;
	int64_t affected = -1;

	assert_int_equal(assay_pg_query(fx->conn, "SELECT $1::text || '!', $2::text IS NULL", 2,
	                                params, &res, err, sizeof(err)),
	                 0);
	snprintf(want, sizeof(want), "%s!", param);
	assert_int_equal(PQntuples(res), 1);
	assert_string_equal(PQgetvalue(res, 0, 0), want);
	assert_string_equal(PQgetvalue(res, 0, 1), "t");
	PQclear(res);

	assert_int_equal(assay_pg_exec_params(fx->conn, "SELECT generate_series(1, $1::int)", 1,
	                                      (const char *const[]){"5"}, &affected, err,
	                                      sizeof(err)),
	                 0);
	assert_int_equal(affected, 5);
}

static void test_server_errors_are_classified(void **state)
{
	struct assay_test_pg_db *fx = *state;
	char err[512];
	PGconn *other = NULL;

	assert_int_equal(assay_pg_exec(fx->conn, "SELECT 1/0", err, sizeof(err)), ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "division by zero"));
	assert_non_null(strstr(err, "(sqlstate 22012)"));

	assert_int_equal(assay_pg_exec(fx->conn, "SELEC 1", err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "(sqlstate 42601)"));
	assert_int_equal(assay_pg_exec(fx->conn, "SELECT * FROM no_such_table", err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "(sqlstate 42P01)"));

	assay_test_pg_exec(fx->conn, "CREATE TABLE uniq (id int PRIMARY KEY)");
	assay_test_pg_exec(fx->conn, "INSERT INTO uniq VALUES (1)");
	assert_int_equal(assay_pg_exec(fx->conn, "INSERT INTO uniq VALUES (1)", err, sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "duplicate key"));
	assert_non_null(strstr(err, "detail: Key (id)=(1) already exists"));

	/* 55P03 lock_not_available: another session holds the lock */
	if (assay_pg_connect(fx->url, &other, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assay_test_pg_exec(other, "BEGIN");
	assay_test_pg_exec(other, "LOCK TABLE uniq IN ACCESS EXCLUSIVE MODE");
	assay_test_pg_exec(fx->conn, "BEGIN");
	assert_int_equal(assay_pg_exec(fx->conn, "LOCK TABLE uniq IN ACCESS EXCLUSIVE MODE NOWAIT",
	                               err, sizeof(err)),
	                 ASSAY_ERR_RETRY);
	assert_non_null(strstr(err, "(sqlstate 55P03)"));
	assay_test_pg_exec(fx->conn, "ROLLBACK");
	assay_test_pg_exec(other, "ROLLBACK");

	/* a session terminated by the server: the connection is lost, retry */
	{
		char pid[32], sql[96];

		snprintf(pid, sizeof(pid), "%d", PQbackendPID(other));
		snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s)", pid);
		assay_test_pg_exec(fx->conn, sql);
	}
	assert_int_equal(assay_pg_exec(other, "SELECT 1", err, sizeof(err)), ASSAY_ERR_RETRY);
	assert_int_equal(PQstatus(other), CONNECTION_BAD);
	PQfinish(other);
}

/* xorshift64*: the same rows from the same seed, to build and to check */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

#define ROWS 10000

struct row {
	char text[256];
	size_t text_len;
	int text_null;
	unsigned char bytes[80];
	size_t bytes_len;
	int64_t n;
	int flag;
};

static void make_row(int i, struct row *r)
{
	static const char *const pieces[] = {
	        "\t",
	        "\n",
	        "\r",
	        "\\",
	        "\\N",
	        "\\.",
	        "\r\n",
	        "\\t",
	        "plain",
	        " ",
	        "",
	        ",",
	        "\"",
	        "'",
	        "\xc3\xa9",
	        "\xe6\x97\xa5\xe6\x9c\xac",
	        "\xf0\x9f\x98\x80",
	        "\x01",
	        "\x7f",
	        "end\\",
	};
	uint64_t s = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ULL;
	size_t k, npieces;

	memset(r, 0, sizeof(*r));
	next_rand(&s);
	r->text_null = next_rand(&s) % 17 == 0;
	npieces = next_rand(&s) % 12;
	for (k = 0; k < npieces; k++) {
		const char *p = pieces[next_rand(&s) % (sizeof(pieces) / sizeof(pieces[0]))];
		size_t n = strlen(p);

		memcpy(r->text + r->text_len, p, n);
		r->text_len += n;
	}
	r->bytes_len = next_rand(&s) % sizeof(r->bytes);
	for (k = 0; k < r->bytes_len; k++)
		r->bytes[k] = (unsigned char)next_rand(&s);
	r->n = (int64_t)next_rand(&s);
	r->flag = (int)(next_rand(&s) & 1);
}

static int64_t be64(const char *p)
{
	uint64_t v = 0;
	int k;

	for (k = 0; k < 8; k++)
		v = v << 8 | (unsigned char)p[k];
	return (int64_t)v;
}

static void test_copy_10000_rows_round_trip(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_copybuf b;
	struct row r;
	char err[1024];
	PGresult *res;
	int i;

	assay_test_pg_exec(fx->conn,
	                   "CREATE TABLE copied (id integer PRIMARY KEY, s text, b bytea NOT NULL, "
	                   "n bigint NOT NULL, f boolean NOT NULL)");
	assay_copybuf_init(&b);
	for (i = 0; i < ROWS; i++) {
		make_row(i, &r);
		assay_copybuf_int64(&b, i);
		if (r.text_null)
			assay_copybuf_null(&b);
		else
			assay_copybuf_text(&b, r.text, r.text_len);
		assay_copybuf_bytea(&b, r.bytes, r.bytes_len);
		assay_copybuf_int64(&b, r.n);
		assay_copybuf_bool(&b, r.flag);
		assay_copybuf_end_row(&b);
	}
	assert_int_equal(assay_copybuf_rows(&b), ROWS);
	assert_true(b.len > 2 * 64 * 1024); /* several PQputCopyData chunks */
	if (assay_pg_copy(fx->conn, "COPY copied (id, s, b, n, f) FROM STDIN", &b, err,
	                  sizeof(err)) != 0)
		fail_msg("%s", err);
	assay_copybuf_release(&b);

	/* binary results: the stored bytes exactly, no text conversion in between */
	res = PQexecParams(fx->conn, "SELECT id::bigint, s, b, n, f FROM copied ORDER BY id", 0,
	                   NULL, NULL, NULL, NULL, 1);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), ROWS);
	for (i = 0; i < ROWS; i++) {
		make_row(i, &r);
		assert_int_equal(be64(PQgetvalue(res, i, 0)), i);
		if (r.text_null) {
			assert_true(PQgetisnull(res, i, 1));
		} else {
			assert_false(PQgetisnull(res, i, 1));
			assert_int_equal(PQgetlength(res, i, 1), r.text_len);
			assert_memory_equal(PQgetvalue(res, i, 1), r.text, r.text_len);
		}
		assert_int_equal(PQgetlength(res, i, 2), r.bytes_len);
		if (r.bytes_len > 0)
			assert_memory_equal(PQgetvalue(res, i, 2), r.bytes, r.bytes_len);
		assert_int_equal(be64(PQgetvalue(res, i, 3)), r.n);
		assert_int_equal(PQgetvalue(res, i, 4)[0], r.flag);
	}
	PQclear(res);
}

static void test_copy_bad_row_rejected(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_copybuf b;
	char err[1024];
	int i;

	assay_test_pg_exec(fx->conn,
	                   "CREATE TABLE strict_rows (id integer PRIMARY KEY, qty integer NOT NULL "
	                   "CHECK (qty >= 0))");
	assay_copybuf_init(&b);
	for (i = 1; i <= 100; i++) {
		assay_copybuf_int64(&b, i);
		if (i == 57)
			assay_copybuf_str(&b, "seven");
		else
			assay_copybuf_int64(&b, i);
		assay_copybuf_end_row(&b);
	}
	assert_int_equal(assay_pg_copy(fx->conn, "COPY strict_rows (id, qty) FROM STDIN", &b, err,
	                               sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "copy failed: invalid input syntax for type integer"));
	assert_non_null(strstr(err, "context: COPY strict_rows, line 57, column qty"));
	assert_non_null(strstr(err, "(sqlstate 22P02)"));
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM strict_rows"), 0);

	/* a constraint violation in the middle of a transaction: rejected, nothing kept */
	assay_copybuf_reset(&b);
	for (i = 1; i <= 100; i++) {
		assay_copybuf_int64(&b, i);
		assay_copybuf_int64(&b, i == 99 ? -1 : i);
		assay_copybuf_end_row(&b);
	}
	assay_test_pg_exec(fx->conn, "BEGIN");
	assay_test_pg_exec(fx->conn, "INSERT INTO strict_rows VALUES (1000, 1)");
	assert_int_equal(assay_pg_copy(fx->conn, "COPY strict_rows (id, qty) FROM STDIN", &b, err,
	                               sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "strict_rows_qty_check"));
	assert_non_null(strstr(err, "(sqlstate 23514)"));
	assert_int_equal(PQtransactionStatus(fx->conn), PQTRANS_INERROR);
	assay_test_pg_exec(fx->conn, "ROLLBACK");
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM strict_rows"), 0);

	/* a statement that is not COPY FROM STDIN */
	assert_int_equal(assay_pg_copy(fx->conn, "SELECT 1", &b, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	/* the connection stays usable after every failure */
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT 42"), 42);
	assay_copybuf_release(&b);
}

/*
 * The streaming COPY: 20,000 rows sent in pieces while they are built (many flushes, the
 * buffer never holds them all) arrive whole and in order; a bad row in a later piece rejects
 * the COPY with the server's message; a COPY given up half-way (an unfinished row) fails
 * without storing anything and leaves the connection usable.
 */
static void test_copy_streamed_while_built(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_copybuf b;
	char err[1024], s[64];
	size_t biggest = 0;

	assay_test_pg_exec(fx->conn, "CREATE TABLE streamed (id integer PRIMARY KEY, s text NOT "
	                             "NULL, qty integer NOT NULL CHECK (qty >= 0))");
	assay_copybuf_init(&b);
	assert_int_equal(assay_pg_copy_begin(fx->conn, "COPY streamed (id, s, qty) FROM STDIN", &b,
	                                     err, sizeof(err)),
	                 0);
	for (int i = 1; i <= 20000; i++) {
		snprintf(s, sizeof(s), "row\t%d\n with tab and newline", i);
		assay_copybuf_int64(&b, i);
		assay_copybuf_str(&b, s);
		assay_copybuf_int64(&b, i % 7);
		assay_copybuf_end_row(&b);
		if (b.len > biggest)
			biggest = b.len;
		assay_pg_copy_flush(fx->conn, &b);
	}
	assert_int_equal(assay_copybuf_rows(&b), 20000);
	assert_true(biggest < 200 * 1024); /* sent in pieces, not held whole (~1 MB) */
	assert_int_equal(assay_pg_copy_end(fx->conn, &b, err, sizeof(err)), 0);
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM streamed"), 20000);
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM streamed WHERE s = "
	                                             "'row' || chr(9) || id || chr(10) || "
	                                             "' with tab and newline'"),
	                 20000);

	/* a bad row far into the stream (after several pieces went out) */
	assay_test_pg_exec(fx->conn, "BEGIN");
	assert_int_equal(assay_pg_copy_begin(fx->conn, "COPY streamed (id, s, qty) FROM STDIN", &b,
	                                     err, sizeof(err)),
	                 0);
	for (int i = 20001; i <= 30000; i++) {
		assay_copybuf_int64(&b, i);
		assay_copybuf_str(&b, "x");
		assay_copybuf_int64(&b, i == 29000 ? -1 : 1);
		assay_copybuf_end_row(&b);
		assay_pg_copy_flush(fx->conn, &b);
	}
	assert_int_equal(assay_pg_copy_end(fx->conn, &b, err, sizeof(err)), ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "streamed_qty_check"));
	assay_test_pg_exec(fx->conn, "ROLLBACK");

	/* given up half-way: an unfinished row */
	assay_test_pg_exec(fx->conn, "BEGIN");
	assert_int_equal(assay_pg_copy_begin(fx->conn, "COPY streamed (id, s, qty) FROM STDIN", &b,
	                                     err, sizeof(err)),
	                 0);
	assay_copybuf_int64(&b, 40000);
	assert_int_equal(assay_pg_copy_end(fx->conn, &b, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "unfinished"));
	assay_test_pg_exec(fx->conn, "ROLLBACK");
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM streamed"), 20000);
	/* ending without a begin is refused */
	assert_int_equal(assay_pg_copy_end(fx->conn, &b, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT 42"), 42);
	assay_copybuf_release(&b);
}

static void test_pipeline_1000_inserts_one_transaction(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_pipeline p;
	char err[512], id[16], v[32];
	const char *params[2] = {id, v};
	int i;

	assay_test_pg_exec(fx->conn,
	                   "CREATE TABLE piped (id integer PRIMARY KEY, v text NOT NULL)");
	assay_pipeline_init(&p);
	assert_int_equal(assay_pipeline_begin(&p, fx->conn, err, sizeof(err)), 0);
	for (i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "%d", i);
		snprintf(v, sizeof(v), "value\t%d", i);
		assert_int_equal(assay_pipeline_add(&p, "INSERT INTO piped (id, v) VALUES ($1, $2)",
		                                    2, params, err, sizeof(err)),
		                 0);
	}
	if (assay_pipeline_end(&p, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(p.count, 1000);
	for (i = 0; i < 1000; i++)
		assert_int_equal(p.affected[i], 1);
	assert_int_equal(PQpipelineStatus(fx->conn), PQ_PIPELINE_OFF);
	assert_int_equal(PQtransactionStatus(fx->conn), PQTRANS_IDLE); /* committed at the sync */
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM piped"), 1000);
	/* one transaction: every row carries the same creating transaction id */
	assert_int_equal(
	        assay_test_pg_int(fx->conn, "SELECT count(DISTINCT xmin::text) FROM piped"), 1);
	assert_int_equal(assay_test_pg_int(fx->conn,
	                                   "SELECT count(*) FROM piped WHERE v = 'value' || "
	                                   "chr(9) || id::text"),
	                 1000);

	/* compare-and-set: the caller sees which UPDATE touched its row */
	assert_int_equal(assay_pipeline_begin(&p, fx->conn, err, sizeof(err)), 0);
	assay_pipeline_add(&p, "UPDATE piped SET v = $2 WHERE id = 1 AND v = $1", 2,
	                   (const char *const[]){"value\t1", "moved"}, err, sizeof(err));
	assay_pipeline_add(&p, "UPDATE piped SET v = $2 WHERE id = 2 AND v = $1", 2,
	                   (const char *const[]){"stale", "moved"}, err, sizeof(err));
	assay_pipeline_add(&p, "SELECT id FROM piped WHERE id < 10", 0, NULL, err, sizeof(err));
	if (assay_pipeline_end(&p, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(p.count, 3);
	assert_int_equal(p.affected[0], 1);
	assert_int_equal(p.affected[1], 0);
	assert_int_equal(p.affected[2], 10);
	assay_pipeline_release(&p);
}

static void test_pipeline_failure_rolls_back_all(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_pipeline p;
	char err[512], id[16];
	const char *params[1] = {id};
	int i;

	assay_test_pg_exec(fx->conn, "CREATE TABLE piped_fail (id integer PRIMARY KEY)");
	assay_pipeline_init(&p);
	assert_int_equal(assay_pipeline_begin(&p, fx->conn, err, sizeof(err)), 0);
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "%d", i == 50 ? 7 : i); /* 50 repeats id 7 */
		assay_pipeline_add(&p, "INSERT INTO piped_fail (id) VALUES ($1)", 1, params, err,
		                   sizeof(err));
	}
	assert_int_equal(assay_pipeline_end(&p, err, sizeof(err)), ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "pipeline statement 50 failed: duplicate key"));
	assert_non_null(strstr(err, "(sqlstate 23505)"));
	assert_int_equal(p.affected[50], -1);
	assert_int_equal(p.affected[51], -1); /* skipped: the pipeline was aborted */
	assert_int_equal(p.affected[99], -1);
	assert_int_equal(PQpipelineStatus(fx->conn), PQ_PIPELINE_OFF);
	assert_int_equal(PQtransactionStatus(fx->conn), PQTRANS_IDLE);
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM piped_fail"), 0);

	/* COPY is refused inside a pipeline, both ways, and the pipeline still ends cleanly */
	{
		struct assay_copybuf b;

		assay_copybuf_init(&b);
		assert_int_equal(assay_pipeline_begin(&p, fx->conn, err, sizeof(err)), 0);
		assert_int_equal(
		        assay_pg_copy(fx->conn, "COPY piped_fail FROM STDIN", &b, err, sizeof(err)),
		        ASSAY_ERR_FATAL);
		assert_non_null(strstr(err, "pipeline"));
		assert_int_equal(assay_pipeline_add(&p, "  copy piped_fail FROM STDIN", 0, NULL,
		                                    err, sizeof(err)),
		                 ASSAY_ERR_FATAL);
		assert_int_equal(assay_pipeline_end(&p, err, sizeof(err)), ASSAY_ERR_FATAL);
		assert_non_null(strstr(err, "copy is not allowed in a pipeline"));
		assert_int_equal(PQpipelineStatus(fx->conn), PQ_PIPELINE_OFF);
		assay_copybuf_release(&b);
	}

	/* a multi-statement string is refused by the server */
	assert_int_equal(assay_pipeline_begin(&p, fx->conn, err, sizeof(err)), 0);
	assay_pipeline_add(&p, "SELECT 1; SELECT 2", 0, NULL, err, sizeof(err));
	assert_int_equal(assay_pipeline_end(&p, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "(sqlstate 42601)"));
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT 7"), 7);
	assay_pipeline_release(&p);
}

static void test_pipeline_prepared_large(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_pipeline p;
	char err[512], id[16];
	const char *params[1] = {id};
	int i, n = 50000;

	/* 50,000 statements: ~1.5 MB of replies, more than the socket buffers hold while the
	 * client is still sending; libpq must read while it writes or both sides block */
	assay_test_pg_exec(fx->conn, "CREATE TABLE piped_big (id integer PRIMARY KEY)");
	assert_int_equal(assay_pg_prepare(fx->conn, "piped_big_insert",
	                                  "INSERT INTO piped_big (id) VALUES ($1)", 1, err,
	                                  sizeof(err)),
	                 0);
	assert_int_equal(
	        assay_pg_prepare(fx->conn, "piped_big_insert", "SELECT 1", 0, err, sizeof(err)),
	        ASSAY_ERR_FATAL); /* 42P05 duplicate_prepared_statement */
	assert_non_null(strstr(err, "prepare piped_big_insert failed"));
	assay_pipeline_init(&p);
	assert_int_equal(assay_pipeline_begin(&p, fx->conn, err, sizeof(err)), 0);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%d", i);
		assay_pipeline_add_prepared(&p, "piped_big_insert", 1, params, err, sizeof(err));
	}
	if (assay_pipeline_end(&p, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(p.count, n);
	assert_int_equal(p.affected[n - 1], 1);
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM piped_big"), n);
	assay_pipeline_release(&p);
}

/* A fresh connection to the test database and its backend killed from fx->conn. */
static PGconn *doomed_conn(struct assay_test_pg_db *fx)
{
	char err[512];
	PGconn *conn = NULL;

	if (assay_pg_connect(fx->url, &conn, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	return conn;
}

static void kill_backend(struct assay_test_pg_db *fx, PGconn *conn)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d, 5000)", PQbackendPID(conn));
	assay_test_pg_exec(fx->conn, sql);
}

static void test_connection_lost_is_retry(void **state)
{
	struct assay_test_pg_db *fx = *state;
	struct assay_copybuf b;
	struct assay_pipeline p;
	char err[512];
	PGconn *conn;
	int i;

	assay_test_pg_exec(fx->conn, "CREATE TABLE lost (id integer)");
	assay_copybuf_init(&b);
	for (i = 0; i < 10; i++) {
		assay_copybuf_int64(&b, i);
		assay_copybuf_end_row(&b);
	}

	/* COPY on a connection whose server session is gone */
	conn = doomed_conn(fx);
	kill_backend(fx, conn);
	assert_int_equal(assay_pg_copy(conn, "COPY lost (id) FROM STDIN", &b, err, sizeof(err)),
	                 ASSAY_ERR_RETRY);
	assert_non_null(strstr(err, "copy failed: "));
	PQfinish(conn);

	/* the session dies in the middle of a pipeline: end returns, classified, no hang */
	conn = doomed_conn(fx);
	assay_pipeline_init(&p);
	assert_int_equal(assay_pipeline_begin(&p, conn, err, sizeof(err)), 0);
	assay_pipeline_add(&p, "INSERT INTO lost VALUES (1)", 0, NULL, err, sizeof(err));
	assay_pipeline_add(&p, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, err,
	                   sizeof(err));
	assay_pipeline_add(&p, "INSERT INTO lost VALUES (2)", 0, NULL, err, sizeof(err));
	assert_int_equal(assay_pipeline_end(&p, err, sizeof(err)), ASSAY_ERR_RETRY);
	assert_non_null(strstr(err, "pipeline statement 1 failed"));
	assert_int_equal(PQstatus(conn), CONNECTION_BAD);
	PQfinish(conn);
	assay_pipeline_release(&p);
	/* the implicit transaction never committed */
	assert_int_equal(assay_test_pg_int(fx->conn, "SELECT count(*) FROM lost"), 0);

	/* a plain command on a lost connection */
	conn = doomed_conn(fx);
	kill_backend(fx, conn);
	assert_int_equal(assay_pg_exec_params(conn, "SELECT $1::int", 1, (const char *const[]){"1"},
	                                      NULL, err, sizeof(err)),
	                 ASSAY_ERR_RETRY);
	PQfinish(conn);
	assay_copybuf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_connect_unreachable_is_retry),
	        cmocka_unit_test(test_application_name),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_server_errors_are_classified),
	        cmocka_unit_test(test_copy_10000_rows_round_trip),
	        cmocka_unit_test(test_copy_bad_row_rejected),
	        cmocka_unit_test(test_copy_streamed_while_built),
	        cmocka_unit_test(test_pipeline_1000_inserts_one_transaction),
	        cmocka_unit_test(test_pipeline_failure_rolls_back_all),
	        cmocka_unit_test(test_pipeline_prepared_large),
	        cmocka_unit_test(test_connection_lost_is_retry),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
