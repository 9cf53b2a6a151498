/*
 * The reading and writing steps of the contracts runtime, shared by the plan interpreter
 * (assay_contract.c) and the straight-line code avrogen generates for a frame written with the
 * reader's own schema. Not for application code: use the generated _decode and _encode.
 *
 * A reader walks an Avro body: every step checks bounds and refuses, with ASSAY_ERR_REJECT and
 * assay_avro_check's message (the byte offset and the innermost field in errstr), whatever
 * assay_avro_check refuses. A writer appends to a struct assay_contract_buf, growing it.
 * Steps return 0 or a negative ASSAY_ERR_*. The common cases (one-byte varints, room in the
 * buffer) are inline; the rest is in assay_contract_io.c.
 */
#ifndef ASSAY_CONTRACT_IO_H
#define ASSAY_CONTRACT_IO_H

#include "assay_contract.h"

#include <string.h>

struct assay_ct_reader {
	const uint8_t *p;
	size_t len, pos;
	size_t empty_items; /* zero-size items so far (ASSAY_AVRO_MAX_EMPTY_ITEMS) */
	struct assay_arena *arena;
	const char *field; /* innermost field, for messages */
	const char *type;  /* the reader type's full name */
	bool refused_utf8; /* the refusal was a string's UTF-8 check (assay_ct_check_utf8) */
	char *errstr;
	size_t errstr_size;
};

struct assay_ct_writer {
	struct assay_contract_buf *buf;
	char *errstr;
	size_t errstr_size;
};

/* Refuses with "decode: <type>: <what> at byte <pos> (field <field>)". */
int assay_ct_reject(struct assay_ct_reader *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
int assay_ct_oom(struct assay_ct_reader *r);

/* A zigzag varint of at most max_bytes bytes fitting bits bits (the general case). */
int assay_ct_read_varint(struct assay_ct_reader *r, unsigned max_bytes, unsigned bits,
                         const char *what, int64_t *out);

static inline int assay_ct_read_varint_fast(struct assay_ct_reader *r, unsigned max_bytes,
                                            unsigned bits, const char *what, int64_t *out)
{
	if (r->pos < r->len && r->p[r->pos] < 0x80) {
		uint64_t raw = r->p[r->pos++];

		*out = (int64_t)((raw >> 1) ^ (~(raw & 1) + 1));
		return 0;
	}
	return assay_ct_read_varint(r, max_bytes, bits, what, out);
}

static inline int assay_ct_read_long(struct assay_ct_reader *r, int64_t *out)
{
	return assay_ct_read_varint_fast(r, 10, 64, "long", out);
}

static inline int assay_ct_read_int(struct assay_ct_reader *r, int32_t *out)
{
	int64_t v;
	int rc = assay_ct_read_varint_fast(r, 5, 32, "int", &v);

	*out = (int32_t)v;
	return rc;
}

int assay_ct_read_bool(struct assay_ct_reader *r, bool *out);
int assay_ct_read_float(struct assay_ct_reader *r, float *out);
int assay_ct_read_double(struct assay_ct_reader *r, double *out);

/* A string (UTF-8 without NUL checked when utf8) or bytes value as a view. */
int assay_ct_read_blob(struct assay_ct_reader *r, bool utf8, const uint8_t **s, size_t *n);

/* The UTF-8 check of strings (assay_utf8_scan), refusing with its message. */
int assay_ct_check_utf8(struct assay_ct_reader *r, size_t n);

static inline int assay_ct_read_str(struct assay_ct_reader *r, struct assay_str *out)
{
	const uint8_t *p = r->p, *s;
	size_t pos = r->pos, left = r->len - pos, n;
	int rc;

	/* a length of one or two bytes (under 8 KiB), non-negative, that fits: the common case */
	if (left >= 1 && p[pos] < 0x80) {
		n = p[pos];
		pos += 1;
	} else if (left >= 2 && p[pos + 1] < 0x80) {
		n = (size_t)(p[pos] & 0x7f) | (size_t)p[pos + 1] << 7;
		pos += 2;
	} else {
		n = 1; /* the general case below */
	}
	if ((n & 1) == 0 && (n >> 1) <= r->len - pos) {
		n >>= 1;
		r->pos = pos;
		if (n > 0 && (rc = assay_ct_check_utf8(r, n)) != 0)
			return rc;
		out->s = (const char *)p + pos;
		out->len = n;
		r->pos = pos + n;
		return 0;
	}
	rc = assay_ct_read_blob(r, true, &s, &out->len);
	out->s = (const char *)s;
	return rc;
}

static inline int assay_ct_read_bytes(struct assay_ct_reader *r, struct assay_bytes *out)
{
	return assay_ct_read_blob(r, false, &out->p, &out->len);
}

/* An enum index in [0, nsymbols) of the enum named name. */
int assay_ct_read_enum(struct assay_ct_reader *r, int nsymbols, const char *name, int32_t *out);

/* A union branch index in [0, nbranches). */
int assay_ct_read_branch(struct assay_ct_reader *r, size_t nbranches, int64_t *out);

/*
 * An array or map block header: *count items follow (0: the end), *size their byte size or -1.
 * Refuses counts the rest of the body cannot hold (item_min_size bytes each, the map key
 * included) and too many zero-size items.
 */
int assay_ct_read_block(struct assay_ct_reader *r, bool map, uint64_t item_min_size, int64_t *count,
                        int64_t *size);

/* After a block's items read from start: refuses a declared size they do not fill. */
int assay_ct_block_end(struct assay_ct_reader *r, bool map, size_t start, int64_t size);

/* items (n of isize bytes) grown to n + more from the arena, the new ones zeroed; NULL when
 * memory runs out. */
void *assay_ct_grow(struct assay_ct_reader *r, const void *items, size_t n, size_t more,
                    size_t isize);

/* Frees room for n more bytes (the slow path of assay_ct_reserve). */
int assay_ct_reserve_slow(struct assay_ct_writer *w, size_t n);

static inline int assay_ct_reserve(struct assay_ct_writer *w, size_t n)
{
	if (w->buf->cap - w->buf->len >= n)
		return 0;
	return assay_ct_reserve_slow(w, n);
}

/* A zigzag varint; room for 10 bytes reserved. */
static inline void assay_ct_put_long(struct assay_ct_writer *w, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	unsigned char *p = w->buf->data + w->buf->len;

	while (z >= 0x80) {
		*p++ = (unsigned char)(z | 0x80);
		z >>= 7;
	}
	*p++ = (unsigned char)z;
	w->buf->len = (size_t)(p - w->buf->data);
}

static inline int assay_ct_write_long(struct assay_ct_writer *w, int64_t v)
{
	int rc = assay_ct_reserve(w, 10);

	if (rc == 0)
		assay_ct_put_long(w, v);
	return rc;
}

static inline int assay_ct_write_bool(struct assay_ct_writer *w, bool v)
{
	int rc = assay_ct_reserve(w, 1);

	if (rc == 0)
		w->buf->data[w->buf->len++] = v ? 1 : 0;
	return rc;
}

/* n raw bytes (a float's or double's little-endian bytes). */
static inline int assay_ct_write_raw(struct assay_ct_writer *w, const void *p, size_t n)
{
	int rc = assay_ct_reserve(w, n);

	if (rc == 0) {
		memcpy(w->buf->data + w->buf->len, p, n);
		w->buf->len += n;
	}
	return rc;
}

/* A string or bytes value: its length, then its bytes; ASSAY_ERR_FATAL for a NULL view with a
 * length (field names it). */
int assay_ct_write_blob(struct assay_ct_writer *w, const void *p, size_t n, const char *field);

static inline int assay_ct_write_str(struct assay_ct_writer *w, const struct assay_str *s,
                                     const char *field)
{
	struct assay_contract_buf *b = w->buf;

	/* under 64 bytes with room: a one-byte length and the bytes */
	if (s->len < 64 && s->s != NULL && b->cap - b->len > 64) {
		b->data[b->len++] = (unsigned char)(s->len << 1);
		memcpy(b->data + b->len, s->s, s->len);
		b->len += s->len;
		return 0;
	}
	return assay_ct_write_blob(w, s->s, s->len, field);
}

static inline int assay_ct_write_bytes(struct assay_ct_writer *w, const struct assay_bytes *b,
                                       const char *field)
{
	return assay_ct_write_blob(w, b->p, b->len, field);
}

/* An enum value; ASSAY_ERR_FATAL when v is not in [0, nsymbols). */
int assay_ct_write_enum(struct assay_ct_writer *w, int32_t v, int nsymbols, const char *name,
                        const char *field);

/* ASSAY_ERR_FATAL for an array or map of count items at NULL. */
int assay_ct_null_items(struct assay_ct_writer *w, const char *field, size_t count);

#endif
