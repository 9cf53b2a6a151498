/*
 * The shared audit projection (services/domain/assay_audit_projection.h), without Kafka or
 * PostgreSQL: every audit event kind (from strings, and from frames through the generated
 * contracts), the batch mechanism (a batch is visible at once; commit keeps it; rollback
 * restores exactly the state before it), the queries, and the hooks that attach a consumer's
 * handles to standards and excluded controls.
 */
#include "assay_audit_projection.h"
#include "assay_err.h"
#include "assay_registry.h"
#include "assay_test.h"
#include "assay_test_evidence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};

static int open2(struct assay_audits *p, const char *id, const char *client, size_t n)
{
	return assay_audits_open(p, id, "cb-1", client, 1000, both, n);
}

static int soa(struct assay_audits *p, const char *id, const char *std, int32_t rev,
               const char *const *ids, const bool *app, size_t n)
{
	return assay_audits_soa(p, id, "cb-1", "cl-1", std, rev, ids, app, n);
}

static void test_open_is_visible_in_the_batch_and_kept_on_commit(void **state)
{
	struct assay_audits *p = assay_audits_new(NULL);
	const struct assay_audit *au;

	(void)state;
	assert_non_null(p);
	assay_audits_begin(p);
	assert_null(assay_audits_find(p, "au-1", 4));
	assert_int_equal(open2(p, "au-1", "cl-1", 2), 0);
	au = assay_audits_find(p, "au-1", 4);
	assert_non_null(au);
	assert_string_equal(au->tenant_id, "cb-1");
	assert_string_equal(au->client_id, "cl-1");
	assert_int_equal(au->nstandards, 2);
	assert_int_equal(au->opened_at, 1000);
	assert_true(assay_audit_in_scope(au, "ISO42001_2023"));
	assert_false(assay_audit_in_scope(au, "ISO27001_2013"));
	assert_false(au->closed);
	assert_int_equal(assay_audits_changed_count(p), 1);
	assert_ptr_equal(assay_audits_changed(p, 0), au);
	assert_int_equal(assay_audits_count(p), 0);
	/* ids are compared whole: a prefix is another audit */
	assert_null(assay_audits_find(p, "au-10", 5));
	assert_null(assay_audits_find(p, "au-", 3));
	assay_audits_commit(p);
	assert_int_equal(assay_audits_changed_count(p), 0);
	assert_int_equal(assay_audits_count(p), 1);
	assert_non_null(assay_audits_find(p, "au-1", 4));
	/* empty id, too many standards */
	assert_int_equal(assay_audits_open(p, "", "cb", "cl", 0, both, 2), ASSAY_ERR_REJECT);
	{
		const char *five[] = {"A", "B", "C", "D", "E"};

		assert_int_equal(assay_audits_open(p, "au-5", "cb", "cl", 0, five, 5),
		                 ASSAY_ERR_REJECT);
	}
	assay_audits_destroy(p);
}

/* Every field of two audits compared. */
static void assert_same_audit(const struct assay_audit *a, const struct assay_audit *b)
{
	assert_string_equal(a->audit_id, b->audit_id);
	assert_string_equal(a->tenant_id, b->tenant_id);
	assert_string_equal(a->client_id, b->client_id);
	assert_int_equal(a->opened, b->opened);
	assert_int_equal(a->nstandards, b->nstandards);
	assert_int_equal(a->closed, b->closed);
	for (size_t s = 0; s < a->nstandards; s++) {
		assert_string_equal(a->standards[s], b->standards[s]);
		assert_int_equal(a->completed[s], b->completed[s]);
		assert_int_equal(a->soa[s] == NULL, b->soa[s] == NULL);
		if (a->soa[s] == NULL)
			continue;
		assert_int_equal(a->soa[s]->revision, b->soa[s]->revision);
		assert_int_equal(a->soa[s]->n, b->soa[s]->n);
		for (size_t k = 0; k < a->soa[s]->n; k++) {
			assert_string_equal(a->soa[s]->ids[k], b->soa[s]->ids[k]);
			assert_int_equal(a->soa[s]->applicable[k], b->soa[s]->applicable[k]);
		}
	}
}

static void test_rollback_restores_exactly_and_commit_keeps(void **state)
{
	struct assay_audits *p = assay_audits_new(NULL), *ref = assay_audits_new(NULL);
	const char *ids[] = {"A.5.1", "A.8.15"};
	const bool app[] = {false, true}, app2[] = {true, true};
	const struct assay_audit *au;

	(void)state;
	/* the same committed state in p and ref */
	for (int k = 0; k < 2; k++) {
		struct assay_audits *x = k ? ref : p;

		assert_int_equal(open2(x, "au-1", "cl-1", 2), 0);
		assert_int_equal(soa(x, "au-1", "ISO27001_2022", 1, ids, app, 2), 0);
		assert_int_equal(assay_audits_complete(x, "au-1", both, 1), 0);
		assay_audits_commit(x);
	}
	/* a batch touching every kind, then rollback */
	assay_audits_begin(p);
	assert_int_equal(soa(p, "au-1", "ISO27001_2022", 2, ids, app2, 2), 0);
	assert_int_equal(assay_audits_complete(p, "au-1", both, 2), 0);
	assert_int_equal(open2(p, "au-2", "cl-2", 1), 0);
	assert_int_equal(assay_audits_open(p, "au-1", "cb-9", "cl-9", 5, both, 1), 0);
	assert_int_equal(soa(p, "au-3", "ISO42001_2023", 1, ids, app, 2), 0);
	au = assay_audits_get(p, "au-1", 4);
	assert_string_equal(au->tenant_id, "cb-9");
	assert_null(au->soa[0]); /* another owner: replaced */
	assert_int_equal(assay_audits_changed_count(p), 3);
	assay_audits_rollback(p);
	assert_same_audit(assay_audits_get(p, "au-1", 4), assay_audits_get(ref, "au-1", 4));
	assert_null(assay_audits_get(p, "au-2", 4));
	assert_null(assay_audits_get(p, "au-3", 4));
	assert_int_equal(assay_audits_changed_count(p), 0);
	assert_int_equal(assay_audits_count(p), 1);
	/* the same batch again, committed: kept */
	assay_audits_begin(p);
	assert_int_equal(soa(p, "au-1", "ISO27001_2022", 2, ids, app2, 2), 0);
	assert_int_equal(assay_audits_complete(p, "au-1", both, 2), 0);
	assay_audits_commit(p);
	au = assay_audits_find(p, "au-1", 4);
	assert_true(au->closed);
	assert_int_equal(assay_audit_applicable(au, "ISO27001_2022", "A.5.1"), 1);
	/* begin drops a batch that ended in neither */
	assert_int_equal(open2(p, "au-7", "cl-7", 2), 0);
	assay_audits_begin(p);
	assert_null(assay_audits_get(p, "au-7", 4));
	assay_audits_destroy(p);
	assay_audits_destroy(ref);
}

static void test_soa_sorted_latest_revision_wins(void **state)
{
	struct assay_audits *p = assay_audits_new(NULL);
	const char *ids[] = {"A.8.2", "A.5.1", "A.8.15", "A.8.2"};
	const bool app[] = {false, false, true, true};
	const bool app2[] = {false, true, true, false};
	const struct assay_audit *au;

	(void)state;
	assert_int_equal(open2(p, "au-1", "cl-1", 2), 0);
	assert_int_equal(soa(p, "au-1", "ISO27001_2022", 2, ids, app, 4), 0);
	assay_audits_commit(p);
	au = assay_audits_find(p, "au-1", 4);
	assert_int_equal(au->soa[0]->n, 3);
	assert_string_equal(au->soa[0]->ids[0], "A.5.1");
	assert_int_equal(assay_audit_soa_lookup(au->soa[0], "A.5.1"), 0);
	assert_int_equal(assay_audit_soa_lookup(au->soa[0], "A.8.2"), 1); /* last row wins */
	assert_int_equal(assay_audit_applicable(au, "ISO27001_2022", "A.9.9"), -1);
	assert_int_equal(assay_audit_applicable(au, "ISO42001_2023", "A.5.1"), -2);
	/* an older or equal revision is ignored, a newer one replaces */
	assert_int_equal(soa(p, "au-1", "ISO27001_2022", 2, ids, app2, 4), 1);
	assert_int_equal(soa(p, "au-1", "ISO27001_2022", 1, ids, app2, 4), 1);
	assert_int_equal(soa(p, "au-1", "ISO27001_2022", 3, ids, app2, 4), 0);
	au = assay_audits_find(p, "au-1", 4);
	assert_int_equal(assay_audit_soa_lookup(au->soa[0], "A.5.1"), 1);
	assert_int_equal(assay_audit_soa_lookup(au->soa[0], "A.8.2"), 0);
	/* a standard out of an opened audit's scope: ignored */
	assert_int_equal(soa(p, "au-1", "ISO27001_2013", 1, ids, app, 3), 1);
	assay_audits_destroy(p);
}

static void test_soa_before_the_audit_is_kept_for_it(void **state)
{
	struct assay_audits *p = assay_audits_new(NULL);
	const char *ids[] = {"A.5.1"};
	const bool app[] = {false};
	const struct assay_audit *au;

	(void)state;
	assert_int_equal(soa(p, "au-9", "ISO42001_2023", 1, ids, app, 1), 0);
	assert_null(assay_audits_find(p, "au-9", 4)); /* not opened */
	au = assay_audits_get(p, "au-9", 4);
	assert_non_null(au);
	assert_false(au->opened);
	assert_int_equal(assay_audits_complete(p, "au-9", both, 2), 1); /* not opened: ignored */
	assert_int_equal(open2(p, "au-9", "cl-1", 2), 0);
	au = assay_audits_find(p, "au-9", 4);
	assert_non_null(au);
	assert_int_equal(assay_audit_applicable(au, "ISO42001_2023", "A.5.1"), 0);
	assert_int_equal(assay_audit_applicable(au, "ISO27001_2022", "A.5.1"), -2);
	assay_audits_destroy(p);
}

static void test_closed_when_every_standard_completed(void **state)
{
	struct assay_audits *p = assay_audits_new(NULL);
	const struct assay_audit *au;

	(void)state;
	assert_int_equal(open2(p, "au-1", "cl-1", 2), 0);
	assert_int_equal(assay_audits_complete(p, "au-1", both, 1), 0);
	au = assay_audits_find(p, "au-1", 4);
	assert_false(au->closed);
	assert_true(assay_audit_stage_completed(au, "ISO27001_2022"));
	assert_false(assay_audit_stage_completed(au, "ISO42001_2023"));
	assert_int_equal(assay_audits_complete(p, "au-1", both, 1), 1); /* nothing new */
	assert_int_equal(assay_audits_complete(p, "au-1", both + 1, 1), 0);
	assert_true(assay_audits_find(p, "au-1", 4)->closed);
	assert_int_equal(assay_audits_complete(p, "au-9", both, 2), 1);
	assay_audits_commit(p);
	/* a replayed AuditOpened keeps completion and SoAs */
	assert_int_equal(open2(p, "au-1", "cl-1", 2), 0);
	assert_true(assay_audits_find(p, "au-1", 4)->closed);
	assay_audits_commit(p);
	assert_true(assay_audits_find(p, "au-1", 4)->closed);
	assay_audits_destroy(p);
}

/* hooks: a standard's handle is its symbol's first letter; an excluded control's is its id's
 * pointer in a table (unknown ids have none) */
static const char *const known_controls[] = {"A.5.1", "A.8.2"};

static const void *std_hook(void *ctx, const char *symbol)
{
	(void)ctx;
	return strcmp(symbol, "ISO27001_2013") == 0 ? NULL : symbol + 3;
}

static const void *ctl_hook(void *ctx, const void *standard, const char *id)
{
	(void)ctx;
	for (size_t i = 0; standard != NULL && i < 2; i++)
		if (strcmp(known_controls[i], id) == 0)
			return &known_controls[i];
	return NULL;
}

static void test_hooks_attach_handles(void **state)
{
	const struct assay_audits_hooks hooks = {std_hook, ctl_hook, NULL};
	struct assay_audits *p = assay_audits_new(&hooks);
	const char *three[] = {"ISO27001_2022", "ISO27001_2013", "ISO42001_2023"};
	const char *ids[] = {"A.8.2", "A.5.1", "A.7.7", "A.6.6"};
	const bool app[] = {false, false, false, true};
	const struct assay_audit *au;

	(void)state;
	assert_int_equal(assay_audits_open(p, "au-1", "cb", "cl", 0, three, 3), 0);
	assert_int_equal(soa(p, "au-1", "ISO27001_2022", 1, ids, app, 4), 0);
	assay_audits_commit(p);
	au = assay_audits_find(p, "au-1", 4);
	assert_non_null(au->standard_ref[0]);
	assert_null(au->standard_ref[1]);
	assert_int_equal(au->soa[0]->nexcluded, 2); /* A.7.7 has no handle, A.6.6 applies */
	assert_ptr_equal(au->soa[0]->excluded[0], &known_controls[0]);
	assert_ptr_equal(au->soa[0]->excluded[1], &known_controls[1]);
	assay_audits_destroy(p);
}

static void test_frames_through_the_contracts(void **state)
{
	char errstr[256] = "";
	struct assay_registry *reg = assay_registry_memory_new(errstr, sizeof(errstr));
	struct assay_codec *codec = assay_codec_new(reg, 1 << 20, errstr, sizeof(errstr));
	struct assay_contracts *cx;
	struct assay_audits *p = assay_audits_new(NULL);
	struct assay_arena arena;
	const char *ids[] = {"A.5.1", "A.8.15"};
	const bool app[] = {false, true};
	enum assay_audit_event kind;
	void *buf;
	size_t len;

	(void)state;
	assert_non_null(codec);
	assert_int_equal(assay_codec_register_embedded(codec, errstr, sizeof(errstr)), 0);
	cx = assay_contracts_new(codec, errstr, sizeof(errstr));
	assert_non_null(cx);
	assay_arena_init(&arena);

	assay_test_audit_opened_encode(codec, "cb-1", "au-1", "cl-1", both, 2, &buf, &len);
	assert_int_equal(
	        assay_audits_apply_frame(p, cx, &arena, buf, len, &kind, errstr, sizeof(errstr)),
	        0);
	assert_int_equal(kind, ASSAY_AUDIT_EV_OPENED);
	free(buf);
	assay_test_soa_encode(codec, "cb-1", "au-1", "cl-1", "ISO27001_2022", 1, ids, app, 2, &buf,
	                      &len);
	assert_int_equal(
	        assay_audits_apply_frame(p, cx, &arena, buf, len, &kind, errstr, sizeof(errstr)),
	        0);
	assert_int_equal(kind, ASSAY_AUDIT_EV_SOA);
	free(buf);
	assay_test_stage_completed_encode(codec, "cb-1", "au-1", "cl-1", both, 2, &buf, &len);
	assert_int_equal(
	        assay_audits_apply_frame(p, cx, &arena, buf, len, &kind, errstr, sizeof(errstr)),
	        0);
	assert_int_equal(kind, ASSAY_AUDIT_EV_STAGE);
	free(buf);
	/* a frame that is not an audit event the projection reads */
	{
		struct assay_test_evidence_spec s;
		char sha[65];

		assay_test_evidence_spec_init(&s, "cb-1", "au-1", "cl-1", "ev-1", sha);
		assay_test_evidence_encode(codec, &s, &buf, &len);
		assert_int_equal(assay_audits_apply_frame(p, cx, &arena, buf, len, &kind, errstr,
		                                          sizeof(errstr)),
		                 1);
		assert_int_equal(kind, ASSAY_AUDIT_EV_OTHER);
		free(buf);
	}
	/* garbage */
	assert_int_equal(
	        assay_audits_apply_frame(p, cx, &arena, "xx", 2, &kind, errstr, sizeof(errstr)),
	        ASSAY_ERR_REJECT);
	assay_audits_commit(p);
	{
		const struct assay_audit *au = assay_audits_find(p, "au-1", 4);

		assert_non_null(au);
		assert_true(au->closed);
		assert_int_equal(assay_audit_applicable(au, "ISO27001_2022", "A.5.1"), 0);
	}
	assay_arena_release(&arena);
	assay_audits_destroy(p);
	assay_contracts_destroy(cx);
	assay_codec_destroy(codec);
	assay_registry_destroy(reg);
}

static void test_many_audits(void **state)
{
	struct assay_audits *p = assay_audits_new(NULL);

	(void)state;
	for (int i = 0; i < 5000; i++) {
		char id[32];

		snprintf(id, sizeof(id), "audit-%d", i);
		assert_int_equal(open2(p, id, "cl", 2), 0);
		if (i % 1000 == 999)
			assay_audits_commit(p);
	}
	assay_audits_commit(p);
	assert_int_equal(assay_audits_count(p), 5000);
	assert_non_null(assay_audits_find(p, "audit-4321", 10));
	assay_audits_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_open_is_visible_in_the_batch_and_kept_on_commit),
	        cmocka_unit_test(test_rollback_restores_exactly_and_commit_keeps),
	        cmocka_unit_test(test_soa_sorted_latest_revision_wins),
	        cmocka_unit_test(test_soa_before_the_audit_is_kept_for_it),
	        cmocka_unit_test(test_closed_when_every_standard_completed),
	        cmocka_unit_test(test_hooks_attach_handles),
	        cmocka_unit_test(test_frames_through_the_contracts),
	        cmocka_unit_test(test_many_audits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
