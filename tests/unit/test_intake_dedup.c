/*
 * The intake de-duplication set (services/intake/intake_dedup.h): fingerprints are stable and
 * separate tenant from id, the set finds everything added across growth, and its memory stays
 * at 8 bytes a slot.
 */
#include "assay_test.h"
#include "intake_dedup.h"

#include <stdio.h>
#include <string.h>

static void test_fingerprint_is_stable_and_keyed_by_tenant_and_id(void **state)
{
	uint64_t a = intake_dedup_fingerprint("cb-1", 4, "ev-1", 4);
	uint64_t parsed = 0;

	(void)state;
	assert_true(a != 0);
	assert_true(a == intake_dedup_fingerprint("cb-1", 4, "ev-1", 4));
	assert_true(a != intake_dedup_fingerprint("cb-2", 4, "ev-1", 4));
	assert_true(a != intake_dedup_fingerprint("cb-1", 4, "ev-2", 4));
	/* the separator keeps ("ab", "c") and ("a", "bc") apart */
	assert_true(intake_dedup_fingerprint("ab", 2, "c", 1) !=
	            intake_dedup_fingerprint("a", 1, "bc", 2));
	/* the form it is loaded in at start: a COPY text row, escapes undone */
	{
		char line[] = "cb-1\tev-1\n", tricky[] = "c\\tb\t\\\\x\\011y";

		assert_int_equal(intake_dedup_copy_line(line, strlen(line), &parsed), 0);
		assert_true(parsed == a);
		/* tenant "c<TAB>b", id "\x<TAB>y" */
		assert_int_equal(intake_dedup_copy_line(tricky, strlen(tricky), &parsed), 0);
		assert_true(parsed == intake_dedup_fingerprint("c\tb", 3, "\\x\ty", 4));
	}
	{
		char one[] = "no-tab", three[] = "a\tb\tc";

		assert_int_equal(intake_dedup_copy_line(one, strlen(one), &parsed), -1);
		assert_int_equal(intake_dedup_copy_line(three, strlen(three), &parsed), -1);
	}
}

static void test_set_finds_all_added_across_growth(void **state)
{
	struct intake_dedup *d = intake_dedup_new(0);
	size_t before;

	(void)state;
	assert_non_null(d);
	before = intake_dedup_bytes(d);
	for (int i = 0; i < 200000; i++) {
		char id[32];
		int n = snprintf(id, sizeof(id), "ev-%d", i);

		assert_int_equal(
		        intake_dedup_add(d, intake_dedup_fingerprint("t", 1, id, (size_t)n)), 0);
	}
	assert_int_equal(intake_dedup_count(d), 200000);
	assert_true(intake_dedup_bytes(d) > before);
	/* 8 bytes a slot, at most 3/4 full: 200,000 entries need 2^19 slots (4 MB) */
	assert_int_equal(intake_dedup_bytes(d), (size_t)(1 << 19) * 8);
	for (int i = 0; i < 200000; i++) {
		char id[32];
		int n = snprintf(id, sizeof(id), "ev-%d", i);

		assert_true(
		        intake_dedup_contains(d, intake_dedup_fingerprint("t", 1, id, (size_t)n)));
	}
	{
		int hits = 0;

		for (int i = 200000; i < 400000; i++) {
			char id[32];
			int n = snprintf(id, sizeof(id), "ev-%d", i);

			hits += intake_dedup_contains(
			        d, intake_dedup_fingerprint("t", 1, id, (size_t)n));
		}
		assert_int_equal(hits, 0);
	}
	/* adding twice counts once */
	assert_int_equal(intake_dedup_add(d, intake_dedup_fingerprint("t", 1, "ev-7", 4)), 0);
	assert_int_equal(intake_dedup_count(d), 200000);
	intake_dedup_destroy(d);
	intake_dedup_destroy(NULL);
}

static void test_presized_set_does_not_grow(void **state)
{
	struct intake_dedup *d = intake_dedup_new(100000);
	size_t bytes;

	(void)state;
	assert_non_null(d);
	bytes = intake_dedup_bytes(d);
	for (uint64_t i = 1; i <= 100000; i++)
		assert_int_equal(intake_dedup_add(d, i * 0x9e3779b97f4a7c15ULL), 0);
	assert_int_equal(intake_dedup_bytes(d), bytes);
	intake_dedup_destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fingerprint_is_stable_and_keyed_by_tenant_and_id),
	        cmocka_unit_test(test_set_finds_all_added_across_growth),
	        cmocka_unit_test(test_presized_set_does_not_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
