/*
 * Audit commands off the wire (plan_command.h). The generated decoders do all of the Avro
 * work (schema resolution, validation, NUL and UTF-8 checks); this file only turns their
 * views into the rules' plain structs: strings copied NUL-terminated into the batch arena,
 * optional dates as PLAN_NO_DATE, AI roles as a bit set, the integration record as the
 * rules' array. The generated enums and the plan's share their order (asserted below).
 */
#include "plan_command.h"
#include "assay_err.h"
#include "contract_assign_team_member.h"
#include "contract_complete_stage.h"
#include "contract_open_audit.h"
#include "contract_record_auditor.h"
#include "contract_record_decision_maker.h"
#include "contract_register_client.h"
#include "contract_submit_soa.h"

#include <string.h>

_Static_assert(ASSAY_STANDARD_NSYMBOLS == PLAN_NSTANDARDS &&
                       (int)ASSAY_STANDARD_ISO27001_2013 == PLAN_ISO27001_2013 &&
                       (int)ASSAY_STANDARD_ISO27001_2022 == PLAN_ISO27001_2022 &&
                       (int)ASSAY_STANDARD_ISO42001_2023 == PLAN_ISO42001_2023,
               "Standard: plan order differs from the schema");
_Static_assert(ASSAY_AUDIT_TYPE_NSYMBOLS == PLAN_NAUDIT_TYPES &&
                       (int)ASSAY_AUDIT_TYPE_STAGE_1 == PLAN_STAGE_1 &&
                       (int)ASSAY_AUDIT_TYPE_STAGE_2 == PLAN_STAGE_2 &&
                       (int)ASSAY_AUDIT_TYPE_SURVEILLANCE == PLAN_SURVEILLANCE &&
                       (int)ASSAY_AUDIT_TYPE_RECERTIFICATION == PLAN_RECERTIFICATION &&
                       (int)ASSAY_AUDIT_TYPE_SPECIAL == PLAN_SPECIAL,
               "AuditType: plan order differs from the schema");
_Static_assert(ASSAY_AUDITOR_ROLE_NSYMBOLS == PLAN_NROLES &&
                       (int)ASSAY_AUDITOR_ROLE_AUDITOR == PLAN_AUDITOR &&
                       (int)ASSAY_AUDITOR_ROLE_LEAD_AUDITOR == PLAN_LEAD_AUDITOR &&
                       (int)ASSAY_AUDITOR_ROLE_TECHNICAL_EXPERT == PLAN_TECHNICAL_EXPERT &&
                       (int)ASSAY_AUDITOR_ROLE_DECISION_MAKER == PLAN_DECISION_MAKER,
               "AuditorRole: plan order differs from the schema");
_Static_assert(ASSAY_RELATION_KIND_NSYMBOLS == PLAN_NRELATION_KINDS &&
                       (int)ASSAY_RELATION_KIND_CONSULTANCY == PLAN_CONSULTANCY &&
                       (int)ASSAY_RELATION_KIND_EMPLOYMENT == PLAN_EMPLOYMENT &&
                       (int)ASSAY_RELATION_KIND_DECLARED_RELATIONSHIP == PLAN_DECLARED_RELATIONSHIP,
               "RelationKind: plan order differs from the schema");
_Static_assert(ASSAY_AI_ROLE_NSYMBOLS == PLAN_NAI_ROLES &&
                       ASSAY_AI_ACT_TIER_NSYMBOLS == PLAN_NAI_TIERS,
               "AiRole, AiActTier: plan sizes differ from the schema");

/* The command records, in enum plan_cmd_kind order. */
static const struct assay_ct_type *const command_types[PLAN_NCMD_KINDS] = {
        &assay_register_client_type,      &assay_record_auditor_type, &assay_open_audit_type,
        &assay_assign_team_member_type,   &assay_submit_soa_type,     &assay_complete_stage_type,
        &assay_record_decision_maker_type};

int plan_cmd_kind(const char *full_name)
{
	for (int k = 0; full_name && k < PLAN_NCMD_KINDS; k++)
		if (strcmp(full_name, command_types[k]->name) == 0)
			return k;
	return -1;
}

/* The arena the copies go to; failed is set once an allocation fails. */
struct conv {
	struct assay_arena *arena;
	bool failed;
};

static void *alloc(struct conv *c, size_t n, size_t size)
{
	return assay_arena_array(c->arena, n, size, &c->failed);
}

/* s as a NUL-terminated copy ("" when memory ran out: c->failed tells). */
static const char *str(struct conv *c, struct assay_str s)
{
	char *p = assay_arena_alloc(c->arena, s.len + 1);

	if (p == NULL) {
		c->failed = true;
		return "";
	}
	if (s.len)
		memcpy(p, s.s, s.len);
	p[s.len] = '\0';
	return p;
}

static const char *opt_str(struct conv *c, bool has, struct assay_str s)
{
	return has ? str(c, s) : NULL;
}

static int32_t opt_date(bool has, int32_t day)
{
	return has ? day : PLAN_NO_DATE;
}

static void head(struct conv *c, struct plan_head *h, struct assay_str command_id,
                 struct assay_str tenant_id, int64_t issued_at, struct assay_str issued_by)
{
	h->command_id = str(c, command_id);
	h->tenant_id = str(c, tenant_id);
	h->issued_at = issued_at;
	h->issued_by = str(c, issued_by);
}

#define HEAD(c, h, in) head(c, h, (in).command_id, (in).tenant_id, (in).issued_at, (in).issued_by)

/* An array of standards as the rules' ints. */
static const int *standards(struct conv *c, const enum assay_standard *items, size_t n)
{
	int *v = alloc(c, n, sizeof(*v));

	for (size_t i = 0; v && i < n; i++)
		v[i] = (int)items[i];
	return v;
}

static void from_ai_systems(struct conv *c, const struct assay_ai_system *in, size_t n,
                            struct plan_ai_system **out, size_t *nout)
{
	struct plan_ai_system *v = alloc(c, n, sizeof(*v));

	for (size_t i = 0; v && i < n; i++) {
		v[i].ai_system_id = str(c, in[i].ai_system_id);
		v[i].name = str(c, in[i].name);
		for (size_t k = 0; k < in[i].roles.count; k++)
			v[i].roles |= 1u << in[i].roles.items[k];
		v[i].tier = (int)in[i].eu_ai_act_tier;
		v[i].intended_purpose =
		        opt_str(c, in[i].has_intended_purpose, in[i].intended_purpose);
	}
	*out = v;
	*nout = v ? n : 0;
}

static void from_register_client(struct conv *c, const struct assay_register_client *in,
                                 struct plan_cmd *cmd)
{
	struct plan_client *cl = &cmd->u.client;

	HEAD(c, &cmd->head, *in);
	cl->client_id = str(c, in->client_id);
	cl->legal_name = str(c, in->legal_name);
	cl->persons = in->persons;
	cl->sites = alloc(c, in->sites.count, sizeof(*cl->sites));
	cl->nsites = cl->sites ? in->sites.count : 0;
	for (size_t i = 0; i < cl->nsites; i++) {
		const struct assay_site *s = &in->sites.items[i];

		cl->sites[i].site_id = str(c, s->site_id);
		cl->sites[i].name = str(c, s->name);
		cl->sites[i].country = opt_str(c, s->has_country, s->country);
		cl->sites[i].persons = s->persons;
		cl->sites[i].central_function = s->central_function;
	}
	cl->groups = alloc(c, in->identical_work_groups.count, sizeof(*cl->groups));
	cl->ngroups = cl->groups ? in->identical_work_groups.count : 0;
	for (size_t i = 0; i < cl->ngroups; i++) {
		const struct assay_identical_work_group *g = &in->identical_work_groups.items[i];

		cl->groups[i].group_id = str(c, g->group_id);
		cl->groups[i].description = str(c, g->description);
		cl->groups[i].persons = g->persons;
		cl->groups[i].justification = str(c, g->justification);
	}
	from_ai_systems(c, in->ai_systems.items, in->ai_systems.count, &cl->ai_systems,
	                &cl->nai_systems);
}

static void from_record_auditor(struct conv *c, const struct assay_record_auditor *in,
                                struct plan_cmd *cmd)
{
	struct plan_person *p = &cmd->u.person;

	HEAD(c, &cmd->head, *in);
	p->person_id = str(c, in->person_id);
	p->name = str(c, in->name);
	p->competences = alloc(c, in->competences.count, sizeof(*p->competences));
	p->ncompetences = p->competences ? in->competences.count : 0;
	for (size_t i = 0; i < p->ncompetences; i++) {
		const struct assay_competence *x = &in->competences.items[i];

		p->competences[i].standard = (int)x->standard;
		p->competences[i].role = (int)x->role;
		p->competences[i].technical_area =
		        opt_str(c, x->has_technical_area, x->technical_area);
		p->competences[i].valid_from = opt_date(x->has_valid_from, x->valid_from);
		p->competences[i].valid_until = opt_date(x->has_valid_until, x->valid_until);
	}
	p->relations = alloc(c, in->client_relations.count, sizeof(*p->relations));
	p->nrelations = p->relations ? in->client_relations.count : 0;
	for (size_t i = 0; i < p->nrelations; i++) {
		const struct assay_client_relation *r = &in->client_relations.items[i];

		p->relations[i].client_id = str(c, r->client_id);
		p->relations[i].kind = (int)r->kind;
		p->relations[i].started_on = r->started_on;
		p->relations[i].ended_on = opt_date(r->has_ended_on, r->ended_on);
	}
}

static void from_open_audit(struct conv *c, const struct assay_open_audit *in, struct plan_cmd *cmd)
{
	struct plan_audit *a = &cmd->u.audit;
	const struct assay_integration_level *il = &in->integration;
	const bool integration[PLAN_INTEGRATION_ELEMENTS] = {
	        il->documentation,     il->policy_and_objectives, il->internal_audit,
	        il->management_review, il->risk_process,          il->corrective_action,
	        il->responsibilities};

	HEAD(c, &cmd->head, *in);
	a->audit_id = str(c, in->audit_id);
	a->client_id = str(c, in->client_id);
	a->audit_type = (int)in->audit_type;
	a->scopes = alloc(c, in->standards.count, sizeof(*a->scopes));
	a->nscopes = a->scopes ? in->standards.count : 0;
	for (size_t i = 0; i < a->nscopes; i++) {
		const struct assay_audit_scope *s = &in->standards.items[i];

		a->scopes[i].standard = (int)s->standard;
		a->scopes[i].cycle_id = opt_str(c, s->has_cycle_id, s->cycle_id);
		a->scopes[i].scope_statement = str(c, s->scope_statement);
	}
	a->planned_start = in->planned_start;
	a->planned_end = in->planned_end;
	a->site_ids = alloc(c, in->site_ids.count, sizeof(*a->site_ids));
	a->nsite_ids = a->site_ids ? in->site_ids.count : 0;
	for (size_t i = 0; i < a->nsite_ids; i++)
		a->site_ids[i] = str(c, in->site_ids.items[i]);
	memcpy(a->integration, integration, sizeof(a->integration));
	a->adjustments = alloc(c, in->adjustments.count, sizeof(*a->adjustments));
	a->nadjustments = a->adjustments ? in->adjustments.count : 0;
	for (size_t i = 0; i < a->nadjustments; i++) {
		const struct assay_adjustment_factor *x = &in->adjustments.items[i];

		a->adjustments[i].standard = (int)x->standard;
		a->adjustments[i].factor = str(c, x->factor);
		a->adjustments[i].percent = x->percent;
		a->adjustments[i].justification = str(c, x->justification);
	}
}

static void from_assign(struct conv *c, const struct assay_assign_team_member *in,
                        struct plan_cmd *cmd)
{
	struct plan_assign *as = &cmd->u.assign;

	HEAD(c, &cmd->head, *in);
	as->audit_id = str(c, in->audit_id);
	as->person_id = str(c, in->person_id);
	as->role = (int)in->role;
	as->standards = standards(c, in->standards.items, in->standards.count);
	as->nstandards = as->standards ? in->standards.count : 0;
}

static void from_submit_soa(struct conv *c, const struct assay_submit_soa *in, struct plan_cmd *cmd)
{
	struct plan_submit_soa *so = &cmd->u.soa;
	struct plan_soa_row *rows = alloc(c, in->rows.count, sizeof(*rows));

	HEAD(c, &cmd->head, *in);
	so->audit_id = str(c, in->audit_id);
	so->standard = (int)in->standard;
	so->soa_version = str(c, in->soa_version);
	for (size_t i = 0; rows && i < in->rows.count; i++) {
		rows[i].control_id = str(c, in->rows.items[i].control_id);
		rows[i].applicable = in->rows.items[i].applicable;
		rows[i].justification = str(c, in->rows.items[i].justification);
	}
	so->rows = rows;
	so->nrows = rows ? in->rows.count : 0;
}

static void from_complete_stage(struct conv *c, const struct assay_complete_stage *in,
                                struct plan_cmd *cmd)
{
	struct plan_complete *co = &cmd->u.complete;

	HEAD(c, &cmd->head, *in);
	co->audit_id = str(c, in->audit_id);
	co->stage = (int)in->stage;
	co->last_day = in->last_day;
	co->standards = standards(c, in->standards.items, in->standards.count);
	co->nstandards = co->standards ? in->standards.count : 0;
}

static void from_record_dm(struct conv *c, const struct assay_record_decision_maker *in,
                           struct plan_cmd *cmd)
{
	HEAD(c, &cmd->head, *in);
	cmd->u.dm.audit_id = str(c, in->audit_id);
	cmd->u.dm.standard = (int)in->standard;
	cmd->u.dm.person_id = str(c, in->person_id);
}

/* Decodes frame with the generated decoder of kind, then converts it. */
static int decode_kind(struct assay_contracts *cx, int kind, const void *frame, size_t len,
                       struct conv *c, struct plan_cmd *cmd, char *errstr, size_t errstr_size)
{
	struct assay_arena *arena = c->arena;
	int err = ASSAY_ERR_FATAL;

#define DECODE(type, from)                                                                    \
	do {                                                                                  \
		struct assay_##type in;                                                       \
		err = assay_##type##_decode(cx, frame, len, arena, &in, errstr, errstr_size); \
		if (!err)                                                                     \
			from(c, &in, cmd);                                                    \
	} while (0)

	switch (kind) {
	case PLAN_REGISTER_CLIENT:
		DECODE(register_client, from_register_client);
		break;
	case PLAN_RECORD_AUDITOR:
		DECODE(record_auditor, from_record_auditor);
		break;
	case PLAN_OPEN_AUDIT:
		DECODE(open_audit, from_open_audit);
		break;
	case PLAN_ASSIGN_TEAM_MEMBER:
		DECODE(assign_team_member, from_assign);
		break;
	case PLAN_SUBMIT_SOA:
		DECODE(submit_soa, from_submit_soa);
		break;
	case PLAN_COMPLETE_STAGE:
		DECODE(complete_stage, from_complete_stage);
		break;
	case PLAN_RECORD_DECISION_MAKER:
		DECODE(record_decision_maker, from_record_dm);
		break;
	}
#undef DECODE
	return err;
}

int plan_command_decode(struct assay_contracts *cx, const void *frame, size_t len,
                        struct assay_arena *arena, struct plan_cmd *cmd, char *errstr,
                        size_t errstr_size)
{
	struct conv c = {arena, false};
	const char *type;
	char why[512];
	int err;

	memset(cmd, 0, sizeof(*cmd));
	err = assay_contract_frame_type(cx, frame, len, &type, why, sizeof(why));
	if (err)
		return assay_errf(err, errstr, errstr_size, "undecodable command: %s", why);
	cmd->kind = plan_cmd_kind(type);
	if (cmd->kind < 0)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "not an audit command: a record of type %s", type);
	err = decode_kind(cx, cmd->kind, frame, len, &c, cmd, why, sizeof(why));
	if (err)
		return assay_errf(err, errstr, errstr_size, "malformed %s: %s", type, why);
	if (c.failed)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "command %s: out of memory",
		                  type);
	return 0;
}
