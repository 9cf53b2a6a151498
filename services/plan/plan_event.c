/*
 * Audit events onto the wire (plan_event.h). Each event is a generated struct filled from
 * the entities the rules produced (strings as views of theirs, arrays from the batch arena)
 * and encoded by the generated encoder; the schema's full name comes from its descriptor.
 * Optional fields: a NULL string is null; the audit-time days are null unless configured.
 */
#include "plan_event.h"
#include "assay_err.h"
#include "contract_audit_command_refused.h"
#include "contract_audit_opened.h"
#include "contract_auditor_recorded.h"
#include "contract_client_registered.h"
#include "contract_decision_maker_recorded.h"
#include "contract_soa_submitted.h"
#include "contract_stage_completed.h"
#include "contract_team_member_assigned.h"

#include <string.h>

_Static_assert(ASSAY_AUDIT_REFUSAL_CODE_NSYMBOLS == PLAN_NREFUSALS &&
                       (int)ASSAY_AUDIT_REFUSAL_CODE_WRONG_TENANT == PLAN_WRONG_TENANT &&
                       (int)ASSAY_AUDIT_REFUSAL_CODE_CONFLICT_OF_INTEREST ==
                               PLAN_CONFLICT_OF_INTEREST &&
                       (int)ASSAY_AUDIT_REFUSAL_CODE_MISSING_JUSTIFICATION ==
                               PLAN_MISSING_JUSTIFICATION,
               "AuditRefusalCode: plan order differs from the schema");

/* The arena arrays come from; failed is set once an allocation fails. */
struct build {
	struct assay_arena *arena;
	bool failed;
};

static void *alloc(struct build *b, size_t n, size_t size)
{
	return assay_arena_array(b->arena, n, size, &b->failed);
}

/* A view of s (NULL: empty). */
static struct assay_str str(const char *s)
{
	return (struct assay_str){s, s ? strlen(s) : 0};
}

/* An optional string field: null when s is NULL. */
#define OPT_STR(rec, field, s) ((rec).has_##field = (s) != NULL, (rec).field = str(s))
/* An optional date field: null when PLAN_NO_DATE. */
#define OPT_DATE(rec, field, d) ((rec).has_##field = (d) != PLAN_NO_DATE, (rec).field = (d))
/* An optional double: set when configured. */
#define OPT_DAYS(rec, field, set, x) ((rec).has_##field = (set), (rec).field = (set) ? (x) : 0)

/* Fills the head fields every event record starts with. */
#define HEAD(rec, h)                                                                 \
	((rec).event_id = str((h)->event_id), (rec).tenant_id = str((h)->tenant_id), \
	 (rec).occurred_at = (h)->occurred_at, (rec).command_id = str((h)->command_id))

/* Standards of a bit set (bit i = standard i), in enum order, into items/count. */
static enum assay_standard *standard_bits(struct build *b, unsigned bits, size_t *count)
{
	enum assay_standard *v = alloc(b, PLAN_NSTANDARDS, sizeof(*v));
	size_t n = 0;

	for (int s = 0; v && s < PLAN_NSTANDARDS; s++)
		if (bits & (1u << s))
			v[n++] = (enum assay_standard)s;
	*count = n;
	return v;
}

static struct assay_ai_system *ai_systems(struct build *b, const struct plan_ai_system *ai,
                                          size_t n)
{
	struct assay_ai_system *v = alloc(b, n, sizeof(*v));

	for (size_t i = 0; v && i < n; i++) {
		v[i].ai_system_id = str(ai[i].ai_system_id);
		v[i].name = str(ai[i].name);
		v[i].roles.items = alloc(b, PLAN_NAI_ROLES, sizeof(*v[i].roles.items));
		for (int r = 0; v[i].roles.items && r < PLAN_NAI_ROLES; r++)
			if (ai[i].roles & (1u << r))
				v[i].roles.items[v[i].roles.count++] = (enum assay_ai_role)r;
		v[i].eu_ai_act_tier = (enum assay_ai_act_tier)ai[i].tier;
		OPT_STR(v[i], intended_purpose, ai[i].intended_purpose);
	}
	return v;
}

static int client_registered(struct assay_contracts *cx, struct build *b,
                             const struct plan_event_head *h, const struct plan_client *c,
                             struct assay_contract_buf *buf, char *errstr, size_t errstr_size)
{
	struct assay_client_registered ev = {0};

	HEAD(ev, h);
	ev.client_id = str(c->client_id);
	ev.revision = c->revision;
	ev.legal_name = str(c->legal_name);
	ev.sites.items = alloc(b, c->nsites, sizeof(*ev.sites.items));
	ev.sites.count = ev.sites.items ? c->nsites : 0;
	for (size_t i = 0; i < ev.sites.count; i++) {
		struct assay_site *s = &ev.sites.items[i];

		s->site_id = str(c->sites[i].site_id);
		s->name = str(c->sites[i].name);
		OPT_STR(*s, country, c->sites[i].country);
		s->persons = c->sites[i].persons;
		s->central_function = c->sites[i].central_function;
	}
	ev.persons = c->persons;
	ev.identical_work_groups.items =
	        alloc(b, c->ngroups, sizeof(*ev.identical_work_groups.items));
	ev.identical_work_groups.count = ev.identical_work_groups.items ? c->ngroups : 0;
	for (size_t i = 0; i < ev.identical_work_groups.count; i++) {
		struct assay_identical_work_group *g = &ev.identical_work_groups.items[i];

		g->group_id = str(c->groups[i].group_id);
		g->description = str(c->groups[i].description);
		g->persons = c->groups[i].persons;
		g->justification = str(c->groups[i].justification);
	}
	ev.ai_systems.items = ai_systems(b, c->ai_systems, c->nai_systems);
	ev.ai_systems.count = ev.ai_systems.items ? c->nai_systems : 0;
	if (b->failed)
		return ASSAY_ERR_FATAL;
	return assay_client_registered_encode(cx, &ev, buf, errstr, errstr_size);
}

static int auditor_recorded(struct assay_contracts *cx, struct build *b,
                            const struct plan_event_head *h, const struct plan_person *p,
                            struct assay_contract_buf *buf, char *errstr, size_t errstr_size)
{
	struct assay_auditor_recorded ev = {0};

	HEAD(ev, h);
	ev.person_id = str(p->person_id);
	ev.revision = p->revision;
	ev.name = str(p->name);
	ev.competences.items = alloc(b, p->ncompetences, sizeof(*ev.competences.items));
	ev.competences.count = ev.competences.items ? p->ncompetences : 0;
	for (size_t i = 0; i < ev.competences.count; i++) {
		const struct plan_competence *c = &p->competences[i];
		struct assay_competence *x = &ev.competences.items[i];

		x->standard = (enum assay_standard)c->standard;
		x->role = (enum assay_auditor_role)c->role;
		OPT_STR(*x, technical_area, c->technical_area);
		OPT_DATE(*x, valid_from, c->valid_from);
		OPT_DATE(*x, valid_until, c->valid_until);
	}
	ev.client_relations.items = alloc(b, p->nrelations, sizeof(*ev.client_relations.items));
	ev.client_relations.count = ev.client_relations.items ? p->nrelations : 0;
	for (size_t i = 0; i < ev.client_relations.count; i++) {
		const struct plan_relation *r = &p->relations[i];
		struct assay_client_relation *x = &ev.client_relations.items[i];

		x->client_id = str(r->client_id);
		x->kind = (enum assay_relation_kind)r->kind;
		x->started_on = r->started_on;
		OPT_DATE(*x, ended_on, r->ended_on);
	}
	if (b->failed)
		return ASSAY_ERR_FATAL;
	return assay_auditor_recorded_encode(cx, &ev, buf, errstr, errstr_size);
}

/* The audit time of a (t) into *at; the adjustments listed per standard are a's. */
static void audit_time(struct build *b, const struct plan_audit *a, const struct plan_time *t,
                       struct assay_audit_time *at)
{
	at->standards.items = alloc(b, t->nstandards, sizeof(*at->standards.items));
	at->standards.count = at->standards.items ? t->nstandards : 0;
	for (size_t i = 0; i < at->standards.count; i++) {
		const struct plan_standard_time *st = &t->standards[i];
		struct assay_standard_audit_time *x = &at->standards.items[i];

		x->standard = (enum assay_standard)st->standard;
		x->configured = st->configured;
		x->persons = st->persons;
		x->identical_groups.items =
		        alloc(b, st->ngroups, sizeof(*x->identical_groups.items));
		x->identical_groups.count = x->identical_groups.items ? st->ngroups : 0;
		for (size_t k = 0; k < x->identical_groups.count; k++) {
			x->identical_groups.items[k].group_id = str(st->groups[k].group_id);
			x->identical_groups.items[k].persons = st->groups[k].persons;
			x->identical_groups.items[k].counted = st->groups[k].counted;
		}
		x->effective_persons = st->effective_persons;
		OPT_DAYS(*x, table_days, st->configured, st->table_days);
		x->adjustments.items = alloc(b, a->nadjustments, sizeof(*x->adjustments.items));
		for (size_t k = 0; x->adjustments.items && k < a->nadjustments; k++) {
			const struct plan_adjustment *adj = &a->adjustments[k];
			struct assay_adjustment_factor *y;

			if (adj->standard != st->standard)
				continue;
			y = &x->adjustments.items[x->adjustments.count++];
			y->standard = (enum assay_standard)adj->standard;
			y->factor = str(adj->factor);
			y->percent = adj->percent;
			y->justification = str(adj->justification);
		}
		x->adjustment_sum_percent = st->adjustment_sum_percent;
		x->adjustment_cap_percent = st->adjustment_cap_percent;
		x->adjustment_applied_percent = st->adjustment_applied_percent;
		OPT_DAYS(*x, days, st->configured, st->days);
	}
	at->sites_total = t->sites_total;
	at->sites_sampled = t->sites_sampled;
	at->sampling_factor = t->sampling_factor;
	OPT_DAYS(*at, sum_days, t->configured, t->sum_days);
	at->integration_elements = t->integration_elements;
	at->integration_reduction_percent = t->integration_reduction_percent;
	OPT_DAYS(*at, total_reduction_percent, t->configured, t->total_reduction_percent);
	at->total_reduction_cap_percent = t->total_reduction_cap_percent;
	OPT_DAYS(*at, total_days, t->configured, t->total_days);
	OPT_DAYS(*at, onsite_days, t->configured, t->onsite_days);
	OPT_DAYS(*at, offsite_days, t->configured, t->offsite_days);
	at->onsite_min_percent = t->onsite_min_percent;
	at->notes.items = alloc(b, t->nnotes, sizeof(*at->notes.items));
	at->notes.count = at->notes.items ? t->nnotes : 0;
	for (size_t k = 0; k < at->notes.count; k++)
		at->notes.items[k] = str(t->notes[k]);
	OPT_DAYS(*at, initial_days, t->configured, t->initial_days);
	at->audit_share_percent = t->audit_share_percent;
}

static int audit_opened(struct assay_contracts *cx, struct build *b,
                        const struct plan_event_head *h, const struct plan_audit *a,
                        struct assay_contract_buf *buf, char *errstr, size_t errstr_size)
{
	struct assay_audit_opened ev = {0};
	struct assay_integration_level *il = &ev.integration;

	if (a->time == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "audit %s opened without its audit time", a->audit_id);
	HEAD(ev, h);
	ev.audit_id = str(a->audit_id);
	ev.client_id = str(a->client_id);
	ev.audit_type = (enum assay_audit_type)a->audit_type;
	ev.standards.items = alloc(b, a->nscopes, sizeof(*ev.standards.items));
	ev.standards.count = ev.standards.items ? a->nscopes : 0;
	for (size_t i = 0; i < ev.standards.count; i++) {
		struct assay_audit_scope *s = &ev.standards.items[i];

		s->standard = (enum assay_standard)a->scopes[i].standard;
		OPT_STR(*s, cycle_id, a->scopes[i].cycle_id);
		s->scope_statement = str(a->scopes[i].scope_statement);
	}
	ev.planned_start = a->planned_start;
	ev.planned_end = a->planned_end;
	ev.site_ids.items = alloc(b, a->nsite_ids, sizeof(*ev.site_ids.items));
	ev.site_ids.count = ev.site_ids.items ? a->nsite_ids : 0;
	for (size_t i = 0; i < ev.site_ids.count; i++)
		ev.site_ids.items[i] = str(a->site_ids[i]);
	il->documentation = a->integration[0];
	il->policy_and_objectives = a->integration[1];
	il->internal_audit = a->integration[2];
	il->management_review = a->integration[3];
	il->risk_process = a->integration[4];
	il->corrective_action = a->integration[5];
	il->responsibilities = a->integration[6];
	ev.ai_systems.items = ai_systems(b, a->ai_systems, a->nai_systems);
	ev.ai_systems.count = ev.ai_systems.items ? a->nai_systems : 0;
	audit_time(b, a, a->time, &ev.audit_time);
	if (b->failed)
		return ASSAY_ERR_FATAL;
	return assay_audit_opened_encode(cx, &ev, buf, errstr, errstr_size);
}

static int team_member_assigned(struct assay_contracts *cx, struct build *b,
                                const struct plan_event_head *h, const struct plan_audit *a,
                                const struct plan_member *m, struct assay_contract_buf *buf,
                                char *errstr, size_t errstr_size)
{
	struct assay_team_member_assigned ev = {0};

	HEAD(ev, h);
	ev.audit_id = str(a->audit_id);
	ev.client_id = str(a->client_id);
	ev.person_id = str(m->person_id);
	ev.role = (enum assay_auditor_role)m->role;
	ev.standards.items = standard_bits(b, m->standards, &ev.standards.count);
	if (b->failed)
		return ASSAY_ERR_FATAL;
	return assay_team_member_assigned_encode(cx, &ev, buf, errstr, errstr_size);
}

static int soa_submitted(struct assay_contracts *cx, struct build *b,
                         const struct plan_event_head *h, const struct plan_audit *a,
                         const struct plan_soa *s, struct assay_contract_buf *buf, char *errstr,
                         size_t errstr_size)
{
	struct assay_soa_submitted ev = {0};

	HEAD(ev, h);
	ev.audit_id = str(a->audit_id);
	ev.client_id = str(a->client_id);
	ev.standard = (enum assay_standard)s->standard;
	ev.soa_version = str(s->soa_version);
	ev.revision = s->revision;
	ev.rows.items = alloc(b, s->nrows, sizeof(*ev.rows.items));
	ev.rows.count = ev.rows.items ? s->nrows : 0;
	for (size_t i = 0; i < ev.rows.count; i++) {
		ev.rows.items[i].control_id = str(s->rows[i].control_id);
		ev.rows.items[i].applicable = s->rows[i].applicable;
		ev.rows.items[i].justification = str(s->rows[i].justification);
	}
	ev.applicable_count = s->applicable_count;
	ev.excluded_count = s->excluded_count;
	if (b->failed)
		return ASSAY_ERR_FATAL;
	return assay_soa_submitted_encode(cx, &ev, buf, errstr, errstr_size);
}

static int stage_completed(struct assay_contracts *cx, struct build *b,
                           const struct plan_event_head *h, const struct plan_audit *a,
                           const struct plan_complete *c, struct assay_contract_buf *buf,
                           char *errstr, size_t errstr_size)
{
	struct assay_stage_completed ev = {0};
	unsigned bits = 0;

	for (size_t i = 0; i < c->nstandards; i++)
		if (c->standards[i] >= 0)
			bits |= 1u << c->standards[i];
	HEAD(ev, h);
	ev.audit_id = str(a->audit_id);
	ev.client_id = str(a->client_id);
	ev.stage = (enum assay_audit_type)c->stage;
	ev.last_day = c->last_day;
	ev.standards.items = standard_bits(b, bits, &ev.standards.count);
	if (b->failed)
		return ASSAY_ERR_FATAL;
	return assay_stage_completed_encode(cx, &ev, buf, errstr, errstr_size);
}

static int decision_maker_recorded(struct assay_contracts *cx, const struct plan_event_head *h,
                                   const struct plan_audit *a, const struct plan_record_dm *dm,
                                   const char *cycle_id, struct assay_contract_buf *buf,
                                   char *errstr, size_t errstr_size)
{
	struct assay_decision_maker_recorded ev = {0};

	HEAD(ev, h);
	ev.audit_id = str(a->audit_id);
	ev.client_id = str(a->client_id);
	ev.standard = (enum assay_standard)dm->standard;
	ev.cycle_id = str(cycle_id);
	ev.person_id = str(dm->person_id);
	return assay_decision_maker_recorded_encode(cx, &ev, buf, errstr, errstr_size);
}

int plan_event_applied(struct assay_contracts *cx, struct assay_arena *arena,
                       const struct plan_cmd *cmd, const struct plan_result *res,
                       const struct plan_event_head *h, struct assay_contract_buf *buf,
                       struct plan_event *ev, char *errstr, size_t errstr_size)
{
	struct build b = {arena, false};
	int err;

	switch (cmd->kind) {
	case PLAN_REGISTER_CLIENT:
		ev->type = assay_client_registered_type.name;
		ev->key = res->client->client_id;
		err = client_registered(cx, &b, h, res->client, buf, errstr, errstr_size);
		break;
	case PLAN_RECORD_AUDITOR:
		ev->type = assay_auditor_recorded_type.name;
		ev->key = res->person->person_id;
		err = auditor_recorded(cx, &b, h, res->person, buf, errstr, errstr_size);
		break;
	case PLAN_OPEN_AUDIT:
		ev->type = assay_audit_opened_type.name;
		ev->key = res->audit->audit_id;
		err = audit_opened(cx, &b, h, res->audit, buf, errstr, errstr_size);
		break;
	case PLAN_ASSIGN_TEAM_MEMBER:
		ev->type = assay_team_member_assigned_type.name;
		ev->key = res->audit->audit_id;
		err = team_member_assigned(cx, &b, h, res->audit, res->member, buf, errstr,
		                           errstr_size);
		break;
	case PLAN_SUBMIT_SOA:
		ev->type = assay_soa_submitted_type.name;
		ev->key = res->audit->audit_id;
		err = soa_submitted(cx, &b, h, res->audit, res->soa, buf, errstr, errstr_size);
		break;
	case PLAN_COMPLETE_STAGE:
		ev->type = assay_stage_completed_type.name;
		ev->key = res->audit->audit_id;
		err = stage_completed(cx, &b, h, res->audit, &cmd->u.complete, buf, errstr,
		                      errstr_size);
		break;
	case PLAN_RECORD_DECISION_MAKER:
		ev->type = assay_decision_maker_recorded_type.name;
		ev->key = res->audit->audit_id;
		err = decision_maker_recorded(cx, h, res->audit, &cmd->u.dm, res->cycle_id, buf,
		                              errstr, errstr_size);
		break;
	default:
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "no event for command kind %d", cmd->kind);
	}
	if (b.failed)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "encode %s: out of memory",
		                  ev->type);
	return err;
}

int plan_event_refused(struct assay_contracts *cx, struct assay_arena *arena, int kind,
                       const char *client_id, const char *audit_id, const char *person_id,
                       const struct plan_result *res, const struct plan_event_head *h,
                       struct assay_contract_buf *buf, struct plan_event *ev, char *errstr,
                       size_t errstr_size)
{
	struct build b = {arena, false};
	struct assay_audit_command_refused rf = {0};

	ev->type = assay_audit_command_refused_type.name;
	ev->key = NULL;
	HEAD(rf, h);
	rf.command_type = str(plan_cmd_names[kind]);
	OPT_STR(rf, client_id, client_id);
	OPT_STR(rf, audit_id, audit_id);
	OPT_STR(rf, person_id, person_id);
	rf.reasons.items = alloc(&b, res->nreasons, sizeof(*rf.reasons.items));
	rf.reasons.count = rf.reasons.items ? res->nreasons : 0;
	for (size_t i = 0; i < rf.reasons.count; i++) {
		const struct plan_reason *r = &res->reasons[i];
		struct assay_audit_refusal *x = &rf.reasons.items[i];

		x->code = (enum assay_audit_refusal_code)r->code;
		OPT_STR(*x, subject, r->subject[0] ? r->subject : NULL);
		x->message = str(r->message);
	}
	if (b.failed)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "encode %s: out of memory",
		                  ev->type);
	return assay_audit_command_refused_encode(cx, &rf, buf, errstr, errstr_size);
}
