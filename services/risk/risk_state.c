/*
 * assay-risk's state in memory and the incremental recomputation of a batch (risk_state.h).
 * Changes are applied in place; the first change of a batch to an audit header or a control
 * saves a copy in an undo log, which rollback restores (controls, then headers, then audits
 * created in the batch are removed).
 */
#include "risk_state.h"
#include "assay_err.h"
#include "assay_strmap.h"
#include "assay_vec.h"

#include <stdlib.h>
#include <string.h>

struct undo_ctl {
	struct risk_ctl *ctl;
	struct risk_ctl saved; /* sources deep-copied */
};

struct undo_hdr {
	struct risk_audit *audit;
	struct risk_audit_hdr saved; /* deep copy */
};

struct std_info {
	const char *symbol; /* catalog's */
	bool ai;
	size_t n, nclauses;
	const struct assay_control **ctl; /* per position */
	int8_t *likelihood, *impact;
	uint8_t *dims;
};

struct src_entry {
	char *name;
};

struct risk_state {
	const struct assay_catalog *cat;
	struct risk_params p;
	struct std_info std[RISK_MAX_STD];
	size_t nstd;
	/* audits by audit_id (keys are the audits' own audit_id) */
	struct assay_strmap audits;
	/* interned source systems: src_index maps a name to its index in src, plus one */
	struct src_entry *src;
	size_t nsrc, capsrc;
	struct assay_strmap src_index;
	/* batch */
	uint32_t epoch;
	bool in_batch;
	struct undo_ctl *uctl;
	size_t nuctl, capuctl;
	struct undo_hdr *uhdr;
	size_t nuhdr, capuhdr;
	struct risk_audit **created;
	size_t ncreated, capcreated;
	struct risk_audit **touched;
	size_t ntouched, captouched;
	struct risk_summary_item *items; /* scratch, largest standard */
	size_t capitems;
	/* outputs */
	struct risk_batch_out out;
	size_t cap_results, cap_changes, cap_score_rows, cap_score_deletes, cap_summary_rows,
	        cap_dim_rows, cap_audit_rows, cap_soa_rows, cap_deltas;
};

/* ---- small helpers ---- */

static char *dup_str(const char *s)
{
	return strdup(s ? s : "");
}

static void hdr_free(struct risk_audit_hdr *h)
{
	free(h->tenant_id);
	free(h->client_id);
	for (size_t i = 0; i < h->nai; i++)
		free((char *)h->ai[i].id);
	free(h->ai);
	for (int k = 0; k < RISK_MAX_STD; k++)
		free(h->excluded[k]);
	memset(h, 0, sizeof(*h));
}

static int hdr_copy(const struct risk_state *s, struct risk_audit_hdr *dst,
                    const struct risk_audit_hdr *src)
{
	*dst = *src;
	dst->tenant_id = dup_str(src->tenant_id);
	dst->client_id = dup_str(src->client_id);
	dst->ai = NULL;
	dst->nai = 0;
	for (int k = 0; k < RISK_MAX_STD; k++)
		dst->excluded[k] = NULL;
	if (dst->tenant_id == NULL || dst->client_id == NULL)
		goto fail;
	if (src->nai) {
		dst->ai = calloc(src->nai, sizeof(*dst->ai));
		if (dst->ai == NULL)
			goto fail;
		for (size_t i = 0; i < src->nai; i++) {
			dst->ai[i] = src->ai[i];
			dst->ai[i].id = strdup(src->ai[i].id);
			if (dst->ai[i].id == NULL)
				goto fail;
			dst->nai = i + 1;
		}
	}
	for (size_t k = 0; k < s->nstd; k++)
		if (src->excluded[k]) {
			dst->excluded[k] = malloc(s->std[k].n);
			if (dst->excluded[k] == NULL)
				goto fail;
			memcpy(dst->excluded[k], src->excluded[k], s->std[k].n);
		}
	return 0;
fail:
	hdr_free(dst);
	return ASSAY_ERR_FATAL;
}

static void audit_free(const struct risk_state *s, struct risk_audit *a)
{
	if (a == NULL)
		return;
	for (size_t k = 0; k < s->nstd; k++) {
		for (size_t i = 0; a->ctl[k] && i < s->std[k].n; i++)
			free(a->ctl[k][i].ev.sources);
		free(a->ctl[k]);
	}
	hdr_free(&a->h);
	free(a->dirty);
	free(a->audit_id);
	free(a);
}

/* ---- construction ---- */

/* "A.8.15" -> "A.8"; "6.1.2" -> "6" */
static void control_group(const char *id, char *out, size_t size)
{
	const char *p = id;
	size_t n;

	if (strncmp(p, "A.", 2) == 0)
		p += 2;
	p += strcspn(p, ".");
	n = (size_t)(p - id);
	if (n >= size)
		n = size - 1;
	memcpy(out, id, n);
	out[n] = '\0';
}

int risk_state_new(const struct assay_catalog *cat, const struct risk_params *p,
                   const struct risk_theme_row *themes, size_t nthemes,
                   const struct risk_tag_row *tags, size_t ntags, struct risk_state **out,
                   char *errstr, size_t errstr_size)
{
	struct risk_state *s = calloc(1, sizeof(*s));
	size_t largest = 0;
	int err = ASSAY_ERR_FATAL;

	*out = NULL;
	if (s == NULL)
		goto nomem;
	s->cat = cat;
	s->p = *p;
	for (size_t i = 0; i < assay_catalog_standard_count(cat); i++) {
		const char *sym = assay_catalog_standard_at(cat, i)->standard;
		struct std_info *si;
		size_t nc, na;

		sym = assay_catalog_standard(cat, sym);
		nc = assay_catalog_count(cat, sym, false);
		na = assay_catalog_count(cat, sym, true);
		if (nc + na == 0)
			continue;
		if (s->nstd == RISK_MAX_STD || nc + na > 0xffff) {
			err = assay_errf(
			        ASSAY_ERR_FATAL, errstr, errstr_size,
			        "risk state: too many standards or controls in the catalog");
			goto fail;
		}
		si = &s->std[s->nstd++];
		si->symbol = sym;
		si->ai = strncmp(sym, "ISO42001", 8) == 0;
		si->n = nc + na;
		si->nclauses = nc;
		si->ctl = calloc(si->n, sizeof(*si->ctl));
		si->likelihood = calloc(si->n, 1);
		si->impact = calloc(si->n, 1);
		si->dims = calloc(si->n, 1);
		if (!si->ctl || !si->likelihood || !si->impact || !si->dims)
			goto nomem;
		for (size_t k = 0; k < si->n; k++) {
			char group[32];

			si->ctl[k] = k < nc ? assay_catalog_at(cat, sym, false, k)
			                    : assay_catalog_at(cat, sym, true, k - nc);
			si->likelihood[k] = (int8_t)p->likelihood_default;
			si->impact[k] = (int8_t)p->impact_default;
			control_group(si->ctl[k]->id, group, sizeof(group));
			for (size_t t = 0; t < nthemes; t++)
				if (strcmp(themes[t].standard, sym) == 0 &&
				    strcmp(themes[t].group, group) == 0) {
					if (themes[t].likelihood < 1 || themes[t].likelihood > 5 ||
					    themes[t].impact < 1 || themes[t].impact > 5) {
						err = assay_errf(ASSAY_ERR_FATAL, errstr,
						                 errstr_size,
						                 "risk theme %s %s: likelihood and "
						                 "impact must be 1-5",
						                 sym, group);
						goto fail;
					}
					si->likelihood[k] = (int8_t)themes[t].likelihood;
					si->impact[k] = (int8_t)themes[t].impact;
				}
		}
		if (si->n > largest)
			largest = si->n;
	}
	for (size_t t = 0; t < ntags; t++) {
		int k = risk_state_std_index(s, tags[t].standard), pos, d;

		d = risk_dim_parse(tags[t].dimension);
		if (d < 0) {
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                 "risk dimension tag %s %s: unknown dimension %s",
			                 tags[t].standard, tags[t].control_id, tags[t].dimension);
			goto fail;
		}
		if (k < 0 || (pos = risk_state_position(s, k, tags[t].control_id)) < 0)
			continue;
		s->std[k].dims[pos] |= (uint8_t)(1u << d);
	}
	s->items = calloc(largest ? largest : 1, sizeof(*s->items));
	s->capitems = largest;
	if (!s->items)
		goto nomem;
	*out = s;
	return 0;
nomem:
	err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk state: out of memory");
fail:
	risk_state_destroy(s);
	return err;
}

void risk_state_destroy(struct risk_state *s)
{
	if (s == NULL)
		return;
	if (s->in_batch)
		risk_state_rollback(s);
	{
		size_t pos = 0;
		void *a;

		while (assay_strmap_next(&s->audits, &pos, NULL, &a))
			audit_free(s, a);
		assay_strmap_release(&s->audits);
	}
	for (size_t i = 0; i < s->nsrc; i++)
		free(s->src[i].name);
	free(s->src);
	assay_strmap_release(&s->src_index);
	for (size_t k = 0; k < s->nstd; k++) {
		free(s->std[k].ctl);
		free(s->std[k].likelihood);
		free(s->std[k].impact);
		free(s->std[k].dims);
	}
	free(s->uctl);
	free(s->uhdr);
	free(s->created);
	free(s->touched);
	free(s->items);
	free(s->out.results);
	free(s->out.changes);
	free(s->out.score_rows);
	free(s->out.score_deletes);
	free(s->out.summary_rows);
	free(s->out.dim_rows);
	free(s->out.audit_rows);
	free(s->out.soa_rows);
	free(s->out.deltas);
	free(s);
}

/* ---- lookups ---- */

const struct risk_params *risk_state_params(const struct risk_state *s)
{
	return &s->p;
}

size_t risk_state_nstd(const struct risk_state *s)
{
	return s->nstd;
}

const char *risk_state_std_symbol(const struct risk_state *s, int std)
{
	return s->std[std].symbol;
}

bool risk_state_std_is_ai(const struct risk_state *s, int std)
{
	return s->std[std].ai;
}

int risk_state_std_index(const struct risk_state *s, const char *standard)
{
	for (size_t k = 0; standard && k < s->nstd; k++)
		if (strcmp(s->std[k].symbol, standard) == 0)
			return (int)k;
	return -1;
}

size_t risk_state_std_size(const struct risk_state *s, int std)
{
	return s->std[std].n;
}

const struct assay_control *risk_state_control(const struct risk_state *s, int std, size_t pos)
{
	return s->std[std].ctl[pos];
}

unsigned risk_state_control_dims(const struct risk_state *s, int std, size_t pos)
{
	return s->std[std].dims[pos];
}

void risk_state_control_theme(const struct risk_state *s, int std, size_t pos, int *likelihood,
                              int *impact)
{
	*likelihood = s->std[std].likelihood[pos];
	*impact = s->std[std].impact[pos];
}

int risk_state_position(const struct risk_state *s, int std, const char *control_id)
{
	const struct std_info *si = &s->std[std];
	const struct assay_control *c = assay_catalog_find(s->cat, si->symbol, control_id);
	size_t lo, hi;

	if (c == NULL)
		return -1;
	/* positions are clauses then Annex A, each in catalog (natural) order */
	lo = c->annex_a ? si->nclauses : 0;
	hi = c->annex_a ? si->n : si->nclauses;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = assay_control_id_cmp(si->ctl[mid]->id, c->id);

		if (cmp == 0)
			return si->ctl[mid] == c ? (int)mid : -1;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = 0; i < si->n; i++) /* catalog order not natural after all */
		if (si->ctl[i] == c)
			return (int)i;
	return -1;
}

const char *risk_state_source_name(const struct risk_state *s, uint32_t source)
{
	return source < s->nsrc ? s->src[source].name : "";
}

static int source_intern(struct risk_state *s, const char *name, uint32_t *out)
{
	uintptr_t at = (uintptr_t)assay_strmap_get(&s->src_index, name, strlen(name));
	char *copy;

	if (at != 0) {
		*out = (uint32_t)(at - 1);
		return 0;
	}
	if (s->nsrc == UINT32_MAX - 1 ||
	    assay_vec_reserve(&s->src, &s->capsrc, s->nsrc + 1, sizeof(*s->src)))
		return ASSAY_ERR_FATAL;
	copy = strdup(name);
	if (copy == NULL || assay_strmap_put(&s->src_index, copy, strlen(copy),
	                                     (void *)(uintptr_t)(s->nsrc + 1), NULL) != 0) {
		free(copy);
		return ASSAY_ERR_FATAL;
	}
	s->src[s->nsrc].name = copy;
	*out = (uint32_t)s->nsrc++;
	return 0;
}

static struct risk_audit *audit_lookup(const struct risk_state *s, const char *audit_id)
{
	return assay_strmap_get(&s->audits, audit_id, strlen(audit_id));
}

const struct risk_audit *risk_state_find(const struct risk_state *s, const char *audit_id)
{
	return audit_lookup(s, audit_id);
}

size_t risk_state_naudits(const struct risk_state *s)
{
	return assay_strmap_count(&s->audits);
}

static void audit_unlink(struct risk_state *s, struct risk_audit *a)
{
	assay_strmap_remove(&s->audits, a->audit_id, strlen(a->audit_id));
}

/* The audit, created when missing (remembered for undo inside a batch). NULL: memory. */
static struct risk_audit *audit_get(struct risk_state *s, const char *audit_id)
{
	struct risk_audit *a = audit_lookup(s, audit_id);

	if (a)
		return a;
	if (s->in_batch &&
	    assay_vec_reserve(&s->created, &s->capcreated, s->ncreated + 1, sizeof(*s->created)))
		return NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->audit_id = strdup(audit_id);
	a->h.tenant_id = strdup("");
	a->h.client_id = strdup("");
	a->h.ref_day = RISK_DAY_NONE;
	if (!a->audit_id || !a->h.tenant_id || !a->h.client_id)
		goto fail;
	for (size_t k = 0; k < s->nstd; k++) {
		a->ctl[k] = calloc(s->std[k].n, sizeof(*a->ctl[k]));
		if (a->ctl[k] == NULL)
			goto fail;
	}
	if (assay_strmap_put(&s->audits, a->audit_id, strlen(a->audit_id), a, NULL) != 0)
		goto fail;
	if (s->in_batch) {
		s->created[s->ncreated++] = a;
		a->epoch = s->epoch - 1; /* the first touch saves its (empty) header */
	}
	return a;
fail:
	audit_free(s, a);
	return NULL;
}

/* ---- batch bookkeeping and undo ---- */

/* First change of a in this batch: saves its header, joins the touched list. */
static int audit_touch(struct risk_state *s, struct risk_audit *a, size_t msg)
{
	if (!s->in_batch)
		return 0;
	if (a->epoch != s->epoch) {
		if (assay_vec_reserve(&s->uhdr, &s->capuhdr, s->nuhdr + 1, sizeof(*s->uhdr)) ||
		    assay_vec_reserve(&s->touched, &s->captouched, s->ntouched + 1,
		                      sizeof(*s->touched)))
			return ASSAY_ERR_FATAL;
		if (hdr_copy(s, &s->uhdr[s->nuhdr].saved, &a->h))
			return ASSAY_ERR_FATAL;
		s->uhdr[s->nuhdr++].audit = a;
		s->touched[s->ntouched++] = a;
		a->epoch = s->epoch;
		a->hdr_dirty = false;
		a->ndirty = 0;
		memset(a->all_dirty, 0, sizeof(a->all_dirty));
		memset(a->soa_dirty, 0, sizeof(a->soa_dirty));
	}
	a->last_msg = msg;
	return 0;
}

/* First change of a control in this batch: saves it, lists it as dirty. */
static int ctl_touch(struct risk_state *s, struct risk_audit *a, int std, size_t pos)
{
	struct risk_ctl *c = &a->ctl[std][pos];
	struct undo_ctl *u;

	if (!s->in_batch || c->epoch == s->epoch)
		return 0;
	if (assay_vec_reserve(&s->uctl, &s->capuctl, s->nuctl + 1, sizeof(*s->uctl)) ||
	    assay_vec_reserve(&a->dirty, &a->capdirty, a->ndirty + 1, sizeof(*a->dirty)))
		return ASSAY_ERR_FATAL;
	u = &s->uctl[s->nuctl];
	u->ctl = c;
	u->saved = *c;
	if (c->ev.nsources) {
		u->saved.ev.sources = malloc(c->ev.nsources * sizeof(*c->ev.sources));
		if (u->saved.ev.sources == NULL)
			return ASSAY_ERR_FATAL;
		memcpy(u->saved.ev.sources, c->ev.sources, c->ev.nsources * sizeof(*c->ev.sources));
		u->saved.ev.cap = c->ev.nsources;
	} else {
		u->saved.ev.sources = NULL;
		u->saved.ev.cap = 0;
	}
	s->nuctl++;
	c->epoch = s->epoch;
	a->dirty[a->ndirty++] = ((uint32_t)std << 16) | (uint32_t)pos;
	return 0;
}

static void outputs_reset(struct risk_state *s)
{
	s->out.nresults = s->out.nchanges = s->out.nscore_rows = s->out.nscore_deletes = 0;
	s->out.nsummary_rows = s->out.ndim_rows = s->out.naudit_rows = s->out.nsoa_rows = 0;
	s->out.ndeltas = 0;
	s->out.recomputed = 0;
}

void risk_state_rollback(struct risk_state *s)
{
	if (!s->in_batch)
		return;
	for (size_t i = s->nuctl; i-- > 0;) {
		free(s->uctl[i].ctl->ev.sources);
		*s->uctl[i].ctl = s->uctl[i].saved; /* takes the saved sources over */
	}
	for (size_t i = s->nuhdr; i-- > 0;) {
		hdr_free(&s->uhdr[i].audit->h);
		s->uhdr[i].audit->h = s->uhdr[i].saved;
	}
	for (size_t i = s->ncreated; i-- > 0;) {
		audit_unlink(s, s->created[i]);
		audit_free(s, s->created[i]);
	}
	s->nuctl = s->nuhdr = s->ncreated = s->ntouched = 0;
	outputs_reset(s);
	s->in_batch = false;
}

void risk_state_commit(struct risk_state *s)
{
	if (!s->in_batch)
		return;
	for (size_t i = 0; i < s->nuctl; i++)
		free(s->uctl[i].saved.ev.sources);
	for (size_t i = 0; i < s->nuhdr; i++)
		hdr_free(&s->uhdr[i].saved);
	s->nuctl = s->nuhdr = s->ncreated = s->ntouched = 0;
	outputs_reset(s);
	s->in_batch = false;
}

void risk_state_begin(struct risk_state *s)
{
	if (s->in_batch)
		risk_state_rollback(s); /* handle() called again without an outcome */
	s->epoch++;
	if (s->epoch == 0)
		s->epoch = 1; /* 0 marks "never saved" */
	s->in_batch = true;
	outputs_reset(s);
}

/* ---- applying events ---- */

static void mark_all_dirty(const struct risk_state *s, struct risk_audit *a)
{
	for (size_t k = 0; k < s->nstd; k++)
		a->all_dirty[k] = true;
}

/* Moves the reference day forward to the day of occurred_at (never back). */
static void advance_day(const struct risk_state *s, struct risk_audit *a, int64_t occurred_at)
{
	int32_t day = risk_day_of_ms(occurred_at);

	if (a->h.ref_day == RISK_DAY_NONE || day > a->h.ref_day) {
		a->h.ref_day = day;
		a->hdr_dirty = true;
		mark_all_dirty(s, a);
	}
}

static int set_str(char **dst, const char *src)
{
	char *c;

	if (src == NULL || strcmp(*dst, src) == 0)
		return 0;
	c = strdup(src);
	if (c == NULL)
		return ASSAY_ERR_FATAL;
	free(*dst);
	*dst = c;
	return 1;
}

/* Before AuditOpened, tenant and client come from the first event that names them. */
static int adopt_ids(struct risk_audit *a, const char *tenant_id, const char *client_id)
{
	int r1 = 0, r2 = 0;

	if (a->h.opened)
		return 0;
	if (a->h.tenant_id[0] == '\0')
		r1 = set_str(&a->h.tenant_id, tenant_id);
	if (a->h.client_id[0] == '\0')
		r2 = set_str(&a->h.client_id, client_id);
	if (r1 < 0 || r2 < 0)
		return ASSAY_ERR_FATAL;
	if (r1 > 0 || r2 > 0)
		a->hdr_dirty = true;
	return 0;
}

static struct risk_audit *begin_event(struct risk_state *s, size_t msg, const char *audit_id,
                                      char *errstr, size_t errstr_size, int *err)
{
	struct risk_audit *a;

	if (audit_id == NULL || audit_id[0] == '\0') {
		*err = assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "event invalid: empty audit_id");
		return NULL;
	}
	a = audit_get(s, audit_id);
	if (a == NULL || audit_touch(s, a, msg)) {
		*err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "risk state: out of memory");
		return NULL;
	}
	*err = 0;
	return a;
}

int risk_state_apply_opened(struct risk_state *s, size_t msg, const struct risk_opened_ev *ev,
                            char *errstr, size_t errstr_size)
{
	struct risk_ai_system *ai = NULL;
	int err, r1, r2;
	struct risk_audit *a = begin_event(s, msg, ev->audit_id, errstr, errstr_size, &err);

	if (a == NULL)
		return err;
	r1 = set_str(&a->h.tenant_id, ev->tenant_id);
	r2 = set_str(&a->h.client_id, ev->client_id);
	if (r1 < 0 || r2 < 0)
		goto nomem;
	if (ev->nai) {
		ai = calloc(ev->nai, sizeof(*ai));
		if (ai == NULL)
			goto nomem;
		for (size_t i = 0; i < ev->nai; i++) {
			ai[i] = ev->ai[i];
			ai[i].id = strdup(ev->ai[i].id ? ev->ai[i].id : "");
			if (ai[i].id == NULL) {
				for (size_t k = 0; k < i; k++)
					free((char *)ai[k].id);
				free(ai);
				goto nomem;
			}
		}
	}
	for (size_t i = 0; i < a->h.nai; i++)
		free((char *)a->h.ai[i].id);
	free(a->h.ai);
	a->h.ai = ai;
	a->h.nai = ev->nai;
	risk_ai_effect_of(&s->p, a->h.ai, a->h.nai, &a->h.effect);
	a->h.opened = true;
	for (size_t k = 0; k < s->nstd; k++) {
		a->h.in_scope[k] = false;
		for (size_t i = 0; i < ev->nstandards; i++)
			if (strcmp(ev->standards[i], s->std[k].symbol) == 0)
				a->h.in_scope[k] = true;
	}
	a->hdr_dirty = true;
	mark_all_dirty(s, a);
	advance_day(s, a, ev->occurred_at);
	return 0;
nomem:
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk state: out of memory");
}

/* Sets the SoA exclusions of a (revision newer than held). */
static int soa_set(struct risk_state *s, struct risk_audit *a, int k, int32_t revision,
                   const char *const *excluded, size_t nexcluded)
{
	uint8_t *ex;

	if (revision <= a->h.soa_revision[k])
		return 0;
	ex = calloc(s->std[k].n, 1);
	if (ex == NULL)
		return ASSAY_ERR_FATAL;
	for (size_t i = 0; i < nexcluded; i++) {
		int pos = risk_state_position(s, k, excluded[i]);

		if (pos >= (int)s->std[k].nclauses) /* only Annex A controls can be excluded */
			ex[pos] = 1;
	}
	free(a->h.excluded[k]);
	a->h.excluded[k] = ex;
	a->h.soa_revision[k] = revision;
	a->soa_dirty[k] = true;
	a->all_dirty[k] = true;
	return 0;
}

int risk_state_apply_soa(struct risk_state *s, size_t msg, const struct risk_soa_ev *ev,
                         char *errstr, size_t errstr_size)
{
	int err, k;
	struct risk_audit *a = begin_event(s, msg, ev->audit_id, errstr, errstr_size, &err);

	if (a == NULL)
		return err;
	if (adopt_ids(a, ev->tenant_id, ev->client_id))
		goto nomem;
	advance_day(s, a, ev->occurred_at);
	k = risk_state_std_index(s, ev->standard);
	if (k < 0)
		return 0; /* a standard without controls (ISO27001_2013) */
	if (soa_set(s, a, k, ev->revision, ev->excluded, ev->nexcluded))
		goto nomem;
	return 0;
nomem:
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk state: out of memory");
}

/* The source entry of src in ev (added when missing). NULL: memory. */
static struct risk_source *source_entry(struct risk_evidence *ev, uint32_t src)
{
	struct risk_source *e;

	for (uint32_t i = 0; i < ev->nsources; i++)
		if (ev->sources[i].source == src)
			return &ev->sources[i];
	if (ev->nsources == ev->cap) {
		uint32_t cap = ev->cap ? ev->cap * 2 : 2;
		struct risk_source *p = realloc(ev->sources, cap * sizeof(*p));

		if (p == NULL)
			return NULL;
		ev->sources = p;
		ev->cap = cap;
	}
	e = &ev->sources[ev->nsources++];
	e->source = src;
	for (int t = 0; t < RISK_NTIERS; t++)
		for (int l = 0; l < RISK_NCOUNTED; l++)
			e->newest[t][l] = RISK_DAY_NONE;
	return e;
}

/* Adds items links of one kind to a control's evidence. */
static int evidence_add(struct risk_ctl *c, uint32_t src, int tier, int link, int32_t day,
                        int32_t items)
{
	struct risk_source *e = source_entry(&c->ev, src);

	if (e == NULL)
		return ASSAY_ERR_FATAL;
	c->ev.links[link] += items;
	if (link < RISK_NCOUNTED && day != RISK_DAY_NONE &&
	    (e->newest[tier][link] == RISK_DAY_NONE || day > e->newest[tier][link]))
		e->newest[tier][link] = day;
	return 0;
}

int risk_state_apply_mapped(struct risk_state *s, size_t msg, const struct risk_mapped_ev *ev,
                            char *errstr, size_t errstr_size)
{
	int err, tier;
	uint32_t src;
	int32_t day;
	struct risk_audit *a = begin_event(s, msg, ev->audit_id, errstr, errstr_size, &err);

	if (a == NULL)
		return err;
	if (adopt_ids(a, ev->tenant_id, ev->client_id))
		goto nomem;
	advance_day(s, a, ev->occurred_at);
	if (source_intern(s, ev->source_system ? ev->source_system : "", &src))
		goto nomem;
	tier = (int)risk_kind_tier(ev->kind);
	day = risk_day_of_ms(ev->collected_at);
	for (size_t i = 0; i < ev->nlinks; i++) {
		const struct risk_link_ev *l = &ev->links[i];
		int k = risk_state_std_index(s, l->standard), pos;
		struct risk_evidence_delta *d;

		if (k < 0 || l->link < 0 || l->link >= RISK_NLINKS ||
		    (pos = risk_state_position(s, k, l->control_id)) < 0)
			continue; /* a control this catalog does not know */
		if (ctl_touch(s, a, k, (size_t)pos) ||
		    evidence_add(&a->ctl[k][pos], src, tier, l->link, day, 1) ||
		    assay_vec_reserve(&s->out.deltas, &s->cap_deltas, s->out.ndeltas + 1,
		                      sizeof(*s->out.deltas)))
			goto nomem;
		d = &s->out.deltas[s->out.ndeltas++];
		d->audit = a;
		d->std = (uint16_t)k;
		d->pos = (uint16_t)pos;
		d->source = src;
		d->tier = (uint8_t)tier;
		d->link = (uint8_t)l->link;
		d->day = day;
	}
	return 0;
nomem:
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk state: out of memory");
}

/* ---- recomputation ---- */

/* Equal as stored in risk_scores. Link counts are not part of the row (they are sums over
 * risk_evidence, see the view risk_control_scores): a new item that changes no score writes
 * no score row, which keeps the steady state to one evidence upsert per link. */
static bool score_equal(const struct risk_score *a, const struct risk_score *b)
{
	return a->likelihood == b->likelihood && a->impact == b->impact &&
	       a->inherent == b->inherent && a->coverage == b->coverage &&
	       a->sources == b->sources && a->residual == b->residual && a->band == b->band &&
	       a->blocking == b->blocking;
}

static bool applicable(const struct risk_state *s, const struct risk_audit *a, int k, size_t pos)
{
	return a->h.opened && a->h.in_scope[k] &&
	       (pos < s->std[k].nclauses || a->h.excluded[k] == NULL || !a->h.excluded[k][pos]);
}

static int add_row(struct risk_state *s, struct risk_row_ref **arr, size_t *n, size_t *cap,
                   struct risk_audit *a, int k, size_t pos)
{
	if (assay_vec_reserve(arr, cap, *n + 1, sizeof(**arr)))
		return ASSAY_ERR_FATAL;
	(*arr)[*n].audit = a;
	(*arr)[*n].std = (uint16_t)k;
	(*arr)[*n].pos = (uint16_t)pos;
	(*n)++;
	(void)s;
	return 0;
}

/* Recomputes one control; records a change, a row to write or a row to delete. */
static int recompute(struct risk_state *s, struct risk_audit *a, int k, size_t pos)
{
	struct risk_ctl *c = &a->ctl[k][pos];
	const struct std_info *si = &s->std[k];
	struct risk_score now;

	if (!applicable(s, a, k, pos)) {
		if (!c->scored)
			return 0;
		if (ctl_touch(s, a, k, pos))
			return ASSAY_ERR_FATAL;
		c->scored = false;
		memset(&c->sc, 0, sizeof(c->sc));
		return add_row(s, &s->out.score_deletes, &s->out.nscore_deletes,
		               &s->cap_score_deletes, a, k, pos);
	}
	risk_score_control(&s->p, si->likelihood[pos], si->impact[pos],
	                   si->ai ? &a->h.effect : NULL, &c->ev, a->h.ref_day, &now);
	s->out.recomputed++;
	if (c->scored && score_equal(&now, &c->sc))
		return 0;
	if (ctl_touch(s, a, k, pos))
		return ASSAY_ERR_FATAL;
	if (!c->scored || now.residual != c->sc.residual || now.band != c->sc.band ||
	    now.blocking != c->sc.blocking) {
		struct risk_change *ch;

		if (assay_vec_reserve(&s->out.changes, &s->cap_changes, s->out.nchanges + 1,
		                      sizeof(*s->out.changes)))
			return ASSAY_ERR_FATAL;
		ch = &s->out.changes[s->out.nchanges++];
		ch->std = (uint16_t)k;
		ch->pos = (uint16_t)pos;
		ch->now = now;
		ch->had_prev = c->scored && !c->sc.blocking;
		ch->prev_residual = ch->had_prev ? c->sc.residual : 0;
		ch->prev_band = ch->had_prev ? c->sc.band : RISK_BAND_NONE;
	}
	c->sc = now;
	c->scored = true;
	return add_row(s, &s->out.score_rows, &s->out.nscore_rows, &s->cap_score_rows, a, k, pos);
}

static void dims_of(const struct risk_state *s, const struct risk_audit *a, int k,
                    struct risk_dim_score *dims)
{
	const struct std_info *si = &s->std[k];

	for (int d = 0; d < RISK_NDIMS; d++) {
		dims[d].controls = 0;
		dims[d].residual = 0;
		dims[d].band = RISK_BAND_NONE;
	}
	for (size_t pos = 0; pos < si->n; pos++) {
		const struct risk_ctl *c = &a->ctl[k][pos];

		if (si->dims[pos] == 0 || !applicable(s, a, k, pos))
			continue;
		for (int d = 0; d < RISK_NDIMS; d++) {
			if (!(si->dims[pos] & (1u << d)))
				continue;
			dims[d].controls++;
			if (c->scored && !c->sc.blocking && c->sc.residual > dims[d].residual)
				dims[d].residual = c->sc.residual;
		}
	}
	for (int d = 0; d < RISK_NDIMS; d++)
		dims[d].band = risk_band_of(&s->p, dims[d].residual);
}

static bool dims_equal(const struct risk_dim_score *a, const struct risk_dim_score *b)
{
	for (int d = 0; d < RISK_NDIMS; d++)
		if (a[d].controls != b[d].controls || a[d].residual != b[d].residual ||
		    a[d].band != b[d].band)
			return false;
	return true;
}

/* Recomputes the dirty controls of standard k of a and, when scoring is active, its summary. */
static int finish_std(struct risk_state *s, struct risk_audit *a, int k)
{
	const struct std_info *si = &s->std[k];
	size_t first_change = s->out.nchanges, n = 0;
	struct risk_summary sum;
	struct risk_dim_score dims[RISK_NDIMS];
	bool dims_changed = false, sum_changed;
	bool any = a->all_dirty[k];

	if (a->all_dirty[k]) {
		for (size_t pos = 0; pos < si->n; pos++)
			if (recompute(s, a, k, pos))
				return ASSAY_ERR_FATAL;
	} else {
		/* ctl_touch appends while we walk: walk the entries present at the start */
		size_t nd = a->ndirty;

		for (size_t i = 0; i < nd; i++) {
			if ((int)(a->dirty[i] >> 16) != k)
				continue;
			any = true;
			if (recompute(s, a, k, a->dirty[i] & 0xffff))
				return ASSAY_ERR_FATAL;
		}
	}
	if (!any || !a->h.opened || !a->h.in_scope[k])
		return 0;
	for (size_t pos = 0; pos < si->n; pos++) {
		const struct risk_ctl *c = &a->ctl[k][pos];
		struct risk_summary_item *it;

		if (!c->scored)
			continue;
		it = &s->items[n++];
		it->control_id = si->ctl[pos]->id;
		it->order = pos;
		it->inherent = c->sc.inherent;
		it->residual = c->sc.residual;
		it->band = c->sc.band;
		it->blocking = c->sc.blocking;
		it->with_evidence =
		        c->ev.links[RISK_LINK_DIRECT] + c->ev.links[RISK_LINK_AUTOMATIC] > 0;
	}
	risk_summarize(&s->p, s->items, n, &sum);
	sum_changed = !a->h.published[k] || !risk_summary_equal(&sum, &a->h.last[k]);
	if (si->ai) {
		dims_of(s, a, k, dims);
		dims_changed = !a->h.dims_published || !dims_equal(dims, a->h.dims);
	}
	if (s->out.nchanges == first_change && !sum_changed && !dims_changed)
		return 0; /* nothing to publish */
	if (assay_vec_reserve(&s->out.results, &s->cap_results, s->out.nresults + 1,
	                      sizeof(*s->out.results)))
		return ASSAY_ERR_FATAL;
	{
		struct risk_result *r = &s->out.results[s->out.nresults++];

		memset(r, 0, sizeof(*r));
		r->audit = a;
		r->std = k;
		r->msg = a->last_msg;
		r->first_change = first_change;
		r->nchanges = s->out.nchanges - first_change;
		r->summary = sum;
		if (si->ai) {
			r->with_dims = true;
			memcpy(r->dims, dims, sizeof(dims));
			r->prev_dims_valid = a->h.dims_published;
			memcpy(r->prev_dims, a->h.dims, sizeof(dims));
		}
	}
	if (sum_changed) {
		a->h.last[k] = sum;
		a->h.published[k] = true;
		if (add_row(s, &s->out.summary_rows, &s->out.nsummary_rows, &s->cap_summary_rows, a,
		            k, 0))
			return ASSAY_ERR_FATAL;
	}
	if (dims_changed) {
		memcpy(a->h.dims, dims, sizeof(dims));
		a->h.dims_published = true;
		if (assay_vec_reserve(&s->out.dim_rows, &s->cap_dim_rows, s->out.ndim_rows + 1,
		                      sizeof(*s->out.dim_rows)))
			return ASSAY_ERR_FATAL;
		s->out.dim_rows[s->out.ndim_rows++] = a;
	}
	return 0;
}

int risk_state_finish(struct risk_state *s, const struct risk_batch_out **out, char *errstr,
                      size_t errstr_size)
{
	for (size_t i = 0; i < s->ntouched; i++) {
		struct risk_audit *a = s->touched[i];

		for (size_t k = 0; k < s->nstd; k++) {
			if (finish_std(s, a, (int)k))
				goto nomem;
			if (a->soa_dirty[k] && add_row(s, &s->out.soa_rows, &s->out.nsoa_rows,
			                               &s->cap_soa_rows, a, (int)k, 0))
				goto nomem;
		}
		if (a->hdr_dirty) {
			if (assay_vec_reserve(&s->out.audit_rows, &s->cap_audit_rows,
			                      s->out.naudit_rows + 1, sizeof(*s->out.audit_rows)))
				goto nomem;
			s->out.audit_rows[s->out.naudit_rows++] = a;
		}
	}
	*out = &s->out;
	return 0;
nomem:
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk state: out of memory");
}

/* ---- loading ---- */

int risk_state_load_audit(struct risk_state *s, const char *audit_id, const char *tenant_id,
                          const char *client_id, bool opened, int32_t ref_day,
                          const char *const *standards, size_t nstandards,
                          const struct risk_ai_system *ai, size_t nai)
{
	struct risk_opened_ev ev = {audit_id,  tenant_id,  client_id, 0,
	                            standards, nstandards, ai,        nai};
	struct risk_audit *a;
	char errstr[128];

	if (s->in_batch)
		return ASSAY_ERR_FATAL;
	if (risk_state_apply_opened(s, 0, &ev, errstr, sizeof(errstr)))
		return ASSAY_ERR_FATAL;
	a = audit_lookup(s, audit_id);
	a->h.opened = opened;
	a->h.ref_day = ref_day;
	return 0;
}

int risk_state_load_soa(struct risk_state *s, const char *audit_id, const char *standard,
                        int32_t revision, const char *const *excluded, size_t nexcluded)
{
	struct risk_audit *a = audit_get(s, audit_id);
	int k = risk_state_std_index(s, standard);

	if (a == NULL)
		return ASSAY_ERR_FATAL;
	return k < 0 ? 0 : soa_set(s, a, k, revision, excluded, nexcluded);
}

static struct risk_ctl *load_ctl(struct risk_state *s, const char *audit_id, const char *standard,
                                 const char *control_id, int *err)
{
	struct risk_audit *a = audit_get(s, audit_id);
	int k = risk_state_std_index(s, standard), pos;

	*err = a == NULL ? ASSAY_ERR_FATAL : 0;
	if (a == NULL || k < 0 || (pos = risk_state_position(s, k, control_id)) < 0)
		return NULL;
	return &a->ctl[k][pos];
}

int risk_state_load_evidence(struct risk_state *s, const char *audit_id, const char *standard,
                             const char *control_id, const char *source, int tier, int link,
                             int32_t newest_day, int32_t items)
{
	int err;
	uint32_t src;
	struct risk_ctl *c = load_ctl(s, audit_id, standard, control_id, &err);

	if (c == NULL || tier < 0 || tier >= RISK_NTIERS || link < 0 || link >= RISK_NLINKS)
		return err;
	if (source_intern(s, source, &src))
		return ASSAY_ERR_FATAL;
	return evidence_add(c, src, tier, link, newest_day, items);
}

int risk_state_load_score(struct risk_state *s, const char *audit_id, const char *standard,
                          const char *control_id, const struct risk_score *sc)
{
	int err;
	struct risk_ctl *c = load_ctl(s, audit_id, standard, control_id, &err);

	if (c == NULL)
		return err;
	c->sc = *sc;
	memcpy(c->sc.links, c->ev.links, sizeof(c->sc.links)); /* load evidence first */
	c->scored = true;
	return 0;
}

int risk_state_load_summary(struct risk_state *s, const char *audit_id, const char *standard,
                            const struct risk_summary *sum)
{
	struct risk_audit *a = audit_get(s, audit_id);
	int k = risk_state_std_index(s, standard);
	struct risk_summary *dst;

	if (a == NULL)
		return ASSAY_ERR_FATAL;
	if (k < 0)
		return 0;
	dst = &a->h.last[k];
	*dst = *sum;
	dst->ntop = 0;
	for (int i = 0; i < sum->ntop && i < RISK_TOP_MAX; i++) {
		int pos = risk_state_position(s, k, sum->top[i].control_id);

		if (pos < 0)
			continue;
		dst->top[dst->ntop] = sum->top[i];
		dst->top[dst->ntop++].control_id = s->std[k].ctl[pos]->id;
	}
	a->h.published[k] = true;
	return 0;
}

int risk_state_load_dim(struct risk_state *s, const char *audit_id, int dim,
                        const struct risk_dim_score *d)
{
	struct risk_audit *a = audit_get(s, audit_id);

	if (a == NULL)
		return ASSAY_ERR_FATAL;
	if (dim < 0 || dim >= RISK_NDIMS)
		return 0;
	a->h.dims[dim] = *d;
	a->h.dims_published = true;
	return 0;
}
