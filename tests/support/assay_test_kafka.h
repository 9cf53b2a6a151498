/*
 * Kafka helpers for tests that talk to the local broker: unique topics created through
 * assay_kafka_ensure_topics, client handles built from key/value lists, and a reader that
 * copies a whole topic for checking. Every helper fails the running cmocka test instead of
 * returning an error.
 */
#ifndef ASSAY_TEST_KAFKA_H
#define ASSAY_TEST_KAFKA_H

#include "assay_headers.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* Milliseconds on the monotonic clock, for test deadlines. */
int64_t assay_test_now_ms(void);

/* Milliseconds since the epoch (CLOCK_REALTIME), comparable with Kafka record timestamps. */
int64_t assay_test_wall_ms(void);

/* Creates a new topic "<prefix>-<unique>" with `partitions` partitions (replication factor 1)
 * on ASSAY_KAFKA_BROKERS and waits until its metadata is ready; writes the name into name. */
void assay_test_kafka_topic(char *name, size_t size, const char *prefix, int partitions);

/* A client of the given type on ASSAY_KAFKA_BROKERS, configured by assay_kafka_conf_new and
 * then by conf_kv ("key", "value", ..., NULL; may be NULL). Consumers get their main queue
 * redirected to the consumer queue (rd_kafka_poll_set_consumer). opaque is passed to
 * rd_kafka_conf_set_opaque (may be NULL); dr_msg_cb may be NULL. The caller owns the handle
 * (rd_kafka_consumer_close for consumers, then rd_kafka_destroy). */
rd_kafka_t *assay_test_kafka_new(rd_kafka_type_t type, const char *const *conf_kv, void *opaque,
                                 void (*dr_msg_cb)(rd_kafka_t *rk, const rd_kafka_message_t *msg,
                                                   void *opaque));

/* A consumer in a new, unique group that reads topic from the earliest offset with the given
 * isolation level ("read_committed" or "read_uncommitted") and commits nothing; subscribed,
 * so the first polls wait for the assignment. The caller closes and destroys it. */
rd_kafka_t *assay_test_kafka_reader(const char *topic, const char *isolation);

/* One consumed message, copied. key and value are NUL-terminated for convenience but may hold
 * NUL bytes (Avro): key_len and value_len are their lengths. */
struct assay_test_record {
	char *key; /* "" when the message had no key */
	size_t key_len;
	char *value;
	size_t value_len;
	bool value_null; /* the message had a NULL value (value is "" then) */
	char *event_id;  /* the event_id header, NUL-terminated, or NULL */
	struct assay_headers headers;
};

/* Reads topic from the start with assay_test_kafka_reader until at least expect records came
 * and then none for quiet_ms, or timeout_ms passed in all. Returns the records in arrival
 * order (NULL when none; free with assay_test_records_free) and their count in *count. */
struct assay_test_record *assay_test_read_topic(const char *topic, const char *isolation,
                                                size_t expect, int quiet_ms, int timeout_ms,
                                                size_t *count);
void assay_test_records_free(struct assay_test_record *records, size_t count);

/* Whether the first header called name of r is there and holds exactly the bytes of value
 * (a NUL-terminated string, its NUL not compared). */
bool assay_test_header_equals(const struct assay_test_record *r, const char *name,
                              const char *value);

#endif
