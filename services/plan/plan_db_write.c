/*
 * Writing assay-plan's tables (plan_db.h): the batch's changed keys become one pipeline
 * (upserts of entities that can change, deletes of the child rows of replaced ones) followed
 * by one COPY per table of the new rows, inside the batch transaction.
 */
#include "plan_db.h"
#include "assay_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* COPY targets, in the order they are sent (parents before children). */
enum {
	C_SITES,
	C_GROUPS,
	C_AI,
	C_COMPETENCES,
	C_RELATIONS,
	C_AUDITS,
	C_AUDIT_STANDARDS,
	C_AUDIT_SITES,
	C_ADJUSTMENTS,
	C_TIMES,
	C_TIME_STANDARDS,
	C_TIME_GROUPS,
	C_TEAM,
	C_SOAS,
	C_SOA_ROWS,
	C_COMPLETIONS,
	C_DMS,
	C_COMMANDS,
	C_N
};

static const char *const copy_sql[C_N] = {
        "COPY assay_plan_client_sites (client_id, seq, site_id, name, country, persons, "
        "central_function) FROM STDIN",
        "COPY assay_plan_client_groups (client_id, seq, group_id, description, persons, "
        "justification) FROM STDIN",
        "COPY assay_plan_client_ai_systems (client_id, seq, ai_system_id, name, roles, "
        "eu_ai_act_tier, intended_purpose) FROM STDIN",
        "COPY assay_plan_competences (person_id, seq, standard, role, technical_area, "
        "valid_from, valid_until) FROM STDIN",
        "COPY assay_plan_client_relations (person_id, seq, client_id, kind, started_on, "
        "ended_on) FROM STDIN",
        "COPY assay_plan_audits (audit_id, tenant_id, client_id, audit_type, planned_start, "
        "planned_end, documentation, policy_and_objectives, internal_audit, management_review, "
        "risk_process, corrective_action, responsibilities, command_id) FROM STDIN",
        "COPY assay_plan_audit_standards (audit_id, seq, standard, cycle_id, scope_statement) "
        "FROM STDIN",
        "COPY assay_plan_audit_sites (audit_id, seq, site_id) FROM STDIN",
        "COPY assay_plan_adjustments (audit_id, seq, standard, factor, percent, justification) "
        "FROM STDIN",
        "COPY assay_plan_audit_times (audit_id, configured, sites_total, sites_sampled, "
        "sampling_factor, sum_days, integration_elements, integration_reduction_percent, "
        "total_reduction_percent, total_reduction_cap_percent, initial_days, "
        "audit_share_percent, total_days, onsite_days, offsite_days, onsite_min_percent, notes) "
        "FROM STDIN",
        "COPY assay_plan_audit_time_standards (audit_id, standard, configured, persons, "
        "effective_persons, table_days, adjustment_sum_percent, adjustment_cap_percent, "
        "adjustment_applied_percent, days) FROM STDIN",
        "COPY assay_plan_audit_time_groups (audit_id, standard, group_id, persons, counted) "
        "FROM STDIN",
        "COPY assay_plan_team (audit_id, person_id, role, standards) FROM STDIN",
        "COPY assay_plan_soas (audit_id, standard, revision, soa_version, applicable_count, "
        "excluded_count, command_id) FROM STDIN",
        "COPY assay_plan_soa_rows (audit_id, standard, revision, control_id, applicable, "
        "justification) FROM STDIN",
        "COPY assay_plan_stage_completions (audit_id, standard, stage, last_day, command_id) "
        "FROM STDIN",
        "COPY assay_plan_decision_makers (cycle_id, person_id, audit_id, command_id) FROM STDIN",
        "COPY assay_plan_commands (command_id, command_type, outcome, reasons, topic, partition, "
        "\"offset\") FROM STDIN",
};

void plan_db_init(struct plan_db *db)
{
	for (int i = 0; i < C_N; i++)
		assay_copybuf_init(&db->copy[i]);
	assay_pipeline_init(&db->pipe);
}

void plan_db_release(struct plan_db *db)
{
	for (int i = 0; i < C_N; i++)
		assay_copybuf_release(&db->copy[i]);
	assay_pipeline_release(&db->pipe);
}

static void cb_date(struct assay_copybuf *b, int32_t day)
{
	char buf[16];

	if (day == PLAN_NO_DATE) {
		assay_copybuf_null(b);
		return;
	}
	plan_date_format(day, buf);
	assay_copybuf_str(b, buf);
}

static void cb_double(struct assay_copybuf *b, double x)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.17g", x);
	assay_copybuf_str(b, buf);
}

static void cb_opt_double(struct assay_copybuf *b, bool set, double x)
{
	if (set)
		cb_double(b, x);
	else
		assay_copybuf_null(b);
}

static void cb_opt_str(struct assay_copybuf *b, const char *s)
{
	if (s)
		assay_copybuf_str(b, s);
	else
		assay_copybuf_null(b);
}

/* Comma-separated symbols of a bit set. */
static void bits_str(char *buf, size_t size, unsigned bits, const char *const *names, int n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < n; i++)
		if (bits & (1u << i))
			len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
			                        len ? "," : "", names[i]);
}

static void write_client(struct plan_db *db, const struct plan_client *c, bool replaced,
                         char *errstr, size_t errstr_size)
{
	char revision[16], persons[16];
	const char *p[6] = {c->client_id,  c->tenant_id, revision,
	                    c->legal_name, persons,      c->command_id};

	snprintf(revision, sizeof(revision), "%d", (int)c->revision);
	snprintf(persons, sizeof(persons), "%d", (int)c->persons);
	if (replaced) {
		assay_pipeline_add(&db->pipe,
		                   "DELETE FROM assay_plan_client_sites WHERE client_id = $1", 1, p,
		                   errstr, errstr_size);
		assay_pipeline_add(&db->pipe,
		                   "DELETE FROM assay_plan_client_groups WHERE client_id = $1", 1,
		                   p, errstr, errstr_size);
		assay_pipeline_add(&db->pipe,
		                   "DELETE FROM assay_plan_client_ai_systems WHERE client_id = $1",
		                   1, p, errstr, errstr_size);
	}
	assay_pipeline_add(&db->pipe,
	                   "INSERT INTO assay_plan_clients (client_id, tenant_id, revision, "
	                   "legal_name, persons, command_id) VALUES ($1, $2, $3, $4, $5, $6) "
	                   "ON CONFLICT (client_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, "
	                   "revision = EXCLUDED.revision, legal_name = EXCLUDED.legal_name, "
	                   "persons = EXCLUDED.persons, command_id = EXCLUDED.command_id, "
	                   "updated_at = now()",
	                   6, p, errstr, errstr_size);
	for (size_t i = 0; i < c->nsites; i++) {
		struct assay_copybuf *b = &db->copy[C_SITES];

		assay_copybuf_str(b, c->client_id);
		assay_copybuf_int64(b, (int64_t)i + 1);
		assay_copybuf_str(b, c->sites[i].site_id);
		assay_copybuf_str(b, c->sites[i].name);
		cb_opt_str(b, c->sites[i].country);
		assay_copybuf_int64(b, c->sites[i].persons);
		assay_copybuf_bool(b, c->sites[i].central_function);
		assay_copybuf_end_row(b);
	}
	for (size_t i = 0; i < c->ngroups; i++) {
		struct assay_copybuf *b = &db->copy[C_GROUPS];

		assay_copybuf_str(b, c->client_id);
		assay_copybuf_int64(b, (int64_t)i + 1);
		assay_copybuf_str(b, c->groups[i].group_id);
		assay_copybuf_str(b, c->groups[i].description);
		assay_copybuf_int64(b, c->groups[i].persons);
		assay_copybuf_str(b, c->groups[i].justification);
		assay_copybuf_end_row(b);
	}
	for (size_t i = 0; i < c->nai_systems; i++) {
		struct assay_copybuf *b = &db->copy[C_AI];
		char roles[64];

		bits_str(roles, sizeof(roles), c->ai_systems[i].roles, plan_ai_role_names,
		         PLAN_NAI_ROLES);
		assay_copybuf_str(b, c->client_id);
		assay_copybuf_int64(b, (int64_t)i + 1);
		assay_copybuf_str(b, c->ai_systems[i].ai_system_id);
		assay_copybuf_str(b, c->ai_systems[i].name);
		assay_copybuf_str(b, roles);
		assay_copybuf_str(b, plan_ai_tier_names[c->ai_systems[i].tier]);
		cb_opt_str(b, c->ai_systems[i].intended_purpose);
		assay_copybuf_end_row(b);
	}
}

static void write_person(struct plan_db *db, const struct plan_person *p, bool replaced,
                         char *errstr, size_t errstr_size)
{
	char revision[16];
	const char *v[5] = {p->person_id, p->tenant_id, revision, p->name, p->command_id};

	snprintf(revision, sizeof(revision), "%d", (int)p->revision);
	if (replaced) {
		assay_pipeline_add(&db->pipe,
		                   "DELETE FROM assay_plan_competences WHERE person_id = $1", 1, v,
		                   errstr, errstr_size);
		assay_pipeline_add(&db->pipe,
		                   "DELETE FROM assay_plan_client_relations WHERE person_id = $1",
		                   1, v, errstr, errstr_size);
	}
	assay_pipeline_add(&db->pipe,
	                   "INSERT INTO assay_plan_auditors (person_id, tenant_id, revision, name, "
	                   "command_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (person_id) DO "
	                   "UPDATE SET tenant_id = EXCLUDED.tenant_id, revision = "
	                   "EXCLUDED.revision, name = EXCLUDED.name, command_id = "
	                   "EXCLUDED.command_id, updated_at = now()",
	                   5, v, errstr, errstr_size);
	for (size_t i = 0; i < p->ncompetences; i++) {
		struct assay_copybuf *b = &db->copy[C_COMPETENCES];
		const struct plan_competence *c = &p->competences[i];

		assay_copybuf_str(b, p->person_id);
		assay_copybuf_int64(b, (int64_t)i + 1);
		assay_copybuf_str(b, plan_standard_names[c->standard]);
		assay_copybuf_str(b, plan_role_names[c->role]);
		cb_opt_str(b, c->technical_area);
		cb_date(b, c->valid_from);
		cb_date(b, c->valid_until);
		assay_copybuf_end_row(b);
	}
	for (size_t i = 0; i < p->nrelations; i++) {
		struct assay_copybuf *b = &db->copy[C_RELATIONS];
		const struct plan_relation *r = &p->relations[i];

		assay_copybuf_str(b, p->person_id);
		assay_copybuf_int64(b, (int64_t)i + 1);
		assay_copybuf_str(b, r->client_id);
		assay_copybuf_str(b, plan_relation_kind_names[r->kind]);
		cb_date(b, r->started_on);
		cb_date(b, r->ended_on);
		assay_copybuf_end_row(b);
	}
}

static void write_audit(struct plan_db *db, const struct plan_audit *a)
{
	const struct plan_time *t = a->time;
	struct assay_copybuf *b = &db->copy[C_AUDITS];

	assay_copybuf_str(b, a->audit_id);
	assay_copybuf_str(b, a->tenant_id);
	assay_copybuf_str(b, a->client_id);
	assay_copybuf_str(b, plan_audit_type_names[a->audit_type]);
	cb_date(b, a->planned_start);
	cb_date(b, a->planned_end);
	for (int k = 0; k < PLAN_INTEGRATION_ELEMENTS; k++)
		assay_copybuf_bool(b, a->integration[k]);
	assay_copybuf_str(b, a->command_id);
	assay_copybuf_end_row(b);
	for (size_t i = 0; i < a->nscopes; i++) {
		b = &db->copy[C_AUDIT_STANDARDS];
		assay_copybuf_str(b, a->audit_id);
		assay_copybuf_int64(b, (int64_t)i + 1);
		assay_copybuf_str(b, plan_standard_names[a->scopes[i].standard]);
		assay_copybuf_str(b, a->scopes[i].cycle_id);
		assay_copybuf_str(b, a->scopes[i].scope_statement);
		assay_copybuf_end_row(b);
	}
	for (size_t i = 0; i < a->nsite_ids; i++) {
		b = &db->copy[C_AUDIT_SITES];
		assay_copybuf_str(b, a->audit_id);
		assay_copybuf_int64(b, (int64_t)i + 1);
		assay_copybuf_str(b, a->site_ids[i]);
		assay_copybuf_end_row(b);
	}
	for (size_t i = 0; i < a->nadjustments; i++) {
		b = &db->copy[C_ADJUSTMENTS];
		assay_copybuf_str(b, a->audit_id);
		assay_copybuf_int64(b, (int64_t)i + 1);
		assay_copybuf_str(b, plan_standard_names[a->adjustments[i].standard]);
		assay_copybuf_str(b, a->adjustments[i].factor);
		cb_double(b, a->adjustments[i].percent);
		assay_copybuf_str(b, a->adjustments[i].justification);
		assay_copybuf_end_row(b);
	}
	if (t == NULL)
		return;
	b = &db->copy[C_TIMES];
	assay_copybuf_str(b, a->audit_id);
	assay_copybuf_bool(b, t->configured);
	assay_copybuf_int64(b, t->sites_total);
	assay_copybuf_int64(b, t->sites_sampled);
	cb_double(b, t->sampling_factor);
	cb_opt_double(b, t->configured, t->sum_days);
	assay_copybuf_int64(b, t->integration_elements);
	cb_double(b, t->integration_reduction_percent);
	cb_opt_double(b, t->configured, t->total_reduction_percent);
	cb_double(b, t->total_reduction_cap_percent);
	cb_opt_double(b, t->configured, t->initial_days);
	cb_double(b, t->audit_share_percent);
	cb_opt_double(b, t->configured, t->total_days);
	cb_opt_double(b, t->configured, t->onsite_days);
	cb_opt_double(b, t->configured, t->offsite_days);
	cb_double(b, t->onsite_min_percent);
	{
		size_t len = 0;
		char *notes;

		for (size_t k = 0; k < t->nnotes; k++)
			len += strlen(t->notes[k]) + 1;
		notes = malloc(len + 1);
		if (notes == NULL) {
			b->failed = 1;
		} else {
			len = 0;
			for (size_t k = 0; k < t->nnotes; k++) {
				size_t n = strlen(t->notes[k]);

				if (k > 0)
					notes[len++] = '\n';
				memcpy(notes + len, t->notes[k], n);
				len += n;
			}
			assay_copybuf_text(b, notes, len);
			free(notes);
		}
	}
	assay_copybuf_end_row(b);
	for (size_t s = 0; s < t->nstandards; s++) {
		const struct plan_standard_time *st = &t->standards[s];
		const char *name = plan_standard_names[st->standard];

		b = &db->copy[C_TIME_STANDARDS];
		assay_copybuf_str(b, a->audit_id);
		assay_copybuf_str(b, name);
		assay_copybuf_bool(b, st->configured);
		assay_copybuf_int64(b, st->persons);
		assay_copybuf_int64(b, st->effective_persons);
		cb_opt_double(b, st->configured, st->table_days);
		cb_double(b, st->adjustment_sum_percent);
		cb_double(b, st->adjustment_cap_percent);
		cb_double(b, st->adjustment_applied_percent);
		cb_opt_double(b, st->configured, st->days);
		assay_copybuf_end_row(b);
		for (size_t g = 0; g < st->ngroups; g++) {
			b = &db->copy[C_TIME_GROUPS];
			assay_copybuf_str(b, a->audit_id);
			assay_copybuf_str(b, name);
			assay_copybuf_str(b, st->groups[g].group_id);
			assay_copybuf_int64(b, st->groups[g].persons);
			assay_copybuf_int64(b, st->groups[g].counted);
			assay_copybuf_end_row(b);
		}
	}
}

static void write_roster(struct plan_db *db, const struct plan_roster *ro, bool replaced,
                         char *errstr, size_t errstr_size)
{
	const char *p[1] = {ro->audit_id};

	if (replaced)
		assay_pipeline_add(&db->pipe, "DELETE FROM assay_plan_team WHERE audit_id = $1", 1,
		                   p, errstr, errstr_size);
	for (size_t i = 0; i < ro->nmembers; i++) {
		struct assay_copybuf *b = &db->copy[C_TEAM];
		char standards[128];

		bits_str(standards, sizeof(standards), ro->members[i].standards,
		         plan_standard_names, PLAN_NSTANDARDS);
		assay_copybuf_str(b, ro->audit_id);
		assay_copybuf_str(b, ro->members[i].person_id);
		assay_copybuf_str(b, plan_role_names[ro->members[i].role]);
		assay_copybuf_str(b, standards);
		assay_copybuf_end_row(b);
	}
}

static void write_soa(struct plan_db *db, const struct plan_soa *so)
{
	struct assay_copybuf *b = &db->copy[C_SOAS];
	const char *name = plan_standard_names[so->standard];

	assay_copybuf_str(b, so->audit_id);
	assay_copybuf_str(b, name);
	assay_copybuf_int64(b, so->revision);
	assay_copybuf_str(b, so->soa_version);
	assay_copybuf_int64(b, so->applicable_count);
	assay_copybuf_int64(b, so->excluded_count);
	assay_copybuf_str(b, so->command_id);
	assay_copybuf_end_row(b);
	for (size_t i = 0; i < so->nrows; i++) {
		b = &db->copy[C_SOA_ROWS];
		assay_copybuf_str(b, so->audit_id);
		assay_copybuf_str(b, name);
		assay_copybuf_int64(b, so->revision);
		assay_copybuf_str(b, so->rows[i].control_id);
		assay_copybuf_bool(b, so->rows[i].applicable);
		assay_copybuf_str(b, so->rows[i].justification);
		assay_copybuf_end_row(b);
	}
}

static void write_completion(struct plan_db *db, const struct plan_completion *co)
{
	struct assay_copybuf *b = &db->copy[C_COMPLETIONS];

	assay_copybuf_str(b, co->audit_id);
	assay_copybuf_str(b, plan_standard_names[co->standard]);
	assay_copybuf_str(b, plan_audit_type_names[co->stage]);
	cb_date(b, co->last_day);
	assay_copybuf_str(b, co->command_id);
	assay_copybuf_end_row(b);
}

static void write_cycle(struct plan_db *db, const struct plan_cycle *cy, bool replaced,
                        char *errstr, size_t errstr_size)
{
	char seq[16], stage1[16];
	const char *p[5] = {cy->cycle_id, cy->client_id, plan_standard_names[cy->standard], seq,
	                    NULL};

	snprintf(seq, sizeof(seq), "%d", (int)cy->seq);
	if (cy->stage1_completed_on != PLAN_NO_DATE) {
		plan_date_format(cy->stage1_completed_on, stage1);
		p[4] = stage1;
	}
	if (replaced)
		assay_pipeline_add(&db->pipe,
		                   "DELETE FROM assay_plan_decision_makers WHERE cycle_id = $1", 1,
		                   p, errstr, errstr_size);
	assay_pipeline_add(
	        &db->pipe,
	        "INSERT INTO assay_plan_cycles (cycle_id, client_id, standard, seq, "
	        "stage1_completed_on) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cycle_id) "
	        "DO UPDATE SET stage1_completed_on = EXCLUDED.stage1_completed_on",
	        5, p, errstr, errstr_size);
	for (size_t i = 0; i < cy->ndms; i++) {
		struct assay_copybuf *b = &db->copy[C_DMS];

		assay_copybuf_str(b, cy->cycle_id);
		assay_copybuf_str(b, cy->dms[i].person_id);
		assay_copybuf_str(b, cy->dms[i].audit_id);
		assay_copybuf_str(b, cy->dms[i].command_id);
		assay_copybuf_end_row(b);
	}
}

int plan_db_write(struct plan_db *db, PGconn *conn, const struct plan_state *st,
                  const struct plan_cmdlog *log, size_t nlog, char *errstr, size_t errstr_size)
{
	static const char *const outcomes[] = {"applied", "refused", "ignored"};
	size_t n = plan_state_nchanges(st);
	bool piped = false;
	int err = 0;

	for (int i = 0; i < C_N; i++)
		assay_copybuf_reset(&db->copy[i]);
	for (size_t i = 0; i < n && !err; i++) {
		struct plan_change ch;
		bool replaced;

		plan_state_change(st, i, &ch);
		if (ch.value == NULL)
			continue;
		replaced = !ch.was_absent;
		switch (ch.map) {
		case PLAN_MAP_CLIENT:
		case PLAN_MAP_PERSON:
		case PLAN_MAP_ROSTER:
		case PLAN_MAP_CYCLE:
			if (!piped) {
				err = assay_pipeline_begin(&db->pipe, conn, errstr, errstr_size);
				piped = err == 0;
			}
			break;
		default:
			break;
		}
		if (err)
			break;
		switch (ch.map) {
		case PLAN_MAP_CLIENT:
			write_client(db, ch.value, replaced, errstr, errstr_size);
			break;
		case PLAN_MAP_PERSON:
			write_person(db, ch.value, replaced, errstr, errstr_size);
			break;
		case PLAN_MAP_AUDIT:
			write_audit(db, ch.value);
			break;
		case PLAN_MAP_ROSTER:
			write_roster(db, ch.value, replaced, errstr, errstr_size);
			break;
		case PLAN_MAP_COMPLETION:
			write_completion(db, ch.value);
			break;
		case PLAN_MAP_SOA:
			write_soa(db, ch.value);
			break;
		case PLAN_MAP_CYCLE:
			write_cycle(db, ch.value, replaced, errstr, errstr_size);
			break;
		default:
			break; /* cycle index and command ids: derived or logged below */
		}
	}
	if (piped) {
		int perr = assay_pipeline_end(&db->pipe, errstr, errstr_size);

		err = err ? err : perr;
	}
	if (err)
		return err;
	for (size_t i = 0; i < nlog; i++) {
		struct assay_copybuf *b = &db->copy[C_COMMANDS];

		assay_copybuf_str(b, log[i].command_id);
		assay_copybuf_str(b, plan_cmd_names[log[i].kind]);
		assay_copybuf_str(b, outcomes[log[i].status]);
		assay_copybuf_int64(b, (int64_t)log[i].nreasons);
		assay_copybuf_str(b, log[i].topic);
		assay_copybuf_int64(b, log[i].partition);
		assay_copybuf_int64(b, log[i].offset);
		assay_copybuf_end_row(b);
	}
	for (int i = 0; i < C_N && !err; i++)
		if (assay_copybuf_rows(&db->copy[i]) > 0 || db->copy[i].failed)
			err = assay_pg_copy(conn, copy_sql[i], &db->copy[i], errstr, errstr_size);
	return err;
}
