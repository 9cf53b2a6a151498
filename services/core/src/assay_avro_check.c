/*
 * Avro body validation: a schema-driven walk over the binary encoding that never allocates
 * and never reads past the end, refusing every input that avro-c 1.11.1 would mishandle
 * (huge or negative lengths, truncation, runaway nesting) or that our services must not see
 * (invalid UTF-8, NUL in strings, out-of-range indexes, trailing bytes).
 */
#include "assay_avro_check.h"
#include "assay_utf8.h"
#include "assay_err.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct check {
	const uint8_t *p;
	size_t len;
	size_t pos;
	size_t empty_items;
	const char *field; /* innermost record field, for messages; NULL at the top */
	char *errstr;
	size_t errstr_size;
};

static int reject(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int reject(struct check *c, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->field != NULL)
		return assay_errf(ASSAY_ERR_REJECT, c->errstr, c->errstr_size,
		                  "%s at byte %zu (field %s)", what, c->pos, c->field);
	return assay_errf(ASSAY_ERR_REJECT, c->errstr, c->errstr_size, "%s at byte %zu", what,
	                  c->pos);
}

static size_t left(const struct check *c)
{
	return c->len - c->pos;
}

/* A zigzag varint of at most max_bytes bytes whose value fits in bits bits. */
static int read_varint(struct check *c, unsigned max_bytes, unsigned bits, const char *what,
                       int64_t *out)
{
	uint64_t raw = 0;
	size_t start = c->pos;

	for (unsigned i = 0;; i++) {
		uint8_t b;

		if (i == max_bytes) {
			c->pos = start;
			return reject(c, "varint too long: %s over %u bytes", what, max_bytes);
		}
		if (c->pos == c->len) {
			c->pos = start;
			return reject(c, "truncated %s: varint runs past the end", what);
		}
		b = c->p[c->pos++];
		raw |= (uint64_t)(b & 0x7f) << (7 * i);
		if (i == max_bytes - 1 && (b & 0x7f) >> (bits - 7 * i) != 0) {
			c->pos = start;
			if (bits == 64)
				return reject(c, "varint overflow: %s exceeds 64 bits", what);
			return reject(c, "int out of range: %s exceeds 32 bits", what);
		}
		if ((b & 0x80) == 0)
			break;
	}
	*out = (int64_t)((raw >> 1) ^ (~(raw & 1) + 1));
	return 0;
}

static int read_long(struct check *c, const char *what, int64_t *out)
{
	return read_varint(c, 10, 64, what, out);
}

static int read_int(struct check *c, const char *what, int64_t *out)
{
	return read_varint(c, 5, 32, what, out);
}

/* string and bytes: a long length, then that many bytes */
static int check_blob(struct check *c, bool utf8)
{
	const char *what = utf8 ? "string" : "bytes";
	int64_t n;
	int rc = read_long(c, what, &n);

	if (rc != 0)
		return rc;
	if (n < 0)
		return reject(c, "negative length: %s of %lld bytes", what, (long long)n);
	if ((uint64_t)n > left(c))
		return reject(c, "truncated %s: needs %lld bytes, %zu left", what, (long long)n,
		              left(c));
	if (utf8) {
		size_t bad = assay_utf8_scan((const char *)c->p + c->pos, (size_t)n);

		if (bad != (size_t)n) {
			c->pos += bad;
			if (c->p[c->pos] == 0)
				return reject(c, "string contains a nul byte");
			return reject(c, "invalid utf-8 in string");
		}
	}
	c->pos += (size_t)n;
	return 0;
}

static avro_schema_t resolve(avro_schema_t schema)
{
	while (is_avro_link(schema))
		schema = avro_schema_link_target(schema);
	return schema;
}

static uint64_t min_size(avro_schema_t schema, int depth);

uint64_t assay_avro_min_size(avro_schema_t schema)
{
	return min_size(schema, 0);
}

/* The fewest bytes a value of schema can take (0 for null, an empty record, fixed(0)). */
static uint64_t min_size(avro_schema_t schema, int depth)
{
	uint64_t sum = 0;

	schema = resolve(schema);
	if (depth > ASSAY_AVRO_MAX_DEPTH)
		return 1;
	switch (avro_typeof(schema)) {
	case AVRO_NULL:
		return 0;
	case AVRO_FLOAT:
		return 4;
	case AVRO_DOUBLE:
		return 8;
	case AVRO_FIXED:
		return (uint64_t)avro_schema_fixed_size(schema);
	case AVRO_RECORD:
		for (size_t i = 0; i < avro_schema_record_size(schema); i++)
			sum += min_size(avro_schema_record_field_get_by_index(schema, (int)i),
			                depth + 1);
		return sum;
	default:
		return 1; /* one byte at least: boolean, varints, lengths, counts, indexes */
	}
}

static int check_value(struct check *c, avro_schema_t schema, int depth);

/* array and map: blocks of (count, [byte size if count < 0], items) ending with count 0 */
static int check_blocks(struct check *c, avro_schema_t item, bool map, int depth)
{
	const char *what = map ? "map" : "array";
	uint64_t min = min_size(item, depth) + (map ? 1 : 0);

	for (;;) {
		int64_t count, size = -1;
		size_t block_start;
		int rc = read_long(c, map ? "map block count" : "array block count", &count);

		if (rc != 0)
			return rc;
		if (count == 0)
			return 0;
		if (count < 0) {
			if (count == INT64_MIN)
				return reject(c, "%s block count overflow", what);
			count = -count;
			rc = read_long(c, map ? "map block size" : "array block size", &size);
			if (rc != 0)
				return rc;
			if (size < 0)
				return reject(c, "negative block size: %s block of %lld bytes",
				              what, (long long)size);
			if ((uint64_t)size > left(c))
				return reject(c, "truncated %s block: needs %lld bytes, %zu left",
				              what, (long long)size, left(c));
		}
		if (min > 0 && (uint64_t)count > left(c) / min)
			return reject(c,
			              "truncated %s: block of %lld items needs at least %llu "
			              "bytes, %zu left",
			              what, (long long)count,
			              (unsigned long long)((uint64_t)count * min), left(c));
		if (min == 0) {
			if ((uint64_t)count > ASSAY_AVRO_MAX_EMPTY_ITEMS - c->empty_items)
				return reject(c, "too many zero-size items: %s block of %lld", what,
				              (long long)count);
			c->empty_items += (size_t)count;
		}
		block_start = c->pos;
		for (int64_t i = 0; i < count; i++) {
			if (map) {
				rc = check_blob(c, true);
				if (rc != 0)
					return rc;
			}
			rc = check_value(c, item, depth + 1);
			if (rc != 0)
				return rc;
		}
		if (size >= 0 && c->pos - block_start != (size_t)size) {
			size_t used = c->pos - block_start;

			c->pos = block_start;
			return reject(c,
			              "block size mismatch: %s block declares %lld bytes, items "
			              "take %zu",
			              what, (long long)size, used);
		}
	}
}

static int check_value(struct check *c, avro_schema_t schema, int depth)
{
	int64_t v;
	int rc;

	if (depth > ASSAY_AVRO_MAX_DEPTH)
		return reject(c, "nesting depth over %d", ASSAY_AVRO_MAX_DEPTH);
	schema = resolve(schema);
	switch (avro_typeof(schema)) {
	case AVRO_NULL:
		return 0;
	case AVRO_BOOLEAN:
		if (left(c) < 1)
			return reject(c, "truncated boolean");
		if (c->p[c->pos] > 1)
			return reject(c, "invalid boolean byte 0x%02x", c->p[c->pos]);
		c->pos++;
		return 0;
	case AVRO_INT32:
		return read_int(c, "int", &v);
	case AVRO_INT64:
		return read_long(c, "long", &v);
	case AVRO_FLOAT:
		if (left(c) < 4)
			return reject(c, "truncated float: needs 4 bytes, %zu left", left(c));
		c->pos += 4;
		return 0;
	case AVRO_DOUBLE:
		if (left(c) < 8)
			return reject(c, "truncated double: needs 8 bytes, %zu left", left(c));
		c->pos += 8;
		return 0;
	case AVRO_STRING:
		return check_blob(c, true);
	case AVRO_BYTES:
		return check_blob(c, false);
	case AVRO_FIXED: {
		int64_t size = avro_schema_fixed_size(schema);

		if (size < 0 || (uint64_t)size > left(c))
			return reject(c, "truncated fixed: needs %lld bytes, %zu left",
			              (long long)size, left(c));
		c->pos += (size_t)size;
		return 0;
	}
	case AVRO_ENUM: {
		int symbols = avro_schema_enum_number_of_symbols(schema);

		size_t start = c->pos;

		rc = read_int(c, "enum index", &v);
		if (rc != 0)
			return rc;
		if (v < 0 || v >= symbols) {
			c->pos = start;
			return reject(c, "enum index %lld out of range: %s has %d symbols",
			              (long long)v, avro_schema_name(schema), symbols);
		}
		return 0;
	}
	case AVRO_UNION: {
		size_t branches = avro_schema_union_size(schema);

		size_t start = c->pos;

		rc = read_int(c, "union branch index", &v);
		if (rc != 0)
			return rc;
		if (v < 0 || (uint64_t)v >= branches) {
			c->pos = start;
			return reject(c, "union branch index %lld out of range: %zu branches",
			              (long long)v, branches);
		}
		return check_value(c, avro_schema_union_branch(schema, (int)v), depth + 1);
	}
	case AVRO_RECORD: {
		const char *outer = c->field;
		size_t fields = avro_schema_record_size(schema);

		for (size_t i = 0; i < fields; i++) {
			c->field = avro_schema_record_field_name(schema, (int)i);
			rc = check_value(c, avro_schema_record_field_get_by_index(schema, (int)i),
			                 depth + 1);
			if (rc != 0)
				return rc;
		}
		c->field = outer;
		return 0;
	}
	case AVRO_ARRAY:
		return check_blocks(c, avro_schema_array_items(schema), false, depth);
	case AVRO_MAP:
		return check_blocks(c, avro_schema_map_values(schema), true, depth);
	default:
		return reject(c, "unsupported avro type %d", (int)avro_typeof(schema));
	}
}

int assay_avro_check_at(avro_schema_t schema, const void *body, size_t len, size_t *pos, int depth,
                        size_t *empty_items, const char *field, char *errstr, size_t errstr_size)
{
	struct check c = {
	        .p = body,
	        .len = len,
	        .pos = *pos,
	        .empty_items = *empty_items,
	        .field = field,
	        .errstr = errstr,
	        .errstr_size = errstr_size,
	};
	int rc = check_value(&c, schema, depth);

	*pos = c.pos;
	*empty_items = c.empty_items;
	return rc;
}

int assay_avro_check(avro_schema_t schema, const void *body, size_t len, char *errstr,
                     size_t errstr_size)
{
	struct check c = {
	        .p = body,
	        .len = len,
	        .errstr = errstr,
	        .errstr_size = errstr_size,
	};
	int rc;

	if (schema == NULL)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "avro check: no schema");
	rc = check_value(&c, schema, 0);
	if (rc != 0)
		return rc;
	if (c.pos != c.len)
		return reject(&c, "trailing bytes: %zu after the value", c.len - c.pos);
	return 0;
}
