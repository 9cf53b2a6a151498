/*
 * The risk model (services/risk/risk_model.h), table-driven: bands, freshness decay,
 * strength by kind and link, coverage over independent sources, residual, the AI effect
 * (impact floors and the blocking flag), whole control scores and the summary.
 */
#include "assay_test.h"
#include "assay_err.h"
#include "risk_model.h"

#include <string.h>

static struct risk_params defaults(void)
{
	struct risk_params p;

	risk_params_default(&p);
	return p;
}

static void test_defaults_are_valid(void **state)
{
	struct risk_params p = defaults();
	char err[256];

	(void)state;
	assert_int_equal(risk_params_check(&p, err, sizeof(err)), 0);
	p.fresh_window_days = p.fresh_full_days;
	assert_int_equal(risk_params_check(&p, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "freshness"));
	p = defaults();
	p.band_min[RISK_BAND_HIGH] = p.band_min[RISK_BAND_MEDIUM];
	assert_int_equal(risk_params_check(&p, err, sizeof(err)), ASSAY_ERR_FATAL);
	p = defaults();
	p.tier_permille[RISK_TIER_ATTESTATION] = 900; /* above documents */
	assert_int_equal(risk_params_check(&p, err, sizeof(err)), ASSAY_ERR_FATAL);
}

static void test_bands(void **state)
{
	static const struct {
		int score, band;
	} cases[] = {
	        {0, RISK_BAND_NONE},      {1, RISK_BAND_VERY_LOW},  {4, RISK_BAND_VERY_LOW},
	        {5, RISK_BAND_LOW},       {9, RISK_BAND_LOW},       {10, RISK_BAND_MEDIUM},
	        {14, RISK_BAND_MEDIUM},   {15, RISK_BAND_HIGH},     {19, RISK_BAND_HIGH},
	        {20, RISK_BAND_CRITICAL}, {25, RISK_BAND_CRITICAL},
	};
	struct risk_params p = defaults();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(risk_band_of(&p, cases[i].score), cases[i].band);
	assert_string_equal(risk_band_symbol(RISK_BAND_VERY_LOW), "VERY_LOW");
	assert_string_equal(risk_band_symbol(RISK_BAND_CRITICAL), "CRITICAL");
	assert_null(risk_band_symbol(RISK_BAND_NONE));
}

static void test_freshness_decay(void **state)
{
	/* full strength up to 90 days, none from 365, linear (floored) in between */
	static const struct {
		int age, permille;
	} cases[] = {
	        {-5, 1000}, {0, 1000}, {90, 1000}, {91, 996}, {228, 498},
	        {300, 236}, {364, 3},  {365, 0},   {1000, 0},
	};
	struct risk_params p = defaults();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(risk_freshness_permille(&p, cases[i].age), cases[i].permille);
	/* decay is monotone */
	for (int age = 0; age < 400; age++)
		assert_true(risk_freshness_permille(&p, age + 1) <=
		            risk_freshness_permille(&p, age));
}

static void test_kinds_and_strength(void **state)
{
	static const struct {
		const char *kind;
		enum risk_tier tier;
	} kinds[] = {
	        {"CONFIGURATION_SCAN", RISK_TIER_AUTOMATED},
	        {"TEST_REPORT", RISK_TIER_AUTOMATED},
	        {"BIAS_EVALUATION", RISK_TIER_AUTOMATED},
	        {"LOG_SAMPLE", RISK_TIER_SAMPLED},
	        {"ACCESS_REVIEW", RISK_TIER_SAMPLED},
	        {"POLICY", RISK_TIER_DOCUMENT},
	        {"MODEL_CARD", RISK_TIER_DOCUMENT},
	        {"DATA_PROVENANCE", RISK_TIER_DOCUMENT},
	        {"ATTESTATION", RISK_TIER_ATTESTATION},
	        {"OTHER", RISK_TIER_OTHER},
	        {"SOMETHING_NEW", RISK_TIER_OTHER},
	        {NULL, RISK_TIER_OTHER},
	};
	static const struct {
		enum risk_tier tier;
		enum risk_link link;
		int age, strength;
	} cases[] = {
	        {RISK_TIER_AUTOMATED, RISK_LINK_DIRECT, 0, 1000},
	        {RISK_TIER_SAMPLED, RISK_LINK_DIRECT, 0, 700},
	        {RISK_TIER_DOCUMENT, RISK_LINK_DIRECT, 0, 450},
	        {RISK_TIER_ATTESTATION, RISK_LINK_DIRECT, 0, 250},
	        {RISK_TIER_OTHER, RISK_LINK_DIRECT, 0, 150},
	        {RISK_TIER_AUTOMATED, RISK_LINK_AUTOMATIC, 0, 800},
	        {RISK_TIER_AUTOMATED, RISK_LINK_PENDING, 0, 0},
	        {RISK_TIER_AUTOMATED, RISK_LINK_DIRECT, 228, 498},
	        {RISK_TIER_SAMPLED, RISK_LINK_AUTOMATIC, 228, 278}, /* 560 * 498 / 1000 */
	        {RISK_TIER_AUTOMATED, RISK_LINK_DIRECT, 365, 0},
	};
	struct risk_params p = defaults();

	(void)state;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		assert_int_equal(risk_kind_tier(kinds[i].kind), kinds[i].tier);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
		        risk_strength_permille(&p, cases[i].tier, cases[i].link, cases[i].age),
		        cases[i].strength);
	assert_int_equal(risk_link_parse("DIRECT"), RISK_LINK_DIRECT);
	assert_int_equal(risk_link_parse("NEEDS_CONFIRMATION"), RISK_LINK_PENDING);
	assert_int_equal(risk_link_parse("CLAIMED"), -1);
}

static void test_coverage_and_residual(void **state)
{
	static const struct {
		int strengths[4];
		size_t n;
		int coverage;
	} cov[] = {
	        {{0}, 0, 0},
	        {{1000}, 1, 700},
	        {{1000, 1000}, 2, 850},
	        {{1000, 1000, 1000}, 3, 1000},
	        {{1000, 1000, 1000, 1000}, 4, 1000}, /* capped */
	        {{500, 1000}, 2, 775},
	        {{1000, 500}, 2, 775}, /* order does not matter */
	        {{250}, 1, 175},
	};
	static const struct {
		int inherent, coverage, residual;
	} res[] = {
	        {9, 0, 9},     {9, 700, 4},  {9, 175, 8},  {16, 1000, 3}, {25, 1000, 5},
	        {25, 700, 11}, {1, 1000, 1}, {12, 850, 4}, {20, 500, 12},
	};
	struct risk_params p = defaults();

	(void)state;
	for (size_t i = 0; i < sizeof(cov) / sizeof(cov[0]); i++)
		assert_int_equal(risk_coverage_permille(&p, cov[i].strengths, cov[i].n),
		                 cov[i].coverage);
	for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++)
		assert_int_equal(risk_residual(&p, res[i].inherent, res[i].coverage),
		                 res[i].residual);
}

static void test_ai_effect_and_blocking(void **state)
{
	static const struct risk_ai_system user_high[] = {
	        {"hr", RISK_AI_HIGH_RISK, RISK_ROLE_USER}};
	static const struct risk_ai_system prov_high[] = {
	        {"hr", RISK_AI_HIGH_RISK, RISK_ROLE_USER | RISK_ROLE_PROVIDER}};
	static const struct risk_ai_system limited[] = {
	        {"bot", RISK_AI_LIMITED_RISK, RISK_ROLE_PROVIDER}};
	static const struct risk_ai_system minimal[] = {
	        {"spam", RISK_AI_MINIMAL_RISK, RISK_ROLE_USER}};
	static const struct risk_ai_system unassessed[] = {
	        {"x", RISK_AI_NOT_ASSESSED, RISK_ROLE_USER}};
	static const struct risk_ai_system prohibited[] = {
	        {"zz-social-score", RISK_AI_PROHIBITED, RISK_ROLE_PROVIDER},
	        {"hr", RISK_AI_HIGH_RISK, RISK_ROLE_USER},
	        {"aa-emotion", RISK_AI_PROHIBITED, RISK_ROLE_USER}};
	static const struct {
		const struct risk_ai_system *sys;
		size_t n;
		int floor;
		bool blocking;
		size_t blocking_system;
	} cases[] = {
	        {NULL, 0, 0, false, 0},      {user_high, 1, 4, false, 0},
	        {prov_high, 1, 5, false, 0}, {limited, 1, 3, false, 0},
	        {minimal, 1, 0, false, 0},   {unassessed, 1, 3, false, 0},
	        {prohibited, 3, 4, true, 2}, /* the lowest id among the prohibited ones */
	};
	struct risk_params p = defaults();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct risk_ai_effect e;

		risk_ai_effect_of(&p, cases[i].sys, cases[i].n, &e);
		assert_int_equal(e.impact_floor, cases[i].floor);
		assert_int_equal(e.blocking, cases[i].blocking);
		if (e.blocking)
			assert_int_equal(e.blocking_system, cases[i].blocking_system);
	}
	assert_int_equal(risk_ai_tier_parse("PROHIBITED"), RISK_AI_PROHIBITED);
	assert_int_equal(risk_ai_tier_parse("UNHEARD_OF"), -1);
	assert_int_equal(risk_ai_role_parse("PRODUCER"), RISK_ROLE_PRODUCER);
}

/* One source with one newest day per (tier, link). */
static struct risk_source source(uint32_t id, int tier, int link, int32_t day)
{
	struct risk_source s;

	s.source = id;
	for (int t = 0; t < RISK_NTIERS; t++)
		for (int l = 0; l < RISK_NCOUNTED; l++)
			s.newest[t][l] = RISK_DAY_NONE;
	if (link < RISK_NCOUNTED)
		s.newest[tier][link] = day;
	return s;
}

static void test_control_scores(void **state)
{
	const int32_t today = 20000;
	struct risk_source one_scan[] = {source(1, RISK_TIER_AUTOMATED, RISK_LINK_DIRECT, today)};
	struct risk_source old_scan[] = {
	        source(1, RISK_TIER_AUTOMATED, RISK_LINK_DIRECT, today - 400)};
	struct risk_source half_old[] = {
	        source(1, RISK_TIER_AUTOMATED, RISK_LINK_DIRECT, today - 228)};
	struct risk_source pending[] = {source(1, RISK_TIER_AUTOMATED, RISK_LINK_PENDING, today)};
	struct risk_source three[] = {source(1, RISK_TIER_AUTOMATED, RISK_LINK_DIRECT, today),
	                              source(2, RISK_TIER_SAMPLED, RISK_LINK_DIRECT, today - 10),
	                              source(3, RISK_TIER_ATTESTATION, RISK_LINK_AUTOMATIC, today)};
	struct risk_evidence ev_scan = {{1, 0, 0}, 1, 1, one_scan};
	struct risk_evidence ev_old = {{1, 0, 0}, 1, 1, old_scan};
	struct risk_evidence ev_half = {{1, 0, 0}, 1, 1, half_old};
	struct risk_evidence ev_pending = {{0, 0, 3}, 1, 1, pending};
	struct risk_evidence ev_three = {{2, 1, 0}, 3, 3, three};
	struct risk_ai_effect no_ai = {0, false, 0}, high = {4, false, 0}, provider = {5, false, 0};
	struct risk_ai_effect blocked = {4, true, 0};
	const struct {
		const char *name;
		int l, i;
		const struct risk_ai_effect *ai;
		const struct risk_evidence *ev;
		int impact, inherent, coverage, sources, residual, band;
		bool blocking;
	} cases[] = {
	        {"no evidence", 3, 3, NULL, NULL, 3, 9, 0, 0, 9, RISK_BAND_LOW, false},
	        {"one fresh scan", 3, 3, NULL, &ev_scan, 3, 9, 700, 1, 4, RISK_BAND_VERY_LOW,
	         false},
	        {"stale scan counts nothing", 3, 3, NULL, &ev_old, 3, 9, 0, 1, 9, RISK_BAND_LOW,
	         false},
	        {"half-decayed scan", 4, 4, NULL, &ev_half, 4, 16, 348, 1, 12, RISK_BAND_MEDIUM,
	         false},
	        {"pending links count nothing", 4, 4, NULL, &ev_pending, 4, 16, 0, 0, 16,
	         RISK_BAND_HIGH, false},
	        /* 700 + 700*150/1000 + 200*150/1000 = 700 + 105 + 30 */
	        {"three independent sources", 4, 4, NULL, &ev_three, 4, 16, 835, 3, 5,
	         RISK_BAND_LOW, false},
	        {"42001 without AI floor", 3, 3, &no_ai, NULL, 3, 9, 0, 0, 9, RISK_BAND_LOW, false},
	        {"high-risk AI raises impact to 4", 3, 3, &high, NULL, 4, 12, 0, 0, 12,
	         RISK_BAND_MEDIUM, false},
	        {"high-risk provider raises to 5", 4, 4, &provider, NULL, 5, 20, 0, 0, 20,
	         RISK_BAND_CRITICAL, false},
	        {"floor never lowers impact", 3, 5, &high, NULL, 5, 15, 0, 0, 15, RISK_BAND_HIGH,
	         false},
	        {"prohibited practice blocks", 3, 3, &blocked, &ev_scan, 4, 12, 700, 1, 0,
	         RISK_BAND_NONE, true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct risk_params p = defaults();
		struct risk_score sc;

		risk_score_control(&p, cases[i].l, cases[i].i, cases[i].ai, cases[i].ev, today,
		                   &sc);
		print_message("case %s\n", cases[i].name);
		assert_int_equal(sc.impact, cases[i].impact);
		assert_int_equal(sc.inherent, cases[i].inherent);
		assert_int_equal(sc.coverage, cases[i].coverage);
		assert_int_equal(sc.sources, cases[i].sources);
		assert_int_equal(sc.residual, cases[i].residual);
		assert_int_equal(sc.band, cases[i].band);
		assert_int_equal(sc.blocking, cases[i].blocking);
	}
	/* the same evidence a year later (reference day moved) scores worse */
	{
		struct risk_params p = defaults();
		struct risk_score now, later;

		risk_score_control(&p, 3, 3, NULL, &ev_scan, today, &now);
		risk_score_control(&p, 3, 3, NULL, &ev_scan, today + 365, &later);
		assert_true(later.residual > now.residual);
		assert_int_equal(later.residual, 9);
	}
}

static void test_summary(void **state)
{
	const struct risk_summary_item items[] = {
	        {"A.5.1", 0, 9, 4, RISK_BAND_VERY_LOW, false, true},
	        {"A.5.2", 1, 16, 16, RISK_BAND_HIGH, false, false},
	        {"A.5.3", 2, 20, 16, RISK_BAND_HIGH, false, false}, /* higher inherent: first */
	        {"A.5.4", 3, 12, 0, RISK_BAND_NONE, true, true},    /* blocking: not in the top */
	        {"A.5.5", 4, 25, 20, RISK_BAND_CRITICAL, false, false},
	        {"A.5.6", 5, 16, 16, RISK_BAND_HIGH, false, true}, /* tie: catalog order */
	        {"A.5.7", 6, 9, 9, RISK_BAND_LOW, false, false},
	};
	static const char *const top[] = {"A.5.5", "A.5.3", "A.5.2"};
	struct risk_params p = defaults();
	struct risk_summary s, s2;

	(void)state;
	p.top_count = 3;
	risk_summarize(&p, items, sizeof(items) / sizeof(items[0]), &s);
	assert_int_equal(s.applicable, 7);
	assert_int_equal(s.with_evidence, 3);
	assert_int_equal(s.blocking, 1);
	assert_int_equal(s.bands[RISK_BAND_VERY_LOW], 1);
	assert_int_equal(s.bands[RISK_BAND_LOW], 1);
	assert_int_equal(s.bands[RISK_BAND_MEDIUM], 0);
	assert_int_equal(s.bands[RISK_BAND_HIGH], 3);
	assert_int_equal(s.bands[RISK_BAND_CRITICAL], 1);
	assert_int_equal(s.ntop, 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(s.top[i].control_id, top[i]);
	assert_int_equal(s.top[0].residual, 20);
	assert_int_equal(s.top[0].band, RISK_BAND_CRITICAL);
	risk_summarize(&p, items, sizeof(items) / sizeof(items[0]), &s2);
	assert_true(risk_summary_equal(&s, &s2));
	s2.top[2].residual = 15;
	assert_false(risk_summary_equal(&s, &s2));
	p.top_count = 0;
	risk_summarize(&p, items, sizeof(items) / sizeof(items[0]), &s);
	assert_int_equal(s.ntop, 0);
}

static void test_days(void **state)
{
	(void)state;
	assert_int_equal(risk_day_of_ms(0), 0);
	assert_int_equal(risk_day_of_ms(86399999), 0);
	assert_int_equal(risk_day_of_ms(86400000), 1);
	assert_int_equal(risk_day_of_ms(-1), -1);
	assert_int_equal(risk_dim_parse("PRIVACY"), 5);
	assert_string_equal(risk_dim_symbol(7), "ACCOUNTABILITY");
	assert_int_equal(risk_dim_parse("WELLBEING"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults_are_valid),
	        cmocka_unit_test(test_bands),
	        cmocka_unit_test(test_freshness_decay),
	        cmocka_unit_test(test_kinds_and_strength),
	        cmocka_unit_test(test_coverage_and_residual),
	        cmocka_unit_test(test_ai_effect_and_blocking),
	        cmocka_unit_test(test_control_scores),
	        cmocka_unit_test(test_summary),
	        cmocka_unit_test(test_days),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
