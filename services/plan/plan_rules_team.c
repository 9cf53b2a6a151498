/*
 * The rules of the people on an audit and its decision (plan_rules.h): AssignTeamMember
 * (R1.20, R1.38, R2.22, E1, E10, E20) and RecordDecisionMaker (R1.20, R1.21, R1.38, E1),
 * where competence and conflicts of interest are checked.
 */
#include "plan_rules_int.h"
#include "assay_err.h"
#include "assay_vec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- AssignTeamMember (R1.20, R1.38, R2.22, E1, E10, E20) ---- */

int plan_check_assign(const struct plan_state *st, const struct plan_rules *r,
                      const struct plan_cmd *cmd, struct plan_result *res)
{
	const struct plan_assign *as = &cmd->u.assign;
	const struct plan_audit *au;
	const struct plan_person *p = NULL;
	int err = 0;
	unsigned seen = 0;

	au = plan_audit_for(st, cmd, as->audit_id, res, &err);
	if (!err)
		err = plan_check_id(res, "person_id", as->person_id);
	if (!err && as->person_id &&
	    (p = plan_state_get(st, PLAN_MAP_PERSON, as->person_id)) == NULL)
		err = plan_refuse(res, PLAN_UNKNOWN_PERSON, as->person_id, "no person %s",
		                  as->person_id);
	if (!err && p)
		err = plan_check_tenant(res, "person", as->person_id, p->tenant_id,
		                        cmd->head.tenant_id);
	if (!err && (as->role < 0 || as->role == PLAN_DECISION_MAKER))
		err = plan_refuse(res, PLAN_INVALID_VALUE, "role",
		                  "a team role is AUDITOR, LEAD_AUDITOR or TECHNICAL_EXPERT");
	if (!err && as->nstandards == 0)
		err = plan_refuse(res, PLAN_NO_STANDARD, NULL, "the assignment names no standard");
	if (!err && au && plan_audit_closed(st, au))
		err = plan_refuse(res, PLAN_AUDIT_CLOSED, au->audit_id, "audit %s is completed",
		                  au->audit_id);
	for (size_t i = 0; !err && au && i < as->nstandards; i++) {
		int s = as->standards[i];

		if (plan_command_scope(au, s, &seen, res, &err) == NULL)
			continue;
		/* competent for this standard in this role over the audit's days (R2.22, E20) */
		if (p && as->role >= 0 && as->role != PLAN_DECISION_MAKER &&
		    !plan_competent(p, s, as->role, au->planned_start, au->planned_end))
			err = plan_refuse(res, PLAN_NOT_COMPETENT, plan_std_name(s),
			                  "%s has no %s competence for %s valid for the audit days",
			                  p->person_id, plan_role_names[as->role],
			                  plan_std_name(s));
	}
	if (err || au == NULL || p == NULL)
		return err;
	/* no consultancy, employment or declared relation within the cooling-off period before
	 * the audit (R1.38, E10) */
	for (size_t i = 0; !err && i < p->nrelations; i++) {
		const struct plan_relation *rel = &p->relations[i];

		if (strcmp(rel->client_id, au->client_id) == 0 &&
		    plan_relation_conflicts(rel, au->planned_start, r->conflict_months))
			err = plan_refuse(
			        res, PLAN_CONFLICT_OF_INTEREST, p->person_id,
			        "%s has a %s relation with %s within %d months of the audit",
			        p->person_id,
			        rel->kind >= 0 ? plan_relation_kind_names[rel->kind] : "",
			        au->client_id, r->conflict_months);
	}
	/* never the decision maker of a cycle this audit belongs to (R1.20, E1) */
	for (size_t i = 0; !err && i < au->nscopes; i++) {
		const struct plan_cycle *cy = plan_cycle_get(st, au->scopes[i].cycle_id);

		if (plan_cycle_has_dm(cy, p->person_id))
			err = plan_refuse(res, PLAN_DECISION_MAKER_ON_TEAM, p->person_id,
			                  "%s decides %s for %s in cycle %s", p->person_id,
			                  plan_std_name(au->scopes[i].standard), au->client_id,
			                  cy->cycle_id);
	}
	return err;
}

int plan_apply_assign(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                      char *errstr, size_t errstr_size)
{
	const struct plan_assign *as = &cmd->u.assign;
	const struct plan_roster *old = plan_roster_get(st, as->audit_id);
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
	e->audit_id = PLAN_ADUP(a, as->audit_id);
	e->members = plan_arena_alloc(a, (n + 1) * sizeof(*e->members));
	if (e->members == NULL) {
		plan_entity_free(e);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		e->members[i] = old->members[i];
		e->members[i].person_id = PLAN_ADUP(a, old->members[i].person_id);
		if (strcmp(old->members[i].person_id, as->person_id) == 0)
			m = &e->members[i];
	}
	e->nmembers = n;
	/* a person assigned again gets the new role and standards */
	if (m == NULL) {
		m = &e->members[e->nmembers++];
		m->person_id = PLAN_ADUP(a, as->person_id);
	}
	m->role = as->role;
	m->standards = standards;
	res->member = m;
	res->audit = plan_state_get(st, PLAN_MAP_AUDIT, as->audit_id);
	return plan_store(st, PLAN_MAP_ROSTER, as->audit_id, e, errstr, errstr_size);
}

/* ---- RecordDecisionMaker (R1.20, R1.21, R1.38, E1) ---- */

int plan_check_dm(const struct plan_state *st, const struct plan_rules *r,
                  const struct plan_cmd *cmd, struct plan_result *res)
{
	const struct plan_record_dm *dm = &cmd->u.dm;
	const struct plan_audit *au;
	const struct plan_person *p = NULL;
	const struct plan_scope *sc = NULL;
	int32_t today = plan_day_of_ms(cmd->head.issued_at);
	int err = 0;

	au = plan_audit_for(st, cmd, dm->audit_id, res, &err);
	if (!err)
		err = plan_check_id(res, "person_id", dm->person_id);
	if (!err && dm->person_id &&
	    (p = plan_state_get(st, PLAN_MAP_PERSON, dm->person_id)) == NULL)
		err = plan_refuse(res, PLAN_UNKNOWN_PERSON, dm->person_id, "no person %s",
		                  dm->person_id);
	if (!err && p)
		err = plan_check_tenant(res, "person", dm->person_id, p->tenant_id,
		                        cmd->head.tenant_id);
	if (!err && (dm->standard < 0 || dm->standard >= PLAN_NSTANDARDS))
		return plan_refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
	if (!err && au && (sc = plan_audit_scope(au, dm->standard)) == NULL)
		err = plan_refuse(res, PLAN_STANDARD_NOT_IN_AUDIT, plan_std_name(dm->standard),
		                  "audit %s does not cover %s", au->audit_id,
		                  plan_std_name(dm->standard));
	if (err || p == NULL || sc == NULL)
		return err;
	/* competent to decide this standard (R1.21, R2.15, E1) */
	if (!plan_competent(p, dm->standard, PLAN_DECISION_MAKER, today, today))
		err = plan_refuse(res, PLAN_NOT_COMPETENT, plan_std_name(dm->standard),
		                  "%s has no valid DECISION_MAKER competence for %s", p->person_id,
		                  plan_std_name(dm->standard));
	/* impartial: no relation with the client in the cooling-off period (R1.38) */
	for (size_t i = 0; !err && i < p->nrelations; i++)
		if (strcmp(p->relations[i].client_id, au->client_id) == 0 &&
		    plan_relation_conflicts(&p->relations[i], today, r->conflict_months))
			err = plan_refuse(res, PLAN_CONFLICT_OF_INTEREST, p->person_id,
			                  "%s has a relation with %s within %d months",
			                  p->person_id, au->client_id, r->conflict_months);
	/* not on any team of this client, standard and cycle (R1.20, E1) */
	if (!err && plan_cycle_has_member(st, plan_cycle_get(st, sc->cycle_id), p->person_id))
		err = plan_refuse(res, PLAN_TEAM_MEMBER_AS_DECISION_MAKER, p->person_id,
		                  "%s is on an audit team of %s for %s in cycle %s", p->person_id,
		                  au->client_id, plan_std_name(dm->standard), sc->cycle_id);
	return err;
}

int plan_apply_dm(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                  char *errstr, size_t errstr_size)
{
	const struct plan_record_dm *dm = &cmd->u.dm;
	const struct plan_audit *au = plan_state_get(st, PLAN_MAP_AUDIT, dm->audit_id);
	const struct plan_scope *sc = plan_audit_scope(au, dm->standard);
	const struct plan_cycle *old = plan_cycle_get(st, sc->cycle_id);
	struct plan_cycle *cy;
	struct plan_decision_maker *d;

	res->audit = au;
	res->cycle_id = sc->cycle_id;
	if (plan_cycle_has_dm(old, dm->person_id))
		return 0; /* recorded already: nothing changes, the event repeats the fact */
	cy = old ? plan_cycle_copy(old, 0, 1) : NULL;
	if (cy == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "plan state: out of memory or cycle missing");
	d = &cy->dms[cy->ndms++];
	d->person_id = PLAN_ADUP(cy->obj.arena, dm->person_id);
	d->audit_id = PLAN_ADUP(cy->obj.arena, dm->audit_id);
	d->command_id = PLAN_ADUP(cy->obj.arena, cmd->head.command_id);
	res->cycle_id = cy->cycle_id;
	return plan_store(st, PLAN_MAP_CYCLE, cy->cycle_id, cy, errstr, errstr_size);
}
