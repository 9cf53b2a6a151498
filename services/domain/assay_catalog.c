/*
 * The control catalogs in memory: the editions of the standards with their validity windows
 * and every clause and Annex A control, read once from PostgreSQL (sql/002_catalog.sql) or
 * built from plain data, then immutable. Controls are kept in one array sorted by standard,
 * clauses before Annex A, ids in natural order, so a lookup is a binary search and the
 * controls of one standard and kind are a contiguous range.
 */
#include "assay_catalog.h"
#include "assay_pg.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_DAY 86400000LL

struct std_entry {
	struct assay_standard_def def; /* strings owned */
	bool current;                  /* the edition "FAMILY:" references resolve to */
	/* ranges in controls[]: [0] clauses, [1] Annex A */
	size_t first[2], count[2];
};

struct assay_catalog {
	struct std_entry *stds;
	size_t nstds;
	struct assay_control *controls; /* strings owned; standard points at stds[].def.standard */
	size_t ncontrols;
};

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

/* Parses one decimal component at *p (advancing it); -1 when there is none. */
static long id_component(const char **p)
{
	long v = 0;
	int digits = 0;

	while (**p >= '0' && **p <= '9') {
		if (v < LONG_MAX / 10)
			v = v * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	return digits > 0 ? v : -1;
}

int assay_control_id_cmp(const char *a, const char *b)
{
	bool aa = strncmp(a, "A.", 2) == 0, ba = strncmp(b, "A.", 2) == 0;

	if (aa != ba)
		return aa ? 1 : -1;
	if (aa) {
		a += 2;
		b += 2;
	}
	for (;;) {
		long x = id_component(&a), y = id_component(&b);

		if (x != y)
			return x < y ? -1 : 1;
		if (x < 0) /* neither has a number here: fall back to bytes */
			return strcmp(a, b);
		if (*a == '.' && *b == '.') {
			a++;
			b++;
			continue;
		}
		if (*a == '\0' && *b == '\0')
			return 0;
		if (*a == '\0' || *b == '\0') /* a prefix first: "9.3" < "9.3.1" */
			return *a == '\0' ? -1 : 1;
		return strcmp(a, b);
	}
}

static const struct std_entry *std_find(const struct assay_catalog *c, const char *standard)
{
	if (c == NULL || standard == NULL)
		return NULL;
	for (size_t i = 0; i < c->nstds; i++)
		if (strcmp(c->stds[i].def.standard, standard) == 0)
			return &c->stds[i];
	return NULL;
}

static size_t std_pos(const struct assay_catalog *c, const char *standard)
{
	const struct std_entry *e = std_find(c, standard);

	return e == NULL ? SIZE_MAX : (size_t)(e - c->stds);
}

/* sort context is the catalog (qsort has none): controls carry their standard's position
 * in a parallel array while sorting */
struct sort_item {
	size_t std;
	struct assay_control ctl;
};

static int sort_item_cmp(const void *pa, const void *pb)
{
	const struct sort_item *a = pa, *b = pb;

	if (a->std != b->std)
		return a->std < b->std ? -1 : 1;
	return assay_control_id_cmp(a->ctl.id, b->ctl.id);
}

static int std_def_cmp(const void *pa, const void *pb)
{
	const struct std_entry *a = pa, *b = pb;
	int r = strcmp(a->def.family, b->def.family);

	if (r != 0)
		return r;
	return (a->def.edition > b->def.edition) - (a->def.edition < b->def.edition);
}

void assay_catalog_destroy(struct assay_catalog *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->ncontrols; i++) {
		free((char *)c->controls[i].id);
		free((char *)c->controls[i].title);
		free((char *)c->controls[i].theme);
	}
	free(c->controls);
	for (size_t i = 0; i < c->nstds; i++) {
		free((char *)c->stds[i].def.standard);
		free((char *)c->stds[i].def.family);
	}
	free(c->stds);
	free(c);
}

static int copy_standards(struct assay_catalog *c, const struct assay_standard_def *standards,
                          size_t n, char *errstr, size_t errstr_size)
{
	c->stds = calloc(n > 0 ? n : 1, sizeof(*c->stds));
	if (c->stds == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "catalog: out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct assay_standard_def *d = &standards[i];

		if (d->standard == NULL || d->standard[0] == '\0' || d->family == NULL ||
		    d->family[0] == '\0')
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "catalog: standard %zu has no symbol or family", i);
		if (std_find(c, d->standard) != NULL)
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "catalog: standard %s listed twice", d->standard);
		c->stds[i].def = *d;
		c->stds[i].def.standard = dup_str(d->standard);
		c->stds[i].def.family = dup_str(d->family);
		c->nstds = i + 1;
		if (c->stds[i].def.standard == NULL || c->stds[i].def.family == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "catalog: out of memory");
	}
	qsort(c->stds, c->nstds, sizeof(*c->stds), std_def_cmp);
	/* current edition per family: the newest without an end, else the newest */
	for (size_t i = 0; i < c->nstds; i++) {
		size_t best = SIZE_MAX;

		for (size_t j = 0; j < c->nstds; j++) {
			const struct assay_standard_def *d = &c->stds[j].def;

			if (strcmp(d->family, c->stds[i].def.family) != 0)
				continue;
			if (best == SIZE_MAX) {
				best = j;
				continue;
			}
			const struct assay_standard_def *b = &c->stds[best].def;
			bool d_open = !d->has_valid_until, b_open = !b->has_valid_until;

			if ((d_open && !b_open) || (d_open == b_open && d->edition > b->edition))
				best = j;
		}
		c->stds[i].current = best == i;
	}
	return 0;
}

int assay_catalog_new(const struct assay_standard_def *standards, size_t nstandards,
                      const struct assay_control *controls, size_t ncontrols,
                      struct assay_catalog **out, char *errstr, size_t errstr_size)
{
	struct assay_catalog *c = NULL;
	struct sort_item *items = NULL;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "catalog: out of memory");
		goto out;
	}
	rc = copy_standards(c, standards, nstandards, errstr, errstr_size);
	if (rc != 0)
		goto out;

	items = calloc(ncontrols > 0 ? ncontrols : 1, sizeof(*items));
	c->controls = calloc(ncontrols > 0 ? ncontrols : 1, sizeof(*c->controls));
	if (items == NULL || c->controls == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "catalog: out of memory");
		goto out;
	}
	for (size_t i = 0; i < ncontrols; i++) {
		const struct assay_control *k = &controls[i];
		size_t pos = std_pos(c, k->standard);

		if (pos == SIZE_MAX) {
			rc = assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                "catalog: control %s of unknown standard %s",
			                k->id != NULL ? k->id : "(null)",
			                k->standard != NULL ? k->standard : "(null)");
			goto out;
		}
		if (k->id == NULL || k->id[0] == '\0' || k->title == NULL || k->title[0] == '\0') {
			rc = assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                "catalog: control %zu of %s has no id or title", i,
			                k->standard);
			goto out;
		}
		if (k->annex_a != (strncmp(k->id, "A.", 2) == 0)) {
			rc = assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                "catalog: %s %s: annex_a disagrees with the id",
			                k->standard, k->id);
			goto out;
		}
		items[i].std = pos;
		items[i].ctl = *k;
	}
	qsort(items, ncontrols, sizeof(*items), sort_item_cmp);
	for (size_t i = 0; i < ncontrols; i++) {
		struct assay_control *d = &c->controls[i];
		struct std_entry *e = &c->stds[items[i].std];
		int kind = items[i].ctl.annex_a ? 1 : 0;

		if (i > 0 && items[i - 1].std == items[i].std &&
		    assay_control_id_cmp(items[i - 1].ctl.id, items[i].ctl.id) == 0) {
			rc = assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                "catalog: %s %s listed twice", e->def.standard,
			                items[i].ctl.id);
			goto out;
		}
		d->standard = e->def.standard;
		d->annex_a = items[i].ctl.annex_a;
		d->id = dup_str(items[i].ctl.id);
		d->title = dup_str(items[i].ctl.title);
		d->theme = dup_str(items[i].ctl.theme != NULL ? items[i].ctl.theme : "");
		c->ncontrols = i + 1;
		if (d->id == NULL || d->title == NULL || d->theme == NULL) {
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "catalog: out of memory");
			goto out;
		}
		if (e->count[kind] == 0)
			e->first[kind] = i;
		e->count[kind]++;
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	free(items);
	assay_catalog_destroy(c);
	return rc;
}

/* A date column given as days since the epoch ("19662"), or has = false for NULL. */
static int day_value(const PGresult *res, int row, int col, bool *has, int32_t *day)
{
	char *end;
	long v;

	if (PQgetisnull(res, row, col)) {
		*has = false;
		*day = 0;
		return 0;
	}
	errno = 0;
	v = strtol(PQgetvalue(res, row, col), &end, 10);
	if (errno != 0 || *end != '\0' || v < INT32_MIN || v > INT32_MAX)
		return -1;
	*has = true;
	*day = (int32_t)v;
	return 0;
}

int assay_catalog_load(PGconn *conn, struct assay_catalog **out, char *errstr, size_t errstr_size)
{
	PGresult *sres = NULL, *cres = NULL;
	struct assay_standard_def *defs = NULL;
	struct assay_control *ctls = NULL;
	int rc;

	*out = NULL;
	rc = assay_pg_query(conn,
	                    "SELECT standard, family, edition, valid_from - date '1970-01-01', "
	                    "valid_until - date '1970-01-01' FROM assay_standards",
	                    0, NULL, &sres, errstr, errstr_size);
	if (rc != 0)
		goto out;
	rc = assay_pg_query(
	        conn, "SELECT standard, id, annex_a, title, theme FROM assay_catalog_controls", 0,
	        NULL, &cres, errstr, errstr_size);
	if (rc != 0)
		goto out;

	int ns = PQntuples(sres), nc = PQntuples(cres);

	defs = calloc(ns > 0 ? (size_t)ns : 1, sizeof(*defs));
	ctls = calloc(nc > 0 ? (size_t)nc : 1, sizeof(*ctls));
	if (defs == NULL || ctls == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "catalog load: out of memory");
		goto out;
	}
	for (int i = 0; i < ns; i++) {
		bool has_from;
		char *end;
		long ed;

		defs[i].standard = PQgetvalue(sres, i, 0);
		defs[i].family = PQgetvalue(sres, i, 1);
		errno = 0;
		ed = strtol(PQgetvalue(sres, i, 2), &end, 10);
		defs[i].edition = (int)ed;
		if (errno != 0 || *end != '\0' || ed < 0 || ed > INT_MAX ||
		    day_value(sres, i, 3, &has_from, &defs[i].valid_from) != 0 || !has_from ||
		    day_value(sres, i, 4, &defs[i].has_valid_until, &defs[i].valid_until) != 0) {
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "catalog load: bad row for standard %s", defs[i].standard);
			goto out;
		}
	}
	for (int i = 0; i < nc; i++) {
		ctls[i].standard = PQgetvalue(cres, i, 0);
		ctls[i].id = PQgetvalue(cres, i, 1);
		ctls[i].annex_a = PQgetvalue(cres, i, 2)[0] == 't';
		ctls[i].title = PQgetvalue(cres, i, 3);
		ctls[i].theme = PQgetvalue(cres, i, 4);
	}
	rc = assay_catalog_new(defs, (size_t)ns, ctls, (size_t)nc, out, errstr, errstr_size);
	if (rc == ASSAY_ERR_REJECT)
		rc = ASSAY_ERR_FATAL; /* our own migrated data is inconsistent */
out:
	free(defs);
	free(ctls);
	PQclear(sres);
	PQclear(cres);
	return rc;
}

const struct assay_control *assay_catalog_find(const struct assay_catalog *c, const char *standard,
                                               const char *id)
{
	const struct std_entry *e;
	size_t lo, hi;
	int kind;

	if (c == NULL || id == NULL)
		return NULL;
	e = std_find(c, standard);
	if (e == NULL)
		return NULL;
	kind = strncmp(id, "A.", 2) == 0 ? 1 : 0;
	lo = e->first[kind];
	hi = lo + e->count[kind];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = assay_control_id_cmp(c->controls[mid].id, id);

		if (r == 0)
			return strcmp(c->controls[mid].id, id) == 0 ? &c->controls[mid] : NULL;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t assay_catalog_count(const struct assay_catalog *c, const char *standard, bool annex_a)
{
	const struct std_entry *e = std_find(c, standard);

	return e == NULL ? 0 : e->count[annex_a ? 1 : 0];
}

const struct assay_control *assay_catalog_at(const struct assay_catalog *c, const char *standard,
                                             bool annex_a, size_t i)
{
	const struct std_entry *e = std_find(c, standard);
	int kind = annex_a ? 1 : 0;

	if (e == NULL || i >= e->count[kind])
		return NULL;
	return &c->controls[e->first[kind] + i];
}

int assay_control_ref_parse(const struct assay_catalog *c, const char *ref, const char **standard,
                            char *id, size_t id_size, char *errstr, size_t errstr_size)
{
	const char *colon, *p;
	size_t flen, ilen;

	*standard = NULL;
	if (id != NULL && id_size > 0)
		id[0] = '\0';
	if (c == NULL || ref == NULL || id == NULL)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "control reference: missing argument");
	colon = strchr(ref, ':');
	if (colon == NULL || colon == ref)
		return assay_errf(
		        ASSAY_ERR_REJECT, errstr, errstr_size,
		        "control reference %.80s: expected FAMILY:ID, e.g. ISO27001:A.8.15", ref);
	flen = (size_t)(colon - ref);
	/* the id: clause "9.3" / "6.1.4" or Annex A "A.8.15": numbers separated by dots */
	p = colon + 1;
	if (strncmp(p, "A.", 2) == 0)
		p += 2;
	for (;;) {
		if (*p < '0' || *p > '9')
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "control reference %.80s: malformed control id", ref);
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p == '\0')
			break;
		if (*p != '.')
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "control reference %.80s: malformed control id", ref);
		p++;
	}
	ilen = strlen(colon + 1);
	if (ilen + 1 > id_size)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "control reference %.80s: control id too long", ref);

	for (size_t i = 0; i < c->nstds; i++) {
		const struct std_entry *e = &c->stds[i];
		bool fam = e->current && strlen(e->def.family) == flen &&
		           memcmp(e->def.family, ref, flen) == 0;
		bool sym =
		        strlen(e->def.standard) == flen && memcmp(e->def.standard, ref, flen) == 0;

		if (fam || sym) {
			memcpy(id, colon + 1, ilen + 1);
			*standard = e->def.standard;
			return 0;
		}
	}
	return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
	                  "control reference %.80s: unknown standard %.*s", ref, (int)flen, ref);
}

bool assay_catalog_edition_valid(const struct assay_catalog *c, const char *standard, int64_t at_ms)
{
	const struct std_entry *e = std_find(c, standard);
	int64_t day;

	if (e == NULL)
		return false;
	day = at_ms / MS_PER_DAY;
	if (at_ms % MS_PER_DAY < 0)
		day--; /* floor for instants before 1970 */
	if (day < e->def.valid_from)
		return false;
	return !e->def.has_valid_until || day <= e->def.valid_until;
}

const char *assay_catalog_standard(const struct assay_catalog *c, const char *standard)
{
	const struct std_entry *e = std_find(c, standard);

	return e == NULL ? NULL : e->def.standard;
}

size_t assay_catalog_standard_count(const struct assay_catalog *c)
{
	return c == NULL ? 0 : c->nstds;
}

const struct assay_standard_def *assay_catalog_standard_at(const struct assay_catalog *c, size_t i)
{
	return c == NULL || i >= c->nstds ? NULL : &c->stds[i].def;
}

size_t assay_catalog_size(const struct assay_catalog *c)
{
	return c == NULL ? 0 : c->ncontrols;
}

const struct assay_control *assay_catalog_get(const struct assay_catalog *c, size_t index)
{
	return c == NULL || index >= c->ncontrols ? NULL : &c->controls[index];
}

size_t assay_catalog_index(const struct assay_catalog *c, const struct assay_control *ctl)
{
	if (c == NULL || ctl == NULL || c->ncontrols == 0 || ctl < c->controls ||
	    ctl >= c->controls + c->ncontrols)
		return SIZE_MAX;
	return (size_t)(ctl - c->controls);
}
