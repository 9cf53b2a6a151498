/*
 * The Avro codec: Confluent framing (magic byte, big-endian schema id, Avro binary body) on
 * top of avro-c generic values, a per-codec cache of parsed schemas and their value classes
 * keyed by registry id, and by-name field helpers that fill defaults where the writer's schema
 * lacks a field (avro-c's resolver does not apply reader defaults).
 */
#include "assay_codec.h"
#include "assay_vec.h"
#include "assay_avro_check.h"
#include "assay_embed.h"
#include "assay_err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cached {
	struct assay_schema pub;
	char *full_name; /* pub.full_name points here */
	bool embedded;
};

struct assay_codec {
	struct assay_registry *reg; /* borrowed */
	size_t max_message_bytes;   /* 0 = no limit */
	struct cached **schemas;    /* each separately allocated: pointers handed out stay valid */
	size_t count;
	size_t cap;
	struct cached *last; /* last schema found by id */
	avro_reader_t reader;
	avro_writer_t writer;
};

struct assay_codec *assay_codec_new(struct assay_registry *reg, size_t max_message_bytes,
                                    char *errstr, size_t errstr_size)
{
	static const char empty[1];
	struct assay_codec *codec = calloc(1, sizeof(*codec));

	if (codec == NULL)
		goto fail;
	codec->reg = reg;
	codec->max_message_bytes = max_message_bytes;
	codec->reader = avro_reader_memory(empty, 0);
	if (codec->reader == NULL)
		goto fail;
	codec->writer = avro_writer_memory(empty, 0);
	if (codec->writer == NULL)
		goto fail;
	return codec;
fail:
	assay_codec_destroy(codec);
	assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "codec: out of memory");
	return NULL;
}

static void cached_free(struct cached *c)
{
	if (c == NULL)
		return;
	if (c->pub.iface != NULL)
		avro_value_iface_decref(c->pub.iface);
	if (c->pub.schema != NULL)
		avro_schema_decref(c->pub.schema);
	free(c->full_name);
	free(c);
}

void assay_codec_destroy(struct assay_codec *codec)
{
	if (codec == NULL)
		return;
	for (size_t i = 0; i < codec->count; i++)
		cached_free(codec->schemas[i]);
	free(codec->schemas);
	if (codec->reader != NULL)
		avro_reader_free(codec->reader);
	if (codec->writer != NULL)
		avro_writer_free(codec->writer);
	free(codec);
}

static struct cached *cache_find(struct assay_codec *codec, int32_t id)
{
	if (codec->last != NULL && codec->last->pub.id == id)
		return codec->last;
	for (size_t i = 0; i < codec->count; i++) {
		if (codec->schemas[i]->pub.id == id) {
			codec->last = codec->schemas[i];
			return codec->last;
		}
	}
	return NULL;
}

/* Caches schema under id. Takes the reference to schema in every case. */
static int cache_add(struct assay_codec *codec, int32_t id, avro_schema_t schema,
                     struct cached **out, char *errstr, size_t errstr_size)
{
	char name[512];
	struct cached *c;

	c = cache_find(codec, id);
	if (c != NULL) {
		avro_schema_decref(schema);
		*out = c;
		return 0;
	}
	if (assay_vec_reserve(&codec->schemas, &codec->cap, codec->count + 1,
	                      sizeof(*codec->schemas)))
		goto oom;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto oom;
	c->pub.id = id;
	c->pub.schema = schema;
	schema = NULL; /* owned by c now */
	c->pub.iface = avro_generic_class_from_schema(c->pub.schema);
	if (c->pub.iface == NULL) {
		int rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                    "codec: value class for schema id %d: %s", (int)id,
		                    avro_strerror());

		cached_free(c);
		return rc;
	}
	c->full_name = strdup(assay_registry_full_name(c->pub.schema, name, sizeof(name)));
	if (c->full_name == NULL) {
		cached_free(c);
		goto oom;
	}
	c->pub.full_name = c->full_name;
	codec->schemas[codec->count++] = c;
	*out = c;
	return 0;
oom:
	if (schema != NULL)
		avro_schema_decref(schema);
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "codec: out of memory");
}

/* Registers a parsed schema (reference taken) and caches it. */
static int register_parsed(struct assay_codec *codec, avro_schema_t schema, struct cached **out,
                           char *errstr, size_t errstr_size)
{
	int32_t id = 0;
	int rc = assay_registry_register_schema(codec->reg, schema, &id, errstr, errstr_size);

	if (rc != 0) {
		avro_schema_decref(schema);
		return rc;
	}
	return cache_add(codec, id, schema, out, errstr, errstr_size);
}

int assay_codec_register_embedded(struct assay_codec *codec, char *errstr, size_t errstr_size)
{
	for (size_t i = 0; i < assay_embedded_schemas_count; i++) {
		const struct assay_embedded *file = &assay_embedded_schemas[i];
		avro_schema_t schema = NULL;
		struct cached *c = NULL;
		char why[256];
		int rc;

		if (avro_schema_from_json_length(file->data, file->size, &schema) != 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "codec: schema %s: %s", file->name, avro_strerror());
		rc = register_parsed(codec, schema, &c, why, sizeof(why));
		if (rc != 0)
			return assay_errf(rc == ASSAY_ERR_REJECT ? ASSAY_ERR_FATAL : rc, errstr,
			                  errstr_size, "codec: schema %s: %s", file->name, why);
		for (size_t k = 0; k < codec->count; k++) {
			struct cached *other = codec->schemas[k];

			if (other != c && other->embedded &&
			    strcmp(other->full_name, c->full_name) == 0)
				return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
				                  "codec: schema %s: %s is defined twice with "
				                  "different text",
				                  file->name, c->full_name);
		}
		c->embedded = true;
	}
	return 0;
}

int assay_codec_register(struct assay_codec *codec, const char *schema_json,
                         const struct assay_schema **out, char *errstr, size_t errstr_size)
{
	avro_schema_t schema = NULL;
	struct cached *c = NULL;
	int rc;

	if (avro_schema_from_json_length(schema_json, strlen(schema_json), &schema) != 0)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "schema parse: %s",
		                  avro_strerror());
	rc = register_parsed(codec, schema, &c, errstr, errstr_size);
	if (rc != 0)
		return rc;
	*out = &c->pub;
	return 0;
}

int assay_codec_schema_by_name(struct assay_codec *codec, const char *full_name,
                               const struct assay_schema **out, char *errstr, size_t errstr_size)
{
	struct cached *found = NULL;

	for (size_t i = 0; i < codec->count; i++) {
		struct cached *c = codec->schemas[i];

		if (strcmp(c->full_name, full_name) != 0)
			continue;
		if (c->embedded) {
			found = c;
			break;
		}
		if (found == NULL)
			found = c;
	}
	if (found == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "codec: no schema named %s",
		                  full_name);
	*out = &found->pub;
	return 0;
}

int assay_codec_schema_by_id(struct assay_codec *codec, int32_t id, const struct assay_schema **out,
                             char *errstr, size_t errstr_size)
{
	struct cached *c = cache_find(codec, id);
	avro_schema_t schema = NULL;
	char *text = NULL;
	int rc;

	if (c != NULL) {
		*out = &c->pub;
		return 0;
	}
	rc = assay_registry_lookup(codec->reg, id, &text, errstr, errstr_size);
	if (rc != 0)
		return rc;
	if (avro_schema_from_json_length(text, strlen(text), &schema) != 0) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "codec: registry text of schema id %d: %s", (int)id,
		                avro_strerror());
		goto out;
	}
	rc = cache_add(codec, id, schema, &c, errstr, errstr_size);
	if (rc == 0)
		*out = &c->pub;
out:
	free(text);
	return rc;
}

int assay_codec_value_new(const struct assay_schema *s, avro_value_t *value)
{
	return avro_generic_value_new(s->iface, value) == 0 ? 0 : ASSAY_ERR_FATAL;
}

int assay_codec_encode(struct assay_codec *codec, const struct assay_schema *s, avro_value_t *value,
                       void **buf, size_t *len, char *errstr, size_t errstr_size)
{
	avro_schema_t vs = avro_value_get_schema(value);
	size_t size = 0, total;
	unsigned char *frame;
	uint32_t id = (uint32_t)s->id;

	if (vs != s->schema && !avro_schema_equal(vs, s->schema))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "encode: value is not of schema %s", s->full_name);
	if (avro_value_sizeof(value, &size) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "encode: %s: %s",
		                  s->full_name, avro_strerror());
	total = ASSAY_CODEC_HEADER_SIZE + size;
	if (codec->max_message_bytes != 0 && total > codec->max_message_bytes)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "encode: message too large: %s of %zu bytes, limit %zu",
		                  s->full_name, total, codec->max_message_bytes);
	frame = malloc(total);
	if (frame == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "encode: out of memory");
	frame[0] = ASSAY_CODEC_MAGIC;
	frame[1] = (unsigned char)(id >> 24);
	frame[2] = (unsigned char)(id >> 16);
	frame[3] = (unsigned char)(id >> 8);
	frame[4] = (unsigned char)id;
	avro_writer_memory_set_dest(codec->writer, (const char *)frame + ASSAY_CODEC_HEADER_SIZE,
	                            (int64_t)size);
	if (avro_value_write(codec->writer, value) != 0 ||
	    (size_t)avro_writer_tell(codec->writer) != size) {
		free(frame);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "encode: %s: %s",
		                  s->full_name, avro_strerror());
	}
	*buf = frame;
	*len = total;
	return 0;
}

size_t assay_codec_max_message_bytes(const struct assay_codec *codec)
{
	return codec->max_message_bytes;
}

int assay_codec_frame_id(const void *frame, size_t len, size_t max_message_bytes, int32_t *id,
                         char *errstr, size_t errstr_size)
{
	const unsigned char *f = frame;

	if (max_message_bytes != 0 && len > max_message_bytes)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "decode: message too large: %zu bytes, limit %zu", len,
		                  max_message_bytes);
	if (len == 0)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "decode: empty frame");
	if (len < ASSAY_CODEC_HEADER_SIZE)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "decode: short frame: %zu bytes, the header needs %d", len,
		                  ASSAY_CODEC_HEADER_SIZE);
	if (f[0] != ASSAY_CODEC_MAGIC)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "decode: wrong magic byte 0x%02x", f[0]);
	*id = (int32_t)((uint32_t)f[1] << 24 | (uint32_t)f[2] << 16 | (uint32_t)f[3] << 8 |
	                (uint32_t)f[4]);
	return 0;
}

int assay_codec_decode(struct assay_codec *codec, const void *buf, size_t len,
                       struct assay_decoded *out, char *errstr, size_t errstr_size)
{
	const unsigned char *frame = buf;
	const struct assay_schema *s = NULL;
	avro_value_t value;
	char why[256];
	int32_t id;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = assay_codec_frame_id(buf, len, codec->max_message_bytes, &id, errstr, errstr_size);
	if (rc != 0)
		return rc;
	rc = assay_codec_schema_by_id(codec, id, &s, why, sizeof(why));
	if (rc != 0)
		return assay_errf(rc, errstr, errstr_size, "decode: %s", why);
	rc = assay_avro_check(s->schema, frame + ASSAY_CODEC_HEADER_SIZE,
	                      len - ASSAY_CODEC_HEADER_SIZE, why, sizeof(why));
	if (rc != 0)
		return assay_errf(rc, errstr, errstr_size, "decode: %s: %s", s->full_name, why);
	if (avro_generic_value_new(s->iface, &value) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "decode: out of memory");
	avro_reader_memory_set_source(codec->reader, (const char *)frame + ASSAY_CODEC_HEADER_SIZE,
	                              (int64_t)(len - ASSAY_CODEC_HEADER_SIZE));
	if (avro_value_read(codec->reader, &value) != 0) {
		rc = assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "decode: %s: avro-c: %s",
		                s->full_name, avro_strerror());
		avro_value_decref(&value);
		return rc;
	}
	out->schema = s;
	out->value = value;
	return 0;
}

void assay_decoded_release(struct assay_decoded *d)
{
	if (d == NULL || d->schema == NULL)
		return;
	avro_value_decref(&d->value);
	memset(d, 0, sizeof(*d));
}

/*
 * Field access by name.
 */

static avro_schema_t resolve(avro_schema_t schema)
{
	while (is_avro_link(schema))
		schema = avro_schema_link_target(schema);
	return schema;
}

/* value itself, or a union's current branch */
static int unwrap(avro_value_t *value, avro_value_t *out)
{
	if (avro_value_get_type(value) != AVRO_UNION) {
		*out = *value;
		return 0;
	}
	return avro_value_get_current_branch(value, out) == 0 ? 0 : ASSAY_ERR_REJECT;
}

/* 0 with *v set; 1 when the field is missing or null; ASSAY_ERR_REJECT otherwise */
static int get_field(avro_value_t *record, const char *field, avro_value_t *v)
{
	avro_value_t raw;

	if (avro_value_get_type(record) != AVRO_RECORD)
		return ASSAY_ERR_REJECT;
	if (avro_value_get_by_name(record, field, &raw, NULL) != 0)
		return 1;
	if (unwrap(&raw, v) != 0)
		return ASSAY_ERR_REJECT;
	return avro_value_get_type(v) == AVRO_NULL ? 1 : 0;
}

static int as_string(avro_value_t *v, const char **out, size_t *len)
{
	const char *s = NULL;
	size_t size = 0;

	if (avro_value_get_type(v) != AVRO_STRING || avro_value_get_string(v, &s, &size) != 0)
		return ASSAY_ERR_REJECT;
	if (s == NULL || size == 0) {
		s = "";
		size = 1;
	}
	*out = s;
	if (len != NULL)
		*len = size - 1; /* avro-c counts the NUL */
	return 0;
}

/*
 * The converters below take a present, non-null value and write it to out, whose type each one
 * knows; they return 0 or ASSAY_ERR_REJECT when the value has another type or does not fit.
 */
typedef int (*as_fn)(avro_value_t *v, void *out);

static int as_long(avro_value_t *v, void *out)
{
	int64_t *l = out;
	int32_t i;

	switch (avro_value_get_type(v)) {
	case AVRO_INT64:
		return avro_value_get_long(v, l) == 0 ? 0 : ASSAY_ERR_REJECT;
	case AVRO_INT32:
		if (avro_value_get_int(v, &i) != 0)
			return ASSAY_ERR_REJECT;
		*l = i;
		return 0;
	default:
		return ASSAY_ERR_REJECT;
	}
}

static int as_int(avro_value_t *v, void *out)
{
	int64_t l;

	if (as_long(v, &l) != 0 || l < INT32_MIN || l > INT32_MAX)
		return ASSAY_ERR_REJECT;
	*(int32_t *)out = (int32_t)l;
	return 0;
}

static int as_double(avro_value_t *v, void *out)
{
	double *d = out;
	float f;
	int64_t l;

	switch (avro_value_get_type(v)) {
	case AVRO_DOUBLE:
		return avro_value_get_double(v, d) == 0 ? 0 : ASSAY_ERR_REJECT;
	case AVRO_FLOAT:
		if (avro_value_get_float(v, &f) != 0)
			return ASSAY_ERR_REJECT;
		*d = f;
		return 0;
	default:
		if (as_long(v, &l) != 0)
			return ASSAY_ERR_REJECT;
		*d = (double)l;
		return 0;
	}
}

static int as_bool(avro_value_t *v, void *out)
{
	int b;

	if (avro_value_get_type(v) != AVRO_BOOLEAN || avro_value_get_boolean(v, &b) != 0)
		return ASSAY_ERR_REJECT;
	*(bool *)out = b != 0;
	return 0;
}

static int as_enum(avro_value_t *v, void *out)
{
	int index;
	const char *s;

	if (avro_value_get_type(v) != AVRO_ENUM || avro_value_get_enum(v, &index) != 0)
		return ASSAY_ERR_REJECT;
	s = avro_schema_enum_get(resolve(avro_value_get_schema(v)), index);
	if (s == NULL)
		return ASSAY_ERR_REJECT;
	*(const char **)out = s;
	return 0;
}

static int as_cstring(avro_value_t *v, void *out)
{
	return as_string(v, out, NULL);
}

/*
 * The one lookup behind the typed accessors: field of record converted by as into out. A
 * missing or null field is ASSAY_ERR_REJECT when dflt is NULL, else *out becomes the size
 * bytes at dflt.
 */
static int value_get(avro_value_t *record, const char *field, as_fn as, const void *dflt,
                     size_t size, void *out)
{
	avro_value_t v;
	int rc = get_field(record, field, &v);

	if (rc == 1 && dflt != NULL) {
		memcpy(out, dflt, size);
		return 0;
	}
	if (rc != 0)
		return ASSAY_ERR_REJECT;
	return as(&v, out);
}

/* The array or map (type) field of record; when optional, a missing or null one is empty. */
static int value_container(avro_value_t *record, const char *field, avro_type_t type, bool optional,
                           avro_value_t *out, size_t *count)
{
	avro_value_t v;
	int rc = get_field(record, field, &v);

	if (rc == 1 && optional) {
		memset(out, 0, sizeof(*out));
		*count = 0;
		return 0;
	}
	if (rc != 0 || avro_value_get_type(&v) != type || avro_value_get_size(&v, count) != 0)
		return ASSAY_ERR_REJECT;
	*out = v;
	return 0;
}

int assay_value_string(avro_value_t *record, const char *field, const char **out, size_t *len)
{
	avro_value_t v;

	if (get_field(record, field, &v) != 0)
		return ASSAY_ERR_REJECT;
	return as_string(&v, out, len);
}

int assay_value_string_or(avro_value_t *record, const char *field, const char *dflt,
                          const char **out)
{
	return value_get(record, field, as_cstring, &dflt, sizeof(dflt), out);
}

int assay_value_opt_string(avro_value_t *record, const char *field, const char **out, size_t *len)
{
	avro_value_t v;
	int rc = get_field(record, field, &v);

	if (rc == 1) {
		*out = NULL;
		if (len != NULL)
			*len = 0;
		return 0;
	}
	return rc != 0 ? rc : as_string(&v, out, len);
}

int assay_value_bytes(avro_value_t *record, const char *field, const void **out, size_t *len)
{
	avro_value_t v;

	if (get_field(record, field, &v) != 0)
		return ASSAY_ERR_REJECT;
	switch (avro_value_get_type(&v)) {
	case AVRO_BYTES:
		return avro_value_get_bytes(&v, out, len) == 0 ? 0 : ASSAY_ERR_REJECT;
	case AVRO_FIXED:
		return avro_value_get_fixed(&v, out, len) == 0 ? 0 : ASSAY_ERR_REJECT;
	default:
		return ASSAY_ERR_REJECT;
	}
}

int assay_value_long(avro_value_t *record, const char *field, int64_t *out)
{
	return value_get(record, field, as_long, NULL, 0, out);
}

int assay_value_long_or(avro_value_t *record, const char *field, int64_t dflt, int64_t *out)
{
	return value_get(record, field, as_long, &dflt, sizeof(dflt), out);
}

int assay_value_int(avro_value_t *record, const char *field, int32_t *out)
{
	return value_get(record, field, as_int, NULL, 0, out);
}

int assay_value_int_or(avro_value_t *record, const char *field, int32_t dflt, int32_t *out)
{
	return value_get(record, field, as_int, &dflt, sizeof(dflt), out);
}

int assay_value_double(avro_value_t *record, const char *field, double *out)
{
	return value_get(record, field, as_double, NULL, 0, out);
}

int assay_value_double_or(avro_value_t *record, const char *field, double dflt, double *out)
{
	return value_get(record, field, as_double, &dflt, sizeof(dflt), out);
}

int assay_value_bool(avro_value_t *record, const char *field, bool *out)
{
	return value_get(record, field, as_bool, NULL, 0, out);
}

int assay_value_bool_or(avro_value_t *record, const char *field, bool dflt, bool *out)
{
	return value_get(record, field, as_bool, &dflt, sizeof(dflt), out);
}

int assay_value_enum(avro_value_t *record, const char *field, const char **symbol)
{
	return value_get(record, field, as_enum, NULL, 0, symbol);
}

int assay_value_enum_or(avro_value_t *record, const char *field, const char *dflt,
                        const char **symbol)
{
	return value_get(record, field, as_enum, &dflt, sizeof(dflt), symbol);
}

int assay_value_record(avro_value_t *record, const char *field, avro_value_t *out)
{
	avro_value_t v;

	if (get_field(record, field, &v) != 0 || avro_value_get_type(&v) != AVRO_RECORD)
		return ASSAY_ERR_REJECT;
	*out = v;
	return 0;
}

int assay_value_array(avro_value_t *record, const char *field, avro_value_t *out, size_t *count)
{
	return value_container(record, field, AVRO_ARRAY, false, out, count);
}

int assay_value_array_opt(avro_value_t *record, const char *field, avro_value_t *out, size_t *count)
{
	return value_container(record, field, AVRO_ARRAY, true, out, count);
}

int assay_value_array_get(avro_value_t *array, size_t i, avro_value_t *elem)
{
	avro_value_t raw;

	if (avro_value_get_type(array) != AVRO_ARRAY ||
	    avro_value_get_by_index(array, i, &raw, NULL) != 0)
		return ASSAY_ERR_REJECT;
	return unwrap(&raw, elem);
}

int assay_value_map(avro_value_t *record, const char *field, avro_value_t *out, size_t *count)
{
	return value_container(record, field, AVRO_MAP, false, out, count);
}

int assay_value_map_opt(avro_value_t *record, const char *field, avro_value_t *out, size_t *count)
{
	return value_container(record, field, AVRO_MAP, true, out, count);
}

int assay_value_map_get(avro_value_t *map, size_t i, const char **key, avro_value_t *value)
{
	avro_value_t raw;

	if (avro_value_get_type(map) != AVRO_MAP || avro_value_get_by_index(map, i, &raw, key) != 0)
		return ASSAY_ERR_REJECT;
	return unwrap(&raw, value);
}

int assay_value_as_string(avro_value_t *value, const char **out, size_t *len)
{
	avro_value_t v;

	if (unwrap(value, &v) != 0)
		return ASSAY_ERR_REJECT;
	return as_string(&v, out, len);
}

/*
 * Setting fields by name.
 */

int assay_value_field(avro_value_t *record, const char *field, avro_type_t type, avro_value_t *out)
{
	avro_value_t v;
	avro_schema_t us;

	if (avro_value_get_type(record) != AVRO_RECORD ||
	    avro_value_get_by_name(record, field, &v, NULL) != 0)
		return ASSAY_ERR_FATAL;
	if (avro_value_get_type(&v) != AVRO_UNION || type == AVRO_UNION) {
		if (avro_value_get_type(&v) != type)
			return ASSAY_ERR_FATAL;
		*out = v;
		return 0;
	}
	us = resolve(avro_value_get_schema(&v));
	for (size_t i = 0; i < avro_schema_union_size(us); i++) {
		avro_schema_t branch = resolve(avro_schema_union_branch(us, (int)i));

		if (avro_typeof(branch) == type)
			return avro_value_set_branch(&v, (int)i, out) == 0 ? 0 : ASSAY_ERR_FATAL;
	}
	return ASSAY_ERR_FATAL;
}

int assay_value_set_string_len(avro_value_t *record, const char *field, const char *s, size_t len)
{
	avro_value_t v;
	char *copy;
	int rc = assay_value_field(record, field, AVRO_STRING, &v);

	if (rc != 0)
		return rc;
	/* avro-c copies len + 1 bytes (it counts the NUL), so s needs a terminator */
	copy = malloc(len + 1);
	if (copy == NULL)
		return ASSAY_ERR_FATAL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	rc = avro_value_set_string_len(&v, copy, len + 1) == 0 ? 0 : ASSAY_ERR_FATAL;
	free(copy);
	return rc;
}

/* Sets field of record, in its branch of type, to *in: a char * string, an int64_t, int32_t,
 * double or bool, or nothing for AVRO_NULL. */
static int value_set(avro_value_t *record, const char *field, avro_type_t type, const void *in)
{
	avro_value_t v;
	int rc = assay_value_field(record, field, type, &v);

	if (rc != 0)
		return rc;
	switch (type) {
	case AVRO_STRING:
		rc = avro_value_set_string(&v, (const char *)in);
		break;
	case AVRO_INT64:
		rc = avro_value_set_long(&v, *(const int64_t *)in);
		break;
	case AVRO_INT32:
		rc = avro_value_set_int(&v, *(const int32_t *)in);
		break;
	case AVRO_DOUBLE:
		rc = avro_value_set_double(&v, *(const double *)in);
		break;
	case AVRO_BOOLEAN:
		rc = avro_value_set_boolean(&v, *(const bool *)in ? 1 : 0);
		break;
	default:
		rc = avro_value_set_null(&v);
		break;
	}
	return rc == 0 ? 0 : ASSAY_ERR_FATAL;
}

int assay_value_set_string(avro_value_t *record, const char *field, const char *s)
{
	return value_set(record, field, AVRO_STRING, s);
}

int assay_value_set_null_or_string(avro_value_t *record, const char *field, const char *s)
{
	return value_set(record, field, s != NULL ? AVRO_STRING : AVRO_NULL, s);
}

int assay_value_set_long(avro_value_t *record, const char *field, int64_t n)
{
	return value_set(record, field, AVRO_INT64, &n);
}

int assay_value_set_int(avro_value_t *record, const char *field, int32_t n)
{
	return value_set(record, field, AVRO_INT32, &n);
}

int assay_value_set_double(avro_value_t *record, const char *field, double d)
{
	return value_set(record, field, AVRO_DOUBLE, &d);
}

int assay_value_set_bool(avro_value_t *record, const char *field, bool b)
{
	return value_set(record, field, AVRO_BOOLEAN, &b);
}

int assay_value_set_enum(avro_value_t *record, const char *field, const char *symbol)
{
	avro_value_t v;
	int index;
	int rc = assay_value_field(record, field, AVRO_ENUM, &v);

	if (rc != 0)
		return rc;
	index = avro_schema_enum_get_by_name(resolve(avro_value_get_schema(&v)), symbol);
	if (index < 0)
		return ASSAY_ERR_REJECT;
	return avro_value_set_enum(&v, index) == 0 ? 0 : ASSAY_ERR_FATAL;
}

int assay_value_set_bytes(avro_value_t *record, const char *field, const void *buf, size_t len)
{
	avro_value_t v;
	int rc = assay_value_field(record, field, AVRO_BYTES, &v);

	if (rc != 0)
		return rc;
	return avro_value_set_bytes(&v, (void *)buf, len) == 0 ? 0 : ASSAY_ERR_FATAL;
}
