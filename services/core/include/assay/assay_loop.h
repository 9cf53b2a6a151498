/*
 * The batch loop every assay service runs: consume a batch, hand it to the service's pure
 * handler, apply the result in ONE PostgreSQL transaction together with the events to publish
 * (outbox) and the consumed offsets (compare-and-set), then relay the outbox with a
 * transactional producer that commits the relayed input position to Kafka in the same Kafka
 * transaction. docs/runtime.md explains why this gives exactly-once effects.
 *
 * Threads: a loop and everything it hands out belong to the thread that calls
 * assay_loop_run. The handler is called on that thread.
 */
#ifndef ASSAY_LOOP_H
#define ASSAY_LOOP_H

#include "assay_codec.h"
#include "assay_headers.h"
#include "assay_log.h"
#include "assay_metrics.h"
#include "assay_uuid.h"

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* The most events one input message may cause (dead letter included). */
#define ASSAY_LOOP_MAX_EVENTS_PER_MESSAGE 1000

/* One consumed message as the handler sees it. Valid for the handler call only. */
struct assay_msg {
	const rd_kafka_message_t *rkm; /* topic, partition, offset, key, value, headers */
	const char *topic;
	int32_t partition;
	int64_t offset;
	const void *key; /* may be NULL */
	size_t key_len;
	const void *value; /* may be NULL */
	size_t value_len;
	/* set when the handler asked the loop to decode and decoding succeeded */
	bool decoded_ok;
	struct assay_decoded decoded;
	/* dead-lettered (by the loop's decoding or by the handler): handlers skip it */
	bool dead;
	int nevents; /* events emitted for this message so far (seq of the next one) */
	/* a batch built by assay_batch_new_for_test has no rkm: its headers are here */
	const struct assay_headers *headers;
};

struct assay_batch;

struct assay_handler {
	/* stage name written into dead letters, e.g. "intake" */
	const char *stage;
	/* decode every value with the codec before handle (undecodable ones are dead-lettered) */
	bool decode;
	/*
	 * Pure: looks at the messages and the state in ctx, emits events and dead letters into
	 * the batch, and keeps whatever rows it wants written in ctx. No I/O. May be called
	 * again for the same messages after a rollback. Returns 0 or ASSAY_ERR_FATAL.
	 */
	int (*handle)(void *ctx, struct assay_batch *batch, char *errstr, size_t errstr_size);
	/*
	 * Writes the handler's rows inside the batch transaction (COPY or pipeline, never a
	 * round trip per row). It may read what it needs to decide (one batched query, e.g. to
	 * settle de-duplication candidates) and may still emit events and dead letters: the
	 * loop writes the outbox after it returns. May be NULL. Returns 0, ASSAY_ERR_RETRY
	 * (transient), ASSAY_ERR_REJECT (a row was refused: the loop then retries the messages one
	 * at a time and dead-letters the one that fails) or ASSAY_ERR_FATAL.
	 */
	int (*write)(void *ctx, PGconn *conn, struct assay_batch *batch, char *errstr,
	             size_t errstr_size);
	/* after the transaction committed / rolled back; either may be NULL */
	void (*committed)(void *ctx, struct assay_batch *batch);
	void (*rolled_back)(void *ctx, struct assay_batch *batch);
	/*
	 * After every partition assignment, before the first batch of the new assignment: the
	 * handler (re)loads whatever in-memory state mirrors the database, since another instance
	 * may have changed it while it owned these partitions. May be NULL. Returns 0,
	 * ASSAY_ERR_RETRY (the loop backs off and calls it again) or ASSAY_ERR_FATAL.
	 */
	int (*assigned)(void *ctx, PGconn *conn, const rd_kafka_topic_partition_list_t *partitions,
	                char *errstr, size_t errstr_size);
	void *ctx;
};

struct assay_loop_config {
	const char *service;     /* produced_by, event ids */
	const char *group;       /* consumer group and transactional.id prefix; NULL: service */
	const char *instance_id; /* stable per instance: transactional.id suffix */
	const char *brokers;
	const char *pg_url;
	const char *const *topics; /* topics to consume */
	size_t ntopics;
	const char *const *produces; /* topics the handler emits to: their limits are read */
	size_t nproduces;
	const char *deadletter_topic;
	int batch_max_messages;
	int batch_max_ms;
	int transaction_timeout_ms;
	/* publish at most this often (ms) unless relay_max_events are waiting: one Kafka
	 * transaction then covers several batches */
	int relay_interval_ms;
	int relay_max_events;
	int retry_backoff_ms;
	int retry_backoff_max_ms;
	int shutdown_timeout_ms; /* flush limit after a stop */
	int session_timeout_ms;  /* consumer group session */
	/* /readyz answers 503 once the relay has failed, or applied events have waited to be
	 * published, this long */
	int relay_unready_ms;
	/* librdkafka properties for the consumer and the producer, key/value pairs */
	const char *const *kafka_props;
	size_t nkafka_props;
	struct assay_log *log;             /* borrowed, may be NULL */
	struct assay_metrics *metrics;     /* borrowed, may be NULL */
	struct assay_codec *codec;         /* borrowed; needed for decode and emit_avro */
	const volatile sig_atomic_t *stop; /* the loop returns soon after *stop becomes non-zero */
};

/*
 * Fills cfg from loaded core settings (core NULL: the defaults of the core settings table,
 * the one place they are written): group, instance, brokers, database, dead-letter topic,
 * batch, relay, retry, transaction and shutdown limits. Everything else is zeroed: the caller
 * sets service, topics, kafka_props, log, metrics, codec and stop. Strings are borrowed from
 * core (or the table) and must outlive the loop.
 */
struct assay_core_config;
void assay_loop_config_init(struct assay_loop_config *cfg, const struct assay_core_config *core);

/*
 * Creates the consumer, the transactional producer (init_transactions) and the database
 * connection. The configuration's strings must outlive the loop. NULL on failure with the
 * reason in errstr.
 */
struct assay_loop *assay_loop_new(const struct assay_loop_config *cfg,
                                  const struct assay_handler *handler, char *errstr,
                                  size_t errstr_size);

/*
 * Runs until *cfg->stop: then finishes the batch in hand, relays the outbox, leaves the
 * group and flushes. Returns 0 after a clean stop or ASSAY_ERR_FATAL with the reason.
 */
int assay_loop_run(struct assay_loop *loop, char *errstr, size_t errstr_size);

void assay_loop_destroy(struct assay_loop *loop);

/* Partitions currently assigned to the loop. Safe to call from any thread. */
int assay_loop_assigned(const struct assay_loop *loop);

/* The messages of a batch. */
size_t assay_batch_count(const struct assay_batch *batch);
struct assay_msg *assay_batch_msg(struct assay_batch *batch, size_t i);

/* The id the next event emitted for message i will carry (name-based, so the same input
 * gives the same ids when it is processed again). */
void assay_batch_next_event_id(const struct assay_batch *batch, size_t i, char out[ASSAY_UUID_LEN]);

/*
 * Emits an event caused by message i: copies topic, key and value; takes over headers
 * (may be NULL; released here on every path). The loop adds event_id (unless present),
 * produced_by and trace_id (copied from the input when it has one). Returns 0 or
 * ASSAY_ERR_FATAL (memory, or more than ASSAY_LOOP_MAX_EVENTS_PER_MESSAGE).
 */
int assay_batch_emit(struct assay_batch *batch, size_t i, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     struct assay_headers *headers);

/* Emits an encoded event (a frame of the schema whose full name is event_type, e.g. from a
 * generated encoder) with the event_type header set to that name. As assay_batch_emit. */
int assay_batch_emit_typed(struct assay_batch *batch, size_t i, const char *topic, const void *key,
                           size_t key_len, const void *value, size_t value_len,
                           const char *event_type);

/* Encodes value with the codec under schema s and emits it with event_type set to the
 * schema's full name. The value stays the caller's. */
int assay_batch_emit_avro(struct assay_batch *batch, size_t i, const char *topic, const void *key,
                          size_t key_len, const struct assay_schema *s, avro_value_t *value,
                          char *errstr, size_t errstr_size);

/*
 * Dead-letters message i: its original key, value and headers go to the dead-letter topic
 * with headers naming topic, partition, offset, stage, error class and message, in the same
 * transaction that moves past it. Marks the message dead. When the original message would
 * not fit the dead-letter topic, it is parked whole in assay_parked_values and the dead letter
 * carries the first bytes of key and value with headers assay.dlq.value.size, .sha256, .kept
 * and assay.dlq.parked (where the row is). Returns 0 or ASSAY_ERR_FATAL.
 */
int assay_batch_deadletter(struct assay_batch *batch, size_t i, int err_class, const char *message);

/*
 * The most bytes of key + value + headers (each header: name, value and 10 bytes) an event
 * may have to be published on topic: the smaller of the topic's max.message.bytes (read
 * from the broker at start) and the producer's message.max.bytes, less the record's framing.
 * assay_batch_emit parks an event that is larger and dead-letters its input instead, so a
 * handler that copies input bytes into an event checks this first and keeps them bounded.
 */
size_t assay_batch_room(const struct assay_batch *batch, const char *topic);

/*
 * Parks message i whole (key, value, headers) in assay_parked_values, written in the batch
 * transaction, for an event that carries only part of it; where (unless NULL) gets the row's
 * description for the event. Returns 0 or ASSAY_ERR_FATAL.
 */
int assay_batch_park(struct assay_batch *batch, size_t i, const char *reason, char *where,
                     size_t where_size);

/*
 * Batches built by hand, so that a handler is unit-tested without Kafka or PostgreSQL: call
 * its handle (and inspect what it emitted) with a batch of these messages. The batch belongs
 * to a loop of its own that knows the service name (event ids), the dead-letter topic
 * "assay.deadletter" and Kafka's default message limit for every topic; nothing is written
 * or published. The messages' strings and bytes are borrowed and must outlive the batch.
 */
struct assay_test_message {
	const char *topic;
	int32_t partition;
	int64_t offset;
	const void *key; /* may be NULL */
	size_t key_len;
	const void *value; /* may be NULL */
	size_t value_len;
	const struct assay_headers *headers; /* may be NULL */
};

/* An event a batch holds (views into the batch, valid until it is freed or reset). */
struct assay_test_event {
	size_t msg; /* the message that caused it */
	const char *topic;
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
	const struct assay_headers *headers;
};

/* NULL when memory runs out. */
struct assay_batch *assay_batch_new_for_test(const char *service,
                                             const struct assay_test_message *msgs, size_t n);
void assay_batch_free_for_test(struct assay_batch *batch);
/* Every topic takes room bytes of key + value + headers (to test the size checks). */
void assay_batch_set_room_for_test(struct assay_batch *batch, size_t room);
/* The events emitted so far (dead letters included), and the k-th of them. */
size_t assay_batch_events(const struct assay_batch *batch);
void assay_batch_event(const struct assay_batch *batch, size_t k, struct assay_test_event *out);
/* Messages and events parked so far (written with the outbox by a real loop). */
size_t assay_batch_parked_count(const struct assay_batch *batch);

#endif
