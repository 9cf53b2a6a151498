/*
 * assay-mapper's handler. handle() reads the audit events of a batch first (they change the
 * projection: scope and SoA exclusions), then the accepted evidence, and for each evidence
 * item decides its links (assay_crosswalk_map), emits ControlMapped and keeps the rows for
 * write(). Every change to the projection is staged (copies of the audits touched, pending
 * evidence added or consumed) and applied to memory in committed(); handle() starts from the
 * committed state each time, so a rollback or a retry never applies anything twice.
 */
#include "mapper.h"

#include "assay_codec.h"
#include "assay_embed.h"
#include "assay_loop.h"
#include "assay_migrate.h"
#include "assay_pg.h"
#include "assay_strbuf.h"
#include "assay_strmap.h"
#include "assay_vec.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define EVIDENCE_ACCEPTED "org.assay.v1.EvidenceAccepted"
#define AUDIT_OPENED      "org.assay.v1.AuditOpened"
#define SOA_SUBMITTED     "org.assay.v1.SoaSubmitted"
#define CONTROL_MAPPED    "org.assay.v1.ControlMapped"

const struct assay_setting mapper_settings[] = {
        {"topic.evidence.accepted", "ASSAY_TOPIC_EVIDENCE_ACCEPTED", ASSAY_SETTING_STRING,
         "assay.evidence.accepted", 0, 0, offsetof(struct mapper_config, consumes[0]),
         "topic of accepted evidence (EvidenceAccepted) to map"},
        {"topic.audit.events", "ASSAY_TOPIC_AUDIT_EVENTS", ASSAY_SETTING_STRING,
         "assay.audit.events", 0, 0, offsetof(struct mapper_config, consumes[1]),
         "topic of audit events: AuditOpened gives the scope, SoaSubmitted the exclusions"},
        {"topic.control.mapped", "ASSAY_TOPIC_CONTROL_MAPPED", ASSAY_SETTING_STRING,
         "assay.control.mapped", 0, 0, offsetof(struct mapper_config, produces[0]),
         "topic the links are published to (ControlMapped)"},
        {NULL, NULL, 0, NULL, 0, 0, 0, "assay-mapper settings"},
};

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- the projection of one audit ---- */

int assay_mapper_audit_init(struct assay_mapper_audit *a, const char *audit_id)
{
	memset(a, 0, sizeof(*a));
	a->audit_id = dup_str(audit_id);
	a->tenant_id = dup_str("");
	a->client_id = dup_str("");
	if (a->audit_id == NULL || a->tenant_id == NULL || a->client_id == NULL) {
		assay_mapper_audit_release(a);
		return ASSAY_ERR_FATAL;
	}
	return 0;
}

void assay_mapper_audit_release(struct assay_mapper_audit *a)
{
	if (a == NULL)
		return;
	free(a->audit_id);
	free(a->tenant_id);
	free(a->client_id);
	for (size_t i = 0; i < a->nsoa; i++)
		free(a->soa[i].excluded);
	memset(a, 0, sizeof(*a));
}

int assay_mapper_audit_copy(struct assay_mapper_audit *dst, const struct assay_mapper_audit *src)
{
	*dst = *src;
	dst->audit_id = dup_str(src->audit_id);
	dst->tenant_id = dup_str(src->tenant_id);
	dst->client_id = dup_str(src->client_id);
	for (size_t i = 0; i < src->nsoa; i++) {
		dst->soa[i].excluded = NULL;
		if (src->soa[i].nexcluded > 0) {
			dst->soa[i].excluded = malloc(src->soa[i].nexcluded * sizeof(void *));
			if (dst->soa[i].excluded != NULL)
				memcpy(dst->soa[i].excluded, src->soa[i].excluded,
				       src->soa[i].nexcluded * sizeof(void *));
		}
	}
	bool ok = dst->audit_id && dst->tenant_id && dst->client_id;
	for (size_t i = 0; i < src->nsoa; i++)
		ok = ok && (src->soa[i].nexcluded == 0 || dst->soa[i].excluded != NULL);
	if (!ok) {
		assay_mapper_audit_release(dst);
		return ASSAY_ERR_FATAL;
	}
	return 0;
}

static int replace_str(char **dst, const char *s)
{
	char *d = dup_str(s);

	if (d == NULL)
		return ASSAY_ERR_FATAL;
	free(*dst);
	*dst = d;
	return 0;
}

int assay_mapper_audit_apply_opened(struct assay_mapper_audit *a, const struct assay_catalog *cat,
                                    avro_value_t *v, char *errstr, size_t errstr_size)
{
	const char *tenant, *client, *audit;
	avro_value_t arr, elem;
	size_t n, len;
	int64_t at;

	if (assay_value_string(v, "tenant_id", &tenant, &len) ||
	    assay_value_string(v, "audit_id", &audit, &len) ||
	    assay_value_string(v, "client_id", &client, &len) ||
	    assay_value_long(v, "occurred_at", &at) || assay_value_array(v, "standards", &arr, &n))
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "audit opened: missing tenant_id, audit_id, client_id, "
		                  "occurred_at or standards");
	if (strcmp(audit, a->audit_id) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "audit opened: applied to audit %s, not %s", a->audit_id, audit);
	a->nscope = 0;
	for (size_t i = 0; i < n; i++) {
		const char *sym, *known;

		if (assay_value_array_get(&arr, i, &elem) ||
		    assay_value_enum(&elem, "standard", &sym))
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "audit opened: standards[%zu] has no standard", i);
		known = assay_catalog_standard(cat, sym);
		/* an edition without controls (27001:2013) can be linked to nothing */
		if (known == NULL || (assay_catalog_count(cat, known, false) == 0 &&
		                      assay_catalog_count(cat, known, true) == 0))
			continue;
		bool dup = false;
		for (size_t k = 0; k < a->nscope; k++)
			dup = dup || a->scope[k] == known;
		if (!dup && a->nscope < ASSAY_MAPPER_MAX_STANDARDS)
			a->scope[a->nscope++] = known;
	}
	if (replace_str(&a->tenant_id, tenant) || replace_str(&a->client_id, client))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "audit opened: out of memory");
	a->opened = true;
	a->opened_at = at;
	return 0;
}

int assay_mapper_audit_apply_soa(struct assay_mapper_audit *a, const struct assay_catalog *cat,
                                 avro_value_t *v, bool *changed, char *errstr, size_t errstr_size)
{
	const struct assay_control **excl = NULL;
	struct assay_mapper_soa *soa = NULL;
	const char *sym, *known;
	avro_value_t rows, row;
	int32_t revision;
	size_t n, nexcl = 0;

	*changed = false;
	if (assay_value_enum(v, "standard", &sym) || assay_value_int(v, "revision", &revision) ||
	    assay_value_array(v, "rows", &rows, &n))
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "soa submitted: missing standard, revision or rows");
	known = assay_catalog_standard(cat, sym);
	if (known == NULL)
		return 0; /* a standard this catalog does not have: nothing to exclude */
	for (size_t i = 0; i < a->nsoa; i++)
		if (a->soa[i].standard == known)
			soa = &a->soa[i];
	if (soa != NULL && revision <= soa->revision)
		return 0;
	if (soa == NULL && a->nsoa >= ASSAY_MAPPER_MAX_STANDARDS)
		return 0;
	if (n > 0) {
		excl = calloc(n, sizeof(*excl));
		if (excl == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "soa submitted: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const struct assay_control *ctl;
		const char *id;
		size_t len;
		bool applicable;

		if (assay_value_array_get(&rows, i, &row) ||
		    assay_value_string(&row, "control_id", &id, &len) ||
		    assay_value_bool(&row, "applicable", &applicable)) {
			free(excl);
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "soa submitted: rows[%zu] lacks control_id or applicable",
			                  i);
		}
		ctl = assay_catalog_find(cat, known, id);
		if (!applicable && ctl != NULL && ctl->annex_a)
			excl[nexcl++] = ctl;
	}
	if (soa == NULL) {
		soa = &a->soa[a->nsoa++];
		soa->standard = known;
	} else {
		free(soa->excluded);
	}
	soa->revision = revision;
	soa->excluded = excl;
	soa->nexcluded = nexcl;
	*changed = true;
	return 0;
}

void assay_mapper_audit_scope(const struct assay_mapper_audit *a, struct assay_map_scope *scope,
                              const struct assay_control **excluded_buf, size_t nbuf)
{
	size_t n = 0;

	for (size_t i = 0; i < a->nsoa; i++)
		for (size_t k = 0; k < a->soa[i].nexcluded && n < nbuf; k++)
			excluded_buf[n++] = a->soa[i].excluded[k];
	scope->standards = a->scope;
	scope->nstandards = a->nscope;
	scope->excluded = excluded_buf;
	scope->nexcluded = n;
}

/* ---- evidence ---- */

int mapper_evidence_read(avro_value_t *v, const struct assay_catalog *cat,
                         struct mapper_evidence *ev, char *errstr, size_t errstr_size)
{
	avro_value_t arr, elem;
	size_t n, len;

	memset(ev, 0, sizeof(*ev));
	if (assay_value_string(v, "event_id", &ev->accepted_event_id, &len) ||
	    assay_value_string(v, "tenant_id", &ev->tenant_id, &len) ||
	    assay_value_string(v, "audit_id", &ev->audit_id, &len) ||
	    assay_value_string(v, "client_id", &ev->client_id, &len) ||
	    assay_value_string(v, "evidence_id", &ev->evidence_id, &len) ||
	    assay_value_string(v, "source_system", &ev->source_system, &len) ||
	    assay_value_long(v, "collected_at", &ev->collected_at) ||
	    assay_value_array(v, "claimed_controls", &arr, &n))
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "evidence accepted: a required field is missing");
	if (assay_value_enum_or(v, "kind", "OTHER", &ev->kind))
		ev->kind = "OTHER";
	if (n > MAPPER_MAX_CLAIMS)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "evidence accepted: %zu claimed controls, at most %d", n,
		                  MAPPER_MAX_CLAIMS);
	for (size_t i = 0; i < n; i++) {
		const struct assay_control *ctl;
		const char *sym, *id;
		bool dup = false;

		if (assay_value_array_get(&arr, i, &elem) ||
		    assay_value_enum(&elem, "standard", &sym) ||
		    assay_value_string(&elem, "control_id", &id, &len))
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "evidence accepted: claimed_controls[%zu] is incomplete",
			                  i);
		ctl = assay_catalog_find(cat, sym, id);
		for (size_t k = 0; ctl != NULL && k < ev->nclaimed; k++)
			dup = dup || ev->claimed[k] == ctl;
		if (ctl == NULL || dup)
			ev->nignored++;
		else
			ev->claimed[ev->nclaimed++] = ctl;
	}
	return 0;
}

int mapper_links(const struct assay_crosswalk *cw, const struct assay_mapper_audit *a,
                 const struct mapper_evidence *ev, struct assay_link *out, size_t out_cap,
                 size_t *nout)
{
	const struct assay_control *excluded[256];
	struct assay_map_scope scope;

	assay_mapper_audit_scope(a, &scope, excluded, sizeof(excluded) / sizeof(excluded[0]));
	return assay_crosswalk_map(cw, ev->claimed, ev->nclaimed, &scope, out, out_cap, nout);
}

/* ---- audit table: open addressing on audit_id ---- */

/* Audits by audit_id (keys are the audits' own audit_id), owned by the map. */
struct audit_map {
	struct assay_strmap by_id;
};

static struct assay_mapper_audit *map_get(const struct audit_map *m, const char *id)
{
	return assay_strmap_get(&m->by_id, id, strlen(id));
}

/* Puts a (owned by the map from now on), replacing and freeing one with the same id. */
static int map_put(struct audit_map *m, struct assay_mapper_audit *a)
{
	void *old;

	if (assay_strmap_put(&m->by_id, a->audit_id, strlen(a->audit_id), a, &old) != 0)
		return ASSAY_ERR_FATAL;
	if (old != NULL && old != a) {
		assay_mapper_audit_release(old);
		free(old);
	}
	return 0;
}

static void map_clear(struct audit_map *m)
{
	size_t pos = 0;
	void *a;

	while (assay_strmap_next(&m->by_id, &pos, NULL, &a)) {
		assay_mapper_audit_release(a);
		free(a);
	}
	assay_strmap_clear(&m->by_id);
}

static void map_release(struct audit_map *m)
{
	map_clear(m);
	assay_strmap_release(&m->by_id);
}

/* ---- pending evidence ---- */

/* an accepted evidence item waiting for its audit: an owned copy of the evidence plus the
 * framed value (what assay_mapper_pending stores) */
struct pending {
	struct mapper_evidence ev; /* strings point into blob */
	char *blob;
	void *value;
	size_t value_len;
	bool consumed; /* staged: mapped by an AuditOpened of the current batch */
};

static void pending_free(struct pending *p)
{
	if (p == NULL)
		return;
	free(p->blob);
	free(p->value);
	free(p);
}

static struct pending *pending_new(const struct mapper_evidence *ev, const void *value,
                                   size_t value_len)
{
	const char *src[7] = {ev->accepted_event_id, ev->tenant_id,     ev->audit_id, ev->client_id,
	                      ev->evidence_id,       ev->source_system, ev->kind};
	const char **dst[7];
	struct pending *p = calloc(1, sizeof(*p));
	size_t total = 0, off = 0;

	if (p == NULL)
		return NULL;
	p->ev = *ev;
	dst[0] = &p->ev.accepted_event_id;
	dst[1] = &p->ev.tenant_id;
	dst[2] = &p->ev.audit_id;
	dst[3] = &p->ev.client_id;
	dst[4] = &p->ev.evidence_id;
	dst[5] = &p->ev.source_system;
	dst[6] = &p->ev.kind;
	for (int i = 0; i < 7; i++)
		total += strlen(src[i]) + 1;
	p->blob = malloc(total);
	p->value = malloc(value_len > 0 ? value_len : 1);
	if (p->blob == NULL || p->value == NULL) {
		pending_free(p);
		return NULL;
	}
	for (int i = 0; i < 7; i++) {
		size_t n = strlen(src[i]) + 1;

		memcpy(p->blob + off, src[i], n);
		*dst[i] = p->blob + off;
		off += n;
	}
	if (value_len > 0)
		memcpy(p->value, value, value_len);
	p->value_len = value_len;
	return p;
}

struct pending_list {
	struct pending **items;
	size_t count, cap;
};

static int pending_push(struct pending_list *l, struct pending *p)
{
	if (assay_vec_reserve(&l->items, &l->cap, l->count + 1, sizeof(*l->items)))
		return ASSAY_ERR_FATAL;
	l->items[l->count++] = p;
	return 0;
}

static void pending_list_clear(struct pending_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		pending_free(l->items[i]);
	l->count = 0;
}

/* ---- pipeline statements of a batch (audit events: rare) ---- */

#define STMT_MAX_PARAMS 6

struct stmt {
	const char *sql;
	int nparams;
	char *params[STMT_MAX_PARAMS]; /* owned */
};

struct stmt_list {
	struct stmt *items;
	size_t count, cap;
};

static void stmt_list_clear(struct stmt_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		for (int k = 0; k < l->items[i].nparams; k++)
			free(l->items[i].params[k]);
	l->count = 0;
}

/* Adds a statement; params are copied (NULL stays SQL NULL). */
static int stmt_add(struct stmt_list *l, const char *sql, int nparams, const char *const *params)
{
	struct stmt *s;

	if (assay_vec_reserve(&l->items, &l->cap, l->count + 1, sizeof(*l->items)))
		return ASSAY_ERR_FATAL;
	s = &l->items[l->count];
	memset(s, 0, sizeof(*s));
	s->sql = sql;
	for (int k = 0; k < nparams; k++) {
		s->params[k] = params[k] != NULL ? dup_str(params[k]) : NULL;
		s->nparams = k + 1;
		if (params[k] != NULL && s->params[k] == NULL) {
			l->count++;
			return ASSAY_ERR_FATAL;
		}
	}
	s->nparams = nparams;
	l->count++;
	return 0;
}

/* A PostgreSQL text[] literal of n strings, malloc'd: {"a","b"} with " and \ escaped. */
static char *pg_array(const char *const *items, size_t n)
{
	struct assay_strbuf sb;

	assay_strbuf_init(&sb);
	assay_strbuf_appendc(&sb, '{');
	for (size_t i = 0; i < n; i++) {
		assay_strbuf_pg_array_next(&sb);
		assay_strbuf_append_pg_elem(&sb, items[i], strlen(items[i]));
	}
	assay_strbuf_appendc(&sb, '}');
	return assay_strbuf_detach(&sb);
}

/* ---- the service ---- */

/* Positions of the ControlMapped fields and the enum schemas, from the schema this process
 * encodes with. The enums' symbol order is fixed by the contract (schemas/README.md:
 * symbols are only ever added at the end): LinkKind, OscalRelation and CrosswalkStrength
 * follow enum assay_link_kind, assay_relation and assay_strength. */
struct mapped_fields {
	int event_id, tenant_id, occurred_at, audit_id, client_id, evidence_id, accepted_event_id,
	        source_system, kind, collected_at, links;
	int l_standard, l_control_id, l_link_kind, l_via, l_relation, l_strength;
	int via_standard, via_control_id;
	avro_schema_t standard_enum, kind_enum;
	int kind_other;
};

static avro_schema_t union_branch1(avro_schema_t record, const char *field)
{
	avro_schema_t u = avro_schema_record_field_get(record, field);

	return u != NULL && avro_typeof(u) == AVRO_UNION ? avro_schema_union_branch(u, 1) : NULL;
}

static int mapped_fields_init(struct mapped_fields *x, avro_schema_t s, char *errstr,
                              size_t errstr_size)
{
	avro_schema_t links = avro_schema_record_field_get(s, "links");
	avro_schema_t link = links != NULL ? avro_schema_array_items(links) : NULL;
	avro_schema_t via = link != NULL ? union_branch1(link, "via") : NULL;
	avro_schema_t rel = link != NULL ? union_branch1(link, "relation") : NULL;
	avro_schema_t str = link != NULL ? union_branch1(link, "strength") : NULL;
	avro_schema_t kinds = link != NULL ? avro_schema_record_field_get(link, "link_kind") : NULL;

	if (via == NULL || rel == NULL || str == NULL || kinds == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "control mapped schema: links do not have the expected shape");
#define IDX(sch, name) avro_schema_record_field_get_index((sch), (name))
	*x = (struct mapped_fields){
	        IDX(s, "event_id"),
	        IDX(s, "tenant_id"),
	        IDX(s, "occurred_at"),
	        IDX(s, "audit_id"),
	        IDX(s, "client_id"),
	        IDX(s, "evidence_id"),
	        IDX(s, "accepted_event_id"),
	        IDX(s, "source_system"),
	        IDX(s, "kind"),
	        IDX(s, "collected_at"),
	        IDX(s, "links"),
	        IDX(link, "standard"),
	        IDX(link, "control_id"),
	        IDX(link, "link_kind"),
	        IDX(link, "via"),
	        IDX(link, "relation"),
	        IDX(link, "strength"),
	        IDX(via, "standard"),
	        IDX(via, "control_id"),
	        avro_schema_record_field_get(link, "standard"),
	        avro_schema_record_field_get(s, "kind"),
	        0,
	};
#undef IDX
	x->kind_other = avro_schema_enum_get_by_name(x->kind_enum, "OTHER");
	int *all = &x->event_id;
	for (size_t k = 0; k < 19; k++)
		if (all[k] < 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "control mapped schema: a field is missing");
	/* our enums must match the contract's symbol order */
	for (int k = 0; k < 3; k++)
		if (avro_schema_enum_get_by_name(kinds, assay_link_kind_symbol(k)) != k ||
		    avro_schema_enum_get_by_name(str, assay_strength_symbol(k)) != k)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "control mapped schema: enum order differs");
	for (int k = 0; k < 5; k++)
		if (avro_schema_enum_get_by_name(rel, assay_relation_symbol(k)) != k)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "control mapped schema: enum order differs");
	if (x->kind_other < 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "control mapped schema: EvidenceKind has no OTHER");
	return 0;
}

struct mapper {
	const struct mapper_config *cfg;
	struct assay_catalog *cat;
	struct assay_crosswalk *cw;
	struct assay_log *log;
	struct assay_codec *codec; /* borrowed from the service (init): decodes pending rows */
	const struct assay_schema *mapped_schema;
	struct mapped_fields fx;
	avro_value_t out; /* reused ControlMapped value */
	bool has_out;
	struct assay_link *links; /* scratch for one evidence item */
	size_t links_cap;

	/* committed state */
	struct audit_map audits;
	struct pending_list pending;

	/* staged by the current handle() */
	struct audit_map staged;         /* copies of audits changed in this batch */
	struct pending_list new_pending; /* evidence waiting, added in this batch */
	struct stmt_list stmts;
	struct assay_copybuf link_rows, pending_rows;
	uint64_t n_mapped, n_links[3], n_pending, n_ignored;

	struct assay_counter *m_mapped, *m_links[3], *m_ignored;
	struct assay_gauge *m_pending;
};

static struct mapper *mapper_new(const struct mapper_config *cfg)
{
	struct mapper *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->cfg = cfg;
	assay_copybuf_init(&m->link_rows);
	assay_copybuf_init(&m->pending_rows);
	return m;
}

static void staged_clear(struct mapper *m)
{
	map_clear(&m->staged);
	pending_list_clear(&m->new_pending);
	for (size_t i = 0; i < m->pending.count; i++)
		m->pending.items[i]->consumed = false;
	stmt_list_clear(&m->stmts);
	assay_copybuf_reset(&m->link_rows);
	assay_copybuf_reset(&m->pending_rows);
	m->n_mapped = m->n_pending = m->n_ignored = 0;
	memset(m->n_links, 0, sizeof(m->n_links));
}

static void mapper_destroy(struct mapper *m)
{
	if (m == NULL)
		return;
	staged_clear(m);
	map_release(&m->staged);
	map_release(&m->audits);
	pending_list_clear(&m->pending);
	free(m->pending.items);
	free(m->new_pending.items);
	free(m->stmts.items);
	assay_copybuf_release(&m->link_rows);
	assay_copybuf_release(&m->pending_rows);
	if (m->has_out)
		avro_value_decref(&m->out);
	free(m->links);
	assay_crosswalk_destroy(m->cw);
	assay_catalog_destroy(m->cat);
	free(m);
}

/* The audit as this batch sees it: staged copy, else committed, else NULL. */
static const struct assay_mapper_audit *audit_view(const struct mapper *m, const char *id)
{
	const struct assay_mapper_audit *a = map_get(&m->staged, id);

	return a != NULL ? a : map_get(&m->audits, id);
}

/* A staged copy of the audit to change (made on first change in this batch). */
static struct assay_mapper_audit *audit_stage(struct mapper *m, const char *id)
{
	struct assay_mapper_audit *a = map_get(&m->staged, id);
	const struct assay_mapper_audit *c;

	if (a != NULL)
		return a;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	c = map_get(&m->audits, id);
	if ((c != NULL ? assay_mapper_audit_copy(a, c) : assay_mapper_audit_init(a, id)) != 0) {
		free(a);
		return NULL;
	}
	if (map_put(&m->staged, a) != 0) {
		assay_mapper_audit_release(a);
		free(a);
		return NULL;
	}
	return a;
}

/* Appends s to the text buffer at *len (room checked by the caller). */
static void put(char *buf, size_t *len, const char *s)
{
	size_t n = strlen(s);

	memcpy(buf + *len, s, n);
	*len += n;
}

/*
 * One assay_mapper_mapped row: the ids, then the links as text, ';' between links, ' '
 * between the fields of one: "standard control_id link_kind" and, for a crosswalk link,
 * " via_standard via_control_id relation strength" (sql/003_mapper.sql; none of these values
 * can hold a space or ';').
 */
static int link_row(struct assay_copybuf *b, const struct mapper_evidence *ev,
                    const struct assay_link *links, size_t n)
{
	char stack[4096], *buf = stack;
	size_t need = 1, len = 0;

	for (size_t k = 0; k < n; k++) /* symbols and tokens: at most 18 bytes each */
		need += 100 + strlen(links[k].control->id) +
		        (links[k].via != NULL ? strlen(links[k].via->id) : 0);
	if (need > sizeof(stack)) {
		buf = malloc(need);
		if (buf == NULL)
			return ASSAY_ERR_FATAL;
	}
	for (size_t k = 0; k < n; k++) {
		const struct assay_link *l = &links[k];

		if (k > 0)
			buf[len++] = ';';
		put(buf, &len, l->control->standard);
		buf[len++] = ' ';
		put(buf, &len, l->control->id);
		buf[len++] = ' ';
		put(buf, &len, assay_link_kind_symbol(l->kind));
		if (l->kind != ASSAY_LINK_DIRECT) {
			buf[len++] = ' ';
			put(buf, &len, l->via->standard);
			buf[len++] = ' ';
			put(buf, &len, l->via->id);
			buf[len++] = ' ';
			put(buf, &len, assay_relation_token(l->relation));
			buf[len++] = ' ';
			put(buf, &len, assay_strength_token(l->strength));
		}
	}
	assay_copybuf_str(b, ev->accepted_event_id);
	assay_copybuf_str(b, ev->audit_id);
	assay_copybuf_str(b, ev->tenant_id);
	assay_copybuf_str(b, ev->client_id);
	assay_copybuf_str(b, ev->evidence_id);
	assay_copybuf_text(b, buf, len);
	assay_copybuf_end_row(b);
	if (buf != stack)
		free(buf);
	return 0;
}

/* Builds ControlMapped for ev with its links into m->out (fields by position, looked up
 * once at init: this runs for every event) and emits it caused by message i; keeps its
 * assay_mapper_mapped row. */
static int emit_mapped(struct mapper *m, struct assay_batch *batch, size_t i,
                       const struct mapper_evidence *ev, const struct assay_link *links,
                       size_t nlinks, int64_t at, char *errstr, size_t errstr_size)
{
	const struct mapped_fields *x = &m->fx;
	char event_id[ASSAY_UUID_LEN];
	avro_value_t *v = &m->out, f, arr, elem, u, br;
	int rc = 0, kind;

	avro_value_reset(v);
	assay_batch_next_event_id(batch, i, event_id);
#define FIELD(rec, idx) avro_value_get_by_index((rec), (size_t)(idx), &f, NULL)
	rc |= FIELD(v, x->event_id) || avro_value_set_string(&f, event_id);
	rc |= FIELD(v, x->tenant_id) || avro_value_set_string(&f, ev->tenant_id);
	rc |= FIELD(v, x->occurred_at) || avro_value_set_long(&f, at);
	rc |= FIELD(v, x->audit_id) || avro_value_set_string(&f, ev->audit_id);
	rc |= FIELD(v, x->client_id) || avro_value_set_string(&f, ev->client_id);
	rc |= FIELD(v, x->evidence_id) || avro_value_set_string(&f, ev->evidence_id);
	rc |= FIELD(v, x->accepted_event_id) || avro_value_set_string(&f, ev->accepted_event_id);
	rc |= FIELD(v, x->source_system) || avro_value_set_string(&f, ev->source_system);
	kind = avro_schema_enum_get_by_name(x->kind_enum, ev->kind);
	rc |= FIELD(v, x->kind) || avro_value_set_enum(&f, kind >= 0 ? kind : x->kind_other);
	rc |= FIELD(v, x->collected_at) || avro_value_set_long(&f, ev->collected_at);
	rc |= avro_value_get_by_index(v, (size_t)x->links, &arr, NULL);
	for (size_t k = 0; rc == 0 && k < nlinks; k++) {
		const struct assay_link *l = &links[k];
		bool direct = l->kind == ASSAY_LINK_DIRECT;

		rc |= avro_value_append(&arr, &elem, NULL);
		if (rc != 0)
			break;
		rc |= FIELD(&elem, x->l_standard) ||
		      avro_value_set_enum(&f, avro_schema_enum_get_by_name(x->standard_enum,
		                                                           l->control->standard));
		rc |= FIELD(&elem, x->l_control_id) || avro_value_set_string(&f, l->control->id);
		rc |= FIELD(&elem, x->l_link_kind) || avro_value_set_enum(&f, (int)l->kind);
		/* unions ["null", T]: branch 0 null, branch 1 the value */
		rc |= avro_value_get_by_index(&elem, (size_t)x->l_via, &u, NULL) ||
		      avro_value_set_branch(&u, direct ? 0 : 1, &br);
		if (direct) {
			rc |= avro_value_set_null(&br);
		} else {
			rc |= FIELD(&br, x->via_standard) ||
			      avro_value_set_enum(&f, avro_schema_enum_get_by_name(
			                                      x->standard_enum, l->via->standard));
			rc |= FIELD(&br, x->via_control_id) ||
			      avro_value_set_string(&f, l->via->id);
		}
		rc |= avro_value_get_by_index(&elem, (size_t)x->l_relation, &u, NULL) ||
		      avro_value_set_branch(&u, direct ? 0 : 1, &br) ||
		      (direct ? avro_value_set_null(&br)
		              : avro_value_set_enum(&br, (int)l->relation));
		rc |= avro_value_get_by_index(&elem, (size_t)x->l_strength, &u, NULL) ||
		      avro_value_set_branch(&u, direct ? 0 : 1, &br) ||
		      (direct ? avro_value_set_null(&br)
		              : avro_value_set_enum(&br, (int)l->strength));
		m->n_links[l->kind]++;
	}
#undef FIELD
	if (rc != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "control mapped: value does not fit the schema");
	if (link_row(&m->link_rows, ev, links, nlinks) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "mapper: out of memory");
	m->n_mapped++;
	return assay_batch_emit_avro(batch, i, m->cfg->produces[0], ev->audit_id,
	                             strlen(ev->audit_id), m->mapped_schema, v, errstr,
	                             errstr_size);
}

/* Maps ev for opened audit a and emits it caused by message i. */
static int map_evidence(struct mapper *m, struct assay_batch *batch, size_t i,
                        const struct assay_mapper_audit *a, const struct mapper_evidence *ev,
                        int64_t at, char *errstr, size_t errstr_size)
{
	size_t need = assay_crosswalk_links_bound(m->cw, ev->nclaimed), n;

	if (assay_vec_reserve(&m->links, &m->links_cap, need, sizeof(*m->links)))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "mapper: out of memory");
	if (mapper_links(m->cw, a, ev, m->links, m->links_cap, &n) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "mapper: link bound too small");
	m->n_ignored += ev->nignored;
	return emit_mapped(m, batch, i, ev, m->links, n, at, errstr, errstr_size);
}

static const char SQL_AUDIT_UPSERT[] =
        "INSERT INTO assay_mapper_audits (audit_id, tenant_id, client_id, standards, opened_at) "
        "VALUES ($1, $2, $3, $4::text[], to_timestamp($5::bigint / 1000.0)) "
        "ON CONFLICT (audit_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, "
        "client_id = EXCLUDED.client_id, standards = EXCLUDED.standards, "
        "opened_at = EXCLUDED.opened_at";
static const char SQL_SOA_UPSERT[] =
        "INSERT INTO assay_mapper_soa (audit_id, standard, revision, excluded) "
        "VALUES ($1, $2, $3::integer, $4::text[]) ON CONFLICT (audit_id, standard) DO UPDATE "
        "SET revision = EXCLUDED.revision, excluded = EXCLUDED.excluded "
        "WHERE assay_mapper_soa.revision < EXCLUDED.revision";
static const char SQL_PENDING_DELETE[] = "DELETE FROM assay_mapper_pending WHERE audit_id = $1";

static int on_audit_opened(struct mapper *m, struct assay_batch *batch, size_t i, avro_value_t *v,
                           int64_t at, char *errstr, size_t errstr_size)
{
	struct assay_mapper_audit *a;
	const char *audit_id, *params[5];
	char *standards, opened[32];
	size_t len;
	int rc;

	if (assay_value_string(v, "audit_id", &audit_id, &len) != 0)
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT,
		                              "audit opened: missing audit_id");
	a = audit_stage(m, audit_id);
	if (a == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "mapper: out of memory");
	rc = assay_mapper_audit_apply_opened(a, m->cat, v, errstr, errstr_size);
	if (rc == ASSAY_ERR_REJECT)
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, errstr);
	if (rc != 0)
		return rc;
	standards = pg_array(a->scope, a->nscope);
	if (standards == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "mapper: out of memory");
	snprintf(opened, sizeof(opened), "%lld", (long long)a->opened_at);
	params[0] = a->audit_id;
	params[1] = a->tenant_id;
	params[2] = a->client_id;
	params[3] = standards;
	params[4] = opened;
	rc = stmt_add(&m->stmts, SQL_AUDIT_UPSERT, 5, params);
	free(standards);
	if (rc != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "mapper: out of memory");

	/* evidence that waited for this audit */
	bool any = false;
	for (size_t k = 0; k < m->pending.count; k++) {
		struct pending *p = m->pending.items[k];

		if (p->consumed || strcmp(p->ev.audit_id, audit_id) != 0)
			continue;
		rc = map_evidence(m, batch, i, a, &p->ev, at, errstr, errstr_size);
		if (rc != 0)
			return rc;
		p->consumed = true;
		any = true;
	}
	if (any) {
		params[0] = audit_id;
		if (stmt_add(&m->stmts, SQL_PENDING_DELETE, 1, params) != 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "mapper: out of memory");
	}
	return 0;
}

static int on_soa_submitted(struct mapper *m, struct assay_batch *batch, size_t i, avro_value_t *v,
                            char *errstr, size_t errstr_size)
{
	struct assay_mapper_audit *a;
	const char *audit_id, *params[4], *ids[512];
	char rev[16], *excluded;
	bool changed;
	size_t len;
	int rc;

	if (assay_value_string(v, "audit_id", &audit_id, &len) != 0)
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT,
		                              "soa submitted: missing audit_id");
	a = audit_stage(m, audit_id);
	if (a == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "mapper: out of memory");
	rc = assay_mapper_audit_apply_soa(a, m->cat, v, &changed, errstr, errstr_size);
	if (rc == ASSAY_ERR_REJECT)
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, errstr);
	if (rc != 0 || !changed)
		return rc;
	const char *sym = NULL, *known;
	if (assay_value_enum(v, "standard", &sym) != 0 ||
	    (known = assay_catalog_standard(m->cat, sym)) == NULL)
		return 0; /* changed implies both; defensive */
	for (size_t s = 0; s < a->nsoa; s++) {
		const struct assay_mapper_soa *soa = &a->soa[s];
		size_t n = 0;

		if (soa->standard != known)
			continue;
		for (size_t k = 0; k < soa->nexcluded && n < 512; k++)
			ids[n++] = soa->excluded[k]->id;
		excluded = pg_array(ids, n);
		if (excluded == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "mapper: out of memory");
		snprintf(rev, sizeof(rev), "%d", (int)soa->revision);
		params[0] = a->audit_id;
		params[1] = soa->standard;
		params[2] = rev;
		params[3] = excluded;
		rc = stmt_add(&m->stmts, SQL_SOA_UPSERT, 4, params);
		free(excluded);
		if (rc != 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "mapper: out of memory");
	}
	return 0;
}

static int on_evidence(struct mapper *m, struct assay_batch *batch, size_t i, struct assay_msg *msg,
                       int64_t at, char *errstr, size_t errstr_size)
{
	struct mapper_evidence ev;
	const struct assay_mapper_audit *a;
	int rc;

	rc = mapper_evidence_read(&msg->decoded.value, m->cat, &ev, errstr, errstr_size);
	if (rc != 0)
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, errstr);
	a = audit_view(m, ev.audit_id);
	if (a != NULL && a->opened)
		return map_evidence(m, batch, i, a, &ev, at, errstr, errstr_size);

	/* the audit is not open yet: wait for its AuditOpened */
	struct pending *p = pending_new(&ev, msg->value, msg->value_len);
	if (p == NULL || pending_push(&m->new_pending, p) != 0) {
		pending_free(p);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "mapper: out of memory");
	}
	assay_copybuf_str(&m->pending_rows, ev.accepted_event_id);
	assay_copybuf_str(&m->pending_rows, ev.audit_id);
	assay_copybuf_bytea(&m->pending_rows, msg->value, msg->value_len);
	assay_copybuf_end_row(&m->pending_rows);
	m->n_pending++;
	return 0;
}

static int mapper_handle(void *ctx, struct assay_batch *batch, char *errstr, size_t errstr_size)
{
	struct mapper *m = ctx;
	size_t n = assay_batch_count(batch);
	int64_t at = now_ms();
	int rc;

	staged_clear(m);
	/* pass 1: audit events change the projection the evidence is mapped with */
	for (size_t i = 0; i < n; i++) {
		struct assay_msg *msg = assay_batch_msg(batch, i);
		const char *type;

		if (msg->dead || !msg->decoded_ok || strcmp(msg->topic, m->cfg->consumes[1]) != 0)
			continue;
		type = msg->decoded.schema->full_name;
		if (strcmp(type, AUDIT_OPENED) == 0)
			rc = on_audit_opened(m, batch, i, &msg->decoded.value, at, errstr,
			                     errstr_size);
		else if (strcmp(type, SOA_SUBMITTED) == 0)
			rc = on_soa_submitted(m, batch, i, &msg->decoded.value, errstr,
			                      errstr_size);
		else
			rc = 0; /* other audit events do not concern the mapper */
		if (rc != 0)
			return rc;
	}
	/* pass 2: evidence */
	for (size_t i = 0; i < n; i++) {
		struct assay_msg *msg = assay_batch_msg(batch, i);

		if (msg->dead || !msg->decoded_ok || strcmp(msg->topic, m->cfg->consumes[0]) != 0)
			continue;
		if (strcmp(msg->decoded.schema->full_name, EVIDENCE_ACCEPTED) != 0) {
			rc = assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT,
			                            "mapper: not an EvidenceAccepted record");
		} else {
			rc = on_evidence(m, batch, i, msg, at, errstr, errstr_size);
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int mapper_write(void *ctx, PGconn *conn, struct assay_batch *batch, char *errstr,
                        size_t errstr_size)
{
	struct mapper *m = ctx;
	int rc = 0;

	(void)batch;
	if (m->stmts.count > 0) {
		struct assay_pipeline p;

		assay_pipeline_init(&p);
		rc = assay_pipeline_begin(&p, conn, errstr, errstr_size);
		for (size_t i = 0; rc == 0 && i < m->stmts.count; i++)
			assay_pipeline_add(&p, m->stmts.items[i].sql, m->stmts.items[i].nparams,
			                   (const char *const *)m->stmts.items[i].params, NULL, 0);
		if (rc == 0)
			rc = assay_pipeline_end(&p, errstr, errstr_size);
		assay_pipeline_release(&p);
		if (rc != 0)
			return rc;
	}
	if (assay_copybuf_rows(&m->link_rows) > 0) {
		rc = assay_pg_copy(
		        conn,
		        "COPY assay_mapper_mapped (accepted_event_id, audit_id, tenant_id, "
		        "client_id, evidence_id, links) FROM STDIN",
		        &m->link_rows, errstr, errstr_size);
		if (rc != 0)
			return rc;
	}
	if (assay_copybuf_rows(&m->pending_rows) > 0)
		rc = assay_pg_copy(conn,
		                   "COPY assay_mapper_pending (accepted_event_id, audit_id, value) "
		                   "FROM STDIN",
		                   &m->pending_rows, errstr, errstr_size);
	return rc;
}

static void mapper_committed(void *ctx, struct assay_batch *batch)
{
	struct mapper *m = ctx;
	size_t keep = 0;
	void *staged;

	(void)batch;
	/* staged audits become the committed ones (the map frees what they replace) */
	for (size_t pos = 0; assay_strmap_next(&m->staged.by_id, &pos, NULL, &staged);) {
		struct assay_mapper_audit *a = staged;

		if (map_put(&m->audits, a) != 0) {
			/* out of memory: the database has the change, memory cannot; a restart
			 * reloads it */
			assay_mapper_audit_release(a);
			free(a);
		}
	}
	assay_strmap_clear(&m->staged.by_id); /* each one handed over to m->audits above */
	for (size_t i = 0; i < m->pending.count; i++) {
		if (m->pending.items[i]->consumed)
			pending_free(m->pending.items[i]);
		else
			m->pending.items[keep++] = m->pending.items[i];
	}
	m->pending.count = keep;
	for (size_t i = 0; i < m->new_pending.count; i++)
		if (pending_push(&m->pending, m->new_pending.items[i]) != 0)
			pending_free(m->new_pending.items[i]);
	m->new_pending.count = 0;

	assay_counter_add(m->m_mapped, m->n_mapped);
	for (int k = 0; k < 3; k++)
		assay_counter_add(m->m_links[k], m->n_links[k]);
	assay_counter_add(m->m_ignored, m->n_ignored);
	assay_gauge_set(m->m_pending, (double)m->pending.count);
	staged_clear(m);
}

static void mapper_rolled_back(void *ctx, struct assay_batch *batch)
{
	(void)batch;
	staged_clear(ctx);
}

/* The audit id of into, created (empty) when absent. NULL when out of memory. */
static struct assay_mapper_audit *loaded_audit(struct audit_map *into, const char *id)
{
	struct assay_mapper_audit *a = map_get(into, id);

	if (a != NULL)
		return a;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	if (assay_mapper_audit_init(a, id) != 0) {
		free(a);
		return NULL;
	}
	if (map_put(into, a) != 0) {
		assay_mapper_audit_release(a);
		free(a);
		return NULL;
	}
	return a;
}

/* Loads the projection and the waiting evidence from the database into the empty into and
 * pend (the caller's in any case: it frees them on failure). */
static int load_state(struct mapper *m, PGconn *conn, struct audit_map *into,
                      struct pending_list *pend, char *errstr, size_t errstr_size)
{
	PGresult *res = NULL;
	int rc;

	rc = assay_pg_query(
	        conn,
	        "SELECT audit_id, tenant_id, client_id, array_to_string(standards, ','), "
	        "(extract(epoch FROM opened_at) * 1000)::bigint FROM assay_mapper_audits",
	        0, NULL, &res, errstr, errstr_size);
	if (rc != 0)
		return rc;
	for (int r = 0; r < PQntuples(res); r++) {
		struct assay_mapper_audit *a = loaded_audit(into, PQgetvalue(res, r, 0));
		char *list;

		if (a == NULL || replace_str(&a->tenant_id, PQgetvalue(res, r, 1)) ||
		    replace_str(&a->client_id, PQgetvalue(res, r, 2)))
			goto oom;
		a->opened = true;
		a->opened_at = strtoll(PQgetvalue(res, r, 4), NULL, 10);
		list = PQgetvalue(res, r, 3);
		for (char *tok = list; *tok;) {
			char *comma = strchr(tok, ',');
			size_t len = comma ? (size_t)(comma - tok) : strlen(tok);
			char sym[64];

			snprintf(sym, sizeof(sym), "%.*s", (int)len, tok);
			const char *known = assay_catalog_standard(m->cat, sym);
			if (known != NULL && a->nscope < ASSAY_MAPPER_MAX_STANDARDS)
				a->scope[a->nscope++] = known;
			tok += len + (comma ? 1 : 0);
		}
	}
	PQclear(res);
	rc = assay_pg_query(conn,
	                    "SELECT audit_id, standard, revision, array_to_string(excluded, ',') "
	                    "FROM assay_mapper_soa",
	                    0, NULL, &res, errstr, errstr_size);
	if (rc != 0)
		return rc;
	for (int r = 0; r < PQntuples(res); r++) {
		struct assay_mapper_audit *a = loaded_audit(into, PQgetvalue(res, r, 0));
		const char *known = assay_catalog_standard(m->cat, PQgetvalue(res, r, 1));
		char *list = PQgetvalue(res, r, 3);
		struct assay_mapper_soa *soa;
		size_t n = 1;

		if (a == NULL)
			goto oom;
		if (known == NULL || a->nsoa >= ASSAY_MAPPER_MAX_STANDARDS)
			continue;
		for (char *c = list; *c; c++)
			n += *c == ',';
		soa = &a->soa[a->nsoa++];
		soa->standard = known;
		soa->revision = (int32_t)strtol(PQgetvalue(res, r, 2), NULL, 10);
		soa->excluded = calloc(n, sizeof(*soa->excluded));
		if (soa->excluded == NULL)
			goto oom;
		for (char *tok = list; *tok;) {
			char *comma = strchr(tok, ',');
			size_t len = comma ? (size_t)(comma - tok) : strlen(tok);
			char id[64];

			snprintf(id, sizeof(id), "%.*s", (int)len, tok);
			const struct assay_control *ctl = assay_catalog_find(m->cat, known, id);
			if (ctl != NULL)
				soa->excluded[soa->nexcluded++] = ctl;
			tok += len + (comma ? 1 : 0);
		}
	}
	PQclear(res);
	rc = assay_pg_query(conn, "SELECT value FROM assay_mapper_pending ORDER BY received_at", 0,
	                    NULL, &res, errstr, errstr_size);
	if (rc != 0)
		return rc;
	for (int r = 0; r < PQntuples(res); r++) {
		size_t len;
		unsigned char *bytes =
		        PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, 0), &len);
		struct assay_decoded d = {0};
		struct mapper_evidence ev;
		struct pending *p = NULL;

		if (bytes == NULL)
			goto oom;
		rc = assay_codec_decode(m->codec, bytes, len, &d, errstr, errstr_size);
		if (rc == 0) {
			rc = mapper_evidence_read(&d.value, m->cat, &ev, errstr, errstr_size);
			if (rc == 0) {
				p = pending_new(&ev, bytes, len);
				if (p == NULL || pending_push(pend, p) != 0) {
					pending_free(p);
					rc = ASSAY_ERR_FATAL;
				}
			}
		}
		assay_decoded_release(&d);
		PQfreemem(bytes);
		if (rc == ASSAY_ERR_REJECT)
			rc = ASSAY_ERR_FATAL; /* we stored it after reading it once */
		if (rc != 0) {
			PQclear(res);
			return rc;
		}
	}
	PQclear(res);
	return 0;
oom:
	PQclear(res);
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "mapper state: out of memory");
}

/*
 * The assigned hook: replaces the audit projection and the waiting evidence with what the
 * database holds now (another instance may have written them while it owned partitions this
 * instance now consumes). The new state is built aside and swapped in only when complete, so
 * a failed reload (retried by the loop) leaves the previous state whole. Nothing is staged
 * between batches. The catalog and the crosswalk are not reloaded.
 */
static int mapper_assigned(void *ctx, PGconn *conn, const rd_kafka_topic_partition_list_t *parts,
                           char *errstr, size_t errstr_size)
{
	struct mapper *m = ctx;
	struct audit_map audits = {0};
	struct pending_list pend = {0};
	int rc;

	rc = load_state(m, conn, &audits, &pend, errstr, errstr_size);
	if (rc != 0) {
		map_release(&audits);
		pending_list_clear(&pend);
		free(pend.items);
		return rc;
	}
	staged_clear(m);
	map_release(&m->audits);
	m->audits = audits;
	pending_list_clear(&m->pending);
	free(m->pending.items);
	m->pending = pend;
	assay_gauge_set(m->m_pending, (double)m->pending.count);
	assay_log_info(m->log, "mapper state loaded",
	               ASSAY_LF_INT("partitions", parts ? parts->cnt : 0),
	               ASSAY_LF_INT("audits", (long long)assay_strmap_count(&m->audits.by_id)),
	               ASSAY_LF_INT("pending", (long long)m->pending.count));
	return 0;
}

static int mapper_init(void *ctx, const struct assay_service_env *env, char *errstr,
                       size_t errstr_size)
{
	struct mapper *m = ctx;
	int rc;

	/* init may be retried: start from nothing */
	staged_clear(m);
	map_clear(&m->audits);
	pending_list_clear(&m->pending);
	assay_crosswalk_destroy(m->cw);
	m->cw = NULL;
	assay_catalog_destroy(m->cat);
	m->cat = NULL;

	m->log = env->log;
	m->codec = env->codec;
	rc = assay_catalog_load(env->conn, &m->cat, errstr, errstr_size);
	if (rc == 0)
		rc = assay_crosswalk_load(env->conn, m->cat, &m->cw, errstr, errstr_size);
	/*
	 * The projection and the waiting evidence are NOT loaded here: the loop calls
	 * mapper_assigned before the first batch of every assignment (and after a fenced batch),
	 * and only that load is current: another instance of the group may write until the
	 * partitions are handed over, after init has run. Until then both are empty.
	 */
	if (rc != 0)
		return rc;
	if (!m->has_out) {
		rc = assay_codec_schema_by_name(env->codec, CONTROL_MAPPED, &m->mapped_schema,
		                                errstr, errstr_size);
		if (rc == 0)
			rc = mapped_fields_init(&m->fx, m->mapped_schema->schema, errstr,
			                        errstr_size);
		if (rc == 0 && assay_codec_value_new(m->mapped_schema, &m->out) != 0)
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "mapper init: out of memory");
		if (rc != 0)
			return rc;
		m->has_out = true;
	}
	m->m_mapped = assay_metrics_counter(env->metrics, "assay_mapper_evidence_mapped_total",
	                                    "accepted evidence items mapped and published", NULL);
	for (int k = 0; k < 3; k++) {
		char labels[64];

		snprintf(labels, sizeof(labels), "kind=\"%s\"",
		         assay_link_kind_symbol((enum assay_link_kind)k));
		m->m_links[k] = assay_metrics_counter(env->metrics, "assay_mapper_links_total",
		                                      "links written, by link kind", labels);
	}
	m->m_ignored =
	        assay_metrics_counter(env->metrics, "assay_mapper_claims_ignored_total",
	                              "claimed controls not in the catalog, or repeated", NULL);
	m->m_pending = assay_metrics_gauge(env->metrics, "assay_mapper_evidence_pending",
	                                   "accepted evidence waiting for its AuditOpened", NULL);
	assay_gauge_set(m->m_pending, (double)m->pending.count);
	assay_log_info(env->log, "mapper catalog loaded",
	               ASSAY_LF_INT("controls", (long long)assay_catalog_size(m->cat)),
	               ASSAY_LF_INT("crosswalk_edges", (long long)assay_crosswalk_count(m->cw)));
	return 0;
}

static void mapper_fini(void *ctx)
{
	(void)ctx;
}

/* The settings, filled by the configuration load before init runs (the one object the
 * static descriptor can point at) */
static struct mapper_config mapper_cfg;

static void *mapper_create(void *cfg)
{
	return mapper_new(cfg);
}

static void mapper_free(void *ctx)
{
	mapper_destroy(ctx);
}

const struct assay_service_def mapper_service = {
        .name = "assay-mapper",
        .description = "links accepted evidence to ISO 27001 / ISO 42001 controls",
        .consumes = (const char *const *)mapper_cfg.consumes,
        .nconsumes = 2,
        .produces = (const char *const *)mapper_cfg.produces,
        .nproduces = 1,
        .metrics_port = 9103,
        .settings = mapper_settings,
        .settings_target = &mapper_cfg,
        .handler =
                {
                        .stage = "mapper",
                        .decode = true,
                        .handle = mapper_handle,
                        .write = mapper_write,
                        .committed = mapper_committed,
                        .rolled_back = mapper_rolled_back,
                        .assigned = mapper_assigned,
                },
        .init = mapper_init,
        .fini = mapper_fini,
        .create = mapper_create,
        .destroy = mapper_free,
};

int mapper_export_oscal(const char *file)
{
	const char *url = getenv("ASSAY_PG_URL");
	struct assay_catalog *cat = NULL;
	struct assay_crosswalk *cw = NULL;
	PGconn *conn = NULL;
	FILE *out = NULL;
	char errstr[4096];
	int rc;

	if (file == NULL) {
		fprintf(stderr, "usage: assay-mapper --export-oscal FILE\n");
		return 2;
	}
	if (url == NULL || url[0] == '\0') {
		for (const struct assay_setting *s = assay_core_settings; s->name != NULL; s++)
			if (strcmp(s->env, "ASSAY_PG_URL") == 0)
				url = s->default_value;
	}
	if (url == NULL) {
		fprintf(stderr, "assay-mapper: export: ASSAY_PG_URL is not set\n");
		return 1;
	}
	rc = assay_pg_connect(url, &conn, errstr, sizeof(errstr));
	if (rc == 0)
		rc = assay_migrate(conn, assay_embedded_migrations, errstr, sizeof(errstr));
	if (rc == 0)
		rc = assay_catalog_load(conn, &cat, errstr, sizeof(errstr));
	if (rc == 0)
		rc = assay_crosswalk_load(conn, cat, &cw, errstr, sizeof(errstr));
	if (rc == 0) {
		out = strcmp(file, "-") == 0 ? stdout : fopen(file, "w");
		if (out == NULL)
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, sizeof(errstr),
			                "export: cannot open %s", file);
	}
	if (rc == 0)
		rc = assay_crosswalk_write_oscal(cw, out, now_ms(), errstr, sizeof(errstr));
	if (out != NULL && out != stdout && fclose(out) != 0 && rc == 0)
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, sizeof(errstr), "export: cannot write %s",
		                file);
	if (rc != 0)
		fprintf(stderr, "assay-mapper: export failed: %s\n", errstr);
	assay_crosswalk_destroy(cw);
	assay_catalog_destroy(cat);
	if (conn != NULL)
		PQfinish(conn);
	return rc == 0 ? 0 : 1;
}
