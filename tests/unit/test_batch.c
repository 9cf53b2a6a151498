/*
 * The handler's view of a batch without Kafka or PostgreSQL (assay_batch_new_for_test):
 * emitting copies keys and values (an empty value stays empty, a NULL one NULL) and carries
 * the input's trace; a dead letter keeps the original bytes and headers and names the
 * failure; one just over the dead-letter topic's room is parked and travels as a prefix with
 * its size and hash, one just under travels whole; an event over its topic's room is parked
 * and its input dead-lettered; event ids depend only on the input's position.
 */
#include "assay_test.h"

#include "assay_err.h"
#include "assay_loop.h"
#include "assay_sha256.h"

#include <stdlib.h>
#include <string.h>

static const char *header(const struct assay_headers *h, const char *name, char *out, size_t size)
{
	const struct assay_header *x = assay_headers_find(h, name);

	snprintf(out, size, "%.*s", x ? (int)x->size : 0, x ? (const char *)x->value : "");
	return out;
}

static void test_emit_copies_and_keeps_empty_and_null(void **state)
{
	struct assay_headers in;
	struct assay_test_message msgs[2] = {
	        {"in", 0, 7, "k", 1, "v", 1, &in},
	        {"in", 1, 3, NULL, 0, "x", 1, NULL},
	};
	struct assay_batch *b;
	struct assay_test_event ev;
	char text[64];

	(void)state;
	assay_headers_init(&in);
	assert_int_equal(assay_headers_add_str(&in, "event_id", "input-1"), 0);
	b = assay_batch_new_for_test("svc", msgs, 2);
	assert_non_null(b);
	assert_int_equal(assay_batch_emit(b, 0, "out", "key", 3, "", 0, NULL), 0);
	assert_int_equal(assay_batch_emit(b, 1, "out", NULL, 0, NULL, 0, NULL), 0);
	assert_int_equal(assay_batch_events(b), 2);
	assay_batch_event(b, 0, &ev);
	assert_string_equal(ev.topic, "out");
	assert_non_null(ev.value); /* empty, not NULL */
	assert_int_equal(ev.value_len, 0);
	assert_memory_equal(ev.key, "key", 3);
	assert_string_equal(header(ev.headers, "trace_id", text, sizeof(text)), "input-1");
	assay_batch_event(b, 1, &ev);
	assert_null(ev.value);
	assert_null(ev.key);
	assert_null(assay_headers_find(ev.headers, "trace_id"));
	assay_batch_free_for_test(b);
	assay_headers_release(&in);
}

static void test_deadletter_keeps_original(void **state)
{
	struct assay_headers in;
	struct assay_test_message msg = {"in", 2, 41, "k", 1, "\0bad", 4, &in};
	struct assay_batch *b;
	struct assay_test_event ev;
	char text[128];

	(void)state;
	assay_headers_init(&in);
	assert_int_equal(assay_headers_add_str(&in, "event_id", "e-1"), 0);
	assert_int_equal(assay_headers_add_str(&in, "trace_id", "t-1"), 0);
	b = assay_batch_new_for_test("svc", &msg, 1);
	assert_int_equal(assay_batch_deadletter(b, 0, ASSAY_ERR_REJECT, "cannot decode: x"), 0);
	assert_true(assay_batch_msg(b, 0)->dead);
	assert_int_equal(assay_batch_events(b), 1);
	assay_batch_event(b, 0, &ev);
	assert_string_equal(ev.topic, "assay.deadletter");
	assert_int_equal(ev.value_len, 4);
	assert_memory_equal(ev.value, "\0bad", 4);
	assert_string_equal(header(ev.headers, "assay.dlq.event_id", text, sizeof(text)), "e-1");
	assert_null(assay_headers_find(ev.headers, "event_id"));
	assert_string_equal(header(ev.headers, "trace_id", text, sizeof(text)), "t-1");
	assert_string_equal(header(ev.headers, "assay.dlq.topic", text, sizeof(text)), "in");
	assert_string_equal(header(ev.headers, "assay.dlq.partition", text, sizeof(text)), "2");
	assert_string_equal(header(ev.headers, "assay.dlq.offset", text, sizeof(text)), "41");
	assert_string_equal(header(ev.headers, "assay.dlq.error.class", text, sizeof(text)),
	                    "reject");
	assert_string_equal(header(ev.headers, "assay.dlq.error.message", text, sizeof(text)),
	                    "cannot decode: x");
	assert_null(assay_headers_find(ev.headers, "assay.dlq.parked"));
	assert_int_equal(assay_batch_parked_count(b), 0);
	assay_batch_free_for_test(b);
	assay_headers_release(&in);
}

/* Dead letters of values just under and just over a 10,000-byte room. */
static void test_deadletter_bounded_by_room(void **state)
{
	size_t under = 9000, over = 10001;
	char *v = malloc(over), sha[ASSAY_SHA256_HEX_LEN], text[256];
	struct assay_test_message msgs[2];
	struct assay_batch *b;
	struct assay_test_event ev;

	(void)state;
	for (size_t k = 0; k < over; k++)
		v[k] = (char)('a' + k % 26);
	msgs[0] = (struct assay_test_message){"in", 0, 1, "k", 1, v, under, NULL};
	msgs[1] = (struct assay_test_message){"in", 0, 2, "k", 1, v, over, NULL};
	b = assay_batch_new_for_test("svc", msgs, 2);
	assay_batch_set_room_for_test(b, 10000);
	assert_int_equal(assay_batch_deadletter(b, 0, ASSAY_ERR_REJECT, "too long"), 0);
	assert_int_equal(assay_batch_deadletter(b, 1, ASSAY_ERR_REJECT, "too long"), 0);
	assert_int_equal(assay_batch_events(b), 2);
	assay_batch_event(b, 0, &ev);
	assert_int_equal(ev.value_len, under);
	assert_null(assay_headers_find(ev.headers, "assay.dlq.parked"));
	assay_batch_event(b, 1, &ev);
	assert_int_equal(ev.value_len, 1024);
	assert_memory_equal(ev.value, v, 1024);
	assert_string_equal(header(ev.headers, "assay.dlq.value.size", text, sizeof(text)),
	                    "10001");
	assay_sha256_hex(v, over, sha);
	assert_string_equal(header(ev.headers, "assay.dlq.value.sha256", text, sizeof(text)), sha);
	assert_string_equal(header(ev.headers, "assay.dlq.value.kept", text, sizeof(text)), "1024");
	assert_non_null(strstr(header(ev.headers, "assay.dlq.parked", text, sizeof(text)),
	                       "topic=in partition=0 offset=2 seq=-1"));
	assert_int_equal(assay_batch_parked_count(b), 1);
	assay_batch_free_for_test(b);
	free(v);
}

/* An event larger than its topic takes is parked; its input goes to the dead-letter topic
 * whole (it fits) and stays a live message for the handler. */
static void test_oversized_event_parked(void **state)
{
	char big[3000], text[256];
	struct assay_test_message msg = {"in", 0, 5, "k", 1, "small", 5, NULL};
	struct assay_batch *b;
	struct assay_test_event ev;

	(void)state;
	memset(big, 'b', sizeof(big));
	b = assay_batch_new_for_test("svc", &msg, 1);
	assay_batch_set_room_for_test(b, 2000);
	assert_int_equal(assay_batch_emit(b, 0, "out", "k", 1, big, sizeof(big), NULL), 0);
	assert_int_equal(assay_batch_events(b), 1);
	assay_batch_event(b, 0, &ev);
	assert_string_equal(ev.topic, "assay.deadletter");
	assert_int_equal(ev.value_len, 5);
	assert_non_null(strstr(header(ev.headers, "assay.dlq.error.message", text, sizeof(text)),
	                       "does not fit topic out"));
	assert_int_equal(assay_batch_parked_count(b), 1);
	assert_false(assay_batch_msg(b, 0)->dead);
	assay_batch_free_for_test(b);
}

/* An input's trace of more than 256 bytes is not carried into its events (it would make
 * each of them that much larger); one of 256 is. */
static void test_long_trace_not_carried(void **state)
{
	char trace[1001];
	struct assay_headers in_long, in_ok;
	struct assay_test_message msgs[2] = {
	        {"in", 0, 1, NULL, 0, "v", 1, &in_long},
	        {"in", 0, 2, NULL, 0, "v", 1, &in_ok},
	};
	struct assay_batch *b;
	struct assay_test_event ev;

	(void)state;
	memset(trace, 't', sizeof(trace) - 1);
	trace[1000] = '\0';
	assay_headers_init(&in_long);
	assay_headers_init(&in_ok);
	assert_int_equal(assay_headers_add_str(&in_long, "trace_id", trace), 0);
	trace[256] = '\0';
	assert_int_equal(assay_headers_add_str(&in_ok, "trace_id", trace), 0);
	b = assay_batch_new_for_test("svc", msgs, 2);
	assert_int_equal(assay_batch_emit(b, 0, "out", NULL, 0, "e", 1, NULL), 0);
	assert_int_equal(assay_batch_emit(b, 1, "out", NULL, 0, "e", 1, NULL), 0);
	assay_batch_event(b, 0, &ev);
	assert_null(assay_headers_find(ev.headers, "trace_id"));
	assay_batch_event(b, 1, &ev);
	assert_int_equal(assay_headers_find(ev.headers, "trace_id")->size, 256);
	assay_batch_free_for_test(b);
	assay_headers_release(&in_long);
	assay_headers_release(&in_ok);
}

/* Event ids are name-based: the same position gives the same ids in another batch. */
static void test_event_ids_depend_on_position(void **state)
{
	struct assay_test_message msg = {"in", 3, 99, NULL, 0, "v", 1, NULL};
	struct assay_test_message other = {"in", 3, 100, NULL, 0, "v", 1, NULL};
	struct assay_batch *a = assay_batch_new_for_test("svc", &msg, 1);
	struct assay_batch *b = assay_batch_new_for_test("svc", &msg, 1);
	struct assay_batch *c = assay_batch_new_for_test("svc", &other, 1);
	char ia[ASSAY_UUID_LEN], ib[ASSAY_UUID_LEN], ic[ASSAY_UUID_LEN];

	(void)state;
	assay_batch_next_event_id(a, 0, ia);
	assay_batch_next_event_id(b, 0, ib);
	assay_batch_next_event_id(c, 0, ic);
	assert_string_equal(ia, ib);
	assert_string_not_equal(ia, ic);
	assay_batch_free_for_test(a);
	assay_batch_free_for_test(b);
	assay_batch_free_for_test(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_emit_copies_and_keeps_empty_and_null),
	        cmocka_unit_test(test_deadletter_keeps_original),
	        cmocka_unit_test(test_deadletter_bounded_by_room),
	        cmocka_unit_test(test_oversized_event_parked),
	        cmocka_unit_test(test_long_trace_not_carried),
	        cmocka_unit_test(test_event_ids_depend_on_position),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
