/*
 * The rules of assay-plan (plan_rules.h). Each command is checked completely: every broken
 * rule adds a reason, and only a command with no reason changes the state. Changes store new
 * entities (deep copies into their own arena) so that a rolled-back batch leaves the previous
 * ones untouched. Rule sources are domain-rules clauses (R...) and table E1-E20.
 */
#include "plan_rules.h"
#include "assay_vec.h"
#include "assay_err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const plan_role_names[PLAN_NROLES] = {"AUDITOR", "LEAD_AUDITOR", "TECHNICAL_EXPERT",
                                                  "DECISION_MAKER"};
const char *const plan_relation_kind_names[PLAN_NRELATION_KINDS] = {"CONSULTANCY", "EMPLOYMENT",
                                                                    "DECLARED_RELATIONSHIP"};
const char *const plan_ai_role_names[PLAN_NAI_ROLES] = {"PROVIDER", "PRODUCER", "USER"};
const char *const plan_ai_tier_names[PLAN_NAI_TIERS] = {"PROHIBITED", "HIGH_RISK", "LIMITED_RISK",
                                                        "MINIMAL_RISK", "NOT_ASSESSED"};
const char *const plan_integration_names[PLAN_INTEGRATION_ELEMENTS] = {
        "documentation", "policy_and_objectives", "internal_audit",  "management_review",
        "risk_process",  "corrective_action",     "responsibilities"};
const char *const plan_refusal_names[PLAN_NREFUSALS] = {
        "WRONG_TENANT",
        "UNKNOWN_CLIENT",
        "UNKNOWN_AUDIT",
        "UNKNOWN_PERSON",
        "ID_CONFLICT",
        "AUDIT_CLOSED",
        "APPLICATION_INCOMPLETE",
        "INVALID_VALUE",
        "INVALID_DATES",
        "NO_STANDARD",
        "STANDARD_NOT_CURRENT",
        "STANDARD_NOT_IN_AUDIT",
        "UNKNOWN_CYCLE",
        "STAGE1_NOT_COMPLETED",
        "STAGE_ALREADY_COMPLETED",
        "NO_COMPETENT_MEMBER",
        "NOT_COMPETENT",
        "CONFLICT_OF_INTEREST",
        "DECISION_MAKER_ON_TEAM",
        "TEAM_MEMBER_AS_DECISION_MAKER",
        "SOA_MISSING_CONTROL",
        "SOA_UNKNOWN_CONTROL",
        "SOA_DUPLICATE_CONTROL",
        "MISSING_JUSTIFICATION",
};
const char *const plan_cmd_names[PLAN_NCMD_KINDS] = {
        "org.assay.v1.RegisterClient",     "org.assay.v1.RecordAuditor",
        "org.assay.v1.OpenAudit",          "org.assay.v1.AssignTeamMember",
        "org.assay.v1.SubmitSoa",          "org.assay.v1.CompleteStage",
        "org.assay.v1.RecordDecisionMaker"};

int plan_enum_parse(const char *const *names, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

void plan_rules_default(struct plan_rules *r)
{
	memset(r, 0, sizeof(*r));
	plan_time_config_default(&r->time);
	r->conflict_months = 24;
}

void plan_result_init(struct plan_result *res)
{
	memset(res, 0, sizeof(*res));
}

void plan_result_release(struct plan_result *res)
{
	free(res->reasons);
	memset(res, 0, sizeof(*res));
}

/* ---- dates ---- */

int32_t plan_day_of_ms(int64_t ms)
{
	int64_t d = ms / 86400000;

	if (ms % 86400000 < 0)
		d--;
	return (int32_t)d;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int32_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int32_t)(era * 146097 + (int64_t)doe - 719468);
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	*y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y += *m <= 2;
}

void plan_date_format(int32_t day, char out[16])
{
	int64_t y;
	unsigned m, d;

	civil_from_days(day, &y, &m, &d);
	snprintf(out, 16, "%04lld-%02u-%02u", (long long)y, m, d);
}

int32_t plan_add_months(int32_t day, int months)
{
	static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t y, total;
	unsigned m, d, last;

	civil_from_days(day, &y, &m, &d);
	total = y * 12 + (m - 1) + months;
	y = total >= 0 ? total / 12 : (total - 11) / 12;
	m = (unsigned)(total - y * 12) + 1;
	last = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	return days_from_civil(y, m, d > last ? last : d);
}

bool plan_relation_conflicts(const struct plan_relation *rel, int32_t ref_day, int months)
{
	if (rel->ended_on == PLAN_NO_DATE)
		return true;
	return rel->ended_on >= plan_add_months(ref_day, -months);
}

bool plan_competent(const struct plan_person *person, int standard, int role, int32_t from,
                    int32_t to)
{
	for (size_t i = 0; i < person->ncompetences; i++) {
		const struct plan_competence *c = &person->competences[i];
		bool role_ok =
		        c->role == role || (role == PLAN_AUDITOR && c->role == PLAN_LEAD_AUDITOR);

		if (c->standard != standard || !role_ok)
			continue;
		if (c->valid_from != PLAN_NO_DATE && c->valid_from > from)
			continue;
		if (c->valid_until != PLAN_NO_DATE && c->valid_until < to)
			continue;
		return true;
	}
	return false;
}

/* ---- reasons ---- */

static int refuse(struct plan_result *res, int code, const char *subject, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int refuse(struct plan_result *res, int code, const char *subject, const char *fmt, ...)
{
	struct plan_reason *r;
	va_list ap;

	if (assay_vec_reserve(&res->reasons, &res->reasons_cap, res->nreasons + 1,
	                      sizeof(*res->reasons)))
		return ASSAY_ERR_FATAL;
	r = &res->reasons[res->nreasons++];
	r->code = code;
	snprintf(r->subject, sizeof(r->subject), "%s", subject ? subject : "");
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	return 0;
}

/* Refuses an empty or too long id. */
static int check_id(struct plan_result *res, const char *what, const char *id)
{
	if (id == NULL || id[0] == '\0')
		return refuse(res, PLAN_INVALID_VALUE, what, "%s is empty", what);
	if (strlen(id) > PLAN_ID_MAX)
		return refuse(res, PLAN_INVALID_VALUE, what, "%s is longer than %d bytes", what,
		              PLAN_ID_MAX);
	return 0;
}

static bool blank(const char *s)
{
	if (s == NULL)
		return true;
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

static const char *std_name(int standard)
{
	return standard >= 0 && standard < PLAN_NSTANDARDS ? plan_standard_names[standard]
	                                                   : "unknown";
}

/* Refuses a standard symbol this build does not know, and one not current at any of the
 * given moments (E19, R1.28; the windows are catalog data). */
static int check_standard_current(const struct plan_rules *r, struct plan_result *res, int standard,
                                  const int64_t *at_ms, size_t nat)
{
	if (standard < 0 || standard >= PLAN_NSTANDARDS)
		return refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
	if (r->catalog.edition_valid == NULL)
		return 0;
	for (size_t i = 0; i < nat; i++)
		if (!r->catalog.edition_valid(r->catalog.arg, standard, at_ms[i]))
			return refuse(res, PLAN_STANDARD_NOT_CURRENT, std_name(standard),
			              "%s may not be used for audits on that date",
			              std_name(standard));
	return 0;
}

/* Cross-tenant use of an entity (ids are global; a tenant sees only its own). */
static int check_tenant(struct plan_result *res, const char *what, const char *id,
                        const char *entity_tenant, const char *cmd_tenant)
{
	if (strcmp(entity_tenant, cmd_tenant) == 0)
		return 0;
	return refuse(res, PLAN_WRONG_TENANT, id, "%s %s belongs to another tenant", what, id);
}

/* ---- entity copies ---- */

#define ADUP(a, s) plan_arena_strdup((a), (s))

void *plan_entity_new(size_t size)
{
	struct plan_arena *a = plan_arena_new();
	struct plan_obj *o;

	if (a == NULL)
		return NULL;
	o = plan_arena_alloc(a, size);
	if (o == NULL) {
		plan_arena_destroy(a);
		return NULL;
	}
	o->arena = a;
	return o;
}

static void entity_free(void *e)
{
	if (e)
		plan_arena_destroy(((struct plan_obj *)e)->arena);
}

/* Stores e (or frees it when the arena failed or the store does). */
static int store(struct plan_state *st, enum plan_map m, const char *key, void *e, char *errstr,
                 size_t errstr_size)
{
	if (e == NULL || plan_arena_failed(((struct plan_obj *)e)->arena) ||
	    plan_state_put(st, m, key, e) != 0) {
		entity_free(e);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory");
	}
	return 0;
}

static void *arr_dup(struct plan_arena *a, const void *p, size_t n, size_t size)
{
	void *q;

	if (n == 0)
		return NULL;
	q = plan_arena_alloc(a, n * size);
	if (q)
		memcpy(q, p, n * size);
	return q;
}

static struct plan_client *client_copy(const struct plan_client *c)
{
	struct plan_client *e = plan_entity_new(sizeof(*e));
	struct plan_arena *a;

	if (e == NULL)
		return NULL;
	a = e->obj.arena;
	e->client_id = ADUP(a, c->client_id);
	e->tenant_id = ADUP(a, c->tenant_id);
	e->legal_name = ADUP(a, c->legal_name);
	e->command_id = ADUP(a, c->command_id);
	e->revision = c->revision;
	e->persons = c->persons;
	e->sites = arr_dup(a, c->sites, c->nsites, sizeof(*c->sites));
	e->nsites = e->sites ? c->nsites : 0;
	for (size_t i = 0; i < e->nsites; i++) {
		e->sites[i].site_id = ADUP(a, c->sites[i].site_id);
		e->sites[i].name = ADUP(a, c->sites[i].name);
		e->sites[i].country = ADUP(a, c->sites[i].country);
	}
	e->groups = arr_dup(a, c->groups, c->ngroups, sizeof(*c->groups));
	e->ngroups = e->groups ? c->ngroups : 0;
	for (size_t i = 0; i < e->ngroups; i++) {
		e->groups[i].group_id = ADUP(a, c->groups[i].group_id);
		e->groups[i].description = ADUP(a, c->groups[i].description);
		e->groups[i].justification = ADUP(a, c->groups[i].justification);
	}
	e->ai_systems = arr_dup(a, c->ai_systems, c->nai_systems, sizeof(*c->ai_systems));
	e->nai_systems = e->ai_systems ? c->nai_systems : 0;
	for (size_t i = 0; i < e->nai_systems; i++) {
		e->ai_systems[i].ai_system_id = ADUP(a, c->ai_systems[i].ai_system_id);
		e->ai_systems[i].name = ADUP(a, c->ai_systems[i].name);
		e->ai_systems[i].intended_purpose = ADUP(a, c->ai_systems[i].intended_purpose);
	}
	if ((c->nsites && !e->sites) || (c->ngroups && !e->groups) ||
	    (c->nai_systems && !e->ai_systems)) {
		entity_free(e);
		return NULL;
	}
	return e;
}

static struct plan_person *person_copy(const struct plan_person *p)
{
	struct plan_person *e = plan_entity_new(sizeof(*e));
	struct plan_arena *a;

	if (e == NULL)
		return NULL;
	a = e->obj.arena;
	e->person_id = ADUP(a, p->person_id);
	e->tenant_id = ADUP(a, p->tenant_id);
	e->name = ADUP(a, p->name);
	e->command_id = ADUP(a, p->command_id);
	e->revision = p->revision;
	e->competences = arr_dup(a, p->competences, p->ncompetences, sizeof(*p->competences));
	e->ncompetences = e->competences ? p->ncompetences : 0;
	for (size_t i = 0; i < e->ncompetences; i++)
		e->competences[i].technical_area = ADUP(a, p->competences[i].technical_area);
	e->relations = arr_dup(a, p->relations, p->nrelations, sizeof(*p->relations));
	e->nrelations = e->relations ? p->nrelations : 0;
	for (size_t i = 0; i < e->nrelations; i++)
		e->relations[i].client_id = ADUP(a, p->relations[i].client_id);
	if ((p->ncompetences && !e->competences) || (p->nrelations && !e->relations)) {
		entity_free(e);
		return NULL;
	}
	return e;
}

static struct plan_cycle *cycle_copy(const struct plan_cycle *c, size_t extra_audits,
                                     size_t extra_dms)
{
	struct plan_cycle *e = plan_entity_new(sizeof(*e));
	struct plan_arena *a;

	if (e == NULL)
		return NULL;
	a = e->obj.arena;
	e->cycle_id = ADUP(a, c->cycle_id);
	e->client_id = ADUP(a, c->client_id);
	e->standard = c->standard;
	e->seq = c->seq;
	e->stage1_completed_on = c->stage1_completed_on;
	if (c->naudits + extra_audits) {
		const char **ids = plan_arena_alloc(a, (c->naudits + extra_audits) * sizeof(*ids));

		if (ids == NULL)
			goto fail;
		for (size_t i = 0; i < c->naudits; i++)
			ids[i] = ADUP(a, c->audit_ids[i]);
		e->audit_ids = ids;
		e->naudits = c->naudits;
	}
	if (c->ndms + extra_dms) {
		struct plan_decision_maker *dms =
		        plan_arena_alloc(a, (c->ndms + extra_dms) * sizeof(*dms));

		if (dms == NULL)
			goto fail;
		for (size_t i = 0; i < c->ndms; i++) {
			dms[i].person_id = ADUP(a, c->dms[i].person_id);
			dms[i].audit_id = ADUP(a, c->dms[i].audit_id);
			dms[i].command_id = ADUP(a, c->dms[i].command_id);
		}
		e->dms = dms;
		e->ndms = c->ndms;
	}
	return e;
fail:
	entity_free(e);
	return NULL;
}

/* ---- lookups ---- */

static const struct plan_cycle *cycle_get(const struct plan_state *st, const char *id)
{
	return id ? plan_state_get(st, PLAN_MAP_CYCLE, id) : NULL;
}

static const struct plan_roster *roster_get(const struct plan_state *st, const char *audit_id)
{
	return plan_state_get(st, PLAN_MAP_ROSTER, audit_id);
}

static const struct plan_member *roster_find(const struct plan_roster *ro, const char *person_id)
{
	for (size_t i = 0; ro && i < ro->nmembers; i++)
		if (strcmp(ro->members[i].person_id, person_id) == 0)
			return &ro->members[i];
	return NULL;
}

static const struct plan_completion *completion_get(const struct plan_state *st,
                                                    const char *audit_id, int standard)
{
	char key[PLAN_KEY_MAX];

	if (plan_key(key, sizeof(key), audit_id, std_name(standard), NULL) != 0)
		return NULL;
	return plan_state_get(st, PLAN_MAP_COMPLETION, key);
}

static const struct plan_scope *audit_scope(const struct plan_audit *au, int standard)
{
	for (size_t i = 0; i < au->nscopes; i++)
		if (au->scopes[i].standard == standard)
			return &au->scopes[i];
	return NULL;
}

static bool audit_closed(const struct plan_state *st, const struct plan_audit *au)
{
	for (size_t i = 0; i < au->nscopes; i++)
		if (completion_get(st, au->audit_id, au->scopes[i].standard) == NULL)
			return false;
	return true;
}

static bool cycle_has_dm(const struct plan_cycle *cy, const char *person_id)
{
	for (size_t i = 0; cy && i < cy->ndms; i++)
		if (strcmp(cy->dms[i].person_id, person_id) == 0)
			return true;
	return false;
}

/* Whether person is on the team of any audit of cycle cy (stage 1, stage 2, surveillance,
 * special: every audit that covered the cycle), technical experts included (R1.20). */
static bool cycle_has_member(const struct plan_state *st, const struct plan_cycle *cy,
                             const char *person_id)
{
	for (size_t i = 0; cy && i < cy->naudits; i++)
		if (roster_find(roster_get(st, cy->audit_ids[i]), person_id))
			return true;
	return false;
}

/* The common checks of a command on an existing audit: known, same tenant. */
static const struct plan_audit *audit_for(const struct plan_state *st, const struct plan_cmd *cmd,
                                          const char *audit_id, struct plan_result *res, int *err)
{
	const struct plan_audit *au;

	if ((*err = check_id(res, "audit_id", audit_id)) != 0 || res->nreasons)
		return NULL;
	au = plan_state_get(st, PLAN_MAP_AUDIT, audit_id);
	if (au == NULL) {
		*err = refuse(res, PLAN_UNKNOWN_AUDIT, audit_id, "no audit %s", audit_id);
		return NULL;
	}
	*err = check_tenant(res, "audit", audit_id, au->tenant_id, cmd->head.tenant_id);
	return au;
}

/* ---- RegisterClient (R1.1) ---- */

static int check_register_client(const struct plan_state *st, const struct plan_cmd *cmd,
                                 struct plan_result *res)
{
	const struct plan_client *c = &cmd->u.client, *old;
	int64_t in_groups = 0;
	int err = 0, central = 0;

	err = err ? err : check_id(res, "client_id", c->client_id);
	if (!err && blank(c->legal_name))
		err = refuse(res, PLAN_INVALID_VALUE, "legal_name", "legal name is empty");
	if (!err && c->persons < 0)
		err = refuse(res, PLAN_INVALID_VALUE, "persons", "persons is negative");
	old = c->client_id ? plan_state_get(st, PLAN_MAP_CLIENT, c->client_id) : NULL;
	if (!err && old)
		err = check_tenant(res, "client", c->client_id, old->tenant_id,
		                   cmd->head.tenant_id);
	for (size_t i = 0; !err && i < c->nsites; i++) {
		const struct plan_site *s = &c->sites[i];

		err = check_id(res, "site_id", s->site_id);
		for (size_t j = 0; !err && j < i; j++)
			if (strcmp(c->sites[j].site_id, s->site_id) == 0)
				err = refuse(res, PLAN_INVALID_VALUE, s->site_id,
				             "site %s is listed twice", s->site_id);
		if (!err && s->persons < 0)
			err = refuse(res, PLAN_INVALID_VALUE, s->site_id,
			             "site %s has a negative number of persons", s->site_id);
		central += s->central_function;
	}
	if (!err && central > 1)
		err = refuse(res, PLAN_INVALID_VALUE, "sites",
		             "%d sites claim the central function; at most one may", central);
	for (size_t i = 0; !err && i < c->ngroups; i++) {
		const struct plan_group *g = &c->groups[i];

		err = check_id(res, "group_id", g->group_id);
		for (size_t j = 0; !err && j < i; j++)
			if (strcmp(c->groups[j].group_id, g->group_id) == 0)
				err = refuse(res, PLAN_INVALID_VALUE, g->group_id,
				             "group %s is listed twice", g->group_id);
		if (!err && g->persons < 1)
			err = refuse(res, PLAN_INVALID_VALUE, g->group_id,
			             "group %s has no persons", g->group_id);
		/* each identical-work group needs a written justification (R2.11) */
		if (!err && blank(g->justification))
			err = refuse(res, PLAN_MISSING_JUSTIFICATION, g->group_id,
			             "group %s has no justification", g->group_id);
		in_groups += g->persons > 0 ? g->persons : 0;
	}
	if (!err && in_groups > c->persons)
		err = refuse(res, PLAN_INVALID_VALUE, "identical_work_groups",
		             "identical-work groups hold %lld persons, more than the %d persons",
		             (long long)in_groups, c->persons);
	for (size_t i = 0; !err && i < c->nai_systems; i++) {
		const struct plan_ai_system *s = &c->ai_systems[i];

		err = check_id(res, "ai_system_id", s->ai_system_id);
		for (size_t j = 0; !err && j < i; j++)
			if (strcmp(c->ai_systems[j].ai_system_id, s->ai_system_id) == 0)
				err = refuse(res, PLAN_INVALID_VALUE, s->ai_system_id,
				             "AI system %s is listed twice", s->ai_system_id);
		/* the organization's role for each AI system (42001 4.1) */
		if (!err && s->roles == 0)
			err = refuse(res, PLAN_INVALID_VALUE, s->ai_system_id,
			             "AI system %s has no role", s->ai_system_id);
		if (!err && (s->tier < 0 || s->tier >= PLAN_NAI_TIERS))
			err = refuse(res, PLAN_INVALID_VALUE, s->ai_system_id,
			             "AI system %s has an unknown EU AI Act tier", s->ai_system_id);
	}
	return err;
}

static int apply_register_client(struct plan_state *st, const struct plan_cmd *cmd,
                                 struct plan_result *res, char *errstr, size_t errstr_size)
{
	const struct plan_client *old =
	        plan_state_get(st, PLAN_MAP_CLIENT, cmd->u.client.client_id);
	struct plan_client tmp = cmd->u.client, *e;
	int err;

	tmp.tenant_id = cmd->head.tenant_id;
	tmp.command_id = cmd->head.command_id;
	tmp.revision = old ? old->revision + 1 : 1;
	e = client_copy(&tmp);
	if ((err = store(st, PLAN_MAP_CLIENT, tmp.client_id, e, errstr, errstr_size)) != 0)
		return err;
	res->client = e;
	return 0;
}

/* ---- RecordAuditor ---- */

static int check_record_auditor(const struct plan_state *st, const struct plan_cmd *cmd,
                                struct plan_result *res)
{
	const struct plan_person *p = &cmd->u.person, *old;
	int err = check_id(res, "person_id", p->person_id);

	if (!err && blank(p->name))
		err = refuse(res, PLAN_INVALID_VALUE, "name", "name is empty");
	old = p->person_id ? plan_state_get(st, PLAN_MAP_PERSON, p->person_id) : NULL;
	if (!err && old)
		err = check_tenant(res, "person", p->person_id, old->tenant_id,
		                   cmd->head.tenant_id);
	for (size_t i = 0; !err && i < p->ncompetences; i++) {
		const struct plan_competence *c = &p->competences[i];

		if (c->standard < 0 || c->role < 0)
			err = refuse(res, PLAN_INVALID_VALUE, NULL,
			             "competence %zu names an unknown standard or role", i + 1);
		else if (c->valid_from != PLAN_NO_DATE && c->valid_until != PLAN_NO_DATE &&
		         c->valid_from > c->valid_until)
			err = refuse(res, PLAN_INVALID_DATES, std_name(c->standard),
			             "competence %zu ends before it starts", i + 1);
	}
	for (size_t i = 0; !err && i < p->nrelations; i++) {
		const struct plan_relation *rel = &p->relations[i];

		err = check_id(res, "client_id", rel->client_id);
		if (!err && rel->kind < 0)
			err = refuse(res, PLAN_INVALID_VALUE, rel->client_id,
			             "relation %zu has an unknown kind", i + 1);
		if (!err && rel->ended_on != PLAN_NO_DATE && rel->ended_on < rel->started_on)
			err = refuse(res, PLAN_INVALID_DATES, rel->client_id,
			             "relation with %s ends before it starts", rel->client_id);
	}
	return err;
}

static int apply_record_auditor(struct plan_state *st, const struct plan_cmd *cmd,
                                struct plan_result *res, char *errstr, size_t errstr_size)
{
	const struct plan_person *old =
	        plan_state_get(st, PLAN_MAP_PERSON, cmd->u.person.person_id);
	struct plan_person tmp = cmd->u.person, *e;
	int err;

	tmp.tenant_id = cmd->head.tenant_id;
	tmp.command_id = cmd->head.command_id;
	tmp.revision = old ? old->revision + 1 : 1;
	e = person_copy(&tmp);
	if ((err = store(st, PLAN_MAP_PERSON, tmp.person_id, e, errstr, errstr_size)) != 0)
		return err;
	res->person = e;
	return 0;
}

/* ---- OpenAudit ---- */

/* What a resolved scope needs beyond the command: its cycle. */
struct scope_plan {
	const char *cycle_id; /* borrowed or in buf */
	char buf[PLAN_KEY_MAX];
	bool new_cycle;
	int32_t seq;
};

static bool same_audit(const struct plan_audit *a, const struct plan_cmd *cmd)
{
	const struct plan_audit *b = &cmd->u.audit;

	if (strcmp(a->tenant_id, cmd->head.tenant_id) || strcmp(a->client_id, b->client_id) ||
	    a->audit_type != b->audit_type || a->planned_start != b->planned_start ||
	    a->planned_end != b->planned_end || a->nscopes != b->nscopes)
		return false;
	for (size_t i = 0; i < a->nscopes; i++)
		if (a->scopes[i].standard != b->scopes[i].standard ||
		    strcmp(a->scopes[i].scope_statement, b->scopes[i].scope_statement) ||
		    (b->scopes[i].cycle_id && strcmp(a->scopes[i].cycle_id, b->scopes[i].cycle_id)))
			return false;
	return true;
}

static uint64_t fnv(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 1099511628211ULL;
	h = (h ^ 0x1f) * 1099511628211ULL;
	for (; *b; b++)
		h = (h ^ (unsigned char)*b) * 1099511628211ULL;
	return h;
}

static int check_open_audit(const struct plan_state *st, const struct plan_rules *r,
                            const struct plan_cmd *cmd, const struct plan_client **cl,
                            struct scope_plan *plans, struct plan_result *res)
{
	const struct plan_audit *a = &cmd->u.audit;
	const struct plan_client *c = NULL;
	int64_t when[2] = {cmd->head.issued_at, (int64_t)a->planned_end * 86400000};
	int err = check_id(res, "audit_id", a->audit_id);
	unsigned families = 0;

	if (!err)
		err = check_id(res, "client_id", a->client_id);
	if (!err && a->client_id && (c = plan_state_get(st, PLAN_MAP_CLIENT, a->client_id)) == NULL)
		err = refuse(res, PLAN_UNKNOWN_CLIENT, a->client_id, "no client %s", a->client_id);
	if (!err && c)
		err = check_tenant(res, "client", a->client_id, c->tenant_id, cmd->head.tenant_id);
	if (!err && (a->audit_type < 0 || a->audit_type >= PLAN_NAUDIT_TYPES))
		err = refuse(res, PLAN_INVALID_VALUE, "audit_type", "unknown audit type");
	if (!err && a->planned_end < a->planned_start)
		err = refuse(res, PLAN_INVALID_DATES, "planned_end",
		             "planned end is before planned start");
	/* an incomplete application cannot be planned (R1.1) */
	if (!err && c && c->persons <= 0)
		err = refuse(res, PLAN_APPLICATION_INCOMPLETE, "persons",
		             "client %s has no persons recorded", c->client_id);
	if (!err && c && c->nsites == 0)
		err = refuse(res, PLAN_APPLICATION_INCOMPLETE, "sites",
		             "client %s has no sites recorded", c->client_id);
	if (!err && a->nscopes == 0)
		err = refuse(res, PLAN_NO_STANDARD, NULL, "the audit names no standard");

	for (size_t i = 0; !err && i < a->nscopes; i++) {
		const struct plan_scope *s = &a->scopes[i];
		struct scope_plan *sp = &plans[i];
		const char *name = std_name(s->standard);
		enum plan_family fam;

		if ((err = check_standard_current(r, res, s->standard, when, 2)) != 0)
			break;
		if (s->standard < 0 || s->standard >= PLAN_NSTANDARDS)
			continue;
		fam = plan_standard_family(s->standard);
		/* one edition per standard family; a combined audit covers 27001 and 42001 */
		if (families & (1u << fam)) {
			err = refuse(res, PLAN_INVALID_VALUE, name,
			             "%s audit named twice in one audit", plan_family_names[fam]);
			continue;
		}
		families |= 1u << fam;
		if (blank(s->scope_statement) &&
		    (err = refuse(res, PLAN_APPLICATION_INCOMPLETE, name,
		                  "no scope statement for %s", name)) != 0)
			break;
		if (c == NULL)
			continue;
		/* the certification cycle (R1.3): a stage 1 opens one; the rest use one */
		if (s->cycle_id) {
			const struct plan_cycle *cy = cycle_get(st, s->cycle_id);

			if (blank(s->cycle_id) || strlen(s->cycle_id) > PLAN_ID_MAX) {
				err = check_id(res, "cycle_id",
				               blank(s->cycle_id) ? "" : s->cycle_id);
				continue;
			}
			for (size_t j = 0; !err && j < i; j++)
				if (a->scopes[j].cycle_id &&
				    !strcmp(a->scopes[j].cycle_id, s->cycle_id))
					err = refuse(res, PLAN_ID_CONFLICT, s->cycle_id,
					             "cycle %s named for two standards",
					             s->cycle_id);
			if (err)
				break;
			if (cy &&
			    (strcmp(cy->client_id, c->client_id) || cy->standard != s->standard)) {
				err = refuse(res, PLAN_ID_CONFLICT, s->cycle_id,
				             "cycle %s belongs to another client or standard",
				             s->cycle_id);
				continue;
			}
			if (cy == NULL && a->audit_type != PLAN_STAGE_1) {
				err = refuse(res, PLAN_UNKNOWN_CYCLE, s->cycle_id,
				             "no cycle %s for %s", s->cycle_id, name);
				continue;
			}
			sp->cycle_id = s->cycle_id;
			sp->new_cycle = cy == NULL;
		} else {
			char key[PLAN_KEY_MAX];
			const struct plan_cycle_index *ix = NULL;

			if (plan_key(key, sizeof(key), c->client_id, name, NULL) == 0)
				ix = plan_state_get(st, PLAN_MAP_CYCLE_INDEX, key);
			if (a->audit_type == PLAN_STAGE_1) {
				int32_t seq = ix ? ix->count + 1 : 1;

				snprintf(sp->buf, sizeof(sp->buf), "%s/%s/%d", c->client_id, name,
				         (int)seq);
				if (cycle_get(st, sp->buf)) {
					err = refuse(res, PLAN_ID_CONFLICT, NULL,
					             "cycle id %s is already used", sp->buf);
					continue;
				}
				sp->cycle_id = sp->buf;
				sp->new_cycle = true;
			} else if (ix == NULL) {
				err = refuse(res, PLAN_UNKNOWN_CYCLE, name,
				             "client %s has no %s cycle", c->client_id, name);
				continue;
			} else {
				sp->cycle_id = ix->current;
			}
		}
		if (sp->new_cycle) {
			char key[PLAN_KEY_MAX];
			const struct plan_cycle_index *ix = NULL;

			if (plan_key(key, sizeof(key), c->client_id, name, NULL) == 0)
				ix = plan_state_get(st, PLAN_MAP_CYCLE_INDEX, key);
			sp->seq = ix ? ix->count + 1 : 1;
		}
		/* stage 2 needs a completed stage 1 of the same client, standard and cycle
		 * (R1.13 enforce, R1.10) */
		if (a->audit_type == PLAN_STAGE_2) {
			const struct plan_cycle *cy = cycle_get(st, sp->cycle_id);

			if (cy == NULL || cy->stage1_completed_on == PLAN_NO_DATE)
				err = refuse(res, PLAN_STAGE1_NOT_COMPLETED, name,
				             "no completed stage 1 for %s in cycle %s", name,
				             sp->cycle_id);
		}
	}

	/* adjustment factors: each justified, for a standard of the audit (R2.5, R2.12) */
	for (size_t i = 0; !err && i < a->nadjustments; i++) {
		const struct plan_adjustment *adj = &a->adjustments[i];
		bool in_audit = false;

		for (size_t j = 0; j < a->nscopes; j++)
			in_audit |= a->scopes[j].standard == adj->standard;
		if (!in_audit)
			err = refuse(res, PLAN_STANDARD_NOT_IN_AUDIT, std_name(adj->standard),
			             "adjustment %s is for %s, which the audit does not cover",
			             adj->factor ? adj->factor : "", std_name(adj->standard));
		if (!err && blank(adj->factor))
			err = refuse(res, PLAN_INVALID_VALUE, "factor",
			             "adjustment %zu has no factor name", i + 1);
		if (!err &&
		    (!isfinite(adj->percent) || adj->percent <= -100.0 || adj->percent > 1000.0))
			err = refuse(res, PLAN_INVALID_VALUE, adj->factor,
			             "adjustment %s: %g%% is out of range", adj->factor,
			             adj->percent);
		if (!err && blank(adj->justification))
			err = refuse(res, PLAN_MISSING_JUSTIFICATION, adj->factor,
			             "adjustment %s has no justification", adj->factor);
	}

	/* sites given by the caller: the client's, no repeats, the central function, and at
	 * least the IAF MD 1 sample (R2.23) */
	if (!err && c && a->nsite_ids > 0) {
		int32_t minimum = plan_sample_size(
		        (int32_t)c->nsites, a->audit_type >= 0 && a->audit_type < PLAN_NAUDIT_TYPES
		                                    ? r->time.sampling_factor[a->audit_type]
		                                    : 1.0);

		for (size_t i = 0; !err && i < a->nsite_ids; i++) {
			bool known = false;

			for (size_t k = 0; k < c->nsites; k++)
				known |= strcmp(c->sites[k].site_id, a->site_ids[i]) == 0;
			if (!known)
				err = refuse(res, PLAN_INVALID_VALUE, a->site_ids[i],
				             "client %s has no site %s", c->client_id,
				             a->site_ids[i]);
			for (size_t j = 0; !err && j < i; j++)
				if (strcmp(a->site_ids[j], a->site_ids[i]) == 0)
					err = refuse(res, PLAN_INVALID_VALUE, a->site_ids[i],
					             "site %s is listed twice", a->site_ids[i]);
		}
		for (size_t k = 0; !err && k < c->nsites; k++) {
			bool listed = false;

			if (!c->sites[k].central_function)
				continue;
			for (size_t i = 0; i < a->nsite_ids; i++)
				listed |= strcmp(c->sites[k].site_id, a->site_ids[i]) == 0;
			if (!listed)
				err = refuse(res, PLAN_INVALID_VALUE, c->sites[k].site_id,
				             "the central function %s is audited every time",
				             c->sites[k].site_id);
		}
		if (!err && (int32_t)a->nsite_ids < minimum)
			err = refuse(res, PLAN_INVALID_VALUE, "site_ids",
			             "%zu sites to visit, the sample needs at least %d of %zu",
			             a->nsite_ids, (int)minimum, c->nsites);
	}
	*cl = c;
	return err;
}

/* Sites to visit when the command names none: the central function, then the others in an
 * order that looks random but is fixed by the audit and site ids (R2.24), up to the sample. */
static int sample_sites(const struct plan_client *c, const char *audit_id, int32_t n,
                        struct plan_arena *a, const char ***out, size_t *nout)
{
	const char **ids;
	uint64_t *keys;
	size_t k = 0;

	*out = NULL;
	*nout = 0;
	if (c->nsites == 0 || n <= 0)
		return 0;
	ids = plan_arena_alloc(a, c->nsites * sizeof(*ids));
	keys = plan_arena_alloc(a, c->nsites * sizeof(*keys));
	if (ids == NULL || keys == NULL)
		return ASSAY_ERR_FATAL;
	for (size_t i = 0; i < c->nsites; i++) {
		ids[i] = c->sites[i].site_id;
		keys[i] = c->sites[i].central_function ? 0 : (fnv(audit_id, ids[i]) | 1);
	}
	/* insertion sort by key: site lists are short */
	for (size_t i = 1; i < c->nsites; i++)
		for (size_t j = i; j > 0 && keys[j] < keys[j - 1]; j--) {
			uint64_t tk = keys[j];
			const char *ti = ids[j];

			keys[j] = keys[j - 1];
			ids[j] = ids[j - 1];
			keys[j - 1] = tk;
			ids[j - 1] = ti;
		}
	for (k = 0; k < c->nsites && (int32_t)k < n; k++)
		ids[k] = ADUP(a, ids[k]);
	*out = ids;
	*nout = k;
	return 0;
}

static int apply_open_audit(struct plan_state *st, const struct plan_rules *r,
                            const struct plan_cmd *cmd, const struct plan_client *c,
                            const struct scope_plan *plans, struct plan_result *res, char *errstr,
                            size_t errstr_size)
{
	const struct plan_audit *a = &cmd->u.audit;
	struct plan_audit *e = plan_entity_new(sizeof(*e));
	struct plan_arena *ar;
	struct plan_time_input in;
	struct plan_group_in *groups = NULL;
	struct plan_time *time;
	int standards[PLAN_MAX_STANDARDS];
	int err;

	if (e == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory");
	ar = e->obj.arena;
	e->audit_id = ADUP(ar, a->audit_id);
	e->tenant_id = ADUP(ar, cmd->head.tenant_id);
	e->client_id = ADUP(ar, a->client_id);
	e->command_id = ADUP(ar, cmd->head.command_id);
	e->audit_type = a->audit_type;
	e->planned_start = a->planned_start;
	e->planned_end = a->planned_end;
	memcpy(e->integration, a->integration, sizeof(e->integration));
	e->scopes = plan_arena_alloc(ar, a->nscopes * sizeof(*e->scopes));
	if (e->scopes == NULL)
		goto oom;
	e->nscopes = a->nscopes;
	for (size_t i = 0; i < a->nscopes; i++) {
		e->scopes[i].standard = a->scopes[i].standard;
		e->scopes[i].cycle_id = ADUP(ar, plans[i].cycle_id);
		e->scopes[i].scope_statement = ADUP(ar, a->scopes[i].scope_statement);
		standards[i] = a->scopes[i].standard;
	}
	e->adjustments = arr_dup(ar, a->adjustments, a->nadjustments, sizeof(*a->adjustments));
	e->nadjustments = e->adjustments ? a->nadjustments : 0;
	for (size_t i = 0; i < e->nadjustments; i++) {
		e->adjustments[i].factor = ADUP(ar, a->adjustments[i].factor);
		e->adjustments[i].justification = ADUP(ar, a->adjustments[i].justification);
	}
	/* the client's AI systems as they are now: the AIMS scope of this audit */
	if (c->nai_systems) {
		struct plan_ai_system *ai =
		        arr_dup(ar, c->ai_systems, c->nai_systems, sizeof(*c->ai_systems));

		if (ai == NULL)
			goto oom;
		for (size_t i = 0; i < c->nai_systems; i++) {
			ai[i].ai_system_id = ADUP(ar, ai[i].ai_system_id);
			ai[i].name = ADUP(ar, ai[i].name);
			ai[i].intended_purpose = ADUP(ar, ai[i].intended_purpose);
		}
		e->ai_systems = ai;
		e->nai_systems = c->nai_systems;
	}

	/* audit time (domain-rules §2.6) */
	memset(&in, 0, sizeof(in));
	in.audit_type = a->audit_type;
	in.standards = standards;
	in.nstandards = a->nscopes;
	in.persons = c->persons;
	if (c->ngroups) {
		groups = plan_arena_alloc(ar, c->ngroups * sizeof(*groups));
		if (groups == NULL)
			goto oom;
		for (size_t i = 0; i < c->ngroups; i++) {
			groups[i].group_id = ADUP(ar, c->groups[i].group_id);
			groups[i].persons = c->groups[i].persons;
		}
	}
	in.groups = groups;
	in.ngroups = c->ngroups;
	in.adjustments = e->adjustments;
	in.nadjustments = e->nadjustments;
	in.sites_total = (int32_t)c->nsites;
	for (int k = 0; k < PLAN_INTEGRATION_ELEMENTS; k++)
		in.integration_elements += a->integration[k];
	time = plan_arena_alloc(ar, sizeof(*time));
	if (time == NULL)
		goto oom;
	err = plan_time_compute(&r->time, &in, ar, time, errstr, errstr_size);
	if (err) {
		entity_free(e);
		return ASSAY_ERR_FATAL; /* the input was checked: a failure is ours */
	}
	e->time = time;
	if (a->nsite_ids) {
		const char **ids = plan_arena_alloc(ar, a->nsite_ids * sizeof(*ids));

		if (ids == NULL)
			goto oom;
		for (size_t i = 0; i < a->nsite_ids; i++)
			ids[i] = ADUP(ar, a->site_ids[i]);
		e->site_ids = ids;
		e->nsite_ids = a->nsite_ids;
	} else if (sample_sites(c, a->audit_id, time->sites_sampled, ar, &e->site_ids,
	                        &e->nsite_ids) != 0) {
		goto oom;
	}
	if ((err = store(st, PLAN_MAP_AUDIT, a->audit_id, e, errstr, errstr_size)) != 0)
		return err;
	res->audit = e;

	/* cycles: new ones, and this audit joins each */
	for (size_t i = 0; i < a->nscopes; i++) {
		const char *name = std_name(a->scopes[i].standard);
		const struct plan_cycle *old = cycle_get(st, plans[i].cycle_id);
		struct plan_cycle base = {{NULL},       plans[i].cycle_id,
		                          c->client_id, a->scopes[i].standard,
		                          plans[i].seq, PLAN_NO_DATE,
		                          NULL,         0,
		                          NULL,         0};
		struct plan_cycle *cy = cycle_copy(old ? old : &base, 1, 0);

		if (cy == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "plan state: out of memory");
		cy->audit_ids[cy->naudits++] = ADUP(cy->obj.arena, a->audit_id);
		if ((err = store(st, PLAN_MAP_CYCLE, cy->cycle_id, cy, errstr, errstr_size)))
			return err;
		if (plans[i].new_cycle) {
			char key[PLAN_KEY_MAX];
			struct plan_cycle_index *ix = plan_entity_new(sizeof(*ix));

			if (ix == NULL)
				return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
				                  "plan state: out of memory");
			ix->current = ADUP(ix->obj.arena, plans[i].cycle_id);
			ix->count = plans[i].seq;
			plan_key(key, sizeof(key), c->client_id, name, NULL);
			if ((err = store(st, PLAN_MAP_CYCLE_INDEX, key, ix, errstr, errstr_size)))
				return err;
		}
	}
	return 0;
oom:
	entity_free(e);
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "plan state: out of memory");
}

/* ---- AssignTeamMember (R1.20, R1.38, R2.22, E1, E10, E20) ---- */

static int check_assign(const struct plan_state *st, const struct plan_rules *r,
                        const struct plan_cmd *cmd, struct plan_result *res)
{
	const struct plan_assign *as = &cmd->u.assign;
	const struct plan_audit *au;
	const struct plan_person *p = NULL;
	int err = 0;
	unsigned seen = 0;

	au = audit_for(st, cmd, as->audit_id, res, &err);
	if (!err)
		err = check_id(res, "person_id", as->person_id);
	if (!err && as->person_id &&
	    (p = plan_state_get(st, PLAN_MAP_PERSON, as->person_id)) == NULL)
		err = refuse(res, PLAN_UNKNOWN_PERSON, as->person_id, "no person %s",
		             as->person_id);
	if (!err && p)
		err = check_tenant(res, "person", as->person_id, p->tenant_id, cmd->head.tenant_id);
	if (!err && (as->role < 0 || as->role == PLAN_DECISION_MAKER))
		err = refuse(res, PLAN_INVALID_VALUE, "role",
		             "a team role is AUDITOR, LEAD_AUDITOR or TECHNICAL_EXPERT");
	if (!err && as->nstandards == 0)
		err = refuse(res, PLAN_NO_STANDARD, NULL, "the assignment names no standard");
	if (!err && au && audit_closed(st, au))
		err = refuse(res, PLAN_AUDIT_CLOSED, au->audit_id, "audit %s is completed",
		             au->audit_id);
	for (size_t i = 0; !err && au && i < as->nstandards; i++) {
		int s = as->standards[i];

		if (s < 0 || s >= PLAN_NSTANDARDS) {
			err = refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
			continue;
		}
		if (seen & (1u << s))
			continue;
		seen |= 1u << s;
		if (audit_scope(au, s) == NULL) {
			err = refuse(res, PLAN_STANDARD_NOT_IN_AUDIT, std_name(s),
			             "audit %s does not cover %s", au->audit_id, std_name(s));
			continue;
		}
		/* competent for this standard in this role over the audit's days (R2.22, E20) */
		if (p && as->role >= 0 && as->role != PLAN_DECISION_MAKER &&
		    !plan_competent(p, s, as->role, au->planned_start, au->planned_end))
			err = refuse(res, PLAN_NOT_COMPETENT, std_name(s),
			             "%s has no %s competence for %s valid for the audit days",
			             p->person_id, plan_role_names[as->role], std_name(s));
	}
	if (err || au == NULL || p == NULL)
		return err;
	/* no consultancy, employment or declared relation within the cooling-off period before
	 * the audit (R1.38, E10) */
	for (size_t i = 0; !err && i < p->nrelations; i++) {
		const struct plan_relation *rel = &p->relations[i];

		if (strcmp(rel->client_id, au->client_id) == 0 &&
		    plan_relation_conflicts(rel, au->planned_start, r->conflict_months))
			err = refuse(res, PLAN_CONFLICT_OF_INTEREST, p->person_id,
			             "%s has a %s relation with %s within %d months of the audit",
			             p->person_id,
			             rel->kind >= 0 ? plan_relation_kind_names[rel->kind] : "",
			             au->client_id, r->conflict_months);
	}
	/* never the decision maker of a cycle this audit belongs to (R1.20, E1) */
	for (size_t i = 0; !err && i < au->nscopes; i++) {
		const struct plan_cycle *cy = cycle_get(st, au->scopes[i].cycle_id);

		if (cycle_has_dm(cy, p->person_id))
			err = refuse(res, PLAN_DECISION_MAKER_ON_TEAM, p->person_id,
			             "%s decides %s for %s in cycle %s", p->person_id,
			             std_name(au->scopes[i].standard), au->client_id, cy->cycle_id);
	}
	return err;
}

static int apply_assign(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                        char *errstr, size_t errstr_size)
{
	const struct plan_assign *as = &cmd->u.assign;
	const struct plan_roster *old = roster_get(st, as->audit_id);
	struct plan_roster *e = plan_entity_new(sizeof(*e));
	struct plan_arena *a;
	struct plan_member *m = NULL;
	unsigned standards = 0;
	size_t n = old ? old->nmembers : 0;

	if (e == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory");
	a = e->obj.arena;
	for (size_t i = 0; i < as->nstandards; i++)
		standards |= 1u << as->standards[i];
	e->audit_id = ADUP(a, as->audit_id);
	e->members = plan_arena_alloc(a, (n + 1) * sizeof(*e->members));
	if (e->members == NULL) {
		entity_free(e);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		e->members[i] = old->members[i];
		e->members[i].person_id = ADUP(a, old->members[i].person_id);
		if (strcmp(old->members[i].person_id, as->person_id) == 0)
			m = &e->members[i];
	}
	e->nmembers = n;
	/* a person assigned again gets the new role and standards */
	if (m == NULL) {
		m = &e->members[e->nmembers++];
		m->person_id = ADUP(a, as->person_id);
	}
	m->role = as->role;
	m->standards = standards;
	res->member = m;
	res->audit = plan_state_get(st, PLAN_MAP_AUDIT, as->audit_id);
	return store(st, PLAN_MAP_ROSTER, as->audit_id, e, errstr, errstr_size);
}

/* ---- SubmitSoa (R4.2, R4.3, E17) ---- */

static int check_soa(const struct plan_state *st, const struct plan_rules *r,
                     const struct plan_cmd *cmd, struct plan_result *res)
{
	const struct plan_submit_soa *so = &cmd->u.soa;
	const struct plan_audit *au;
	const char *const *ids = NULL;
	const char *name = std_name(so->standard);
	size_t nids = 0;
	unsigned char *found = NULL;
	int err = 0;

	au = audit_for(st, cmd, so->audit_id, res, &err);
	if (!err && (so->standard < 0 || so->standard >= PLAN_NSTANDARDS))
		return refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
	if (!err && au && audit_scope(au, so->standard) == NULL)
		err = refuse(res, PLAN_STANDARD_NOT_IN_AUDIT, name, "audit %s does not cover %s",
		             au->audit_id, name);
	if (!err && au && audit_closed(st, au))
		err = refuse(res, PLAN_AUDIT_CLOSED, au->audit_id, "audit %s is completed",
		             au->audit_id);
	if (!err && blank(so->soa_version))
		err = refuse(res, PLAN_INVALID_VALUE, "soa_version", "SoA version is empty");
	if (err)
		return err;
	if (r->catalog.annex_a)
		nids = r->catalog.annex_a(r->catalog.arg, so->standard, &ids);
	if (nids == 0)
		return refuse(res, PLAN_INVALID_VALUE, name, "no Annex A catalog for %s", name);
	found = calloc(nids, 1);
	if (found == NULL)
		return ASSAY_ERR_FATAL;
	/* every row: a known Annex A control, once, justified */
	for (size_t i = 0; !err && i < so->nrows; i++) {
		const struct plan_soa_row *row = &so->rows[i];
		size_t k = 0;

		while (k < nids && strcmp(ids[k], row->control_id) != 0)
			k++;
		if (k == nids) {
			err = refuse(res, PLAN_SOA_UNKNOWN_CONTROL, row->control_id,
			             "%s is not an Annex A control of %s", row->control_id, name);
			continue;
		}
		if (found[k]) {
			err = refuse(res, PLAN_SOA_DUPLICATE_CONTROL, row->control_id,
			             "%s is listed more than once", row->control_id);
			continue;
		}
		found[k] = 1;
		if (blank(row->justification))
			err = refuse(res, PLAN_MISSING_JUSTIFICATION, row->control_id,
			             "%s has no justification for its %s", row->control_id,
			             row->applicable ? "inclusion" : "exclusion");
	}
	/* every Annex A control of the standard is in the SoA (93 / 38) */
	for (size_t k = 0; !err && k < nids; k++)
		if (!found[k])
			err = refuse(res, PLAN_SOA_MISSING_CONTROL, ids[k],
			             "%s is missing from the SoA", ids[k]);
	free(found);
	return err;
}

static int apply_soa(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                     char *errstr, size_t errstr_size)
{
	const struct plan_submit_soa *so = &cmd->u.soa;
	char key[PLAN_KEY_MAX];
	const struct plan_soa *old;
	struct plan_soa *e = plan_entity_new(sizeof(*e));
	struct plan_arena *a;
	int err;

	if (e == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory");
	plan_key(key, sizeof(key), so->audit_id, std_name(so->standard), NULL);
	old = plan_state_get(st, PLAN_MAP_SOA, key);
	a = e->obj.arena;
	e->audit_id = ADUP(a, so->audit_id);
	e->soa_version = ADUP(a, so->soa_version);
	e->command_id = ADUP(a, cmd->head.command_id);
	e->standard = so->standard;
	e->revision = old ? old->revision + 1 : 1;
	e->rows = arr_dup(a, so->rows, so->nrows, sizeof(*so->rows));
	e->nrows = e->rows ? so->nrows : 0;
	for (size_t i = 0; i < e->nrows; i++) {
		e->rows[i].control_id = ADUP(a, so->rows[i].control_id);
		e->rows[i].justification = ADUP(a, so->rows[i].justification);
		if (e->rows[i].applicable)
			e->applicable_count++;
		else
			e->excluded_count++;
	}
	if ((err = store(st, PLAN_MAP_SOA, key, e, errstr, errstr_size)) != 0)
		return err;
	res->soa = e;
	res->audit = plan_state_get(st, PLAN_MAP_AUDIT, so->audit_id);
	return 0;
}

/* ---- CompleteStage (R1.10-R1.13, R2.22) ---- */

static int check_complete(const struct plan_state *st, const struct plan_cmd *cmd,
                          struct plan_result *res)
{
	const struct plan_complete *co = &cmd->u.complete;
	const struct plan_audit *au;
	const struct plan_roster *ro;
	int err = 0;
	unsigned seen = 0;

	au = audit_for(st, cmd, co->audit_id, res, &err);
	if (err || au == NULL)
		return err;
	if (co->stage != au->audit_type)
		err = refuse(res, PLAN_INVALID_VALUE, "stage", "audit %s is a %s audit, not %s",
		             au->audit_id, plan_audit_type_names[au->audit_type],
		             co->stage >= 0 ? plan_audit_type_names[co->stage] : "unknown");
	if (!err && co->last_day < au->planned_start)
		err = refuse(res, PLAN_INVALID_DATES, "last_day",
		             "the last day is before the audit's planned start");
	if (!err && co->last_day > plan_day_of_ms(cmd->head.issued_at))
		err = refuse(res, PLAN_INVALID_DATES, "last_day",
		             "the last day is after the day the command was issued");
	if (!err && co->nstandards == 0)
		err = refuse(res, PLAN_NO_STANDARD, NULL, "the command names no standard");
	ro = roster_get(st, au->audit_id);
	for (size_t i = 0; !err && i < co->nstandards; i++) {
		int s = co->standards[i];
		const struct plan_scope *sc;
		bool competent = false;

		if (s < 0 || s >= PLAN_NSTANDARDS) {
			err = refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
			continue;
		}
		if (seen & (1u << s))
			continue;
		seen |= 1u << s;
		if ((sc = audit_scope(au, s)) == NULL) {
			err = refuse(res, PLAN_STANDARD_NOT_IN_AUDIT, std_name(s),
			             "audit %s does not cover %s", au->audit_id, std_name(s));
			continue;
		}
		if (completion_get(st, au->audit_id, s)) {
			err = refuse(res, PLAN_STAGE_ALREADY_COMPLETED, std_name(s),
			             "%s of audit %s is already completed", std_name(s),
			             au->audit_id);
			continue;
		}
		/* every standard needs a team member who audits it (R2.22) */
		for (size_t k = 0; ro && k < ro->nmembers; k++)
			competent |= (ro->members[k].standards & (1u << s)) &&
			             ro->members[k].role != PLAN_TECHNICAL_EXPERT;
		if (!competent)
			err = refuse(res, PLAN_NO_COMPETENT_MEMBER, std_name(s),
			             "no auditor on the team of %s audits %s", au->audit_id,
			             std_name(s));
		if (!err && au->audit_type == PLAN_STAGE_2) {
			const struct plan_cycle *cy = cycle_get(st, sc->cycle_id);

			if (cy == NULL || cy->stage1_completed_on == PLAN_NO_DATE)
				err = refuse(res, PLAN_STAGE1_NOT_COMPLETED, std_name(s),
				             "no completed stage 1 for %s in cycle %s", std_name(s),
				             sc->cycle_id);
		}
	}
	return err;
}

static int apply_complete(struct plan_state *st, const struct plan_cmd *cmd,
                          struct plan_result *res, char *errstr, size_t errstr_size)
{
	const struct plan_complete *co = &cmd->u.complete;
	const struct plan_audit *au = plan_state_get(st, PLAN_MAP_AUDIT, co->audit_id);
	int err;

	for (size_t i = 0; i < co->nstandards; i++) {
		int s = co->standards[i];
		char key[PLAN_KEY_MAX];
		struct plan_completion *e;

		if (completion_get(st, au->audit_id, s))
			continue; /* named twice in this command */
		e = plan_entity_new(sizeof(*e));
		if (e == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "plan state: out of memory");
		e->audit_id = ADUP(e->obj.arena, au->audit_id);
		e->command_id = ADUP(e->obj.arena, cmd->head.command_id);
		e->standard = s;
		e->stage = co->stage;
		e->last_day = co->last_day;
		plan_key(key, sizeof(key), au->audit_id, std_name(s), NULL);
		if ((err = store(st, PLAN_MAP_COMPLETION, key, e, errstr, errstr_size)) != 0)
			return err;
		if (au->audit_type == PLAN_STAGE_1) {
			const struct plan_cycle *old = cycle_get(st, audit_scope(au, s)->cycle_id);
			struct plan_cycle *cy = old ? cycle_copy(old, 0, 0) : NULL;

			if (cy == NULL)
				return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
				                  "plan state: out of memory or cycle missing");
			cy->stage1_completed_on = co->last_day;
			if ((err = store(st, PLAN_MAP_CYCLE, cy->cycle_id, cy, errstr,
			                 errstr_size)) != 0)
				return err;
		}
	}
	res->audit = au;
	return 0;
}

/* ---- RecordDecisionMaker (R1.20, R1.21, R1.38, E1) ---- */

static int check_dm(const struct plan_state *st, const struct plan_rules *r,
                    const struct plan_cmd *cmd, struct plan_result *res)
{
	const struct plan_record_dm *dm = &cmd->u.dm;
	const struct plan_audit *au;
	const struct plan_person *p = NULL;
	const struct plan_scope *sc = NULL;
	int32_t today = plan_day_of_ms(cmd->head.issued_at);
	int err = 0;

	au = audit_for(st, cmd, dm->audit_id, res, &err);
	if (!err)
		err = check_id(res, "person_id", dm->person_id);
	if (!err && dm->person_id &&
	    (p = plan_state_get(st, PLAN_MAP_PERSON, dm->person_id)) == NULL)
		err = refuse(res, PLAN_UNKNOWN_PERSON, dm->person_id, "no person %s",
		             dm->person_id);
	if (!err && p)
		err = check_tenant(res, "person", dm->person_id, p->tenant_id, cmd->head.tenant_id);
	if (!err && (dm->standard < 0 || dm->standard >= PLAN_NSTANDARDS))
		return refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
	if (!err && au && (sc = audit_scope(au, dm->standard)) == NULL)
		err = refuse(res, PLAN_STANDARD_NOT_IN_AUDIT, std_name(dm->standard),
		             "audit %s does not cover %s", au->audit_id, std_name(dm->standard));
	if (err || p == NULL || sc == NULL)
		return err;
	/* competent to decide this standard (R1.21, R2.15, E1) */
	if (!plan_competent(p, dm->standard, PLAN_DECISION_MAKER, today, today))
		err = refuse(res, PLAN_NOT_COMPETENT, std_name(dm->standard),
		             "%s has no valid DECISION_MAKER competence for %s", p->person_id,
		             std_name(dm->standard));
	/* impartial: no relation with the client in the cooling-off period (R1.38) */
	for (size_t i = 0; !err && i < p->nrelations; i++)
		if (strcmp(p->relations[i].client_id, au->client_id) == 0 &&
		    plan_relation_conflicts(&p->relations[i], today, r->conflict_months))
			err = refuse(res, PLAN_CONFLICT_OF_INTEREST, p->person_id,
			             "%s has a relation with %s within %d months", p->person_id,
			             au->client_id, r->conflict_months);
	/* not on any team of this client, standard and cycle (R1.20, E1) */
	if (!err && cycle_has_member(st, cycle_get(st, sc->cycle_id), p->person_id))
		err = refuse(res, PLAN_TEAM_MEMBER_AS_DECISION_MAKER, p->person_id,
		             "%s is on an audit team of %s for %s in cycle %s", p->person_id,
		             au->client_id, std_name(dm->standard), sc->cycle_id);
	return err;
}

static int apply_dm(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                    char *errstr, size_t errstr_size)
{
	const struct plan_record_dm *dm = &cmd->u.dm;
	const struct plan_audit *au = plan_state_get(st, PLAN_MAP_AUDIT, dm->audit_id);
	const struct plan_scope *sc = audit_scope(au, dm->standard);
	const struct plan_cycle *old = cycle_get(st, sc->cycle_id);
	struct plan_cycle *cy;
	struct plan_decision_maker *d;

	res->audit = au;
	res->cycle_id = sc->cycle_id;
	if (cycle_has_dm(old, dm->person_id))
		return 0; /* recorded already: nothing changes, the event repeats the fact */
	cy = old ? cycle_copy(old, 0, 1) : NULL;
	if (cy == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory or cycle missing");
	d = &cy->dms[cy->ndms++];
	d->person_id = ADUP(cy->obj.arena, dm->person_id);
	d->audit_id = ADUP(cy->obj.arena, dm->audit_id);
	d->command_id = ADUP(cy->obj.arena, cmd->head.command_id);
	res->cycle_id = cy->cycle_id;
	return store(st, PLAN_MAP_CYCLE, cy->cycle_id, cy, errstr, errstr_size);
}

/* ---- dispatch ---- */

int plan_apply(struct plan_state *st, const struct plan_rules *r, const struct plan_cmd *cmd,
               struct plan_result *res, char *errstr, size_t errstr_size)
{
	const struct plan_client *cl = NULL;
	struct scope_plan plans[8];
	int err = 0;

	res->status = PLAN_REFUSED;
	/* a command id seen before is applied once only: the runtime's exactly-once position
	 * is the first line of defence, this the second */
	if (cmd->head.command_id && cmd->head.command_id[0] &&
	    plan_state_get(st, PLAN_MAP_COMMAND, cmd->head.command_id)) {
		res->status = PLAN_IGNORED;
		return 0;
	}
	err = check_id(res, "command_id", cmd->head.command_id);
	if (!err)
		err = check_id(res, "tenant_id", cmd->head.tenant_id);
	if (err)
		goto fatal;
	if (res->nreasons)
		return 0; /* without usable ids nothing else can be checked or remembered */

	switch (cmd->kind) {
	case PLAN_REGISTER_CLIENT:
		err = check_register_client(st, cmd, res);
		break;
	case PLAN_RECORD_AUDITOR:
		err = check_record_auditor(st, cmd, res);
		break;
	case PLAN_OPEN_AUDIT: {
		const struct plan_audit *old =
		        cmd->u.audit.audit_id
		                ? plan_state_get(st, PLAN_MAP_AUDIT, cmd->u.audit.audit_id)
		                : NULL;

		memset(plans, 0, sizeof(plans));
		if (cmd->u.audit.nscopes > PLAN_MAX_STANDARDS) {
			err = refuse(res, PLAN_INVALID_VALUE, "standards",
			             "%zu standards; an audit covers one or two",
			             cmd->u.audit.nscopes);
			break;
		}
		if (old && same_audit(old, cmd)) {
			res->status = PLAN_IGNORED; /* the same audit sent again */
			break;
		}
		if (old) {
			err = refuse(res, PLAN_ID_CONFLICT, old->audit_id,
			             "audit %s exists with different content", old->audit_id);
			break;
		}
		err = check_open_audit(st, r, cmd, &cl, plans, res);
		break;
	}
	case PLAN_ASSIGN_TEAM_MEMBER:
		err = check_assign(st, r, cmd, res);
		break;
	case PLAN_SUBMIT_SOA:
		err = check_soa(st, r, cmd, res);
		break;
	case PLAN_COMPLETE_STAGE:
		err = check_complete(st, cmd, res);
		break;
	case PLAN_RECORD_DECISION_MAKER:
		err = check_dm(st, r, cmd, res);
		break;
	default:
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan: unknown command kind %d", cmd->kind);
	}
	if (err)
		goto fatal;
	if (res->status != PLAN_IGNORED && res->nreasons == 0) {
		switch (cmd->kind) {
		case PLAN_REGISTER_CLIENT:
			err = apply_register_client(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_RECORD_AUDITOR:
			err = apply_record_auditor(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_OPEN_AUDIT:
			err = apply_open_audit(st, r, cmd, cl, plans, res, errstr, errstr_size);
			break;
		case PLAN_ASSIGN_TEAM_MEMBER:
			err = apply_assign(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_SUBMIT_SOA:
			err = apply_soa(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_COMPLETE_STAGE:
			err = apply_complete(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_RECORD_DECISION_MAKER:
			err = apply_dm(st, cmd, res, errstr, errstr_size);
			break;
		}
		if (err)
			return err;
		res->status = PLAN_APPLIED;
	}
	return plan_state_put(st, PLAN_MAP_COMMAND, cmd->head.command_id, PLAN_SEEN) == 0
	               ? 0
	               : assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
	                            "plan state: out of memory");
fatal:
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "plan rules: out of memory");
}
