/*
 * assay-mapper's handler. handle() applies the audit events of a batch first to the shared
 * audit projection (assay_audit_projection.h: scope and SoA exclusions, decoded with the
 * generated contracts), then reads the accepted evidence, and for each evidence item decides
 * its links (assay_crosswalk_map), emits ControlMapped and keeps the rows for write(). The
 * projection's batch (copy on write per audit) and the pending evidence added or consumed are
 * applied to memory in committed(); handle() starts from the committed state each time, so a
 * rollback or a retry never applies anything twice.
 */
#include "mapper.h"

#include "assay_arena.h"
#include "assay_codec.h"
#include "assay_contract.h"
#include "assay_embed.h"
#include "assay_loop.h"
#include "assay_migrate.h"
#include "assay_pg.h"
#include "assay_strbuf.h"
#include "assay_vec.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define EVIDENCE_ACCEPTED "org.assay.v1.EvidenceAccepted"
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

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- the mapper's view of a projected audit ---- */

static const void *hook_standard(void *ctx, const char *symbol)
{
	const struct assay_catalog *cat = ctx;
	const char *known = assay_catalog_standard(cat, symbol);

	/* an edition without controls (27001:2013) can be linked to nothing */
	if (known == NULL || (assay_catalog_count(cat, known, false) == 0 &&
	                      assay_catalog_count(cat, known, true) == 0))
		return NULL;
	return known;
}

static const void *hook_control(void *ctx, const void *standard, const char *id)
{
	const struct assay_control *ctl =
	        standard != NULL ? assay_catalog_find(ctx, standard, id) : NULL;

	return ctl != NULL && ctl->annex_a ? ctl : NULL;
}

void mapper_audit_hooks(const struct assay_catalog *cat, struct assay_audits_hooks *hooks)
{
	hooks->standard = hook_standard;
	hooks->control = hook_control;
	hooks->ctx = (void *)cat; /* read only: the hooks take it back as const */
}

void mapper_audit_scope(const struct assay_audit *a, struct assay_map_scope *scope,
                        const char **standards_buf, const struct assay_control **excluded_buf,
                        size_t nbuf)
{
	size_t ns = 0, n = 0;

	for (size_t i = 0; i < a->nstandards; i++) {
		const struct assay_audit_soa *soa = a->soa[i];

		if (a->standard_ref[i] == NULL)
			continue;
		standards_buf[ns++] = a->standard_ref[i];
		for (size_t k = 0; soa != NULL && k < soa->nexcluded && n < nbuf; k++)
			excluded_buf[n++] = soa->excluded[k];
	}
	scope->standards = standards_buf;
	scope->nstandards = ns;
	scope->excluded = excluded_buf;
	scope->nexcluded = n;
}

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

int mapper_links(const struct assay_crosswalk *cw, const struct assay_audit *a,
                 const struct mapper_evidence *ev, struct assay_link *out, size_t out_cap,
                 size_t *nout)
{
	const struct assay_control *excluded[256];
	const char *standards[ASSAY_AUDIT_MAX_STANDARDS];
	struct assay_map_scope scope;

	mapper_audit_scope(a, &scope, standards, excluded, sizeof(excluded) / sizeof(excluded[0]));
	return assay_crosswalk_map(cw, ev->claimed, ev->nclaimed, &scope, out, out_cap, nout);
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

	/* committed state; the projection also holds the batch's changes (its overlay) */
	struct assay_audits *audits; /* the shared audit projection, with mapper_audit_hooks */
	struct assay_contracts *cx;  /* decodes audit events for it */
	struct assay_arena arena;    /* their arrays, reset per event */
	char *group;                 /* consumer group: the projection's rows */
	struct pending_list pending;

	/* staged by the current handle() */
	struct pending_list new_pending;   /* evidence waiting, added in this batch */
	struct assay_strbuf mapped_audits; /* text[] of audits whose pending evidence was mapped */
	int retry; /* ASSAY_ERR_RETRY: an audit event could not be decoded */
	char retry_msg[256];
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
	assay_arena_init(&m->arena);
	assay_strbuf_init(&m->mapped_audits);
	assay_copybuf_init(&m->link_rows);
	assay_copybuf_init(&m->pending_rows);
	return m;
}

static void staged_clear(struct mapper *m)
{
	if (m->audits != NULL)
		assay_audits_rollback(m->audits);
	pending_list_clear(&m->new_pending);
	for (size_t i = 0; i < m->pending.count; i++)
		m->pending.items[i]->consumed = false;
	assay_strbuf_reset(&m->mapped_audits);
	m->retry = 0;
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
	assay_audits_destroy(m->audits);
	assay_contracts_destroy(m->cx);
	assay_arena_release(&m->arena);
	free(m->group);
	pending_list_clear(&m->pending);
	free(m->pending.items);
	free(m->new_pending.items);
	assay_strbuf_release(&m->mapped_audits);
	assay_copybuf_release(&m->link_rows);
	assay_copybuf_release(&m->pending_rows);
	if (m->has_out)
		avro_value_decref(&m->out);
	free(m->links);
	assay_crosswalk_destroy(m->cw);
	assay_catalog_destroy(m->cat);
	free(m);
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
                        const struct assay_audit *a, const struct mapper_evidence *ev, int64_t at,
                        char *errstr, size_t errstr_size)
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

/* The evidence waiting for audit a (opened by message i): mapped now, deleted at commit. */
static int map_pending(struct mapper *m, struct assay_batch *batch, size_t i,
                       const struct assay_audit *a, int64_t at, char *errstr, size_t errstr_size)
{
	bool any = false;
	int rc;

	for (size_t k = 0; k < m->pending.count; k++) {
		struct pending *p = m->pending.items[k];

		if (p->consumed || strcmp(p->ev.audit_id, a->audit_id) != 0)
			continue;
		rc = map_evidence(m, batch, i, a, &p->ev, at, errstr, errstr_size);
		if (rc != 0)
			return rc;
		p->consumed = true;
		any = true;
	}
	if (any) {
		assay_strbuf_appendc(&m->mapped_audits, m->mapped_audits.len == 0 ? '{' : ',');
		assay_strbuf_append_pg_elem(&m->mapped_audits, a->audit_id, strlen(a->audit_id));
	}
	return 0;
}

/*
 * A record of the audit topic: applied to the shared projection (decoded with the generated
 * contracts; records it does not read change nothing). An AuditOpened also maps the evidence
 * that waited for it, with the audit as it stands at this point of the batch.
 */
static int on_audit_event(struct mapper *m, struct assay_batch *batch, size_t i,
                          const struct assay_msg *msg, int64_t at, char *errstr, size_t errstr_size)
{
	struct assay_audit_opened ev;
	const struct assay_audit *a;
	const char *name;
	char why[512] = "";
	int rc;

	assay_arena_reset(&m->arena);
	rc = assay_contract_frame_type(m->cx, msg->value, msg->value_len, &name, why, sizeof(why));
	if (rc == 0 && assay_audits_event_kind(name) != ASSAY_AUDIT_EV_OPENED) {
		rc = assay_audits_apply_frame(m->audits, m->cx, &m->arena, msg->value,
		                              msg->value_len, NULL, why, sizeof(why));
	} else if (rc == 0) {
		rc = assay_audit_opened_decode(m->cx, msg->value, msg->value_len, &m->arena, &ev,
		                               why, sizeof(why));
		if (rc == 0)
			rc = assay_audits_apply_opened(m->audits, &ev);
		if (rc == ASSAY_ERR_REJECT && why[0] == '\0')
			snprintf(why, sizeof(why),
			         "audit opened: empty audit id or more than %d "
			         "standards in scope",
			         ASSAY_AUDIT_MAX_STANDARDS);
		if (rc == 0 && (a = assay_audits_find(m->audits, ev.audit_id.s, ev.audit_id.len)))
			rc = map_pending(m, batch, i, a, at, errstr, errstr_size);
	}
	if (rc == ASSAY_ERR_REJECT)
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, why);
	if (rc == ASSAY_ERR_RETRY) {
		/* the registry did not answer: the whole batch is tried again (write) */
		m->retry = ASSAY_ERR_RETRY;
		snprintf(m->retry_msg, sizeof(m->retry_msg), "audit event: %.200s", why);
		return 0;
	}
	if (rc == ASSAY_ERR_FATAL && why[0] != '\0')
		return assay_errf(rc, errstr, errstr_size, "%s", why);
	return rc < 0 ? rc : 0;
}

static int on_evidence(struct mapper *m, struct assay_batch *batch, size_t i, struct assay_msg *msg,
                       int64_t at, char *errstr, size_t errstr_size)
{
	struct mapper_evidence ev;
	const struct assay_audit *a;
	int rc;

	rc = mapper_evidence_read(&msg->decoded.value, m->cat, &ev, errstr, errstr_size);
	if (rc != 0)
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, errstr);
	a = assay_audits_find(m->audits, ev.audit_id, strlen(ev.audit_id));
	if (a != NULL)
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
	assay_audits_begin(m->audits);
	/* pass 1: audit events change the projection the evidence is mapped with */
	for (size_t i = 0; i < n && !m->retry; i++) {
		struct assay_msg *msg = assay_batch_msg(batch, i);

		if (msg->dead || !msg->decoded_ok || strcmp(msg->topic, m->cfg->consumes[1]) != 0)
			continue;
		rc = on_audit_event(m, batch, i, msg, at, errstr, errstr_size);
		if (rc != 0)
			return rc;
	}
	if (m->retry)
		return 0;
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
	if (m->retry)
		return assay_errf(m->retry, errstr, errstr_size, "%s", m->retry_msg);
	rc = assay_audits_write(m->audits, conn, m->group, "assay-mapper", errstr, errstr_size);
	if (rc != 0)
		return rc;
	if (m->mapped_audits.len > 0) {
		const char *params[1];

		assay_strbuf_appendc(&m->mapped_audits, '}');
		if (m->mapped_audits.failed)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "mapper: out of memory");
		params[0] = assay_strbuf_str(&m->mapped_audits);
		rc = assay_pg_exec_params(conn,
		                          "DELETE FROM assay_mapper_pending "
		                          "WHERE audit_id = ANY ($1::text[])",
		                          1, params, NULL, errstr, errstr_size);
		assay_strbuf_reset(&m->mapped_audits); /* write may run again for one batch */
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

	(void)batch;
	assay_audits_commit(m->audits);
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

/* Loads the waiting evidence from the database into the empty pend (the caller's in any
 * case: it frees it on failure). */
static int load_pending(struct mapper *m, PGconn *conn, struct pending_list *pend, char *errstr,
                        size_t errstr_size)
{
	PGresult *res = NULL;
	int rc;

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
	struct pending_list pend = {0};
	int rc;

	staged_clear(m);
	rc = load_pending(m, conn, &pend, errstr, errstr_size);
	if (rc == 0) /* keeps the previous projection on failure */
		rc = assay_audits_load(m->audits, conn, m->group, errstr, errstr_size);
	if (rc != 0) {
		pending_list_clear(&pend);
		free(pend.items);
		return rc;
	}
	pending_list_clear(&m->pending);
	free(m->pending.items);
	m->pending = pend;
	assay_gauge_set(m->m_pending, (double)m->pending.count);
	assay_log_info(m->log, "mapper state loaded",
	               ASSAY_LF_INT("partitions", parts ? parts->cnt : 0),
	               ASSAY_LF_INT("audits", (long long)assay_audits_count(m->audits)),
	               ASSAY_LF_INT("pending", (long long)m->pending.count));
	return 0;
}

static int mapper_init(void *ctx, const struct assay_service_env *env, char *errstr,
                       size_t errstr_size)
{
	struct mapper *m = ctx;
	struct assay_audits_hooks hooks;
	int rc;

	/* init may be retried: start from nothing */
	staged_clear(m);
	assay_audits_destroy(m->audits); /* its handles point into the catalog */
	m->audits = NULL;
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
	if (rc == 0) {
		mapper_audit_hooks(m->cat, &hooks);
		free(m->group);
		m->group = strdup(env->core != NULL && env->core->group_id != NULL &&
		                                  env->core->group_id[0] != '\0'
		                          ? env->core->group_id
		                          : "assay-mapper");
		assay_contracts_destroy(m->cx);
		m->cx = assay_contracts_new(env->codec, errstr, errstr_size);
		m->audits = assay_audits_new(&hooks);
		if (m->group == NULL || m->cx == NULL || m->audits == NULL)
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "mapper init: out of memory");
	}
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
