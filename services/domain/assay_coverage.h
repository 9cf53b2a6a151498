/*
 * Coverage of an audit: per standard in its scope, every applicable control (every clause;
 * every Annex A control its latest SoA does not exclude) with how many distinct evidence
 * items are linked to it directly, automatically (high-strength equivalent-to / equal-to
 * crosswalk edge) and pending an auditor's confirmation. Reads the view assay_coverage
 * (sql/003_mapper.sql), kept by assay-mapper; for later services and the command-line tool.
 */
#ifndef ASSAY_COVERAGE_H
#define ASSAY_COVERAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "assay_err.h"

struct assay_coverage_row {
	char standard[32];   /* "ISO27001_2022" */
	char control_id[32]; /* "A.8.15", "9.3.1" */
	bool annex_a;
	int64_t direct;    /* evidence items linked directly (claimed) */
	int64_t automatic; /* ... along an automatic crosswalk edge */
	int64_t pending;   /* ... along an edge that needs an auditor's confirmation */
};

/*
 * The coverage of audit_id (not NULL), restricted to standard when standard is not NULL.
 * Rows are ordered by standard, then clauses before Annex A in natural id order (A.5.2
 * before A.5.10). *rows is malloc'd (caller frees; NULL when there are none), *nrows its
 * length. An audit assay-mapper has not seen gives 0 rows. Returns 0, ASSAY_ERR_RETRY when
 * the database is unreachable, ASSAY_ERR_FATAL otherwise (missing view, memory).
 * conn: used by this call only; outside a transaction or inside the caller's.
 */
int assay_coverage_query(PGconn *conn, const char *audit_id, const char *standard,
                         struct assay_coverage_row **rows, size_t *nrows, char *errstr,
                         size_t errstr_size);

/* Totals over rows: controls with at least one direct or automatic link (covered), with
 * only pending links (pending_only), and with none (uncovered). Pure. */
struct assay_coverage_summary {
	size_t controls, covered, pending_only, uncovered;
};
void assay_coverage_summarize(const struct assay_coverage_row *rows, size_t nrows,
                              struct assay_coverage_summary *out);

#endif
