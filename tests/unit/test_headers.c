/*
 * Header lists (outbox encoding, librdkafka conversion) and name-based event ids.
 */
#include "assay_test.h"
#include "assay_err.h"
#include "assay_headers.h"
#include "assay_uuid.h"

#include <stdlib.h>
#include <string.h>

static void test_encode_decode_round_trip(void **state)
{
	struct assay_headers h, back;
	unsigned char *buf;
	size_t len;
	char errstr[128];
	const unsigned char binary[] = {0, 1, 2, 0xff, 0};

	(void)state;
	assay_headers_init(&h);
	assay_headers_init(&back);
	assert_int_equal(assay_headers_add_str(&h, "event_type", "org.assay.v1.EvidenceAccepted"),
	                 0);
	assert_int_equal(assay_headers_add(&h, "raw", binary, sizeof(binary)), 0);
	assert_int_equal(assay_headers_add(&h, "empty", NULL, 0), 0);
	assert_int_equal(assay_headers_add_str(&h, "event_type", "second"), 0);
	assert_int_equal(assay_headers_encode(&h, &buf, &len), 0);
	assert_non_null(buf);
	assert_int_equal(assay_headers_decode(&back, buf, len, errstr, sizeof(errstr)), 0);
	assert_int_equal(back.count, 4);
	for (size_t i = 0; i < h.count; i++) {
		assert_string_equal(back.items[i].name, h.items[i].name);
		assert_int_equal(back.items[i].size, h.items[i].size);
		if (h.items[i].size)
			assert_memory_equal(back.items[i].value, h.items[i].value, h.items[i].size);
	}
	/* find returns the first of a repeated name */
	assert_memory_equal(assay_headers_find(&back, "event_type")->value, "org.assay", 9);
	assert_null(assay_headers_find(&back, "missing"));
	free(buf);
	assay_headers_release(&h);
	assay_headers_release(&back);
}

static void test_empty_list_encodes_to_nothing(void **state)
{
	struct assay_headers h;
	unsigned char *buf = (unsigned char *)"x";
	size_t len = 9;

	(void)state;
	assay_headers_init(&h);
	assert_int_equal(assay_headers_encode(&h, &buf, &len), 0);
	assert_null(buf);
	assert_int_equal(len, 0);
}

static void test_malformed_encoding_is_rejected(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
		const char *why;
	} cases[] = {
	        {"\x00", 1, "truncated name length"},
	        {"\x00\x00", 2, "bad name length 0"},
	        {"\x00\x05"
	         "ab",
	         4, "bad name length 5"},
	        {"\x00\x01"
	         "a"
	         "\x00\x00\x00\x09"
	         "xy",
	         9, "value of a truncated"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct assay_headers h;
		char errstr[128] = "";

		assay_headers_init(&h);
		assert_int_equal(assay_headers_decode(&h, cases[i].bytes, cases[i].len, errstr,
		                                      sizeof(errstr)),
		                 ASSAY_ERR_REJECT);
		assert_non_null(strstr(errstr, cases[i].why));
		assay_headers_release(&h);
	}
}

static void test_to_kafka_keeps_every_header(void **state)
{
	struct assay_headers h;
	rd_kafka_headers_t *k;
	const void *value;
	size_t size;

	(void)state;
	assay_headers_init(&h);
	assert_int_equal(assay_headers_add_str(&h, "a", "1"), 0);
	assert_int_equal(assay_headers_add_str(&h, "b", "22"), 0);
	k = assay_headers_to_kafka(&h);
	assert_non_null(k);
	assert_int_equal(rd_kafka_header_cnt(k), 2);
	assert_int_equal(rd_kafka_header_get_last(k, "b", &value, &size), 0);
	assert_int_equal(size, 2);
	assert_memory_equal(value, "22", 2);
	rd_kafka_headers_destroy(k);
	assay_headers_release(&h);
}

static void test_uuids(void **state)
{
	char a[ASSAY_UUID_LEN], b[ASSAY_UUID_LEN], c[ASSAY_UUID_LEN];

	(void)state;
	/* name-based: the same name gives the same id, another name another id */
	assay_uuid_from_name("svc/topic/0/42/0", 16, a);
	assay_uuid_from_name("svc/topic/0/42/0", 16, b);
	assay_uuid_from_name("svc/topic/0/42/1", 16, c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	/* the maker of hot paths gives the same ids */
	{
		struct assay_uuid_maker *maker = assay_uuid_maker_new();
		char d[ASSAY_UUID_LEN];

		assert_non_null(maker);
		assay_uuid_make(maker, "svc/topic/0/42/0", 16, d);
		assert_string_equal(a, d);
		assay_uuid_make(maker, "svc/topic/0/42/1", 16, d);
		assert_string_equal(c, d);
		assay_uuid_maker_destroy(maker);
	}
	assert_int_equal(strlen(a), 36);
	assert_int_equal(a[14], '8'); /* version 8 */
	assert_true(strchr("89ab", a[19]) != NULL);
	/* random: version 4, different each time */
	assert_int_equal(assay_uuid_random(a), 0);
	assert_int_equal(assay_uuid_random(b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');
	assert_true(strchr("89ab", a[19]) != NULL);
	assert_true(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_encode_decode_round_trip),
	        cmocka_unit_test(test_empty_list_encodes_to_nothing),
	        cmocka_unit_test(test_malformed_encoding_is_rejected),
	        cmocka_unit_test(test_to_kafka_keeps_every_header),
	        cmocka_unit_test(test_uuids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
