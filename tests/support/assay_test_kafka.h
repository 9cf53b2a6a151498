/*
 * Kafka helpers for tests that talk to the local broker: unique topics created through
 * assay_kafka_ensure_topics, and client handles built from key/value lists. Every helper
 * fails the running cmocka test instead of returning an error.
 */
#ifndef ASSAY_TEST_KAFKA_H
#define ASSAY_TEST_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* Milliseconds on the monotonic clock, for test deadlines. */
int64_t assay_test_now_ms(void);

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

#endif
