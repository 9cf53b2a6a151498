/*
 * The rules of an audit's progress (plan_rules.h): SubmitSoa, the Statement of Applicability
 * against the catalog's Annex A controls (R4.2, R4.3, E17), and CompleteStage
 * (R1.10-R1.13, R2.22).
 */
#include "plan_rules_int.h"
#include "assay_err.h"
#include "assay_vec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SubmitSoa (R4.2, R4.3, E17) ---- */

int plan_check_soa(const struct plan_state *st, const struct plan_rules *r,
                   const struct plan_cmd *cmd, struct plan_result *res)
{
	const struct plan_submit_soa *so = &cmd->u.soa;
	const struct plan_audit *au;
	const char *const *ids = NULL;
	const char *name = plan_std_name(so->standard);
	size_t nids = 0;
	unsigned char *found = NULL;
	int err = 0;

	au = plan_audit_for(st, cmd, so->audit_id, res, &err);
	if (!err && (so->standard < 0 || so->standard >= PLAN_NSTANDARDS))
		return plan_refuse(res, PLAN_INVALID_VALUE, NULL, "unknown standard");
	if (!err && au && plan_audit_scope(au, so->standard) == NULL)
		err = plan_refuse(res, PLAN_STANDARD_NOT_IN_AUDIT, name,
		                  "audit %s does not cover %s", au->audit_id, name);
	if (!err && au && plan_audit_closed(st, au))
		err = plan_refuse(res, PLAN_AUDIT_CLOSED, au->audit_id, "audit %s is completed",
		                  au->audit_id);
	if (!err && plan_blank(so->soa_version))
		err = plan_refuse(res, PLAN_INVALID_VALUE, "soa_version", "SoA version is empty");
	if (err)
		return err;
	if (r->catalog.annex_a)
		nids = r->catalog.annex_a(r->catalog.arg, so->standard, &ids);
	if (nids == 0)
		return plan_refuse(res, PLAN_INVALID_VALUE, name, "no Annex A catalog for %s",
		                   name);
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
			err = plan_refuse(res, PLAN_SOA_UNKNOWN_CONTROL, row->control_id,
			                  "%s is not an Annex A control of %s", row->control_id,
			                  name);
			continue;
		}
		if (found[k]) {
			err = plan_refuse(res, PLAN_SOA_DUPLICATE_CONTROL, row->control_id,
			                  "%s is listed more than once", row->control_id);
			continue;
		}
		found[k] = 1;
		if (plan_blank(row->justification))
			err = plan_refuse(res, PLAN_MISSING_JUSTIFICATION, row->control_id,
			                  "%s has no justification for its %s", row->control_id,
			                  row->applicable ? "inclusion" : "exclusion");
	}
	/* every Annex A control of the standard is in the SoA (93 / 38) */
	for (size_t k = 0; !err && k < nids; k++)
		if (!found[k])
			err = plan_refuse(res, PLAN_SOA_MISSING_CONTROL, ids[k],
			                  "%s is missing from the SoA", ids[k]);
	free(found);
	return err;
}

int plan_apply_soa(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
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
	plan_key(key, sizeof(key), so->audit_id, plan_std_name(so->standard), NULL);
	old = plan_state_get(st, PLAN_MAP_SOA, key);
	a = e->obj.arena;
	e->audit_id = PLAN_ADUP(a, so->audit_id);
	e->soa_version = PLAN_ADUP(a, so->soa_version);
	e->command_id = PLAN_ADUP(a, cmd->head.command_id);
	e->standard = so->standard;
	e->revision = old ? old->revision + 1 : 1;
	e->rows = plan_arr_dup(a, so->rows, so->nrows, sizeof(*so->rows));
	e->nrows = e->rows ? so->nrows : 0;
	for (size_t i = 0; i < e->nrows; i++) {
		e->rows[i].control_id = PLAN_ADUP(a, so->rows[i].control_id);
		e->rows[i].justification = PLAN_ADUP(a, so->rows[i].justification);
		if (e->rows[i].applicable)
			e->applicable_count++;
		else
			e->excluded_count++;
	}
	if ((err = plan_store(st, PLAN_MAP_SOA, key, e, errstr, errstr_size)) != 0)
		return err;
	res->soa = e;
	res->audit = plan_state_get(st, PLAN_MAP_AUDIT, so->audit_id);
	return 0;
}

/* ---- CompleteStage (R1.10-R1.13, R2.22) ---- */

int plan_check_complete(const struct plan_state *st, const struct plan_cmd *cmd,
                        struct plan_result *res)
{
	const struct plan_complete *co = &cmd->u.complete;
	const struct plan_audit *au;
	const struct plan_roster *ro;
	int err = 0;
	unsigned seen = 0;

	au = plan_audit_for(st, cmd, co->audit_id, res, &err);
	if (err || au == NULL)
		return err;
	if (co->stage != au->audit_type)
		err = plan_refuse(res, PLAN_INVALID_VALUE, "stage",
		                  "audit %s is a %s audit, not %s", au->audit_id,
		                  plan_audit_type_names[au->audit_type],
		                  co->stage >= 0 ? plan_audit_type_names[co->stage] : "unknown");
	if (!err && co->last_day < au->planned_start)
		err = plan_refuse(res, PLAN_INVALID_DATES, "last_day",
		                  "the last day is before the audit's planned start");
	if (!err && co->last_day > plan_day_of_ms(cmd->head.issued_at))
		err = plan_refuse(res, PLAN_INVALID_DATES, "last_day",
		                  "the last day is after the day the command was issued");
	if (!err && co->nstandards == 0)
		err = plan_refuse(res, PLAN_NO_STANDARD, NULL, "the command names no standard");
	ro = plan_roster_get(st, au->audit_id);
	for (size_t i = 0; !err && i < co->nstandards; i++) {
		int s = co->standards[i];
		const struct plan_scope *sc;
		bool competent = false;

		if ((sc = plan_command_scope(au, s, &seen, res, &err)) == NULL)
			continue;
		if (plan_completion_get(st, au->audit_id, s)) {
			err = plan_refuse(res, PLAN_STAGE_ALREADY_COMPLETED, plan_std_name(s),
			                  "%s of audit %s is already completed", plan_std_name(s),
			                  au->audit_id);
			continue;
		}
		/* every standard needs a team member who audits it (R2.22) */
		for (size_t k = 0; ro && k < ro->nmembers; k++)
			competent |= (ro->members[k].standards & (1u << s)) &&
			             ro->members[k].role != PLAN_TECHNICAL_EXPERT;
		if (!competent)
			err = plan_refuse(res, PLAN_NO_COMPETENT_MEMBER, plan_std_name(s),
			                  "no auditor on the team of %s audits %s", au->audit_id,
			                  plan_std_name(s));
		if (!err && au->audit_type == PLAN_STAGE_2) {
			const struct plan_cycle *cy = plan_cycle_get(st, sc->cycle_id);

			if (cy == NULL || cy->stage1_completed_on == PLAN_NO_DATE)
				err = plan_refuse(res, PLAN_STAGE1_NOT_COMPLETED, plan_std_name(s),
				                  "no completed stage 1 for %s in cycle %s",
				                  plan_std_name(s), sc->cycle_id);
		}
	}
	return err;
}

int plan_apply_complete(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                        char *errstr, size_t errstr_size)
{
	const struct plan_complete *co = &cmd->u.complete;
	const struct plan_audit *au = plan_state_get(st, PLAN_MAP_AUDIT, co->audit_id);
	int err;

	for (size_t i = 0; i < co->nstandards; i++) {
		int s = co->standards[i];
		char key[PLAN_KEY_MAX];
		struct plan_completion *e;

		if (plan_completion_get(st, au->audit_id, s))
			continue; /* named twice in this command */
		e = plan_entity_new(sizeof(*e));
		if (e == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "plan state: out of memory");
		e->audit_id = PLAN_ADUP(e->obj.arena, au->audit_id);
		e->command_id = PLAN_ADUP(e->obj.arena, cmd->head.command_id);
		e->standard = s;
		e->stage = co->stage;
		e->last_day = co->last_day;
		plan_key(key, sizeof(key), au->audit_id, plan_std_name(s), NULL);
		if ((err = plan_store(st, PLAN_MAP_COMPLETION, key, e, errstr, errstr_size)) != 0)
			return err;
		if (au->audit_type == PLAN_STAGE_1) {
			const struct plan_cycle *old =
			        plan_cycle_get(st, plan_audit_scope(au, s)->cycle_id);
			struct plan_cycle *cy = old ? plan_cycle_copy(old, 0, 0) : NULL;

			if (cy == NULL)
				return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
				                  "plan state: out of memory or cycle missing");
			cy->stage1_completed_on = co->last_day;
			if ((err = plan_store(st, PLAN_MAP_CYCLE, cy->cycle_id, cy, errstr,
			                      errstr_size)) != 0)
				return err;
		}
	}
	res->audit = au;
	return 0;
}
