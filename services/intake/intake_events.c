/*
 * Intake's side of its event contracts (intake_events.h): a decoded EvidenceSubmitted (the
 * generated decoder's views into the frame) becomes the struct intake_evidence the rules
 * read, with the claimed controls and attributes appended to the batch's lists; an accepted
 * item becomes the struct assay_evidence_accepted the generated encoder writes. No Avro is
 * read or written here.
 */
#include "intake_events.h"

#include "assay_err.h"
#include "assay_vec.h"

#include <stdlib.h>
#include <string.h>

/* ---- lists ---- */

void intake_lists_init(struct intake_lists *l)
{
	memset(l, 0, sizeof(*l));
}

void intake_lists_release(struct intake_lists *l)
{
	free(l->controls);
	free(l->attrs);
	intake_lists_init(l);
}

void intake_lists_clear(struct intake_lists *l)
{
	l->ncontrols = 0;
	l->nattrs = 0;
}

/* ---- EvidenceSubmitted ---- */

static struct intake_str view(struct assay_str s)
{
	return (struct intake_str){s.len ? s.s : "", s.len};
}

static bool same_key(const struct intake_str *a, const struct assay_str *b)
{
	return a->len == b->len && memcmp(a->p, b->s, a->len) == 0;
}

static uint64_t key_hash(const struct assay_str *k)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < k->len; i++)
		h = (h ^ (unsigned char)k->s[i]) * 1099511628211ULL;
	return h;
}

/* Maps of at most this many entries look for a repeated key by comparing every pair */
#define SMALL_MAP 16

/* Appends in's attributes to l (room reserved), a repeated key once with its last value;
 * returns how many were appended, or (size_t)-1 when out of memory. */
static size_t append_attrs(const struct assay_evidence_submitted *in, struct intake_lists *l)
{
	size_t n = in->attributes.count, out = 0, mask = 0, *slots = NULL;
	struct intake_attr *a = l->attrs + l->nattrs;

	if (n > SMALL_MAP) { /* open addressing on the appended entries' positions + 1 */
		size_t cap = 64;

		while (cap < 2 * n)
			cap *= 2;
		slots = calloc(cap, sizeof(*slots));
		if (slots == NULL)
			return (size_t)-1;
		mask = cap - 1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct assay_str *key = &in->attributes.keys[i];
		size_t found = (size_t)-1, k = 0;

		if (slots == NULL) {
			for (size_t j = 0; j < out && found == (size_t)-1; j++)
				if (same_key(&a[j].key, key))
					found = j;
		} else {
			for (k = (size_t)key_hash(key) & mask; slots[k] != 0; k = (k + 1) & mask)
				if (same_key(&a[slots[k] - 1].key, key)) {
					found = slots[k] - 1;
					break;
				}
		}
		if (found != (size_t)-1) {
			a[found].value = view(in->attributes.values[i]);
			continue;
		}
		if (slots != NULL)
			slots[k] = out + 1;
		a[out].key = view(*key);
		a[out].value = view(in->attributes.values[i]);
		out++;
	}
	free(slots);
	return out;
}

int intake_submitted_read(const struct assay_evidence_submitted *in, struct intake_evidence *ev,
                          struct intake_lists *l)
{
	size_t nc = in->claimed_controls.count, na;
	const char *kind = assay_evidence_kind_name(in->kind);

	memset(ev, 0, sizeof(*ev));
	if (assay_vec_reserve(&l->controls, &l->controls_cap, l->ncontrols + nc,
	                      sizeof(*l->controls)) ||
	    assay_vec_reserve(&l->attrs, &l->attrs_cap, l->nattrs + in->attributes.count,
	                      sizeof(*l->attrs)))
		return ASSAY_ERR_FATAL;
	na = append_attrs(in, l);
	if (na == (size_t)-1)
		return ASSAY_ERR_FATAL;
	ev->event_id = view(in->event_id);
	ev->tenant_id = view(in->tenant_id);
	ev->audit_id = view(in->audit_id);
	ev->client_id = view(in->client_id);
	ev->evidence_id = view(in->evidence_id);
	ev->source_system = view(in->source_system);
	ev->sha256 = view(in->sha256);
	ev->uri = view(in->uri);
	kind = kind != NULL ? kind : "OTHER";
	ev->kind = (struct intake_str){kind, strlen(kind)};
	ev->collected_at_ms = in->collected_at;
	ev->size_bytes = in->size_bytes;
	for (size_t i = 0; i < nc; i++)
		l->controls[l->ncontrols + i] = view(in->claimed_controls.items[i]);
	/* the lists always exist here (reserved above), so these are never NULL + offset */
	ev->controls = l->controls + l->ncontrols;
	ev->ncontrols = nc;
	ev->attrs = l->attrs + l->nattrs;
	ev->nattrs = na;
	l->ncontrols += nc;
	l->nattrs += na;
	return 0;
}

/* ---- EvidenceAccepted ---- */

static struct assay_str str_of(const struct intake_str *s)
{
	return (struct assay_str){s->p, s->len};
}

int intake_accepted_fill(const struct intake_accepted *a, struct assay_arena *arena,
                         struct assay_evidence_accepted *out, char *errstr, size_t errstr_size)
{
	const struct intake_evidence *ev = a->ev;
	struct assay_control_ref *refs;
	enum assay_evidence_kind kind = ASSAY_EVIDENCE_KIND_OTHER;

	memset(out, 0, sizeof(*out));
	refs = assay_arena_alloc(arena, ev->ncontrols * sizeof(*refs));
	if (refs == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
	for (size_t k = 0; k < ev->ncontrols; k++) {
		const struct intake_control *c = &a->controls[k];

		if (assay_standard_parse(c->standard, strlen(c->standard), &refs[k].standard) != 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "standard %s is not a Standard symbol", c->standard);
		refs[k].control_id = (struct assay_str){c->id, strnlen(c->id, sizeof(c->id))};
	}
	assay_evidence_kind_parse(ev->kind.p, ev->kind.len, &kind); /* unknown: OTHER */
	out->event_id = (struct assay_str){a->event_id, strlen(a->event_id)};
	out->tenant_id = str_of(&ev->tenant_id);
	out->occurred_at = a->occurred_at_ms;
	out->audit_id = str_of(&ev->audit_id);
	out->client_id = str_of(&ev->client_id);
	out->evidence_id = str_of(&ev->evidence_id);
	out->submitted_event_id = str_of(&ev->event_id);
	out->source_system = str_of(&ev->source_system);
	out->kind = kind;
	out->collected_at = ev->collected_at_ms;
	out->sha256 = str_of(&ev->sha256);
	out->size_bytes = ev->size_bytes;
	out->uri = str_of(&ev->uri);
	out->claimed_controls.items = refs;
	out->claimed_controls.count = ev->ncontrols;
	out->source.topic = (struct assay_str){a->topic, strlen(a->topic)};
	out->source.partition = a->partition;
	out->source.offset = a->offset;
	return 0;
}
