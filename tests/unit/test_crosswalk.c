/*
 * The crosswalk: CSV loading, the refusal of a bad file with every problem listed, the
 * mapping decision (direct, automatic and needs-confirmation links; scope; SoA exclusions;
 * one link per control, the best one), and the OSCAL mapping-collection export, whose
 * structure is checked by parsing it (python3's json module, interoperability only).
 */
#include "assay_test.h"
#include "assay_crosswalk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct assay_standard_def stds[] = {
        {"ISO27001_2013", "ISO27001", 2013, 15979, true, 20392},
        {"ISO27001_2022", "ISO27001", 2022, 19290, false, 0},
        {"ISO42001_2023", "ISO42001", 2023, 19709, false, 0},
};

static const struct assay_control ctls[] = {
        {"ISO27001_2022", "4.1", "Context", "", false},
        {"ISO27001_2022", "9.3", "Management review", "", false},
        {"ISO27001_2022", "5.2", "Policy", "", false},
        {"ISO27001_2022", "A.5.19", "Suppliers", "A.5 Organizational controls", true},
        {"ISO27001_2022", "A.5.20", "Supplier agreements", "A.5 Organizational controls", true},
        {"ISO27001_2022", "A.5.34", "PII", "A.5 Organizational controls", true},
        {"ISO27001_2022", "A.8.15", "Logging", "A.8 Technological controls", true},
        {"ISO42001_2023", "4.1", "Context", "", false},
        {"ISO42001_2023", "9.3", "Management review", "", false},
        {"ISO42001_2023", "5.2", "AI policy", "", false},
        {"ISO42001_2023", "6.1.4", "AI system impact assessment", "", false},
        {"ISO42001_2023", "A.5.4", "Impact on individuals", "A.5 Impacts", true},
        {"ISO42001_2023", "A.6.2.8", "Event logs", "A.6 Life cycle", true},
        {"ISO42001_2023", "A.10.3", "Suppliers", "A.10 Third parties", true},
};

static const char good_csv[] =
        "source,target,relation,strength,rationale\r\n"
        "ISO27001:9.3,ISO42001:9.3,equivalent-to,high,\"same text, other system\"\r\n"
        "ISO27001:4.1,ISO42001:4.1,equivalent-to,medium,AI roles added\r\n"
        "ISO27001:5.2,ISO42001:5.2,equal-to,high,\"identical \"\"policy\"\" text\"\r\n"
        "\r\n"
        "ISO27001:A.8.15,ISO42001:A.6.2.8,intersects-with,high,event logs\r\n"
        "ISO27001:A.5.19,ISO42001:A.10.3,intersects-with,high,suppliers\r\n"
        "ISO27001:A.5.20,ISO42001:A.10.3,intersects-with,medium,agreements\r\n"
        "ISO27001:A.5.34,ISO42001:A.5.4,subset-of,low,privacy is part of impact\r\n"
        "ISO42001:A.5.4,ISO27001:A.5.34,superset-of,low,listed both ways\r\n";

struct fixture {
	struct assay_catalog *cat;
	struct assay_crosswalk *cw;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[1024];
	size_t np = 99;

	assert_int_equal(assay_catalog_new(stds, 3, ctls, sizeof(ctls) / sizeof(ctls[0]), &f->cat,
	                                   err, sizeof(err)),
	                 0);
	if (assay_crosswalk_parse_csv(f->cat, good_csv, strlen(good_csv), "unit test", &f->cw, &np,
	                              err, sizeof(err)) != 0)
		fail_msg("good csv refused: %s", err);
	assert_int_equal(np, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assay_crosswalk_destroy(f->cw);
	assay_catalog_destroy(f->cat);
	free(f);
	return 0;
}

static const struct assay_control *ctl(struct fixture *f, const char *std, const char *id)
{
	const struct assay_control *c = assay_catalog_find(f->cat, std, id);

	assert_non_null(c);
	return c;
}

static void test_good_csv_loaded(void **state)
{
	struct fixture *f = *state;
	const struct assay_crosswalk_edge *e;

	assert_int_equal(assay_crosswalk_count(f->cw), 8);
	e = assay_crosswalk_edge_at(f->cw, 0);
	assert_ptr_equal(e->source, ctl(f, "ISO27001_2022", "9.3"));
	assert_ptr_equal(e->target, ctl(f, "ISO42001_2023", "9.3"));
	assert_int_equal(e->relation, ASSAY_REL_EQUIVALENT_TO);
	assert_int_equal(e->strength, ASSAY_STRENGTH_HIGH);
	assert_string_equal(e->rationale, "same text, other system");
	assert_string_equal(e->provenance, "unit test");
	assert_string_equal(assay_crosswalk_edge_at(f->cw, 2)->rationale,
	                    "identical \"policy\" text");
	assert_null(assay_crosswalk_edge_at(f->cw, 8));
}

static void test_bad_file_lists_every_problem(void **state)
{
	struct fixture *f = *state;
	struct assay_crosswalk *cw = (struct assay_crosswalk *)1;
	char err[8192];
	size_t np = 0;
	static const char bad[] =
	        "source,target,relation,strength,rationale,provenance\n"
	        "ISO27001:A.99.1,ISO42001:9.3,equivalent-to,high,r,p\n"      /* 2 unknown end */
	        "ISO9001:4.1,ISO42001:4.1,equivalent-to,high,r,p\n"          /* 3 unknown family */
	        "ISO27001:9.3,ISO42001:9.3,same-as,high,r,p\n"               /* 4 relation */
	        "ISO27001:4.1,ISO42001:4.1,equivalent-to,strong,r,p\n"       /* 5 strength */
	        "ISO27001:A.5.19,ISO42001:A.10.3,intersects-with,high,r,p\n" /* 6 ok */
	        "ISO27001:A.5.19,ISO42001:A.10.3,equivalent-to,high,r,p\n"   /* 7 dup, other rel */
	        "ISO27001:A.5.34,ISO42001:A.5.4,subset-of,low,r,p\n"         /* 8 ok */
	        "ISO42001:A.5.4,ISO27001:A.5.34,subset-of,low,r,p\n"         /* 9 inverse wrong */
	        "ISO27001:A.8.15,ISO27001:A.5.19,intersects-with,low,r,p\n"  /* 10 same standard */
	        "ISO27001:5.2,ISO42001:5.2,equal-to,high,,p\n"               /* 11 no rationale */
	        "ISO27001:5.2,ISO42001:5.2\n"                                /* 12 field count */
	        "ISO27001:A.5.20,ISO42001:A.10.3,intersects-with,high,r,p\n" /* 13 ok */
	        "ISO42001:A.10.3,ISO27001:A.5.20,intersects-with,medium,r,p\n" /* 14 inverse str */
	        "ISO27001:A.8.15,ISO42001:A.6.2.8,intersects-with,high,r,p\n"  /* 15 ok */
	        "ISO27001:A.8.15,ISO42001:A.6.2.8,intersects-with,high,r,p\n"; /* 16 exact dup */

	assert_int_equal(assay_crosswalk_parse_csv(f->cat, bad, strlen(bad), "x", &cw, &np, err,
	                                           sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_null(cw);
	static const char *const expected[] = {
	        "line 2: unknown source ISO27001:A.99.1",
	        "line 3: unknown source ISO9001:4.1",
	        "line 4: unknown relation same-as",
	        "line 5: unknown strength strong",
	        "line 7: ISO27001_2022:A.5.19 -> ISO42001_2023:A.10.3 listed again with a "
	        "different "
	        "relation (equivalent-to here, intersects-with on line 6)",
	        "line 9: inverse edges disagree",
	        "line 10: both ends in ISO27001_2022",
	        "line 11: empty rationale",
	        "line 12: 2 fields, the header has 6",
	        "line 14: inverse edges disagree: ISO42001_2023:A.10.3 -> ISO27001_2022:A.5.20 is "
	        "medium, line 13",
	        "line 16: ISO27001_2022:A.8.15 -> ISO42001_2023:A.6.2.8 listed twice (also line "
	        "15)",
	};
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		if (strstr(err, expected[i]) == NULL)
			fail_msg("missing \"%s\" in: %s", expected[i],
			         (fprintf(stderr, "%s\n", err), ""));
	assert_int_equal(np, sizeof(expected) / sizeof(expected[0]));
	assert_non_null(strstr(err, "crosswalk refused, 11 problems: "));
}

static void test_malformed_csv(void **state)
{
	struct fixture *f = *state;
	struct assay_crosswalk *cw = NULL;
	char err[1024];
	size_t np;
	static const char unterminated[] =
	        "source,target,relation,strength,rationale\n"
	        "ISO27001:9.3,ISO42001:9.3,equivalent-to,high,\"never closed\n";
	static const char no_column[] = "source,target,relation,rationale,colour\n";

	assert_int_equal(assay_crosswalk_parse_csv(f->cat, unterminated, strlen(unterminated), "x",
	                                           &cw, &np, err, sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "line 2: unterminated quoted field"));
	assert_int_equal(assay_crosswalk_parse_csv(f->cat, no_column, strlen(no_column), "x", &cw,
	                                           &np, err, sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "unknown column colour"));
	assert_non_null(strstr(err, "missing column strength"));
	assert_int_equal(np, 2);
	assert_int_equal(assay_crosswalk_parse_csv(f->cat, "", 0, "x", &cw, &np, err, sizeof(err)),
	                 ASSAY_ERR_REJECT);
	assert_null(cw);
}

static void test_link_kind_rule(void **state)
{
	(void)state;
	for (int r = ASSAY_REL_EQUIVALENT_TO; r <= ASSAY_REL_INTERSECTS_WITH; r++)
		for (int s = ASSAY_STRENGTH_HIGH; s <= ASSAY_STRENGTH_LOW; s++) {
			bool automatic = s == ASSAY_STRENGTH_HIGH &&
			                 (r == ASSAY_REL_EQUIVALENT_TO || r == ASSAY_REL_EQUAL_TO);

			assert_int_equal(assay_crosswalk_link_kind((enum assay_relation)r,
			                                           (enum assay_strength)s),
			                 automatic ? ASSAY_LINK_AUTOMATIC
			                           : ASSAY_LINK_NEEDS_CONFIRMATION);
		}
	assert_int_equal(assay_relation_inverse(ASSAY_REL_SUBSET_OF), ASSAY_REL_SUPERSET_OF);
	assert_int_equal(assay_relation_inverse(ASSAY_REL_SUPERSET_OF), ASSAY_REL_SUBSET_OF);
	assert_int_equal(assay_relation_inverse(ASSAY_REL_INTERSECTS_WITH),
	                 ASSAY_REL_INTERSECTS_WITH);
	enum assay_relation r;
	assert_int_equal(assay_relation_parse("EQUAL_TO", &r), 0);
	assert_int_equal(r, ASSAY_REL_EQUAL_TO);
	assert_int_equal(assay_relation_parse("equal", &r), ASSAY_ERR_REJECT);
}

/* maps claims under scope; returns the number of links */
static size_t map(struct fixture *f, const struct assay_control *const *claims, size_t n,
                  const char *const *standards, size_t nstd,
                  const struct assay_control *const *excl, size_t nexcl, struct assay_link *out)
{
	struct assay_map_scope scope = {standards, nstd, excl, nexcl};
	size_t nout = 0;

	assert_true(assay_crosswalk_links_bound(f->cw, n) <= 32);
	assert_int_equal(assay_crosswalk_map(f->cw, claims, n, &scope, out, 32, &nout), 0);
	return nout;
}

static const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};

static void test_map_direct_and_automatic(void **state)
{
	struct fixture *f = *state;
	struct assay_link out[32];
	const struct assay_control *claims[] = {ctl(f, "ISO27001_2022", "9.3")};

	assert_int_equal(map(f, claims, 1, both, 2, NULL, 0, out), 2);
	assert_int_equal(out[0].kind, ASSAY_LINK_DIRECT);
	assert_ptr_equal(out[0].control, claims[0]);
	assert_null(out[0].via);
	assert_int_equal(out[1].kind, ASSAY_LINK_AUTOMATIC);
	assert_ptr_equal(out[1].control, ctl(f, "ISO42001_2023", "9.3"));
	assert_ptr_equal(out[1].via, claims[0]);
	assert_int_equal(out[1].relation, ASSAY_REL_EQUIVALENT_TO);

	/* equal-to high is automatic too; equivalent-to medium is not */
	claims[0] = ctl(f, "ISO27001_2022", "5.2");
	assert_int_equal(map(f, claims, 1, both, 2, NULL, 0, out), 2);
	assert_int_equal(out[1].kind, ASSAY_LINK_AUTOMATIC);
	assert_int_equal(out[1].relation, ASSAY_REL_EQUAL_TO);
	claims[0] = ctl(f, "ISO27001_2022", "4.1");
	assert_int_equal(map(f, claims, 1, both, 2, NULL, 0, out), 2);
	assert_int_equal(out[1].kind, ASSAY_LINK_NEEDS_CONFIRMATION);
	assert_int_equal(out[1].strength, ASSAY_STRENGTH_MEDIUM);

	/* intersects-with, even high, needs confirmation */
	claims[0] = ctl(f, "ISO27001_2022", "A.8.15");
	assert_int_equal(map(f, claims, 1, both, 2, NULL, 0, out), 2);
	assert_ptr_equal(out[1].control, ctl(f, "ISO42001_2023", "A.6.2.8"));
	assert_int_equal(out[1].kind, ASSAY_LINK_NEEDS_CONFIRMATION);
	assert_int_equal(out[1].relation, ASSAY_REL_INTERSECTS_WITH);
	assert_int_equal(out[1].strength, ASSAY_STRENGTH_HIGH);
}

static void test_map_scope_and_exclusions(void **state)
{
	struct fixture *f = *state;
	struct assay_link out[32];
	const struct assay_control *claims[] = {ctl(f, "ISO27001_2022", "9.3")};
	const char *const only27[] = {"ISO27001_2022"};

	/* the other standard is not in scope: only the direct link */
	assert_int_equal(map(f, claims, 1, only27, 1, NULL, 0, out), 1);
	assert_int_equal(out[0].kind, ASSAY_LINK_DIRECT);

	/* a target excluded in its SoA gets no link */
	const struct assay_control *excl[] = {ctl(f, "ISO42001_2023", "A.10.3")};
	claims[0] = ctl(f, "ISO27001_2022", "A.5.19");
	assert_int_equal(map(f, claims, 1, both, 2, NULL, 0, out), 2);
	assert_int_equal(map(f, claims, 1, both, 2, excl, 1, out), 1);
	assert_ptr_equal(out[0].control, claims[0]);

	/* a claimed control excluded in its own SoA gets no direct link, but its edges still
	 * lead to the other standard */
	const struct assay_control *own[] = {claims[0]};
	assert_int_equal(map(f, claims, 1, both, 2, own, 1, out), 1);
	assert_ptr_equal(out[0].control, ctl(f, "ISO42001_2023", "A.10.3"));
	assert_int_equal(out[0].kind, ASSAY_LINK_NEEDS_CONFIRMATION);

	/* a 42001-only requirement has no counterpart in 27001 (domain-rules R4.4) */
	claims[0] = ctl(f, "ISO42001_2023", "6.1.4");
	assert_int_equal(map(f, claims, 1, both, 2, NULL, 0, out), 1);
	assert_int_equal(out[0].kind, ASSAY_LINK_DIRECT);

	/* NULL claims are skipped; nothing in scope: nothing */
	const struct assay_control *none[] = {NULL};
	assert_int_equal(map(f, none, 1, both, 2, NULL, 0, out), 0);
	claims[0] = ctl(f, "ISO27001_2022", "9.3");
	assert_int_equal(map(f, claims, 1, NULL, 0, NULL, 0, out), 0);
}

static void test_map_reverse_and_best(void **state)
{
	struct fixture *f = *state;
	struct assay_link out[32];

	/* read from the 42001 side, subset-of becomes superset-of */
	const struct assay_control *rev[] = {ctl(f, "ISO42001_2023", "A.5.4")};
	assert_int_equal(map(f, rev, 1, both, 2, NULL, 0, out), 2);
	assert_ptr_equal(out[1].control, ctl(f, "ISO27001_2022", "A.5.34"));
	assert_int_equal(out[1].relation, ASSAY_REL_SUPERSET_OF);
	assert_int_equal(out[1].kind, ASSAY_LINK_NEEDS_CONFIRMATION);

	/* two claims reach A.10.3: one link, along the stronger edge */
	const struct assay_control *two[] = {ctl(f, "ISO27001_2022", "A.5.20"),
	                                     ctl(f, "ISO27001_2022", "A.5.19")};
	assert_int_equal(map(f, two, 2, both, 2, NULL, 0, out), 3);
	assert_int_equal(out[0].kind, ASSAY_LINK_DIRECT);
	assert_int_equal(out[1].kind, ASSAY_LINK_DIRECT);
	assert_ptr_equal(out[0].control, two[1]); /* catalog order: A.5.19 first */
	assert_ptr_equal(out[2].control, ctl(f, "ISO42001_2023", "A.10.3"));
	assert_ptr_equal(out[2].via, two[1]);
	assert_int_equal(out[2].strength, ASSAY_STRENGTH_HIGH);

	/* claimed directly in both standards: DIRECT beats AUTOMATIC */
	const struct assay_control *pair[] = {ctl(f, "ISO42001_2023", "9.3"),
	                                      ctl(f, "ISO27001_2022", "9.3")};
	assert_int_equal(map(f, pair, 2, both, 2, NULL, 0, out), 2);
	assert_int_equal(out[0].kind, ASSAY_LINK_DIRECT);
	assert_int_equal(out[1].kind, ASSAY_LINK_DIRECT);

	/* the same claim twice: one link */
	const struct assay_control *twice[] = {pair[1], pair[1]};
	assert_int_equal(map(f, twice, 2, both, 2, NULL, 0, out), 2);

	/* no room: fatal, not an overflow */
	struct assay_map_scope scope = {both, 2, NULL, 0};
	size_t n;
	assert_int_equal(assay_crosswalk_map(f->cw, pair, 1, &scope, out, 1, &n), ASSAY_ERR_FATAL);
}

static void test_oscal_export_structure(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/assay_oscal_XXXXXX", cmd[4096], err[256];
	int fd = mkstemp(path);
	FILE *out;

	assert_true(fd >= 0);
	out = fdopen(fd, "w");
	assert_non_null(out);
	assert_int_equal(
	        assay_crosswalk_write_oscal(f->cw, out, INT64_C(1767225600000), err, sizeof(err)),
	        0);
	fclose(out);
	snprintf(
	        cmd, sizeof(cmd),
	        "python3 -c '\n"
	        "import json, re, sys\n"
	        "d = json.load(open(sys.argv[1]))\n"
	        "m = d[\"mapping-collection\"]\n"
	        "assert set(m) >= {\"uuid\", \"metadata\", \"provenance\", \"mappings\"}, "
	        "m.keys()\n"
	        "assert m[\"metadata\"][\"last-modified\"] == \"2026-01-01T00:00:00Z\"\n"
	        "assert m[\"provenance\"][\"method\"] == \"human\"\n"
	        "u = "
	        "re.compile(\"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$\")\n"
	        "tok = re.compile(\"^[A-Za-z_][A-Za-z0-9_.-]*$\")\n"
	        "maps = [x for mp in m[\"mappings\"] for x in mp[\"maps\"]]\n"
	        "assert len(m[\"mappings\"]) == 2, len(m[\"mappings\"])\n"
	        "assert len(maps) == 8, len(maps)\n"
	        "ids = set()\n"
	        "for mp in m[\"mappings\"]:\n"
	        "    assert mp[\"source-resource\"][\"type\"] == \"catalog\"\n"
	        "    assert mp[\"source-resource\"][\"href\"] != "
	        "mp[\"target-resource\"][\"href\"]\n"
	        "for x in maps:\n"
	        "    assert u.match(x[\"uuid\"]) and x[\"uuid\"] not in ids; ids.add(x[\"uuid\"])\n"
	        "    assert x[\"relationship\"] in (\"equivalent-to\", \"equal-to\", "
	        "\"subset-of\", "
	        "\"superset-of\", \"intersects-with\")\n"
	        "    for e in x[\"sources\"] + x[\"targets\"]:\n"
	        "        assert e[\"type\"] == \"control\" and tok.match(e[\"id-ref\"]), e\n"
	        "    p = {q[\"name\"]: q[\"value\"] for q in x[\"props\"]}\n"
	        "    assert p[\"strength\"] in (\"high\", \"medium\", \"low\") and "
	        "p[\"provenance\"]\n"
	        "    assert x[\"remarks\"]\n"
	        "q = [x for x in maps if x[\"remarks\"] == \"identical \\\"policy\\\" text\"]\n"
	        "assert len(q) == 1 and q[0][\"relationship\"] == \"equal-to\"\n"
	        "assert q[0][\"sources\"][0][\"id-ref\"] == \"clause-5.2\"\n"
	        "' %s",
	        path);
	int rc = system(cmd);
	unlink(path);
	assert_int_equal(rc, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_good_csv_loaded, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_file_lists_every_problem, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_malformed_csv, setup, teardown),
	        cmocka_unit_test(test_link_kind_rule),
	        cmocka_unit_test_setup_teardown(test_map_direct_and_automatic, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_map_scope_and_exclusions, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_map_reverse_and_best, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_oscal_export_structure, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
