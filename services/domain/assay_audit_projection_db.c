/*
 * The audit projection's tables (sql/010_audit_projection.sql): the audits a batch changed
 * are upserted as rows of the consumer's group in one pipeline inside the batch transaction,
 * and a group's rows are loaded into a projection built aside and swapped in whole.
 */
#include "assay_audit_projection_int.h"

#include "assay_err.h"
#include "assay_strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- storage ---- */

static void pg_text_array(struct assay_strbuf *sb, const char (*items)[ASSAY_AUDIT_STANDARD_LEN],
                          const bool *only, size_t n)
{
	assay_strbuf_reset(sb);
	assay_strbuf_appendc(sb, '{');
	for (size_t i = 0; i < n; i++) {
		if (only != NULL && !only[i])
			continue;
		assay_strbuf_pg_array_next(sb);
		assay_strbuf_append_pg_elem(sb, items[i], strlen(items[i]));
	}
	assay_strbuf_appendc(sb, '}');
}

static const char SQL_AUDIT_UPSERT[] =
        "INSERT INTO assay_audit_projection (consumer_group, service, audit_id, tenant_id, "
        "client_id, opened, opened_at, standards, completed, closed) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (consumer_group, audit_id) DO UPDATE SET service = $2, tenant_id = $4, "
        "client_id = $5, opened = $6, opened_at = $7, standards = $8, completed = $9, "
        "closed = $10, updated_at = now()";
static const char SQL_SOA_UPSERT[] =
        "INSERT INTO assay_audit_projection_soa (consumer_group, audit_id, standard, revision, "
        "control_ids, applicable) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (consumer_group, audit_id, standard) DO UPDATE SET revision = $4, "
        "control_ids = $5, applicable = $6, updated_at = now() "
        "WHERE assay_audit_projection_soa.revision <= $4";

int assay_audits_write(struct assay_audits *p, PGconn *conn, const char *group, const char *service,
                       char *errstr, size_t errstr_size)
{
	struct assay_strbuf std, done, ids, app;
	bool oom = false;
	int err;

	if (p->norder == 0)
		return 0;
	err = assay_pipeline_begin(&p->pipe, conn, errstr, errstr_size);
	if (err)
		return err;
	assay_strbuf_init(&std);
	assay_strbuf_init(&done);
	assay_strbuf_init(&ids);
	assay_strbuf_init(&app);
	for (size_t i = 0; i < p->norder; i++) {
		const struct assay_audit *au = p->order[i];
		char at[24];
		const char *params[10];

		pg_text_array(&std, au->standards, NULL, au->nstandards);
		pg_text_array(&done, au->standards, au->completed, au->nstandards);
		snprintf(at, sizeof(at), "%lld", (long long)au->opened_at);
		params[0] = group;
		params[1] = service;
		params[2] = au->audit_id;
		params[3] = au->tenant_id;
		params[4] = au->client_id;
		params[5] = au->opened ? "true" : "false";
		params[6] = at;
		params[7] = assay_strbuf_str(&std);
		params[8] = assay_strbuf_str(&done);
		params[9] = au->closed ? "true" : "false";
		oom = oom || std.failed || done.failed;
		assay_pipeline_add(&p->pipe, SQL_AUDIT_UPSERT, 10, params, NULL, 0);
		for (size_t s = 0; s < au->nstandards; s++) {
			const struct assay_audit_soa *soa = au->soa[s];
			char rev[16];
			const char *sp[6];

			if (soa == NULL)
				continue;
			assay_strbuf_reset(&ids);
			assay_strbuf_reset(&app);
			assay_strbuf_appendc(&ids, '{');
			assay_strbuf_appendc(&app, '{');
			for (size_t k = 0; k < soa->n; k++) {
				assay_strbuf_pg_array_next(&ids);
				assay_strbuf_append_pg_elem(&ids, soa->ids[k], strlen(soa->ids[k]));
				if (k > 0)
					assay_strbuf_appendc(&app, ',');
				assay_strbuf_appendc(&app, soa->applicable[k] ? 't' : 'f');
			}
			assay_strbuf_appendc(&ids, '}');
			assay_strbuf_appendc(&app, '}');
			snprintf(rev, sizeof(rev), "%d", (int)soa->revision);
			sp[0] = group;
			sp[1] = au->audit_id;
			sp[2] = au->standards[s];
			sp[3] = rev;
			sp[4] = assay_strbuf_str(&ids);
			sp[5] = assay_strbuf_str(&app);
			oom = oom || ids.failed || app.failed;
			assay_pipeline_add(&p->pipe, SQL_SOA_UPSERT, 6, sp, NULL, 0);
		}
	}
	err = assay_pipeline_end(&p->pipe, errstr, errstr_size);
	if (!err && oom)
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                 "audit projection: out of memory");
	assay_strbuf_release(&std);
	assay_strbuf_release(&done);
	assay_strbuf_release(&ids);
	assay_strbuf_release(&app);
	return err;
}

/* Splits a space-separated list in place into at most max words. */
static size_t split_words(char *s, char **out, size_t max)
{
	size_t n = 0;

	for (char *tok = strtok(s, " "); tok != NULL && n < max; tok = strtok(NULL, " "))
		out[n++] = tok;
	return n;
}

/* One stored audit row into the committed map of q. */
static int load_audit_row(struct assay_audits *q, PGresult *res, int r)
{
	char std[256], done[256], *stds[ASSAY_AUDIT_MAX_STANDARDS],
	        *dones[ASSAY_AUDIT_MAX_STANDARDS];
	size_t ns, nd;
	struct assay_audit *au =
	        aap_audit_new(PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
	void *old = NULL;

	if (au == NULL)
		return ASSAY_ERR_FATAL;
	au->opened = PQgetvalue(res, r, 3)[0] == 't';
	au->opened_at = strtoll(PQgetvalue(res, r, 4), NULL, 10);
	snprintf(std, sizeof(std), "%s", PQgetvalue(res, r, 5));
	snprintf(done, sizeof(done), "%s", PQgetvalue(res, r, 6));
	ns = split_words(std, stds, ASSAY_AUDIT_MAX_STANDARDS);
	nd = split_words(done, dones, ASSAY_AUDIT_MAX_STANDARDS);
	if (aap_check_standards((const char *const *)stds, ns, au->standards, &au->nstandards) !=
	    0) {
		aap_audit_free(au);
		return 0; /* not a row this projection wrote: skipped */
	}
	for (size_t i = 0; i < au->nstandards; i++)
		au->standard_ref[i] = aap_standard_ref(q, au->standards[i]);
	for (size_t i = 0; i < nd; i++) {
		int s = assay_audit_standard(au, dones[i]);

		if (s >= 0)
			au->completed[s] = true;
	}
	aap_update_closed(au);
	if (assay_strmap_put(&q->committed, au->audit_id, strlen(au->audit_id), au, &old) != 0) {
		aap_audit_free(au);
		return ASSAY_ERR_FATAL;
	}
	aap_audit_free(old);
	return 0;
}

/* The SoA of rows [start, end) of res (one audit and standard) into q's committed audit. */
static int load_soa_rows(struct assay_audits *q, PGresult *res, int start, int end,
                         const char **ids, bool *app)
{
	const char *audit_id = PQgetvalue(res, start, 0), *standard = PQgetvalue(res, start, 1);
	struct assay_audit *au = assay_strmap_get(&q->committed, audit_id, strlen(audit_id));
	struct assay_audit_soa *soa;
	size_t n = 0;
	int s;

	if (au == NULL || (s = assay_audit_standard(au, standard)) < 0)
		return 0; /* a SoA without its audit row, or out of scope: skipped */
	for (int r = start; r < end; r++) {
		if (PQgetisnull(res, r, 3))
			continue; /* an empty SoA */
		ids[n] = PQgetvalue(res, r, 3);
		app[n++] = PQgetvalue(res, r, 4)[0] == 't';
	}
	soa = aap_soa_build(q, au->standard_ref[s],
	                    (int32_t)strtol(PQgetvalue(res, start, 2), NULL, 10), ids, app, n);
	if (soa == NULL)
		return ASSAY_ERR_FATAL;
	aap_soa_free(au->soa[s]);
	au->soa[s] = soa;
	return 0;
}

static int load_into(struct assay_audits *q, PGconn *conn, const char *group, char *errstr,
                     size_t errstr_size)
{
	const char *params[1] = {group};
	PGresult *res = NULL;
	const char **ids = NULL;
	bool *app = NULL;
	int err, nrows, start = 0;

	err = assay_pg_query(conn,
	                     "SELECT audit_id, tenant_id, client_id, opened, opened_at, "
	                     "array_to_string(standards, ' '), array_to_string(completed, ' ') "
	                     "FROM assay_audit_projection WHERE consumer_group = $1",
	                     1, params, &res, errstr, errstr_size);
	if (err)
		return err;
	for (int r = 0; !err && r < PQntuples(res); r++)
		err = load_audit_row(q, res, r);
	PQclear(res);
	if (err)
		return assay_errf(err, errstr, errstr_size, "loading audits: out of memory");

	/* SoAs: one row per control, grouped by audit and standard */
	err = assay_pg_query(conn,
	                     "SELECT s.audit_id, s.standard, s.revision, u.c, u.a "
	                     "FROM assay_audit_projection_soa s LEFT JOIN LATERAL "
	                     "unnest(s.control_ids, s.applicable) AS u(c, a) ON true "
	                     "WHERE s.consumer_group = $1 ORDER BY s.audit_id, s.standard",
	                     1, params, &res, errstr, errstr_size);
	if (err)
		return err;
	nrows = PQntuples(res);
	ids = calloc((size_t)nrows + 1, sizeof(*ids));
	app = calloc((size_t)nrows + 1, sizeof(*app));
	if (ids == NULL || app == NULL)
		err = ASSAY_ERR_FATAL;
	for (int r = 1; !err && r <= nrows; r++)
		if (r == nrows || strcmp(PQgetvalue(res, r, 0), PQgetvalue(res, start, 0)) != 0 ||
		    strcmp(PQgetvalue(res, r, 1), PQgetvalue(res, start, 1)) != 0) {
			err = load_soa_rows(q, res, start, r, ids, app);
			start = r;
		}
	free(ids);
	free(app);
	PQclear(res);
	if (err)
		return assay_errf(err, errstr, errstr_size, "loading soas: out of memory");
	return 0;
}

int assay_audits_load(struct assay_audits *p, PGconn *conn, const char *group, char *errstr,
                      size_t errstr_size)
{
	struct assay_audits *q = assay_audits_new(&p->hooks);
	struct assay_strmap tmp;
	int err;

	if (q == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "loading audits: out of memory");
	err = load_into(q, conn, group, errstr, errstr_size);
	if (err == 0) {
		assay_audits_rollback(p);
		tmp = p->committed;
		p->committed = q->committed;
		q->committed = tmp;
	}
	assay_audits_destroy(q);
	return err;
}
