/*
 * The shared audit projection: two assay_strmap tables of struct assay_audit keyed by each
 * audit's own audit_id, the committed projection and the overlay of the batch in hand (copy
 * on write per audit: a change copies the committed audit into the overlay first, so a
 * rollback only frees the overlay and a commit moves it over). Audit events are applied from
 * the generated contracts; the overlay is written to assay_audit_projection(_soa) with one
 * pipeline, and the committed state is loaded back from them per consumer group.
 */
#include "assay_audit_projection_int.h"

#include "assay_err.h"
#include "assay_pg.h"
#include "assay_strbuf.h"
#include "assay_strmap.h"
#include "assay_vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one audit ---- */

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static char *dup_s(const char *s)
{
	return dup_n(s, strlen(s));
}

void aap_soa_free(struct assay_audit_soa *soa)
{
	if (soa == NULL)
		return;
	for (size_t i = 0; i < soa->n; i++)
		free(soa->ids[i]);
	free(soa->ids);
	free(soa->applicable);
	free(soa->excluded);
	free(soa);
}

static struct assay_audit_soa *soa_dup(const struct assay_audit_soa *src)
{
	struct assay_audit_soa *soa = calloc(1, sizeof(*soa));
	size_t cap = src->n ? src->n : 1;

	if (soa == NULL)
		return NULL;
	soa->revision = src->revision;
	soa->ids = calloc(cap, sizeof(*soa->ids));
	soa->applicable = calloc(cap, sizeof(*soa->applicable));
	soa->excluded = calloc(src->nexcluded ? src->nexcluded : 1, sizeof(*soa->excluded));
	if (soa->ids == NULL || soa->applicable == NULL || soa->excluded == NULL)
		goto fail;
	for (size_t i = 0; i < src->n; i++) {
		if ((soa->ids[i] = dup_s(src->ids[i])) == NULL)
			goto fail;
		soa->n++;
		soa->applicable[i] = src->applicable[i];
	}
	if (src->nexcluded)
		memcpy(soa->excluded, src->excluded, src->nexcluded * sizeof(*soa->excluded));
	soa->nexcluded = src->nexcluded;
	return soa;
fail:
	aap_soa_free(soa);
	return NULL;
}

void aap_audit_free(struct assay_audit *au)
{
	if (au == NULL)
		return;
	free(au->audit_id);
	free(au->tenant_id);
	free(au->client_id);
	for (size_t i = 0; i < ASSAY_AUDIT_MAX_STANDARDS; i++)
		aap_soa_free(au->soa[i]);
	free(au);
}

struct assay_audit *aap_audit_new(const char *audit_id, const char *tenant_id,
                                  const char *client_id)
{
	struct assay_audit *au = calloc(1, sizeof(*au));

	if (au == NULL)
		return NULL;
	au->audit_id = dup_s(audit_id);
	au->tenant_id = dup_s(tenant_id);
	au->client_id = dup_s(client_id);
	if (au->audit_id == NULL || au->tenant_id == NULL || au->client_id == NULL) {
		aap_audit_free(au);
		return NULL;
	}
	return au;
}

static struct assay_audit *audit_dup(const struct assay_audit *src)
{
	struct assay_audit *au = aap_audit_new(src->audit_id, src->tenant_id, src->client_id);

	if (au == NULL)
		return NULL;
	au->opened = src->opened;
	au->opened_at = src->opened_at;
	au->nstandards = src->nstandards;
	au->closed = src->closed;
	memcpy(au->standards, src->standards, sizeof(au->standards));
	memcpy(au->standard_ref, src->standard_ref, sizeof(au->standard_ref));
	memcpy(au->completed, src->completed, sizeof(au->completed));
	for (size_t i = 0; i < ASSAY_AUDIT_MAX_STANDARDS; i++)
		if (src->soa[i] && (au->soa[i] = soa_dup(src->soa[i])) == NULL) {
			aap_audit_free(au);
			return NULL;
		}
	return au;
}

void aap_update_closed(struct assay_audit *au)
{
	bool all = au->opened && au->nstandards > 0;

	for (size_t i = 0; i < au->nstandards; i++)
		all = all && au->completed[i];
	au->closed = all;
}

int assay_audit_standard(const struct assay_audit *a, const char *standard)
{
	for (size_t i = 0; i < a->nstandards; i++)
		if (strcmp(a->standards[i], standard) == 0)
			return (int)i;
	return -1;
}

bool assay_audit_in_scope(const struct assay_audit *a, const char *standard)
{
	return a->opened && assay_audit_standard(a, standard) >= 0;
}

bool assay_audit_stage_completed(const struct assay_audit *a, const char *standard)
{
	int s = assay_audit_standard(a, standard);

	return s >= 0 && a->completed[s];
}

int assay_audit_soa_lookup(const struct assay_audit_soa *soa, const char *id)
{
	size_t lo = 0, hi = soa->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(soa->ids[mid], id);

		if (c == 0)
			return soa->applicable[mid] ? 1 : 0;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int assay_audit_applicable(const struct assay_audit *a, const char *standard, const char *id)
{
	int s = assay_audit_standard(a, standard);

	if (s < 0 || a->soa[s] == NULL)
		return -2;
	return assay_audit_soa_lookup(a->soa[s], id);
}

/* ---- the maps ---- */

static void map_clear(struct assay_strmap *m, bool free_values)
{
	size_t pos = 0;
	void *au;

	while (free_values && assay_strmap_next(m, &pos, NULL, &au))
		aap_audit_free(au);
	assay_strmap_clear(m);
}

struct assay_audits *assay_audits_new(const struct assay_audits_hooks *hooks)
{
	struct assay_audits *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	if (hooks != NULL)
		p->hooks = *hooks;
	assay_strmap_init(&p->committed);
	assay_strmap_init(&p->overlay);
	assay_pipeline_init(&p->pipe);
	return p;
}

void assay_audits_destroy(struct assay_audits *p)
{
	if (p == NULL)
		return;
	map_clear(&p->overlay, true);
	map_clear(&p->committed, true);
	assay_strmap_release(&p->overlay);
	assay_strmap_release(&p->committed);
	assay_pipeline_release(&p->pipe);
	free(p->order);
	free(p);
}

const struct assay_audit *assay_audits_get(const struct assay_audits *p, const char *audit_id,
                                           size_t len)
{
	const struct assay_audit *au = NULL;

	if (p->norder > 0)
		au = assay_strmap_get(&p->overlay, audit_id, len);
	return au != NULL ? au : assay_strmap_get(&p->committed, audit_id, len);
}

const struct assay_audit *assay_audits_find(const struct assay_audits *p, const char *audit_id,
                                            size_t len)
{
	const struct assay_audit *au = assay_audits_get(p, audit_id, len);

	return au != NULL && au->opened ? au : NULL;
}

size_t assay_audits_count(const struct assay_audits *p)
{
	return assay_strmap_count(&p->committed);
}

size_t assay_audits_changed_count(const struct assay_audits *p)
{
	return p->norder;
}

const struct assay_audit *assay_audits_changed(const struct assay_audits *p, size_t i)
{
	return i < p->norder ? p->order[i] : NULL;
}

/* Puts au into the overlay (owned from now on), replacing (and freeing) an overlay version. */
static int overlay_put(struct assay_audits *p, struct assay_audit *au)
{
	void *old = NULL;

	if (assay_vec_reserve(&p->order, &p->order_cap, p->norder + 1, sizeof(*p->order)) ||
	    assay_strmap_put(&p->overlay, au->audit_id, strlen(au->audit_id), au, &old) != 0) {
		aap_audit_free(au);
		return ASSAY_ERR_FATAL;
	}
	if (old == NULL) {
		p->order[p->norder++] = au;
		return 0;
	}
	for (size_t i = 0; i < p->norder; i++)
		if (p->order[i] == old)
			p->order[i] = au;
	aap_audit_free(old);
	return 0;
}

/* The overlay's copy of audit_id for changing, made from the committed one when needed; NULL
 * when the audit is unknown (*err 0) or memory ran out (*err set). */
static struct assay_audit *for_write(struct assay_audits *p, const char *audit_id, int *err)
{
	size_t len = strlen(audit_id);
	struct assay_audit *au = assay_strmap_get(&p->overlay, audit_id, len);
	const struct assay_audit *committed;

	*err = 0;
	if (au != NULL)
		return au;
	committed = assay_strmap_get(&p->committed, audit_id, len);
	if (committed == NULL)
		return NULL;
	au = audit_dup(committed);
	if (au == NULL || overlay_put(p, au) != 0) {
		*err = ASSAY_ERR_FATAL;
		return NULL;
	}
	return au;
}

void assay_audits_begin(struct assay_audits *p)
{
	assay_audits_rollback(p);
}

void assay_audits_commit(struct assay_audits *p)
{
	for (size_t i = 0; i < p->norder; i++) {
		struct assay_audit *au = p->order[i];
		void *old = NULL;

		if (assay_strmap_put(&p->committed, au->audit_id, strlen(au->audit_id), au, &old) !=
		    0) {
			/* cannot grow: the database has the change; the next load brings it */
			aap_audit_free(au);
			continue;
		}
		aap_audit_free(old);
	}
	map_clear(&p->overlay, false);
	p->norder = 0;
}

void assay_audits_rollback(struct assay_audits *p)
{
	map_clear(&p->overlay, true);
	p->norder = 0;
}

/* ---- applying ---- */

int aap_check_standards(const char *const *standards, size_t n,
                        char (*out)[ASSAY_AUDIT_STANDARD_LEN], size_t *nout)
{
	*nout = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;

		if (strlen(standards[i]) >= ASSAY_AUDIT_STANDARD_LEN)
			return ASSAY_ERR_REJECT;
		for (size_t k = 0; k < *nout; k++)
			dup = dup || strcmp(out[k], standards[i]) == 0;
		if (dup)
			continue;
		if (*nout == ASSAY_AUDIT_MAX_STANDARDS)
			return ASSAY_ERR_REJECT;
		memcpy(out[*nout], standards[i], strlen(standards[i]) + 1);
		(*nout)++;
	}
	return 0;
}

const void *aap_standard_ref(const struct assay_audits *p, const char *symbol)
{
	return p->hooks.standard ? p->hooks.standard(p->hooks.ctx, symbol) : NULL;
}

int assay_audits_open(struct assay_audits *p, const char *audit_id, const char *tenant_id,
                      const char *client_id, int64_t opened_at, const char *const *standards,
                      size_t n)
{
	const struct assay_audit *prev;
	struct assay_audit *au;
	bool keep;

	if (audit_id[0] == '\0')
		return ASSAY_ERR_REJECT;
	au = aap_audit_new(audit_id, tenant_id, client_id);
	if (au == NULL)
		return ASSAY_ERR_FATAL;
	if (aap_check_standards(standards, n, au->standards, &au->nstandards) != 0) {
		aap_audit_free(au);
		return ASSAY_ERR_REJECT;
	}
	au->opened = true;
	au->opened_at = opened_at;
	prev = assay_audits_get(p, audit_id, strlen(audit_id));
	/* a replayed AuditOpened (or one after early SoAs) keeps what happened since */
	keep = prev && (!prev->opened || (strcmp(prev->tenant_id, tenant_id) == 0 &&
	                                  strcmp(prev->client_id, client_id) == 0));
	for (size_t i = 0; i < au->nstandards; i++) {
		int k = keep ? assay_audit_standard(prev, au->standards[i]) : -1;

		au->standard_ref[i] = aap_standard_ref(p, au->standards[i]);
		if (k < 0)
			continue;
		au->completed[i] = prev->completed[k];
		if (prev->soa[k] && (au->soa[i] = soa_dup(prev->soa[k])) == NULL) {
			aap_audit_free(au);
			return ASSAY_ERR_FATAL;
		}
	}
	aap_update_closed(au);
	return overlay_put(p, au);
}

struct soa_row {
	const char *id;
	bool applicable;
	size_t order;
};

static int row_cmp(const void *x, const void *y)
{
	const struct soa_row *a = x, *b = y;
	int c = strcmp(a->id, b->id);

	return c != 0 ? c : (a->order > b->order) - (a->order < b->order);
}

/* A SoA of n rows (sorted, a control listed twice: the last row wins), NULL on no memory. */
struct assay_audit_soa *aap_soa_build(const struct assay_audits *p, const void *std_ref,
                                      int32_t revision, const char *const *ids,
                                      const bool *applicable, size_t n)
{
	struct assay_audit_soa *soa = calloc(1, sizeof(*soa));
	struct soa_row *rows = calloc(n ? n : 1, sizeof(*rows));
	size_t cap = n ? n : 1;

	if (soa == NULL || rows == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++)
		rows[i] = (struct soa_row){ids[i], applicable[i], i};
	qsort(rows, n, sizeof(*rows), row_cmp);
	soa->revision = revision;
	soa->ids = calloc(cap, sizeof(*soa->ids));
	soa->applicable = calloc(cap, sizeof(*soa->applicable));
	soa->excluded = calloc(cap, sizeof(*soa->excluded));
	if (soa->ids == NULL || soa->applicable == NULL || soa->excluded == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (soa->n && strcmp(soa->ids[soa->n - 1], rows[i].id) == 0) {
			soa->applicable[soa->n - 1] = rows[i].applicable;
			continue;
		}
		if ((soa->ids[soa->n] = dup_s(rows[i].id)) == NULL)
			goto fail;
		soa->applicable[soa->n++] = rows[i].applicable;
	}
	for (size_t i = 0; p->hooks.control != NULL && i < soa->n; i++) {
		const void *ref;

		if (soa->applicable[i] ||
		    (ref = p->hooks.control(p->hooks.ctx, std_ref, soa->ids[i])) == NULL)
			continue;
		soa->excluded[soa->nexcluded++] = ref;
	}
	free(rows);
	return soa;
fail:
	free(rows);
	aap_soa_free(soa);
	return NULL;
}

int assay_audits_soa(struct assay_audits *p, const char *audit_id, const char *tenant_id,
                     const char *client_id, const char *standard, int32_t revision,
                     const char *const *ids, const bool *applicable, size_t n)
{
	const struct assay_audit *cur;
	struct assay_audit *au;
	struct assay_audit_soa *soa;
	int s, err;

	if (audit_id[0] == '\0' || strlen(standard) >= ASSAY_AUDIT_STANDARD_LEN)
		return ASSAY_ERR_REJECT;
	cur = assay_audits_get(p, audit_id, strlen(audit_id));
	s = cur ? assay_audit_standard(cur, standard) : -1;
	if (cur && cur->opened && s < 0)
		return 1; /* not in scope */
	if (cur && s >= 0 && cur->soa[s] && cur->soa[s]->revision >= revision)
		return 1;
	if (cur && s < 0 && cur->nstandards == ASSAY_AUDIT_MAX_STANDARDS)
		return 1; /* early SoAs of more standards than an audit can have */
	au = for_write(p, audit_id, &err);
	if (au == NULL && err)
		return err;
	if (au == NULL) { /* the SoA came first: keep it for the AuditOpened */
		au = aap_audit_new(audit_id, tenant_id, client_id);
		if (au == NULL || overlay_put(p, au) != 0)
			return ASSAY_ERR_FATAL;
	}
	if (s < 0) {
		s = (int)au->nstandards++;
		memcpy(au->standards[s], standard, strlen(standard) + 1);
		au->standard_ref[s] = aap_standard_ref(p, standard);
	}
	soa = aap_soa_build(p, au->standard_ref[s], revision, ids, applicable, n);
	if (soa == NULL)
		return ASSAY_ERR_FATAL;
	aap_soa_free(au->soa[s]);
	au->soa[s] = soa;
	return 0;
}

int assay_audits_complete(struct assay_audits *p, const char *audit_id,
                          const char *const *standards, size_t n)
{
	const struct assay_audit *cur = assay_audits_get(p, audit_id, strlen(audit_id));
	struct assay_audit *au;
	bool news = false;
	int err;

	if (cur == NULL || !cur->opened)
		return 1;
	for (size_t i = 0; i < n; i++) {
		int s = assay_audit_standard(cur, standards[i]);

		news = news || (s >= 0 && !cur->completed[s]);
	}
	if (!news)
		return 1;
	au = for_write(p, audit_id, &err);
	if (au == NULL)
		return ASSAY_ERR_FATAL;
	for (size_t i = 0; i < n; i++) {
		int s = assay_audit_standard(au, standards[i]);

		if (s >= 0)
			au->completed[s] = true;
	}
	aap_update_closed(au);
	return 0;
}

/* ---- from the contracts ---- */

/* NUL-terminated copies of views, in one scratch block. */
struct cstrs {
	char stack[512];
	char *heap;
	size_t used, cap;
};

static const char *cstr(struct cstrs *c, struct assay_str v)
{
	char *base = c->heap ? c->heap : c->stack;

	if (c->used + v.len + 1 > c->cap)
		return NULL;
	memcpy(base + c->used, v.s, v.len);
	base[c->used + v.len] = '\0';
	c->used += v.len + 1;
	return base + c->used - v.len - 1;
}

static int cstrs_init(struct cstrs *c, size_t need)
{
	c->used = 0;
	c->heap = NULL;
	c->cap = sizeof(c->stack);
	if (need > c->cap) {
		c->heap = malloc(need);
		c->cap = need;
	}
	return need > sizeof(c->stack) && c->heap == NULL ? ASSAY_ERR_FATAL : 0;
}

int assay_audits_apply_opened(struct assay_audits *p, const struct assay_audit_opened *ev)
{
	const char *stds[ASSAY_AUDIT_MAX_STANDARDS + 1];
	size_t n = 0;
	struct cstrs c;
	const char *id, *tenant, *client;
	int rc;

	for (size_t i = 0; i < ev->standards.count; i++) {
		const char *sym = assay_standard_name(ev->standards.items[i].standard);
		bool dup = false;

		if (sym == NULL)
			return ASSAY_ERR_REJECT;
		for (size_t k = 0; k < n; k++)
			dup = dup || strcmp(stds[k], sym) == 0;
		if (dup)
			continue;
		if (n == ASSAY_AUDIT_MAX_STANDARDS)
			return ASSAY_ERR_REJECT;
		stds[n++] = sym;
	}
	if (cstrs_init(&c, ev->audit_id.len + ev->tenant_id.len + ev->client_id.len + 3))
		return ASSAY_ERR_FATAL;
	id = cstr(&c, ev->audit_id);
	tenant = cstr(&c, ev->tenant_id);
	client = cstr(&c, ev->client_id);
	rc = assay_audits_open(p, id, tenant, client, ev->occurred_at, stds, n);
	free(c.heap);
	return rc;
}

int assay_audits_apply_soa(struct assay_audits *p, const struct assay_soa_submitted *ev)
{
	const char *sym = assay_standard_name(ev->standard), *id, *tenant, *client;
	size_t n = ev->rows.count,
	       need = ev->audit_id.len + ev->tenant_id.len + ev->client_id.len + 3;
	const char **ids;
	bool *app;
	struct cstrs c;
	int rc = ASSAY_ERR_FATAL;

	if (sym == NULL)
		return ASSAY_ERR_REJECT;
	for (size_t i = 0; i < n; i++)
		need += ev->rows.items[i].control_id.len + 1;
	ids = calloc(n ? n : 1, sizeof(*ids));
	app = calloc(n ? n : 1, sizeof(*app));
	if (ids == NULL || app == NULL || cstrs_init(&c, need) != 0)
		goto out;
	id = cstr(&c, ev->audit_id);
	tenant = cstr(&c, ev->tenant_id);
	client = cstr(&c, ev->client_id);
	for (size_t i = 0; i < n; i++) {
		ids[i] = cstr(&c, ev->rows.items[i].control_id);
		app[i] = ev->rows.items[i].applicable;
	}
	rc = assay_audits_soa(p, id, tenant, client, sym, ev->revision, ids, app, n);
	free(c.heap);
out:
	free(ids);
	free(app);
	return rc;
}

int assay_audits_apply_stage(struct assay_audits *p, const struct assay_stage_completed *ev)
{
	const char *stds[ASSAY_STANDARD_NSYMBOLS];
	size_t n = 0;
	struct cstrs c;
	int rc;

	for (size_t i = 0; i < ev->standards.count && n < ASSAY_STANDARD_NSYMBOLS; i++) {
		const char *sym = assay_standard_name(ev->standards.items[i]);

		if (sym == NULL)
			return ASSAY_ERR_REJECT;
		stds[n++] = sym;
	}
	if (cstrs_init(&c, ev->audit_id.len + 1))
		return ASSAY_ERR_FATAL;
	rc = assay_audits_complete(p, cstr(&c, ev->audit_id), stds, n);
	free(c.heap);
	return rc;
}

enum assay_audit_event assay_audits_event_kind(const char *full_name)
{
	if (strcmp(full_name, "org.assay.v1.AuditOpened") == 0)
		return ASSAY_AUDIT_EV_OPENED;
	if (strcmp(full_name, "org.assay.v1.SoaSubmitted") == 0)
		return ASSAY_AUDIT_EV_SOA;
	if (strcmp(full_name, "org.assay.v1.StageCompleted") == 0)
		return ASSAY_AUDIT_EV_STAGE;
	return ASSAY_AUDIT_EV_OTHER;
}

int assay_audits_apply_frame(struct assay_audits *p, struct assay_contracts *cx,
                             struct assay_arena *arena, const void *frame, size_t len,
                             enum assay_audit_event *kind, char *errstr, size_t errstr_size)
{
	union {
		struct assay_audit_opened opened;
		struct assay_soa_submitted soa;
		struct assay_stage_completed stage;
	} ev;
	const char *name;
	enum assay_audit_event k;
	int rc;

	if (kind != NULL)
		*kind = ASSAY_AUDIT_EV_OTHER;
	if (errstr != NULL && errstr_size > 0)
		errstr[0] = '\0';
	rc = assay_contract_frame_type(cx, frame, len, &name, errstr, errstr_size);
	if (rc != 0)
		return rc;
	k = assay_audits_event_kind(name);
	if (kind != NULL)
		*kind = k;
	switch (k) {
	case ASSAY_AUDIT_EV_OPENED:
		rc = assay_audit_opened_decode(cx, frame, len, arena, &ev.opened, errstr,
		                               errstr_size);
		if (rc == 0)
			rc = assay_audits_apply_opened(p, &ev.opened);
		break;
	case ASSAY_AUDIT_EV_SOA:
		rc = assay_soa_submitted_decode(cx, frame, len, arena, &ev.soa, errstr,
		                                errstr_size);
		if (rc == 0)
			rc = assay_audits_apply_soa(p, &ev.soa);
		break;
	case ASSAY_AUDIT_EV_STAGE:
		rc = assay_stage_completed_decode(cx, frame, len, arena, &ev.stage, errstr,
		                                  errstr_size);
		if (rc == 0)
			rc = assay_audits_apply_stage(p, &ev.stage);
		break;
	default:
		return 1;
	}
	if (rc == ASSAY_ERR_REJECT && errstr != NULL && errstr_size > 0 && errstr[0] == '\0')
		snprintf(errstr, errstr_size,
		         "%s: empty audit id or more than %d standards in scope", name,
		         ASSAY_AUDIT_MAX_STANDARDS);
	else if (rc == ASSAY_ERR_FATAL && errstr != NULL && errstr_size > 0 && errstr[0] == '\0')
		snprintf(errstr, errstr_size, "%s: out of memory", name);
	return rc;
}
