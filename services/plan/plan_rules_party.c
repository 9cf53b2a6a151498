/*
 * The rules of the parties of an audit programme (plan_rules.h): RegisterClient (R1.1), a
 * client with its sites, identical-work groups and AI systems, and RecordAuditor, a person
 * with competences and client relations. A re-registration stores a new revision.
 */
#include "plan_rules_int.h"
#include "assay_err.h"
#include "assay_vec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- RegisterClient (R1.1) ---- */

int plan_check_register_client(const struct plan_state *st, const struct plan_cmd *cmd,
                               struct plan_result *res)
{
	const struct plan_client *c = &cmd->u.client, *old;
	int64_t in_groups = 0;
	int err = 0, central = 0;

	err = err ? err : plan_check_id(res, "client_id", c->client_id);
	if (!err && plan_blank(c->legal_name))
		err = plan_refuse(res, PLAN_INVALID_VALUE, "legal_name", "legal name is empty");
	if (!err && c->persons < 0)
		err = plan_refuse(res, PLAN_INVALID_VALUE, "persons", "persons is negative");
	old = c->client_id ? plan_state_get(st, PLAN_MAP_CLIENT, c->client_id) : NULL;
	if (!err && old)
		err = plan_check_tenant(res, "client", c->client_id, old->tenant_id,
		                        cmd->head.tenant_id);
	for (size_t i = 0; !err && i < c->nsites; i++) {
		const struct plan_site *s = &c->sites[i];

		err = plan_check_id(res, "site_id", s->site_id);
		for (size_t j = 0; !err && j < i; j++)
			if (strcmp(c->sites[j].site_id, s->site_id) == 0)
				err = plan_refuse(res, PLAN_INVALID_VALUE, s->site_id,
				                  "site %s is listed twice", s->site_id);
		if (!err && s->persons < 0)
			err = plan_refuse(res, PLAN_INVALID_VALUE, s->site_id,
			                  "site %s has a negative number of persons", s->site_id);
		central += s->central_function;
	}
	if (!err && central > 1)
		err = plan_refuse(res, PLAN_INVALID_VALUE, "sites",
		                  "%d sites claim the central function; at most one may", central);
	for (size_t i = 0; !err && i < c->ngroups; i++) {
		const struct plan_group *g = &c->groups[i];

		err = plan_check_id(res, "group_id", g->group_id);
		for (size_t j = 0; !err && j < i; j++)
			if (strcmp(c->groups[j].group_id, g->group_id) == 0)
				err = plan_refuse(res, PLAN_INVALID_VALUE, g->group_id,
				                  "group %s is listed twice", g->group_id);
		if (!err && g->persons < 1)
			err = plan_refuse(res, PLAN_INVALID_VALUE, g->group_id,
			                  "group %s has no persons", g->group_id);
		/* each identical-work group needs a written justification (R2.11) */
		if (!err && plan_blank(g->justification))
			err = plan_refuse(res, PLAN_MISSING_JUSTIFICATION, g->group_id,
			                  "group %s has no justification", g->group_id);
		in_groups += g->persons > 0 ? g->persons : 0;
	}
	if (!err && in_groups > c->persons)
		err = plan_refuse(
		        res, PLAN_INVALID_VALUE, "identical_work_groups",
		        "identical-work groups hold %lld persons, more than the %d persons",
		        (long long)in_groups, c->persons);
	for (size_t i = 0; !err && i < c->nai_systems; i++) {
		const struct plan_ai_system *s = &c->ai_systems[i];

		err = plan_check_id(res, "ai_system_id", s->ai_system_id);
		for (size_t j = 0; !err && j < i; j++)
			if (strcmp(c->ai_systems[j].ai_system_id, s->ai_system_id) == 0)
				err = plan_refuse(res, PLAN_INVALID_VALUE, s->ai_system_id,
				                  "AI system %s is listed twice", s->ai_system_id);
		/* the organization's role for each AI system (42001 4.1) */
		if (!err && s->roles == 0)
			err = plan_refuse(res, PLAN_INVALID_VALUE, s->ai_system_id,
			                  "AI system %s has no role", s->ai_system_id);
		if (!err && (s->tier < 0 || s->tier >= PLAN_NAI_TIERS))
			err = plan_refuse(res, PLAN_INVALID_VALUE, s->ai_system_id,
			                  "AI system %s has an unknown EU AI Act tier",
			                  s->ai_system_id);
	}
	return err;
}

int plan_apply_register_client(struct plan_state *st, const struct plan_cmd *cmd,
                               struct plan_result *res, char *errstr, size_t errstr_size)
{
	const struct plan_client *old =
	        plan_state_get(st, PLAN_MAP_CLIENT, cmd->u.client.client_id);
	struct plan_client tmp = cmd->u.client, *e;
	int err;

	tmp.tenant_id = cmd->head.tenant_id;
	tmp.command_id = cmd->head.command_id;
	tmp.revision = old ? old->revision + 1 : 1;
	e = plan_client_copy(&tmp);
	if ((err = plan_store(st, PLAN_MAP_CLIENT, tmp.client_id, e, errstr, errstr_size)) != 0)
		return err;
	res->client = e;
	return 0;
}

/* ---- RecordAuditor ---- */

int plan_check_record_auditor(const struct plan_state *st, const struct plan_cmd *cmd,
                              struct plan_result *res)
{
	const struct plan_person *p = &cmd->u.person, *old;
	int err = plan_check_id(res, "person_id", p->person_id);

	if (!err && plan_blank(p->name))
		err = plan_refuse(res, PLAN_INVALID_VALUE, "name", "name is empty");
	old = p->person_id ? plan_state_get(st, PLAN_MAP_PERSON, p->person_id) : NULL;
	if (!err && old)
		err = plan_check_tenant(res, "person", p->person_id, old->tenant_id,
		                        cmd->head.tenant_id);
	for (size_t i = 0; !err && i < p->ncompetences; i++) {
		const struct plan_competence *c = &p->competences[i];

		if (c->standard < 0 || c->role < 0)
			err = plan_refuse(res, PLAN_INVALID_VALUE, NULL,
			                  "competence %zu names an unknown standard or role",
			                  i + 1);
		else if (c->valid_from != PLAN_NO_DATE && c->valid_until != PLAN_NO_DATE &&
		         c->valid_from > c->valid_until)
			err = plan_refuse(res, PLAN_INVALID_DATES, plan_std_name(c->standard),
			                  "competence %zu ends before it starts", i + 1);
	}
	for (size_t i = 0; !err && i < p->nrelations; i++) {
		const struct plan_relation *rel = &p->relations[i];

		err = plan_check_id(res, "client_id", rel->client_id);
		if (!err && rel->kind < 0)
			err = plan_refuse(res, PLAN_INVALID_VALUE, rel->client_id,
			                  "relation %zu has an unknown kind", i + 1);
		if (!err && rel->ended_on != PLAN_NO_DATE && rel->ended_on < rel->started_on)
			err = plan_refuse(res, PLAN_INVALID_DATES, rel->client_id,
			                  "relation with %s ends before it starts", rel->client_id);
	}
	return err;
}

int plan_apply_record_auditor(struct plan_state *st, const struct plan_cmd *cmd,
                              struct plan_result *res, char *errstr, size_t errstr_size)
{
	const struct plan_person *old =
	        plan_state_get(st, PLAN_MAP_PERSON, cmd->u.person.person_id);
	struct plan_person tmp = cmd->u.person, *e;
	int err;

	tmp.tenant_id = cmd->head.tenant_id;
	tmp.command_id = cmd->head.command_id;
	tmp.revision = old ? old->revision + 1 : 1;
	e = plan_person_copy(&tmp);
	if ((err = plan_store(st, PLAN_MAP_PERSON, tmp.person_id, e, errstr, errstr_size)) != 0)
		return err;
	res->person = e;
	return 0;
}
