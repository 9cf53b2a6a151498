/*
 * assay_vec: the reserve helper every growable array uses.
 */
#include "assay_test.h"
#include "assay_err.h"
#include "assay_vec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct pair {
	int64_t a;
	char b[24];
};

static void test_empty_reserve_zero(void **state)
{
	int *items = NULL;
	size_t cap = 0;

	(void)state;
	assert_int_equal(assay_vec_reserve(&items, &cap, 0, sizeof(*items)), 0);
	assert_null(items);
	assert_int_equal(cap, 0);
}

static void test_growth_keeps_elements(void **state)
{
	struct pair *items = NULL;
	size_t cap = 0, n = 0, reallocs = 0, last = 0;

	(void)state;
	for (int64_t i = 0; i < 100000; i++) {
		assert_int_equal(assay_vec_reserve(&items, &cap, n + 1, sizeof(*items)), 0);
		assert_true(cap >= n + 1);
		if (cap != last) {
			reallocs++;
			last = cap;
		}
		items[n].a = i;
		snprintf(items[n].b, sizeof(items[n].b), "%lld", (long long)i);
		n++;
	}
	assert_true(reallocs > 10 && reallocs < 20); /* doubling, not one per element */
	for (size_t i = 0; i < n; i++) {
		char want[24];

		snprintf(want, sizeof(want), "%zu", i);
		assert_int_equal(items[i].a, (int64_t)i);
		assert_string_equal(items[i].b, want);
	}
	free(items);
}

static void test_large_step_takes_need(void **state)
{
	char *items = NULL;
	size_t cap = 0;

	(void)state;
	assert_int_equal(assay_vec_reserve(&items, &cap, 3, 1), 0);
	assert_int_equal(cap, 16);
	assert_int_equal(assay_vec_reserve(&items, &cap, 1000, 1), 0);
	assert_int_equal(cap, 1000);
	assert_int_equal(assay_vec_reserve(&items, &cap, 1001, 1), 0);
	assert_int_equal(cap, 2000);
	assert_int_equal(assay_vec_reserve(&items, &cap, 10, 1), 0); /* never shrinks */
	assert_int_equal(cap, 2000);
	free(items);
}

static void test_overflow_refused(void **state)
{
	int64_t *items = NULL;
	size_t cap = 0;

	(void)state;
	assert_int_equal(assay_vec_reserve(&items, &cap, 4, sizeof(*items)), 0);
	items[0] = 7;
	assert_int_equal(assay_vec_reserve(&items, &cap, SIZE_MAX / 4, sizeof(*items)),
	                 ASSAY_ERR_FATAL);
	assert_int_equal(cap, 16); /* unchanged, still usable */
	assert_int_equal(items[0], 7);
	free(items);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty_reserve_zero),
	        cmocka_unit_test(test_growth_keeps_elements),
	        cmocka_unit_test(test_large_step_takes_need),
	        cmocka_unit_test(test_overflow_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
