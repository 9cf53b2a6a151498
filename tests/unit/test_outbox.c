/*
 * The outbox rows (assay_outbox.c): events written into one bytea field of a binary COPY row
 * read back exactly, malformed values are refused, never over-read, and a batch gives one
 * row per partition spanning all its messages, whatever order the events were emitted in.
 */
#include "assay_test.h"
#include "assay_loop_int.h"

#include <stdlib.h>
#include <string.h>

/* The bytea field of the single row of b: skips the COPY header, the field count and the
 * first field (an int32), returns the value and its length. */
static const char *only_field(const struct assay_copybin *b, size_t *len)
{
	const unsigned char *p = (const unsigned char *)b->data + 19 + 2 + 4 + 4;

	*len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	assert_int_equal(19 + 2 + 8 + 4 + *len, b->len);
	return (const char *)p + 4;
}

static void test_events_round_trip(void **state)
{
	struct assay_copybin b;
	struct out_event in[3] = {
	        {.seq = 0,
	         .topic = "assay.evidence.accepted",
	         .key = "au-1",
	         .key_len = 4,
	         .value = "\0\1\2value",
	         .value_len = 8},
	        {.seq = 1, .topic = "assay.evidence.rejected", .key = NULL, .value = NULL},
	        {.seq = 7, .topic = "t", .key = "", .key_len = 0, .value = "v", .value_len = 1},
	};
	const int64_t offsets[3] = {41, 41, INT64_C(1) << 40};
	const char headers[] = {0, 2, 'i', 'd', 0, 0, 0, 1, 'x'};
	struct outbox_event ev;
	const char *value;
	size_t at, len, pos = 0;

	(void)state;
	assay_copybin_init(&b);
	assay_copybin_row(&b, 2);
	assay_copybin_int32(&b, 5);
	at = assay_copybin_bytes_open(&b);
	assert_true(at > 0);
	for (int i = 0; i < 3; i++)
		assay_outbox_put(&b, offsets[i], &in[i], i == 0 ? headers : NULL,
		                 i == 0 ? sizeof(headers) : 0);
	assay_copybin_bytes_close(&b, at);
	assert_false(b.failed);
	value = only_field(&b, &len);

	for (int i = 0; i < 3; i++) {
		assert_int_equal(assay_outbox_get(value, len, &pos, &ev), 1);
		assert_int_equal(ev.source_offset, offsets[i]);
		assert_int_equal(ev.seq, in[i].seq);
		assert_int_equal(ev.topic_len, strlen(in[i].topic));
		assert_memory_equal(ev.topic, in[i].topic, ev.topic_len);
		if (in[i].key == NULL) {
			assert_null(ev.key);
		} else {
			assert_non_null(ev.key);
			assert_int_equal(ev.key_len, in[i].key_len);
			assert_memory_equal(ev.key, in[i].key, ev.key_len);
		}
		if (in[i].value == NULL) {
			assert_null(ev.value);
		} else {
			assert_int_equal(ev.value_len, in[i].value_len);
			assert_memory_equal(ev.value, in[i].value, ev.value_len);
		}
		if (i == 0) {
			assert_int_equal(ev.headers_len, sizeof(headers));
			assert_memory_equal(ev.headers, headers, sizeof(headers));
		} else {
			assert_null(ev.headers);
		}
	}
	assert_int_equal(assay_outbox_get(value, len, &pos, &ev), 0); /* the end */
	assay_copybin_release(&b);
}

static void test_malformed_values_are_refused(void **state)
{
	struct assay_copybin b;
	struct out_event in = {.seq = 3,
	                       .topic = "topic",
	                       .key = "key",
	                       .key_len = 3,
	                       .value = "value",
	                       .value_len = 5};
	struct outbox_event ev;
	const char *value;
	char *copy;
	size_t at, len, pos;
	int rc;

	(void)state;
	assay_copybin_init(&b);
	assay_copybin_row(&b, 2);
	assay_copybin_int32(&b, 1);
	at = assay_copybin_bytes_open(&b);
	assay_outbox_put(&b, 9, &in, NULL, 0);
	assay_copybin_bytes_close(&b, at);
	value = only_field(&b, &len);

	/* every cut of the value: an exact-size copy so the sanitizer sees any over-read */
	for (size_t cut = 1; cut < len; cut++) {
		copy = malloc(cut);
		assert_non_null(copy);
		memcpy(copy, value, cut);
		pos = 0;
		assert_int_equal(assay_outbox_get(copy, cut, &pos, &ev), -1);
		free(copy);
	}
	/* a length beyond the value */
	copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, value, len);
	copy[12] = 0x7f; /* the topic's length, high byte */
	pos = 0;
	assert_int_equal(assay_outbox_get(copy, len, &pos, &ev), -1);
	/* a NULL topic */
	memcpy(copy, value, len);
	memset(copy + 12, 0xff, 4);
	pos = 0;
	rc = assay_outbox_get(copy, len, &pos, &ev);
	assert_int_equal(rc, -1);
	free(copy);
	assay_copybin_release(&b);
}

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

struct parsed_row {
	int32_t stream;
	int64_t first, next;
	const char *events;
	size_t len;
};

/* The rows of a COPY binary buffer of (int4, int8, int8, bytea) rows. */
static size_t parse_rows(const struct assay_copybin *b, struct parsed_row *rows, size_t max)
{
	const unsigned char *p = (const unsigned char *)b->data + 19,
	                    *end = (const unsigned char *)b->data + b->len;
	size_t n = 0;

	while (p < end && n < max) {
		assert_int_equal(be(p, 2), 4);
		assert_int_equal(be(p + 2, 4), 4);
		rows[n].stream = (int32_t)be(p + 6, 4);
		assert_int_equal(be(p + 10, 4), 8);
		rows[n].first = (int64_t)be(p + 14, 8);
		assert_int_equal(be(p + 22, 4), 8);
		rows[n].next = (int64_t)be(p + 26, 8);
		rows[n].len = (size_t)be(p + 34, 4);
		rows[n].events = (const char *)p + 38;
		p += 38 + rows[n].len;
		n++;
	}
	assert_true(p == end);
	return n;
}

/*
 * A batch of messages from two assigned partitions and one that is not; the handler emitted
 * out of message order (as assay-risk does, scoring after it has read the whole batch). One
 * row per assigned partition, spanning its lowest to highest offset, with its events in
 * emitted order; the unassigned partition's event is not written.
 */
static void test_rows_of_a_batch(void **state)
{
	struct part parts[2] = {{.topic = "in", .partition = 0, .stream = 11},
	                        {.topic = "in", .partition = 3, .stream = 12}};
	struct assay_msg msgs[5] = {
	        {.topic = "in", .partition = 0, .offset = 100},
	        {.topic = "in", .partition = 3, .offset = 7},
	        {.topic = "in", .partition = 0, .offset = 101},
	        {.topic = "in", .partition = 0, .offset = 102},
	        {.topic = "in", .partition = 1, .offset = 5}, /* not assigned here */
	};
	/* emitted for messages 3, 0, 1, 3, 4 */
	struct out_event events[5] = {
	        {.msg = 3, .seq = 0, .topic = "out", .value = "a", .value_len = 1},
	        {.msg = 0, .seq = 0, .topic = "out", .value = "b", .value_len = 1},
	        {.msg = 1, .seq = 0, .topic = "out", .value = "c", .value_len = 1},
	        {.msg = 3, .seq = 1, .topic = "out", .value = "d", .value_len = 1},
	        {.msg = 4, .seq = 0, .topic = "out", .value = "e", .value_len = 1},
	};
	struct assay_batch batch = {.msgs = msgs, .count = 5, .events = events, .nevents = 5};
	struct assay_copybin b;
	struct parsed_row rows[4];
	struct outbox_event ev;
	size_t written, n, pos;

	(void)state;
	for (int i = 0; i < 5; i++)
		assay_headers_init(&events[i].headers);
	assay_copybin_init(&b);
	assert_int_equal(assay_outbox_rows(&b, parts, 2, &batch, &written), 0);
	assert_int_equal(written, 4);
	n = parse_rows(&b, rows, 4);
	assert_int_equal(n, 2);

	assert_int_equal(rows[0].stream, 11);
	assert_int_equal(rows[0].first, 100);
	assert_int_equal(rows[0].next, 103);
	pos = 0;
	const char *want0[] = {"a", "b", "d"};
	const int64_t off0[] = {102, 100, 102};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(assay_outbox_get(rows[0].events, rows[0].len, &pos, &ev), 1);
		assert_int_equal(ev.source_offset, off0[i]);
		assert_memory_equal(ev.value, want0[i], 1);
	}
	assert_int_equal(assay_outbox_get(rows[0].events, rows[0].len, &pos, &ev), 0);

	assert_int_equal(rows[1].stream, 12);
	assert_int_equal(rows[1].first, 7);
	assert_int_equal(rows[1].next, 8);
	pos = 0;
	assert_int_equal(assay_outbox_get(rows[1].events, rows[1].len, &pos, &ev), 1);
	assert_memory_equal(ev.value, "c", 1);
	assert_int_equal(assay_outbox_get(rows[1].events, rows[1].len, &pos, &ev), 0);
	assay_copybin_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_events_round_trip),
	        cmocka_unit_test(test_malformed_values_are_refused),
	        cmocka_unit_test(test_rows_of_a_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
