/*
 * Writer schemas other than the reader's (services/domain/contracts/assay_contract.h): frames
 * written by avro-c with older, newer and incompatible writer schemas, read by
 *   - a reader type described by hand here (org.assay.test.Evolve), which covers every default
 *     kind, every promotion, enum symbols by name with and without a default, unions on either
 *     side, writer-only fields of every shape (skipped) and fields in another order;
 *   - the generated EvidenceSubmitted, from a newer writer (fields reordered and added, kind
 *     removed, size_bytes an int) and from writers it cannot read.
 * Refusals name the field and both types.
 */
#include "assay_test.h"
#include "assay_test_codec.h"
#include "contract_all.h"

#include "assay_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the hand-described reader ---- */

enum color { RED, GREEN, BLUE };

struct evolve {
	struct assay_str name;
	int64_t count; /* writer int */
	double ratio;  /* writer float */
	float fl;      /* writer long */
	bool has_note;
	struct assay_str note;  /* writer plain string */
	int32_t level;          /* missing: default 7 */
	struct assay_str label; /* missing: default "none" */
	bool flag;              /* missing: default true */
	double share;           /* missing: default 100.0 */
	bool has_maybe;
	int64_t maybe; /* missing: default null */
	int32_t color;
	struct {
		struct assay_str *items;
		size_t count;
	} tags;
	struct {
		struct assay_str *items;
		size_t count;
	} none;                  /* missing: default [] */
	struct assay_bytes blob; /* writer string */
	struct assay_str text;   /* writer bytes */
};

static const char *const color_symbols[] = {"RED", "GREEN", "BLUE"};
static const struct assay_ct_type color_type = {
        .kind = ASSAY_CT_ENUM,
        .name = "org.assay.test.Color",
        .size = sizeof(int32_t),
        .symbols = color_symbols,
        .nsymbols = 3,
        .default_symbol = GREEN,
};
static const struct assay_ct_type color_strict_type = {
        .kind = ASSAY_CT_ENUM,
        .name = "org.assay.test.Color",
        .size = sizeof(int32_t),
        .symbols = color_symbols,
        .nsymbols = 3,
        .default_symbol = -1,
};
static const struct assay_ct_type tags_type = {
        .kind = ASSAY_CT_ARRAY,
        .name = "array",
        .size = 2 * sizeof(void *),
        .default_symbol = -1,
        .items = &assay_ct_string_type,
};
static const struct assay_ct_default d_level = {.i = 7}, d_label = {.s = "none", .len = 4},
                                     d_flag = {.i = 1}, d_share = {.d = 100.0},
                                     d_null = {.is_null = true}, d_empty = {.i = 0};

#define FIELD(n, t) .name = #n, .type = (t), .offset = offsetof(struct evolve, n)
#define EVOLVE_FIELDS(enum_type)                                                                  \
	{FIELD(name, &assay_ct_string_type)}, {FIELD(count, &assay_ct_long_type)},                \
	        {FIELD(ratio, &assay_ct_double_type)}, {FIELD(fl, &assay_ct_float_type)},         \
	        {FIELD(note, &assay_ct_string_type), .optional = true,                            \
	         .present_offset = offsetof(struct evolve, has_note), .dflt = &d_null},           \
	        {FIELD(level, &assay_ct_int_type), .dflt = &d_level},                             \
	        {FIELD(label, &assay_ct_string_type), .dflt = &d_label},                          \
	        {FIELD(flag, &assay_ct_boolean_type), .dflt = &d_flag},                           \
	        {FIELD(share, &assay_ct_double_type), .dflt = &d_share},                          \
	        {FIELD(maybe, &assay_ct_long_type), .optional = true,                             \
	         .present_offset = offsetof(struct evolve, has_maybe), .dflt = &d_null},          \
	        {FIELD(color, (enum_type))}, {FIELD(tags, &tags_type)},                           \
	        {FIELD(none, &tags_type), .dflt = &d_empty}, {FIELD(blob, &assay_ct_bytes_type)}, \
	{                                                                                         \
		FIELD(text, &assay_ct_string_type)                                                \
	}

static const struct assay_ct_field evolve_fields[] = {EVOLVE_FIELDS(&color_type)};
static const struct assay_ct_field evolve_strict_fields[] = {EVOLVE_FIELDS(&color_strict_type)};
static const struct assay_ct_type evolve_type = {
        .kind = ASSAY_CT_RECORD,
        .name = "org.assay.test.Evolve",
        .size = sizeof(struct evolve),
        .fields = evolve_fields,
        .nfields = sizeof(evolve_fields) / sizeof(evolve_fields[0]),
        .default_symbol = -1,
};
static const struct assay_ct_type evolve_strict_type = {
        .kind = ASSAY_CT_RECORD,
        .name = "org.assay.test.Evolve",
        .size = sizeof(struct evolve),
        .fields = evolve_strict_fields,
        .nfields = sizeof(evolve_strict_fields) / sizeof(evolve_strict_fields[0]),
        .default_symbol = -1,
};

/* A writer in another namespace, fields in another order, some only it has. */
static const char writer_v1[] =
        "{\"type\":\"record\",\"name\":\"Evolve\",\"namespace\":\"org.assay.old\",\"fields\":["
        "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
        "{\"name\":\"extra\",\"type\":{\"type\":\"record\",\"name\":\"Extra\",\"fields\":["
        "{\"name\":\"a\",\"type\":\"long\"},{\"name\":\"b\",\"type\":{\"type\":\"array\","
        "\"items\":{\"type\":\"map\",\"values\":[\"null\",\"double\"]}}}]}},"
        "{\"name\":\"color\",\"type\":{\"type\":\"enum\",\"name\":\"Color\","
        "\"symbols\":[\"BLUE\",\"RED\",\"PURPLE\"]}},"
        "{\"name\":\"name\",\"type\":\"string\"},"
        "{\"name\":\"count\",\"type\":\"int\"},"
        "{\"name\":\"ratio\",\"type\":\"float\"},"
        "{\"name\":\"fl\",\"type\":\"long\"},"
        "{\"name\":\"note\",\"type\":\"string\"},"
        "{\"name\":\"blob\",\"type\":\"string\"},"
        "{\"name\":\"text\",\"type\":\"bytes\"},"
        "{\"name\":\"tail\",\"type\":[\"null\",\"string\"]}]}";

struct fixture {
	struct assay_registry *reg;
	struct assay_codec *codec;
	struct assay_contracts *cx;
	struct assay_arena arena;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char errstr[256] = "";

	if (f == NULL)
		return -1;
	f->reg = assay_registry_memory_new(errstr, sizeof(errstr));
	f->codec = f->reg ? assay_codec_new(f->reg, 1 << 20, errstr, sizeof(errstr)) : NULL;
	if (f->codec == NULL ||
	    assay_codec_register_embedded(f->codec, errstr, sizeof(errstr)) != 0 ||
	    (f->cx = assay_contracts_new(f->codec, errstr, sizeof(errstr))) == NULL) {
		fprintf(stderr, "setup: %s\n", errstr);
		assay_codec_destroy(f->codec);
		assay_registry_destroy(f->reg);
		free(f);
		return -1;
	}
	assay_arena_init(&f->arena);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assay_arena_release(&f->arena);
	assay_contracts_destroy(f->cx);
	assay_codec_destroy(f->codec);
	assay_registry_destroy(f->reg);
	free(f);
	return 0;
}

/* A value of the writer schema json, filled with seed and then set by the caller. */
static const struct assay_schema *writer(struct fixture *f, const char *json, avro_value_t *v,
                                         unsigned seed)
{
	const struct assay_schema *s;
	char errstr[256] = "";

	if (assay_codec_register(f->codec, json, &s, errstr, sizeof(errstr)) != 0)
		fail_msg("register: %s", errstr);
	assert_int_equal(assay_codec_value_new(s, v), 0);
	assay_test_fill_value(v, seed);
	return s;
}

static void assert_str(struct assay_str got, const char *want, size_t len)
{
	assert_int_equal(got.len, len);
	if (len > 0)
		assert_memory_equal(got.s, want, len);
}

static void test_older_newer_writer(void **state)
{
	struct fixture *f = *state;
	avro_value_t v, tags, tag;
	const struct assay_schema *s = writer(f, writer_v1, &v, 3);
	const char *name, *note, *blob, *tagstr;
	const void *text;
	size_t name_len, note_len, blob_len, text_len, ntags, tag_len;
	int32_t count;
	double ratio;
	struct evolve e;
	char errstr[256] = "";
	void *frame;
	size_t len;

	assert_int_equal(assay_value_set_enum(&v, "color", "BLUE"), 0);
	assert_int_equal(assay_value_set_long(&v, "fl", -123456789012LL), 0);
	assay_test_avroc_frame(s->id, &v, &frame, &len);
	assert_int_equal(assay_contract_decode(f->cx, &evolve_type, frame, len, &f->arena, &e,
	                                       errstr, sizeof(errstr)),
	                 0);
	assert_int_equal(assay_value_string(&v, "name", &name, &name_len), 0);
	assert_str(e.name, name, name_len);
	assert_int_equal(assay_value_int(&v, "count", &count), 0);
	assert_true(e.count == count);
	assert_int_equal(assay_value_double(&v, "ratio", &ratio), 0);
	assert_true(e.ratio == ratio);
	assert_true(e.fl == (float)-123456789012LL);
	assert_int_equal(assay_value_string(&v, "note", &note, &note_len), 0);
	assert_true(e.has_note);
	assert_str(e.note, note, note_len);
	assert_int_equal(assay_value_string(&v, "blob", &blob, &blob_len), 0);
	assert_int_equal(e.blob.len, blob_len);
	assert_memory_equal(e.blob.p, blob, blob_len);
	assert_int_equal(assay_value_bytes(&v, "text", &text, &text_len), 0);
	assert_str(e.text, text, text_len);
	assert_int_equal(e.color, BLUE);
	assert_int_equal(assay_value_array(&v, "tags", &tags, &ntags), 0);
	assert_int_equal(e.tags.count, ntags);
	for (size_t i = 0; i < ntags; i++) {
		assert_int_equal(assay_value_array_get(&tags, i, &tag), 0);
		assert_int_equal(assay_value_as_string(&tag, &tagstr, &tag_len), 0);
		assert_str(e.tags.items[i], tagstr, tag_len);
	}
	/* the defaults of what this writer lacks */
	assert_int_equal(e.level, 7);
	assert_str(e.label, "none", 4);
	assert_true(e.flag);
	assert_true(e.share == 100.0);
	assert_false(e.has_maybe);
	assert_int_equal(e.none.count, 0);
	assert_null(e.none.items);
	free(frame);

	/* a symbol the reader lacks takes the reader's default, or is refused without one */
	assert_int_equal(assay_value_set_enum(&v, "color", "PURPLE"), 0);
	assay_test_avroc_frame(s->id, &v, &frame, &len);
	assay_arena_reset(&f->arena);
	assert_int_equal(assay_contract_decode(f->cx, &evolve_type, frame, len, &f->arena, &e,
	                                       errstr, sizeof(errstr)),
	                 0);
	assert_int_equal(e.color, GREEN);
	assert_int_equal(assay_contract_decode(f->cx, &evolve_strict_type, frame, len, &f->arena,
	                                       &e, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "enum symbol PURPLE is not in the reader's"));
	assert_non_null(strstr(errstr, "field color"));
	free(frame);
	avro_value_decref(&v);
}

/* The writer schema json with one field's type replaced, to test what cannot be read. */
static void expect_refusal(struct fixture *f, const char *json, const char *why)
{
	avro_value_t v;
	const struct assay_schema *s = writer(f, json, &v, 1);
	struct evolve e;
	char errstr[256] = "";
	void *frame;
	size_t len;

	assay_test_avroc_frame(s->id, &v, &frame, &len);
	for (int twice = 0; twice < 2; twice++) { /* the second time from the cached plan */
		assert_int_equal(assay_contract_decode(f->cx, &evolve_type, frame, len, &f->arena,
		                                       &e, errstr, sizeof(errstr)),
		                 ASSAY_ERR_REJECT);
		if (strstr(errstr, why) == NULL)
			fail_msg("want \"%s\", got \"%s\"", why, errstr);
	}
	free(frame);
	avro_value_decref(&v);
}

/* writer_v1 with text replaced */
static char *variant(const char *from, const char *to)
{
	const char *at = strstr(writer_v1, from);
	size_t n = strlen(writer_v1) - strlen(from) + strlen(to) + 1;
	char *s = malloc(n);

	assert_non_null(at);
	assert_non_null(s);
	snprintf(s, n, "%.*s%s%s", (int)(at - writer_v1), writer_v1, to, at + strlen(from));
	return s;
}

static void test_refusals(void **state)
{
	struct fixture *f = *state;
	char *json;

	json = variant("{\"name\":\"name\",\"type\":\"string\"}",
	               "{\"name\":\"name\",\"type\":\"long\"}");
	expect_refusal(f, json, "field name: writer type long cannot be read as string");
	free(json);
	json = variant("{\"name\":\"name\",\"type\":\"string\"},", "");
	expect_refusal(f, json, "field name: missing from the writer's schema and has no default");
	free(json);
	json = variant("{\"name\":\"count\",\"type\":\"int\"}",
	               "{\"name\":\"count\",\"type\":\"double\"}");
	expect_refusal(f, json, "field count: writer type double cannot be read as long");
	free(json);
	json = variant("\"name\":\"Color\"", "\"name\":\"Colour\"");
	expect_refusal(f, json,
	               "field color: writer type Colour cannot be read as org.assay.test.Color");
	free(json);
}

/* A writer union into a field that is not optional: its null branch is refused when used. */
static void test_writer_union(void **state)
{
	struct fixture *f = *state;
	char *json = variant("{\"name\":\"name\",\"type\":\"string\"}",
	                     "{\"name\":\"name\",\"type\":[\"null\",\"string\",\"long\"]}");
	avro_value_t v, field, branch;
	const struct assay_schema *s = writer(f, json, &v, 2);
	struct evolve e;
	char errstr[256] = "";
	void *frame;
	size_t len;

	assert_int_equal(avro_value_get_by_name(&v, "name", &field, NULL), 0);
	assert_int_equal(avro_value_set_branch(&field, 1, &branch), 0);
	assert_int_equal(avro_value_set_string(&branch, "ok"), 0);
	assay_test_avroc_frame(s->id, &v, &frame, &len);
	assert_int_equal(assay_contract_decode(f->cx, &evolve_type, frame, len, &f->arena, &e,
	                                       errstr, sizeof(errstr)),
	                 0);
	assert_str(e.name, "ok", 2);
	free(frame);
	assert_int_equal(avro_value_set_branch(&field, 0, &branch), 0);
	assert_int_equal(avro_value_set_null(&branch), 0);
	assay_test_avroc_frame(s->id, &v, &frame, &len);
	assert_int_equal(assay_contract_decode(f->cx, &evolve_type, frame, len, &f->arena, &e,
	                                       errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "writer type null cannot be read as string"));
	free(frame);
	assert_int_equal(avro_value_set_branch(&field, 2, &branch), 0);
	assert_int_equal(avro_value_set_long(&branch, 5), 0);
	assay_test_avroc_frame(s->id, &v, &frame, &len);
	assert_int_equal(assay_contract_decode(f->cx, &evolve_type, frame, len, &f->arena, &e,
	                                       errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "writer type long cannot be read as string"));
	free(frame);
	avro_value_decref(&v);
	free(json);
}

/* The generated EvidenceSubmitted from a newer writer. */
static const char submitted_v2[] =
        "{\"type\":\"record\",\"name\":\"EvidenceSubmitted\",\"namespace\":\"org.assay.v1\","
        "\"fields\":["
        "{\"name\":\"attributes\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
        "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null},"
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"tenant_id\",\"type\":\"string\"},"
        "{\"name\":\"occurred_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-"
        "millis\"}},"
        "{\"name\":\"audit_id\",\"type\":\"string\"},"
        "{\"name\":\"client_id\",\"type\":\"string\"},"
        "{\"name\":\"evidence_id\",\"type\":\"string\"},"
        "{\"name\":\"source_system\",\"type\":\"string\"},"
        "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"EvidenceKind\","
        "\"symbols\":[\"SBOM\",\"POLICY\",\"OTHER\"]}},"
        "{\"name\":\"collected_at\",\"type\":\"long\"},"
        "{\"name\":\"sha256\",\"type\":\"string\"},"
        "{\"name\":\"size_bytes\",\"type\":\"int\"},"
        "{\"name\":\"labels\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
        "{\"name\":\"uri\",\"type\":\"string\"},"
        "{\"name\":\"claimed_controls\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}]}";

static void test_submitted_newer_writer(void **state)
{
	struct fixture *f = *state;
	avro_value_t v, attrs, val;
	const struct assay_schema *s = writer(f, submitted_v2, &v, 5);
	struct assay_evidence_submitted ev;
	const char *str, *key;
	size_t len, n;
	int32_t size;
	char errstr[256] = "";
	void *frame;

	assert_int_equal(assay_value_set_enum(&v, "kind", "SBOM"), 0);
	assay_test_avroc_frame(s->id, &v, &frame, &len);
	if (assay_evidence_submitted_decode(f->cx, frame, len, &f->arena, &ev, errstr,
	                                    sizeof(errstr)) != 0)
		fail_msg("%s", errstr);
	assert_int_equal(assay_value_string(&v, "audit_id", &str, &n), 0);
	assert_str(ev.audit_id, str, n);
	assert_int_equal(assay_value_string(&v, "uri", &str, &n), 0);
	assert_str(ev.uri, str, n);
	assert_int_equal(assay_value_int(&v, "size_bytes", &size), 0);
	assert_true(ev.size_bytes == size);
	assert_int_equal(ev.kind, ASSAY_EVIDENCE_KIND_OTHER); /* SBOM: the enum's default */
	assert_int_equal(assay_value_map(&v, "attributes", &attrs, &n), 0);
	assert_int_equal(ev.attributes.count, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(assay_value_map_get(&attrs, i, &key, &val), 0);
		assert_str(ev.attributes.keys[i], key, strlen(key));
		assert_int_equal(assay_value_as_string(&val, &str, &len), 0);
		assert_str(ev.attributes.values[i], str, len);
	}
	free(frame);
	assay_arena_reset(&f->arena);
	assert_int_equal(assay_value_set_enum(&v, "kind", "POLICY"), 0);
	assay_test_avroc_frame(s->id, &v, &frame, &len);
	assert_int_equal(assay_evidence_submitted_decode(f->cx, frame, len, &f->arena, &ev, errstr,
	                                                 sizeof(errstr)),
	                 0);
	assert_int_equal(ev.kind, ASSAY_EVIDENCE_KIND_POLICY); /* by name, not index */
	free(frame);
	avro_value_decref(&v);
}

/* A writer without kind: the field has no default (the enum's default is for unknown symbols
 * only), so the reader cannot fill it. */
static void test_submitted_without_kind(void **state)
{
	struct fixture *f = *state;
	const char *at = strstr(submitted_v2, "{\"name\":\"kind\"");
	const char *end = strstr(at, "{\"name\":\"collected_at\"");
	char json[sizeof(submitted_v2)];
	avro_value_t v;
	const struct assay_schema *s;
	struct assay_evidence_submitted ev;
	char errstr[256] = "";
	void *frame;
	size_t len;

	snprintf(json, sizeof(json), "%.*s%s", (int)(at - submitted_v2), submitted_v2, end);
	s = writer(f, json, &v, 6);
	assay_test_avroc_frame(s->id, &v, &frame, &len);
	assert_int_equal(assay_evidence_submitted_decode(f->cx, frame, len, &f->arena, &ev, errstr,
	                                                 sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "field kind: missing from the writer's schema"));
	free(frame);
	avro_value_decref(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_older_newer_writer),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_writer_union),
	        cmocka_unit_test(test_submitted_newer_writer),
	        cmocka_unit_test(test_submitted_without_kind),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
