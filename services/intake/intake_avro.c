/*
 * EvidenceSubmitted in and EvidenceAccepted out, in Avro's binary encoding (intake_avro.h).
 *
 * avro-c's generic values cost intake about half its CPU (a malloc'd copy per string, a hash
 * table per map, a name lookup per field), so for the one schema intake reads all day and the
 * one it writes, the bytes are read and written here directly, following the Avro
 * specification's binary encoding: zigzag varints for int, long and enum indexes and union
 * branches, a long length before the bytes of a string, arrays and maps as blocks of a count
 * and that many items ending with a count of 0. The fast decoder accepts only what
 * assay_avro_check accepts and avro-c decodes alike, and hands everything else to the generic
 * path; the encoder writes what avro-c's value writer writes (one block per non-empty array).
 */
#include "intake_avro.h"

#include "assay_err.h"

#include <stdint.h>
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

int intake_reserve(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	if (n > SIZE_MAX / elem)
		return ASSAY_ERR_FATAL;
	q = realloc(*p, n * elem);
	if (q == NULL)
		return ASSAY_ERR_FATAL;
	*p = q;
	*cap = n;
	return 0;
}

static int reserve_controls(struct intake_lists *l, size_t n)
{
	return intake_reserve((void **)&l->controls, &l->controls_cap, l->ncontrols + n,
	                      sizeof(*l->controls));
}

static int reserve_attrs(struct intake_lists *l, size_t n)
{
	return intake_reserve((void **)&l->attrs, &l->attrs_cap, l->nattrs + n, sizeof(*l->attrs));
}

/* ev's views of its entries in l, which start at c_off and a_off. */
static void bind_lists(struct intake_evidence *ev, const struct intake_lists *l, size_t c_off,
                       size_t a_off)
{
	ev->controls = l->controls ? l->controls + c_off : NULL;
	ev->ncontrols = l->ncontrols - c_off;
	ev->attrs = l->attrs ? l->attrs + a_off : NULL;
	ev->nattrs = l->nattrs - a_off;
}

/* ---- schema shapes ---- */

/* A record's fields as the code below reads or writes them, in schema order. */
struct shape {
	const char *name;
	avro_type_t type;
};

static const struct shape submitted_shape[] = {
        {"event_id", AVRO_STRING},        {"tenant_id", AVRO_STRING}, {"occurred_at", AVRO_INT64},
        {"audit_id", AVRO_STRING},        {"client_id", AVRO_STRING}, {"evidence_id", AVRO_STRING},
        {"source_system", AVRO_STRING},   {"kind", AVRO_ENUM},        {"collected_at", AVRO_INT64},
        {"sha256", AVRO_STRING},          {"size_bytes", AVRO_INT64}, {"uri", AVRO_STRING},
        {"claimed_controls", AVRO_ARRAY}, /* of string */
        {"attributes", AVRO_MAP},         /* of string */
};

static const struct shape accepted_shape[] = {
        {"event_id", AVRO_STRING},
        {"tenant_id", AVRO_STRING},
        {"occurred_at", AVRO_INT64},
        {"audit_id", AVRO_STRING},
        {"client_id", AVRO_STRING},
        {"evidence_id", AVRO_STRING},
        {"submitted_event_id", AVRO_STRING},
        {"source_system", AVRO_STRING},
        {"kind", AVRO_ENUM},
        {"collected_at", AVRO_INT64},
        {"sha256", AVRO_STRING},
        {"size_bytes", AVRO_INT64},
        {"uri", AVRO_STRING},
        {"claimed_controls", AVRO_ARRAY}, /* of control_ref_shape */
        {"source", AVRO_RECORD},          /* source_shape */
};

static const struct shape control_ref_shape[] = {
        {"standard", AVRO_ENUM},
        {"control_id", AVRO_STRING},
};

static const struct shape source_shape[] = {
        {"topic", AVRO_STRING},
        {"partition", AVRO_INT32},
        {"offset", AVRO_INT64},
};

#define NSHAPE(s) (sizeof(s) / sizeof((s)[0]))

static avro_schema_t resolve(avro_schema_t schema)
{
	while (schema != NULL && is_avro_link(schema))
		schema = avro_schema_link_target(schema);
	return schema;
}

/* 0 when record has exactly shape's fields, in order; ASSAY_ERR_REJECT naming the first
 * difference otherwise. */
static int check_shape(avro_schema_t record, const struct shape *shape, size_t n, const char *what,
                       char *errstr, size_t errstr_size)
{
	record = resolve(record);
	if (record == NULL || avro_typeof(record) != AVRO_RECORD ||
	    avro_schema_record_size(record) != n)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "%s is not a record of %zu fields", what, n);
	for (size_t i = 0; i < n; i++) {
		const char *name = avro_schema_record_field_name(record, (int)i);
		avro_schema_t type = resolve(avro_schema_record_field_get_by_index(record, (int)i));

		if (name == NULL || strcmp(name, shape[i].name) != 0 || type == NULL ||
		    avro_typeof(type) != shape[i].type)
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "%s field %zu is not %s of avro type %d", what, i,
			                  shape[i].name, (int)shape[i].type);
	}
	return 0;
}

static avro_schema_t field(avro_schema_t record, const char *name)
{
	return resolve(avro_schema_record_field_get(resolve(record), name));
}

static bool is_type(avro_schema_t schema, avro_type_t type)
{
	schema = resolve(schema);
	return schema != NULL && avro_typeof(schema) == type;
}

/* ---- decoding: the generic path ---- */

int intake_submitted_from_value(avro_value_t *v, struct intake_evidence *ev, struct intake_lists *l,
                                char *why, size_t why_size)
{
	const size_t c_off = l->ncontrols, a_off = l->nattrs;
	avro_value_t arr, map, elem;
	size_t n = 0;
	const char *kind = NULL;
	const struct {
		const char *name;
		struct intake_str *dest;
	} strings[] = {
	        {"event_id", &ev->event_id},       {"tenant_id", &ev->tenant_id},
	        {"audit_id", &ev->audit_id},       {"client_id", &ev->client_id},
	        {"evidence_id", &ev->evidence_id}, {"source_system", &ev->source_system},
	        {"sha256", &ev->sha256},           {"uri", &ev->uri},
	};
	int err = 0;

	memset(ev, 0, sizeof(*ev));
	for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++)
		if (assay_value_string(v, strings[k].name, &strings[k].dest->p,
		                       &strings[k].dest->len) != 0)
			return assay_errf(ASSAY_ERR_REJECT, why, why_size,
			                  "evidence field %s missing or not a string",
			                  strings[k].name);
	if (assay_value_enum_or(v, "kind", "OTHER", &kind) != 0)
		return assay_errf(ASSAY_ERR_REJECT, why, why_size, "evidence field kind invalid");
	ev->kind.p = kind;
	ev->kind.len = strlen(kind);
	if (assay_value_long(v, "collected_at", &ev->collected_at_ms) != 0 ||
	    assay_value_long(v, "size_bytes", &ev->size_bytes) != 0)
		return assay_errf(ASSAY_ERR_REJECT, why, why_size,
		                  "evidence field collected_at or size_bytes missing");
	if (assay_value_array(v, "claimed_controls", &arr, &n) != 0)
		return assay_errf(ASSAY_ERR_REJECT, why, why_size,
		                  "evidence field claimed_controls missing");
	if (reserve_controls(l, n))
		return ASSAY_ERR_FATAL;
	for (size_t i = 0; i < n; i++) {
		struct intake_str *s = &l->controls[c_off + i];

		if (assay_value_array_get(&arr, i, &elem) != 0 ||
		    assay_value_as_string(&elem, &s->p, &s->len) != 0) {
			err = assay_errf(ASSAY_ERR_REJECT, why, why_size,
			                 "claimed control %zu is not a string", i);
			goto out;
		}
	}
	l->ncontrols += n;
	if (assay_value_map_opt(v, "attributes", &map, &n) != 0) {
		err = assay_errf(ASSAY_ERR_REJECT, why, why_size,
		                 "evidence field attributes invalid");
		goto out;
	}
	if (reserve_attrs(l, n)) {
		err = ASSAY_ERR_FATAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct intake_attr *a = &l->attrs[a_off + i];

		if (assay_value_map_get(&map, i, &a->key.p, &elem) != 0 ||
		    assay_value_as_string(&elem, &a->value.p, &a->value.len) != 0) {
			err = assay_errf(ASSAY_ERR_REJECT, why, why_size,
			                 "attribute %zu is not a string", i);
			goto out;
		}
		a->key.len = strlen(a->key.p);
	}
	l->nattrs += n;
	bind_lists(ev, l, c_off, a_off);
out:
	if (err) {
		l->ncontrols = c_off;
		l->nattrs = a_off;
	}
	return err;
}

/* ---- decoding: the fast path ---- */

int intake_submitted_reader_init(struct intake_submitted_reader *r, const struct assay_schema *s,
                                 size_t max_message_bytes, char *errstr, size_t errstr_size)
{
	int err;

	memset(r, 0, sizeof(*r));
	err = check_shape(s->schema, submitted_shape, NSHAPE(submitted_shape), s->full_name, errstr,
	                  errstr_size);
	if (err)
		return err;
	if (!is_type(avro_schema_array_items(field(s->schema, "claimed_controls")), AVRO_STRING) ||
	    !is_type(avro_schema_map_values(field(s->schema, "attributes")), AVRO_STRING))
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "%s: claimed_controls or attributes do not hold strings",
		                  s->full_name);
	r->id = s->id;
	r->max_message_bytes = max_message_bytes;
	r->kind = field(s->schema, "kind");
	r->nkinds = avro_schema_enum_number_of_symbols(r->kind);
	r->enabled = true;
	return 0;
}

/* A position in a body. Once bad, every read gives zero and the frame goes the generic way. */
struct cursor {
	const unsigned char *p, *end;
	bool bad;
};

/* A zigzag varint of at most max_bytes bytes whose last byte may be at most last_max (no
 * continuation bit, only the bits the type has left): assay_avro_check's rule, 10 bytes and
 * 0x01 for a long, 5 bytes and 0x0f for an int. */
static int64_t get_varint(struct cursor *c, unsigned max_bytes, unsigned last_max)
{
	uint64_t raw = 0;

	for (unsigned i = 0; !c->bad && i < max_bytes && c->p < c->end; i++) {
		unsigned b = *c->p++;

		if (i == max_bytes - 1 && b > last_max)
			break;
		raw |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0)
			return (int64_t)((raw >> 1) ^ (0 - (raw & 1)));
	}
	c->bad = true;
	return 0;
}

static int64_t get_long(struct cursor *c)
{
	return get_varint(c, 10, 0x01);
}

static int64_t get_int(struct cursor *c)
{
	return get_varint(c, 5, 0x0f);
}

/* A string: a length, then that many bytes of UTF-8 without NUL; s views the bytes. */
static void get_str(struct cursor *c, struct intake_str *s)
{
	int64_t n = get_long(c);

	s->p = "";
	s->len = 0;
	if (c->bad || n < 0 || (uint64_t)n > (size_t)(c->end - c->p) ||
	    !intake_utf8_valid((const char *)c->p, (size_t)n)) {
		c->bad = true;
		return;
	}
	s->p = (const char *)c->p;
	s->len = (size_t)n;
	c->p += n;
}

/* The count of the next array or map block: 0 at the end; a negative count (a block with its
 * byte size) or one the bytes left cannot hold (min_item bytes an item) is left to the
 * generic path. */
static size_t get_count(struct cursor *c, size_t min_item)
{
	int64_t n = get_long(c);

	if (c->bad)
		return 0;
	if (n < 0 || (uint64_t)n > (size_t)(c->end - c->p) / min_item) {
		c->bad = true;
		return 0;
	}
	return (size_t)n;
}

static int get_controls(struct cursor *c, struct intake_lists *l)
{
	for (size_t n; (n = get_count(c, 1)) != 0;) {
		if (reserve_controls(l, n))
			return ASSAY_ERR_FATAL;
		for (size_t i = 0; i < n && !c->bad; i++)
			get_str(c, &l->controls[l->ncontrols++]);
	}
	return 0;
}

/* The attributes, a map of strings, as avro-c builds it when the keys are distinct; duplicate
 * keys (avro-c keeps the first position and the last value) go the generic way. */
static int get_attrs(struct cursor *c, struct intake_lists *l)
{
	const size_t a_off = l->nattrs;

	for (size_t n; (n = get_count(c, 2)) != 0;) {
		if (l->nattrs - a_off + n > INTAKE_AVRO_FAST_MAX_ATTRS) {
			c->bad = true;
			return 0;
		}
		if (reserve_attrs(l, n))
			return ASSAY_ERR_FATAL;
		for (size_t i = 0; i < n && !c->bad; i++) {
			struct intake_attr *a = &l->attrs[l->nattrs];

			get_str(c, &a->key);
			get_str(c, &a->value);
			for (size_t k = a_off; k < l->nattrs && !c->bad; k++)
				if (l->attrs[k].key.len == a->key.len &&
				    memcmp(l->attrs[k].key.p, a->key.p, a->key.len) == 0)
					c->bad = true;
			l->nattrs++;
		}
	}
	return 0;
}

int intake_submitted_decode(const struct intake_submitted_reader *r, const void *frame, size_t len,
                            struct intake_evidence *ev, struct intake_lists *l)
{
	const unsigned char *f = frame;
	const size_t c_off = l->ncontrols, a_off = l->nattrs;
	struct cursor c;
	int64_t kind;
	int err;

	if (!r->enabled || len < ASSAY_CODEC_HEADER_SIZE || f[0] != ASSAY_CODEC_MAGIC ||
	    (r->max_message_bytes != 0 && len > r->max_message_bytes))
		return INTAKE_AVRO_GENERIC;
	if ((int32_t)((uint32_t)f[1] << 24 | (uint32_t)f[2] << 16 | (uint32_t)f[3] << 8 |
	              (uint32_t)f[4]) != r->id)
		return INTAKE_AVRO_GENERIC;
	c.p = f + ASSAY_CODEC_HEADER_SIZE;
	c.end = f + len;
	c.bad = false;

	/* in the order of submitted_shape */
	memset(ev, 0, sizeof(*ev));
	get_str(&c, &ev->event_id);
	get_str(&c, &ev->tenant_id);
	(void)get_long(&c); /* occurred_at: not used by intake */
	get_str(&c, &ev->audit_id);
	get_str(&c, &ev->client_id);
	get_str(&c, &ev->evidence_id);
	get_str(&c, &ev->source_system);
	kind = get_int(&c);
	if (kind < 0 || kind >= r->nkinds)
		c.bad = true;
	else
		ev->kind.p = avro_schema_enum_get(r->kind, (int)kind);
	ev->kind.len = ev->kind.p ? strlen(ev->kind.p) : 0;
	ev->collected_at_ms = get_long(&c);
	get_str(&c, &ev->sha256);
	ev->size_bytes = get_long(&c);
	get_str(&c, &ev->uri);
	err = get_controls(&c, l);
	if (!err)
		err = get_attrs(&c, l);
	if (!err && !c.bad && c.p != c.end)
		c.bad = true; /* trailing bytes */
	if (err || c.bad) {
		l->ncontrols = c_off;
		l->nattrs = a_off;
		memset(ev, 0, sizeof(*ev));
		return err ? err : INTAKE_AVRO_GENERIC;
	}
	bind_lists(ev, l, c_off, a_off);
	return 0;
}

/* ---- encoding ---- */

/* The symbols of enum schema into out (at most INTAKE_AVRO_MAX_SYMBOLS). */
static int enum_symbols(avro_schema_t schema, const char **out, int *n)
{
	int count;

	schema = resolve(schema);
	if (schema == NULL || avro_typeof(schema) != AVRO_ENUM)
		return ASSAY_ERR_FATAL;
	count = avro_schema_enum_number_of_symbols(schema);
	if (count <= 0 || count > INTAKE_AVRO_MAX_SYMBOLS)
		return ASSAY_ERR_FATAL;
	for (int i = 0; i < count; i++)
		out[i] = avro_schema_enum_get(schema, i);
	*n = count;
	return 0;
}

int intake_accepted_writer_init(struct intake_accepted_writer *w, const struct assay_schema *s,
                                size_t max_message_bytes, char *errstr, size_t errstr_size)
{
	avro_schema_t controls = NULL;
	char why[256];

	memset(w, 0, sizeof(*w));
	if (check_shape(s->schema, accepted_shape, NSHAPE(accepted_shape), s->full_name, why,
	                sizeof(why)) == 0)
		controls = avro_schema_array_items(field(s->schema, "claimed_controls"));
	if (controls == NULL ||
	    check_shape(controls, control_ref_shape, NSHAPE(control_ref_shape), "ControlRef", why,
	                sizeof(why)) ||
	    check_shape(field(s->schema, "source"), source_shape, NSHAPE(source_shape),
	                "SourceCoordinates", why, sizeof(why)))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "evidence accepted encoder: %s", why);
	if (enum_symbols(field(s->schema, "kind"), w->kinds, &w->nkinds) ||
	    enum_symbols(field(controls, "standard"), w->standards, &w->nstandards))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "evidence accepted encoder: kind or standard is not an enum of "
		                  "1 to %d symbols",
		                  INTAKE_AVRO_MAX_SYMBOLS);
	w->kind_other = -1;
	for (int i = 0; i < w->nkinds; i++)
		if (strcmp(w->kinds[i], "OTHER") == 0)
			w->kind_other = i;
	if (w->kind_other < 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "evidence accepted encoder: EvidenceKind has no OTHER");
	w->id = s->id;
	w->max_message_bytes = max_message_bytes;
	return 0;
}

void intake_accepted_writer_release(struct intake_accepted_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

/* The most bytes a zigzag varint of 64 bits takes. */
#define VARINT_MAX 10

static unsigned char *put_varint(unsigned char *p, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

	while (z >= 0x80) {
		*p++ = (unsigned char)(z | 0x80);
		z >>= 7;
	}
	*p++ = (unsigned char)z;
	return p;
}

static unsigned char *put_str(unsigned char *p, const char *s, size_t len)
{
	p = put_varint(p, (int64_t)len);
	if (len > 0)
		memcpy(p, s, len);
	return p + len;
}

static unsigned char *put_view(unsigned char *p, const struct intake_str *s)
{
	return put_str(p, s->p, s->len);
}

/* Index of the symbol s (len bytes) among n symbols, or -1. */
static int symbol_index(const char *const *symbols, int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++)
		if (strncmp(symbols[i], s, len) == 0 && symbols[i][len] == '\0')
			return i;
	return -1;
}

int intake_accepted_encode(struct intake_accepted_writer *w, const struct intake_accepted *a,
                           char *errstr, size_t errstr_size)
{
	const struct intake_evidence *ev = a->ev;
	const size_t event_id_len = strlen(a->event_id), topic_len = strlen(a->topic);
	/* every varint counted at its widest: 10 strings, 4 longs, 2 ints, the array's two
	 * counts, and per control an enum and a string */
	size_t bound = ASSAY_CODEC_HEADER_SIZE + 18 * VARINT_MAX + event_id_len + topic_len +
	               ev->tenant_id.len + ev->audit_id.len + ev->client_id.len +
	               ev->evidence_id.len + ev->event_id.len + ev->source_system.len +
	               ev->sha256.len + ev->uri.len;
	unsigned char *p;
	int kind;

	for (size_t k = 0; k < ev->ncontrols; k++)
		bound += 2 * VARINT_MAX + strnlen(a->controls[k].id, sizeof(a->controls[k].id));
	if (intake_reserve((void **)&w->buf, &w->cap, bound, 1))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "encode: out of memory");
	kind = symbol_index(w->kinds, w->nkinds, ev->kind.p, ev->kind.len);
	if (kind < 0) /* a symbol newer than ours */
		kind = w->kind_other;

	p = w->buf;
	*p++ = ASSAY_CODEC_MAGIC;
	*p++ = (unsigned char)((uint32_t)w->id >> 24);
	*p++ = (unsigned char)((uint32_t)w->id >> 16);
	*p++ = (unsigned char)((uint32_t)w->id >> 8);
	*p++ = (unsigned char)w->id;
	/* in the order of accepted_shape */
	p = put_str(p, a->event_id, event_id_len);
	p = put_view(p, &ev->tenant_id);
	p = put_varint(p, a->occurred_at_ms);
	p = put_view(p, &ev->audit_id);
	p = put_view(p, &ev->client_id);
	p = put_view(p, &ev->evidence_id);
	p = put_view(p, &ev->event_id); /* submitted_event_id */
	p = put_view(p, &ev->source_system);
	p = put_varint(p, kind);
	p = put_varint(p, ev->collected_at_ms);
	p = put_view(p, &ev->sha256);
	p = put_varint(p, ev->size_bytes);
	p = put_view(p, &ev->uri);
	if (ev->ncontrols > 0) /* one block, as avro-c writes it */
		p = put_varint(p, (int64_t)ev->ncontrols);
	for (size_t k = 0; k < ev->ncontrols; k++) {
		const struct intake_control *ctl = &a->controls[k];
		int std = ctl->standard ? symbol_index(w->standards, w->nstandards, ctl->standard,
		                                       strlen(ctl->standard))
		                        : -1;

		if (std < 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "encode: standard %s is not a Standard symbol",
			                  ctl->standard ? ctl->standard : "(none)");
		p = put_varint(p, std);
		p = put_str(p, ctl->id, strnlen(ctl->id, sizeof(ctl->id)));
	}
	p = put_varint(p, 0);
	p = put_str(p, a->topic, topic_len);
	p = put_varint(p, a->partition);
	p = put_varint(p, a->offset);
	w->len = (size_t)(p - w->buf);
	if (w->max_message_bytes != 0 && w->len > w->max_message_bytes)
		return assay_errf(
		        ASSAY_ERR_REJECT, errstr, errstr_size,
		        "encode: message too large: EvidenceAccepted of %zu bytes, limit %zu",
		        w->len, w->max_message_bytes);
	return 0;
}
