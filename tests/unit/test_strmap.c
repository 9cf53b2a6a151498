/*
 * assay_strmap: put, get, replace, remove (with the probe runs it shifts), growth, iteration.
 */
#include "assay_test.h"
#include "assay_strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 20000

static void test_empty(void **state)
{
	struct assay_strmap m;
	size_t pos = 0;

	(void)state;
	assay_strmap_init(&m);
	assert_null(assay_strmap_get(&m, "x", 1));
	assert_null(assay_strmap_remove(&m, "x", 1));
	assert_false(assay_strmap_next(&m, &pos, NULL, NULL));
	assay_strmap_clear(&m);
	assay_strmap_release(&m);
}

static void test_put_get_replace(void **state)
{
	struct assay_strmap m;
	int a = 1, b = 2, c = 3;
	void *old;

	(void)state;
	assay_strmap_init(&m);
	assert_int_equal(assay_strmap_put(&m, "audit-1", 7, &a, &old), 0);
	assert_null(old);
	assert_int_equal(assay_strmap_put(&m, "", 0, &c, NULL), 0); /* the empty key is a key */
	assert_ptr_equal(assay_strmap_get(&m, "audit-1", 7), &a);
	assert_ptr_equal(assay_strmap_get(&m, "", 0), &c);
	/* a key given by length: no terminator needed, prefixes are other keys */
	assert_ptr_equal(assay_strmap_get(&m, "audit-1xyz", 7), &a);
	assert_null(assay_strmap_get(&m, "audit-", 6));
	assert_int_equal(assay_strmap_put(&m, "audit-1", 7, &b, &old), 0);
	assert_ptr_equal(old, &a);
	assert_ptr_equal(assay_strmap_get(&m, "audit-1", 7), &b);
	assert_int_equal(assay_strmap_count(&m), 2);
	assay_strmap_clear(&m);
	assert_int_equal(assay_strmap_count(&m), 0);
	assert_null(assay_strmap_get(&m, "audit-1", 7));
	assay_strmap_release(&m);
}

static void test_many_grow_remove_iterate(void **state)
{
	struct assay_strmap m;
	static char keys[N][16];
	static int seen[N];
	size_t pos = 0, n = 0;
	const char *key;
	void *value;

	(void)state;
	assay_strmap_init(&m);
	for (size_t i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
		assert_int_equal(assay_strmap_put(&m, keys[i], strlen(keys[i]), keys[i], NULL), 0);
	}
	assert_int_equal(assay_strmap_count(&m), N);
	assert_true(m.cap >= N + N / 3);
	/* remove every third: the others must stay reachable across the shifted runs */
	for (size_t i = 0; i < N; i += 3)
		assert_ptr_equal(assay_strmap_remove(&m, keys[i], strlen(keys[i])), keys[i]);
	for (size_t i = 0; i < N; i++) {
		void *got = assay_strmap_get(&m, keys[i], strlen(keys[i]));

		if (i % 3 == 0)
			assert_null(got);
		else
			assert_ptr_equal(got, keys[i]);
	}
	assert_null(assay_strmap_remove(&m, keys[0], strlen(keys[0])));
	while (assay_strmap_next(&m, &pos, &key, &value)) {
		size_t i = (size_t)strtoul(key + 1, NULL, 10);

		assert_ptr_equal(value, keys[i]);
		assert_int_equal(seen[i]++, 0);
		n++;
	}
	assert_int_equal(n, assay_strmap_count(&m));
	assert_int_equal(n, N - (N + 2) / 3);
	/* put back what was removed */
	for (size_t i = 0; i < N; i += 3)
		assert_int_equal(assay_strmap_put(&m, keys[i], strlen(keys[i]), keys[i], NULL), 0);
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(assay_strmap_get(&m, keys[i], strlen(keys[i])), keys[i]);
	assay_strmap_release(&m);
}

/* Keys that all collide in a small table: removal in the middle of a wrapped run. */
static void test_remove_in_runs(void **state)
{
	struct assay_strmap m;
	char keys[12][8];

	(void)state;
	assay_strmap_init(&m);
	for (int i = 0; i < 12; i++) {
		snprintf(keys[i], sizeof(keys[i]), "r%d", i);
		assert_int_equal(assay_strmap_put(&m, keys[i], strlen(keys[i]), keys[i], NULL), 0);
	}
	for (int i = 0; i < 12; i += 2) {
		assert_ptr_equal(assay_strmap_remove(&m, keys[i], strlen(keys[i])), keys[i]);
		for (int k = 0; k < 12; k++) {
			bool gone = k % 2 == 0 && k <= i;

			if (gone)
				assert_null(assay_strmap_get(&m, keys[k], strlen(keys[k])));
			else
				assert_ptr_equal(assay_strmap_get(&m, keys[k], strlen(keys[k])),
				                 keys[k]);
		}
	}
	assert_int_equal(assay_strmap_count(&m), 6);
	assay_strmap_release(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty),
	        cmocka_unit_test(test_put_get_replace),
	        cmocka_unit_test(test_many_grow_remove_iterate),
	        cmocka_unit_test(test_remove_in_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
