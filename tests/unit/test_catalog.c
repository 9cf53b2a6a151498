/*
 * The catalog in memory, built from plain data: natural id order, lookups, counts and
 * ranges, references "FAMILY:ID" resolved to the current edition, edition validity windows,
 * and the refusals of inconsistent data. The real data is checked against PostgreSQL in
 * tests/integration/test_catalog_db.c.
 */
#include "assay_test.h"
#include "assay_catalog.h"

#include <stdint.h>
#include <string.h>

/* 2025-10-31 and 2022-10-25 as days since 1970-01-01 */
#define DAY_2025_10_31 20392
#define DAY_2022_10_25 19290
#define DAY_2013_10_01 15979
#define DAY_2023_12_18 19709
#define MS_PER_DAY     86400000LL

static const struct assay_standard_def stds[] = {
        {"ISO27001_2013", "ISO27001", 2013, DAY_2013_10_01, true, DAY_2025_10_31},
        {"ISO42001_2023", "ISO42001", 2023, DAY_2023_12_18, false, 0},
        {"ISO27001_2022", "ISO27001", 2022, DAY_2022_10_25, false, 0},
};

/* deliberately out of order */
static const struct assay_control ctls[] = {
        {"ISO27001_2022", "A.5.10", "Acceptable use", "A.5 Organizational controls", true},
        {"ISO27001_2022", "10.1", "Continual improvement", "", false},
        {"ISO27001_2022", "A.5.2", "Roles", "A.5 Organizational controls", true},
        {"ISO27001_2022", "9.3.1", "General", "", false},
        {"ISO27001_2022", "A.8.15", "Logging", "A.8 Technological controls", true},
        {"ISO27001_2022", "9.3", "Management review", "", false},
        {"ISO27001_2022", "4.1", "Context", "", false},
        {"ISO42001_2023", "A.6.2.8", "Event logs", "A.6 AI system life cycle", true},
        {"ISO42001_2023", "6.1.4", "AI system impact assessment", "", false},
};

static struct assay_catalog *make(void)
{
	struct assay_catalog *c = NULL;
	char err[256];

	assert_int_equal(assay_catalog_new(stds, 3, ctls, sizeof(ctls) / sizeof(ctls[0]), &c, err,
	                                   sizeof(err)),
	                 0);
	assert_non_null(c);
	return c;
}

static void test_id_order(void **state)
{
	(void)state;
	assert_true(assay_control_id_cmp("A.5.2", "A.5.10") < 0);
	assert_true(assay_control_id_cmp("A.5.10", "A.5.2") > 0);
	assert_true(assay_control_id_cmp("9.3", "9.3.1") < 0);
	assert_true(assay_control_id_cmp("9.3.1", "10.1") < 0);
	assert_true(assay_control_id_cmp("10.2", "A.5.1") < 0); /* clauses first */
	assert_true(assay_control_id_cmp("A.10.2", "A.9.4") > 0);
	assert_int_equal(assay_control_id_cmp("A.8.15", "A.8.15"), 0);
}

static void test_find_count_at(void **state)
{
	struct assay_catalog *c = make();
	const struct assay_control *k;

	(void)state;
	k = assay_catalog_find(c, "ISO27001_2022", "A.8.15");
	assert_non_null(k);
	assert_string_equal(k->title, "Logging");
	assert_string_equal(k->theme, "A.8 Technological controls");
	assert_true(k->annex_a);
	assert_string_equal(k->standard, "ISO27001_2022");
	assert_ptr_equal(k->standard, assay_catalog_standard(c, "ISO27001_2022"));
	assert_null(assay_catalog_find(c, "ISO27001_2022", "A.8.16"));
	assert_null(assay_catalog_find(c, "ISO27001_2022", "A.08.15")); /* numerically equal */
	assert_null(assay_catalog_find(c, "ISO42001_2023", "A.8.15"));
	assert_null(assay_catalog_find(c, "ISO27001_2013", "A.8.15"));
	assert_null(assay_catalog_find(c, "NOPE", "4.1"));
	assert_null(assay_catalog_find(c, NULL, "4.1"));
	assert_null(assay_catalog_find(NULL, "ISO27001_2022", "4.1"));

	assert_int_equal(assay_catalog_count(c, "ISO27001_2022", true), 3);
	assert_int_equal(assay_catalog_count(c, "ISO27001_2022", false), 4);
	assert_int_equal(assay_catalog_count(c, "ISO42001_2023", false), 1);
	assert_int_equal(assay_catalog_count(c, "ISO27001_2013", true), 0);
	assert_int_equal(assay_catalog_count(c, "NOPE", true), 0);

	/* natural order within a range */
	assert_string_equal(assay_catalog_at(c, "ISO27001_2022", true, 0)->id, "A.5.2");
	assert_string_equal(assay_catalog_at(c, "ISO27001_2022", true, 1)->id, "A.5.10");
	assert_string_equal(assay_catalog_at(c, "ISO27001_2022", true, 2)->id, "A.8.15");
	assert_null(assay_catalog_at(c, "ISO27001_2022", true, 3));
	assert_string_equal(assay_catalog_at(c, "ISO27001_2022", false, 0)->id, "4.1");
	assert_string_equal(assay_catalog_at(c, "ISO27001_2022", false, 1)->id, "9.3");
	assert_string_equal(assay_catalog_at(c, "ISO27001_2022", false, 2)->id, "9.3.1");
	assert_string_equal(assay_catalog_at(c, "ISO27001_2022", false, 3)->id, "10.1");

	/* dense index */
	assert_int_equal(assay_catalog_size(c), 9);
	for (size_t i = 0; i < assay_catalog_size(c); i++)
		assert_int_equal(assay_catalog_index(c, assay_catalog_get(c, i)), i);
	assert_int_equal(assay_catalog_index(c, &ctls[0]), SIZE_MAX);
	assert_int_equal(assay_catalog_standard_count(c), 3);
	assay_catalog_destroy(c);
	assay_catalog_destroy(NULL);
}

static void test_ref_parse(void **state)
{
	struct assay_catalog *c = make();
	const char *std;
	char id[16], err[256];

	(void)state;
	assert_int_equal(assay_control_ref_parse(c, "ISO27001:A.8.15", &std, id, sizeof(id), err,
	                                         sizeof(err)),
	                 0);
	assert_string_equal(std, "ISO27001_2022"); /* current edition, not 2013 */
	assert_ptr_equal(std, assay_catalog_standard(c, "ISO27001_2022"));
	assert_string_equal(id, "A.8.15");
	assert_int_equal(assay_control_ref_parse(c, "ISO42001:6.1.4", &std, id, sizeof(id), err,
	                                         sizeof(err)),
	                 0);
	assert_string_equal(std, "ISO42001_2023");
	assert_string_equal(id, "6.1.4");
	/* an edition symbol names that edition */
	assert_int_equal(assay_control_ref_parse(c, "ISO27001_2013:A.12.4.1", &std, id, sizeof(id),
	                                         err, sizeof(err)),
	                 0);
	assert_string_equal(std, "ISO27001_2013");

	static const char *const bad[] = {"ISO27001",     "ISO27001:",     ":A.8.15",
	                                  "ISO9001:4.1",  "iso27001:4.1",  "ISO27001:A.",
	                                  "ISO27001:A8",  "ISO27001:4..1", "ISO27001:4.1.",
	                                  "ISO27001:B.1", "ISO27001:4.1 "};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(
		        assay_control_ref_parse(c, bad[i], &std, id, sizeof(id), err, sizeof(err)),
		        ASSAY_ERR_REJECT);
		assert_null(std);
		assert_true(strlen(err) > 0);
	}
	assert_int_equal(
	        assay_control_ref_parse(c, "ISO9001:4.1", &std, id, sizeof(id), err, sizeof(err)),
	        ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "unknown standard ISO9001"));
	/* id buffer too small */
	assert_int_equal(
	        assay_control_ref_parse(c, "ISO42001:A.6.2.8", &std, id, 6, err, sizeof(err)),
	        ASSAY_ERR_REJECT);
	assay_catalog_destroy(c);
}

static void test_edition_validity(void **state)
{
	struct assay_catalog *c = make();
	int64_t last_2013 = (int64_t)DAY_2025_10_31 * MS_PER_DAY + MS_PER_DAY - 1;

	(void)state;
	/* 27001:2013 refused after 2025-10-31 (domain-rules R1.28) */
	assert_true(assay_catalog_edition_valid(c, "ISO27001_2013", last_2013));
	assert_false(assay_catalog_edition_valid(c, "ISO27001_2013", last_2013 + 1));
	assert_false(assay_catalog_edition_valid(c, "ISO27001_2013",
	                                         (int64_t)DAY_2013_10_01 * MS_PER_DAY - 1));
	assert_true(assay_catalog_edition_valid(c, "ISO27001_2022", last_2013 + 1));
	assert_false(assay_catalog_edition_valid(c, "ISO27001_2022",
	                                         (int64_t)DAY_2022_10_25 * MS_PER_DAY - 1));
	assert_true(assay_catalog_edition_valid(c, "ISO42001_2023", INT64_C(4102444800000)));
	assert_false(assay_catalog_edition_valid(c, "ISO9001_2015", last_2013));
	assert_false(assay_catalog_edition_valid(c, "ISO27001_2022", -1)); /* 1969 */
	assay_catalog_destroy(c);
}

static void test_refuses_bad_data(void **state)
{
	struct assay_catalog *c = (struct assay_catalog *)1;
	char err[256];

	(void)state;
	const struct assay_control dup[] = {{"ISO27001_2022", "4.1", "Context", "", false},
	                                    {"ISO27001_2022", "4.1", "Context again", "", false}};
	assert_int_equal(assay_catalog_new(stds, 3, dup, 2, &c, err, sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_null(c);
	assert_non_null(strstr(err, "listed twice"));

	const struct assay_control orphan[] = {{"ISO9001_2015", "4.1", "Context", "", false}};
	assert_int_equal(assay_catalog_new(stds, 3, orphan, 1, &c, err, sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "unknown standard ISO9001_2015"));

	const struct assay_control wrong_kind[] = {
	        {"ISO27001_2022", "A.5.1", "Policies", "", false}};
	assert_int_equal(assay_catalog_new(stds, 3, wrong_kind, 1, &c, err, sizeof(err)),
	                 ASSAY_ERR_REJECT);

	const struct assay_standard_def twice[] = {stds[0], stds[0]};
	assert_int_equal(assay_catalog_new(twice, 2, NULL, 0, &c, err, sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_id_order),         cmocka_unit_test(test_find_count_at),
	        cmocka_unit_test(test_ref_parse),        cmocka_unit_test(test_edition_validity),
	        cmocka_unit_test(test_refuses_bad_data),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
