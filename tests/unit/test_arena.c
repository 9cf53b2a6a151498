/*
 * The per-batch arena (services/core/include/assay/assay_arena.h): alignment, many small and a few
 * large allocations, reset keeping one block and reusing it, release, and overflow refusal. ASan
 * reports any allocation that outlives release or overlaps another.
 */
#include "assay_test.h"

#include "assay_arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

static void test_alignment_and_distinct(void **state)
{
	struct assay_arena a;
	unsigned char *prev = NULL;

	assay_arena_init(&a);
	for (size_t i = 0; i < 5000; i++) {
		unsigned char *p = assay_arena_alloc(&a, i % 37);

		assert_non_null(p);
		assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
		assert_ptr_not_equal(p, prev);
		memset(p, 0xab, i % 37); /* ASan: every byte handed out is ours */
		prev = p;
	}
	assay_arena_release(&a);
	assert_null(a.blocks);
}

static void test_large_and_reset_reuse(void **state)
{
	struct assay_arena a;
	unsigned char *big, *again;

	assay_arena_init(&a);
	big = assay_arena_alloc(&a, 3 * ASSAY_ARENA_BLOCK);
	assert_non_null(big);
	memset(big, 1, 3 * ASSAY_ARENA_BLOCK);
	assert_non_null(assay_arena_alloc(&a, 10));
	assert_true(a.used >= 3 * ASSAY_ARENA_BLOCK + 10);
	assay_arena_reset(&a);
	assert_int_equal(a.used, 0);
	assert_non_null(a.blocks);
	again = assay_arena_alloc(&a, 3 * ASSAY_ARENA_BLOCK);
	assert_ptr_equal(again, big); /* the kept block is the large one, reused */
	assay_arena_reset(&a);
	assay_arena_release(&a);
	assay_arena_release(NULL);
}

static void test_overflow_refused(void **state)
{
	struct assay_arena a;

	assay_arena_init(&a);
	assert_null(assay_arena_alloc(&a, SIZE_MAX));
	assert_null(assay_arena_alloc(&a, SIZE_MAX / 2));
	assert_non_null(assay_arena_alloc(&a, 0));
	assay_arena_release(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_alignment_and_distinct),
	        cmocka_unit_test(test_large_and_reset_reuse),
	        cmocka_unit_test(test_overflow_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
