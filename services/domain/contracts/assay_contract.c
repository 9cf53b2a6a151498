/*
 * The contracts runtime (assay_contract.h): the plan cache, the decoder that runs a plan over
 * an Avro body in one pass, and the encoder that walks a generated descriptor. Both follow
 * the Avro specification's binary encoding: zigzag varints for int, long, enum indexes, union
 * branches and lengths; strings and bytes as a length then the bytes; arrays and maps as
 * blocks of a count (a negative count followed by the block's byte size) ending with 0.
 * The decoder refuses what assay_avro_check refuses, with the same messages, and hands writer
 * fields the reader lacks to assay_avro_check_at, which validates them while skipping.
 */
#include "assay_contract.h"
#include "assay_contract_io.h"
#include "assay_contract_plan.h"

#include "assay_avro_check.h"
#include "assay_err.h"
#include "assay_vec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the contracts runtime copies floats and doubles as little-endian (Avro's byte order)"
#endif

const struct assay_ct_type assay_ct_boolean_type = {
        .kind = ASSAY_CT_BOOLEAN, .name = "boolean", .size = sizeof(bool)};
const struct assay_ct_type assay_ct_int_type = {
        .kind = ASSAY_CT_INT, .name = "int", .size = sizeof(int32_t)};
const struct assay_ct_type assay_ct_long_type = {
        .kind = ASSAY_CT_LONG, .name = "long", .size = sizeof(int64_t)};
const struct assay_ct_type assay_ct_float_type = {
        .kind = ASSAY_CT_FLOAT, .name = "float", .size = sizeof(float)};
const struct assay_ct_type assay_ct_double_type = {
        .kind = ASSAY_CT_DOUBLE, .name = "double", .size = sizeof(double)};
const struct assay_ct_type assay_ct_string_type = {
        .kind = ASSAY_CT_STRING, .name = "string", .size = sizeof(struct assay_str)};
const struct assay_ct_type assay_ct_bytes_type = {
        .kind = ASSAY_CT_BYTES, .name = "bytes", .size = sizeof(struct assay_bytes)};

/* The layout every generated array and map struct has. */
struct ct_array {
	void *items;
	size_t count;
};
struct ct_map {
	struct assay_str *keys;
	void *values;
	size_t count;
};

/* A compiled plan, or why the writer cannot be read as the reader. */
struct plan_entry {
	const struct assay_ct_type *reader;
	int32_t writer_id;
	const struct assay_plan *plan; /* NULL: refused, see why */
	char *why;
	struct assay_arena mem; /* the plan's nodes */
};

/* The registry id of a reader type's own schema, for encoding. */
struct own_id {
	const struct assay_ct_type *type;
	int32_t id;
};

struct assay_contracts {
	struct assay_codec *codec;
	size_t max_message_bytes;
	struct plan_entry *plans;
	size_t nplans, plans_cap;
	size_t last; /* index of the last plan used */
	struct own_id *ids;
	size_t nids, ids_cap;
	bool generated;    /* use the generated read/write where there is one */
	bool refused_utf8; /* the last decode refused a string's UTF-8 */
};

/* ---- handle and cache ---- */

struct assay_contracts *assay_contracts_new(struct assay_codec *codec, char *errstr,
                                            size_t errstr_size)
{
	struct assay_contracts *cx = calloc(1, sizeof(*cx));

	if (cx == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "contracts: out of memory");
		return NULL;
	}
	cx->codec = codec;
	cx->max_message_bytes = assay_codec_max_message_bytes(codec);
	cx->generated = true;
	return cx;
}

void assay_contracts_set_generated(struct assay_contracts *cx, bool on)
{
	cx->generated = on;
}

bool assay_contract_generated(const struct assay_contracts *cx)
{
	return cx->generated;
}

void assay_contracts_destroy(struct assay_contracts *cx)
{
	if (cx == NULL)
		return;
	for (size_t i = 0; i < cx->nplans; i++) {
		assay_arena_release(&cx->plans[i].mem);
		free(cx->plans[i].why);
	}
	free(cx->plans);
	free(cx->ids);
	free(cx);
}

/* The plan entry for (writer id, reader), compiled on first sight. */
static int plan_for(struct assay_contracts *cx, const struct assay_ct_type *reader, int32_t id,
                    const struct plan_entry **out, char *errstr, size_t errstr_size)
{
	const struct assay_schema *s;
	struct plan_entry *e;
	char why[256] = "";
	int rc;

	if (cx->last < cx->nplans && cx->plans[cx->last].writer_id == id &&
	    cx->plans[cx->last].reader == reader) {
		*out = &cx->plans[cx->last];
		return 0;
	}
	for (size_t i = 0; i < cx->nplans; i++) {
		if (cx->plans[i].writer_id == id && cx->plans[i].reader == reader) {
			cx->last = i;
			*out = &cx->plans[i];
			return 0;
		}
	}
	rc = assay_codec_schema_by_id(cx->codec, id, &s, why, sizeof(why));
	if (rc != 0)
		return assay_errf(rc, errstr, errstr_size, "decode: %s", why);
	if (assay_vec_grow(&cx->plans, &cx->plans_cap, cx->nplans + 1, sizeof(*cx->plans)) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "decode: out of memory");
	e = &cx->plans[cx->nplans];
	memset(e, 0, sizeof(*e));
	e->reader = reader;
	e->writer_id = id;
	assay_arena_init(&e->mem);
	rc = assay_contract_plan_compile(s->schema, reader, &e->mem, &e->plan, why, sizeof(why));
	if (rc == ASSAY_ERR_FATAL) {
		assay_arena_release(&e->mem);
		return assay_errf(rc, errstr, errstr_size, "decode: %s", why);
	}
	if (rc != 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s as %s: %s", s->full_name, reader->name, why);
		e->why = strdup(msg);
		e->plan = NULL;
		assay_arena_release(&e->mem);
		if (e->why == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "decode: out of memory");
	}
	cx->last = cx->nplans++;
	*out = e;
	return 0;
}

/* ---- decoding ---- */

static void apply_default(const struct assay_ct_field *f, unsigned char *rec)
{
	const struct assay_ct_default *d = f->dflt;
	unsigned char *dst = rec + f->offset;
	bool present = !d->is_null;

	if (f->optional)
		memcpy(rec + f->present_offset, &present, sizeof(present));
	if (d->is_null)
		return;
	switch (f->type->kind) {
	case ASSAY_CT_BOOLEAN: {
		bool v = d->i != 0;

		memcpy(dst, &v, sizeof(v));
		break;
	}
	case ASSAY_CT_INT:
	case ASSAY_CT_ENUM: {
		int32_t v = (int32_t)d->i;

		memcpy(dst, &v, sizeof(v));
		break;
	}
	case ASSAY_CT_LONG:
		memcpy(dst, &d->i, sizeof(d->i));
		break;
	case ASSAY_CT_FLOAT: {
		float v = (float)d->d;

		memcpy(dst, &v, sizeof(v));
		break;
	}
	case ASSAY_CT_DOUBLE:
		memcpy(dst, &d->d, sizeof(d->d));
		break;
	case ASSAY_CT_STRING: {
		struct assay_str v = {d->s, d->len};

		memcpy(dst, &v, sizeof(v));
		break;
	}
	case ASSAY_CT_BYTES: {
		struct assay_bytes v = {(const unsigned char *)d->s, d->len};

		memcpy(dst, &v, sizeof(v));
		break;
	}
	default: /* arrays and maps: empty (the record is zeroed); records: no defaults */
		break;
	}
}

static int exec(struct assay_ct_reader *r, const struct assay_plan *p, unsigned char *dst,
                bool *present, int depth);

/* Blocks of an array or map: items (and keys) allocated from the arena. */
static int exec_blocks(struct assay_ct_reader *r, const struct assay_plan *p, unsigned char *dst,
                       int depth)
{
	bool map = p->op == PLAN_MAP;
	size_t isize = p->reader->items->size, n = 0;
	unsigned char *items = NULL;
	struct assay_str *keys = NULL;
	int rc;

	for (;;) {
		int64_t count, size;
		size_t block_start, total;

		rc = assay_ct_read_block(r, map, p->item_min_size, &count, &size);
		if (rc != 0)
			return rc;
		if (count == 0)
			break;
		total = n + (size_t)count;
		items = assay_ct_grow(r, items, n, (size_t)count, isize);
		if (items == NULL)
			return assay_ct_oom(r);
		if (map) {
			keys = assay_ct_grow(r, keys, n, (size_t)count, sizeof(*keys));
			if (keys == NULL)
				return assay_ct_oom(r);
		}
		block_start = r->pos;
		for (size_t i = n; i < total; i++) {
			if (map) {
				rc = assay_ct_read_str(r, &keys[i]);
				if (rc != 0)
					return rc;
			}
			rc = exec(r, p->item, items + i * isize, NULL, depth + 1);
			if (rc != 0)
				return rc;
		}
		n = total;
		rc = assay_ct_block_end(r, map, block_start, size);
		if (rc != 0)
			return rc;
	}
	if (map) {
		struct ct_map m = {keys, items, n};

		memcpy(dst, &m, sizeof(m));
	} else {
		struct ct_array a = {items, n};

		memcpy(dst, &a, sizeof(a));
	}
	return 0;
}

static int exec_record(struct assay_ct_reader *r, const struct assay_plan *p, unsigned char *dst,
                       int depth)
{
	const char *outer = r->field;
	int rc;

	for (size_t i = 0; i < p->ndefaults; i++)
		apply_default(p->defaults[i], dst);
	for (size_t i = 0; i < p->nfields; i++) {
		const struct assay_plan_field *f = &p->fields[i];

		r->field = f->name;
		if (f->reader == NULL) {
			char why[256];

			rc = assay_avro_check_at(f->writer, r->p, r->len, &r->pos, depth + 1,
			                         &r->empty_items, f->name, why, sizeof(why));
			if (rc != 0)
				return assay_errf(rc, r->errstr, r->errstr_size, "decode: %s: %s",
				                  r->type, why);
			continue;
		}
		rc = exec(r, f->plan, dst + f->reader->offset,
		          f->reader->optional ? (bool *)(dst + f->reader->present_offset) : NULL,
		          depth + 1);
		if (rc != 0)
			return rc;
	}
	r->field = outer;
	return 0;
}

static int exec(struct assay_ct_reader *r, const struct assay_plan *p, unsigned char *dst,
                bool *present, int depth)
{
	int64_t v;
	int rc;

	if (depth > ASSAY_AVRO_MAX_DEPTH)
		return assay_ct_reject(r, "nesting depth over %d", ASSAY_AVRO_MAX_DEPTH);
	if (present != NULL && p->op != PLAN_UNION)
		*present = p->op != PLAN_NULL;
	switch (p->op) {
	case PLAN_NULL:
		return 0;
	case PLAN_BOOL:
		return assay_ct_read_bool(r, (bool *)dst);
	case PLAN_INT:
	case PLAN_INT_LONG:
	case PLAN_INT_FLOAT:
	case PLAN_INT_DOUBLE:
		rc = assay_ct_read_varint_fast(r, 5, 32, "int", &v);
		if (rc != 0)
			return rc;
		if (p->op == PLAN_INT) {
			int32_t i = (int32_t)v;

			memcpy(dst, &i, sizeof(i));
		} else if (p->op == PLAN_INT_LONG) {
			memcpy(dst, &v, sizeof(v));
		} else if (p->op == PLAN_INT_FLOAT) {
			float f = (float)v;

			memcpy(dst, &f, sizeof(f));
		} else {
			double d = (double)v;

			memcpy(dst, &d, sizeof(d));
		}
		return 0;
	case PLAN_LONG:
	case PLAN_LONG_FLOAT:
	case PLAN_LONG_DOUBLE:
		rc = assay_ct_read_long(r, &v);
		if (rc != 0)
			return rc;
		if (p->op == PLAN_LONG) {
			memcpy(dst, &v, sizeof(v));
		} else if (p->op == PLAN_LONG_FLOAT) {
			float f = (float)v;

			memcpy(dst, &f, sizeof(f));
		} else {
			double d = (double)v;

			memcpy(dst, &d, sizeof(d));
		}
		return 0;
	case PLAN_FLOAT:
	case PLAN_FLOAT_DOUBLE: {
		float f;

		if (r->len - r->pos < 4)
			return assay_ct_reject(r, "truncated float: needs 4 bytes, %zu left",
			                       r->len - r->pos);
		memcpy(&f, r->p + r->pos, 4);
		r->pos += 4;
		if (p->op == PLAN_FLOAT) {
			memcpy(dst, &f, sizeof(f));
		} else {
			double d = f;

			memcpy(dst, &d, sizeof(d));
		}
		return 0;
	}
	case PLAN_DOUBLE:
		if (r->len - r->pos < 8)
			return assay_ct_reject(r, "truncated double: needs 8 bytes, %zu left",
			                       r->len - r->pos);
		memcpy(dst, r->p + r->pos, 8);
		r->pos += 8;
		return 0;
	case PLAN_STRING:
	case PLAN_BYTES:
	case PLAN_STRING_BYTES: {
		const uint8_t *s;
		size_t n;
		bool utf8 = p->op == PLAN_STRING_BYTES || avro_typeof(p->writer) == AVRO_STRING;

		rc = assay_ct_read_blob(r, utf8, &s, &n);
		if (rc != 0)
			return rc;
		if (p->op == PLAN_STRING) {
			struct assay_str str = {(const char *)s, n};

			memcpy(dst, &str, sizeof(str));
		} else {
			struct assay_bytes b = {s, n};

			memcpy(dst, &b, sizeof(b));
		}
		return 0;
	}
	case PLAN_ENUM: {
		size_t start = r->pos;
		int32_t idx, w;

		rc = assay_ct_read_enum(r, p->nenum, avro_schema_name(p->writer), &w);
		if (rc != 0)
			return rc;
		v = w;
		if (p->enum_map[v] < 0) {
			r->pos = start;
			return assay_ct_reject(
			        r, "enum symbol %s is not in the reader's %s, which has no default",
			        avro_schema_enum_get(p->writer, (int)v), p->reader->name);
		}
		idx = p->enum_map[v];
		memcpy(dst, &idx, sizeof(idx));
		return 0;
	}
	case PLAN_RECORD:
		return exec_record(r, p, dst, depth);
	case PLAN_ARRAY:
	case PLAN_MAP:
		return exec_blocks(r, p, dst, depth);
	case PLAN_UNION: {
		rc = assay_ct_read_branch(r, p->nbranches, &v);
		if (rc != 0)
			return rc;
		if (p->branches[v] == NULL) { /* null into an optional field */
			*present = false;
			return 0;
		}
		return exec(r, p->branches[v], dst, present, depth + 1);
	}
	case PLAN_FAIL:
		return assay_ct_reject(r, "%s", p->why);
	}
	return assay_ct_reject(r, "unknown plan op %d", (int)p->op);
}

int assay_contract_decode(struct assay_contracts *cx, const struct assay_ct_type *type,
                          const void *frame, size_t len, struct assay_arena *arena, void *out,
                          char *errstr, size_t errstr_size)
{
	const unsigned char *f = frame;
	const struct plan_entry *e = NULL;
	struct assay_ct_reader r;
	char why[256];
	size_t limit;
	int32_t id, own;
	int rc;

	memset(out, 0, type->size);
	cx->refused_utf8 = false;
	rc = assay_codec_frame_id(frame, len, cx->max_message_bytes, &id, errstr, errstr_size);
	if (rc != 0)
		return rc;
	r = (struct assay_ct_reader){
	        .p = f + ASSAY_CODEC_HEADER_SIZE,
	        .len = len - ASSAY_CODEC_HEADER_SIZE,
	        .arena = arena,
	        .type = type->name,
	        .errstr = errstr,
	        .errstr_size = errstr_size,
	};
	if (cx->generated && type->read != NULL &&
	    assay_contract_own_id(cx, type, &own, &limit, why, sizeof(why)) == 0 && own == id) {
		rc = type->read(&r, out); /* the reader's own schema: generated code */
	} else {
		rc = plan_for(cx, type, id, &e, errstr, errstr_size);
		if (rc != 0)
			return rc;
		if (e->plan == NULL)
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "decode: %s",
			                  e->why);
		rc = exec(&r, e->plan, out, NULL, 0);
	}
	if (rc != 0) {
		cx->refused_utf8 = r.refused_utf8;
		return rc;
	}
	r.field = NULL;
	if (r.pos != r.len)
		return assay_ct_reject(&r, "trailing bytes: %zu after the value", r.len - r.pos);
	return 0;
}

bool assay_contract_refused_utf8(const struct assay_contracts *cx)
{
	return cx->refused_utf8;
}

int assay_contract_enum_index(const struct assay_ct_type *type, const char *symbol, size_t len)
{
	for (int i = 0; i < type->nsymbols; i++)
		if (strncmp(type->symbols[i], symbol, len) == 0 && type->symbols[i][len] == '\0')
			return i;
	return -1;
}

int assay_contract_own_id(struct assay_contracts *cx, const struct assay_ct_type *type, int32_t *id,
                          size_t *max_message_bytes, char *errstr, size_t errstr_size)
{
	const struct assay_schema *s;
	int rc;

	*max_message_bytes = cx->max_message_bytes;
	for (size_t i = 0; i < cx->nids; i++) {
		if (cx->ids[i].type == type) {
			*id = cx->ids[i].id;
			return 0;
		}
	}
	rc = assay_codec_schema_by_name(cx->codec, type->name, &s, errstr, errstr_size);
	if (rc != 0)
		return rc;
	if (assay_vec_grow(&cx->ids, &cx->ids_cap, cx->nids + 1, sizeof(*cx->ids)) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "encode: out of memory");
	cx->ids[cx->nids].type = type;
	cx->ids[cx->nids].id = s->id;
	cx->nids++;
	*id = s->id;
	return 0;
}

int assay_contract_frame_type(struct assay_contracts *cx, const void *frame, size_t len,
                              const char **full_name, char *errstr, size_t errstr_size)
{
	const struct assay_schema *s;
	int32_t id;
	int err;

	err = assay_codec_frame_id(frame, frame == NULL ? 0 : len, 0, &id, errstr, errstr_size);
	if (err)
		return err;
	err = assay_codec_schema_by_id(cx->codec, id, &s, errstr, errstr_size);
	if (err)
		return err;
	*full_name = s->full_name;
	return 0;
}
