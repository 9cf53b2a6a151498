/*
 * The rules of assay-plan (services/plan/plan_rules.c), table-driven where the rule allows:
 * each command applied to a state with a client, auditors and audits; refusals must carry
 * EVERY broken rule and change nothing; applied commands change the state; a command id is
 * applied once; a batch that rolls back leaves the state as it was.
 */
#include "assay_test.h"
#include "assay_err.h"
#include "plan_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a catalog and a clock ---- */

static char ids27[93][16], ids42[38][16];
static const char *annex27[93], *annex42[38];

static void catalog_init(void)
{
	static const int per27[] = {37, 8, 14, 34};
	/* 42001 Annex A: A.2.2-4, A.3.2-3, A.4.2-6, A.5.2-5, A.6.1.2-3, A.6.2.2-8, A.7.2-6,
	 * A.8.2-5, A.9.2-4, A.10.2-4 */
	static const struct {
		const char *prefix;
		int from, to;
	} per42[] = {{"A.2.", 2, 4},   {"A.3.", 2, 3},   {"A.4.", 2, 6}, {"A.5.", 2, 5},
	             {"A.6.1.", 2, 3}, {"A.6.2.", 2, 8}, {"A.7.", 2, 6}, {"A.8.", 2, 5},
	             {"A.9.", 2, 4},   {"A.10.", 2, 4}};
	size_t n = 0;

	for (int t = 0; t < 4; t++)
		for (int i = 1; i <= per27[t]; i++, n++) {
			snprintf(ids27[n], sizeof(ids27[n]), "A.%d.%d", t + 5, i);
			annex27[n] = ids27[n];
		}
	assert_int_equal(n, 93);
	n = 0;
	for (size_t t = 0; t < sizeof(per42) / sizeof(per42[0]); t++)
		for (int i = per42[t].from; i <= per42[t].to; i++, n++) {
			snprintf(ids42[n], sizeof(ids42[n]), "%s%d", per42[t].prefix, i);
			annex42[n] = ids42[n];
		}
	assert_int_equal(n, 38);
}

static size_t fake_annex_a(void *arg, int standard, const char *const **ids)
{
	(void)arg;
	if (standard == PLAN_ISO27001_2022) {
		*ids = annex27;
		return 93;
	}
	if (standard == PLAN_ISO42001_2023) {
		*ids = annex42;
		return 38;
	}
	return 0;
}

/* 27001:2013 until 2025-10-31 (R1.28); the others open-ended. */
static bool fake_edition_valid(void *arg, int standard, int64_t at_ms)
{
	(void)arg;
	if (standard != PLAN_ISO27001_2013)
		return true;
	return plan_day_of_ms(at_ms) <= assay_test_day(2025, 10, 31);
}

/* ---- the world ---- */

#define TODAY_MS ((int64_t)assay_test_day(2025, 6, 15) * 86400000 + 3600000)

struct world {
	struct plan_state *st;
	struct plan_rules r;
	int seq;
	char ids[256][32]; /* command ids */
};

static struct plan_cmd cmd_new(struct world *w, int kind)
{
	struct plan_cmd c;

	memset(&c, 0, sizeof(c));
	c.kind = kind;
	snprintf(w->ids[w->seq % 256], sizeof(w->ids[0]), "cmd-%d", w->seq);
	c.head.command_id = w->ids[w->seq % 256];
	w->seq++;
	c.head.tenant_id = "cb1";
	c.head.issued_by = "tester";
	c.head.issued_at = TODAY_MS;
	return c;
}

/* Applies cmd in its own committed batch; returns the status, res filled (caller releases). */
static int run(struct world *w, const struct plan_cmd *cmd, struct plan_result *res)
{
	char errstr[256] = "";

	plan_result_init(res);
	plan_state_begin(w->st);
	if (plan_apply(w->st, &w->r, cmd, res, errstr, sizeof(errstr)) != 0)
		fail_msg("apply failed: %s", errstr);
	plan_state_commit(w->st);
	return res->status;
}

/* Runs cmd and expects exactly the given refusal codes (in any order), or APPLIED when
 * ncodes is 0. */
static void expect(struct world *w, const struct plan_cmd *cmd, const int *codes, size_t ncodes)
{
	struct plan_result res;
	int status = run(w, cmd, &res);
	bool used[64] = {false};

	if (ncodes == 0) {
		if (status != PLAN_APPLIED)
			fail_msg("%s refused: %s %s", plan_cmd_names[cmd->kind],
			         res.nreasons ? plan_refusal_names[res.reasons[0].code] : "",
			         res.nreasons ? res.reasons[0].message : "");
		plan_result_release(&res);
		return;
	}
	assert_int_equal(status, PLAN_REFUSED);
	if (res.nreasons != ncodes) {
		for (size_t i = 0; i < res.nreasons; i++)
			print_message("reason %s (%s): %s\n",
			              plan_refusal_names[res.reasons[i].code],
			              res.reasons[i].subject, res.reasons[i].message);
		fail_msg("%zu reasons, expected %zu", res.nreasons, ncodes);
	}
	for (size_t k = 0; k < ncodes; k++) {
		size_t i = 0;

		while (i < res.nreasons && (used[i] || res.reasons[i].code != codes[k]))
			i++;
		if (i == res.nreasons)
			fail_msg("missing reason %s", plan_refusal_names[codes[k]]);
		used[i] = true;
		assert_true(res.reasons[i].message[0] != '\0');
	}
	plan_result_release(&res);
}

#define CODES(...) ((const int[]){__VA_ARGS__}), sizeof((const int[]){__VA_ARGS__}) / sizeof(int)
#define APPLIED    NULL, 0

static struct plan_site SITES[] = {{"hq", "Head office", "NL", 60, true},
                                   {"s2", "Plant", "DE", 30, false},
                                   {"s3", "Depot", NULL, 10, false}};
static struct plan_ai_system AI[] = {{"chat", "Support bot", 1u << 2, 2, "support"}};

static void register_client(struct world *w, const char *id, const char *tenant, int32_t persons)
{
	struct plan_cmd c = cmd_new(w, PLAN_REGISTER_CLIENT);

	c.head.tenant_id = tenant;
	c.u.client.client_id = id;
	c.u.client.legal_name = "Client B.V.";
	c.u.client.persons = persons;
	c.u.client.sites = SITES;
	c.u.client.nsites = 3;
	c.u.client.ai_systems = AI;
	c.u.client.nai_systems = 1;
	expect(w, &c, APPLIED);
}

static void record(struct world *w, const char *id, const char *tenant,
                   struct plan_competence *comp, size_t ncomp, struct plan_relation *rel,
                   size_t nrel)
{
	struct plan_cmd c = cmd_new(w, PLAN_RECORD_AUDITOR);

	c.head.tenant_id = tenant;
	c.u.person.person_id = id;
	c.u.person.name = id;
	c.u.person.competences = comp;
	c.u.person.ncompetences = ncomp;
	c.u.person.relations = rel;
	c.u.person.nrelations = nrel;
	expect(w, &c, APPLIED);
}

#define ND  PLAN_NO_DATE
#define I27 PLAN_ISO27001_2022
#define I42 PLAN_ISO42001_2023

static struct plan_scope SCOPE_BOTH[] = {{I27, NULL, "ISMS of the whole company"},
                                         {I42, NULL, "AIMS of the support bot"}};

static struct plan_cmd open_cmd(struct world *w, const char *audit, int type,
                                struct plan_scope *scopes, size_t nscopes)
{
	struct plan_cmd c = cmd_new(w, PLAN_OPEN_AUDIT);

	c.u.audit.audit_id = audit;
	c.u.audit.client_id = "c1";
	c.u.audit.audit_type = type;
	c.u.audit.scopes = scopes;
	c.u.audit.nscopes = nscopes;
	c.u.audit.planned_start = assay_test_day(2025, 7, 1);
	c.u.audit.planned_end = assay_test_day(2025, 7, 3);
	return c;
}

static struct plan_cmd assign_cmd(struct world *w, const char *audit, const char *person, int role,
                                  const int *standards, size_t n)
{
	struct plan_cmd c = cmd_new(w, PLAN_ASSIGN_TEAM_MEMBER);

	c.u.assign.audit_id = audit;
	c.u.assign.person_id = person;
	c.u.assign.role = role;
	c.u.assign.standards = standards;
	c.u.assign.nstandards = n;
	return c;
}

static struct plan_cmd complete_cmd(struct world *w, const char *audit, int stage,
                                    const int *standards, size_t n)
{
	struct plan_cmd c = cmd_new(w, PLAN_COMPLETE_STAGE);

	c.head.issued_at = (int64_t)assay_test_day(2025, 7, 4) * 86400000;
	c.u.complete.audit_id = audit;
	c.u.complete.stage = stage;
	c.u.complete.last_day = assay_test_day(2025, 7, 3);
	c.u.complete.standards = standards;
	c.u.complete.nstandards = n;
	return c;
}

static struct plan_cmd dm_cmd(struct world *w, const char *audit, int standard, const char *person)
{
	struct plan_cmd c = cmd_new(w, PLAN_RECORD_DECISION_MAKER);

	c.u.dm.audit_id = audit;
	c.u.dm.standard = standard;
	c.u.dm.person_id = person;
	return c;
}

static const int BOTH[] = {I27, I42}, ONLY27[] = {I27}, ONLY42[] = {I42};

/* client c1 (tenant cb1), c2 of tenant cb2; auditors; audit a1: combined stage 1 */
static int setup(void **state)
{
	static struct world w;
	static struct plan_competence lead[] = {{I27, PLAN_LEAD_AUDITOR, NULL, ND, ND},
	                                        {I42, PLAN_AUDITOR, NULL, ND, ND}};
	static struct plan_competence aud42[] = {{I42, PLAN_AUDITOR, NULL, ND, ND}};
	static struct plan_competence aud27[] = {{I27, PLAN_AUDITOR, NULL, ND, ND}};
	static struct plan_competence expired[] = {
	        {I27, PLAN_AUDITOR, NULL, ND, 0}}; /* valid_until set below */
	static struct plan_competence dm[] = {{I27, PLAN_DECISION_MAKER, NULL, ND, ND},
	                                      {I42, PLAN_DECISION_MAKER, NULL, ND, ND},
	                                      {I27, PLAN_AUDITOR, NULL, ND, ND}};
	static struct plan_competence expert[] = {{I42, PLAN_TECHNICAL_EXPERT, NULL, ND, ND}};
	static struct plan_relation recent[] = {{"c1", PLAN_CONSULTANCY, 0, 0}}; /* dates below */
	static struct plan_relation old[] = {{"c1", PLAN_EMPLOYMENT, 0, 0}};
	static struct plan_relation ongoing[] = {{"c1", PLAN_DECLARED_RELATIONSHIP, 0, ND}};

	memset(&w, 0, sizeof(w));
	catalog_init();
	w.st = plan_state_new();
	assert_non_null(w.st);
	plan_rules_default(&w.r);
	w.r.catalog.annex_a = fake_annex_a;
	w.r.catalog.edition_valid = fake_edition_valid;
	expired[0].valid_until = assay_test_day(2025, 7, 2); /* ends inside the audit */
	recent[0].started_on = assay_test_day(2022, 1, 1);
	recent[0].ended_on = assay_test_day(2024, 1, 1); /* 18 months before the audit */
	old[0].started_on = assay_test_day(2019, 1, 1);
	old[0].ended_on = assay_test_day(2023, 1, 1); /* 30 months before */
	ongoing[0].started_on = assay_test_day(2020, 1, 1);

	register_client(&w, "c1", "cb1", 100);
	register_client(&w, "c2", "cb2", 100);
	record(&w, "lead", "cb1", lead, 2, NULL, 0);
	record(&w, "aud42", "cb1", aud42, 1, NULL, 0);
	record(&w, "aud27", "cb1", aud27, 1, NULL, 0);
	record(&w, "expired", "cb1", expired, 1, NULL, 0);
	record(&w, "dm", "cb1", dm, 3, NULL, 0);
	record(&w, "dm2", "cb1", dm, 3, NULL, 0);
	record(&w, "expert", "cb1", expert, 1, NULL, 0);
	record(&w, "consultant", "cb1", aud27, 1, recent, 1);
	record(&w, "former", "cb1", aud27, 1, old, 1);
	record(&w, "friend", "cb1", aud27, 1, ongoing, 1);
	record(&w, "foreign", "cb2", aud27, 1, NULL, 0);
	{
		struct plan_cmd c = open_cmd(&w, "a1", PLAN_STAGE_1, SCOPE_BOTH, 2);

		expect(&w, &c, APPLIED);
	}
	*state = &w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	plan_state_destroy(w->st);
	return 0;
}

/* ---- RegisterClient / RecordAuditor ---- */

static void test_register_client_rules(void **state)
{
	struct world *w = *state;
	struct plan_site dup_sites[] = {{"x", "X", NULL, 1, true}, {"x", "Y", NULL, 1, true}};
	struct plan_group groups[] = {{"g1", "packing", 30, ""}, {"g2", "packing", 0, "ok"}};
	struct plan_ai_system ai[] = {{"bot", "Bot", 0, 1, NULL}};
	struct plan_cmd c = cmd_new(w, PLAN_REGISTER_CLIENT);
	const struct plan_client *cl;

	/* every problem at once */
	c.u.client.client_id = "c9";
	c.u.client.legal_name = " ";
	c.u.client.persons = 20;
	c.u.client.sites = dup_sites;
	c.u.client.nsites = 2;
	c.u.client.groups = groups;
	c.u.client.ngroups = 2;
	c.u.client.ai_systems = ai;
	c.u.client.nai_systems = 1;
	expect(w, &c,
	       CODES(PLAN_INVALID_VALUE /* legal name */, PLAN_INVALID_VALUE /* dup */,
	             PLAN_INVALID_VALUE /* two central */, PLAN_MISSING_JUSTIFICATION /* g1 */,
	             PLAN_INVALID_VALUE /* g2 0 */, PLAN_INVALID_VALUE /* 30 > 20 in groups */,
	             PLAN_INVALID_VALUE /* no AI role */));
	assert_null(plan_state_get(w->st, PLAN_MAP_CLIENT, "c9"));

	/* another tenant's client */
	c = cmd_new(w, PLAN_REGISTER_CLIENT);
	c.head.tenant_id = "cb2";
	c.u.client.client_id = "c1";
	c.u.client.legal_name = "Stolen";
	c.u.client.persons = 1;
	expect(w, &c, CODES(PLAN_WRONG_TENANT));

	/* a replacement bumps the revision */
	cl = plan_state_get(w->st, PLAN_MAP_CLIENT, "c1");
	assert_int_equal(cl->revision, 1);
	register_client(w, "c1", "cb1", 120);
	cl = plan_state_get(w->st, PLAN_MAP_CLIENT, "c1");
	assert_int_equal(cl->revision, 2);
	assert_int_equal(cl->persons, 120);
	assert_string_equal(cl->sites[0].site_id, "hq");
	assert_string_equal(cl->ai_systems[0].ai_system_id, "chat");
}

static void test_record_auditor_rules(void **state)
{
	struct world *w = *state;
	struct plan_competence comp[] = {{I27, PLAN_AUDITOR, NULL, 200, 100}};
	struct plan_relation rel[] = {{"c1", PLAN_CONSULTANCY, 300, 200}};
	struct plan_cmd c = cmd_new(w, PLAN_RECORD_AUDITOR);

	c.u.person.person_id = "p9";
	c.u.person.name = "";
	c.u.person.competences = comp;
	c.u.person.ncompetences = 1;
	c.u.person.relations = rel;
	c.u.person.nrelations = 1;
	expect(w, &c, CODES(PLAN_INVALID_VALUE, PLAN_INVALID_DATES, PLAN_INVALID_DATES));
	c = cmd_new(w, PLAN_RECORD_AUDITOR);
	c.head.tenant_id = "cb2";
	c.u.person.person_id = "lead";
	c.u.person.name = "Lead";
	expect(w, &c, CODES(PLAN_WRONG_TENANT));
}

/* ---- OpenAudit ---- */

static void test_open_audit_applied_with_cycles_time_and_sites(void **state)
{
	struct world *w = *state;
	const struct plan_audit *a = plan_state_get(w->st, PLAN_MAP_AUDIT, "a1");
	const struct plan_cycle *cy;

	assert_non_null(a);
	assert_string_equal(a->scopes[0].cycle_id, "c1/ISO27001_2022/1");
	assert_string_equal(a->scopes[1].cycle_id, "c1/ISO42001_2023/1");
	cy = plan_state_get(w->st, PLAN_MAP_CYCLE, "c1/ISO27001_2022/1");
	assert_non_null(cy);
	assert_int_equal(cy->naudits, 1);
	assert_int_equal(cy->stage1_completed_on, PLAN_NO_DATE);
	/* 100 persons -> 12 days ISMS; AIMS not configured */
	assert_non_null(a->time);
	assert_true(a->time->standards[0].table_days == 12.0);
	assert_false(a->time->configured);
	assert_string_equal(a->time->notes[a->time->nnotes - 1], "AIMS audit time not configured");
	/* sampled: ceil(sqrt(3)) = 2 sites, the central function first */
	assert_int_equal(a->nsite_ids, 2);
	assert_string_equal(a->site_ids[0], "hq");
	assert_int_equal(a->nai_systems, 1);
}

static void test_open_audit_refusals(void **state)
{
	static struct plan_scope s2013[] = {{PLAN_ISO27001_2013, NULL, "ISMS"}};
	static struct plan_scope s27[] = {{I27, NULL, "ISMS"}};
	static struct plan_scope s27_blank[] = {{I27, NULL, ""}};
	static struct plan_scope twice[] = {{I27, NULL, "a"}, {PLAN_ISO27001_2013, NULL, "b"}};
	struct plan_adjustment adj[] = {{I42, "ai", -10, "x"}, {I27, "it", -10, " "}};
	const char *sites_bad[] = {"s2", "nowhere"};
	struct world *w = *state;
	struct plan_cmd c;

	/* 27001:2013 after 2025-10-31 (E19) */
	c = open_cmd(w, "b1", PLAN_STAGE_1, s2013, 1);
	c.head.issued_at = (int64_t)assay_test_day(2025, 11, 1) * 86400000;
	c.u.audit.planned_start = assay_test_day(2025, 11, 10);
	c.u.audit.planned_end = assay_test_day(2025, 11, 12);
	expect(w, &c, CODES(PLAN_STANDARD_NOT_CURRENT));
	/* before the deadline it may still be used */
	c = open_cmd(w, "b1", PLAN_STAGE_1, s2013, 1);
	c.u.audit.client_id = "c1";
	expect(w, &c, APPLIED);

	/* unknown client; another tenant's client */
	c = open_cmd(w, "b2", PLAN_STAGE_1, s27, 1);
	c.u.audit.client_id = "nobody";
	expect(w, &c, CODES(PLAN_UNKNOWN_CLIENT));
	c = open_cmd(w, "b2", PLAN_STAGE_1, s27, 1);
	c.u.audit.client_id = "c2";
	expect(w, &c, CODES(PLAN_WRONG_TENANT));

	/* no standard */
	c = open_cmd(w, "b2", PLAN_STAGE_1, NULL, 0);
	expect(w, &c, CODES(PLAN_NO_STANDARD));

	/* stage 2 without a completed stage 1 in the cycle (R1.13) */
	c = open_cmd(w, "b2", PLAN_STAGE_2, s27, 1);
	expect(w, &c, CODES(PLAN_STAGE1_NOT_COMPLETED));
	/* surveillance in a cycle that does not exist */
	{
		struct plan_scope s[] = {{I27, "no-such-cycle", "ISMS"}};

		c = open_cmd(w, "b2", PLAN_SURVEILLANCE, s, 1);
		expect(w, &c, CODES(PLAN_UNKNOWN_CYCLE));
	}
	/* two editions of 27001 */
	c = open_cmd(w, "b2", PLAN_STAGE_1, twice, 2);
	expect(w, &c, CODES(PLAN_INVALID_VALUE));

	/* every problem at once: dates, scope, adjustments, sites */
	c = open_cmd(w, "b2", PLAN_STAGE_1, s27_blank, 1);
	c.u.audit.planned_end = c.u.audit.planned_start - 1;
	c.u.audit.adjustments = adj;
	c.u.audit.nadjustments = 2;
	c.u.audit.site_ids = sites_bad;
	c.u.audit.nsite_ids = 2;
	expect(w, &c,
	       CODES(PLAN_INVALID_DATES, PLAN_APPLICATION_INCOMPLETE, PLAN_STANDARD_NOT_IN_AUDIT,
	             PLAN_MISSING_JUSTIFICATION, PLAN_INVALID_VALUE /* unknown site */,
	             PLAN_INVALID_VALUE /* central function missing */));
	assert_null(plan_state_get(w->st, PLAN_MAP_AUDIT, "b2"));

	/* too few sites for the sample */
	{
		const char *one[] = {"hq"};

		c = open_cmd(w, "b2", PLAN_STAGE_1, s27, 1);
		c.u.audit.site_ids = one;
		c.u.audit.nsite_ids = 1;
		expect(w, &c, CODES(PLAN_INVALID_VALUE));
	}

	/* an incomplete application (R1.1) */
	register_client(w, "c3", "cb1", 0);
	c = open_cmd(w, "b3", PLAN_STAGE_1, s27, 1);
	c.u.audit.client_id = "c3";
	expect(w, &c, CODES(PLAN_APPLICATION_INCOMPLETE));

	/* the same audit again is ignored; different content is a conflict */
	{
		struct plan_result res;

		c = open_cmd(w, "a1", PLAN_STAGE_1, SCOPE_BOTH, 2);
		assert_int_equal(run(w, &c, &res), PLAN_IGNORED);
		plan_result_release(&res);
		c = open_cmd(w, "a1", PLAN_STAGE_1, s27, 1);
		expect(w, &c, CODES(PLAN_ID_CONFLICT));
	}
}

/* ---- teams ---- */

static void test_assign_rules(void **state)
{
	static const struct {
		const char *audit, *person;
		int role;
		const int *standards;
		size_t n;
		int codes[3];
		size_t ncodes;
	} cases[] = {
	        {"a1", "lead", PLAN_LEAD_AUDITOR, ONLY27, 1, {0}, 0},
	        /* LEAD_AUDITOR competence covers AUDITOR */
	        {"a1", "lead", PLAN_AUDITOR, BOTH, 2, {0}, 0},
	        /* only AUDITOR for 42001: not a lead there */
	        {"a1", "aud42", PLAN_LEAD_AUDITOR, ONLY42, 1, {PLAN_NOT_COMPETENT}, 1},
	        {"a1", "aud27", PLAN_AUDITOR, BOTH, 2, {PLAN_NOT_COMPETENT}, 1},
	        /* competence ends inside the audit days */
	        {"a1", "expired", PLAN_AUDITOR, ONLY27, 1, {PLAN_NOT_COMPETENT}, 1},
	        /* consultancy 18 months before: inside 24 (R1.38) */
	        {"a1", "consultant", PLAN_AUDITOR, ONLY27, 1, {PLAN_CONFLICT_OF_INTEREST}, 1},
	        /* employment 30 months before: outside */
	        {"a1", "former", PLAN_AUDITOR, ONLY27, 1, {0}, 0},
	        /* an ongoing declared relationship */
	        {"a1", "friend", PLAN_AUDITOR, ONLY27, 1, {PLAN_CONFLICT_OF_INTEREST}, 1},
	        {"a1", "expert", PLAN_TECHNICAL_EXPERT, ONLY42, 1, {0}, 0},
	        {"a1", "foreign", PLAN_AUDITOR, ONLY27, 1, {PLAN_WRONG_TENANT}, 1},
	        {"a1", "lead", PLAN_DECISION_MAKER, ONLY27, 1, {PLAN_INVALID_VALUE}, 1},
	        {"a1", "lead", PLAN_AUDITOR, NULL, 0, {PLAN_NO_STANDARD}, 1},
	        {"nope",
	         "ghost",
	         PLAN_AUDITOR,
	         ONLY27,
	         1,
	         {PLAN_UNKNOWN_AUDIT, PLAN_UNKNOWN_PERSON},
	         2},
	};
	struct world *w = *state;

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct plan_cmd c = assign_cmd(w, cases[k].audit, cases[k].person, cases[k].role,
		                               cases[k].standards, cases[k].n);

		print_message("case %zu: %s\n", k, cases[k].person);
		expect(w, &c, cases[k].ncodes ? cases[k].codes : NULL, cases[k].ncodes);
	}
	/* the team: lead (auditor, both), former, expert; a re-assignment replaced lead */
	{
		const struct plan_roster *ro = plan_state_get(w->st, PLAN_MAP_ROSTER, "a1");

		assert_int_equal(ro->nmembers, 3);
		assert_string_equal(ro->members[0].person_id, "lead");
		assert_int_equal(ro->members[0].role, PLAN_AUDITOR);
		assert_int_equal(ro->members[0].standards, (1u << I27) | (1u << I42));
	}
	/* a longer cooling-off period makes the former employee conflicted */
	{
		struct plan_cmd c;

		w->r.conflict_months = 36;
		c = assign_cmd(w, "a1", "former", PLAN_AUDITOR, ONLY27, 1);
		expect(w, &c, CODES(PLAN_CONFLICT_OF_INTEREST));
		w->r.conflict_months = 24;
	}
	/* a standard the audit does not cover */
	{
		static struct plan_scope s27[] = {{I27, NULL, "ISMS"}};
		struct plan_cmd c = open_cmd(w, "a27", PLAN_STAGE_1, s27, 1);

		c.u.audit.client_id = "c1";
		expect(w, &c, APPLIED);
		c = assign_cmd(w, "a27", "lead", PLAN_AUDITOR, BOTH, 2);
		expect(w, &c, CODES(PLAN_STANDARD_NOT_IN_AUDIT));
	}
}

/* Decision makers never audit their cycle, and auditors of a cycle never decide it (E1). */
static void test_decision_maker_independence(void **state)
{
	struct world *w = *state;
	struct plan_cmd c;

	c = assign_cmd(w, "a1", "lead", PLAN_LEAD_AUDITOR, ONLY27, 1);
	expect(w, &c, APPLIED);
	c = assign_cmd(w, "a1", "expert", PLAN_TECHNICAL_EXPERT, ONLY42, 1);
	expect(w, &c, APPLIED);
	/* dm decides 27001 for c1's cycle */
	c = dm_cmd(w, "a1", I27, "dm");
	expect(w, &c, APPLIED);
	/* ... so dm may not join any team of that cycle */
	c = assign_cmd(w, "a1", "dm", PLAN_AUDITOR, ONLY27, 1);
	expect(w, &c, CODES(PLAN_DECISION_MAKER_ON_TEAM));
	/* team members may not decide, technical experts included, for either standard */
	c = dm_cmd(w, "a1", I27, "lead");
	expect(w, &c, CODES(PLAN_TEAM_MEMBER_AS_DECISION_MAKER, PLAN_NOT_COMPETENT));
	c = dm_cmd(w, "a1", I42, "expert");
	expect(w, &c, CODES(PLAN_TEAM_MEMBER_AS_DECISION_MAKER, PLAN_NOT_COMPETENT));
	/* competence to decide is required */
	c = dm_cmd(w, "a1", I42, "aud42");
	expect(w, &c, CODES(PLAN_NOT_COMPETENT));
	/* a standard outside the audit, an unknown person */
	{
		static struct plan_scope s27[] = {{I27, NULL, "ISMS"}};

		c = open_cmd(w, "a27", PLAN_STAGE_1, s27, 1);
		expect(w, &c, APPLIED);
		c = dm_cmd(w, "a27", I42, "dm2");
		expect(w, &c, CODES(PLAN_STANDARD_NOT_IN_AUDIT));
		c = dm_cmd(w, "a27", I27, "ghost");
		expect(w, &c, CODES(PLAN_UNKNOWN_PERSON));
	}
	/* a later audit of the same cycle: the stage 1 team still may not decide */
	c = complete_cmd(w, "a1", PLAN_STAGE_1, ONLY27, 1);
	expect(w, &c, APPLIED);
	{
		/* a27's stage 1 opened cycle 2: name cycle 1 explicitly */
		static struct plan_scope s27[] = {{I27, "c1/ISO27001_2022/1", "ISMS"}};

		c = open_cmd(w, "a1s2", PLAN_STAGE_2, s27, 1);
		expect(w, &c, APPLIED);
		assert_string_equal(
		        ((const struct plan_audit *)plan_state_get(w->st, PLAN_MAP_AUDIT, "a1s2"))
		                ->scopes[0]
		                .cycle_id,
		        "c1/ISO27001_2022/1");
		c = dm_cmd(w, "a1s2", I27, "lead");
		expect(w, &c, CODES(PLAN_TEAM_MEMBER_AS_DECISION_MAKER, PLAN_NOT_COMPETENT));
		c = assign_cmd(w, "a1s2", "dm", PLAN_AUDITOR, ONLY27, 1);
		expect(w, &c, CODES(PLAN_DECISION_MAKER_ON_TEAM));
	}
}

/* ---- SoA ---- */

static void fill_rows(struct plan_soa_row *rows, const char *const *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rows[i] = (struct plan_soa_row){ids[i], i % 5 != 0, "because"};
}

static void test_soa_rules(void **state)
{
	struct world *w = *state;
	struct plan_soa_row rows[100];
	struct plan_cmd c = cmd_new(w, PLAN_SUBMIT_SOA);
	const struct plan_soa *so;
	struct plan_result res;

	/* complete 27001 SoA: 93 rows */
	fill_rows(rows, annex27, 93);
	c.u.soa.audit_id = "a1";
	c.u.soa.standard = I27;
	c.u.soa.soa_version = "v1";
	c.u.soa.rows = rows;
	c.u.soa.nrows = 93;
	assert_int_equal(run(w, &c, &res), PLAN_APPLIED);
	so = res.soa;
	assert_int_equal(so->revision, 1);
	assert_int_equal(so->applicable_count + so->excluded_count, 93);
	assert_int_equal(so->excluded_count, 19);
	plan_result_release(&res);

	/* missing two, an unknown one, a duplicate, a missing justification: each named */
	fill_rows(rows, annex27, 93);
	rows[10].control_id = "A.9.99";    /* unknown; A.5.11 missing */
	rows[20].control_id = annex27[21]; /* duplicate of A.5.22; A.5.21 missing */
	rows[30].justification = "";
	c = cmd_new(w, PLAN_SUBMIT_SOA);
	c.u.soa.audit_id = "a1";
	c.u.soa.standard = I27;
	c.u.soa.soa_version = "v2";
	c.u.soa.rows = rows;
	c.u.soa.nrows = 93;
	assert_int_equal(run(w, &c, &res), PLAN_REFUSED);
	assert_int_equal(res.nreasons, 5);
	{
		bool missing11 = false, missing21 = false, unknown = false, dup = false,
		     just = false;

		for (size_t i = 0; i < res.nreasons; i++) {
			const struct plan_reason *r = &res.reasons[i];

			missing11 |= r->code == PLAN_SOA_MISSING_CONTROL &&
			             !strcmp(r->subject, "A.5.11");
			missing21 |= r->code == PLAN_SOA_MISSING_CONTROL &&
			             !strcmp(r->subject, "A.5.21");
			unknown |= r->code == PLAN_SOA_UNKNOWN_CONTROL &&
			           !strcmp(r->subject, "A.9.99");
			dup |= r->code == PLAN_SOA_DUPLICATE_CONTROL &&
			       !strcmp(r->subject, "A.5.22");
			just |= r->code == PLAN_MISSING_JUSTIFICATION &&
			        !strcmp(r->subject, "A.5.31");
		}
		assert_true(missing11 && missing21 && unknown && dup && just);
	}
	plan_result_release(&res);

	/* 42001: 38 rows; an empty SoA names all 38 */
	c = cmd_new(w, PLAN_SUBMIT_SOA);
	c.u.soa.audit_id = "a1";
	c.u.soa.standard = I42;
	c.u.soa.soa_version = "ai-1";
	c.u.soa.nrows = 0;
	assert_int_equal(run(w, &c, &res), PLAN_REFUSED);
	assert_int_equal(res.nreasons, 38);
	plan_result_release(&res);
	fill_rows(rows, annex42, 38);
	c.head.command_id = "soa-42-ok";
	c.u.soa.rows = rows;
	c.u.soa.nrows = 38;
	expect(w, &c, APPLIED);

	/* a replacement is revision 2 */
	fill_rows(rows, annex27, 93);
	c = cmd_new(w, PLAN_SUBMIT_SOA);
	c.u.soa.audit_id = "a1";
	c.u.soa.standard = I27;
	c.u.soa.soa_version = "v3";
	c.u.soa.rows = rows;
	c.u.soa.nrows = 93;
	assert_int_equal(run(w, &c, &res), PLAN_APPLIED);
	assert_int_equal(res.soa->revision, 2);
	plan_result_release(&res);

	/* a standard outside the audit, an unknown audit */
	{
		static struct plan_scope s27[] = {{I27, NULL, "ISMS"}};
		struct plan_cmd o = open_cmd(w, "a27", PLAN_STAGE_1, s27, 1);

		expect(w, &o, APPLIED);
	}
	fill_rows(rows, annex42, 38);
	c = cmd_new(w, PLAN_SUBMIT_SOA);
	c.u.soa.audit_id = "a27";
	c.u.soa.standard = I42;
	c.u.soa.soa_version = "x";
	c.u.soa.rows = rows;
	c.u.soa.nrows = 38;
	expect(w, &c, CODES(PLAN_STANDARD_NOT_IN_AUDIT));
	c.head.command_id = "soa-unknown-audit";
	c.u.soa.audit_id = "nope";
	expect(w, &c, CODES(PLAN_UNKNOWN_AUDIT));
}

/* ---- stages ---- */

static void test_complete_stage_rules(void **state)
{
	struct world *w = *state;
	struct plan_cmd c;
	static struct plan_scope s27[] = {{I27, NULL, "ISMS"}};

	/* only a technical expert on 42001: no competent member; nobody on 27001 */
	c = assign_cmd(w, "a1", "expert", PLAN_TECHNICAL_EXPERT, ONLY42, 1);
	expect(w, &c, APPLIED);
	c = complete_cmd(w, "a1", PLAN_STAGE_1, BOTH, 2);
	expect(w, &c, CODES(PLAN_NO_COMPETENT_MEMBER, PLAN_NO_COMPETENT_MEMBER));
	/* wrong stage, future last day, no standard */
	c = complete_cmd(w, "a1", PLAN_STAGE_2, ONLY27, 1);
	expect(w, &c, CODES(PLAN_INVALID_VALUE, PLAN_NO_COMPETENT_MEMBER));
	c = complete_cmd(w, "a1", PLAN_STAGE_1, NULL, 0);
	c.head.issued_at = (int64_t)assay_test_day(2025, 7, 2) * 86400000;
	expect(w, &c, CODES(PLAN_INVALID_DATES, PLAN_NO_STANDARD));

	c = assign_cmd(w, "a1", "lead", PLAN_LEAD_AUDITOR, ONLY27, 1);
	expect(w, &c, APPLIED);
	c = assign_cmd(w, "a1", "aud42", PLAN_AUDITOR, ONLY42, 1);
	expect(w, &c, APPLIED);
	/* 27001 part first, then 42001 */
	c = complete_cmd(w, "a1", PLAN_STAGE_1, ONLY27, 1);
	expect(w, &c, APPLIED);
	c = complete_cmd(w, "a1", PLAN_STAGE_1, BOTH, 2);
	expect(w, &c, CODES(PLAN_STAGE_ALREADY_COMPLETED));
	c = complete_cmd(w, "a1", PLAN_STAGE_1, ONLY42, 1);
	expect(w, &c, APPLIED);
	/* a completed audit takes no more members or SoAs */
	c = assign_cmd(w, "a1", "former", PLAN_AUDITOR, ONLY27, 1);
	expect(w, &c, CODES(PLAN_AUDIT_CLOSED));
	/* stage 2 in the same cycle now opens and completes */
	c = open_cmd(w, "a2", PLAN_STAGE_2, s27, 1);
	c.u.audit.planned_start = assay_test_day(2025, 8, 1);
	c.u.audit.planned_end = assay_test_day(2025, 8, 2);
	expect(w, &c, APPLIED);
	c = assign_cmd(w, "a2", "lead", PLAN_LEAD_AUDITOR, ONLY27, 1);
	expect(w, &c, APPLIED);
	c = complete_cmd(w, "a2", PLAN_STAGE_2, ONLY27, 1);
	c.u.complete.last_day = assay_test_day(2025, 8, 2);
	c.head.issued_at = (int64_t)assay_test_day(2025, 8, 3) * 86400000;
	expect(w, &c, APPLIED);
	/* a surveillance audit uses the current cycle */
	c = open_cmd(w, "a3", PLAN_SURVEILLANCE, s27, 1);
	expect(w, &c, APPLIED);
	assert_string_equal(((const struct plan_audit *)plan_state_get(w->st, PLAN_MAP_AUDIT, "a3"))
	                            ->scopes[0]
	                            .cycle_id,
	                    "c1/ISO27001_2022/1");
	/* a new stage 1 opens cycle 2 */
	c = open_cmd(w, "a4", PLAN_STAGE_1, s27, 1);
	expect(w, &c, APPLIED);
	assert_non_null(plan_state_get(w->st, PLAN_MAP_CYCLE, "c1/ISO27001_2022/2"));
}

/* ---- exactly once and batches ---- */

static void test_command_id_applied_once(void **state)
{
	struct world *w = *state;
	struct plan_cmd c = assign_cmd(w, "a1", "lead", PLAN_AUDITOR, ONLY27, 1);
	struct plan_result res;

	assert_int_equal(run(w, &c, &res), PLAN_APPLIED);
	plan_result_release(&res);
	/* the same command id again, even with other content: ignored */
	c.u.assign.person_id = "consultant";
	assert_int_equal(run(w, &c, &res), PLAN_IGNORED);
	assert_int_equal(res.nreasons, 0);
	plan_result_release(&res);
	/* a refused command id is remembered too */
	c = assign_cmd(w, "a1", "consultant", PLAN_AUDITOR, ONLY27, 1);
	assert_int_equal(run(w, &c, &res), PLAN_REFUSED);
	plan_result_release(&res);
	assert_int_equal(run(w, &c, &res), PLAN_IGNORED);
	plan_result_release(&res);
	/* an empty command id is refused and not remembered */
	c = assign_cmd(w, "a1", "lead", PLAN_AUDITOR, ONLY27, 1);
	c.head.command_id = "";
	expect(w, &c, CODES(PLAN_INVALID_VALUE));
}

static void test_batch_sees_earlier_commands_and_rolls_back(void **state)
{
	struct world *w = *state;
	struct plan_cmd reg = cmd_new(w, PLAN_REGISTER_CLIENT);
	struct plan_cmd open;
	struct plan_result r1, r2;
	struct plan_change ch;
	static struct plan_scope s27[] = {{I27, NULL, "ISMS"}};
	char errstr[256];
	size_t clients = plan_state_count(w->st, PLAN_MAP_CLIENT);

	reg.u.client.client_id = "c5";
	reg.u.client.legal_name = "Five";
	reg.u.client.persons = 12;
	reg.u.client.sites = SITES;
	reg.u.client.nsites = 1;
	open = open_cmd(w, "a5", PLAN_STAGE_1, s27, 1);
	open.u.audit.client_id = "c5";

	for (int attempt = 0; attempt < 2; attempt++) {
		plan_result_init(&r1);
		plan_result_init(&r2);
		plan_state_begin(w->st);
		assert_int_equal(plan_apply(w->st, &w->r, &reg, &r1, errstr, sizeof(errstr)), 0);
		assert_int_equal(plan_apply(w->st, &w->r, &open, &r2, errstr, sizeof(errstr)), 0);
		assert_int_equal(r1.status, PLAN_APPLIED);
		assert_int_equal(r2.status, PLAN_APPLIED); /* sees c5 of the same batch */
		/* changes: client, command, audit, cycle, cycle index, command */
		assert_int_equal(plan_state_nchanges(w->st), 6);
		plan_state_change(w->st, 0, &ch);
		assert_int_equal(ch.map, PLAN_MAP_CLIENT);
		assert_true(ch.was_absent);
		plan_result_release(&r1);
		plan_result_release(&r2);
		if (attempt == 0) {
			/* the transaction failed: everything undone, the ids forgotten */
			plan_state_rollback(w->st);
			assert_null(plan_state_get(w->st, PLAN_MAP_CLIENT, "c5"));
			assert_null(plan_state_get(w->st, PLAN_MAP_AUDIT, "a5"));
			assert_null(plan_state_get(w->st, PLAN_MAP_COMMAND, reg.head.command_id));
			assert_int_equal(plan_state_count(w->st, PLAN_MAP_CLIENT), clients);
		} else {
			plan_state_commit(w->st);
		}
	}
	assert_non_null(plan_state_get(w->st, PLAN_MAP_AUDIT, "a5"));
	assert_int_equal(plan_state_count(w->st, PLAN_MAP_CLIENT), clients + 1);
	/* replacing within a batch, then rolling back, restores the first version */
	register_client(w, "c5", "cb1", 12);
	plan_state_begin(w->st);
	reg = cmd_new(w, PLAN_REGISTER_CLIENT);
	reg.u.client.client_id = "c5";
	reg.u.client.legal_name = "Five again";
	reg.u.client.persons = 13;
	plan_result_init(&r1);
	assert_int_equal(plan_apply(w->st, &w->r, &reg, &r1, errstr, sizeof(errstr)), 0);
	plan_result_release(&r1);
	reg.head.command_id = "another";
	plan_result_init(&r1);
	assert_int_equal(plan_apply(w->st, &w->r, &reg, &r1, errstr, sizeof(errstr)), 0);
	assert_int_equal(r1.client->revision, 4);
	plan_result_release(&r1);
	assert_int_equal(plan_state_nchanges(w->st), 3); /* client once, two command ids */
	plan_state_rollback(w->st);
	assert_int_equal(((const struct plan_client *)plan_state_get(w->st, PLAN_MAP_CLIENT, "c5"))
	                         ->revision,
	                 2);
}

static void test_dates(void **state)
{
	struct plan_relation rel = {"c1", PLAN_CONSULTANCY, 0, 0};
	char buf[16];

	(void)state;
	assert_int_equal(plan_add_months(assay_test_day(2025, 7, 1), -24),
	                 assay_test_day(2023, 7, 1));
	assert_int_equal(plan_add_months(assay_test_day(2024, 2, 29), 12),
	                 assay_test_day(2025, 2, 28));
	assert_int_equal(plan_add_months(assay_test_day(2025, 3, 31), -1),
	                 assay_test_day(2025, 2, 28));
	assert_int_equal(plan_add_months(assay_test_day(2025, 1, 15), -13),
	                 assay_test_day(2023, 12, 15));
	assert_int_equal(plan_day_of_ms(-1), -1);
	assert_int_equal(plan_day_of_ms(86400000), 1);
	plan_date_format(assay_test_day(2025, 10, 31), buf);
	assert_string_equal(buf, "2025-10-31");
	/* the 24-month edge: ended exactly 24 months before is still a conflict */
	rel.ended_on = assay_test_day(2023, 7, 1);
	assert_true(plan_relation_conflicts(&rel, assay_test_day(2025, 7, 1), 24));
	rel.ended_on = assay_test_day(2023, 6, 30);
	assert_false(plan_relation_conflicts(&rel, assay_test_day(2025, 7, 1), 24));
	rel.ended_on = PLAN_NO_DATE;
	assert_true(plan_relation_conflicts(&rel, assay_test_day(2025, 7, 1), 24));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	        T(test_register_client_rules),
	        T(test_record_auditor_rules),
	        T(test_open_audit_applied_with_cycles_time_and_sites),
	        T(test_open_audit_refusals),
	        T(test_assign_rules),
	        T(test_decision_maker_independence),
	        T(test_soa_rules),
	        T(test_complete_stage_rules),
	        T(test_command_id_applied_once),
	        T(test_batch_sees_earlier_commands_and_rolls_back),
	        cmocka_unit_test(test_dates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
