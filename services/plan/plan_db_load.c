/*
 * Loading assay-plan's tables into the in-memory state (plan_db.h). Each parent table is
 * merged with its child tables, all sorted by the parent key in byte order (COLLATE "C", the
 * order of strcmp), into entities.
 */
#include "plan_db.h"
#include "assay_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cursor {
	PGresult *res;
	int row, rows;
};

static int query(PGconn *conn, const char *sql, struct cursor *c, char *errstr, size_t errstr_size)
{
	int err = assay_pg_query(conn, sql, 0, NULL, &c->res, errstr, errstr_size);

	c->row = 0;
	c->rows = err ? 0 : PQntuples(c->res);
	return err;
}

static void cursor_clear(struct cursor *c)
{
	if (c->res)
		PQclear(c->res);
	c->res = NULL;
}

/* The rows of c whose column 0 equals key: [*first, return value). c is sorted by column 0
 * in byte order; rows before key (orphans) are skipped. */
static int cursor_take(struct cursor *c, const char *key, int *first)
{
	while (c->row < c->rows && strcmp(PQgetvalue(c->res, c->row, 0), key) < 0)
		c->row++;
	*first = c->row;
	while (c->row < c->rows && strcmp(PQgetvalue(c->res, c->row, 0), key) == 0)
		c->row++;
	return c->row;
}

static const char *val(const struct cursor *c, int row, int col)
{
	return PQgetisnull(c->res, row, col) ? NULL : PQgetvalue(c->res, row, col);
}

static int32_t ival(const struct cursor *c, int row, int col)
{
	const char *s = val(c, row, col);

	return s ? (int32_t)strtol(s, NULL, 10) : PLAN_NO_DATE;
}

static bool bval(const struct cursor *c, int row, int col)
{
	const char *s = val(c, row, col);

	return s && s[0] == 't';
}

static int eval(const struct cursor *c, int row, int col, const char *const *names, int n)
{
	return plan_enum_parse(names, n, val(c, row, col));
}

/* Symbols "A,B" of names into a bit set. */
static unsigned bits_parse(const char *s, const char *const *names, int n)
{
	unsigned bits = 0;
	char buf[256];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s ? s : "");
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int i = plan_enum_parse(names, n, t);

		if (i >= 0)
			bits |= 1u << i;
	}
	return bits;
}

#define DUP(e, s)      plan_arena_strdup((e)->obj.arena, (s))
#define ALLOC(e, n, T) ((n) ? plan_arena_alloc((e)->obj.arena, (size_t)(n) * sizeof(T)) : NULL)

static int put(struct plan_state *st, enum plan_map m, const char *key, void *e, char *errstr,
               size_t errstr_size)
{
	if (e == NULL || plan_arena_failed(((struct plan_obj *)e)->arena) ||
	    plan_state_put(st, m, key, e) != 0) {
		if (e)
			plan_arena_destroy(((struct plan_obj *)e)->arena);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "load plan state: out of memory");
	}
	return 0;
}

static int load_clients(PGconn *conn, struct plan_state *st, char *errstr, size_t errstr_size)
{
	struct cursor p = {0}, s = {0}, g = {0}, a = {0};
	int err;

	err = query(conn,
	            "SELECT client_id, tenant_id, revision, legal_name, persons, command_id FROM "
	            "assay_plan_clients ORDER BY client_id COLLATE \"C\"",
	            &p, errstr, errstr_size);
	if (!err)
		err = query(
		        conn,
		        "SELECT client_id, site_id, name, country, persons, central_function FROM "
		        "assay_plan_client_sites ORDER BY client_id COLLATE \"C\", seq",
		        &s, errstr, errstr_size);
	if (!err)
		err = query(conn,
		            "SELECT client_id, group_id, description, persons, justification FROM "
		            "assay_plan_client_groups ORDER BY client_id COLLATE \"C\", seq",
		            &g, errstr, errstr_size);
	if (!err)
		err = query(conn,
		            "SELECT client_id, ai_system_id, name, roles, eu_ai_act_tier, "
		            "intended_purpose FROM assay_plan_client_ai_systems ORDER BY client_id "
		            "COLLATE \"C\", seq",
		            &a, errstr, errstr_size);
	for (int r = 0; !err && r < p.rows; r++) {
		struct plan_client *e = plan_entity_new(sizeof(*e));
		const char *id = val(&p, r, 0);
		int first, end;

		if (e == NULL) {
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
			break;
		}
		e->client_id = DUP(e, id);
		e->tenant_id = DUP(e, val(&p, r, 1));
		e->revision = ival(&p, r, 2);
		e->legal_name = DUP(e, val(&p, r, 3));
		e->persons = ival(&p, r, 4);
		e->command_id = DUP(e, val(&p, r, 5));
		end = cursor_take(&s, id, &first);
		e->sites = ALLOC(e, end - first, struct plan_site);
		for (int k = first; e->sites && k < end; k++) {
			struct plan_site *x = &e->sites[e->nsites++];

			x->site_id = DUP(e, val(&s, k, 1));
			x->name = DUP(e, val(&s, k, 2));
			x->country = DUP(e, val(&s, k, 3));
			x->persons = ival(&s, k, 4);
			x->central_function = bval(&s, k, 5);
		}
		end = cursor_take(&g, id, &first);
		e->groups = ALLOC(e, end - first, struct plan_group);
		for (int k = first; e->groups && k < end; k++) {
			struct plan_group *x = &e->groups[e->ngroups++];

			x->group_id = DUP(e, val(&g, k, 1));
			x->description = DUP(e, val(&g, k, 2));
			x->persons = ival(&g, k, 3);
			x->justification = DUP(e, val(&g, k, 4));
		}
		end = cursor_take(&a, id, &first);
		e->ai_systems = ALLOC(e, end - first, struct plan_ai_system);
		for (int k = first; e->ai_systems && k < end; k++) {
			struct plan_ai_system *x = &e->ai_systems[e->nai_systems++];

			x->ai_system_id = DUP(e, val(&a, k, 1));
			x->name = DUP(e, val(&a, k, 2));
			x->roles = bits_parse(val(&a, k, 3), plan_ai_role_names, PLAN_NAI_ROLES);
			x->tier = eval(&a, k, 4, plan_ai_tier_names, PLAN_NAI_TIERS);
			if (x->tier < 0)
				x->tier = PLAN_NAI_TIERS - 1;
			x->intended_purpose = DUP(e, val(&a, k, 5));
		}
		err = put(st, PLAN_MAP_CLIENT, id, e, errstr, errstr_size);
	}
	cursor_clear(&p);
	cursor_clear(&s);
	cursor_clear(&g);
	cursor_clear(&a);
	return err;
}

static int load_auditors(PGconn *conn, struct plan_state *st, char *errstr, size_t errstr_size)
{
	struct cursor p = {0}, c = {0}, r = {0};
	int err;

	err = query(conn,
	            "SELECT person_id, tenant_id, revision, name, command_id FROM "
	            "assay_plan_auditors ORDER BY person_id COLLATE \"C\"",
	            &p, errstr, errstr_size);
	if (!err)
		err = query(
		        conn,
		        "SELECT person_id, standard, role, technical_area, valid_from - DATE "
		        "'1970-01-01', valid_until - DATE '1970-01-01' FROM assay_plan_competences "
		        "ORDER BY person_id COLLATE \"C\", seq",
		        &c, errstr, errstr_size);
	if (!err)
		err = query(
		        conn,
		        "SELECT person_id, client_id, kind, started_on - DATE '1970-01-01', "
		        "ended_on - DATE '1970-01-01' FROM assay_plan_client_relations ORDER BY "
		        "person_id COLLATE \"C\", seq",
		        &r, errstr, errstr_size);
	for (int i = 0; !err && i < p.rows; i++) {
		struct plan_person *e = plan_entity_new(sizeof(*e));
		const char *id = val(&p, i, 0);
		int first, end;

		if (e == NULL) {
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
			break;
		}
		e->person_id = DUP(e, id);
		e->tenant_id = DUP(e, val(&p, i, 1));
		e->revision = ival(&p, i, 2);
		e->name = DUP(e, val(&p, i, 3));
		e->command_id = DUP(e, val(&p, i, 4));
		end = cursor_take(&c, id, &first);
		e->competences = ALLOC(e, end - first, struct plan_competence);
		for (int k = first; e->competences && k < end; k++) {
			struct plan_competence *x = &e->competences[e->ncompetences++];

			x->standard = eval(&c, k, 1, plan_standard_names, PLAN_NSTANDARDS);
			x->role = eval(&c, k, 2, plan_role_names, PLAN_NROLES);
			x->technical_area = DUP(e, val(&c, k, 3));
			x->valid_from = ival(&c, k, 4);
			x->valid_until = ival(&c, k, 5);
		}
		end = cursor_take(&r, id, &first);
		e->relations = ALLOC(e, end - first, struct plan_relation);
		for (int k = first; e->relations && k < end; k++) {
			struct plan_relation *x = &e->relations[e->nrelations++];

			x->client_id = DUP(e, val(&r, k, 1));
			x->kind = eval(&r, k, 2, plan_relation_kind_names, PLAN_NRELATION_KINDS);
			x->started_on = ival(&r, k, 3);
			x->ended_on = ival(&r, k, 4);
		}
		err = put(st, PLAN_MAP_PERSON, id, e, errstr, errstr_size);
	}
	cursor_clear(&p);
	cursor_clear(&c);
	cursor_clear(&r);
	return err;
}

static int load_cycles(PGconn *conn, struct plan_state *st, char *errstr, size_t errstr_size)
{
	struct cursor p = {0}, au = {0}, dm = {0}, ix = {0};
	int err;

	err = query(conn,
	            "SELECT cycle_id, client_id, standard, seq, stage1_completed_on - DATE "
	            "'1970-01-01' FROM assay_plan_cycles ORDER BY cycle_id COLLATE \"C\"",
	            &p, errstr, errstr_size);
	if (!err)
		err = query(conn,
		            "SELECT cycle_id, audit_id FROM assay_plan_audit_standards ORDER BY "
		            "cycle_id COLLATE \"C\", audit_id COLLATE \"C\"",
		            &au, errstr, errstr_size);
	if (!err)
		err = query(conn,
		            "SELECT cycle_id, person_id, audit_id, command_id FROM "
		            "assay_plan_decision_makers ORDER BY cycle_id COLLATE \"C\", person_id",
		            &dm, errstr, errstr_size);
	if (!err)
		err = query(
		        conn,
		        "SELECT DISTINCT ON (client_id, standard) client_id, standard, cycle_id, "
		        "seq FROM assay_plan_cycles ORDER BY client_id, standard, seq DESC",
		        &ix, errstr, errstr_size);
	for (int i = 0; !err && i < p.rows; i++) {
		struct plan_cycle *e = plan_entity_new(sizeof(*e));
		const char *id = val(&p, i, 0);
		int first, end;

		if (e == NULL) {
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
			break;
		}
		e->cycle_id = DUP(e, id);
		e->client_id = DUP(e, val(&p, i, 1));
		e->standard = eval(&p, i, 2, plan_standard_names, PLAN_NSTANDARDS);
		e->seq = ival(&p, i, 3);
		e->stage1_completed_on = ival(&p, i, 4);
		end = cursor_take(&au, id, &first);
		e->audit_ids = ALLOC(e, end - first, const char *);
		for (int k = first; e->audit_ids && k < end; k++)
			e->audit_ids[e->naudits++] = DUP(e, val(&au, k, 1));
		end = cursor_take(&dm, id, &first);
		e->dms = ALLOC(e, end - first, struct plan_decision_maker);
		for (int k = first; e->dms && k < end; k++) {
			struct plan_decision_maker *x = &e->dms[e->ndms++];

			x->person_id = DUP(e, val(&dm, k, 1));
			x->audit_id = DUP(e, val(&dm, k, 2));
			x->command_id = DUP(e, val(&dm, k, 3));
		}
		err = put(st, PLAN_MAP_CYCLE, id, e, errstr, errstr_size);
	}
	for (int i = 0; !err && i < ix.rows; i++) {
		struct plan_cycle_index *e = plan_entity_new(sizeof(*e));
		char key[PLAN_KEY_MAX];

		if (e == NULL ||
		    plan_key(key, sizeof(key), val(&ix, i, 0), val(&ix, i, 1), NULL) != 0) {
			if (e)
				plan_arena_destroy(e->obj.arena);
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                 "load plan state: out of memory or id too long");
			break;
		}
		e->current = DUP(e, val(&ix, i, 2));
		e->count = ival(&ix, i, 3);
		err = put(st, PLAN_MAP_CYCLE_INDEX, key, e, errstr, errstr_size);
	}
	cursor_clear(&p);
	cursor_clear(&au);
	cursor_clear(&dm);
	cursor_clear(&ix);
	return err;
}

static int load_audits(PGconn *conn, struct plan_state *st, char *errstr, size_t errstr_size)
{
	struct cursor p = {0}, s = {0}, t = {0};
	int err;

	err = query(conn,
	            "SELECT audit_id, tenant_id, client_id, audit_type, planned_start - DATE "
	            "'1970-01-01', planned_end - DATE '1970-01-01', documentation, "
	            "policy_and_objectives, internal_audit, management_review, risk_process, "
	            "corrective_action, responsibilities, command_id FROM assay_plan_audits ORDER "
	            "BY audit_id COLLATE \"C\"",
	            &p, errstr, errstr_size);
	if (!err)
		err = query(conn,
		            "SELECT audit_id, standard, cycle_id, scope_statement FROM "
		            "assay_plan_audit_standards ORDER BY audit_id COLLATE \"C\", seq",
		            &s, errstr, errstr_size);
	if (!err)
		err = query(
		        conn,
		        "SELECT audit_id, person_id, role, standards FROM assay_plan_team ORDER BY "
		        "audit_id COLLATE \"C\", person_id COLLATE \"C\"",
		        &t, errstr, errstr_size);
	for (int i = 0; !err && i < p.rows; i++) {
		struct plan_audit *e = plan_entity_new(sizeof(*e));
		struct plan_roster *ro = NULL;
		const char *id = val(&p, i, 0);
		int first, end;

		if (e == NULL) {
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
			break;
		}
		e->audit_id = DUP(e, id);
		e->tenant_id = DUP(e, val(&p, i, 1));
		e->client_id = DUP(e, val(&p, i, 2));
		e->audit_type = eval(&p, i, 3, plan_audit_type_names, PLAN_NAUDIT_TYPES);
		e->planned_start = ival(&p, i, 4);
		e->planned_end = ival(&p, i, 5);
		for (int k = 0; k < PLAN_INTEGRATION_ELEMENTS; k++)
			e->integration[k] = bval(&p, i, 6 + k);
		e->command_id = DUP(e, val(&p, i, 13));
		end = cursor_take(&s, id, &first);
		e->scopes = ALLOC(e, end - first, struct plan_scope);
		for (int k = first; e->scopes && k < end; k++) {
			struct plan_scope *x = &e->scopes[e->nscopes++];

			x->standard = eval(&s, k, 1, plan_standard_names, PLAN_NSTANDARDS);
			x->cycle_id = DUP(e, val(&s, k, 2));
			x->scope_statement = DUP(e, val(&s, k, 3));
		}
		err = put(st, PLAN_MAP_AUDIT, id, e, errstr, errstr_size);
		end = cursor_take(&t, id, &first);
		if (err || end == first)
			continue;
		ro = plan_entity_new(sizeof(*ro));
		if (ro) {
			ro->audit_id = DUP(ro, id);
			ro->members = ALLOC(ro, end - first, struct plan_member);
			for (int k = first; ro->members && k < end; k++) {
				struct plan_member *m = &ro->members[ro->nmembers++];

				m->person_id = DUP(ro, val(&t, k, 1));
				m->role = eval(&t, k, 2, plan_role_names, PLAN_NROLES);
				m->standards = bits_parse(val(&t, k, 3), plan_standard_names,
				                          PLAN_NSTANDARDS);
			}
		}
		err = put(st, PLAN_MAP_ROSTER, id, ro, errstr, errstr_size);
	}
	cursor_clear(&p);
	cursor_clear(&s);
	cursor_clear(&t);
	return err;
}

static int load_rest(PGconn *conn, struct plan_state *st, char *errstr, size_t errstr_size)
{
	struct cursor c = {0}, s = {0}, k = {0};
	char key[PLAN_KEY_MAX];
	int err;

	err = query(conn,
	            "SELECT audit_id, standard, stage, last_day - DATE '1970-01-01', command_id "
	            "FROM assay_plan_stage_completions",
	            &c, errstr, errstr_size);
	if (!err)
		err = query(conn,
		            "SELECT DISTINCT ON (audit_id, standard) audit_id, standard, revision, "
		            "soa_version, applicable_count, excluded_count, command_id FROM "
		            "assay_plan_soas ORDER BY audit_id, standard, revision DESC",
		            &s, errstr, errstr_size);
	if (!err)
		err = query(conn, "SELECT command_id FROM assay_plan_commands", &k, errstr,
		            errstr_size);
	for (int i = 0; !err && i < c.rows; i++) {
		struct plan_completion *e = plan_entity_new(sizeof(*e));

		if (e == NULL ||
		    plan_key(key, sizeof(key), val(&c, i, 0), val(&c, i, 1), NULL) != 0) {
			if (e)
				plan_arena_destroy(e->obj.arena);
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                 "load plan state: out of memory or id too long");
			break;
		}
		e->audit_id = DUP(e, val(&c, i, 0));
		e->standard = eval(&c, i, 1, plan_standard_names, PLAN_NSTANDARDS);
		e->stage = eval(&c, i, 2, plan_audit_type_names, PLAN_NAUDIT_TYPES);
		e->last_day = ival(&c, i, 3);
		e->command_id = DUP(e, val(&c, i, 4));
		err = put(st, PLAN_MAP_COMPLETION, key, e, errstr, errstr_size);
	}
	for (int i = 0; !err && i < s.rows; i++) {
		struct plan_soa *e = plan_entity_new(sizeof(*e));

		if (e == NULL ||
		    plan_key(key, sizeof(key), val(&s, i, 0), val(&s, i, 1), NULL) != 0) {
			if (e)
				plan_arena_destroy(e->obj.arena);
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                 "load plan state: out of memory or id too long");
			break;
		}
		e->audit_id = DUP(e, val(&s, i, 0));
		e->standard = eval(&s, i, 1, plan_standard_names, PLAN_NSTANDARDS);
		e->revision = ival(&s, i, 2);
		e->soa_version = DUP(e, val(&s, i, 3));
		e->applicable_count = ival(&s, i, 4);
		e->excluded_count = ival(&s, i, 5);
		e->command_id = DUP(e, val(&s, i, 6));
		err = put(st, PLAN_MAP_SOA, key, e, errstr, errstr_size);
	}
	for (int i = 0; !err && i < k.rows; i++)
		if (plan_state_put(st, PLAN_MAP_COMMAND, val(&k, i, 0), PLAN_SEEN))
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                 "load plan state: out of memory");
	cursor_clear(&c);
	cursor_clear(&s);
	cursor_clear(&k);
	return err;
}

int plan_db_load(PGconn *conn, struct plan_state *st, char *errstr, size_t errstr_size)
{
	int err = load_clients(conn, st, errstr, errstr_size);

	if (!err)
		err = load_auditors(conn, st, errstr, errstr_size);
	if (!err)
		err = load_cycles(conn, st, errstr, errstr_size);
	if (!err)
		err = load_audits(conn, st, errstr, errstr_size);
	if (!err)
		err = load_rest(conn, st, errstr, errstr_size);
	return err;
}
