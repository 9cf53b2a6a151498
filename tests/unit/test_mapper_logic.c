/*
 * assay-mapper's pure parts, on Avro values built from the embedded schemas (no Kafka, no
 * PostgreSQL): reading EvidenceAccepted, the shared audit projection with the mapper's hooks
 * (AuditOpened scope, SoA revisions and exclusions, a rolled-back batch leaving the committed
 * audit whole) and the links an evidence item gets for an audit.
 */
#include "assay_test.h"
#include "assay_codec.h"
#include "assay_embed.h"
#include "mapper.h"

#include <stdlib.h>
#include <string.h>

static const struct assay_standard_def stds[] = {
        {"ISO27001_2013", "ISO27001", 2013, 15979, true, 20392},
        {"ISO27001_2022", "ISO27001", 2022, 19290, false, 0},
        {"ISO42001_2023", "ISO42001", 2023, 19709, false, 0},
};

static const struct assay_control ctls[] = {
        {"ISO27001_2022", "9.3.1", "Management review", "", false},
        {"ISO27001_2022", "A.5.19", "Suppliers", "A.5 Organizational controls", true},
        {"ISO27001_2022", "A.8.15", "Logging", "A.8 Technological controls", true},
        {"ISO42001_2023", "9.3.1", "Management review", "", false},
        {"ISO42001_2023", "A.6.2.8", "Event logs", "A.6 Life cycle", true},
        {"ISO42001_2023", "A.10.3", "Suppliers", "A.10 Third parties", true},
};

static const struct assay_crosswalk_row rows[] = {
        {"ISO27001:9.3.1", "ISO42001:9.3.1", "equivalent-to", "high", "same", "test", 0},
        {"ISO27001:A.8.15", "ISO42001:A.6.2.8", "intersects-with", "high", "logs", "test", 0},
        {"ISO27001:A.5.19", "ISO42001:A.10.3", "intersects-with", "high", "suppliers", "test", 0},
};

struct fixture {
	struct assay_catalog *cat;
	struct assay_crosswalk *cw;
	avro_value_iface_t *ifaces[2];
	avro_schema_t schemas[2];
};

enum { EVIDENCE, OPENED, NSCHEMAS };
static const char *const files[] = {"evidence_accepted.avsc", "audit_opened.avsc"};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[1024];

	assert_int_equal(assay_catalog_new(stds, 3, ctls, 6, &f->cat, err, sizeof(err)), 0);
	if (assay_crosswalk_new(f->cat, rows, 3, &f->cw, NULL, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	for (int i = 0; i < NSCHEMAS; i++) {
		const struct assay_embedded *e =
		        assay_embedded_find(assay_embedded_schemas, files[i]);

		assert_non_null(e);
		assert_int_equal(avro_schema_from_json_length(e->data, e->size, &f->schemas[i]), 0);
		f->ifaces[i] = avro_generic_class_from_schema(f->schemas[i]);
		assert_non_null(f->ifaces[i]);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < NSCHEMAS; i++) {
		avro_value_iface_decref(f->ifaces[i]);
		avro_schema_decref(f->schemas[i]);
	}
	assay_crosswalk_destroy(f->cw);
	assay_catalog_destroy(f->cat);
	free(f);
	return 0;
}

static void value_new(struct fixture *f, int which, avro_value_t *v)
{
	assert_int_equal(avro_generic_value_new(f->ifaces[which], v), 0);
}

static void add_claim(avro_value_t *ev, const char *standard, const char *id)
{
	avro_value_t arr, elem;

	assert_int_equal(assay_value_field(ev, "claimed_controls", AVRO_ARRAY, &arr), 0);
	assert_int_equal(avro_value_append(&arr, &elem, NULL), 0);
	assert_int_equal(assay_value_set_enum(&elem, "standard", standard), 0);
	assert_int_equal(assay_value_set_string(&elem, "control_id", id), 0);
}

static void evidence_value(struct fixture *f, avro_value_t *v)
{
	value_new(f, EVIDENCE, v);
	assert_int_equal(assay_value_set_string(v, "event_id", "ev-1"), 0);
	assert_int_equal(assay_value_set_string(v, "tenant_id", "cb-1"), 0);
	assert_int_equal(assay_value_set_string(v, "audit_id", "audit-1"), 0);
	assert_int_equal(assay_value_set_string(v, "client_id", "client-1"), 0);
	assert_int_equal(assay_value_set_string(v, "evidence_id", "e-1"), 0);
	assert_int_equal(assay_value_set_string(v, "source_system", "siem"), 0);
	assert_int_equal(assay_value_set_enum(v, "kind", "LOG_SAMPLE"), 0);
	assert_int_equal(assay_value_set_long(v, "collected_at", 1700000000000), 0);
}

static void opened_value(struct fixture *f, avro_value_t *v, const char *audit,
                         const char *const *standards, size_t n)
{
	avro_value_t arr, elem;

	value_new(f, OPENED, v);
	assert_int_equal(assay_value_set_string(v, "tenant_id", "cb-1"), 0);
	assert_int_equal(assay_value_set_string(v, "audit_id", audit), 0);
	assert_int_equal(assay_value_set_string(v, "client_id", "client-1"), 0);
	assert_int_equal(assay_value_set_long(v, "occurred_at", 1700000000000), 0);
	assert_int_equal(assay_value_field(v, "standards", AVRO_ARRAY, &arr), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(avro_value_append(&arr, &elem, NULL), 0);
		assert_int_equal(assay_value_set_enum(&elem, "standard", standards[i]), 0);
		assert_int_equal(assay_value_set_string(&elem, "scope_statement", "all"), 0);
	}
}

static void test_evidence_read(void **state)
{
	struct fixture *f = *state;
	struct mapper_evidence ev;
	avro_value_t v;
	char err[256];

	evidence_value(f, &v);
	add_claim(&v, "ISO27001_2022", "A.8.15");
	add_claim(&v, "ISO27001_2022", "A.99.1");   /* unknown: ignored */
	add_claim(&v, "ISO27001_2022", "A.8.15");   /* repeated: ignored */
	add_claim(&v, "ISO27001_2013", "A.12.4.1"); /* no controls: ignored */
	add_claim(&v, "ISO42001_2023", "9.3.1");
	assert_int_equal(mapper_evidence_read(&v, f->cat, &ev, err, sizeof(err)), 0);
	assert_string_equal(ev.accepted_event_id, "ev-1");
	assert_string_equal(ev.audit_id, "audit-1");
	assert_string_equal(ev.kind, "LOG_SAMPLE");
	assert_int_equal(ev.collected_at, 1700000000000);
	assert_int_equal(ev.nclaimed, 2);
	assert_ptr_equal(ev.claimed[0], assay_catalog_find(f->cat, "ISO27001_2022", "A.8.15"));
	assert_ptr_equal(ev.claimed[1], assay_catalog_find(f->cat, "ISO42001_2023", "9.3.1"));
	assert_int_equal(ev.nignored, 3);
	avro_value_decref(&v);

	/* an AuditOpened is not evidence */
	opened_value(f, &v, "audit-1", NULL, 0);
	assert_int_equal(mapper_evidence_read(&v, f->cat, &ev, err, sizeof(err)), ASSAY_ERR_REJECT);
	assert_non_null(strstr(err, "evidence accepted"));
	avro_value_decref(&v);
}

/* A projection with the mapper's hooks over f's catalog. */
static struct assay_audits *projection(struct fixture *f)
{
	struct assay_audits_hooks hooks;
	struct assay_audits *p;

	mapper_audit_hooks(f->cat, &hooks);
	p = assay_audits_new(&hooks);
	assert_non_null(p);
	return p;
}

/* A SoA of audit-1 excluding excl[0..nexcl) and applying included. */
static int soa(struct assay_audits *p, const char *standard, int revision,
               const char *const *excluded, size_t nexcl, const char *included)
{
	const char *ids[8];
	bool app[8];

	for (size_t i = 0; i <= nexcl; i++) {
		ids[i] = i < nexcl ? excluded[i] : included;
		app[i] = i == nexcl;
	}
	return assay_audits_soa(p, "audit-1", "cb-1", "client-1", standard, revision, ids, app,
	                        nexcl + 1);
}

static void test_audit_opened_and_soa(void **state)
{
	struct fixture *f = *state;
	struct assay_audits *p = projection(f);
	const struct assay_audit *a;
	const struct assay_audit_soa *s;
	const char *const scope[] = {"ISO27001_2013", "ISO27001_2022", "ISO42001_2023",
	                             "ISO27001_2022"};
	const char *const excl1[] = {"A.10.3", "A.77.1"}, *const excl2[] = {"A.6.2.8"};
	const char *syms[ASSAY_AUDIT_MAX_STANDARDS];
	const struct assay_control *excluded[8];
	struct assay_map_scope sc;

	/* a SoA may come before the audit is opened */
	assay_audits_begin(p);
	assert_int_equal(soa(p, "ISO42001_2023", 1, excl1, 2, "A.6.2.8"), 0);
	a = assay_audits_get(p, "audit-1", 7);
	assert_non_null(a);
	assert_false(a->opened);
	s = a->soa[assay_audit_standard(a, "ISO42001_2023")];
	assert_int_equal(s->nexcluded, 1); /* A.77.1 is not a control */
	assert_ptr_equal(s->excluded[0], assay_catalog_find(f->cat, "ISO42001_2023", "A.10.3"));

	assert_int_equal(
	        assay_audits_open(p, "audit-1", "cb-1", "client-1", 1700000000000, scope, 4), 0);
	a = assay_audits_find(p, "audit-1", 7);
	assert_non_null(a);
	assert_true(a->opened);
	assert_string_equal(a->tenant_id, "cb-1");
	mapper_audit_scope(a, &sc, syms, excluded, 8);
	assert_int_equal(sc.nstandards, 2); /* 2013 has no controls; repeats collapse */
	assert_string_equal(sc.standards[0], "ISO27001_2022");
	assert_string_equal(sc.standards[1], "ISO42001_2023");
	assert_int_equal(sc.nexcluded, 1); /* the early SoA is kept */
	assay_audits_commit(p);

	/* same revision again: nothing changes; newer revision replaces */
	assay_audits_begin(p);
	assert_int_equal(soa(p, "ISO42001_2023", 1, excl2, 1, "A.10.3"), 1);
	a = assay_audits_find(p, "audit-1", 7);
	s = a->soa[assay_audit_standard(a, "ISO42001_2023")];
	assert_string_equal(((const struct assay_control *)s->excluded[0])->id, "A.10.3");
	assert_int_equal(soa(p, "ISO42001_2023", 2, excl2, 1, "A.10.3"), 0);
	a = assay_audits_find(p, "audit-1", 7);
	s = a->soa[assay_audit_standard(a, "ISO42001_2023")];
	assert_int_equal(s->revision, 2);
	assert_string_equal(((const struct assay_control *)s->excluded[0])->id, "A.6.2.8");

	/* the batch changed a deep copy: rolled back, the committed audit is whole */
	assay_audits_rollback(p);
	a = assay_audits_find(p, "audit-1", 7);
	s = a->soa[assay_audit_standard(a, "ISO42001_2023")];
	assert_string_equal(((const struct assay_control *)s->excluded[0])->id, "A.10.3");
	assert_int_equal(s->revision, 1);
	assay_audits_destroy(p);
}

static void test_links_for_audit(void **state)
{
	struct fixture *f = *state;
	struct assay_audits *p = projection(f);
	const struct assay_audit *a;
	struct mapper_evidence ev;
	struct assay_link links[16];
	const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};
	const char *const excl[] = {"A.10.3"};
	avro_value_t v;
	size_t n;
	char err[256];

	assert_int_equal(
	        assay_audits_open(p, "audit-1", "cb-1", "client-1", 1700000000000, both, 2), 0);
	assert_int_equal(soa(p, "ISO42001_2023", 1, excl, 1, "A.6.2.8"), 0);
	a = assay_audits_find(p, "audit-1", 7);
	assert_non_null(a);

	evidence_value(f, &v);
	add_claim(&v, "ISO27001_2022", "9.3.1");
	add_claim(&v, "ISO27001_2022", "A.8.15");
	add_claim(&v, "ISO27001_2022", "A.5.19");
	assert_int_equal(mapper_evidence_read(&v, f->cat, &ev, err, sizeof(err)), 0);
	assert_int_equal(mapper_links(f->cw, a, &ev, links, 16, &n), 0);
	avro_value_decref(&v);

	/* 3 direct; 42001 9.3.1 automatic; A.6.2.8 needs confirmation; A.10.3 excluded */
	assert_int_equal(n, 5);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(links[i].kind, ASSAY_LINK_DIRECT);
		assert_string_equal(links[i].control->standard, "ISO27001_2022");
	}
	assert_int_equal(links[3].kind, ASSAY_LINK_AUTOMATIC);
	assert_string_equal(links[3].control->id, "9.3.1");
	assert_string_equal(links[3].control->standard, "ISO42001_2023");
	assert_int_equal(links[4].kind, ASSAY_LINK_NEEDS_CONFIRMATION);
	assert_string_equal(links[4].control->id, "A.6.2.8");
	assert_string_equal(links[4].via->id, "A.8.15");
	assay_audits_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_evidence_read, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_audit_opened_and_soa, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_links_for_audit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
