/*
 * Intake's audit projection (services/intake/intake_audits.h): AuditOpened, SoaSubmitted and
 * StageCompleted change an overlay that lookups see at once; commit keeps it, rollback drops it
 * (a batch handled again sees the state before it); closure once every standard completed.
 */
#include "assay_test.h"
#include "intake_audits.h"

#include <stdio.h>
#include <string.h>

static const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};

static void test_open_is_visible_in_the_batch_and_kept_on_commit(void **state)
{
	struct intake_audits *a = intake_audits_new();
	const struct intake_audit *au;

	(void)state;
	assert_non_null(a);
	assert_null(intake_audits_find(a, "au-1", 4));
	assert_int_equal(intake_audits_open(a, "au-1", "cb-1", "cl-1", both, 2), 0);
	au = intake_audits_find(a, "au-1", 4);
	assert_non_null(au);
	assert_string_equal(au->tenant_id, "cb-1");
	assert_string_equal(au->client_id, "cl-1");
	assert_int_equal(au->nstandards, 2);
	assert_false(au->closed);
	assert_int_equal(intake_audits_changed_count(a), 1);
	assert_int_equal(intake_audits_count(a), 0);
	/* ids are compared whole: a prefix is another audit */
	assert_null(intake_audits_find(a, "au-10", 5));
	assert_null(intake_audits_find(a, "au-", 3));
	intake_audits_commit(a);
	assert_int_equal(intake_audits_changed_count(a), 0);
	assert_int_equal(intake_audits_count(a), 1);
	assert_non_null(intake_audits_find(a, "au-1", 4));
	intake_audits_destroy(a);
}

static void test_rollback_restores_the_state_before_the_batch(void **state)
{
	struct intake_audits *a = intake_audits_new();
	const char *ids[] = {"A.5.1", "A.8.15"};
	const bool app[] = {false, true};
	const struct intake_audit *au;

	(void)state;
	assert_int_equal(intake_audits_open(a, "au-1", "cb-1", "cl-1", both, 2), 0);
	intake_audits_commit(a);
	/* a batch: SoA, completion of both standards, a new audit, then rollback */
	assert_int_equal(intake_audits_soa(a, "au-1", "ISO27001_2022", 1, ids, app, 2), 0);
	assert_int_equal(intake_audits_complete(a, "au-1", both, 2), 0);
	assert_int_equal(intake_audits_open(a, "au-2", "cb-1", "cl-2", both, 1), 0);
	au = intake_audits_find(a, "au-1", 4);
	assert_true(au->closed);
	assert_non_null(au->soa[0]);
	intake_audits_rollback(a);
	au = intake_audits_find(a, "au-1", 4);
	assert_non_null(au);
	assert_false(au->closed);
	assert_null(au->soa[0]);
	assert_null(intake_audits_find(a, "au-2", 4));
	assert_int_equal(intake_audits_changed_count(a), 0);
	intake_audits_destroy(a);
}

static void test_soa_sorted_latest_revision_wins(void **state)
{
	struct intake_audits *a = intake_audits_new();
	const char *ids[] = {"A.8.2", "A.5.1", "A.8.15"};
	const bool app[] = {true, false, true};
	const bool app2[] = {false, true, true};
	const struct intake_audit *au;

	(void)state;
	assert_int_equal(intake_audits_open(a, "au-1", "cb-1", "cl-1", both, 2), 0);
	assert_int_equal(intake_audits_soa(a, "au-1", "ISO27001_2022", 2, ids, app, 3), 0);
	intake_audits_commit(a);
	au = intake_audits_find(a, "au-1", 4);
	assert_string_equal(au->soa[0]->ids[0], "A.5.1");
	assert_int_equal(intake_soa_lookup(au->soa[0], "A.5.1"), 0);
	assert_int_equal(intake_soa_lookup(au->soa[0], "A.8.2"), 1);
	/* an older or equal revision is ignored, a newer one replaces */
	assert_int_equal(intake_audits_soa(a, "au-1", "ISO27001_2022", 2, ids, app2, 3), 1);
	assert_int_equal(intake_audits_soa(a, "au-1", "ISO27001_2022", 1, ids, app2, 3), 1);
	assert_int_equal(intake_audits_soa(a, "au-1", "ISO27001_2022", 3, ids, app2, 3), 0);
	au = intake_audits_find(a, "au-1", 4);
	assert_int_equal(intake_soa_lookup(au->soa[0], "A.5.1"), 1);
	assert_int_equal(intake_soa_lookup(au->soa[0], "A.8.2"), 0);
	/* unknown audit or a standard out of scope: ignored */
	assert_int_equal(intake_audits_soa(a, "au-9", "ISO27001_2022", 1, ids, app, 3), 1);
	assert_int_equal(intake_audits_soa(a, "au-1", "ISO27001_2013", 1, ids, app, 3), 1);
	intake_audits_destroy(a);
}

static void test_closed_when_every_standard_completed(void **state)
{
	struct intake_audits *a = intake_audits_new();
	const struct intake_audit *au;

	(void)state;
	assert_int_equal(intake_audits_open(a, "au-1", "cb-1", "cl-1", both, 2), 0);
	assert_int_equal(intake_audits_complete(a, "au-1", both, 1), 0);
	au = intake_audits_find(a, "au-1", 4);
	assert_false(au->closed);
	assert_int_equal(intake_audits_complete(a, "au-1", both, 1), 1); /* nothing new */
	assert_int_equal(intake_audits_complete(a, "au-1", both + 1, 1), 0);
	au = intake_audits_find(a, "au-1", 4);
	assert_true(au->closed);
	assert_int_equal(intake_audits_complete(a, "au-9", both, 2), 1);
	intake_audits_commit(a);
	/* a replayed AuditOpened keeps completion and SoAs */
	assert_int_equal(intake_audits_open(a, "au-1", "cb-1", "cl-1", both, 2), 0);
	assert_true(intake_audits_find(a, "au-1", 4)->closed);
	intake_audits_commit(a);
	assert_true(intake_audits_find(a, "au-1", 4)->closed);
	/* too many standards */
	{
		const char *five[] = {"A", "B", "C", "D", "E"};

		assert_int_equal(intake_audits_open(a, "au-5", "cb", "cl", five, 5), -2);
	}
	intake_audits_destroy(a);
}

static void test_many_audits(void **state)
{
	struct intake_audits *a = intake_audits_new();

	(void)state;
	for (int i = 0; i < 5000; i++) {
		char id[32];

		snprintf(id, sizeof(id), "audit-%d", i);
		assert_int_equal(intake_audits_open(a, id, "cb", "cl", both, 2), 0);
		if (i % 1000 == 999)
			intake_audits_commit(a);
	}
	intake_audits_commit(a);
	assert_int_equal(intake_audits_count(a), 5000);
	assert_non_null(intake_audits_find(a, "audit-4321", 10));
	intake_audits_destroy(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_open_is_visible_in_the_batch_and_kept_on_commit),
	        cmocka_unit_test(test_rollback_restores_the_state_before_the_batch),
	        cmocka_unit_test(test_soa_sorted_latest_revision_wins),
	        cmocka_unit_test(test_closed_when_every_standard_completed),
	        cmocka_unit_test(test_many_audits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
