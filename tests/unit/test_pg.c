/*
 * The pure parts of assay_pg: COPY text-format escaping and row counting, SQLSTATE
 * classification, and the migration file name rules. No server needed.
 */
#include "assay_test.h"
#include "assay_pg.h"
#include "assay_migrate.h"

#include <stdint.h>
#include <string.h>

/* The buffer's contents as a NUL-terminated string (owned by the static buffer). */
static const char *contents(const struct assay_copybuf *b)
{
	static char out[4096];

	assert_true(b->len < sizeof(out));
	if (b->len > 0)
		memcpy(out, b->data, b->len);
	out[b->len] = '\0';
	return out;
}

static void test_copy_text_escapes(void **state)
{
	struct assay_copybuf b;
	const char tricky[] = "a\tb\nc\\d\re";

	(void)state;
	assay_copybuf_init(&b);
	assay_copybuf_text(&b, tricky, sizeof(tricky) - 1);
	assay_copybuf_str(&b, "\\N"); /* the text "\N", not NULL */
	assay_copybuf_str(&b, "\\."); /* the end-of-data marker as text */
	assay_copybuf_str(&b, "");    /* empty string, not NULL */
	assay_copybuf_str(&b, "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"); /* UTF-8 */
	assay_copybuf_end_row(&b);
	assert_string_equal(contents(&b),
	                    "a\\tb\\nc\\\\d\\re\t\\\\N\t\\\\.\t\t"
	                    "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\n");
	assert_int_equal(assay_copybuf_rows(&b), 1);
	assert_false(b.failed);
	assay_copybuf_release(&b);
	assert_null(b.data);
}

static void test_copy_embedded_length(void **state)
{
	struct assay_copybuf b;

	(void)state;
	assay_copybuf_init(&b);
	assay_copybuf_text(&b, "abcdef", 3); /* only the given length */
	assay_copybuf_text(&b, NULL, 0);
	assay_copybuf_end_row(&b);
	assert_string_equal(contents(&b), "abc\t\n");
	assay_copybuf_release(&b);
}

static void test_copy_types_and_rows(void **state)
{
	struct assay_copybuf b;
	const unsigned char bytes[] = {0x00, 0x0a, 0x1b, 0x5c, 0xff};

	(void)state;
	assay_copybuf_init(&b);
	assay_copybuf_int64(&b, INT64_MIN);
	assay_copybuf_int64(&b, INT64_MAX);
	assay_copybuf_int64(&b, 0);
	assay_copybuf_null(&b);
	assay_copybuf_bool(&b, 1);
	assay_copybuf_bool(&b, 0);
	assay_copybuf_bytea(&b, bytes, sizeof(bytes));
	assay_copybuf_end_row(&b);
	assay_copybuf_bytea(&b, NULL, 0);
	assay_copybuf_null(&b);
	assay_copybuf_end_row(&b);
	assay_copybuf_null(&b); /* unfinished row: not counted */
	assert_string_equal(contents(&b),
	                    "-9223372036854775808\t9223372036854775807\t0\t\\N\tt\tf\t"
	                    "\\\\x000a1b5cff\n"
	                    "\\\\x\t\\N\n"
	                    "\\N");
	assert_int_equal(assay_copybuf_rows(&b), 2);
	assert_int_equal(b.columns, 1);

	assay_copybuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(assay_copybuf_rows(&b), 0);
	assert_int_equal(b.columns, 0);
	assay_copybuf_int64(&b, 7);
	assay_copybuf_end_row(&b);
	assert_string_equal(contents(&b), "7\n");
	assay_copybuf_release(&b);
}

static void test_copy_grows(void **state)
{
	struct assay_copybuf b;
	char big[10000];
	size_t i;

	(void)state;
	memset(big, '\t', sizeof(big)); /* every byte doubles */
	assay_copybuf_init(&b);
	for (i = 0; i < 100; i++) {
		assay_copybuf_text(&b, big, sizeof(big));
		assay_copybuf_end_row(&b);
	}
	assert_false(b.failed);
	assert_int_equal(b.len, 100 * (2 * sizeof(big) + 1));
	assert_int_equal(assay_copybuf_rows(&b), 100);
	assert_true(b.cap >= b.len);
	for (i = 0; i < b.len; i += 2 * sizeof(big) + 1)
		assert_memory_equal(b.data + i, "\\t\\t", 4);
	assay_copybuf_release(&b);
}

static void test_copy_failed_sticks(void **state)
{
	struct assay_copybuf b;
	char err[256];

	(void)state;
	assay_copybuf_init(&b);
	assay_copybuf_text(&b, "x", SIZE_MAX / 2 + 1); /* its escaped size overflows */
	assert_true(b.failed);
	assay_copybuf_int64(&b, 1);
	assay_copybuf_end_row(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(assay_copybuf_rows(&b), 0);
	/* the COPY refuses a failed buffer before touching the connection */
	assert_int_equal(assay_pg_copy(NULL, "COPY t FROM STDIN", &b, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "out of memory"));
	assay_copybuf_reset(&b);
	assert_false(b.failed);
	assay_copybuf_release(&b);
}

static void test_copy_unfinished_row_refused(void **state)
{
	struct assay_copybuf b;
	char err[256];

	(void)state;
	assay_copybuf_init(&b);
	assay_copybuf_int64(&b, 1);
	assert_int_equal(assay_pg_copy(NULL, "COPY t FROM STDIN", &b, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "unfinished"));
	assay_copybuf_release(&b);
}

static void test_classify_sqlstate(void **state)
{
	static const struct {
		const char *sqlstate;
		int want;
	} table[] = {
	        {"08000", ASSAY_ERR_RETRY},  /* connection_exception */
	        {"08006", ASSAY_ERR_RETRY},  /* connection_failure */
	        {"08P01", ASSAY_ERR_RETRY},  /* protocol_violation: class 08 */
	        {"40001", ASSAY_ERR_RETRY},  /* serialization_failure */
	        {"40P01", ASSAY_ERR_RETRY},  /* deadlock_detected */
	        {"57P01", ASSAY_ERR_RETRY},  /* admin_shutdown */
	        {"57P02", ASSAY_ERR_RETRY},  /* crash_shutdown */
	        {"57P03", ASSAY_ERR_RETRY},  /* cannot_connect_now */
	        {"53000", ASSAY_ERR_RETRY},  /* insufficient_resources */
	        {"53100", ASSAY_ERR_RETRY},  /* disk_full */
	        {"53300", ASSAY_ERR_RETRY},  /* too_many_connections */
	        {"55P03", ASSAY_ERR_RETRY},  /* lock_not_available */
	        {"22001", ASSAY_ERR_REJECT}, /* string_data_right_truncation */
	        {"22P02", ASSAY_ERR_REJECT}, /* invalid_text_representation */
	        {"22021", ASSAY_ERR_REJECT}, /* character_not_in_repertoire */
	        {"22012", ASSAY_ERR_REJECT}, /* division_by_zero */
	        {"23505", ASSAY_ERR_REJECT}, /* unique_violation */
	        {"23502", ASSAY_ERR_REJECT}, /* not_null_violation */
	        {"23514", ASSAY_ERR_REJECT}, /* check_violation */
	        {"42601", ASSAY_ERR_FATAL},  /* syntax_error */
	        {"42P01", ASSAY_ERR_FATAL},  /* undefined_table */
	        {"42703", ASSAY_ERR_FATAL},  /* undefined_column */
	        {"XX000", ASSAY_ERR_FATAL},  /* internal_error */
	        {"40002", ASSAY_ERR_FATAL},  /* only 40001 and 40P01 of class 40 retry */
	        {"57014", ASSAY_ERR_FATAL},  /* query_canceled */
	        {"55000", ASSAY_ERR_FATAL},  /* object_not_in_prerequisite_state */
	        {"25P02", ASSAY_ERR_FATAL},  /* in_failed_sql_transaction */
	        {"", ASSAY_ERR_FATAL},       {"2350", ASSAY_ERR_FATAL},
	        {"235050", ASSAY_ERR_FATAL}, {NULL, ASSAY_ERR_FATAL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		int got = assay_pg_classify_sqlstate(table[i].sqlstate);

		if (got != table[i].want)
			fail_msg("sqlstate %s: got %s, want %s",
			         table[i].sqlstate ? table[i].sqlstate : "(null)",
			         assay_err_name(got), assay_err_name(table[i].want));
	}
}

static void test_classify_results_without_server(void **state)
{
	PGresult *res;

	(void)state;
	assert_string_equal(assay_pg_sqlstate(NULL), "");
	/* no result and no connection: out of memory */
	assert_int_equal(assay_pg_classify(NULL, NULL), ASSAY_ERR_FATAL);

	res = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
	assert_non_null(res);
	assert_int_equal(assay_pg_classify(res, NULL), 0);
	PQclear(res);

	res = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR); /* no SQLSTATE: client-side */
	assert_non_null(res);
	assert_string_equal(assay_pg_sqlstate(res), "");
	assert_int_equal(assay_pg_classify(res, NULL), ASSAY_ERR_FATAL);
	PQclear(res);
}

static void test_migration_names(void **state)
{
	(void)state;
	assert_int_equal(assay_migrate_version("001_core.sql"), 1);
	assert_int_equal(assay_migrate_version("120_evidence-index.sql"), 120);
	assert_int_equal(assay_migrate_version("7_x.sql"), 7);
	assert_int_equal(assay_migrate_version("000000042_a_b.sql"), 42);
	assert_int_equal(assay_migrate_version("0000000001_x.sql"), -1); /* 10 digits */
	assert_int_equal(assay_migrate_version("core.sql"), -1);
	assert_int_equal(assay_migrate_version("001core.sql"), -1);
	assert_int_equal(assay_migrate_version("001_.sql"), -1);
	assert_int_equal(assay_migrate_version("001_core.sql.bak"), -1);
	assert_int_equal(assay_migrate_version("001_core.SQL"), -1);
	assert_int_equal(assay_migrate_version("001_co re.sql"), -1);
	assert_int_equal(assay_migrate_version("a01_core.sql"), -1);
	assert_int_equal(assay_migrate_version(""), -1);
	assert_int_equal(assay_migrate_version(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_copy_text_escapes),
	        cmocka_unit_test(test_copy_embedded_length),
	        cmocka_unit_test(test_copy_types_and_rows),
	        cmocka_unit_test(test_copy_grows),
	        cmocka_unit_test(test_copy_failed_sticks),
	        cmocka_unit_test(test_copy_unfinished_row_refused),
	        cmocka_unit_test(test_classify_sqlstate),
	        cmocka_unit_test(test_classify_results_without_server),
	        cmocka_unit_test(test_migration_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
