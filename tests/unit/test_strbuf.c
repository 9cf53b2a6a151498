/*
 * assay_strbuf: growth, formatting, JSON and PostgreSQL array escaping.
 */
#include "assay_test.h"
#include "assay_strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

static void test_empty(void **state)
{
	struct assay_strbuf sb;

	(void)state;
	assay_strbuf_init(&sb);
	assert_string_equal(assay_strbuf_str(&sb), "");
	assert_int_equal(sb.len, 0);
	assay_strbuf_append(&sb, NULL, 0);
	assert_string_equal(assay_strbuf_str(&sb), "");
	assay_strbuf_reset(&sb);
	assay_strbuf_release(&sb);
	assay_strbuf_release(&sb); /* twice is harmless */
}

static void test_growth(void **state)
{
	struct assay_strbuf sb;
	char want[16];

	(void)state;
	assay_strbuf_init(&sb);
	for (int i = 0; i < 20000; i++) {
		assay_strbuf_appendf(&sb, "%05d,", i);
		assay_strbuf_appendc(&sb, ';');
	}
	assert_false(sb.failed);
	assert_int_equal(sb.len, 20000 * 7);
	assert_int_equal(strlen(sb.p), sb.len);
	for (int i = 0; i < 20000; i += 997) {
		snprintf(want, sizeof(want), "%05d,;", i);
		assert_memory_equal(sb.p + i * 7, want, 7);
	}
	assay_strbuf_reset(&sb);
	assert_string_equal(assay_strbuf_str(&sb), "");
	assay_strbuf_appends(&sb, "again");
	assert_string_equal(sb.p, "again");
	assay_strbuf_release(&sb);
}

static void test_fixed_then_heap(void **state)
{
	char buf[8];
	struct assay_strbuf sb;
	char *s;

	(void)state;
	assay_strbuf_init_fixed(&sb, buf, sizeof(buf));
	assay_strbuf_appends(&sb, "1234567");
	assert_ptr_equal(sb.p, buf);
	assert_false(sb.on_heap);
	assay_strbuf_appends(&sb, "89");
	assert_true(sb.on_heap);
	assert_string_equal(sb.p, "123456789");
	assay_strbuf_appendf(&sb, "%s-%d", "x", 42);
	assert_string_equal(sb.p, "123456789x-42");
	s = assay_strbuf_detach(&sb);
	assert_string_equal(s, "123456789x-42");
	assert_null(sb.p);
	free(s);

	assay_strbuf_init_fixed(&sb, buf, sizeof(buf));
	assay_strbuf_appends(&sb, "ab");
	s = assay_strbuf_detach(&sb); /* a copy: buf stays the caller's */
	assert_string_equal(s, "ab");
	assert_ptr_not_equal(s, buf);
	free(s);
}

static void json(const char *in, size_t len, const char *want)
{
	struct assay_strbuf sb;

	assay_strbuf_init(&sb);
	assay_strbuf_append_json(&sb, in, len);
	assert_false(sb.failed);
	assert_string_equal(assay_strbuf_str(&sb), want);
	assay_strbuf_release(&sb);
}

static void test_json(void **state)
{
	(void)state;
	json(NULL, 0, "\"\"");
	json(S(""), "\"\"");
	json(S("plain"), "\"plain\"");
	json(S("a\"b\\c"), "\"a\\\"b\\\\c\"");
	json(S("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
	json(S("\x01\x1f\x7f"), "\"\\u0001\\u001f\x7f\"");
	json("a\0b", 3, "\"a\\u0000b\"");
	json(S("f\xc3\xbcr \xe2\x9c\x93 \xf0\x9f\x98\x80"),
	     "\"f\xc3\xbcr \xe2\x9c\x93 \xf0\x9f\x98\x80\"");
	/* each byte that does not start well-formed UTF-8 becomes U+FFFD */
	json(S("\xff"), "\"\xef\xbf\xbd\"");
	json(S("a\xc3"), "\"a\xef\xbf\xbd\"");
	json(S("\xed\xa0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	json(S("\xc0\xaf!"), "\"\xef\xbf\xbd\xef\xbf\xbd!\"");
}

static void test_json_long_string(void **state)
{
	struct assay_strbuf sb;
	char in[5000];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = i % 100 == 0 ? '"' : 'x';
	assay_strbuf_init(&sb);
	assay_strbuf_append_json(&sb, in, sizeof(in));
	assert_int_equal(sb.len, sizeof(in) + 50 + 2);
	assay_strbuf_release(&sb);
}

static void test_pg_array(void **state)
{
	struct assay_strbuf sb;
	const char *items[] = {"a", "", "with \"quote\"", "back\\slash", "{,} NULL", "\xc3\xa4"};

	(void)state;
	assay_strbuf_init(&sb);
	assay_strbuf_appendc(&sb, '{');
	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
		assay_strbuf_pg_array_next(&sb);
		assay_strbuf_append_pg_elem(&sb, items[i], strlen(items[i]));
	}
	assay_strbuf_pg_array_next(&sb);
	assay_strbuf_append_pg_elem(&sb, NULL, 0);
	assay_strbuf_pg_array_next(&sb);
	assay_strbuf_appends(&sb, "NULL");
	assay_strbuf_appendc(&sb, '}');
	assert_string_equal(sb.p, "{\"a\",\"\",\"with \\\"quote\\\"\",\"back\\\\slash\","
	                          "\"{,} NULL\",\"\xc3\xa4\",\"\",NULL}");

	assay_strbuf_reset(&sb);
	assay_strbuf_appendc(&sb, '{');
	assay_strbuf_appendc(&sb, '}');
	assert_string_equal(sb.p, "{}");
	assay_strbuf_reset(&sb);
	assay_strbuf_pg_array_next(&sb); /* on an empty buffer: nothing */
	assert_int_equal(sb.len, 0);
	assay_strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_growth),
	        cmocka_unit_test(test_fixed_then_heap),
	        cmocka_unit_test(test_json),
	        cmocka_unit_test(test_json_long_string),
	        cmocka_unit_test(test_pg_array),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
