/*
 * Avro body validation: every kind of malformed body refused with its own message, valid
 * bodies accepted and then decoded cleanly by avro-c, and a bounded random-mutation run that
 * must never crash, leak or let through a body avro-c cannot decode.
 */
#include "assay_test.h"
#include "assay_test_codec.h"
#include "assay_avro_check.h"
#include "assay_err.h"

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STRING "\"string\""
#define S_BYTES  "\"bytes\""
#define S_INT    "\"int\""
#define S_LONG   "\"long\""
#define S_BOOL   "\"boolean\""
#define S_FLOAT  "\"float\""
#define S_DOUBLE "\"double\""
#define S_NULL   "\"null\""
#define S_ENUM   "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}"
#define S_UNION  "[\"null\",\"string\"]"
#define S_FIXED  "{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}"
#define S_ARRAY  "{\"type\":\"array\",\"items\":\"long\"}"
#define S_NULLS  "{\"type\":\"array\",\"items\":\"null\"}"
#define S_MAP    "{\"type\":\"map\",\"values\":\"int\"}"
#define S_RECORD                                                                             \
	"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}," \
	"{\"name\":\"b\",\"type\":\"string\"}]}"
#define S_NAMED_REF                                                                           \
	"{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"x\",\"type\":{\"type\":" \
	"\"enum\",\"name\":\"E2\",\"symbols\":[\"A\"]}},{\"name\":\"y\",\"type\":\"E2\"}]}"
#define S_LIST                                                                                  \
	"{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"v\",\"type\":\"int\"}," \
	"{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}"

/* a record touching every Avro type, for the mutation run */
#define S_RICH                                                                                    \
	"{\"type\":\"record\",\"name\":\"Rich\",\"namespace\":\"org.assay.test\",\"fields\":["    \
	"{\"name\":\"n\",\"type\":\"null\"},{\"name\":\"b\",\"type\":\"boolean\"},"               \
	"{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"                   \
	"{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"               \
	"{\"name\":\"by\",\"type\":\"bytes\"},{\"name\":\"s\",\"type\":\"string\"},"              \
	"{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"X\",\"Y\"," \
	"\"Z\"]}},{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"Hash\",\"size\":6}},"  \
	"{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":" \
	"\"Item\",\"fields\":[{\"name\":\"k\",\"type\":\"Kind\"},{\"name\":\"t\",\"type\":["      \
	"\"null\",\"string\",\"long\"]}]}}},"                                                     \
	"{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"Item\"]}},"            \
	"{\"name\":\"h\",\"type\":[\"null\",\"Hash\"]},"                                          \
	"{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}]}"

struct body_case {
	const char *name;
	const char *schema;
	const char *body; /* bytes, as a C string literal with escapes */
	size_t len;
	const char *expect; /* substring of the rejection, or NULL: accepted */
};

#define B(s) s, sizeof(s) - 1

static const struct body_case cases[] = {
        /* strings, bytes, lengths */
        {"string ok", S_STRING,
         B("\x06"
           "abc"),
         NULL},
        {"empty string ok", S_STRING, B("\x00"), NULL},
        {"string multibyte ok", S_STRING,
         B("\x12"
           "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
         NULL},
        {"string negative length", S_STRING, B("\x01"), "negative length: string"},
        {"bytes negative length", S_BYTES,
         B("\x03"
           "ab"),
         "negative length: bytes"},
        {"string huge length", S_STRING,
         B("\x80\x80\x80\x80\x80\x80\x01"
           "ab"),
         "truncated string: needs"},
        {"string truncated", S_STRING,
         B("\x0a"
           "ab"),
         "truncated string: needs 5 bytes, 2 left"},
        {"bytes truncated", S_BYTES,
         B("\x0a"
           "ab"),
         "truncated bytes: needs 5 bytes"},
        {"bytes with nul ok", S_BYTES, B("\x04\x00\xff"), NULL},
        {"empty body", S_STRING, B(""), "truncated string: varint runs past the end"},
        {"varint too long", S_LONG, B("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"),
         "varint too long: long over 10 bytes"},
        {"varint overflow", S_LONG, B("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
         "varint overflow: long exceeds 64 bits"},
        {"long max ok", S_LONG, B("\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"), NULL},
        {"long min ok", S_LONG, B("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), NULL},
        {"varint truncated", S_LONG, B("\x80"), "truncated long: varint runs past the end"},
        {"int too long", S_INT, B("\x80\x80\x80\x80\x80\x00"), "varint too long: int over 5 bytes"},
        {"int out of range", S_INT, B("\xff\xff\xff\xff\x1f"), "int out of range"},
        {"int min ok", S_INT, B("\xff\xff\xff\xff\x0f"), NULL},
        /* UTF-8 */
        {"utf-8 overlong 2-byte", S_STRING, B("\x04\xc0\x80"), "invalid utf-8 in string at byte 1"},
        {"utf-8 overlong 3-byte", S_STRING, B("\x06\xe0\x80\xaf"), "invalid utf-8"},
        {"utf-8 overlong 4-byte", S_STRING, B("\x08\xf0\x80\x80\xaf"), "invalid utf-8"},
        {"utf-8 surrogate", S_STRING, B("\x06\xed\xa0\x80"), "invalid utf-8"},
        {"utf-8 beyond U+10FFFF", S_STRING, B("\x08\xf4\x90\x80\x80"), "invalid utf-8"},
        {"utf-8 F5 lead", S_STRING, B("\x08\xf5\x80\x80\x80"), "invalid utf-8"},
        {"utf-8 lone continuation", S_STRING,
         B("\x04"
           "a\x80"),
         "invalid utf-8 in string at byte 2"},
        {"utf-8 cut sequence", S_STRING,
         B("\x04"
           "a\xe2"),
         "invalid utf-8"},
        {"utf-8 sequence cut by length", S_STRING,
         B("\x04"
           "a\xe2\x82\xac"),
         "invalid utf-8"},
        {"string nul byte", S_STRING,
         B("\x06"
           "a\x00"
           "b"),
         "string contains a nul byte"},
        /* fixed-size primitives */
        {"boolean ok", S_BOOL, B("\x01"), NULL},
        {"boolean invalid", S_BOOL, B("\x02"), "invalid boolean byte 0x02"},
        {"boolean truncated", S_BOOL, B(""), "truncated boolean"},
        {"float truncated", S_FLOAT, B("\x00\x00\x80"), "truncated float: needs 4 bytes, 3 left"},
        {"double truncated", S_DOUBLE, B("\x00\x00\x00\x00\x00\x00\xf0"), "truncated double"},
        {"double ok", S_DOUBLE, B("\x00\x00\x00\x00\x00\x00\xf0\x3f"), NULL},
        {"null ok", S_NULL, B(""), NULL},
        {"null trailing", S_NULL, B("\x00"), "trailing bytes: 1 after the value"},
        /* enum, union, fixed */
        {"enum ok", S_ENUM, B("\x04"), NULL},
        {"enum index too big", S_ENUM, B("\x06"), "enum index 3 out of range: E has 3 symbols"},
        {"enum index negative", S_ENUM, B("\x01"), "enum index -1 out of range"},
        {"union null ok", S_UNION, B("\x00"), NULL},
        {"union string ok", S_UNION, B("\x02\x02x"), NULL},
        {"union branch too big", S_UNION, B("\x04\x02x"),
         "union branch index 2 out of range: 2 branches"},
        {"union branch negative", S_UNION, B("\x01"), "union branch index -1 out of range"},
        {"fixed ok", S_FIXED, B("abcd"), NULL},
        {"fixed truncated", S_FIXED, B("abc"), "truncated fixed: needs 4 bytes, 3 left"},
        {"fixed trailing", S_FIXED, B("abcde"), "trailing bytes"},
        /* arrays and maps */
        {"array ok", S_ARRAY, B("\x04\x02\x04\x00"), NULL},
        {"array empty ok", S_ARRAY, B("\x00"), NULL},
        {"array two blocks ok", S_ARRAY, B("\x02\x02\x02\x04\x00"), NULL},
        {"array negative count with size ok", S_ARRAY, B("\x03\x04\x02\x04\x00"), NULL},
        {"array negative block size", S_ARRAY, B("\x03\x01\x02\x04\x00"),
         "negative block size: array block of -1 bytes"},
        {"array block size beyond end", S_ARRAY, B("\x03\x14\x02\x04\x00"),
         "truncated array block: needs 10 bytes"},
        {"array block size mismatch", S_ARRAY, B("\x03\x06\x02\x04\x00\x00"),
         "block size mismatch: array block declares 3 bytes, items take 2"},
        {"array count beyond end", S_ARRAY, B("\x80\x80\x80\x80\x80\x80\x01\x02\x00"),
         "truncated array: block of"},
        {"array count overflow", S_ARRAY, B("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
         "array block count overflow"},
        {"array unterminated", S_ARRAY, B("\x02\x02"),
         "truncated array block count: varint runs past the end"},
        {"null array ok", S_NULLS, B("\x06\x00"), NULL},
        {"null array too many", S_NULLS, B("\x80\x80\x80\x01\x00"), "too many zero-size items"},
        {"map ok", S_MAP, B("\x04\x02k\x02\x02j\x04\x00"), NULL},
        {"map negative count with size ok", S_MAP, B("\x01\x06\x02k\x02\x00"), NULL},
        {"map key invalid utf-8", S_MAP, B("\x02\x02\xff\x02\x00"), "invalid utf-8"},
        {"map key truncated", S_MAP, B("\x02\x08k"), "truncated"},
        /* records, named references, trailing bytes */
        {"record ok", S_RECORD, B("\x02\x02x"), NULL},
        {"record field truncated", S_RECORD, B("\x02\x06x"),
         "truncated string: needs 3 bytes, 1 left at byte 2 (field b)"},
        {"record trailing", S_RECORD, B("\x02\x02xyz"), "trailing bytes: 2 after the value"},
        {"named reference ok", S_NAMED_REF, B("\x00\x00"), NULL},
        {"named reference enum out of range", S_NAMED_REF, B("\x00\x02"),
         "enum index 1 out of range: E2 has 1 symbols at byte 1 (field y)"},
};

static avro_schema_t parse(const char *json)
{
	avro_schema_t schema = NULL;

	if (avro_schema_from_json_length(json, strlen(json), &schema) != 0)
		fail_msg("schema parse: %s: %s", avro_strerror(), json);
	return schema;
}

/* Decodes body with avro-c (only after assay_avro_check accepted it): must succeed and use
 * every byte. */
static void assert_avro_c_decodes(avro_schema_t schema, const void *body, size_t len)
{
	avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
	avro_reader_t reader = avro_reader_memory(body, (int64_t)len);
	avro_value_t value;
	size_t size = 0;
	char extra;

	assert_non_null(iface);
	assert_non_null(reader);
	assert_int_equal(avro_generic_value_new(iface, &value), 0);
	if (avro_value_read(reader, &value) != 0)
		fail_msg("avro-c refused a body the check accepted: %s", avro_strerror());
	/* every byte used: nothing is left to read (is_eof only works for file readers) */
	assert_int_not_equal(avro_read(reader, &extra, 1), 0);
	/* avro-c writes minimal varints and single blocks: never longer than what it read */
	assert_int_equal(avro_value_sizeof(&value, &size), 0);
	assert_true(size <= len);
	avro_value_decref(&value);
	avro_reader_free(reader);
	avro_value_iface_decref(iface);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct body_case *c = &cases[i];
		avro_schema_t schema = parse(c->schema);
		char errstr[256] = "";
		int rc = assay_avro_check(schema, c->body, c->len, errstr, sizeof(errstr));

		if (c->expect == NULL) {
			if (rc != 0)
				fail_msg("%s: rejected: %s", c->name, errstr);
			assert_avro_c_decodes(schema, c->body, c->len);
		} else {
			if (rc != ASSAY_ERR_REJECT)
				fail_msg("%s: accepted (rc %d), expected \"%s\"", c->name, rc,
				         c->expect);
			if (strstr(errstr, c->expect) == NULL)
				fail_msg("%s: message \"%s\" lacks \"%s\"", c->name, errstr,
				         c->expect);
		}
		avro_schema_decref(schema);
	}
}

/* Distinct failure kinds get distinct messages (a table row's expectation is not a substring
 * of another kind's message). */
static void test_messages_distinct(void **state)
{
	static const char *const kinds[] = {
	        "varint too long", "varint overflow", "int out of range", "negative length",
	        "truncated",       "invalid utf-8",   "nul byte",         "union branch index",
	        "enum index",      "block size",      "trailing bytes",   "nesting depth",
	        "invalid boolean", "zero-size items", "count overflow",
	};
	size_t seen[sizeof(kinds) / sizeof(kinds[0])] = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		avro_schema_t schema;
		char errstr[256] = "";
		size_t matches = 0;

		if (cases[i].expect == NULL)
			continue;
		schema = parse(cases[i].schema);
		assert_int_equal(assay_avro_check(schema, cases[i].body, cases[i].len, errstr,
		                                  sizeof(errstr)),
		                 ASSAY_ERR_REJECT);
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			if (strstr(errstr, kinds[k]) != NULL) {
				matches++;
				seen[k]++;
			}
		}
		if (matches != 1)
			fail_msg("%s: \"%s\" matches %zu kinds", cases[i].name, errstr, matches);
		avro_schema_decref(schema);
	}
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (seen[k] == 0 && strcmp(kinds[k], "nesting depth") != 0)
			fail_msg("no table row covers \"%s\"", kinds[k]);
}

/* A linked list of n nodes: each node is a record (depth d) holding a union (d + 1). */
static size_t encode_list(unsigned char *buf, size_t size, int n)
{
	size_t len = 0;

	for (int i = 0; i < n; i++) {
		assert_true(len + 2 <= size);
		buf[len++] = 0x02;                     /* v = 1 */
		buf[len++] = i == n - 1 ? 0x00 : 0x02; /* next: null or Node */
	}
	return len;
}

static void test_nesting_depth(void **state)
{
	avro_schema_t schema = parse(S_LIST);
	unsigned char buf[256];
	char errstr[256] = "";
	size_t len;

	(void)state;
	/* node k sits at depth 2k; 33 nodes put the last node's fields at depth 65 */
	len = encode_list(buf, sizeof(buf), 32);
	assert_int_equal(assay_avro_check(schema, buf, len, errstr, sizeof(errstr)), 0);
	assert_avro_c_decodes(schema, buf, len);
	len = encode_list(buf, sizeof(buf), 33);
	assert_int_equal(assay_avro_check(schema, buf, len, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "nesting depth over 64"));
	len = encode_list(buf, sizeof(buf), 100);
	assert_int_equal(assay_avro_check(schema, buf, len, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "nesting depth over 64"));
	avro_schema_decref(schema);
}

static void test_null_body_and_errstr(void **state)
{
	avro_schema_t schema = parse(S_NULL);
	avro_schema_t str = parse(S_STRING);

	(void)state;
	assert_int_equal(assay_avro_check(schema, NULL, 0, NULL, 0), 0);
	assert_int_equal(assay_avro_check(str, NULL, 0, NULL, 0), ASSAY_ERR_REJECT);
	avro_schema_decref(schema);
	avro_schema_decref(str);
}

/* xorshift32: a fixed sequence on every platform */
static uint32_t next_rand(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

#define MUTATIONS 20000

static void test_random_mutations(void **state)
{
	static const unsigned char specials[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xed, 0xf4};
	avro_schema_t schema = parse(S_RICH);
	avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
	unsigned char valid[4096], body[4200];
	size_t valid_len = 0, accepted = 0, rejected = 0;
	uint32_t seed = 0x5eed1234u;
	avro_writer_t writer;
	avro_value_t value;

	(void)state;
	assert_non_null(iface);
	assert_int_equal(avro_generic_value_new(iface, &value), 0);
	assay_test_fill_value(&value, 7);
	writer = avro_writer_memory((const char *)valid, sizeof(valid));
	assert_int_equal(avro_value_write(writer, &value), 0);
	valid_len = (size_t)avro_writer_tell(writer);
	avro_writer_free(writer);
	avro_value_decref(&value);
	assert_int_equal(assay_avro_check(schema, valid, valid_len, NULL, 0), 0);

	for (int round = 0; round < MUTATIONS; round++) {
		size_t len = valid_len;
		int edits = 1 + (int)(next_rand(&seed) % 3);

		memcpy(body, valid, valid_len);
		for (int e = 0; e < edits && len > 0; e++) {
			size_t at = next_rand(&seed) % len;

			switch (next_rand(&seed) % 7) {
			case 0: /* flip one bit */
				body[at] ^= (unsigned char)(1u << (next_rand(&seed) % 8));
				break;
			case 1: /* a random byte */
				body[at] = (unsigned char)next_rand(&seed);
				break;
			case 2: /* a byte that is special to varints or UTF-8 */
				body[at] = specials[next_rand(&seed) % sizeof(specials)];
				break;
			case 3: /* truncate */
				len = at;
				break;
			case 4: /* insert a byte */
				if (len < sizeof(body)) {
					memmove(body + at + 1, body + at, len - at);
					body[at] = (unsigned char)next_rand(&seed);
					len++;
				}
				break;
			case 5: /* delete a byte */
				memmove(body + at, body + at + 1, len - at - 1);
				len--;
				break;
			default: /* a run of 0xff: huge or negative varints */
				for (size_t k = at; k < len && k < at + 10; k++)
					body[k] = 0xff;
				break;
			}
		}
		if (assay_avro_check(schema, body, len, NULL, 0) == 0) {
			assert_avro_c_decodes(schema, body, len);
			accepted++;
		} else {
			rejected++;
		}
	}
	print_message("%d mutations: %zu accepted and decoded, %zu rejected\n", MUTATIONS, accepted,
	              rejected);
	/* both outcomes occur, so the loop tests something either way */
	assert_true(accepted > 100);
	assert_true(rejected > 100);
	avro_value_iface_decref(iface);
	avro_schema_decref(schema);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_table),
	        cmocka_unit_test(test_messages_distinct),
	        cmocka_unit_test(test_nesting_depth),
	        cmocka_unit_test(test_null_body_and_errstr),
	        cmocka_unit_test(test_random_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
