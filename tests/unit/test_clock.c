/*
 * assay_clock: the system clock's two readings and the manual clock tests move by hand.
 */
#include "assay_test.h"
#include "assay_clock.h"

static void test_system(void **state)
{
	const struct assay_clock *c = assay_clock_system();
	int64_t wall = assay_clock_wall_ms(c), m1 = assay_clock_mono_ms(c), m2;

	(void)state;
	assert_true(wall > 1700000000000LL); /* after 2023 */
	m2 = assay_clock_mono_ms(c);
	assert_true(m2 >= m1);
}

/* Code under test takes a clock, as services do. */
static int64_t deadline(const struct assay_clock *c, int64_t after_ms)
{
	return assay_clock_mono_ms(c) + after_ms;
}

static void test_manual(void **state)
{
	struct assay_clock_manual mc;

	(void)state;
	assay_clock_manual_init(&mc, 1714564800000LL, 5);
	assert_int_equal(assay_clock_wall_ms(&mc.clock), 1714564800000LL);
	assert_int_equal(deadline(&mc.clock, 50), 55);
	assay_clock_manual_advance(&mc, 60);
	assert_true(assay_clock_mono_ms(&mc.clock) > 55);
	assert_int_equal(assay_clock_wall_ms(&mc.clock), 1714564800060LL);
	assay_clock_manual_advance(&mc, -1000); /* a step back: wall only */
	assert_int_equal(assay_clock_wall_ms(&mc.clock), 1714564799060LL);
	assert_int_equal(assay_clock_mono_ms(&mc.clock), 65);
	assay_clock_manual_set_wall(&mc, 0);
	assert_int_equal(assay_clock_wall_ms(&mc.clock), 0);
	assert_int_equal(assay_clock_mono_ms(&mc.clock), 65);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_system),
	        cmocka_unit_test(test_manual),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
