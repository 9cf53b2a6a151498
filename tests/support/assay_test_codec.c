/*
 * Avro test helpers: see assay_test_codec.h.
 */
#include "assay_test.h"
#include "assay_test_codec.h"

#include <stdio.h>
#include <stdlib.h>

#define FILL_MAX_DEPTH 6

static avro_schema_t resolve(avro_schema_t schema)
{
	while (is_avro_link(schema))
		schema = avro_schema_link_target(schema);
	return schema;
}

static void fill(avro_value_t *v, unsigned *n, int depth)
{
	avro_schema_t schema = resolve(avro_value_get_schema(v));
	avro_value_t child;
	char text[64];
	unsigned char bytes[64];

	switch (avro_value_get_type(v)) {
	case AVRO_NULL:
		assert_int_equal(avro_value_set_null(v), 0);
		break;
	case AVRO_BOOLEAN:
		assert_int_equal(avro_value_set_boolean(v, (*n)++ % 2 == 0), 0);
		break;
	case AVRO_INT32:
		assert_int_equal(avro_value_set_int(v, -1000 - (int32_t)(*n)++), 0);
		break;
	case AVRO_INT64:
		assert_int_equal(avro_value_set_long(v, ((int64_t)1 << 40) + (*n)++), 0);
		break;
	case AVRO_FLOAT:
		assert_int_equal(avro_value_set_float(v, 1.5f + (float)(*n)++), 0);
		break;
	case AVRO_DOUBLE:
		assert_int_equal(avro_value_set_double(v, -2.25 * (double)(*n)++), 0);
		break;
	case AVRO_STRING:
		snprintf(text, sizeof(text), "s%u-\xc3\xa9\xe2\x82\xac", (*n)++);
		assert_int_equal(avro_value_set_string(v, text), 0);
		break;
	case AVRO_BYTES:
		for (size_t i = 0; i < 5; i++)
			bytes[i] = (unsigned char)(*n + i * 61);
		(*n)++;
		assert_int_equal(avro_value_set_bytes(v, bytes, 5), 0);
		break;
	case AVRO_FIXED: {
		int64_t size = avro_schema_fixed_size(schema);
		unsigned char *buf = test_malloc(size > 0 ? (size_t)size : 1);

		for (int64_t i = 0; i < size; i++)
			buf[i] = (unsigned char)(*n + (unsigned)i);
		(*n)++;
		assert_int_equal(avro_value_set_fixed(v, buf, (size_t)size), 0);
		test_free(buf);
		break;
	}
	case AVRO_ENUM: {
		int symbols = avro_schema_enum_number_of_symbols(schema);

		assert_true(symbols > 0);
		assert_int_equal(
		        avro_value_set_enum(v, symbols > 1 ? 1 + (int)(*n)++ % (symbols - 1) : 0),
		        0);
		break;
	}
	case AVRO_RECORD: {
		size_t fields = 0;

		assert_int_equal(avro_value_get_size(v, &fields), 0);
		for (size_t i = 0; i < fields; i++) {
			assert_int_equal(avro_value_get_by_index(v, i, &child, NULL), 0);
			fill(&child, n, depth + 1);
		}
		break;
	}
	case AVRO_ARRAY:
		if (depth >= FILL_MAX_DEPTH)
			break;
		for (int i = 0; i < 2; i++) {
			assert_int_equal(avro_value_append(v, &child, NULL), 0);
			fill(&child, n, depth + 1);
		}
		break;
	case AVRO_MAP:
		if (depth >= FILL_MAX_DEPTH)
			break;
		for (int i = 0; i < 2; i++) {
			int is_new = 0;

			snprintf(text, sizeof(text), "k%u-\xc3\xb8", (*n)++);
			assert_int_equal(avro_value_add(v, text, &child, NULL, &is_new), 0);
			assert_true(is_new);
			fill(&child, n, depth + 1);
		}
		break;
	case AVRO_UNION: {
		size_t branches = avro_schema_union_size(schema);
		int pick = -1, null_branch = -1;

		for (size_t i = 0; i < branches; i++) {
			avro_type_t t =
			        avro_typeof(resolve(avro_schema_union_branch(schema, (int)i)));

			if (t == AVRO_NULL && null_branch < 0)
				null_branch = (int)i;
			else if (t != AVRO_NULL && pick < 0)
				pick = (int)i;
		}
		if (pick < 0 || (depth >= FILL_MAX_DEPTH && null_branch >= 0))
			pick = null_branch;
		assert_int_equal(avro_value_set_branch(v, pick, &child), 0);
		fill(&child, n, depth + 1);
		break;
	}
	default:
		fail_msg("fill: unexpected avro type %d", (int)avro_value_get_type(v));
	}
}

void assay_test_fill_value(avro_value_t *value, unsigned seed)
{
	unsigned n = seed;

	fill(value, &n, 0);
}

void assay_test_null_unset_unions(avro_value_t *value)
{
	avro_value_t child;
	avro_schema_t us;
	size_t n = 0;
	int disc = -1;

	switch (avro_value_get_type(value)) {
	case AVRO_RECORD:
	case AVRO_ARRAY:
	case AVRO_MAP:
		assert_int_equal(avro_value_get_size(value, &n), 0);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(avro_value_get_by_index(value, i, &child, NULL), 0);
			assay_test_null_unset_unions(&child);
		}
		break;
	case AVRO_UNION:
		assert_int_equal(avro_value_get_discriminant(value, &disc), 0);
		if (disc >= 0) {
			assert_int_equal(avro_value_get_current_branch(value, &child), 0);
			assay_test_null_unset_unions(&child);
			break;
		}
		us = resolve(avro_value_get_schema(value));
		for (size_t k = 0; k < avro_schema_union_size(us); k++)
			if (avro_typeof(avro_schema_union_branch(us, (int)k)) == AVRO_NULL) {
				assert_int_equal(avro_value_set_branch(value, (int)k, &child), 0);
				assert_int_equal(avro_value_set_null(&child), 0);
				break;
			}
		break;
	default:
		break;
	}
}

void assay_test_avroc_frame(int32_t id, avro_value_t *value, void **frame, size_t *len)
{
	size_t cap = 1 << 20;
	unsigned char *buf = malloc(cap);
	avro_writer_t w;
	int64_t n;

	assert_non_null(buf);
	w = avro_writer_memory((const char *)buf + 5, (int64_t)(cap - 5));
	assert_non_null(w);
	if (avro_value_write(w, value) != 0) {
		avro_writer_free(w);
		free(buf);
		fail_msg("avro_value_write: %s", avro_strerror());
	}
	n = avro_writer_tell(w);
	avro_writer_free(w);
	buf[0] = 0;
	buf[1] = (unsigned char)((uint32_t)id >> 24);
	buf[2] = (unsigned char)((uint32_t)id >> 16);
	buf[3] = (unsigned char)((uint32_t)id >> 8);
	buf[4] = (unsigned char)id;
	*len = 5 + (size_t)n;
	*frame = realloc(buf, *len);
	assert_non_null(*frame);
}

void assay_test_null_every_union(avro_value_t *value)
{
	avro_schema_t schema = resolve(avro_value_get_schema(value));
	size_t n = 0;

	switch (avro_value_get_type(value)) {
	case AVRO_UNION:
		for (size_t b = 0; b < avro_schema_union_size(schema); b++) {
			avro_value_t branch;

			if (avro_typeof(avro_schema_union_branch(schema, (int)b)) != AVRO_NULL)
				continue;
			assert_int_equal(avro_value_set_branch(value, (int)b, &branch), 0);
			assert_int_equal(avro_value_set_null(&branch), 0);
			return;
		}
		break;
	case AVRO_RECORD:
	case AVRO_ARRAY:
	case AVRO_MAP:
		assert_int_equal(avro_value_get_size(value, &n), 0);
		for (size_t i = 0; i < n; i++) {
			avro_value_t item;

			assert_int_equal(avro_value_get_by_index(value, i, &item, NULL), 0);
			assay_test_null_every_union(&item);
		}
		break;
	default:
		break;
	}
}
