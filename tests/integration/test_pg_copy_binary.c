/*
 * COPY in binary format (assay_copybin): integers, text, bytea and NULLs round-trip exactly;
 * an empty buffer stores nothing; a field of the wrong width is refused by the server.
 */
#include "assay_test.h"
#include "assay_test_pg.h"
#include "assay_pg.h"

#include <stdlib.h>
#include <string.h>

static void test_rows_round_trip(void **state)
{
	char url[512], errstr[512];
	struct assay_copybin b;
	PGconn *conn = NULL;
	PGresult *res;
	unsigned char blob[300];

	(void)state;
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)(i * 31); /* every byte value, zeros included */
	assay_test_pg_fresh_db(url, sizeof(url), "test_copy_binary");
	assert_int_equal(assay_pg_connect(url, &conn, errstr, sizeof(errstr)), 0);
	assert_int_equal(assay_pg_exec(conn,
	                               "CREATE TABLE t (a integer, b bigint, c text, d bytea, "
	                               "e bytea)",
	                               errstr, sizeof(errstr)),
	                 0);
	assay_copybin_init(&b);

	/* empty: header and trailer only */
	assert_int_equal(assay_pg_copy_binary(conn, "COPY t FROM STDIN (FORMAT binary)", &b, errstr,
	                                      sizeof(errstr)),
	                 0);
	for (int i = 0; i < 1000; i++) {
		assay_copybin_row(&b, 5);
		assay_copybin_int32(&b, -i);
		assay_copybin_int64(&b, (int64_t)i << 40);
		assay_copybin_bytes(&b, "tab\there \xc3\xa9", 11);
		if (i % 2)
			assay_copybin_bytes(&b, blob, sizeof(blob));
		else
			assay_copybin_null(&b);
		assay_copybin_bytes(&b, NULL, 0); /* empty, not NULL */
	}
	assert_int_equal(assay_pg_copy_binary(conn, "COPY t FROM STDIN (FORMAT binary)", &b, errstr,
	                                      sizeof(errstr)),
	                 0);
	res = PQexecParams(conn, "SELECT a, b, c, d, e, d IS NULL, e IS NULL FROM t ORDER BY b", 0,
	                   NULL, NULL, NULL, NULL, 1);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), 1000);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(PQgetlength(res, i, 2), 11);
		assert_memory_equal(PQgetvalue(res, i, 2), "tab\there \xc3\xa9", 11);
		assert_int_equal(PQgetisnull(res, i, 3), i % 2 == 0);
		if (i % 2) {
			assert_int_equal(PQgetlength(res, i, 3), (int)sizeof(blob));
			assert_memory_equal(PQgetvalue(res, i, 3), blob, sizeof(blob));
		}
		assert_false(PQgetisnull(res, i, 4));
		assert_int_equal(PQgetlength(res, i, 4), 0);
	}
	PQclear(res);
	res = PQexec(conn, "SELECT min(a), max(b) FROM t");
	assert_string_equal(PQgetvalue(res, 0, 0), "-999");
	assert_string_equal(PQgetvalue(res, 0, 1), "1098412116148224"); /* 999 << 40 */
	PQclear(res);

	/* an 8-byte field for an integer column: refused, nothing stored */
	assay_copybin_reset(&b);
	assay_copybin_row(&b, 5);
	assay_copybin_int64(&b, 1);
	assay_copybin_int64(&b, 1);
	assay_copybin_bytes(&b, "x", 1);
	assay_copybin_null(&b);
	assay_copybin_null(&b);
	assert_int_not_equal(assay_pg_copy_binary(conn, "COPY t FROM STDIN (FORMAT binary)", &b,
	                                          errstr, sizeof(errstr)),
	                     0);
	assert_non_null(strstr(errstr, "copy failed"));
	res = PQexec(conn, "SELECT count(*) FROM t");
	assert_string_equal(PQgetvalue(res, 0, 0), "1000");
	PQclear(res);

	assay_copybin_release(&b);
	PQfinish(conn);
	assay_test_pg_drop_db(url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rows_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
