/*
 * Failure class names and error formatting.
 */
#include "assay_test.h"
#include "assay_err.h"

#include <string.h>

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(assay_err_name(ASSAY_OK), "ok");
	assert_string_equal(assay_err_name(ASSAY_ERR_RETRY), "retry");
	assert_string_equal(assay_err_name(ASSAY_ERR_REJECT), "reject");
	assert_string_equal(assay_err_name(ASSAY_ERR_FENCED), "fenced");
	assert_string_equal(assay_err_name(ASSAY_ERR_FATAL), "fatal");
	assert_string_equal(assay_err_name(-99), "unknown");
}

static void test_errf_truncates_and_returns_class(void **state)
{
	char small[8];

	(void)state;
	assert_int_equal(assay_errf(ASSAY_ERR_REJECT, small, sizeof(small), "bad %s", "magic byte"),
	                 ASSAY_ERR_REJECT);
	assert_string_equal(small, "bad mag");
	assert_int_equal(assay_errf(ASSAY_ERR_RETRY, NULL, 0, "ignored"), ASSAY_ERR_RETRY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_errf_truncates_and_returns_class),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
