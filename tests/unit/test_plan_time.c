/*
 * The audit-time calculation of assay-plan (services/plan/plan_time.c), table-driven: the
 * worked example of 27006-1 C.3.4 (three identical-work groups of 49 -> 21 persons -> 7 days),
 * every band edge of the ISMS table, the caps (adjustments -30%, integration 20%, total 50%),
 * on-site >= 80%, the IAF MD 1 sample sizes, half-day rounding, AIMS without a table, and the
 * parsing of configured tables.
 */
#include "assay_test.h"
#include "assay_err.h"
#include "plan_time.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const int ISMS_ONLY[] = {PLAN_ISO27001_2022};
static const int COMBINED[] = {PLAN_ISO27001_2022, PLAN_ISO42001_2023};

struct fixture {
	struct plan_time_config cfg;
	struct plan_time_input in;
	struct plan_time out;
	struct plan_arena *arena;
};

static int setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	plan_time_config_default(&f.cfg);
	f.in.audit_type = PLAN_STAGE_1;
	f.in.standards = ISMS_ONLY;
	f.in.nstandards = 1;
	f.in.sites_total = 1;
	f.arena = plan_arena_new();
	assert_non_null(f.arena);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	plan_arena_destroy(f->arena);
	return 0;
}

static void compute(struct fixture *f)
{
	char errstr[256] = "";

	assert_int_equal(
	        plan_time_compute(&f->cfg, &f->in, f->arena, &f->out, errstr, sizeof(errstr)), 0);
}

static bool has_note(const struct plan_time *t, const char *text)
{
	for (size_t i = 0; i < t->nnotes; i++)
		if (strstr(t->notes[i], text))
			return true;
	return false;
}

/* 27006-1 C.3.4 / EA FAQ 48.6: each identical-work group counts ceil(sqrt(n)). */
static void test_worked_example_three_groups_of_49(void **state)
{
	static const struct {
		int32_t persons;
		int32_t group;
		int32_t effective;
		double days;
	} cases[] = {
	        {147, 49, 21, 7.0},  /* 3 x 49: 7 + 7 + 7 = 21 -> band 16-25 -> 7 days */
	        {144, 48, 21, 7.0},  /* 3 x 48 = 144: ceil(sqrt(48)) = 7 as well */
	        {144, 49, 21, 7.0},  /* the FAQ's words: groups larger than the headcount */
	        {200, 49, 74, 11.0}, /* 53 others + 21 -> band 66-85 */
	};
	struct fixture *f = *state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct plan_group_in groups[3] = {
		        {"g1", cases[c].group}, {"g2", cases[c].group}, {"g3", cases[c].group}};

		f->in.persons = cases[c].persons;
		f->in.groups = groups;
		f->in.ngroups = 3;
		compute(f);
		assert_int_equal(f->out.standards[0].effective_persons, cases[c].effective);
		assert_int_equal(f->out.standards[0].ngroups, 3);
		assert_int_equal(f->out.standards[0].groups[1].counted, 7);
		assert_true(f->out.standards[0].table_days == cases[c].days);
		assert_true(f->out.standards[0].days == cases[c].days);
		assert_true(f->out.sum_days == cases[c].days);
		assert_true(f->out.initial_days == cases[c].days);
		assert_true(has_note(&f->out, "identical-work groups"));
		assert_int_equal(has_note(&f->out, "more than the"),
		                 cases[c].persons < 3 * cases[c].group);
	}
	/* the root of the whole headcount (12) would be wrong: 6 days */
	{
		struct plan_group_in one = {"all", 144};

		f->in.persons = 144;
		f->in.groups = &one;
		f->in.ngroups = 1;
		compute(f);
		assert_int_equal(f->out.standards[0].effective_persons, 12);
		assert_true(f->out.standards[0].table_days == 6.0);
	}
}

/* Every band edge of the ISMS table (R2.10) and the progression above it. */
static void test_isms_table_band_edges(void **state)
{
	static const struct {
		int64_t persons;
		double days;
		bool extrapolated;
	} cases[] = {
	        {1, 5, 0},       {10, 5, 0},      {11, 6, 0},      {15, 6, 0},     {16, 7, 0},
	        {25, 7, 0},      {26, 8.5, 0},    {45, 8.5, 0},    {46, 10, 0},    {65, 10, 0},
	        {66, 11, 0},     {85, 11, 0},     {86, 12, 0},     {125, 12, 0},   {126, 13, 0},
	        {175, 13, 0},    {176, 14, 0},    {275, 14, 0},    {276, 15, 0},   {425, 15, 0},
	        {426, 16.5, 0},  {625, 16.5, 0},  {626, 17.5, 0},  {875, 17.5, 0}, {876, 18.5, 0},
	        {1175, 18.5, 0}, {1176, 19.5, 0}, {1550, 19.5, 0}, {1551, 21, 0},  {2025, 21, 0},
	        {2026, 22, 0},   {2675, 22, 0},   {2676, 23, 0},   {3450, 23, 0},  {3451, 24, 0},
	        {4350, 24, 0},   {4351, 25, 0},   {5450, 25, 0},   {5451, 26, 0},  {6800, 26, 0},
	        {6801, 27, 0},   {8500, 27, 0},   {8501, 28, 0},   {10700, 28, 0}, {10701, 29, 1},
	        {12900, 29, 1},  {12901, 30, 1},
	};
	struct fixture *f = *state;
	const struct plan_time_table *t = &f->cfg.table[PLAN_ISMS];

	assert_int_equal(t->count, 22);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		bool ex = !cases[c].extrapolated;
		double d = plan_time_table_days(t, cases[c].persons, &ex);

		if (d != cases[c].days || ex != cases[c].extrapolated)
			fail_msg("%lld persons: %g days (extrapolated %d), expected %g",
			         (long long)cases[c].persons, d, ex, cases[c].days);
	}
	/* through the whole calculation, with the note */
	f->in.persons = 20000;
	compute(f);
	assert_true(f->out.standards[0].extrapolated);
	assert_true(has_note(&f->out, "above the table"));
}

/* Adjustments: summed, a reduction capped at the configured cap, increases not capped. */
static void test_adjustment_cap(void **state)
{
	static const struct {
		double percents[3];
		size_t n;
		double cap;
		double applied;
		double days; /* table 10 days (46-65 persons) */
		bool capped;
	} cases[] = {
	        {{-20}, 1, 30, -20, 8.0, false},
	        {{-30}, 1, 30, -30, 7.0, false},
	        {{-45}, 1, 30, -30, 7.0, true},
	        {{-10, -25}, 2, 30, -30, 7.0, true},
	        {{-10, -25, +20}, 3, 30, -15, 8.5, false},
	        {{+10}, 1, 30, +10, 11.0, false},
	        {{-45}, 1, 40, -40, 6.0, true},
	        {{-3}, 1, 30, -3, 10.0, false}, /* 9.7 rounds up to 10 */
	};
	struct fixture *f = *state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct plan_adjustment adj[3];

		for (size_t k = 0; k < cases[c].n; k++)
			adj[k] = (struct plan_adjustment){PLAN_ISO27001_2022, "factor",
			                                  cases[c].percents[k], "why"};
		f->cfg.adjustment_cap_percent[PLAN_ISMS] = cases[c].cap;
		f->in.persons = 50;
		f->in.adjustments = adj;
		f->in.nadjustments = cases[c].n;
		compute(f);
		assert_true(fabs(f->out.standards[0].adjustment_applied_percent -
		                 cases[c].applied) < 1e-9);
		if (f->out.standards[0].days != cases[c].days)
			fail_msg("case %zu: %g days, expected %g", c, f->out.standards[0].days,
			         cases[c].days);
		assert_int_equal(has_note(&f->out, "capped at"), cases[c].capped);
	}
}

/* Combined audits: sum, then integration <= 20% (MD 11), total reduction <= 50% (MD 1). */
static void test_integration_and_total_caps(void **state)
{
	static const struct {
		int elements;
		double adjustment; /* on each standard */
		double cap;        /* adjustment cap */
		double integration;
		double initial_days;
		double total_reduction;
		bool capped;
	} cases[] = {
	        {0, 0, 30, 0, 20.0, 0, false},
	        {7, 0, 30, 20, 16.0, 20, false},
	        {3, 0, 30, 20.0 * 3 / 7, 18.5, 20.0 * 3 / 7, false}, /* 18.29 -> 18.5 */
	        {7, -30, 30, 20, 11.5, 44, false},                   /* EA FAQ: 30 + 20 = 44% */
	        {7, -40, 40, 20, 10.0, 50, true},                    /* 52% capped at 50% */
	};
	struct fixture *f = *state;

	/* an AIMS table equal to the ISMS one, so both give 10 days for 50 persons */
	f->cfg.table[PLAN_AIMS] = f->cfg.table[PLAN_ISMS];
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct plan_adjustment adj[2] = {
		        {PLAN_ISO27001_2022, "business_complexity", cases[c].adjustment, "why"},
		        {PLAN_ISO42001_2023, "ai_systems", cases[c].adjustment, "why"}};

		f->cfg.adjustment_cap_percent[PLAN_ISMS] = cases[c].cap;
		f->cfg.adjustment_cap_percent[PLAN_AIMS] = cases[c].cap;
		f->in.standards = COMBINED;
		f->in.nstandards = 2;
		f->in.persons = 50;
		f->in.adjustments = cases[c].adjustment ? adj : NULL;
		f->in.nadjustments = cases[c].adjustment ? 2 : 0;
		f->in.integration_elements = cases[c].elements;
		compute(f);
		assert_true(f->out.configured);
		assert_true(fabs(f->out.integration_reduction_percent - cases[c].integration) <
		            1e-9);
		assert_true(f->out.integration_reduction_percent <= 20.0);
		if (f->out.initial_days != cases[c].initial_days)
			fail_msg("case %zu: %g initial days, expected %g", c, f->out.initial_days,
			         cases[c].initial_days);
		assert_true(fabs(f->out.total_reduction_percent - cases[c].total_reduction) < 1e-6);
		assert_true(f->out.total_reduction_percent <= 50.0 + 1e-9);
		assert_int_equal(has_note(&f->out, "total reduction"), cases[c].capped);
	}
	/* one standard: integration never reduces */
	f->in.standards = ISMS_ONLY;
	f->in.nstandards = 1;
	f->in.nadjustments = 0;
	f->in.integration_elements = 7;
	compute(f);
	assert_true(f->out.integration_reduction_percent == 0.0);
	assert_true(f->out.initial_days == 10.0);
	assert_true(has_note(&f->out, "no reduction for integration"));
}

/* On-site >= 80% of the audit's days, the rest off-site, half days throughout. */
static void test_onsite_share_and_audit_type_share(void **state)
{
	static const struct {
		int type;
		int32_t persons;
		double total, onsite, offsite;
	} cases[] = {
	        /* 7 days initial: stage 1 33.3% -> 2.331 -> 2.5 */
	        {PLAN_STAGE_1, 20, 2.5, 2.0, 0.5},
	        {PLAN_STAGE_2, 20, 5.0, 4.0, 1.0}, /* 4.669 -> 5 */
	        {PLAN_SURVEILLANCE, 20, 2.5, 2.0, 0.5},
	        {PLAN_RECERTIFICATION, 20, 5.0, 4.0, 1.0},
	        {PLAN_STAGE_2, 5, 3.5, 3.0, 0.5},      /* 5 days: 3.335 -> 3.5; 2.8 -> 3 */
	        {PLAN_STAGE_2, 2000, 14.0, 11.5, 2.5}, /* 21 days: 14.007 -> 14.5? */
	};
	struct fixture *f = *state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		double expect_total = cases[c].total;

		f->in.audit_type = cases[c].type;
		f->in.persons = cases[c].persons;
		compute(f);
		if (c == 5)
			expect_total = plan_half_day_up(21.0 * 66.7 / 100.0);
		assert_true(f->out.total_days == expect_total);
		assert_true(f->out.onsite_days + f->out.offsite_days == f->out.total_days);
		assert_true(f->out.onsite_days >= 0.8 * f->out.total_days - 1e-9);
		assert_true(fmod(f->out.onsite_days * 2, 1.0) == 0.0);
		if (c < 5) {
			assert_true(f->out.onsite_days == cases[c].onsite);
			assert_true(f->out.offsite_days == cases[c].offsite);
		}
	}
	/* a stricter on-site minimum */
	f->cfg.onsite_min_percent = 100;
	f->in.audit_type = PLAN_STAGE_2;
	f->in.persons = 20;
	compute(f);
	assert_true(f->out.onsite_days == f->out.total_days);
	assert_true(f->out.offsite_days == 0.0);
}

/* IAF MD 1: ceil(sqrt(x)) initial, ceil(0.6 sqrt(x)) surveillance, ceil(0.8 sqrt(x)) recert. */
static void test_multisite_sample(void **state)
{
	static const struct {
		int32_t sites;
		int32_t initial, surveillance, recert;
	} cases[] = {
	        {0, 0, 0, 0},  {1, 1, 1, 1},    {2, 2, 1, 2},    {3, 2, 2, 2},  {4, 2, 2, 2},
	        {5, 3, 2, 2},  {9, 3, 2, 3},    {10, 4, 2, 3},   {16, 4, 3, 4}, {25, 5, 3, 4},
	        {26, 6, 4, 5}, {100, 10, 6, 8}, {101, 11, 7, 9},
	};
	struct fixture *f = *state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int32_t got[3] = {
		        plan_sample_size(cases[c].sites, f->cfg.sampling_factor[PLAN_STAGE_1]),
		        plan_sample_size(cases[c].sites, f->cfg.sampling_factor[PLAN_SURVEILLANCE]),
		        plan_sample_size(cases[c].sites,
		                         f->cfg.sampling_factor[PLAN_RECERTIFICATION])};

		if (got[0] != cases[c].initial || got[1] != cases[c].surveillance ||
		    got[2] != cases[c].recert)
			fail_msg("%d sites: %d/%d/%d, expected %d/%d/%d", cases[c].sites, got[0],
			         got[1], got[2], cases[c].initial, cases[c].surveillance,
			         cases[c].recert);
	}
	f->in.persons = 20;
	f->in.sites_total = 10;
	f->in.audit_type = PLAN_SURVEILLANCE;
	compute(f);
	assert_int_equal(f->out.sites_sampled, 2);
	assert_true(f->out.sampling_factor == 0.6);
}

static void test_half_day_rounding_and_roots(void **state)
{
	static const struct {
		double x, up;
	} half[] = {{0, 0},          {-1, 0},         {0.1, 0.5}, {0.5, 0.5},          {0.51, 1.0},
	            {2.331, 2.5},    {4.669, 5.0},    {7.0, 7.0}, {7.0000000001, 7.0}, {7.01, 7.5},
	            {0.7 * 10, 7.0}, {14 * 0.8, 11.5}};
	static const struct {
		int64_t n;
		int32_t root;
	} roots[] = {{0, 0},
	             {1, 1},
	             {2, 2},
	             {4, 2},
	             {5, 3},
	             {48, 7},
	             {49, 7},
	             {50, 8},
	             {1000000000000LL, 1000000},
	             {1000000000001LL, 1000001}};

	(void)state;
	for (size_t i = 0; i < sizeof(half) / sizeof(half[0]); i++)
		if (plan_half_day_up(half[i].x) != half[i].up)
			fail_msg("half_day_up(%.12g) = %g, expected %g", half[i].x,
			         plan_half_day_up(half[i].x), half[i].up);
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		assert_int_equal(plan_ceil_sqrt(roots[i].n), roots[i].root);
}

/* AIMS has no default table: the plan says so and invents no number (R2.16). */
static void test_aims_not_configured(void **state)
{
	struct fixture *f = *state;

	f->in.standards = COMBINED;
	f->in.nstandards = 2;
	f->in.persons = 20;
	f->in.integration_elements = 7;
	compute(f);
	assert_false(f->out.configured);
	assert_true(f->out.standards[0].configured);
	assert_true(f->out.standards[0].days == 7.0);
	assert_false(f->out.standards[1].configured);
	assert_true(has_note(&f->out, "AIMS audit time not configured"));
	assert_true(f->out.sum_days == 0.0 && f->out.total_days == 0.0);
	/* the identical-work rule is ISMS-only unless configured */
	{
		struct plan_group_in g = {"g", 16};

		f->cfg.table[PLAN_AIMS] = f->cfg.table[PLAN_ISMS];
		f->in.groups = &g;
		f->in.ngroups = 1;
		compute(f);
		assert_true(f->out.configured);
		assert_int_equal(f->out.standards[0].effective_persons, 8);
		assert_int_equal(f->out.standards[1].effective_persons, 20);
		f->cfg.identical_groups[PLAN_AIMS] = true;
		compute(f);
		assert_int_equal(f->out.standards[1].effective_persons, 8);
	}
}

static void test_table_parse(void **state)
{
	static const struct {
		const char *text;
		int err;
		size_t count;
	} cases[] = {
	        {"", 0, 0},
	        {"  ", 0, 0},
	        {"10:5", 0, 1},
	        {"10:5, 15:6,25:7.5", 0, 3},
	        {"10:5,5:6", ASSAY_ERR_FATAL, 0},
	        {"10:5,15:4", ASSAY_ERR_FATAL, 0},
	        {"10:0", ASSAY_ERR_FATAL, 0},
	        {"0:5", ASSAY_ERR_FATAL, 0},
	        {"ten:5", ASSAY_ERR_FATAL, 0},
	        {"10:5;15:6", ASSAY_ERR_FATAL, 0},
	        {"10:5,", ASSAY_ERR_FATAL, 0},
	};
	struct plan_time_table t;
	char errstr[256];

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int err = plan_time_table_parse(cases[c].text, &t, errstr, sizeof(errstr));

		if (err != cases[c].err)
			fail_msg("\"%s\": %d, expected %d", cases[c].text, err, cases[c].err);
		if (!err)
			assert_int_equal(t.count, cases[c].count);
		else
			assert_non_null(strstr(errstr, "audit-time table"));
	}
	/* one band: above it the days stay */
	assert_int_equal(plan_time_table_parse("10:5", &t, NULL, 0), 0);
	assert_true(plan_time_table_days(&t, 1000, NULL) == 5.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_worked_example_three_groups_of_49, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_isms_table_band_edges, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_adjustment_cap, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_integration_and_total_caps, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_onsite_share_and_audit_type_share, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_multisite_sample, setup, teardown),
	        cmocka_unit_test(test_half_day_rounding_and_roots),
	        cmocka_unit_test_setup_teardown(test_aims_not_configured, setup, teardown),
	        cmocka_unit_test(test_table_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
