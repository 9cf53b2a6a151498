/*
 * The rules of assay-plan (plan_rules.h). Each command is checked completely: every broken
 * rule adds a reason, and only a command with no reason changes the state. Changes store new
 * entities (deep copies into their own arena) so that a rolled-back batch leaves the previous
 * ones untouched. Rule sources are domain-rules clauses (R...) and table E1-E20.
 *
 * This file holds the enum names, dates, the helpers every command family shares (reasons,
 * entity copies, lookups: plan_rules_int.h) and plan_apply, which dispatches to the families
 * in plan_rules_party.c, plan_rules_audit.c, plan_rules_team.c and plan_rules_stage.c.
 */
#include "plan_rules_int.h"
#include "assay_err.h"
#include "assay_vec.h"

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

int plan_refuse(struct plan_result *res, int code, const char *subject, const char *fmt, ...)
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
int plan_check_id(struct plan_result *res, const char *what, const char *id)
{
	if (id == NULL || id[0] == '\0')
		return plan_refuse(res, PLAN_INVALID_VALUE, what, "%s is empty", what);
	if (strlen(id) > PLAN_ID_MAX)
		return plan_refuse(res, PLAN_INVALID_VALUE, what, "%s is longer than %d bytes",
		                   what, PLAN_ID_MAX);
	return 0;
}

bool plan_blank(const char *s)
{
	if (s == NULL)
		return true;
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

const char *plan_std_name(int standard)
{
	return standard >= 0 && standard < PLAN_NSTANDARDS ? plan_standard_names[standard]
	                                                   : "unknown";
}

/* Refuses a standard symbol this build does not know, and one not current at any of the
 * given moments (E19, R1.28; the windows are catalog data). */
int plan_check_standard_current(const struct plan_rules *r, struct plan_result *res, int standard,
                                const int64_t *at_ms, size_t nat)
{
	if (standard < 0 || standard >= PLAN_NSTANDARDS)
		return plan_refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
	if (r->catalog.edition_valid == NULL)
		return 0;
	for (size_t i = 0; i < nat; i++)
		if (!r->catalog.edition_valid(r->catalog.arg, standard, at_ms[i]))
			return plan_refuse(res, PLAN_STANDARD_NOT_CURRENT, plan_std_name(standard),
			                   "%s may not be used for audits on that date",
			                   plan_std_name(standard));
	return 0;
}

/* Cross-tenant use of an entity (ids are global; a tenant sees only its own). */
int plan_check_tenant(struct plan_result *res, const char *what, const char *id,
                      const char *entity_tenant, const char *cmd_tenant)
{
	if (strcmp(entity_tenant, cmd_tenant) == 0)
		return 0;
	return plan_refuse(res, PLAN_WRONG_TENANT, id, "%s %s belongs to another tenant", what, id);
}

/* ---- entity copies ---- */

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

void plan_entity_free(void *e)
{
	if (e)
		plan_arena_destroy(((struct plan_obj *)e)->arena);
}

/* Stores e (or frees it when the arena failed or the store does). */
int plan_store(struct plan_state *st, enum plan_map m, const char *key, void *e, char *errstr,
               size_t errstr_size)
{
	if (e == NULL || plan_arena_failed(((struct plan_obj *)e)->arena) ||
	    plan_state_put(st, m, key, e) != 0) {
		plan_entity_free(e);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory");
	}
	return 0;
}

void *plan_arr_dup(struct plan_arena *a, const void *p, size_t n, size_t size)
{
	void *q;

	if (n == 0)
		return NULL;
	q = plan_arena_alloc(a, n * size);
	if (q)
		memcpy(q, p, n * size);
	return q;
}

struct plan_client *plan_client_copy(const struct plan_client *c)
{
	struct plan_client *e = plan_entity_new(sizeof(*e));
	struct plan_arena *a;

	if (e == NULL)
		return NULL;
	a = e->obj.arena;
	e->client_id = PLAN_ADUP(a, c->client_id);
	e->tenant_id = PLAN_ADUP(a, c->tenant_id);
	e->legal_name = PLAN_ADUP(a, c->legal_name);
	e->command_id = PLAN_ADUP(a, c->command_id);
	e->revision = c->revision;
	e->persons = c->persons;
	e->sites = plan_arr_dup(a, c->sites, c->nsites, sizeof(*c->sites));
	e->nsites = e->sites ? c->nsites : 0;
	for (size_t i = 0; i < e->nsites; i++) {
		e->sites[i].site_id = PLAN_ADUP(a, c->sites[i].site_id);
		e->sites[i].name = PLAN_ADUP(a, c->sites[i].name);
		e->sites[i].country = PLAN_ADUP(a, c->sites[i].country);
	}
	e->groups = plan_arr_dup(a, c->groups, c->ngroups, sizeof(*c->groups));
	e->ngroups = e->groups ? c->ngroups : 0;
	for (size_t i = 0; i < e->ngroups; i++) {
		e->groups[i].group_id = PLAN_ADUP(a, c->groups[i].group_id);
		e->groups[i].description = PLAN_ADUP(a, c->groups[i].description);
		e->groups[i].justification = PLAN_ADUP(a, c->groups[i].justification);
	}
	e->ai_systems = plan_arr_dup(a, c->ai_systems, c->nai_systems, sizeof(*c->ai_systems));
	e->nai_systems = e->ai_systems ? c->nai_systems : 0;
	for (size_t i = 0; i < e->nai_systems; i++) {
		e->ai_systems[i].ai_system_id = PLAN_ADUP(a, c->ai_systems[i].ai_system_id);
		e->ai_systems[i].name = PLAN_ADUP(a, c->ai_systems[i].name);
		e->ai_systems[i].intended_purpose = PLAN_ADUP(a, c->ai_systems[i].intended_purpose);
	}
	if ((c->nsites && !e->sites) || (c->ngroups && !e->groups) ||
	    (c->nai_systems && !e->ai_systems)) {
		plan_entity_free(e);
		return NULL;
	}
	return e;
}

struct plan_person *plan_person_copy(const struct plan_person *p)
{
	struct plan_person *e = plan_entity_new(sizeof(*e));
	struct plan_arena *a;

	if (e == NULL)
		return NULL;
	a = e->obj.arena;
	e->person_id = PLAN_ADUP(a, p->person_id);
	e->tenant_id = PLAN_ADUP(a, p->tenant_id);
	e->name = PLAN_ADUP(a, p->name);
	e->command_id = PLAN_ADUP(a, p->command_id);
	e->revision = p->revision;
	e->competences = plan_arr_dup(a, p->competences, p->ncompetences, sizeof(*p->competences));
	e->ncompetences = e->competences ? p->ncompetences : 0;
	for (size_t i = 0; i < e->ncompetences; i++)
		e->competences[i].technical_area = PLAN_ADUP(a, p->competences[i].technical_area);
	e->relations = plan_arr_dup(a, p->relations, p->nrelations, sizeof(*p->relations));
	e->nrelations = e->relations ? p->nrelations : 0;
	for (size_t i = 0; i < e->nrelations; i++)
		e->relations[i].client_id = PLAN_ADUP(a, p->relations[i].client_id);
	if ((p->ncompetences && !e->competences) || (p->nrelations && !e->relations)) {
		plan_entity_free(e);
		return NULL;
	}
	return e;
}

struct plan_cycle *plan_cycle_copy(const struct plan_cycle *c, size_t extra_audits,
                                   size_t extra_dms)
{
	struct plan_cycle *e = plan_entity_new(sizeof(*e));
	struct plan_arena *a;

	if (e == NULL)
		return NULL;
	a = e->obj.arena;
	e->cycle_id = PLAN_ADUP(a, c->cycle_id);
	e->client_id = PLAN_ADUP(a, c->client_id);
	e->standard = c->standard;
	e->seq = c->seq;
	e->stage1_completed_on = c->stage1_completed_on;
	if (c->naudits + extra_audits) {
		const char **ids = plan_arena_alloc(a, (c->naudits + extra_audits) * sizeof(*ids));

		if (ids == NULL)
			goto fail;
		for (size_t i = 0; i < c->naudits; i++)
			ids[i] = PLAN_ADUP(a, c->audit_ids[i]);
		e->audit_ids = ids;
		e->naudits = c->naudits;
	}
	if (c->ndms + extra_dms) {
		struct plan_decision_maker *dms =
		        plan_arena_alloc(a, (c->ndms + extra_dms) * sizeof(*dms));

		if (dms == NULL)
			goto fail;
		for (size_t i = 0; i < c->ndms; i++) {
			dms[i].person_id = PLAN_ADUP(a, c->dms[i].person_id);
			dms[i].audit_id = PLAN_ADUP(a, c->dms[i].audit_id);
			dms[i].command_id = PLAN_ADUP(a, c->dms[i].command_id);
		}
		e->dms = dms;
		e->ndms = c->ndms;
	}
	return e;
fail:
	plan_entity_free(e);
	return NULL;
}

/* ---- lookups ---- */

const struct plan_cycle *plan_cycle_get(const struct plan_state *st, const char *id)
{
	return id ? plan_state_get(st, PLAN_MAP_CYCLE, id) : NULL;
}

const struct plan_roster *plan_roster_get(const struct plan_state *st, const char *audit_id)
{
	return plan_state_get(st, PLAN_MAP_ROSTER, audit_id);
}

const struct plan_member *plan_roster_find(const struct plan_roster *ro, const char *person_id)
{
	for (size_t i = 0; ro && i < ro->nmembers; i++)
		if (strcmp(ro->members[i].person_id, person_id) == 0)
			return &ro->members[i];
	return NULL;
}

const struct plan_completion *plan_completion_get(const struct plan_state *st, const char *audit_id,
                                                  int standard)
{
	char key[PLAN_KEY_MAX];

	if (plan_key(key, sizeof(key), audit_id, plan_std_name(standard), NULL) != 0)
		return NULL;
	return plan_state_get(st, PLAN_MAP_COMPLETION, key);
}

const struct plan_scope *plan_audit_scope(const struct plan_audit *au, int standard)
{
	for (size_t i = 0; i < au->nscopes; i++)
		if (au->scopes[i].standard == standard)
			return &au->scopes[i];
	return NULL;
}

const struct plan_scope *plan_command_scope(const struct plan_audit *au, int s, unsigned *seen,
                                            struct plan_result *res, int *err)
{
	const struct plan_scope *sc;

	if (s < 0 || s >= PLAN_NSTANDARDS) {
		*err = plan_refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
		return NULL;
	}
	if (*seen & (1u << s))
		return NULL;
	*seen |= 1u << s;
	sc = plan_audit_scope(au, s);
	if (sc == NULL)
		*err = plan_refuse(res, PLAN_STANDARD_NOT_IN_AUDIT, plan_std_name(s),
		                   "audit %s does not cover %s", au->audit_id, plan_std_name(s));
	return sc;
}

bool plan_audit_closed(const struct plan_state *st, const struct plan_audit *au)
{
	for (size_t i = 0; i < au->nscopes; i++)
		if (plan_completion_get(st, au->audit_id, au->scopes[i].standard) == NULL)
			return false;
	return true;
}

bool plan_cycle_has_dm(const struct plan_cycle *cy, const char *person_id)
{
	for (size_t i = 0; cy && i < cy->ndms; i++)
		if (strcmp(cy->dms[i].person_id, person_id) == 0)
			return true;
	return false;
}

/* Whether person is on the team of any audit of cycle cy (stage 1, stage 2, surveillance,
 * special: every audit that covered the cycle), technical experts included (R1.20). */
bool plan_cycle_has_member(const struct plan_state *st, const struct plan_cycle *cy,
                           const char *person_id)
{
	for (size_t i = 0; cy && i < cy->naudits; i++)
		if (plan_roster_find(plan_roster_get(st, cy->audit_ids[i]), person_id))
			return true;
	return false;
}

/* The common checks of a command on an existing audit: known, same tenant. */
const struct plan_audit *plan_audit_for(const struct plan_state *st, const struct plan_cmd *cmd,
                                        const char *audit_id, struct plan_result *res, int *err)
{
	const struct plan_audit *au;

	if ((*err = plan_check_id(res, "audit_id", audit_id)) != 0 || res->nreasons)
		return NULL;
	au = plan_state_get(st, PLAN_MAP_AUDIT, audit_id);
	if (au == NULL) {
		*err = plan_refuse(res, PLAN_UNKNOWN_AUDIT, audit_id, "no audit %s", audit_id);
		return NULL;
	}
	*err = plan_check_tenant(res, "audit", audit_id, au->tenant_id, cmd->head.tenant_id);
	return au;
}

/* ---- dispatch ---- */

int plan_apply(struct plan_state *st, const struct plan_rules *r, const struct plan_cmd *cmd,
               struct plan_result *res, char *errstr, size_t errstr_size)
{
	const struct plan_client *cl = NULL;
	struct plan_scope_plan plans[8];
	int err = 0;

	res->status = PLAN_REFUSED;
	/* a command id seen before is applied once only: the runtime's exactly-once position
	 * is the first line of defence, this the second */
	if (cmd->head.command_id && cmd->head.command_id[0] &&
	    plan_state_get(st, PLAN_MAP_COMMAND, cmd->head.command_id)) {
		res->status = PLAN_IGNORED;
		return 0;
	}
	err = plan_check_id(res, "command_id", cmd->head.command_id);
	if (!err)
		err = plan_check_id(res, "tenant_id", cmd->head.tenant_id);
	if (err)
		goto fatal;
	if (res->nreasons)
		return 0; /* without usable ids nothing else can be checked or remembered */

	switch (cmd->kind) {
	case PLAN_REGISTER_CLIENT:
		err = plan_check_register_client(st, cmd, res);
		break;
	case PLAN_RECORD_AUDITOR:
		err = plan_check_record_auditor(st, cmd, res);
		break;
	case PLAN_OPEN_AUDIT: {
		const struct plan_audit *old =
		        cmd->u.audit.audit_id
		                ? plan_state_get(st, PLAN_MAP_AUDIT, cmd->u.audit.audit_id)
		                : NULL;

		memset(plans, 0, sizeof(plans));
		if (cmd->u.audit.nscopes > PLAN_MAX_STANDARDS) {
			err = plan_refuse(res, PLAN_INVALID_VALUE, "standards",
			                  "%zu standards; an audit covers one or two",
			                  cmd->u.audit.nscopes);
			break;
		}
		if (old && plan_same_audit(old, cmd)) {
			res->status = PLAN_IGNORED; /* the same audit sent again */
			break;
		}
		if (old) {
			err = plan_refuse(res, PLAN_ID_CONFLICT, old->audit_id,
			                  "audit %s exists with different content", old->audit_id);
			break;
		}
		err = plan_check_open_audit(st, r, cmd, &cl, plans, res);
		break;
	}
	case PLAN_ASSIGN_TEAM_MEMBER:
		err = plan_check_assign(st, r, cmd, res);
		break;
	case PLAN_SUBMIT_SOA:
		err = plan_check_soa(st, r, cmd, res);
		break;
	case PLAN_COMPLETE_STAGE:
		err = plan_check_complete(st, cmd, res);
		break;
	case PLAN_RECORD_DECISION_MAKER:
		err = plan_check_dm(st, r, cmd, res);
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
			err = plan_apply_register_client(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_RECORD_AUDITOR:
			err = plan_apply_record_auditor(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_OPEN_AUDIT:
			err = plan_apply_open_audit(st, r, cmd, cl, plans, res, errstr,
			                            errstr_size);
			break;
		case PLAN_ASSIGN_TEAM_MEMBER:
			err = plan_apply_assign(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_SUBMIT_SOA:
			err = plan_apply_soa(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_COMPLETE_STAGE:
			err = plan_apply_complete(st, cmd, res, errstr, errstr_size);
			break;
		case PLAN_RECORD_DECISION_MAKER:
			err = plan_apply_dm(st, cmd, res, errstr, errstr_size);
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
