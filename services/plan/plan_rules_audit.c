/*
 * The rules of OpenAudit (plan_rules.h): the client, the standards and their editions, the
 * certification cycle of each scope, the sampled sites and the audit time (plan_time.h) the
 * opened audit carries; a re-sent identical OpenAudit is recognised (plan_same_audit).
 */
#include "plan_rules_int.h"
#include "assay_err.h"
#include "assay_vec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- OpenAudit ---- */

bool plan_same_audit(const struct plan_audit *a, const struct plan_cmd *cmd)
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

int plan_check_open_audit(const struct plan_state *st, const struct plan_rules *r,
                          const struct plan_cmd *cmd, const struct plan_client **cl,
                          struct plan_scope_plan *plans, struct plan_result *res)
{
	const struct plan_audit *a = &cmd->u.audit;
	const struct plan_client *c = NULL;
	int64_t when[2] = {cmd->head.issued_at, (int64_t)a->planned_end * 86400000};
	int err = plan_check_id(res, "audit_id", a->audit_id);
	unsigned families = 0;

	if (!err)
		err = plan_check_id(res, "client_id", a->client_id);
	if (!err && a->client_id && (c = plan_state_get(st, PLAN_MAP_CLIENT, a->client_id)) == NULL)
		err = plan_refuse(res, PLAN_UNKNOWN_CLIENT, a->client_id, "no client %s",
		                  a->client_id);
	if (!err && c)
		err = plan_check_tenant(res, "client", a->client_id, c->tenant_id,
		                        cmd->head.tenant_id);
	if (!err && (a->audit_type < 0 || a->audit_type >= PLAN_NAUDIT_TYPES))
		err = plan_refuse(res, PLAN_INVALID_VALUE, "audit_type", "unknown audit type");
	if (!err && a->planned_end < a->planned_start)
		err = plan_refuse(res, PLAN_INVALID_DATES, "planned_end",
		                  "planned end is before planned start");
	/* an incomplete application cannot be planned (R1.1) */
	if (!err && c && c->persons <= 0)
		err = plan_refuse(res, PLAN_APPLICATION_INCOMPLETE, "persons",
		                  "client %s has no persons recorded", c->client_id);
	if (!err && c && c->nsites == 0)
		err = plan_refuse(res, PLAN_APPLICATION_INCOMPLETE, "sites",
		                  "client %s has no sites recorded", c->client_id);
	if (!err && a->nscopes == 0)
		err = plan_refuse(res, PLAN_NO_STANDARD, NULL, "the audit names no standard");

	for (size_t i = 0; !err && i < a->nscopes; i++) {
		const struct plan_scope *s = &a->scopes[i];
		struct plan_scope_plan *sp = &plans[i];
		const char *name = plan_std_name(s->standard);
		enum plan_family fam;

		if ((err = plan_check_standard_current(r, res, s->standard, when, 2)) != 0)
			break;
		if (s->standard < 0 || s->standard >= PLAN_NSTANDARDS)
			continue;
		fam = plan_standard_family(s->standard);
		/* one edition per standard family; a combined audit covers 27001 and 42001 */
		if (families & (1u << fam)) {
			err = plan_refuse(res, PLAN_INVALID_VALUE, name,
			                  "%s audit named twice in one audit",
			                  plan_family_names[fam]);
			continue;
		}
		families |= 1u << fam;
		if (plan_blank(s->scope_statement) &&
		    (err = plan_refuse(res, PLAN_APPLICATION_INCOMPLETE, name,
		                       "no scope statement for %s", name)) != 0)
			break;
		if (c == NULL)
			continue;
		/* the certification cycle (R1.3): a stage 1 opens one; the rest use one */
		if (s->cycle_id) {
			const struct plan_cycle *cy = plan_cycle_get(st, s->cycle_id);

			if (plan_blank(s->cycle_id) || strlen(s->cycle_id) > PLAN_ID_MAX) {
				err = plan_check_id(res, "cycle_id",
				                    plan_blank(s->cycle_id) ? "" : s->cycle_id);
				continue;
			}
			for (size_t j = 0; !err && j < i; j++)
				if (a->scopes[j].cycle_id &&
				    !strcmp(a->scopes[j].cycle_id, s->cycle_id))
					err = plan_refuse(res, PLAN_ID_CONFLICT, s->cycle_id,
					                  "cycle %s named for two standards",
					                  s->cycle_id);
			if (err)
				break;
			if (cy &&
			    (strcmp(cy->client_id, c->client_id) || cy->standard != s->standard)) {
				err = plan_refuse(res, PLAN_ID_CONFLICT, s->cycle_id,
				                  "cycle %s belongs to another client or standard",
				                  s->cycle_id);
				continue;
			}
			if (cy == NULL && a->audit_type != PLAN_STAGE_1) {
				err = plan_refuse(res, PLAN_UNKNOWN_CYCLE, s->cycle_id,
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
				if (plan_cycle_get(st, sp->buf)) {
					err = plan_refuse(res, PLAN_ID_CONFLICT, NULL,
					                  "cycle id %s is already used", sp->buf);
					continue;
				}
				sp->cycle_id = sp->buf;
				sp->new_cycle = true;
			} else if (ix == NULL) {
				err = plan_refuse(res, PLAN_UNKNOWN_CYCLE, name,
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
			const struct plan_cycle *cy = plan_cycle_get(st, sp->cycle_id);

			if (cy == NULL || cy->stage1_completed_on == PLAN_NO_DATE)
				err = plan_refuse(res, PLAN_STAGE1_NOT_COMPLETED, name,
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
			err = plan_refuse(
			        res, PLAN_STANDARD_NOT_IN_AUDIT, plan_std_name(adj->standard),
			        "adjustment %s is for %s, which the audit does not cover",
			        adj->factor ? adj->factor : "", plan_std_name(adj->standard));
		if (!err && plan_blank(adj->factor))
			err = plan_refuse(res, PLAN_INVALID_VALUE, "factor",
			                  "adjustment %zu has no factor name", i + 1);
		if (!err &&
		    (!isfinite(adj->percent) || adj->percent <= -100.0 || adj->percent > 1000.0))
			err = plan_refuse(res, PLAN_INVALID_VALUE, adj->factor,
			                  "adjustment %s: %g%% is out of range", adj->factor,
			                  adj->percent);
		if (!err && plan_blank(adj->justification))
			err = plan_refuse(res, PLAN_MISSING_JUSTIFICATION, adj->factor,
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
				err = plan_refuse(res, PLAN_INVALID_VALUE, a->site_ids[i],
				                  "client %s has no site %s", c->client_id,
				                  a->site_ids[i]);
			for (size_t j = 0; !err && j < i; j++)
				if (strcmp(a->site_ids[j], a->site_ids[i]) == 0)
					err = plan_refuse(res, PLAN_INVALID_VALUE, a->site_ids[i],
					                  "site %s is listed twice",
					                  a->site_ids[i]);
		}
		for (size_t k = 0; !err && k < c->nsites; k++) {
			bool listed = false;

			if (!c->sites[k].central_function)
				continue;
			for (size_t i = 0; i < a->nsite_ids; i++)
				listed |= strcmp(c->sites[k].site_id, a->site_ids[i]) == 0;
			if (!listed)
				err = plan_refuse(res, PLAN_INVALID_VALUE, c->sites[k].site_id,
				                  "the central function %s is audited every time",
				                  c->sites[k].site_id);
		}
		if (!err && (int32_t)a->nsite_ids < minimum)
			err = plan_refuse(res, PLAN_INVALID_VALUE, "site_ids",
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
		ids[k] = PLAN_ADUP(a, ids[k]);
	*out = ids;
	*nout = k;
	return 0;
}

int plan_apply_open_audit(struct plan_state *st, const struct plan_rules *r,
                          const struct plan_cmd *cmd, const struct plan_client *c,
                          const struct plan_scope_plan *plans, struct plan_result *res,
                          char *errstr, size_t errstr_size)
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
	e->audit_id = PLAN_ADUP(ar, a->audit_id);
	e->tenant_id = PLAN_ADUP(ar, cmd->head.tenant_id);
	e->client_id = PLAN_ADUP(ar, a->client_id);
	e->command_id = PLAN_ADUP(ar, cmd->head.command_id);
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
		e->scopes[i].cycle_id = PLAN_ADUP(ar, plans[i].cycle_id);
		e->scopes[i].scope_statement = PLAN_ADUP(ar, a->scopes[i].scope_statement);
		standards[i] = a->scopes[i].standard;
	}
	e->adjustments = plan_arr_dup(ar, a->adjustments, a->nadjustments, sizeof(*a->adjustments));
	e->nadjustments = e->adjustments ? a->nadjustments : 0;
	for (size_t i = 0; i < e->nadjustments; i++) {
		e->adjustments[i].factor = PLAN_ADUP(ar, a->adjustments[i].factor);
		e->adjustments[i].justification = PLAN_ADUP(ar, a->adjustments[i].justification);
	}
	/* the client's AI systems as they are now: the AIMS scope of this audit */
	if (c->nai_systems) {
		struct plan_ai_system *ai =
		        plan_arr_dup(ar, c->ai_systems, c->nai_systems, sizeof(*c->ai_systems));

		if (ai == NULL)
			goto oom;
		for (size_t i = 0; i < c->nai_systems; i++) {
			ai[i].ai_system_id = PLAN_ADUP(ar, ai[i].ai_system_id);
			ai[i].name = PLAN_ADUP(ar, ai[i].name);
			ai[i].intended_purpose = PLAN_ADUP(ar, ai[i].intended_purpose);
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
			groups[i].group_id = PLAN_ADUP(ar, c->groups[i].group_id);
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
		plan_entity_free(e);
		return ASSAY_ERR_FATAL; /* the input was checked: a failure is ours */
	}
	e->time = time;
	if (a->nsite_ids) {
		const char **ids = plan_arena_alloc(ar, a->nsite_ids * sizeof(*ids));

		if (ids == NULL)
			goto oom;
		for (size_t i = 0; i < a->nsite_ids; i++)
			ids[i] = PLAN_ADUP(ar, a->site_ids[i]);
		e->site_ids = ids;
		e->nsite_ids = a->nsite_ids;
	} else if (sample_sites(c, a->audit_id, time->sites_sampled, ar, &e->site_ids,
	                        &e->nsite_ids) != 0) {
		goto oom;
	}
	if ((err = plan_store(st, PLAN_MAP_AUDIT, a->audit_id, e, errstr, errstr_size)) != 0)
		return err;
	res->audit = e;

	/* cycles: new ones, and this audit joins each */
	for (size_t i = 0; i < a->nscopes; i++) {
		const char *name = plan_std_name(a->scopes[i].standard);
		const struct plan_cycle *old = plan_cycle_get(st, plans[i].cycle_id);
		struct plan_cycle base = {{NULL},       plans[i].cycle_id,
		                          c->client_id, a->scopes[i].standard,
		                          plans[i].seq, PLAN_NO_DATE,
		                          NULL,         0,
		                          NULL,         0};
		struct plan_cycle *cy = plan_cycle_copy(old ? old : &base, 1, 0);

		if (cy == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "plan state: out of memory");
		cy->audit_ids[cy->naudits++] = PLAN_ADUP(cy->obj.arena, a->audit_id);
		if ((err = plan_store(st, PLAN_MAP_CYCLE, cy->cycle_id, cy, errstr, errstr_size)))
			return err;
		if (plans[i].new_cycle) {
			char key[PLAN_KEY_MAX];
			struct plan_cycle_index *ix = plan_entity_new(sizeof(*ix));

			if (ix == NULL)
				return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
				                  "plan state: out of memory");
			ix->current = PLAN_ADUP(ix->obj.arena, plans[i].cycle_id);
			ix->count = plans[i].seq;
			plan_key(key, sizeof(key), c->client_id, name, NULL);
			if ((err = plan_store(st, PLAN_MAP_CYCLE_INDEX, key, ix, errstr,
			                      errstr_size)))
				return err;
		}
	}
	return 0;
oom:
	plan_entity_free(e);
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "plan state: out of memory");
}
