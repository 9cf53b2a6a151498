/*
 * The out-of-line reading and writing steps of the contracts runtime (assay_contract_io.h):
 * varints of more than one byte, strings with their UTF-8 check, block headers with the bounds
 * assay_avro_check applies, arena growth for arrays and maps, and buffer growth for writers.
 * Messages are assay_avro_check's, prefixed with the reader type.
 */
#include "assay_contract_io.h"
#include "assay_utf8.h"

#include "assay_avro_check.h"
#include "assay_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int assay_ct_reject(struct assay_ct_reader *r, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (r->field != NULL)
		return assay_errf(ASSAY_ERR_REJECT, r->errstr, r->errstr_size,
		                  "decode: %s: %s at byte %zu (field %s)", r->type, what, r->pos,
		                  r->field);
	return assay_errf(ASSAY_ERR_REJECT, r->errstr, r->errstr_size, "decode: %s: %s at byte %zu",
	                  r->type, what, r->pos);
}

int assay_ct_oom(struct assay_ct_reader *r)
{
	return assay_errf(ASSAY_ERR_FATAL, r->errstr, r->errstr_size, "decode: out of memory");
}

int assay_ct_read_varint(struct assay_ct_reader *r, unsigned max_bytes, unsigned bits,
                         const char *what, int64_t *out)
{
	uint64_t raw = 0;
	size_t pos = r->pos;

	for (unsigned i = 0;; i++) {
		uint8_t b;

		if (i == max_bytes)
			return assay_ct_reject(r, "varint too long: %s over %u bytes", what,
			                       max_bytes);
		if (pos == r->len)
			return assay_ct_reject(r, "truncated %s: varint runs past the end", what);
		b = r->p[pos++];
		raw |= (uint64_t)(b & 0x7f) << (7 * i);
		if (i == max_bytes - 1 && (b & 0x7f) >> (bits - 7 * i) != 0) {
			if (bits == 64)
				return assay_ct_reject(r, "varint overflow: %s exceeds 64 bits",
				                       what);
			return assay_ct_reject(r, "int out of range: %s exceeds 32 bits", what);
		}
		if ((b & 0x80) == 0)
			break;
	}
	r->pos = pos;
	*out = (int64_t)((raw >> 1) ^ (~(raw & 1) + 1));
	return 0;
}

int assay_ct_read_bool(struct assay_ct_reader *r, bool *out)
{
	if (r->pos == r->len)
		return assay_ct_reject(r, "truncated boolean");
	if (r->p[r->pos] > 1)
		return assay_ct_reject(r, "invalid boolean byte 0x%02x", r->p[r->pos]);
	*out = r->p[r->pos++] == 1;
	return 0;
}

int assay_ct_read_float(struct assay_ct_reader *r, float *out)
{
	if (r->len - r->pos < 4)
		return assay_ct_reject(r, "truncated float: needs 4 bytes, %zu left",
		                       r->len - r->pos);
	memcpy(out, r->p + r->pos, 4);
	r->pos += 4;
	return 0;
}

int assay_ct_read_double(struct assay_ct_reader *r, double *out)
{
	if (r->len - r->pos < 8)
		return assay_ct_reject(r, "truncated double: needs 8 bytes, %zu left",
		                       r->len - r->pos);
	memcpy(out, r->p + r->pos, 8);
	r->pos += 8;
	return 0;
}

int assay_ct_check_utf8(struct assay_ct_reader *r, size_t n)
{
	size_t bad = assay_utf8_scan((const char *)r->p + r->pos, n);

	if (bad == n)
		return 0;
	r->pos += bad;
	r->refused_utf8 = true;
	if (r->p[r->pos] == 0)
		return assay_ct_reject(r, "string contains a nul byte");
	return assay_ct_reject(r, "invalid utf-8 in string");
}

int assay_ct_read_blob(struct assay_ct_reader *r, bool utf8, const uint8_t **s, size_t *n)
{
	const char *what = utf8 ? "string" : "bytes";
	int64_t len;
	int rc = assay_ct_read_varint_fast(r, 10, 64, what, &len);

	if (rc != 0)
		return rc;
	if (len < 0)
		return assay_ct_reject(r, "negative length: %s of %lld bytes", what,
		                       (long long)len);
	if ((uint64_t)len > r->len - r->pos)
		return assay_ct_reject(r, "truncated %s: needs %lld bytes, %zu left", what,
		                       (long long)len, r->len - r->pos);
	if (utf8 && (rc = assay_ct_check_utf8(r, (size_t)len)) != 0)
		return rc;
	*s = r->p + r->pos;
	*n = (size_t)len;
	r->pos += (size_t)len;
	return 0;
}

int assay_ct_read_enum(struct assay_ct_reader *r, int nsymbols, const char *name, int32_t *out)
{
	size_t start = r->pos;
	int64_t v;
	int rc = assay_ct_read_varint_fast(r, 5, 32, "enum index", &v);

	if (rc != 0)
		return rc;
	if (v < 0 || v >= nsymbols) {
		r->pos = start;
		return assay_ct_reject(r, "enum index %lld out of range: %s has %d symbols",
		                       (long long)v, name, nsymbols);
	}
	*out = (int32_t)v;
	return 0;
}

int assay_ct_read_branch(struct assay_ct_reader *r, size_t nbranches, int64_t *out)
{
	size_t start = r->pos;
	int rc = assay_ct_read_varint_fast(r, 5, 32, "union branch index", out);

	if (rc != 0)
		return rc;
	if (*out < 0 || (uint64_t)*out >= nbranches) {
		r->pos = start;
		return assay_ct_reject(r, "union branch index %lld out of range: %zu branches",
		                       (long long)*out, nbranches);
	}
	return 0;
}

int assay_ct_read_block(struct assay_ct_reader *r, bool map, uint64_t item_min_size, int64_t *count,
                        int64_t *size)
{
	const char *what = map ? "map" : "array";
	int rc = assay_ct_read_varint_fast(r, 10, 64, map ? "map block count" : "array block count",
	                                   count);

	*size = -1;
	if (rc != 0 || *count == 0)
		return rc;
	if (*count < 0) {
		if (*count == INT64_MIN)
			return assay_ct_reject(r, "%s block count overflow", what);
		*count = -*count;
		rc = assay_ct_read_varint_fast(r, 10, 64,
		                               map ? "map block size" : "array block size", size);
		if (rc != 0)
			return rc;
		if (*size < 0)
			return assay_ct_reject(r, "negative block size: %s block of %lld bytes",
			                       what, (long long)*size);
		if ((uint64_t)*size > r->len - r->pos)
			return assay_ct_reject(r, "truncated %s block: needs %lld bytes, %zu left",
			                       what, (long long)*size, r->len - r->pos);
	}
	if (item_min_size > 0 && (uint64_t)*count > (r->len - r->pos) / item_min_size)
		return assay_ct_reject(
		        r,
		        "truncated %s: block of %lld items needs at least %llu bytes, "
		        "%zu left",
		        what, (long long)*count,
		        (unsigned long long)((uint64_t)*count * item_min_size), r->len - r->pos);
	if (item_min_size == 0) {
		if ((uint64_t)*count > ASSAY_AVRO_MAX_EMPTY_ITEMS - r->empty_items)
			return assay_ct_reject(r, "too many zero-size items: %s block of %lld",
			                       what, (long long)*count);
		r->empty_items += (size_t)*count;
	}
	return 0;
}

int assay_ct_block_end(struct assay_ct_reader *r, bool map, size_t start, int64_t size)
{
	size_t used = r->pos - start;

	if (size < 0 || used == (size_t)size)
		return 0;
	r->pos = start;
	return assay_ct_reject(r,
	                       "block size mismatch: %s block declares %lld bytes, items take %zu",
	                       map ? "map" : "array", (long long)size, used);
}

void *assay_ct_grow(struct assay_ct_reader *r, const void *items, size_t n, size_t more,
                    size_t isize)
{
	unsigned char *p;

	if (isize == 0)
		isize = 1;
	p = assay_arena_alloc(r->arena, (n + more) * isize);
	if (p == NULL)
		return NULL;
	if (n > 0)
		memcpy(p, items, n * isize);
	memset(p + n * isize, 0, more * isize);
	return p;
}

int assay_ct_reserve_slow(struct assay_ct_writer *w, size_t n)
{
	struct assay_contract_buf *b = w->buf;
	size_t cap = b->cap ? b->cap : 256;
	unsigned char *p;

	if (n > SIZE_MAX / 4 - b->len)
		return assay_errf(ASSAY_ERR_FATAL, w->errstr, w->errstr_size,
		                  "encode: message too large");
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return assay_errf(ASSAY_ERR_FATAL, w->errstr, w->errstr_size,
		                  "encode: out of memory");
	b->data = p;
	b->cap = cap;
	return 0;
}

int assay_ct_write_blob(struct assay_ct_writer *w, const void *p, size_t n, const char *field)
{
	int rc;

	if (p == NULL && n > 0)
		return assay_errf(ASSAY_ERR_FATAL, w->errstr, w->errstr_size,
		                  "encode: field %s: NULL view of %zu bytes", field, n);
	rc = assay_ct_reserve(w, 10 + n);
	if (rc != 0)
		return rc;
	assay_ct_put_long(w, (int64_t)n);
	if (n > 0)
		memcpy(w->buf->data + w->buf->len, p, n);
	w->buf->len += n;
	return 0;
}

int assay_ct_write_enum(struct assay_ct_writer *w, int32_t v, int nsymbols, const char *name,
                        const char *field)
{
	if (v < 0 || v >= nsymbols)
		return assay_errf(ASSAY_ERR_FATAL, w->errstr, w->errstr_size,
		                  "encode: field %s: %d is not a symbol of %s", field, (int)v,
		                  name);
	return assay_ct_write_long(w, v);
}

int assay_ct_null_items(struct assay_ct_writer *w, const char *field, size_t count)
{
	return assay_errf(ASSAY_ERR_FATAL, w->errstr, w->errstr_size,
	                  "encode: field %s: NULL items for %zu", field, count);
}
