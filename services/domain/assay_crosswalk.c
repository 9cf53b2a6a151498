/*
 * The crosswalk: validation of edges from a file or the table (every problem listed), an
 * adjacency per control in both directions for the mapping decision, the decision itself
 * (which links an evidence item gets, and of which kind), and the OSCAL mapping-collection
 * export. Pure except for assay_crosswalk_load() (one query) and the export (one FILE).
 */
#include "assay_crosswalk.h"
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

static void problem_add(struct problems *p, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void problem_add(struct problems *p, unsigned line, const char *fmt, ...)
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
		problem_add(p, line, "missing %s", which);
		return NULL;
	}
	if (assay_control_ref_parse(cat, ref, &standard, id, sizeof(id), why, sizeof(why)) != 0) {
		problem_add(p, line, "unknown %s %.80s (%s)", which, ref, why);
		return NULL;
	}
	ctl = assay_catalog_find(cat, standard, id);
	if (ctl == NULL)
		problem_add(p, line, "unknown %s %.80s: no control %s in %s", which, ref, id,
		            standard);
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
static int build(const struct assay_catalog *cat, const struct assay_crosswalk_row *rows, size_t n,
                 struct problems *p0, struct assay_crosswalk **out, char *errstr,
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
			problem_add(&p, line, "both ends in %s (%s, %s): edges join two standards",
			            e->source->standard, e->source->id, e->target->id);
		if (assay_relation_parse(r->relation, &e->relation) != 0)
			problem_add(&p, line,
			            "unknown relation %.40s (expected equivalent-to, equal-to, "
			            "subset-of, superset-of or intersects-with)",
			            r->relation ? r->relation : "(missing)");
		if (assay_strength_parse(r->strength, &e->strength) != 0)
			problem_add(&p, line,
			            "unknown strength %.40s (expected high, medium or low)",
			            r->strength ? r->strength : "(missing)");
		if (r->rationale == NULL || r->rationale[0] == '\0')
			problem_add(&p, line, "empty rationale");
		if (r->provenance == NULL || r->provenance[0] == '\0')
			problem_add(&p, line, "empty provenance");
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
					problem_add(&p, lines[j],
					            "%s:%s -> %s:%s listed again with a different "
					            "relation (%s here, %s on line %u)",
					            b->source->standard, b->source->id,
					            b->target->standard, b->target->id,
					            assay_relation_token(b->relation),
					            assay_relation_token(a->relation), lines[i]);
				else
					problem_add(&p, lines[j],
					            "%s:%s -> %s:%s listed twice (also line %u)",
					            b->source->standard, b->source->id,
					            b->target->standard, b->target->id, lines[i]);
			} else if (a->source == b->target && a->target == b->source) {
				if (b->relation != assay_relation_inverse(a->relation))
					problem_add(&p, lines[j],
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
					problem_add(&p, lines[j],
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
static int refuse(const struct problems *p, size_t *nproblems, char *errstr, size_t errstr_size)
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
	rc = build(cat, rows, n, &p, out, errstr, errstr_size);
	if (rc == 0 && p.count > 0)
		rc = refuse(&p, nproblems, errstr, errstr_size);
	free(p.buf);
	return rc;
}

/* ---- CSV ---- */

/* One CSV record: malloc'd fields and the line it starts on. */
struct csv_record {
	char **fields;
	size_t nfields, cap;
	unsigned line;
};

static void csv_free(struct csv_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < recs[i].nfields; k++)
			free(recs[i].fields[k]);
		free(recs[i].fields);
	}
	free(recs);
}

/* the field being read */
struct csv_buf {
	char *s;
	size_t len, cap;
};

static int buf_push(struct csv_buf *b, char c)
{
	if (b->len + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		char *s = realloc(b->s, cap);

		if (s == NULL)
			return -1;
		b->s = s;
		b->cap = cap;
	}
	b->s[b->len++] = c;
	return 0;
}

static int record_push(struct csv_record *r, const struct csv_buf *b)
{
	char *f;

	if (r->nfields == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		char **fs = realloc(r->fields, cap * sizeof(*fs));

		if (fs == NULL)
			return -1;
		r->fields = fs;
		r->cap = cap;
	}
	f = malloc(b->len + 1);
	if (f == NULL)
		return -1;
	if (b->len > 0)
		memcpy(f, b->s, b->len);
	f[b->len] = '\0';
	r->fields[r->nfields++] = f;
	return 0;
}

/*
 * Splits text into records of fields (RFC 4180), skipping blank lines. Returns 0 with
 * *out (caller frees with csv_free) or ASSAY_ERR_REJECT (a problem was added: unterminated
 * quote, text after a closing quote) or ASSAY_ERR_FATAL (memory).
 */
static int csv_split(const char *text, size_t len, struct csv_record **out, size_t *nout,
                     struct problems *p)
{
	struct csv_record *recs = NULL, rec = {0};
	struct csv_buf b = {0};
	size_t nrecs = 0, caprecs = 0, i = 0;
	unsigned line = 1;
	int rc = ASSAY_ERR_FATAL;

	while (i < len) {
		if (text[i] == '\n' || text[i] == '\r') { /* blank line */
			line += text[i] == '\n';
			i++;
			continue;
		}
		rec = (struct csv_record){NULL, 0, 0, line};
		for (;;) { /* one field per turn */
			b.len = 0;
			if (i < len && text[i] == '"') {
				for (i++;; i++) {
					if (i >= len) {
						problem_add(p, rec.line,
						            "unterminated quoted field");
						rc = ASSAY_ERR_REJECT;
						goto fail;
					}
					if (text[i] == '"' && i + 1 < len && text[i + 1] == '"')
						i++;
					else if (text[i] == '"')
						break;
					line += text[i] == '\n';
					if (buf_push(&b, text[i]) != 0)
						goto fail;
				}
				i++;
				if (i < len && text[i] != ',' && text[i] != '\n' &&
				    text[i] != '\r') {
					problem_add(p, rec.line, "text after a closing quote");
					rc = ASSAY_ERR_REJECT;
					goto fail;
				}
			} else {
				while (i < len && text[i] != ',' && text[i] != '\n' &&
				       text[i] != '\r')
					if (buf_push(&b, text[i++]) != 0)
						goto fail;
			}
			if (record_push(&rec, &b) != 0)
				goto fail;
			if (i < len && text[i] == ',') {
				i++;
				continue;
			}
			break;
		}
		if (i < len && text[i] == '\r')
			i++;
		if (i < len && text[i] == '\n') {
			i++;
			line++;
		}
		if (nrecs == caprecs) {
			size_t cap = caprecs ? caprecs * 2 : 64;
			struct csv_record *r = realloc(recs, cap * sizeof(*r));

			if (r == NULL)
				goto fail;
			recs = r;
			caprecs = cap;
		}
		recs[nrecs++] = rec;
		rec = (struct csv_record){0};
	}
	free(b.s);
	*out = recs;
	*nout = nrecs;
	return 0;
fail:
	free(b.s);
	for (size_t k = 0; k < rec.nfields; k++)
		free(rec.fields[k]);
	free(rec.fields);
	csv_free(recs, nrecs);
	*out = NULL;
	*nout = 0;
	return rc;
}

enum { COL_SOURCE, COL_TARGET, COL_RELATION, COL_STRENGTH, COL_RATIONALE, COL_PROVENANCE, NCOLS };
static const char *const col_names[NCOLS] = {"source",   "target",    "relation",
                                             "strength", "rationale", "provenance"};

int assay_crosswalk_parse_csv(const struct assay_catalog *cat, const char *text, size_t len,
                              const char *default_provenance, struct assay_crosswalk **out,
                              size_t *nproblems, char *errstr, size_t errstr_size)
{
	struct problems p = {0};
	struct csv_record *recs = NULL;
	struct assay_crosswalk_row *rows = NULL;
	size_t nrecs = 0, nrows = 0;
	int col[NCOLS];
	int rc;

	*out = NULL;
	if (nproblems != NULL)
		*nproblems = 0;
	rc = csv_split(text, len, &recs, &nrecs, &p);
	if (rc == ASSAY_ERR_FATAL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
		goto out;
	}
	if (rc == 0 && nrecs == 0)
		problem_add(&p, 1, "no header row");
	if (rc == 0 && nrecs > 0) {
		for (int k = 0; k < NCOLS; k++)
			col[k] = -1;
		for (size_t f = 0; f < recs[0].nfields; f++) {
			int k;

			for (k = 0; k < NCOLS; k++)
				if (strcmp(recs[0].fields[f], col_names[k]) == 0)
					break;
			if (k == NCOLS)
				problem_add(&p, recs[0].line, "unknown column %.40s",
				            recs[0].fields[f]);
			else if (col[k] >= 0)
				problem_add(&p, recs[0].line, "column %s listed twice",
				            col_names[k]);
			else
				col[k] = (int)f;
		}
		for (int k = 0; k < COL_PROVENANCE; k++)
			if (col[k] < 0)
				problem_add(&p, recs[0].line, "missing column %s", col_names[k]);
	}
	if (p.count == 0) {
		rows = calloc(nrecs, sizeof(*rows));
		if (rows == NULL) {
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "crosswalk: out of memory");
			goto out;
		}
		for (size_t r = 1; r < nrecs; r++) {
			const struct csv_record *rec = &recs[r];

			if (rec->nfields != recs[0].nfields) {
				problem_add(&p, rec->line, "%zu fields, the header has %zu",
				            rec->nfields, recs[0].nfields);
				continue;
			}
			rows[nrows] = (struct assay_crosswalk_row){
			        .source = rec->fields[col[COL_SOURCE]],
			        .target = rec->fields[col[COL_TARGET]],
			        .relation = rec->fields[col[COL_RELATION]],
			        .strength = rec->fields[col[COL_STRENGTH]],
			        .rationale = rec->fields[col[COL_RATIONALE]],
			        .provenance = col[COL_PROVENANCE] >= 0
			                              ? rec->fields[col[COL_PROVENANCE]]
			                              : default_provenance,
			        .line = rec->line,
			};
			nrows++;
		}
	}
	if (p.oom) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
		goto out;
	}
	if (rows != NULL) { /* the rows are validated even when some lines were refused */
		rc = build(cat, rows, nrows, &p, out, errstr, errstr_size);
		if (rc != 0)
			goto out;
	}
	rc = p.count > 0 ? refuse(&p, nproblems, errstr, errstr_size) : 0;
	if (rc != 0 && p.oom)
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
out:
	free(p.buf);
	free(rows);
	csv_free(recs, nrecs);
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

/* ---- OSCAL export ---- */

/* Writes s as a JSON string literal; true when out of memory (nothing written then). */
static bool json_str(FILE *f, const char *s)
{
	char buf[1024];
	struct assay_strbuf sb;
	bool failed;

	assay_strbuf_init_fixed(&sb, buf, sizeof(buf));
	assay_strbuf_append_json(&sb, s, strlen(s));
	failed = sb.failed;
	if (!failed)
		fwrite(sb.p, 1, sb.len, f);
	assay_strbuf_release(&sb);
	return failed;
}

static void oscal_id(FILE *f, const struct assay_control *ctl)
{
	/* OSCAL tokens start with a letter or '_': "A.5.1" as is, clause "4.1" -> "clause-4.1" */
	fprintf(f, "\"%s%s\"", ctl->annex_a ? "" : "clause-", ctl->id);
}

static void name_uuid(char out[ASSAY_UUID_LEN], const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void name_uuid(char out[ASSAY_UUID_LEN], const char *fmt, ...)
{
	char name[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	assay_uuid_from_name(name, strlen(name), out);
}

#define OSCAL_NS "urn:assay:oscal"

/* export order: catalog order of source, then of target (controls share one array) */
static int edge_ptr_order(const void *pa, const void *pb)
{
	const struct assay_crosswalk_edge *a = *(const struct assay_crosswalk_edge *const *)pa;
	const struct assay_crosswalk_edge *b = *(const struct assay_crosswalk_edge *const *)pb;

	if (a->source != b->source)
		return a->source < b->source ? -1 : 1;
	if (a->target != b->target)
		return a->target < b->target ? -1 : 1;
	return 0;
}

int assay_crosswalk_write_oscal(const struct assay_crosswalk *cw, FILE *out, int64_t now_ms,
                                char *errstr, size_t errstr_size)
{
	const struct assay_catalog *cat = cw->cat;
	size_t nstd = assay_catalog_standard_count(cat);
	char uuid[ASSAY_UUID_LEN], ts[32];
	time_t secs = (time_t)(now_ms / 1000);
	struct tm tm;
	const struct assay_crosswalk_edge **order;
	bool first_mapping = true, oom = false;

	order = calloc(cw->nedges + 1, sizeof(*order));
	if (order == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "oscal export: out of memory");
	for (size_t i = 0; i < cw->nedges; i++)
		order[i] = &cw->edges[i];
	qsort(order, cw->nedges, sizeof(*order), edge_ptr_order);
	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	name_uuid(uuid, "assay crosswalk mapping-collection %zu edges", cw->nedges);

	fputs("{\n  \"mapping-collection\": {\n    \"uuid\": ", out);
	oom |= json_str(out, uuid);
	fputs(",\n    \"metadata\": {\n      \"title\": ", out);
	oom |= json_str(out, "assay crosswalk ISO/IEC 27001:2022 <-> ISO/IEC 42001:2023");
	fputs(",\n      \"last-modified\": ", out);
	oom |= json_str(out, ts);
	fputs(",\n      \"version\": \"1\",\n      \"oscal-version\": \"1.2.0\",\n      "
	      "\"remarks\": ",
	      out);
	oom |= json_str(
	        out, "assay's own judgement, not ISO's; links say which evidence may be looked at, "
	             "never what it proves (docs/crosswalk.md)");
	fputs("\n    },\n    \"provenance\": {\n      \"method\": \"human\",\n"
	      "      \"matching-rationale\": \"semantic\",\n      \"status\": \"complete\",\n"
	      "      \"mapping-description\": ",
	      out);
	oom |= json_str(out,
	                "control ids and titles compared by assay's engineers with the harmonized "
	                "structure clause map; high-strength equivalent-to/equal-to edges link "
	                "evidence automatically, every other edge needs an auditor's confirmation");
	fputs("\n    },\n    \"mappings\": [", out);

	for (size_t si = 0; si < nstd; si++) {
		for (size_t ti = 0; ti < nstd; ti++) {
			const char *src = assay_catalog_standard_at(cat, si)->standard;
			const char *tgt = assay_catalog_standard_at(cat, ti)->standard;
			bool first_map = true;

			for (size_t i = 0; i < cw->nedges; i++) {
				const struct assay_crosswalk_edge *e = order[i];

				if (strcmp(e->source->standard, src) != 0 ||
				    strcmp(e->target->standard, tgt) != 0)
					continue;
				if (first_map) {
					fputs(first_mapping ? "\n" : ",\n", out);
					first_mapping = false;
					name_uuid(uuid, "assay crosswalk mapping %s %s", src, tgt);
					fputs("      {\n        \"uuid\": ", out);
					oom |= json_str(out, uuid);
					fprintf(out,
					        ",\n        \"source-resource\": {\"type\": "
					        "\"catalog\", \"href\": "
					        "\"urn:assay:catalog:%s\"},\n"
					        "        \"target-resource\": {\"type\": "
					        "\"catalog\", \"href\": "
					        "\"urn:assay:catalog:%s\"},\n"
					        "        \"maps\": [",
					        src, tgt);
				}
				fputs(first_map ? "\n" : ",\n", out);
				first_map = false;
				name_uuid(uuid, "assay crosswalk map %s:%s %s:%s", src,
				          e->source->id, tgt, e->target->id);
				fputs("          {\n            \"uuid\": ", out);
				oom |= json_str(out, uuid);
				fprintf(out,
				        ",\n            \"relationship\": \"%s\",\n"
				        "            \"matching-rationale\": \"semantic\",\n"
				        "            \"sources\": [{\"type\": \"control\", "
				        "\"id-ref\": ",
				        assay_relation_token(e->relation));
				oscal_id(out, e->source);
				fputs("}],\n            \"targets\": [{\"type\": \"control\", "
				      "\"id-ref\": ",
				      out);
				oscal_id(out, e->target);
				fprintf(out,
				        "}],\n            \"props\": [\n"
				        "              {\"name\": \"strength\", \"ns\": \"" OSCAL_NS
				        "\", \"value\": \"%s\"},\n"
				        "              {\"name\": \"link-kind\", \"ns\": "
				        "\"" OSCAL_NS "\", \"value\": \"%s\"},\n"
				        "              {\"name\": \"source-control\", \"ns\": "
				        "\"" OSCAL_NS "\", \"value\": \"%s:%s\"},\n"
				        "              {\"name\": \"target-control\", \"ns\": "
				        "\"" OSCAL_NS "\", \"value\": \"%s:%s\"},\n"
				        "              {\"name\": \"provenance\", \"ns\": "
				        "\"" OSCAL_NS "\", \"value\": ",
				        assay_strength_token(e->strength),
				        assay_link_kind_symbol(assay_crosswalk_link_kind(
				                e->relation, e->strength)),
				        src, e->source->id, tgt, e->target->id);
				oom |= json_str(out, e->provenance);
				fputs("}\n            ],\n            \"remarks\": ", out);
				oom |= json_str(out, e->rationale);
				fputs("\n          }", out);
			}
			if (!first_map)
				fputs("\n        ]\n      }", out);
		}
	}
	fputs("\n    ]\n  }\n}\n", out);
	free(order);
	if (oom)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "oscal export: out of memory");
	if (fflush(out) != 0 || ferror(out))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "oscal export: write failed");
	return 0;
}
