/*
 * The intake rules (services/intake/intake_rules.h) without Kafka or PostgreSQL: one test per
 * rule and reason code, the order in which they apply, and the SoA / scope resolution of
 * claimed controls, over a small fake catalog.
 */
#include "assay_test.h"
#include "intake_rules.h"

#include <stdio.h>
#include <string.h>

#define NOW     1760000000000LL /* 2025-10-09 */
#define DAY_MS  86400000LL
#define HASH_OK "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct {
	const char *standard, *id;
	int annex_a;
} catalog[] = {
        {"ISO27001_2022", "A.5.1", 1}, {"ISO27001_2022", "A.8.15", 1},
        {"ISO27001_2022", "9.3", 0},   {"ISO42001_2023", "A.6.2.8", 1},
        {"ISO42001_2023", "6.1.4", 0}, {"ISO27001_2013", "A.12.4.1", 1},
};

static int fake_parse(void *ctx, const char *ref, const char **standard, char *id, size_t id_size,
                      char *errstr, size_t errstr_size)
{
	const char *colon = strchr(ref, ':');

	(void)ctx;
	if (colon == NULL || colon[1] == '\0') {
		snprintf(errstr, errstr_size, "malformed");
		return -2;
	}
	if (strncmp(ref, "ISO27001:", 9) == 0)
		*standard = "ISO27001_2022";
	else if (strncmp(ref, "ISO42001:", 9) == 0)
		*standard = "ISO42001_2023";
	else if (strncmp(ref, "ISO27001_2013:", 14) == 0)
		*standard = "ISO27001_2013";
	else if (strncmp(ref, "ISO27001_2022:", 14) == 0)
		*standard = "ISO27001_2022";
	else {
		snprintf(errstr, errstr_size, "unknown family");
		return -2;
	}
	snprintf(id, id_size, "%s", colon + 1);
	return 0;
}

static int fake_find(void *ctx, const char *standard, const char *id)
{
	(void)ctx;
	for (size_t i = 0; i < sizeof(catalog) / sizeof(catalog[0]); i++)
		if (strcmp(catalog[i].standard, standard) == 0 && strcmp(catalog[i].id, id) == 0)
			return catalog[i].annex_a;
	return -1;
}

static const struct intake_catalog cat = {fake_parse, fake_find, NULL};

static const struct intake_limits lim = {
        .future_tolerance_ms = 300000,
        .freshness_ms = 365 * DAY_MS,
        .max_size_bytes = 1000000,
        .max_attributes = 4,
        .max_string_bytes = 64,
        .max_controls = 8,
};

/* A test fixture: evidence and the audit it is for, both valid. */
struct fix {
	struct intake_evidence ev;
	struct intake_str controls[16];
	struct intake_attr attrs[8];
	struct assay_audit audit;
	struct assay_audit_soa soa27, soa42;
	char *soa27_ids[3];
	bool soa27_app[3];
	char *soa42_ids[1];
	bool soa42_app[1];
	struct intake_control resolved[16];
	bool bad[16];
	char msg[256];
};

static struct intake_str S(const char *s) {
	return (struct intake_str){s, strlen(s)};
}

static void
fix_init(struct fix *f)
{
	memset(f, 0, sizeof(*f));
	f->ev.event_id = S("9b2f0c1e-0000-4000-8000-000000000001");
	f->ev.tenant_id = S("cb-1");
	f->ev.audit_id = S("audit-1");
	f->ev.client_id = S("client-1");
	f->ev.evidence_id = S("ev-1");
	f->ev.source_system = S("scanner");
	f->ev.kind = S("CONFIGURATION_SCAN");
	f->ev.sha256 = S(HASH_OK);
	f->ev.uri = S("s3://bucket/ev-1");
	f->ev.collected_at_ms = NOW - DAY_MS;
	f->ev.size_bytes = 1234;
	f->controls[0] = S("ISO27001:A.8.15");
	f->controls[1] = S("ISO42001:6.1.4");
	f->ev.controls = f->controls;
	f->ev.ncontrols = 2;
	f->attrs[0] = (struct intake_attr){S("host"), S("db-1")};
	f->ev.attrs = f->attrs;
	f->ev.nattrs = 1;

	f->audit.audit_id = "audit-1";
	f->audit.tenant_id = "cb-1";
	f->audit.client_id = "client-1";
	f->audit.nstandards = 2;
	snprintf(f->audit.standards[0], INTAKE_STANDARD_LEN, "ISO27001_2022");
	snprintf(f->audit.standards[1], INTAKE_STANDARD_LEN, "ISO42001_2023");
	/* sorted by strcmp */
	f->soa27_ids[0] = "A.5.1";
	f->soa27_app[0] = false;
	f->soa27_ids[1] = "A.8.15";
	f->soa27_app[1] = true;
	f->soa27_ids[2] = "A.8.2";
	f->soa27_app[2] = true;
	f->soa27 = (struct assay_audit_soa){1, 3, f->soa27_ids, f->soa27_app, NULL, 0};
	f->soa42_ids[0] = "A.6.2.8";
	f->soa42_app[0] = true;
	f->soa42 = (struct assay_audit_soa){1, 1, f->soa42_ids, f->soa42_app, NULL, 0};
	f->audit.soa[0] = &f->soa27;
	f->audit.soa[1] = &f->soa42;
}

static enum intake_reason form(struct fix *f)
{
	return intake_check_form(&f->ev, &lim, NULL, f->msg, sizeof(f->msg));
}

static enum intake_reason rules(struct fix *f)
{
	return intake_check_rules(&f->ev, &f->audit, &cat, &lim, NOW, f->resolved, f->bad, f->msg,
	                          sizeof(f->msg));
}

static void test_valid_evidence_passes_and_resolves_controls(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	assert_int_equal(form(&f), INTAKE_OK);
	assert_int_equal(rules(&f), INTAKE_OK);
	assert_string_equal(f.resolved[0].standard, "ISO27001_2022");
	assert_string_equal(f.resolved[0].id, "A.8.15");
	assert_string_equal(f.resolved[1].standard, "ISO42001_2023");
	assert_string_equal(f.resolved[1].id, "6.1.4");
	assert_false(f.bad[0] || f.bad[1]);
}

static void test_reason_names_follow_the_schema(void **state)
{
	(void)state;
	assert_string_equal(intake_reason_name(INTAKE_UNKNOWN_AUDIT), "UNKNOWN_AUDIT");
	assert_string_equal(intake_reason_name(INTAKE_EXCLUDED_IN_SOA), "EXCLUDED_IN_SOA");
	assert_string_equal(intake_reason_name(INTAKE_HASH_CONFLICT), "HASH_CONFLICT");
	assert_string_equal(intake_reason_name(INTAKE_INVALID_UTF8), "INVALID_UTF8");
	assert_string_equal(intake_reason_name(INTAKE_OK), "OK");
	assert_string_equal(intake_reason_name(INTAKE_REASON_COUNT), "UNKNOWN");
}

static void test_bad_hash(void **state)
{
	static const char *const bad[] = {
	        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",  /* upper */
	        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",   /* 63 */
	        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", /* 65 */
	        "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",  /* not hex */
	        "",
	};
	struct fix f;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fix_init(&f);
		f.ev.sha256 = S(bad[i]);
		assert_int_equal(form(&f), INTAKE_BAD_HASH);
		assert_non_null(strstr(f.msg, "sha256"));
	}
}

static void test_future_dated_with_tolerance(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.ev.collected_at_ms = NOW + lim.future_tolerance_ms; /* at the edge: fine */
	assert_int_equal(rules(&f), INTAKE_OK);
	f.ev.collected_at_ms = NOW + lim.future_tolerance_ms + 1;
	assert_int_equal(rules(&f), INTAKE_FUTURE_DATED);
	assert_non_null(strstr(f.msg, "future"));
}

static void test_stale_outside_freshness_window(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.ev.collected_at_ms = NOW - lim.freshness_ms;
	assert_int_equal(rules(&f), INTAKE_OK);
	f.ev.collected_at_ms = NOW - lim.freshness_ms - 1;
	assert_int_equal(rules(&f), INTAKE_STALE);
}

static void test_unknown_audit(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	assert_int_equal(intake_check_rules(&f.ev, NULL, &cat, &lim, NOW, f.resolved, f.bad, f.msg,
	                                    sizeof(f.msg)),
	                 INTAKE_UNKNOWN_AUDIT);
	assert_non_null(strstr(f.msg, "audit-1"));
}

static void test_wrong_tenant_and_wrong_client(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.ev.tenant_id = S("cb-2");
	assert_int_equal(rules(&f), INTAKE_WRONG_TENANT);
	fix_init(&f);
	f.ev.client_id = S("client-2");
	assert_int_equal(rules(&f), INTAKE_WRONG_CLIENT);
	/* a prefix is not the same id */
	fix_init(&f);
	f.ev.client_id = S("client-");
	assert_int_equal(rules(&f), INTAKE_WRONG_CLIENT);
}

static void test_audit_closed(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.audit.closed = true;
	assert_int_equal(rules(&f), INTAKE_AUDIT_CLOSED);
}

static void test_no_controls(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.ev.ncontrols = 0;
	assert_int_equal(rules(&f), INTAKE_NO_CONTROLS);
}

static void test_unknown_control_flags_every_offender(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.controls[0] = S("ISO27001:A.99.1"); /* not in the catalog */
	f.controls[1] = S("ISO42001:6.1.4");  /* fine */
	f.controls[2] = S("NIST:AC-2");       /* unknown family */
	f.controls[3] = S("ISO27001");        /* malformed */
	f.ev.ncontrols = 4;
	assert_int_equal(rules(&f), INTAKE_UNKNOWN_CONTROL);
	assert_true(f.bad[0]);
	assert_false(f.bad[1]);
	assert_true(f.bad[2]);
	assert_true(f.bad[3]);
	assert_non_null(strstr(f.msg, "ISO27001:A.99.1"));
	assert_non_null(strstr(f.msg, "NIST:AC-2"));
}

static void test_out_of_scope(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.audit.nstandards = 1; /* 27001 only */
	assert_int_equal(rules(&f), INTAKE_OUT_OF_SCOPE);
	assert_false(f.bad[0]);
	assert_true(f.bad[1]);
	assert_non_null(strstr(f.msg, "ISO42001:6.1.4"));
}

static void test_family_ref_resolves_to_the_edition_in_scope(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	/* an audit of the 2013 edition: "ISO27001:" means that edition, which has A.12.4.1 */
	snprintf(f.audit.standards[0], INTAKE_STANDARD_LEN, "ISO27001_2013");
	f.audit.nstandards = 1;
	f.audit.soa[0] = NULL;
	f.controls[0] = S("ISO27001:9.3");
	f.ev.ncontrols = 1;
	assert_int_equal(rules(&f), INTAKE_UNKNOWN_CONTROL); /* no 9.3 in the fake 2013 */
	f.controls[0] = S("ISO27001:A.12.4.1");
	assert_int_equal(rules(&f), INTAKE_NO_SOA);
	/* an explicit edition is taken as written */
	f.controls[0] = S("ISO27001_2022:A.8.15");
	assert_int_equal(rules(&f), INTAKE_OUT_OF_SCOPE);
}

static void test_no_soa_only_for_annex_a(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.audit.soa[0] = NULL;
	f.controls[0] = S("ISO27001:9.3"); /* a clause: no SoA needed */
	assert_int_equal(rules(&f), INTAKE_OK);
	f.controls[0] = S("ISO27001:A.8.15");
	assert_int_equal(rules(&f), INTAKE_NO_SOA);
	assert_true(f.bad[0]);
	assert_false(f.bad[1]);
}

static void test_excluded_in_soa(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.controls[0] = S("ISO27001:A.5.1"); /* excluded */
	f.controls[1] = S("ISO42001:A.6.2.8");
	assert_int_equal(rules(&f), INTAKE_EXCLUDED_IN_SOA);
	assert_true(f.bad[0]);
	assert_false(f.bad[1]);
	assert_non_null(strstr(f.msg, "ISO27001:A.5.1"));
	/* a control the SoA does not list counts as excluded */
	fix_init(&f);
	f.soa27.n = 1; /* only A.5.1 */
	assert_int_equal(rules(&f), INTAKE_EXCLUDED_IN_SOA);
}

static void test_too_large_and_too_many_attributes(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	f.ev.size_bytes = lim.max_size_bytes;
	assert_int_equal(form(&f), INTAKE_OK);
	f.ev.size_bytes = lim.max_size_bytes + 1;
	assert_int_equal(form(&f), INTAKE_TOO_LARGE);
	f.ev.size_bytes = -1;
	assert_int_equal(form(&f), INTAKE_TOO_LARGE);
	fix_init(&f);
	f.ev.ncontrols = lim.max_controls + 1;
	for (size_t i = 0; i < f.ev.ncontrols; i++)
		f.controls[i] = S("ISO27001:A.8.15");
	assert_int_equal(form(&f), INTAKE_TOO_LARGE);
	fix_init(&f);
	for (size_t i = 0; i < 5; i++)
		f.attrs[i] = (struct intake_attr){S("k"), S("v")};
	f.ev.nattrs = 5;
	assert_int_equal(form(&f), INTAKE_TOO_MANY_ATTRIBUTES);
}

static void test_string_too_long_makes_ids_unusable(void **state)
{
	char long_id[100];
	struct fix f;
	bool usable = true;

	(void)state;
	memset(long_id, 'x', sizeof(long_id));
	fix_init(&f);
	f.ev.evidence_id = (struct intake_str){long_id, 65};
	assert_int_equal(intake_check_form(&f.ev, &lim, &usable, f.msg, sizeof(f.msg)),
	                 INTAKE_STRING_TOO_LONG);
	assert_false(usable);
	assert_non_null(strstr(f.msg, "evidence_id"));
	fix_init(&f);
	f.attrs[0].value = (struct intake_str){long_id, 65};
	assert_int_equal(form(&f), INTAKE_STRING_TOO_LONG);
	fix_init(&f);
	f.controls[1] = (struct intake_str){long_id, 65};
	assert_int_equal(form(&f), INTAKE_STRING_TOO_LONG);
}

static void test_empty_field(void **state)
{
	struct fix f;
	bool usable = false;

	(void)state;
	fix_init(&f);
	f.ev.source_system = S("");
	assert_int_equal(intake_check_form(&f.ev, &lim, &usable, f.msg, sizeof(f.msg)),
	                 INTAKE_EMPTY_FIELD);
	assert_true(usable);
	assert_non_null(strstr(f.msg, "source_system"));
	fix_init(&f);
	f.controls[0] = S("");
	assert_int_equal(form(&f), INTAKE_EMPTY_FIELD);
}

static void test_invalid_utf8(void **state)
{
	static const char *const bad[] = {
	        "\xc3",             /* truncated */
	        "\xc0\xaf",         /* overlong */
	        "\xed\xa0\x80",     /* surrogate */
	        "\xf4\x90\x80\x80", /* above U+10FFFF */
	        "\xff",
	};
	struct fix f;
	bool usable = true;

	(void)state;
	assert_true(intake_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	assert_false(intake_utf8_valid("a\0b", 3));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fix_init(&f);
		f.ev.uri = S(bad[i]);
		assert_int_equal(intake_check_form(&f.ev, &lim, &usable, f.msg, sizeof(f.msg)),
		                 INTAKE_INVALID_UTF8);
		assert_false(usable);
	}
	fix_init(&f);
	f.attrs[0].key = S("\xc3");
	assert_int_equal(form(&f), INTAKE_INVALID_UTF8);
}

static void test_rule_order_first_broken_wins(void **state)
{
	struct fix f;

	(void)state;
	/* form: utf-8 before length before empty before size before hash */
	fix_init(&f);
	f.ev.sha256 = S("nothex");
	f.ev.size_bytes = -5;
	assert_int_equal(form(&f), INTAKE_TOO_LARGE);
	f.ev.uri = S("");
	assert_int_equal(form(&f), INTAKE_EMPTY_FIELD);
	f.ev.client_id = S("\xff");
	assert_int_equal(form(&f), INTAKE_INVALID_UTF8);
	/* rules: time before audit before controls */
	fix_init(&f);
	f.ev.collected_at_ms = NOW + DAY_MS;
	f.ev.tenant_id = S("cb-2");
	f.controls[0] = S("ISO27001:A.99.1");
	assert_int_equal(rules(&f), INTAKE_FUTURE_DATED);
	f.ev.collected_at_ms = NOW;
	assert_int_equal(rules(&f), INTAKE_WRONG_TENANT);
	f.ev.tenant_id = S("cb-1");
	f.audit.closed = true;
	assert_int_equal(rules(&f), INTAKE_AUDIT_CLOSED);
	f.audit.closed = false;
	assert_int_equal(rules(&f), INTAKE_UNKNOWN_CONTROL);
}

static void test_soa_lookup_and_scope_index(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f);
	assert_int_equal(intake_soa_lookup(&f.soa27, "A.5.1"), 0);
	assert_int_equal(intake_soa_lookup(&f.soa27, "A.8.15"), 1);
	assert_int_equal(intake_soa_lookup(&f.soa27, "A.8.2"), 1);
	assert_int_equal(intake_soa_lookup(&f.soa27, "A.8.3"), -1);
	assert_int_equal(intake_audit_standard(&f.audit, "ISO42001_2023"), 1);
	assert_int_equal(intake_audit_standard(&f.audit, "ISO27001_2013"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_valid_evidence_passes_and_resolves_controls),
	        cmocka_unit_test(test_reason_names_follow_the_schema),
	        cmocka_unit_test(test_bad_hash),
	        cmocka_unit_test(test_future_dated_with_tolerance),
	        cmocka_unit_test(test_stale_outside_freshness_window),
	        cmocka_unit_test(test_unknown_audit),
	        cmocka_unit_test(test_wrong_tenant_and_wrong_client),
	        cmocka_unit_test(test_audit_closed),
	        cmocka_unit_test(test_no_controls),
	        cmocka_unit_test(test_unknown_control_flags_every_offender),
	        cmocka_unit_test(test_out_of_scope),
	        cmocka_unit_test(test_family_ref_resolves_to_the_edition_in_scope),
	        cmocka_unit_test(test_no_soa_only_for_annex_a),
	        cmocka_unit_test(test_excluded_in_soa),
	        cmocka_unit_test(test_too_large_and_too_many_attributes),
	        cmocka_unit_test(test_string_too_long_makes_ids_unusable),
	        cmocka_unit_test(test_empty_field),
	        cmocka_unit_test(test_invalid_utf8),
	        cmocka_unit_test(test_rule_order_first_broken_wins),
	        cmocka_unit_test(test_soa_lookup_and_scope_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
