/*
 * Reads the coverage view of one audit into plain rows in natural control order, and sums
 * them up. The view does the counting; this file only fetches, sorts and totals.
 */
#include "assay_coverage.h"
#include "assay_catalog.h"
#include "assay_pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int row_cmp(const void *pa, const void *pb)
{
	const struct assay_coverage_row *a = pa, *b = pb;
	int r = strcmp(a->standard, b->standard);

	return r != 0 ? r : assay_control_id_cmp(a->control_id, b->control_id);
}

static int parse_count(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		return -1;
	*out = v;
	return 0;
}

int assay_coverage_query(PGconn *conn, const char *audit_id, const char *standard,
                         struct assay_coverage_row **rows, size_t *nrows, char *errstr,
                         size_t errstr_size)
{
	const char *params[2] = {audit_id, standard};
	struct assay_coverage_row *out = NULL;
	PGresult *res = NULL;
	int rc, n;

	*rows = NULL;
	*nrows = 0;
	rc = assay_pg_query(conn,
	                    "SELECT standard, control_id, annex_a, direct, automatic, pending "
	                    "FROM assay_coverage WHERE audit_id = $1 "
	                    "AND ($2::text IS NULL OR standard = $2)",
	                    2, params, &res, errstr, errstr_size);
	if (rc != 0)
		return rc;
	n = PQntuples(res);
	if (n > 0) {
		out = calloc((size_t)n, sizeof(*out));
		if (out == NULL) {
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "coverage query: out of memory");
			goto out;
		}
	}
	for (int i = 0; i < n; i++) {
		struct assay_coverage_row *r = &out[i];

		snprintf(r->standard, sizeof(r->standard), "%s", PQgetvalue(res, i, 0));
		snprintf(r->control_id, sizeof(r->control_id), "%s", PQgetvalue(res, i, 1));
		r->annex_a = PQgetvalue(res, i, 2)[0] == 't';
		if (parse_count(PQgetvalue(res, i, 3), &r->direct) ||
		    parse_count(PQgetvalue(res, i, 4), &r->automatic) ||
		    parse_count(PQgetvalue(res, i, 5), &r->pending)) {
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "coverage query: bad count for %s %s", r->standard,
			                r->control_id);
			goto out;
		}
	}
	if (n > 0)
		qsort(out, (size_t)n, sizeof(*out), row_cmp);
	*rows = out;
	*nrows = (size_t)n;
	out = NULL;
out:
	free(out);
	PQclear(res);
	return rc;
}

void assay_coverage_summarize(const struct assay_coverage_row *rows, size_t nrows,
                              struct assay_coverage_summary *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < nrows; i++) {
		out->controls++;
		if (rows[i].direct > 0 || rows[i].automatic > 0)
			out->covered++;
		else if (rows[i].pending > 0)
			out->pending_only++;
		else
			out->uncovered++;
	}
}
