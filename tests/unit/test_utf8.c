/*
 * assay_utf8: well-formed UTF-8 and every class of ill-formed input.
 */
#include "assay_test.h"
#include "assay_utf8.h"

#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

static void test_valid(void **state)
{
	(void)state;
	assert_true(assay_utf8_valid(NULL, 0));
	assert_true(assay_utf8_valid(S("")));
	assert_true(assay_utf8_valid(S("plain ascii, longer than eight bytes")));
	assert_true(assay_utf8_valid(S("\xc2\x80 \xdf\xbf"))); /* U+0080, U+07FF */
	assert_true(assay_utf8_valid(S("\xe0\xa0\x80 \xed\x9f\xbf \xef\xbf\xbf"))); /* U+0800.. */
	assert_true(
	        assay_utf8_valid(S("\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf"))); /* U+10000, U+10FFFF */
	assert_true(assay_utf8_valid(S("Zertifizierungsstelle f\xc3\xbcr ISO 27001 \xe2\x9c\x93")));
}

static void test_invalid_classes(void **state)
{
	(void)state;
	/* overlong */
	assert_false(assay_utf8_valid(S("\xc0\xaf")));
	assert_false(assay_utf8_valid(S("\xc1\xbf")));
	assert_false(assay_utf8_valid(S("\xe0\x9f\xbf")));
	assert_false(assay_utf8_valid(S("\xf0\x8f\xbf\xbf")));
	/* surrogates */
	assert_false(assay_utf8_valid(S("\xed\xa0\x80")));
	assert_false(assay_utf8_valid(S("\xed\xbf\xbf")));
	/* above U+10FFFF */
	assert_false(assay_utf8_valid(S("\xf4\x90\x80\x80")));
	assert_false(assay_utf8_valid(S("\xf5\x80\x80\x80")));
	assert_false(assay_utf8_valid(S("\xff")));
	/* stray continuation */
	assert_false(assay_utf8_valid(S("\x80")));
	assert_false(assay_utf8_valid(S("ok\xbf")));
	/* truncated, at the end and before another character */
	assert_false(assay_utf8_valid(S("\xc3")));
	assert_false(assay_utf8_valid(S("\xe2\x9c")));
	assert_false(assay_utf8_valid(S("\xf0\x9f\x98")));
	assert_false(assay_utf8_valid(S("\xe2\x9c"
	                                "a")));
	/* NUL */
	assert_false(assay_utf8_valid(S("a\0b")));
	assert_false(assay_utf8_valid(S("12345678\0"
	                                "abcdefgh")));
}

static void test_scan_offsets(void **state)
{
	(void)state;
	assert_int_equal(assay_utf8_scan(S("abc")), 3);
	assert_int_equal(assay_utf8_scan(S("abcdefghij\xc3\x28")), 10);
	assert_int_equal(assay_utf8_scan(S("\xc3\xa4\xed\xa0\x80")), 2);
	assert_int_equal(assay_utf8_scan(S("abcdefgh\0")), 8);
	assert_int_equal(assay_utf8_scan(S("abcdefghijklmnop\xf0")), 16);
}

static void test_seq_len(void **state)
{
	(void)state;
	assert_int_equal(assay_utf8_seq_len(S("a")), 1);
	assert_int_equal(assay_utf8_seq_len("\0", 1), 1);
	assert_int_equal(assay_utf8_seq_len(S("\xc3\xa4x")), 2);
	assert_int_equal(assay_utf8_seq_len(S("\xe2\x9c\x93")), 3);
	assert_int_equal(assay_utf8_seq_len(S("\xf0\x9f\x98\x80")), 4);
	assert_int_equal(assay_utf8_seq_len(S("\xf0\x9f\x98")), 0); /* truncated by n */
	assert_int_equal(assay_utf8_seq_len(S("\xe0\x80\x80")), 0);
	assert_int_equal(assay_utf8_seq_len(S("\xed\xa0\x80")), 0);
	assert_int_equal(assay_utf8_seq_len(S("\xf4\x90\x80\x80")), 0);
	assert_int_equal(assay_utf8_seq_len(S("\xa0")), 0);
	assert_int_equal(assay_utf8_seq_len(S("\xe2\x28\xa1")), 0); /* bad second byte */
	assert_int_equal(assay_utf8_seq_len(S("\xe2\x82\x28")), 0); /* bad third byte */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_valid),
	        cmocka_unit_test(test_invalid_classes),
	        cmocka_unit_test(test_scan_offsets),
	        cmocka_unit_test(test_seq_len),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
