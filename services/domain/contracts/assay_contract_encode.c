/*
 * The contracts encoder (assay_contract_encode in assay_contract.h): one pass over a generated
 * descriptor and the struct it describes, writing the Confluent frame and the Avro binary body
 * into a reusable buffer. It writes what avro-c's value writer writes: an array or map as one
 * block of all its items (no byte size) then 0, an empty one as 0; ["null", T] as branch 0 or
 * branch 1 and the value.
 */
#include "assay_contract.h"
#include "assay_contract_io.h"
#include "assay_contract_plan.h"

#include "assay_err.h"

#include <stdlib.h>
#include <string.h>

void assay_contract_buf_init(struct assay_contract_buf *buf)
{
	memset(buf, 0, sizeof(*buf));
}

void assay_contract_buf_release(struct assay_contract_buf *buf)
{
	free(buf->data);
	assay_contract_buf_init(buf);
}

static int write_value(struct assay_ct_writer *w, const struct assay_ct_type *t,
                       const unsigned char *src, const char *field);

static int write_record(struct assay_ct_writer *w, const struct assay_ct_type *t,
                        const unsigned char *src)
{
	int rc;

	for (size_t i = 0; i < t->nfields; i++) {
		const struct assay_ct_field *f = &t->fields[i];

		if (f->optional) {
			bool present;

			memcpy(&present, src + f->present_offset, sizeof(present));
			rc = assay_ct_write_long(w, present ? 1 : 0);
			if (rc != 0)
				return rc;
			if (!present)
				continue;
		}
		rc = write_value(w, f->type, src + f->offset, f->name);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int write_value(struct assay_ct_writer *w, const struct assay_ct_type *t,
                       const unsigned char *src, const char *field)
{
	int rc;

	switch (t->kind) {
	case ASSAY_CT_NULL:
		return 0;
	case ASSAY_CT_BOOLEAN: {
		bool v;

		memcpy(&v, src, sizeof(v));
		return assay_ct_write_bool(w, v);
	}
	case ASSAY_CT_INT: {
		int32_t v;

		memcpy(&v, src, sizeof(v));
		return assay_ct_write_long(w, v);
	}
	case ASSAY_CT_LONG: {
		int64_t v;

		memcpy(&v, src, sizeof(v));
		return assay_ct_write_long(w, v);
	}
	case ASSAY_CT_FLOAT:
	case ASSAY_CT_DOUBLE:
		return assay_ct_write_raw(w, src, t->size);
	case ASSAY_CT_STRING: {
		struct assay_str s;

		memcpy(&s, src, sizeof(s));
		return assay_ct_write_blob(w, s.s, s.len, field);
	}
	case ASSAY_CT_BYTES: {
		struct assay_bytes b;

		memcpy(&b, src, sizeof(b));
		return assay_ct_write_blob(w, b.p, b.len, field);
	}
	case ASSAY_CT_ENUM: {
		int32_t v;

		memcpy(&v, src, sizeof(v));
		if (v < 0 || v >= t->nsymbols)
			return assay_errf(ASSAY_ERR_FATAL, w->errstr, w->errstr_size,
			                  "encode: field %s: %d is not a symbol of %s", field,
			                  (int)v, t->name);
		return assay_ct_write_long(w, v);
	}
	case ASSAY_CT_RECORD:
		return write_record(w, t, src);
	case ASSAY_CT_ARRAY:
	case ASSAY_CT_MAP: {
		bool map = t->kind == ASSAY_CT_MAP;
		const struct assay_str *keys = NULL;
		const unsigned char *items;
		size_t count, isize = t->items->size;

		if (map) {
			memcpy(&keys, src, sizeof(keys));
			memcpy(&items, src + sizeof(void *), sizeof(items));
			memcpy(&count, src + 2 * sizeof(void *), sizeof(count));
		} else {
			memcpy(&items, src, sizeof(items));
			memcpy(&count, src + sizeof(void *), sizeof(count));
		}
		if (count > 0 && (items == NULL || (map && keys == NULL)))
			return assay_errf(ASSAY_ERR_FATAL, w->errstr, w->errstr_size,
			                  "encode: field %s: NULL %s of %zu items", field,
			                  map ? "map" : "array", count);
		if (count > 0) {
			rc = assay_ct_write_long(w, (int64_t)count);
			if (rc != 0)
				return rc;
		}
		for (size_t i = 0; i < count; i++) {
			if (map) {
				rc = assay_ct_write_blob(w, keys[i].s, keys[i].len, field);
				if (rc != 0)
					return rc;
			}
			rc = write_value(w, t->items, items + i * isize, field);
			if (rc != 0)
				return rc;
		}
		return assay_ct_write_long(w, 0);
	}
	}
	return assay_errf(ASSAY_ERR_FATAL, w->errstr, w->errstr_size, "encode: unknown kind %d",
	                  (int)t->kind);
}

int assay_contract_encode(struct assay_contracts *cx, const struct assay_ct_type *type,
                          const void *in, struct assay_contract_buf *buf, char *errstr,
                          size_t errstr_size)
{
	struct assay_ct_writer w = {.buf = buf, .errstr = errstr, .errstr_size = errstr_size};
	size_t limit;
	int32_t id;
	int rc;

	buf->len = 0;
	rc = assay_contract_own_id(cx, type, &id, &limit, errstr, errstr_size);
	if (rc != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "encode: %s is not a schema of the codec", type->name);
	rc = assay_ct_reserve(&w, ASSAY_CODEC_HEADER_SIZE);
	if (rc != 0)
		return rc;
	buf->data[0] = ASSAY_CODEC_MAGIC;
	buf->data[1] = (unsigned char)((uint32_t)id >> 24);
	buf->data[2] = (unsigned char)((uint32_t)id >> 16);
	buf->data[3] = (unsigned char)((uint32_t)id >> 8);
	buf->data[4] = (unsigned char)id;
	buf->len = ASSAY_CODEC_HEADER_SIZE;
	if (assay_contract_generated(cx) && type->write != NULL)
		rc = type->write(&w, in); /* generated straight-line code */
	else
		rc = write_record(&w, type, in);
	if (rc != 0) {
		buf->len = 0;
		return rc;
	}
	if (limit != 0 && buf->len > limit) {
		size_t n = buf->len;

		buf->len = 0;
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "encode: %s: message too large: %zu bytes, limit %zu", type->name,
		                  n, limit);
	}
	return 0;
}
