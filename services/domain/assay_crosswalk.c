/*
 * The crosswalk: validation of edges from a file or the table (every problem listed), an
 * adjacency per control in both directions for the mapping decision, the decision itself
 * (which links an evidence item gets, and of which kind), and the OSCAL mapping-collection
 * export. Pure except for assay_crosswalk_load() (one query) and the export (one FILE).
 */
#include "assay_crosswalk.h"
#include "assay_crosswalk_int.h"
#include "assay_strbuf.h"
#include "assay_pg.h"
#include "assay_uuid.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REF_ID_MAX 32

static const char *const rel_tokens[] = {"equivalent-to", "equal-to", "subset-of", "superset-of",
                                         "intersects-with"};
static const char *const rel_symbols[] = {"EQUIVALENT_TO", "EQUAL_TO", "SUBSET_OF", "SUPERSET_OF",
                                          "INTERSECTS_WITH"};
static const char *const str_tokens[] = {"high", "medium", "low"};
static const char *const str_symbols[] = {"HIGH", "MEDIUM", "LOW"};
static const char *const kind_symbols[] = {"DIRECT", "AUTOMATIC", "NEEDS_CONFIRMATION"};

#define NREL 5
#define NSTR 3

const char *assay_relation_token(enum assay_relation r)
{
	return (unsigned)r < NREL ? rel_tokens[r] : "unknown";
}
const char *assay_relation_symbol(enum assay_relation r)
{
	return (unsigned)r < NREL ? rel_symbols[r] : "UNKNOWN";
}

int assay_relation_parse(const char *s, enum assay_relation *out)
{
	for (int i = 0; s != NULL && i < NREL; i++)
		if (strcmp(s, rel_tokens[i]) == 0 || strcmp(s, rel_symbols[i]) == 0) {
			*out = (enum assay_relation)i;
			return 0;
		}
	return ASSAY_ERR_REJECT;
}

enum assay_relation assay_relation_inverse(enum assay_relation r)
{
	if (r == ASSAY_REL_SUBSET_OF)
		return ASSAY_REL_SUPERSET_OF;
	if (r == ASSAY_REL_SUPERSET_OF)
		return ASSAY_REL_SUBSET_OF;
	return r;
}

const char *assay_strength_token(enum assay_strength s)
{
	return (unsigned)s < NSTR ? str_tokens[s] : "unknown";
}

const char *assay_strength_symbol(enum assay_strength s)
{
	return (unsigned)s < NSTR ? str_symbols[s] : "UNKNOWN";
}

int assay_strength_parse(const char *s, enum assay_strength *out)
{
	for (int i = 0; s != NULL && i < NSTR; i++)
		if (strcmp(s, str_tokens[i]) == 0 || strcmp(s, str_symbols[i]) == 0) {
			*out = (enum assay_strength)i;
			return 0;
		}
	return ASSAY_ERR_REJECT;
}

const char *assay_link_kind_symbol(enum assay_link_kind k)
{
	return (unsigned)k < 3 ? kind_symbols[k] : "UNKNOWN";
}

enum assay_link_kind assay_crosswalk_link_kind(enum assay_relation r, enum assay_strength s)
{
	/* domain-rules R4.4: only identical-text edges share evidence by default */
	if (s == ASSAY_STRENGTH_HIGH && (r == ASSAY_REL_EQUIVALENT_TO || r == ASSAY_REL_EQUAL_TO))
		return ASSAY_LINK_AUTOMATIC;
	return ASSAY_LINK_NEEDS_CONFIRMATION;
}

/* one neighbour of a control, the relation read from that control's side */
void assay_crosswalk_problem(struct problems *p, unsigned line, const char *fmt, ...)
{
	char msg[512];
	int n, m;
	va_list ap;

	p->count++;
	n = line > 0 ? snprintf(msg, sizeof(msg), "%sline %u: ", p->len ? "; " : "", line)
	             : snprintf(msg, sizeof(msg), "%s", p->len ? "; " : "");
	va_start(ap, fmt);
	m = vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t add = strlen(msg);
	if (p->len + add + 1 > p->cap) {
		size_t cap = (p->cap ? p->cap * 2 : 1024) + add;
		char *b = realloc(p->buf, cap);

		if (b == NULL) {
			p->oom = true;
			return;
		}
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, msg, add + 1);
	p->len += add;
}

/* ---- building ---- */

void assay_crosswalk_destroy(struct assay_crosswalk *cw)
{
	if (cw == NULL)
		return;
	for (size_t i = 0; i < cw->nstrings; i++)
		free(cw->strings[i]);
	free(cw->strings);
	free(cw->edges);
	free(cw->adj_first);
	free(cw->adj);
	free(cw);
}

static char *keep_string(struct assay_crosswalk *cw, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d == NULL)
		return NULL;
	memcpy(d, s, n);
	cw->strings[cw->nstrings++] = d;
	return d;
}

static const struct assay_control *resolve_end(const struct assay_catalog *cat, const char *ref,
                                               const char *which, unsigned line, struct problems *p)
{
	const struct assay_control *ctl;
	const char *standard;
	char id[REF_ID_MAX], why[256];

	if (ref == NULL || ref[0] == '\0') {
		assay_crosswalk_problem(p, line, "missing %s", which);
		return NULL;
	}
	if (assay_control_ref_parse(cat, ref, &standard, id, sizeof(id), why, sizeof(why)) != 0) {
		assay_crosswalk_problem(p, line, "unknown %s %.80s (%s)", which, ref, why);
		return NULL;
	}
	ctl = assay_catalog_find(cat, standard, id);
	if (ctl == NULL)
		assay_crosswalk_problem(p, line, "unknown %s %.80s: no control %s in %s", which,
		                        ref, id, standard);
	return ctl;
}

static int build_adjacency(struct assay_crosswalk *cw)
{
	size_t n = assay_catalog_size(cw->cat), *fill;

	cw->adj_first = calloc(n + 1, sizeof(*cw->adj_first));
	cw->adj = calloc(cw->nedges * 2 + 1, sizeof(*cw->adj));
	fill = calloc(n + 1, sizeof(*fill));
	if (cw->adj_first == NULL || cw->adj == NULL || fill == NULL) {
		free(fill);
		return ASSAY_ERR_FATAL;
	}
	for (size_t i = 0; i < cw->nedges; i++) {
		fill[assay_catalog_index(cw->cat, cw->edges[i].source)]++;
		fill[assay_catalog_index(cw->cat, cw->edges[i].target)]++;
	}
	for (size_t k = 0; k < n; k++) {
		cw->adj_first[k + 1] = cw->adj_first[k] + fill[k];
		if (fill[k] > cw->max_degree)
			cw->max_degree = fill[k];
		fill[k] = cw->adj_first[k];
	}
	for (size_t i = 0; i < cw->nedges; i++) {
		const struct assay_crosswalk_edge *e = &cw->edges[i];
		size_t s = assay_catalog_index(cw->cat, e->source);
		size_t t = assay_catalog_index(cw->cat, e->target);

		cw->adj[fill[s]++] = (struct adj){e->target, e->relation, e->strength};
		cw->adj[fill[t]++] =
		        (struct adj){e->source, assay_relation_inverse(e->relation), e->strength};
	}
	free(fill);
	return 0;
}

/*
 * Validates rows into p (which may already hold problems found earlier, e.g. by the CSV
 * reader) and, when p holds none at the end, builds *out. Returns 0 (check p->count) or
 * ASSAY_ERR_FATAL (memory).
 */
int assay_crosswalk_build(const struct assay_catalog *cat, const struct assay_crosswalk_row *rows,
                          size_t n, struct problems *p0, struct assay_crosswalk **out, char *errstr,
                          size_t errstr_size)
{
#define p (*p0)
	struct assay_crosswalk *cw = NULL;
	unsigned *lines = NULL;
	bool *ok = NULL;
	int rc;

	*out = NULL;
	cw = calloc(1, sizeof(*cw));
	if (cw != NULL) {
		cw->cat = cat;
		cw->edges = calloc(n + 1, sizeof(*cw->edges));
		cw->strings = calloc(2 * n + 1, sizeof(*cw->strings));
	}
	lines = calloc(n + 1, sizeof(*lines));
	ok = calloc(n + 1, sizeof(*ok));
	if (cw == NULL || cw->edges == NULL || cw->strings == NULL || lines == NULL || ok == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
		goto out;
	}

	/* each row on its own */
	for (size_t i = 0; i < n; i++) {
		const struct assay_crosswalk_row *r = &rows[i];
		struct assay_crosswalk_edge *e = &cw->edges[i];
		unsigned line = r->line ? r->line : (unsigned)(i + 1);
		size_t before = p.count;

		lines[i] = line;
		e->source = resolve_end(cat, r->source, "source", line, &p);
		e->target = resolve_end(cat, r->target, "target", line, &p);
		if (e->source != NULL && e->target != NULL &&
		    strcmp(e->source->standard, e->target->standard) == 0)
			assay_crosswalk_problem(
			        &p, line, "both ends in %s (%s, %s): edges join two standards",
			        e->source->standard, e->source->id, e->target->id);
		if (assay_relation_parse(r->relation, &e->relation) != 0)
			assay_crosswalk_problem(
			        &p, line,
			        "unknown relation %.40s (expected equivalent-to, equal-to, "
			        "subset-of, superset-of or intersects-with)",
			        r->relation ? r->relation : "(missing)");
		if (assay_strength_parse(r->strength, &e->strength) != 0)
			assay_crosswalk_problem(
			        &p, line, "unknown strength %.40s (expected high, medium or low)",
			        r->strength ? r->strength : "(missing)");
		if (r->rationale == NULL || r->rationale[0] == '\0')
			assay_crosswalk_problem(&p, line, "empty rationale");
		if (r->provenance == NULL || r->provenance[0] == '\0')
			assay_crosswalk_problem(&p, line, "empty provenance");
		ok[i] = p.count == before;
		if (ok[i]) {
			e->rationale = keep_string(cw, r->rationale);
			e->provenance = keep_string(cw, r->provenance);
			if (e->rationale == NULL || e->provenance == NULL) {
				rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
				                "crosswalk: out of memory");
				goto out;
			}
		}
	}

	/* pairs: duplicates and inverse edges that disagree */
	for (size_t j = 0; j < n; j++) {
		const struct assay_crosswalk_edge *b = &cw->edges[j];

		if (!ok[j])
			continue;
		for (size_t i = 0; i < j; i++) {
			const struct assay_crosswalk_edge *a = &cw->edges[i];

			if (!ok[i])
				continue;
			if (a->source == b->source && a->target == b->target) {
				if (a->relation != b->relation)
					assay_crosswalk_problem(
					        &p, lines[j],
					        "%s:%s -> %s:%s listed again with a different "
					        "relation (%s here, %s on line %u)",
					        b->source->standard, b->source->id,
					        b->target->standard, b->target->id,
					        assay_relation_token(b->relation),
					        assay_relation_token(a->relation), lines[i]);
				else
					assay_crosswalk_problem(
					        &p, lines[j],
					        "%s:%s -> %s:%s listed twice (also line %u)",
					        b->source->standard, b->source->id,
					        b->target->standard, b->target->id, lines[i]);
			} else if (a->source == b->target && a->target == b->source) {
				if (b->relation != assay_relation_inverse(a->relation))
					assay_crosswalk_problem(
					        &p, lines[j],
					        "inverse edges disagree: %s:%s -> %s:%s is %s, "
					        "but line %u has the other direction as %s "
					        "(expected %s)",
					        b->source->standard, b->source->id,
					        b->target->standard, b->target->id,
					        assay_relation_token(b->relation), lines[i],
					        assay_relation_token(a->relation),
					        assay_relation_token(
					                assay_relation_inverse(b->relation)));
				else if (a->strength != b->strength)
					assay_crosswalk_problem(
					        &p, lines[j],
					        "inverse edges disagree: %s:%s -> %s:%s is %s, "
					        "line %u has the other direction as %s",
					        b->source->standard, b->source->id,
					        b->target->standard, b->target->id,
					        assay_strength_token(b->strength), lines[i],
					        assay_strength_token(a->strength));
			}
		}
	}

	if (p.oom) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
		goto out;
	}
	rc = 0;
	if (p.count > 0)
		goto out;
	cw->nedges = n;
	if (build_adjacency(cw) != 0) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
		goto out;
	}
	*out = cw;
	cw = NULL;
out:
	free(lines);
	free(ok);
	assay_crosswalk_destroy(cw);
	return rc;
#undef p
}

/* Formats the refusal of p into errstr; returns ASSAY_ERR_REJECT. */
int assay_crosswalk_refuse(const struct problems *p, size_t *nproblems, char *errstr,
                           size_t errstr_size)
{
	if (nproblems != NULL)
		*nproblems = p->count;
	return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
	                  "crosswalk refused, %zu problem%s: %s", p->count,
	                  p->count == 1 ? "" : "s", p->buf != NULL ? p->buf : "");
}

int assay_crosswalk_new(const struct assay_catalog *cat, const struct assay_crosswalk_row *rows,
                        size_t n, struct assay_crosswalk **out, size_t *nproblems, char *errstr,
                        size_t errstr_size)
{
	struct problems p = {0};
	int rc;

	if (nproblems != NULL)
		*nproblems = 0;
	rc = assay_crosswalk_build(cat, rows, n, &p, out, errstr, errstr_size);
	if (rc == 0 && p.count > 0)
		rc = assay_crosswalk_refuse(&p, nproblems, errstr, errstr_size);
	free(p.buf);
	return rc;
}

/* ---- database ---- */

int assay_crosswalk_load(PGconn *conn, const struct assay_catalog *cat,
                         struct assay_crosswalk **out, char *errstr, size_t errstr_size)
{
	PGresult *res = NULL;
	struct assay_crosswalk_row *rows = NULL;
	int rc, n;

	*out = NULL;
	rc = assay_pg_query(
	        conn,
	        "SELECT source_standard || ':' || source_id, target_standard || ':' || "
	        "target_id, relation, strength, rationale, provenance FROM assay_crosswalk "
	        "ORDER BY source_standard, source_id, target_standard, target_id",
	        0, NULL, &res, errstr, errstr_size);
	if (rc != 0)
		goto out;
	n = PQntuples(res);
	rows = calloc((size_t)n + 1, sizeof(*rows));
	if (rows == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++)
		rows[i] = (struct assay_crosswalk_row){PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		                                       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		                                       PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
		                                       (unsigned)i + 1};
	rc = assay_crosswalk_new(cat, rows, (size_t)n, out, NULL, errstr, errstr_size);
	if (rc == ASSAY_ERR_REJECT)
		rc = ASSAY_ERR_FATAL; /* our own data is broken */
out:
	free(rows);
	PQclear(res);
	return rc;
}

size_t assay_crosswalk_count(const struct assay_crosswalk *cw)
{
	return cw == NULL ? 0 : cw->nedges;
}

const struct assay_crosswalk_edge *assay_crosswalk_edge_at(const struct assay_crosswalk *cw,
                                                           size_t i)
{
	return cw == NULL || i >= cw->nedges ? NULL : &cw->edges[i];
}

/* ---- the mapping decision ---- */

size_t assay_crosswalk_links_bound(const struct assay_crosswalk *cw, size_t nclaimed)
{
	return nclaimed * (1 + (cw != NULL ? cw->max_degree : 0));
}

static bool in_scope(const struct assay_map_scope *scope, const char *standard)
{
	for (size_t i = 0; i < scope->nstandards; i++)
		if (strcmp(scope->standards[i], standard) == 0)
			return true;
	return false;
}

static bool excluded(const struct assay_map_scope *scope, const struct assay_control *ctl)
{
	if (!ctl->annex_a)
		return false; /* the SoA lists Annex A controls only */
	for (size_t i = 0; i < scope->nexcluded; i++)
		if (scope->excluded[i] == ctl)
			return true;
	return false;
}

/* a before b: better kind, stronger edge, earlier via (DIRECT links have no via) */
static bool link_better(const struct assay_link *a, const struct assay_link *b)
{
	if (a->kind != b->kind)
		return a->kind < b->kind;
	if (a->kind == ASSAY_LINK_DIRECT)
		return false;
	if (a->strength != b->strength)
		return a->strength < b->strength;
	if (a->relation != b->relation)
		return a->relation < b->relation;
	return a->via < b->via; /* same catalog array: catalog order */
}

static int link_order(const void *pa, const void *pb)
{
	const struct assay_link *a = pa, *b = pb;

	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	if (a->control != b->control)
		return a->control < b->control ? -1 : 1; /* catalog order */
	return 0;
}

static int offer(struct assay_link *out, size_t out_cap, size_t *n, const struct assay_link *l)
{
	for (size_t i = 0; i < *n; i++)
		if (out[i].control == l->control) {
			if (link_better(l, &out[i]))
				out[i] = *l;
			return 0;
		}
	if (*n >= out_cap)
		return ASSAY_ERR_FATAL;
	out[(*n)++] = *l;
	return 0;
}

int assay_crosswalk_map(const struct assay_crosswalk *cw,
                        const struct assay_control *const *claimed, size_t nclaimed,
                        const struct assay_map_scope *scope, struct assay_link *out, size_t out_cap,
                        size_t *nout)
{
	size_t n = 0;

	*nout = 0;
	for (size_t c = 0; c < nclaimed; c++) {
		const struct assay_control *ctl = claimed[c];
		size_t k;

		if (ctl == NULL)
			continue;
		if (in_scope(scope, ctl->standard) && !excluded(scope, ctl)) {
			struct assay_link l = {ctl, ASSAY_LINK_DIRECT, NULL, ASSAY_REL_EQUAL_TO,
			                       ASSAY_STRENGTH_HIGH};

			if (offer(out, out_cap, &n, &l) != 0)
				return ASSAY_ERR_FATAL;
		}
		k = assay_catalog_index(cw->cat, ctl);
		if (k == SIZE_MAX)
			continue;
		for (size_t a = cw->adj_first[k]; a < cw->adj_first[k + 1]; a++) {
			const struct adj *e = &cw->adj[a];
			struct assay_link l;

			if (e->other->standard == ctl->standard ||
			    strcmp(e->other->standard, ctl->standard) == 0 ||
			    !in_scope(scope, e->other->standard) || excluded(scope, e->other))
				continue;
			l = (struct assay_link){e->other,
			                        assay_crosswalk_link_kind(e->relation, e->strength),
			                        ctl, e->relation, e->strength};
			if (offer(out, out_cap, &n, &l) != 0)
				return ASSAY_ERR_FATAL;
		}
	}
	qsort(out, n, sizeof(*out), link_order);
	*nout = n;
	return 0;
}
