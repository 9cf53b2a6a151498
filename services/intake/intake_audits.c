/*
 * Intake's audit projection: two assay_strmap tables (keyed by each audit's own audit_id) of
 * struct intake_audit, the committed projection and the overlay of the batch in hand. A change
 * copies the committed audit into the overlay first (copy on write), so a rollback only drops
 * the overlay.
 */
#include "intake_audits.h"
#include "assay_vec.h"
#include "assay_err.h"
#include "assay_strmap.h"

#include <stdlib.h>
#include <string.h>

struct intake_audits {
	struct assay_strmap committed;
	struct assay_strmap overlay;
	struct intake_audit **order; /* overlay entries in the order they changed */
	size_t norder, order_cap;
};

/* Puts au under its id; returns the audit it replaced (caller frees) via *old. */
static int amap_put(struct assay_strmap *m, struct intake_audit *au, struct intake_audit **old)
{
	void *prev;

	if (assay_strmap_put(m, au->audit_id, strlen(au->audit_id), au, &prev) != 0)
		return ASSAY_ERR_FATAL;
	*old = prev;
	return 0;
}

static void amap_clear(struct assay_strmap *m, bool free_values)
{
	size_t pos = 0;
	void *au;

	while (free_values && assay_strmap_next(m, &pos, NULL, &au))
		intake_audit_free(au);
	assay_strmap_clear(m);
}

static void soa_free(struct intake_soa *soa)
{
	if (soa == NULL)
		return;
	for (size_t i = 0; i < soa->n; i++)
		free(soa->ids[i]);
	free(soa->ids);
	free(soa->applicable);
	free(soa);
}

static struct intake_soa *soa_dup(const struct intake_soa *src)
{
	struct intake_soa *soa = calloc(1, sizeof(*soa));

	if (soa == NULL)
		return NULL;
	soa->revision = src->revision;
	soa->ids = calloc(src->n ? src->n : 1, sizeof(*soa->ids));
	soa->applicable = calloc(src->n ? src->n : 1, sizeof(*soa->applicable));
	if (soa->ids == NULL || soa->applicable == NULL) {
		soa_free(soa);
		return NULL;
	}
	for (size_t i = 0; i < src->n; i++) {
		soa->ids[i] = strdup(src->ids[i]);
		if (soa->ids[i] == NULL) {
			soa_free(soa);
			return NULL;
		}
		soa->n++;
		soa->applicable[i] = src->applicable[i];
	}
	return soa;
}

void intake_audit_free(struct intake_audit *au)
{
	if (au == NULL)
		return;
	free(au->audit_id);
	free(au->tenant_id);
	free(au->client_id);
	for (size_t i = 0; i < INTAKE_MAX_STANDARDS; i++)
		soa_free(au->soa[i]);
	free(au);
}

struct intake_audit *intake_audit_dup(const struct intake_audit *src)
{
	struct intake_audit *au = calloc(1, sizeof(*au));

	if (au == NULL)
		return NULL;
	memcpy(au->standards, src->standards, sizeof(au->standards));
	memcpy(au->completed, src->completed, sizeof(au->completed));
	au->nstandards = src->nstandards;
	au->closed = src->closed;
	au->audit_id = strdup(src->audit_id);
	au->tenant_id = strdup(src->tenant_id);
	au->client_id = strdup(src->client_id);
	if (au->audit_id == NULL || au->tenant_id == NULL || au->client_id == NULL)
		goto fail;
	for (size_t i = 0; i < INTAKE_MAX_STANDARDS; i++)
		if (src->soa[i] && (au->soa[i] = soa_dup(src->soa[i])) == NULL)
			goto fail;
	return au;
fail:
	intake_audit_free(au);
	return NULL;
}

struct intake_audits *intake_audits_new(void)
{
	return calloc(1, sizeof(struct intake_audits));
}

void intake_audits_destroy(struct intake_audits *a)
{
	if (a == NULL)
		return;
	amap_clear(&a->overlay, true);
	amap_clear(&a->committed, true);
	assay_strmap_release(&a->overlay);
	assay_strmap_release(&a->committed);
	free(a->order);
	free(a);
}

const struct intake_audit *intake_audits_find(const struct intake_audits *a, const char *audit_id,
                                              size_t len)
{
	const struct intake_audit *au = assay_strmap_get(&a->overlay, audit_id, len);

	return au != NULL ? au : assay_strmap_get(&a->committed, audit_id, len);
}

/* Registers au (just put into the overlay) in the change order. */
static int order_add(struct intake_audits *a, struct intake_audit *au)
{
	if (assay_vec_reserve(&a->order, &a->order_cap, a->norder + 1, sizeof(*a->order)))
		return ASSAY_ERR_FATAL;
	a->order[a->norder++] = au;
	return 0;
}

/* Puts au into the overlay, replacing an overlay version (freed) if there is one. */
static int overlay_put(struct intake_audits *a, struct intake_audit *au)
{
	struct intake_audit *old;

	if (amap_put(&a->overlay, au, &old) != 0)
		return ASSAY_ERR_FATAL;
	if (old) {
		for (size_t i = 0; i < a->norder; i++)
			if (a->order[i] == old)
				a->order[i] = au;
		intake_audit_free(old);
		return 0;
	}
	return order_add(a, au);
}

/* The overlay's copy of audit_id for changing, made from the committed one when needed; NULL
 * when the audit is unknown (*err 0) or memory ran out (*err set). */
static struct intake_audit *for_write(struct intake_audits *a, const char *audit_id, int *err)
{
	size_t len = strlen(audit_id);
	struct intake_audit *au = assay_strmap_get(&a->overlay, audit_id, len), *committed;

	*err = 0;
	if (au != NULL)
		return au;
	committed = assay_strmap_get(&a->committed, audit_id, len);
	if (committed == NULL)
		return NULL;
	au = intake_audit_dup(committed);
	if (au == NULL || overlay_put(a, au) != 0) {
		intake_audit_free(au);
		*err = ASSAY_ERR_FATAL;
		return NULL;
	}
	return au;
}

static void update_closed(struct intake_audit *au)
{
	bool all = au->nstandards > 0;

	for (size_t i = 0; i < au->nstandards; i++)
		if (!au->completed[i])
			all = false;
	au->closed = all;
}

int intake_audits_open(struct intake_audits *a, const char *audit_id, const char *tenant_id,
                       const char *client_id, const char *const *standards, size_t n)
{
	const struct intake_audit *prev = intake_audits_find(a, audit_id, strlen(audit_id));
	struct intake_audit *au;

	if (n > INTAKE_MAX_STANDARDS)
		return ASSAY_ERR_REJECT;
	for (size_t i = 0; i < n; i++)
		if (strlen(standards[i]) >= INTAKE_STANDARD_LEN)
			return ASSAY_ERR_REJECT;
	au = calloc(1, sizeof(*au));
	if (au == NULL)
		return ASSAY_ERR_FATAL;
	au->audit_id = strdup(audit_id);
	au->tenant_id = strdup(tenant_id);
	au->client_id = strdup(client_id);
	if (au->audit_id == NULL || au->tenant_id == NULL || au->client_id == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;

		for (size_t k = 0; k < au->nstandards; k++)
			dup = dup || strcmp(au->standards[k], standards[i]) == 0;
		if (dup)
			continue;
		memcpy(au->standards[au->nstandards], standards[i], strlen(standards[i]) + 1);
		au->nstandards++;
	}
	/* a replayed AuditOpened keeps what happened since */
	if (prev && strcmp(prev->tenant_id, tenant_id) == 0 &&
	    strcmp(prev->client_id, client_id) == 0) {
		for (size_t i = 0; i < au->nstandards; i++) {
			int k = intake_audit_standard(prev, au->standards[i]);

			if (k < 0)
				continue;
			au->completed[i] = prev->completed[k];
			if (prev->soa[k] && (au->soa[i] = soa_dup(prev->soa[k])) == NULL)
				goto fail;
		}
	}
	update_closed(au);
	if (overlay_put(a, au) != 0)
		goto fail;
	return 0;
fail:
	intake_audit_free(au);
	return ASSAY_ERR_FATAL;
}

struct soa_row {
	const char *id;
	bool applicable;
};

static int row_cmp(const void *x, const void *y)
{
	return strcmp(((const struct soa_row *)x)->id, ((const struct soa_row *)y)->id);
}

int intake_audits_soa(struct intake_audits *a, const char *audit_id, const char *standard,
                      int32_t revision, const char *const *ids, const bool *applicable, size_t n)
{
	const struct intake_audit *cur = intake_audits_find(a, audit_id, strlen(audit_id));
	struct intake_audit *au;
	struct intake_soa *soa = NULL;
	struct soa_row *rows = NULL;
	int s, err;

	if (cur == NULL || (s = intake_audit_standard(cur, standard)) < 0 ||
	    (cur->soa[s] && cur->soa[s]->revision >= revision))
		return 1;
	rows = calloc(n ? n : 1, sizeof(*rows));
	soa = calloc(1, sizeof(*soa));
	if (rows == NULL || soa == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		rows[i].id = ids[i];
		rows[i].applicable = applicable[i];
	}
	qsort(rows, n, sizeof(*rows), row_cmp);
	soa->revision = revision;
	soa->ids = calloc(n ? n : 1, sizeof(*soa->ids));
	soa->applicable = calloc(n ? n : 1, sizeof(*soa->applicable));
	if (soa->ids == NULL || soa->applicable == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		/* a control listed twice: the last row wins */
		if (soa->n && strcmp(soa->ids[soa->n - 1], rows[i].id) == 0) {
			soa->applicable[soa->n - 1] = rows[i].applicable;
			continue;
		}
		soa->ids[soa->n] = strdup(rows[i].id);
		if (soa->ids[soa->n] == NULL)
			goto fail;
		soa->applicable[soa->n++] = rows[i].applicable;
	}
	au = for_write(a, audit_id, &err);
	if (au == NULL)
		goto fail;
	soa_free(au->soa[s]);
	au->soa[s] = soa;
	free(rows);
	return 0;
fail:
	free(rows);
	soa_free(soa);
	return ASSAY_ERR_FATAL;
}

int intake_audits_complete(struct intake_audits *a, const char *audit_id,
                           const char *const *standards, size_t n)
{
	const struct intake_audit *cur = intake_audits_find(a, audit_id, strlen(audit_id));
	struct intake_audit *au;
	bool news = false;
	int err;

	if (cur == NULL)
		return 1;
	for (size_t i = 0; i < n; i++) {
		int s = intake_audit_standard(cur, standards[i]);

		news = news || (s >= 0 && !cur->completed[s]);
	}
	if (!news)
		return 1;
	au = for_write(a, audit_id, &err);
	if (au == NULL)
		return ASSAY_ERR_FATAL;
	for (size_t i = 0; i < n; i++) {
		int s = intake_audit_standard(au, standards[i]);

		if (s >= 0)
			au->completed[s] = true;
	}
	update_closed(au);
	return 0;
}

size_t intake_audits_changed_count(const struct intake_audits *a)
{
	return a->norder;
}

const struct intake_audit *intake_audits_changed(const struct intake_audits *a, size_t i)
{
	return i < a->norder ? a->order[i] : NULL;
}

void intake_audits_commit(struct intake_audits *a)
{
	for (size_t i = 0; i < a->norder; i++) {
		struct intake_audit *old = NULL;

		if (amap_put(&a->committed, a->order[i], &old) != 0) {
			/* cannot grow: keep the committed version; the database has the new
			 * one and a restart loads it */
			intake_audit_free(a->order[i]);
			continue;
		}
		intake_audit_free(old);
	}
	amap_clear(&a->overlay, false);
	a->norder = 0;
}

void intake_audits_rollback(struct intake_audits *a)
{
	amap_clear(&a->overlay, true);
	a->norder = 0;
}

size_t intake_audits_count(const struct intake_audits *a)
{
	return assay_strmap_count(&a->committed);
}
