/*
 * The codec without a database (in-memory registry): a round trip of every embedded schema and
 * of schemas that use every Avro type, each malformed frame refused with its own message,
 * decoding by the writer's schema across schema versions with defaults filled in code, the
 * schema cache, field helpers, and an unreachable registry reported as retry.
 */
#include "assay_test.h"
#include "assay_test_codec.h"
#include "assay_codec.h"
#include "assay_embed.h"
#include "assay_err.h"
#include "assay_registry.h"

#include <stdlib.h>
#include <string.h>

/* Every Avro type, a named reference, a recursive type, unions with several branches. */
static const char every_type_json[] =
        "{\"type\":\"record\",\"name\":\"Every\",\"namespace\":\"org.assay.test\",\"fields\":["
        "{\"name\":\"n\",\"type\":\"null\"},{\"name\":\"b\",\"type\":\"boolean\"},"
        "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
        "{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"
        "{\"name\":\"by\",\"type\":\"bytes\"},{\"name\":\"s\",\"type\":\"string\"},"
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"X\",\"Y\"]}},"
        "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"Hash\",\"size\":8}},"
        "{\"name\":\"e2\",\"type\":\"Kind\"},"
        "{\"name\":\"tree\",\"type\":{\"type\":\"record\",\"name\":\"Tree\",\"fields\":["
        "{\"name\":\"label\",\"type\":\"string\"},"
        "{\"name\":\"kids\",\"type\":{\"type\":\"array\",\"items\":\"Tree\"}}]}},"
        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"long\",\"Hash\"]}},"
        "{\"name\":\"o\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

/* A small event, version 1 and version 2 (v2 drops "extra" and adds "level" with default 7). */
static const char v1_json[] =
        "{\"type\":\"record\",\"name\":\"Thing\",\"namespace\":\"org.assay.test\",\"fields\":["
        "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"count\",\"type\":\"long\"},"
        "{\"name\":\"extra\",\"type\":\"string\"},"
        "{\"name\":\"state\",\"type\":{\"type\":\"enum\",\"name\":\"State\","
        "\"symbols\":[\"OPEN\",\"CLOSED\"]}},"
        "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null},"
        "{\"name\":\"ok\",\"type\":\"boolean\"},{\"name\":\"small\",\"type\":\"int\"},"
        "{\"name\":\"score\",\"type\":\"double\"},{\"name\":\"raw\",\"type\":\"bytes\"},"
        "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
        "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"string\"}}]}";
static const char v2_json[] =
        "{\"type\":\"record\",\"name\":\"Thing\",\"namespace\":\"org.assay.test\",\"fields\":["
        "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"count\",\"type\":\"long\"},"
        "{\"name\":\"level\",\"type\":\"int\",\"default\":7}]}";

struct fixture {
	struct assay_registry *reg;
	struct assay_codec *codec;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char errstr[256] = "";

	if (f == NULL)
		return -1;
	f->reg = assay_registry_memory_new(errstr, sizeof(errstr));
	f->codec = f->reg ? assay_codec_new(f->reg, 1 << 20, errstr, sizeof(errstr)) : NULL;
	if (f->codec == NULL) {
		assay_registry_destroy(f->reg);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assay_codec_destroy(f->codec);
	assay_registry_destroy(f->reg);
	free(f);
	return 0;
}

/* encode, check the frame header, decode, compare, re-encode to the same bytes */
static void round_trip(struct assay_codec *codec, const struct assay_schema *s, unsigned seed)
{
	struct assay_decoded d;
	avro_value_t value;
	void *buf = NULL, *again = NULL;
	size_t len = 0, again_len = 0;
	unsigned char *frame;
	char errstr[256] = "";
	int rc;

	assert_int_equal(assay_codec_value_new(s, &value), 0);
	assay_test_fill_value(&value, seed);
	rc = assay_codec_encode(codec, s, &value, &buf, &len, errstr, sizeof(errstr));
	if (rc != 0)
		fail_msg("encode %s: %s", s->full_name, errstr);
	frame = buf;
	assert_true(len > 5);
	assert_int_equal(frame[0], 0);
	assert_int_equal((int32_t)((uint32_t)frame[1] << 24 | (uint32_t)frame[2] << 16 |
	                           (uint32_t)frame[3] << 8 | frame[4]),
	                 s->id);
	rc = assay_codec_decode(codec, buf, len, &d, errstr, sizeof(errstr));
	if (rc != 0)
		fail_msg("decode %s: %s", s->full_name, errstr);
	assert_ptr_equal(d.schema, s);
	if (!avro_value_equal(&value, &d.value))
		fail_msg("round trip of %s changed the value", s->full_name);
	assert_int_equal(
	        assay_codec_encode(codec, s, &d.value, &again, &again_len, errstr, sizeof(errstr)),
	        0);
	assert_int_equal(again_len, len);
	assert_memory_equal(again, buf, len);
	assay_decoded_release(&d);
	assert_null(d.schema);
	assay_decoded_release(&d); /* twice is harmless */
	free(again);
	free(buf);
	avro_value_decref(&value);
}

static void test_round_trip_every_embedded_schema(void **state)
{
	struct fixture *f = *state;
	char errstr[256] = "";
	size_t done = 0;

	assert_int_equal(assay_codec_register_embedded(f->codec, errstr, sizeof(errstr)), 0);
	/* registering again changes nothing */
	assert_int_equal(assay_codec_register_embedded(f->codec, errstr, sizeof(errstr)), 0);
	for (size_t i = 0; i < assay_embedded_schemas_count; i++) {
		const struct assay_embedded *file = &assay_embedded_schemas[i];
		const struct assay_schema *s = NULL;
		avro_schema_t parsed = NULL;
		char name[512];

		assert_int_equal(avro_schema_from_json_length(file->data, file->size, &parsed), 0);
		assay_registry_full_name(parsed, name, sizeof(name));
		avro_schema_decref(parsed);
		if (assay_codec_schema_by_name(f->codec, name, &s, errstr, sizeof(errstr)) != 0)
			fail_msg("%s: %s", file->name, errstr);
		assert_string_equal(s->full_name, name);
		assert_true(s->id > 0);
		round_trip(f->codec, s, (unsigned)i * 100);
		done++;
	}
	print_message("round trip of %zu embedded schemas\n", done);
	assert_int_equal(done, assay_embedded_schemas_count);
	assert_true(done > 0); /* schemas/ holds the contracts; an empty set is a build fault */
}

static void test_round_trip_every_avro_type(void **state)
{
	struct fixture *f = *state;
	const struct assay_schema *s = NULL, *again = NULL;
	char errstr[256] = "";

	assert_int_equal(
	        assay_codec_register(f->codec, every_type_json, &s, errstr, sizeof(errstr)), 0);
	assert_string_equal(s->full_name, "org.assay.test.Every");
	assert_int_equal(assay_codec_register(f->codec, v1_json, &again, errstr, sizeof(errstr)),
	                 0);
	for (unsigned seed = 0; seed < 5; seed++) {
		round_trip(f->codec, s, seed);
		round_trip(f->codec, again, seed);
	}
	/* same text again: same cached schema */
	assert_int_equal(
	        assay_codec_register(f->codec, every_type_json, &again, errstr, sizeof(errstr)), 0);
	assert_ptr_equal(again, s);
}

/* A valid frame of schema v1 to corrupt. */
static void valid_frame(struct assay_codec *codec, const struct assay_schema **s, void **buf,
                        size_t *len)
{
	avro_value_t value;
	char errstr[256] = "";

	assert_int_equal(assay_codec_register(codec, v1_json, s, errstr, sizeof(errstr)), 0);
	assert_int_equal(assay_codec_value_new(*s, &value), 0);
	assay_test_fill_value(&value, 3);
	assert_int_equal(assay_codec_encode(codec, *s, &value, buf, len, errstr, sizeof(errstr)),
	                 0);
	avro_value_decref(&value);
}

static void expect_reject(struct assay_codec *codec, const void *buf, size_t len,
                          const char *expect)
{
	struct assay_decoded d;
	char errstr[256] = "";
	int rc;

	memset(&d, 0xab, sizeof(d));
	rc = assay_codec_decode(codec, buf, len, &d, errstr, sizeof(errstr));
	if (rc != ASSAY_ERR_REJECT)
		fail_msg("expected reject \"%s\", got %s (%s)", expect, assay_err_name(rc), errstr);
	if (strstr(errstr, expect) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", errstr, expect);
	assert_null(d.schema);
	assay_decoded_release(&d); /* nothing to release, must be harmless */
}

static void test_malformed_frames(void **state)
{
	struct fixture *f = *state;
	const struct assay_schema *s = NULL;
	struct assay_codec *small;
	unsigned char bad[256];
	void *buf = NULL;
	size_t len = 0;
	char errstr[256] = "";

	valid_frame(f->codec, &s, &buf, &len);
	assert_true(len + 2 < sizeof(bad));

	expect_reject(f->codec, NULL, 0, "decode: empty frame");
	expect_reject(f->codec, buf, 4, "decode: short frame: 4 bytes, the header needs 5");
	memcpy(bad, buf, len);
	bad[0] = 0x01;
	expect_reject(f->codec, bad, len, "decode: wrong magic byte 0x01");
	memcpy(bad, buf, len);
	bad[1] = 0x00, bad[2] = 0x00, bad[3] = 0x27, bad[4] = 0x0f; /* 9999 */
	expect_reject(f->codec, bad, len, "decode: unknown schema id 9999");
	bad[1] = 0x80; /* a negative id */
	expect_reject(f->codec, bad, len, "decode: unknown schema id -2147473649");
	expect_reject(f->codec, buf, len - 1, "truncated");
	memcpy(bad, buf, len);
	bad[len] = 0x00;
	expect_reject(f->codec, bad, len + 1, "trailing bytes: 1 after the value");

	/* the body starts with the string "id": a negative, a huge length, invalid UTF-8 */
	memcpy(bad, buf, len);
	bad[5] = 0x01;
	expect_reject(f->codec, bad, len,
	              "negative length: string of -1 bytes at byte 1 (field id)");
	memcpy(bad, buf, 5);
	memcpy(bad + 5, "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
	expect_reject(f->codec, bad, 15, "truncated string: needs 9223372036854775807 bytes");
	memcpy(bad, buf, len);
	assert_true(bad[5] >= 4); /* at least two bytes of text */
	bad[6] = 0xc0, bad[7] = 0xaf;
	expect_reject(f->codec, bad, len, "invalid utf-8 in string at byte 1 (field id)");

	/* a message over the limit, before anything else is looked at */
	small = assay_codec_new(f->reg, 16, errstr, sizeof(errstr));
	assert_non_null(small);
	expect_reject(small, buf, len, "decode: message too large");
	assert_true(len > 16);
	assay_codec_destroy(small);

	/* the valid frame still decodes */
	{
		struct assay_decoded d;

		assert_int_equal(assay_codec_decode(f->codec, buf, len, &d, errstr, sizeof(errstr)),
		                 0);
		assay_decoded_release(&d);
	}
	free(buf);
}

/* A backend in front of the memory registry that counts lookups and can play unreachable. */
struct counting {
	struct assay_registry *inner;
	int lookups;
	bool down;
};

static int counting_register(void *impl, const char *text, size_t text_len, const char *full_name,
                             const unsigned char fingerprint[ASSAY_REGISTRY_FINGERPRINT_SIZE],
                             int32_t *id, char *errstr, size_t errstr_size)
{
	struct counting *c = impl;

	(void)text_len, (void)full_name, (void)fingerprint;
	if (c->down)
		return assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size, "registry down");
	return assay_registry_register(c->inner, text, id, errstr, errstr_size);
}

static int counting_lookup(void *impl, int32_t id, char **text, char *errstr, size_t errstr_size)
{
	struct counting *c = impl;

	c->lookups++;
	if (c->down)
		return assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size, "registry down");
	return assay_registry_lookup(c->inner, id, text, errstr, errstr_size);
}

static void counting_destroy(void *impl)
{
	(void)impl; /* the test owns it */
}

static const struct assay_registry_backend counting_backend = {
        .name = "counting",
        .register_text = counting_register,
        .lookup = counting_lookup,
        .destroy = counting_destroy,
};

/* The writer had fields the reader code does not know, and lacks one the reader wants. */
static void test_decode_by_writer_schema(void **state)
{
	struct fixture *f = *state;
	struct counting counting = {.inner = f->reg};
	struct assay_registry *reg;
	struct assay_codec *producer = f->codec, *consumer;
	const struct assay_schema *v1 = NULL, *v2 = NULL, *v2_consumer = NULL;
	struct assay_decoded d;
	avro_value_t value, array, map, elem;
	const char *s = NULL, *key = NULL;
	size_t len = 0, count = 0;
	int64_t n = 0;
	int32_t level = 0;
	void *buf = NULL;
	size_t buf_len = 0;
	char errstr[256] = "";

	reg = assay_registry_new(&counting_backend, &counting, errstr, sizeof(errstr));
	assert_non_null(reg);
	consumer = assay_codec_new(reg, 0, errstr, sizeof(errstr));
	assert_non_null(consumer);

	/* the consumer knows only v2; the producer writes v1 */
	assert_int_equal(
	        assay_codec_register(consumer, v2_json, &v2_consumer, errstr, sizeof(errstr)), 0);
	assert_int_equal(assay_codec_register(producer, v1_json, &v1, errstr, sizeof(errstr)), 0);
	assert_int_not_equal(v1->id, v2_consumer->id);
	assert_int_equal(assay_codec_value_new(v1, &value), 0);
	assert_int_equal(assay_value_set_string(&value, "id", "thing-1"), 0);
	assert_int_equal(assay_value_set_long(&value, "count", 42), 0);
	assert_int_equal(assay_value_set_string(&value, "extra", "unknown to v2"), 0);
	assert_int_equal(assay_value_set_enum(&value, "state", "CLOSED"), 0);
	assert_int_equal(assay_value_set_null_or_string(&value, "note", NULL), 0);
	assert_int_equal(assay_value_set_bool(&value, "ok", true), 0);
	assert_int_equal(assay_value_set_int(&value, "small", -5), 0);
	assert_int_equal(assay_value_set_double(&value, "score", 0.75), 0);
	assert_int_equal(assay_value_set_bytes(&value, "raw", "\x00\x01\x02", 3), 0);
	assert_int_equal(assay_value_field(&value, "tags", AVRO_ARRAY, &array), 0);
	assert_int_equal(avro_value_append(&array, &elem, NULL), 0);
	assert_int_equal(avro_value_set_string(&elem, "a"), 0);
	assert_int_equal(avro_value_append(&array, &elem, NULL), 0);
	assert_int_equal(avro_value_set_string(&elem, "b"), 0);
	assert_int_equal(assay_value_field(&value, "attrs", AVRO_MAP, &map), 0);
	assert_int_equal(avro_value_add(&map, "k", &elem, NULL, NULL), 0);
	assert_int_equal(avro_value_set_string(&elem, "v"), 0);
	assert_int_equal(
	        assay_codec_encode(producer, v1, &value, &buf, &buf_len, errstr, sizeof(errstr)),
	        0);
	avro_value_decref(&value);

	/* decoded with the writer's schema, looked up once, then cached */
	assert_int_equal(assay_codec_decode(consumer, buf, buf_len, &d, errstr, sizeof(errstr)), 0);
	assert_int_equal(counting.lookups, 1);
	assert_int_equal(d.schema->id, v1->id);
	assert_string_equal(d.schema->full_name, "org.assay.test.Thing");
	/* the reader code of v2: id, count, level (missing from the writer: the default) */
	assert_int_equal(assay_value_string(&d.value, "id", &s, &len), 0);
	assert_string_equal(s, "thing-1");
	assert_int_equal(len, 7);
	assert_int_equal(assay_value_long(&d.value, "count", &n), 0);
	assert_int_equal(n, 42);
	assert_int_equal(assay_value_int_or(&d.value, "level", 7, &level), 0);
	assert_int_equal(level, 7);
	assert_int_equal(assay_value_int(&d.value, "level", &level), ASSAY_ERR_REJECT);
	/* the other helpers on the v1 fields */
	{
		const char *sym = NULL, *o = "x";
		const void *raw = NULL;
		bool ok = false;
		double score = 0;
		int32_t small = 0;

		assert_int_equal(assay_value_enum(&d.value, "state", &sym), 0);
		assert_string_equal(sym, "CLOSED");
		assert_int_equal(assay_value_enum_or(&d.value, "phase", "NONE", &sym), 0);
		assert_string_equal(sym, "NONE");
		assert_int_equal(assay_value_opt_string(&d.value, "note", &o, NULL), 0);
		assert_null(o);
		assert_int_equal(assay_value_string(&d.value, "note", &o, NULL), ASSAY_ERR_REJECT);
		assert_int_equal(assay_value_string_or(&d.value, "note", "dflt", &o), 0);
		assert_string_equal(o, "dflt");
		assert_int_equal(assay_value_bool(&d.value, "ok", &ok), 0);
		assert_true(ok);
		assert_int_equal(assay_value_bool_or(&d.value, "gone", false, &ok), 0);
		assert_false(ok);
		assert_int_equal(assay_value_int(&d.value, "small", &small), 0);
		assert_int_equal(small, -5);
		assert_int_equal(assay_value_double(&d.value, "score", &score), 0);
		assert_true(score == 0.75);
		assert_int_equal(assay_value_double_or(&d.value, "weight", 1.5, &score), 0);
		assert_true(score == 1.5);
		assert_int_equal(assay_value_bytes(&d.value, "raw", &raw, &len), 0);
		assert_int_equal(len, 3);
		assert_memory_equal(raw, "\x00\x01\x02", 3);
		/* a long read as int, count as long_or present */
		assert_int_equal(assay_value_long_or(&d.value, "count", 1, &n), 0);
		assert_int_equal(n, 42);
		/* wrong types are rejected, also by the _or getters */
		assert_int_equal(assay_value_long(&d.value, "id", &n), ASSAY_ERR_REJECT);
		assert_int_equal(assay_value_long_or(&d.value, "id", 1, &n), ASSAY_ERR_REJECT);
		assert_int_equal(assay_value_enum(&d.value, "id", &sym), ASSAY_ERR_REJECT);
		assert_int_equal(assay_value_record(&d.value, "id", &elem), ASSAY_ERR_REJECT);
		assert_int_equal(assay_value_string(&d.value, "missing", &s, &len),
		                 ASSAY_ERR_REJECT);
	}
	assert_int_equal(assay_value_array(&d.value, "tags", &array, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(assay_value_array_get(&array, 1, &elem), 0);
	assert_int_equal(assay_value_as_string(&elem, &s, &len), 0);
	assert_string_equal(s, "b");
	assert_int_equal(assay_value_array_get(&array, 2, &elem), ASSAY_ERR_REJECT);
	assert_int_equal(assay_value_array_opt(&d.value, "none", &array, &count), 0);
	assert_int_equal(count, 0);
	assert_int_equal(assay_value_array(&d.value, "none", &array, &count), ASSAY_ERR_REJECT);
	assert_int_equal(assay_value_map(&d.value, "attrs", &map, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(assay_value_map_get(&map, 0, &key, &elem), 0);
	assert_string_equal(key, "k");
	assert_int_equal(assay_value_as_string(&elem, &s, NULL), 0);
	assert_string_equal(s, "v");
	assert_int_equal(assay_value_map_opt(&d.value, "none", &map, &count), 0);
	assert_int_equal(count, 0);
	assay_decoded_release(&d);

	/* second message of the same id: no second lookup */
	assert_int_equal(assay_codec_decode(consumer, buf, buf_len, &d, errstr, sizeof(errstr)), 0);
	assert_int_equal(counting.lookups, 1);
	assay_decoded_release(&d);
	free(buf);

	/* the other way round: v2 written with level 3, read by v1-era code */
	assert_int_equal(assay_codec_register(producer, v2_json, &v2, errstr, sizeof(errstr)), 0);
	assert_int_equal(v2->id, v2_consumer->id);
	assert_int_equal(assay_codec_value_new(v2, &value), 0);
	assert_int_equal(assay_value_set_string_len(&value, "id", "thing-2xxxx", 7), 0);
	assert_int_equal(assay_value_set_long(&value, "count", -1), 0);
	assert_int_equal(assay_value_set_int(&value, "level", 3), 0);
	assert_int_equal(
	        assay_codec_encode(producer, v2, &value, &buf, &buf_len, errstr, sizeof(errstr)),
	        0);
	avro_value_decref(&value);
	assert_int_equal(assay_codec_decode(consumer, buf, buf_len, &d, errstr, sizeof(errstr)), 0);
	assert_ptr_equal(d.schema, v2_consumer);
	assert_int_equal(assay_value_string(&d.value, "id", &s, &len), 0);
	assert_string_equal(s, "thing-2");
	assert_int_equal(assay_value_string_or(&d.value, "extra", "none", &s), 0);
	assert_string_equal(s, "none");
	assert_int_equal(assay_value_int_or(&d.value, "level", 7, &level), 0);
	assert_int_equal(level, 3);
	assay_decoded_release(&d);

	/* registry unreachable for an id not cached: retry, not reject */
	counting.down = true;
	((unsigned char *)buf)[4] = 0x63; /* id 99: not cached */
	assert_int_equal(assay_codec_decode(consumer, buf, buf_len, &d, errstr, sizeof(errstr)),
	                 ASSAY_ERR_RETRY);
	assert_non_null(strstr(errstr, "registry down"));
	assert_null(d.schema);
	free(buf);

	assay_codec_destroy(consumer);
	assay_registry_destroy(reg);
}

/* The PostgreSQL backend with nothing listening: retry, and the codec passes it on. */
static void test_unreachable_registry_is_retry(void **state)
{
	static const unsigned char frame[] = {0x00, 0x00, 0x00, 0x00, 0x01, 0x00};
	struct assay_registry *reg;
	struct assay_codec *codec;
	struct assay_decoded d;
	char errstr[512] = "";
	int32_t id = 0;
	char *text = NULL;

	(void)state;
	reg = assay_registry_pg_new("postgresql://assay@127.0.0.1:1/assay?connect_timeout=2",
	                            errstr, sizeof(errstr));
	assert_non_null(reg);
	codec = assay_codec_new(reg, 0, errstr, sizeof(errstr));
	assert_non_null(codec);
	assert_int_equal(
	        assay_codec_decode(codec, frame, sizeof(frame), &d, errstr, sizeof(errstr)),
	        ASSAY_ERR_RETRY);
	assert_non_null(strstr(errstr, "registry connect"));
	assert_null(strchr(errstr, '\n'));
	assert_int_equal(assay_registry_register(reg, "\"string\"", &id, errstr, sizeof(errstr)),
	                 ASSAY_ERR_RETRY);
	assert_int_equal(assay_registry_lookup(reg, 1, &text, errstr, sizeof(errstr)),
	                 ASSAY_ERR_RETRY);
	assert_null(text);
	assay_codec_destroy(codec);
	assay_registry_destroy(reg);

	/* a URL libpq cannot parse fails at once */
	assert_null(assay_registry_pg_new("postgresql://[::1", errstr, sizeof(errstr)));
	assert_non_null(strstr(errstr, "registry: bad postgresql url"));
}

static void test_memory_registry(void **state)
{
	struct assay_registry *reg;
	char errstr[256] = "";
	int32_t a = 0, b = 0, c = 0;
	char *text = NULL;

	(void)state;
	reg = assay_registry_memory_new(errstr, sizeof(errstr));
	assert_non_null(reg);
	assert_int_equal(assay_registry_register(reg, v1_json, &a, errstr, sizeof(errstr)), 0);
	assert_int_equal(assay_registry_register(reg, v2_json, &b, errstr, sizeof(errstr)), 0);
	assert_int_not_equal(a, b);
	/* whitespace, docs and defaults do not change the normalized text */
	assert_int_equal(
	        assay_registry_register(reg,
	                                " { \"namespace\" : \"org.assay.test\", \"type\": "
	                                "\"record\", \"name\":\"Thing\",\n\t\"doc\":\"d\","
	                                "\"fields\":[{\"name\":\"id\",\"type\":\"string\"},"
	                                "{\"name\":\"count\",\"type\":\"long\"},"
	                                "{\"name\":\"level\",\"type\":\"int\"}]}",
	                                &c, errstr, sizeof(errstr)),
	        0);
	assert_int_equal(c, b);
	assert_int_equal(assay_registry_lookup(reg, b, &text, errstr, sizeof(errstr)), 0);
	assert_non_null(strstr(text, "\"level\""));
	assert_null(strstr(text, "default"));
	free(text);
	text = NULL;
	assert_int_equal(assay_registry_lookup(reg, 77, &text, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_string_equal(errstr, "unknown schema id 77");
	assert_null(text);
	assert_int_equal(
	        assay_registry_register(reg, "{\"type\":\"nonsense\"}", &c, errstr, sizeof(errstr)),
	        ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "schema parse"));
	assay_registry_destroy(reg);
	assay_registry_destroy(NULL);
}

static void test_encode_errors_and_setters(void **state)
{
	struct fixture *f = *state;
	const struct assay_schema *v1 = NULL, *v2 = NULL;
	struct assay_codec *small;
	avro_value_t value, other;
	void *buf = NULL;
	size_t len = 0;
	char errstr[256] = "";

	assert_int_equal(assay_codec_register(f->codec, v1_json, &v1, errstr, sizeof(errstr)), 0);
	assert_int_equal(assay_codec_register(f->codec, v2_json, &v2, errstr, sizeof(errstr)), 0);
	assert_int_equal(assay_codec_schema_by_name(f->codec, "org.nowhere.Missing", &v1, errstr,
	                                            sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	assert_string_equal(errstr, "codec: no schema named org.nowhere.Missing");
	assert_int_equal(assay_codec_value_new(v1, &value), 0);
	assay_test_fill_value(&value, 1);

	/* setters: unknown field, wrong type, unknown enum symbol */
	assert_int_equal(assay_value_set_string(&value, "nope", "x"), ASSAY_ERR_FATAL);
	assert_int_equal(assay_value_set_long(&value, "id", 1), ASSAY_ERR_FATAL);
	assert_int_equal(assay_value_set_int(&value, "count", 1), ASSAY_ERR_FATAL);
	assert_int_equal(assay_value_set_enum(&value, "state", "HALF_OPEN"), ASSAY_ERR_REJECT);
	assert_int_equal(assay_value_set_null_or_string(&value, "note", "a note"), 0);
	{
		const char *note = NULL;

		assert_int_equal(assay_value_opt_string(&value, "note", &note, NULL), 0);
		assert_string_equal(note, "a note");
	}

	/* a value of another schema */
	assert_int_equal(assay_codec_value_new(v2, &other), 0);
	assay_test_fill_value(&other, 1);
	assert_int_equal(
	        assay_codec_encode(f->codec, v1, &other, &buf, &len, errstr, sizeof(errstr)),
	        ASSAY_ERR_FATAL);
	assert_non_null(strstr(errstr, "encode: value is not of schema org.assay.test.Thing"));
	avro_value_decref(&other);

	/* over the limit */
	small = assay_codec_new(f->reg, 20, errstr, sizeof(errstr));
	assert_non_null(small);
	assert_int_equal(assay_codec_encode(small, v1, &value, &buf, &len, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "encode: message too large"));
	assay_codec_destroy(small);
	avro_value_decref(&value);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_round_trip_every_embedded_schema, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_round_trip_every_avro_type, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_malformed_frames, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_decode_by_writer_schema, setup, teardown),
	        cmocka_unit_test(test_unreachable_registry_is_retry),
	        cmocka_unit_test(test_memory_registry),
	        cmocka_unit_test_setup_teardown(test_encode_errors_and_setters, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
