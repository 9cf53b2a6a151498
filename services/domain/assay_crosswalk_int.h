/*
 * Internals shared by assay_crosswalk.c (the graph and its queries), assay_crosswalk_csv.c
 * (reading it) and assay_oscal.c (writing it as OSCAL).
 */
#ifndef ASSAY_CROSSWALK_INT_H
#define ASSAY_CROSSWALK_INT_H

#include "assay_crosswalk.h"

#include <stdbool.h>
#include <stddef.h>

struct adj {
	const struct assay_control *other;
	enum assay_relation relation;
	enum assay_strength strength;
};

struct assay_crosswalk {
	const struct assay_catalog *cat;
	struct assay_crosswalk_edge *edges;
	size_t nedges;
	char **strings; /* rationale and provenance copies */
	size_t nstrings;
	size_t *adj_first; /* assay_catalog_size() + 1 offsets into adj */
	struct adj *adj;
	size_t max_degree;
};

/* ---- problem list ---- */

struct problems {
	char *buf;
	size_t len, cap;
	size_t count;
	bool oom;
};

/* Adds a problem found at line (0: none) to p. */
void assay_crosswalk_problem(struct problems *p, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Checks rows against cat, adding every problem to p0 and, when it holds none at the end,
 * builds *out. Returns 0 (check p0->count) or ASSAY_ERR_FATAL (memory). */
int assay_crosswalk_build(const struct assay_catalog *cat, const struct assay_crosswalk_row *rows,
                          size_t n, struct problems *p0, struct assay_crosswalk **out, char *errstr,
                          size_t errstr_size);

/* Formats the refusal of p into errstr; returns ASSAY_ERR_REJECT. */
int assay_crosswalk_refuse(const struct problems *p, size_t *nproblems, char *errstr,
                           size_t errstr_size);

#endif
