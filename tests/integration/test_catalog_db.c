/*
 * The catalog and crosswalk data of sql/002_catalog.sql, loaded from a freshly migrated
 * database: the counts and id ranges of both standards (93 and 38 Annex A controls, clauses
 * 4-10), the editions and their validity windows, the crosswalk passing its own validation
 * with no automatic edge outside the harmonized structure, the table constraints, the
 * loader refusing broken table content, and the coverage function on an unknown audit.
 */
#include "assay_test.h"
#include "assay_test_pg.h"
#include "assay_catalog.h"
#include "assay_coverage.h"
#include "assay_crosswalk.h"
#include "assay_embed.h"
#include "assay_migrate.h"
#include "assay_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
	char url[512];
	PGconn *conn;
	struct assay_catalog *cat;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[1024];

	assay_test_pg_fresh_db(f->url, sizeof(f->url), "test_catalog_db");
	if (assay_pg_connect(f->url, &f->conn, err, sizeof(err)) ||
	    assay_migrate(f->conn, assay_embedded_migrations, err, sizeof(err)) ||
	    assay_catalog_load(f->conn, &f->cat, err, sizeof(err)))
		fail_msg("%s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assay_catalog_destroy(f->cat);
	PQfinish(f->conn);
	assay_test_pg_drop_db(f->url);
	free(f);
	return 0;
}

/* every id "<prefix><k>" for k in 1..last exists as an Annex A control of standard */
static void assert_range(const struct assay_catalog *c, const char *standard, const char *prefix,
                         int first, int last)
{
	char id[32];

	for (int k = first; k <= last; k++) {
		snprintf(id, sizeof(id), "%s%d", prefix, k);
		if (assay_catalog_find(c, standard, id) == NULL)
			fail_msg("%s %s missing", standard, id);
	}
	snprintf(id, sizeof(id), "%s%d", prefix, last + 1);
	assert_null(assay_catalog_find(c, standard, id));
}

static void test_counts_and_ranges(void **state)
{
	struct fixture *f = *state;
	const struct assay_control *k;

	/* domain-rules R4.3: 93 controls, A.5 37, A.6 8, A.7 14, A.8 34 */
	assert_int_equal(assay_catalog_count(f->cat, "ISO27001_2022", true), 93);
	assert_range(f->cat, "ISO27001_2022", "A.5.", 1, 37);
	assert_range(f->cat, "ISO27001_2022", "A.6.", 1, 8);
	assert_range(f->cat, "ISO27001_2022", "A.7.", 1, 14);
	assert_range(f->cat, "ISO27001_2022", "A.8.", 1, 34);
	/* R4.2: 38 controls under 9 objectives A.2-A.10 */
	assert_int_equal(assay_catalog_count(f->cat, "ISO42001_2023", true), 38);
	assert_range(f->cat, "ISO42001_2023", "A.2.", 2, 4);
	assert_range(f->cat, "ISO42001_2023", "A.3.", 2, 3);
	assert_range(f->cat, "ISO42001_2023", "A.4.", 2, 6);
	assert_range(f->cat, "ISO42001_2023", "A.5.", 2, 5);
	assert_range(f->cat, "ISO42001_2023", "A.6.1.", 2, 3);
	assert_range(f->cat, "ISO42001_2023", "A.6.2.", 2, 8);
	assert_range(f->cat, "ISO42001_2023", "A.7.", 2, 6);
	assert_range(f->cat, "ISO42001_2023", "A.8.", 2, 5);
	assert_range(f->cat, "ISO42001_2023", "A.9.", 2, 4);
	assert_range(f->cat, "ISO42001_2023", "A.10.", 2, 4);
	/* clauses 4-10 */
	assert_int_equal(assay_catalog_count(f->cat, "ISO27001_2022", false), 30);
	assert_int_equal(assay_catalog_count(f->cat, "ISO42001_2023", false), 32);
	assert_string_equal(assay_catalog_at(f->cat, "ISO27001_2022", false, 0)->id, "4.1");
	assert_string_equal(assay_catalog_at(f->cat, "ISO27001_2022", false, 29)->id, "10.2");
	assert_non_null(assay_catalog_find(f->cat, "ISO42001_2023", "6.1.4"));
	assert_non_null(assay_catalog_find(f->cat, "ISO42001_2023", "8.4"));
	assert_null(assay_catalog_find(f->cat, "ISO27001_2022", "6.1.4"));
	/* every Annex A control has a theme, no clause has one */
	for (size_t i = 0; i < assay_catalog_size(f->cat); i++) {
		k = assay_catalog_get(f->cat, i);
		assert_true(k->annex_a == (k->theme[0] != '\0'));
		assert_true(k->title[0] != '\0');
	}
	k = assay_catalog_find(f->cat, "ISO27001_2022", "A.5.22");
	assert_string_equal(k->title,
	                    "Monitoring, review and change management of supplier services");
	assert_string_equal(k->theme, "A.5 Organizational controls");
	k = assay_catalog_find(f->cat, "ISO27001_2022", "A.8.1");
	assert_string_equal(k->title, "User endpoint devices");
	/* the withdrawn edition has no controls */
	assert_int_equal(assay_catalog_count(f->cat, "ISO27001_2013", true), 0);
	assert_int_equal(assay_catalog_count(f->cat, "ISO27001_2013", false), 0);
}

static void test_editions(void **state)
{
	struct fixture *f = *state;
	int64_t oct31 = INT64_C(1761955199999); /* 2025-10-31T23:59:59.999Z */
	const char *std;
	char id[16], err[256];

	assert_true(assay_catalog_edition_valid(f->cat, "ISO27001_2013", oct31));
	assert_false(assay_catalog_edition_valid(f->cat, "ISO27001_2013", oct31 + 1));
	assert_true(assay_catalog_edition_valid(f->cat, "ISO27001_2022", oct31 + 1));
	assert_true(assay_catalog_edition_valid(f->cat, "ISO42001_2023", oct31 + 1));
	assert_false(assay_catalog_edition_valid(f->cat, "ISO42001_2023", INT64_C(1700000000000)));
	assert_int_equal(assay_control_ref_parse(f->cat, "ISO27001:A.8.15", &std, id, sizeof(id),
	                                         err, sizeof(err)),
	                 0);
	assert_string_equal(std, "ISO27001_2022");
	assert_int_equal(assay_control_ref_parse(f->cat, "ISO42001:6.1.4", &std, id, sizeof(id),
	                                         err, sizeof(err)),
	                 0);
	assert_string_equal(std, "ISO42001_2023");
}

static bool is_42001_only(const struct assay_control *k)
{
	return strcmp(k->standard, "ISO42001_2023") == 0 &&
	       (strcmp(k->id, "6.1.4") == 0 || strcmp(k->id, "8.4") == 0 ||
	        strncmp(k->id, "A.5.", 4) == 0);
}

static void test_crosswalk_data(void **state)
{
	struct fixture *f = *state;
	struct assay_crosswalk *cw = NULL;
	char err[8192];
	size_t automatic = 0;

	if (assay_crosswalk_load(f->conn, f->cat, &cw, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_true(assay_crosswalk_count(cw) >= 70);
	for (size_t i = 0; i < assay_crosswalk_count(cw); i++) {
		const struct assay_crosswalk_edge *e = assay_crosswalk_edge_at(cw, i);
		enum assay_link_kind kind = assay_crosswalk_link_kind(e->relation, e->strength);

		assert_string_equal(e->source->standard, "ISO27001_2022");
		assert_string_equal(e->target->standard, "ISO42001_2023");
		assert_true(e->rationale[0] != '\0' && e->provenance[0] != '\0');
		/* domain-rules R4.4: 42001-only requirements are never auto-mapped */
		assert_false(is_42001_only(e->target) && kind == ASSAY_LINK_AUTOMATIC);
		if (kind == ASSAY_LINK_AUTOMATIC) {
			/* only harmonized-structure clauses share text, same number both sides */
			automatic++;
			assert_false(e->source->annex_a);
			assert_string_equal(e->source->id, e->target->id);
		}
	}
	assert_true(automatic >= 20);
	/* 4.1 and 6.1.1 carry AI-specific content in 42001: reviewed down from equivalent-to */
	for (size_t i = 0; i < assay_crosswalk_count(cw); i++) {
		const struct assay_crosswalk_edge *e = assay_crosswalk_edge_at(cw, i);

		if (!e->source->annex_a &&
		    (strcmp(e->source->id, "4.1") == 0 || strcmp(e->source->id, "6.1.1") == 0))
			assert_int_equal(e->relation, ASSAY_REL_INTERSECTS_WITH);
	}
	assay_crosswalk_destroy(cw);
}

static void test_constraints_and_loader_refusal(void **state)
{
	struct fixture *f = *state;
	struct assay_crosswalk *cw = NULL;
	char err[8192];

	/* the table refuses an unknown control and an unknown relation */
	assert_int_equal(
	        assay_pg_exec(f->conn,
	                      "INSERT INTO assay_crosswalk VALUES ('ISO27001_2022', 'A.9.1', "
	                      "'ISO42001_2023', '9.2.1', 'equal-to', 'high', 'r', 'p')",
	                      err, sizeof(err)),
	        ASSAY_ERR_REJECT);
	assert_int_equal(
	        assay_pg_exec(f->conn,
	                      "INSERT INTO assay_crosswalk VALUES ('ISO27001_2022', '9.1', "
	                      "'ISO42001_2023', '9.1', 'same-as', 'high', 'r', 'p')",
	                      err, sizeof(err)),
	        ASSAY_ERR_REJECT);
	/* what only the loader can see: inverse edges that disagree */
	assert_int_equal(
	        assay_pg_exec(f->conn,
	                      "INSERT INTO assay_crosswalk VALUES ('ISO42001_2023', '9.1', "
	                      "'ISO27001_2022', '9.1', 'subset-of', 'high', 'r', 'p');"
	                      "INSERT INTO assay_crosswalk VALUES ('ISO42001_2023', '7.2', "
	                      "'ISO27001_2022', '7.2', 'equivalent-to', 'low', 'r', 'p')",
	                      err, sizeof(err)),
	        0);
	assert_int_equal(assay_crosswalk_load(f->conn, f->cat, &cw, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_null(cw);
	assert_non_null(strstr(err, "crosswalk refused, 2 problems"));
	assert_non_null(strstr(err, "ISO42001_2023:9.1 -> ISO27001_2022:9.1 is subset-of"));
	assert_non_null(strstr(err, "ISO42001_2023:7.2 -> ISO27001_2022:7.2 is low"));
	assert_int_equal(assay_pg_exec(f->conn,
	                               "DELETE FROM assay_crosswalk WHERE source_standard = "
	                               "'ISO42001_2023'",
	                               err, sizeof(err)),
	                 0);
	assert_int_equal(assay_crosswalk_load(f->conn, f->cat, &cw, err, sizeof(err)), 0);
	assay_crosswalk_destroy(cw);
}

static void test_coverage_of_unknown_audit(void **state)
{
	struct fixture *f = *state;
	struct assay_coverage_row *rows = (struct assay_coverage_row *)1;
	size_t n = 99;
	char err[512];

	assert_int_equal(
	        assay_coverage_query(f->conn, "no-such-audit", NULL, &rows, &n, err, sizeof(err)),
	        0);
	assert_int_equal(n, 0);
	assert_null(rows);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_counts_and_ranges),
	        cmocka_unit_test(test_editions),
	        cmocka_unit_test(test_crosswalk_data),
	        cmocka_unit_test(test_constraints_and_loader_refusal),
	        cmocka_unit_test(test_coverage_of_unknown_audit),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
