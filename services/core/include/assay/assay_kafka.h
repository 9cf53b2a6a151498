/*
 * Small helpers around librdkafka 2.0.2: a base configuration, a checked conf setter, topic
 * creation through the Admin API, watermarks, and the mapping of librdkafka errors onto the
 * failure classes of assay_err.h. Helpers, not a framework: callers own every rd_kafka_t.
 */
#ifndef ASSAY_KAFKA_H
#define ASSAY_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "assay_err.h"

/*
 * Extra outcome of assay_kafka_classify_error(), outside enum assay_err on purpose: the
 * current Kafka transaction must be aborted (rd_kafka_abort_transaction(rk, -1)), the
 * consumer rewound to its committed offsets, and the batch begun again. Only a transactional
 * caller can act on it; anyone passing it further up must map it to an assay_err first
 * (ASSAY_ERR_RETRY is the usual choice once the abort has succeeded). Never returned by
 * assay_kafka_classify(), which has no way to know a transaction is in progress.
 */
enum { ASSAY_KAFKA_ABORT = -16 };

/*
 * A new configuration with bootstrap.servers = brokers, client.id = "assay",
 * socket.timeout.ms = 10000 and api.version.request = true.
 * brokers: "host:port[,host:port...]", not NULL. Returns NULL with errstr filled when
 * brokers is NULL or empty, or librdkafka refuses a property. The caller owns the result:
 * hand it to rd_kafka_new() (which takes it over on success) or rd_kafka_conf_destroy() it.
 */
rd_kafka_conf_t *assay_kafka_conf_new(const char *brokers, char *errstr, size_t errstr_size);

/*
 * rd_kafka_conf_set() with assay's return convention. conf, key and value not NULL.
 * Returns 0, or ASSAY_ERR_FATAL for an unknown property or an invalid value, with errstr
 * "kafka config <key>: <librdkafka's text>" (the configuration is wrong: only a person can
 * fix it).
 */
int assay_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                         size_t errstr_size);

/*
 * Creates the ntopics topics (names not NULL) through the Admin API on a short-lived
 * producer handle made from assay_kafka_conf_new(brokers), then waits until the metadata of
 * every topic shows all its partitions with a leader. A topic that exists already counts as
 * success and is left as it is (its partition count and configs are not changed or checked
 * beyond having at least one partition). partitions and replication_factor may be -1 for the
 * broker's defaults. configs: NULL, or "key", "value", ..., NULL topic configs applied to
 * every created topic. The whole call, creation and metadata wait, stays within timeout_ms
 * (> 0).
 * Returns 0; ASSAY_ERR_RETRY when the broker did not answer or the metadata did not settle
 * in time; ASSAY_ERR_FATAL for bad arguments, a refused config or a creation error that
 * retrying will not fix (invalid name, policy, authorization). errstr names the topic.
 * Blocks the calling thread; safe to call from any thread.
 */
int assay_kafka_ensure_topics(const char *brokers, const char *const *topics, size_t ntopics,
                              int partitions, int replication_factor, const char *const *configs,
                              int timeout_ms, char *errstr, size_t errstr_size);

/*
 * Failure class of a response/local error code, by what the caller must do:
 *   0                 NO_ERROR
 *   ASSAY_ERR_RETRY   broker, coordinator or leader unavailable, timeouts, queue full,
 *                     transport: back off and retry the same work
 *   ASSAY_ERR_REJECT  this message is bad (too large, invalid or corrupt record)
 *   ASSAY_ERR_FATAL   fencing (__FENCED, PRODUCER_FENCED, INVALID_PRODUCER_EPOCH), __FATAL,
 *                     authorization, configuration, and every code not listed above
 * Not meant for events that are not errors (__PARTITION_EOF, rebalance codes): those
 * classify as fatal.
 */
int assay_kafka_classify(rd_kafka_resp_err_t err);

/*
 * Failure class of an rd_kafka_error_t from the transactional API (the model of
 * INTRODUCTION.md, "Transactional Producer / Error handling"), checked in this order:
 *   NULL error                                       0
 *   rd_kafka_error_is_fatal() or a fencing code       ASSAY_ERR_FATAL
 *   rd_kafka_error_txn_requires_abort()               ASSAY_KAFKA_ABORT
 *   rd_kafka_error_is_retriable()                     ASSAY_ERR_RETRY
 *   anything else                                     ASSAY_ERR_FATAL
 * Does not destroy error; the caller still owns it.
 */
int assay_kafka_classify_error(const rd_kafka_error_t *error);

/*
 * Takes a failed transactional call's error (not NULL): writes "<what> failed: <reason>" to
 * errstr, destroys error and returns ASSAY_ERR_FATAL when assay_kafka_classify_error() says
 * fatal, else ASSAY_ERR_RETRY.
 */
int assay_kafka_take_error(rd_kafka_error_t *error, const char *what, char *errstr,
                           size_t errstr_size);

/*
 * Asks the partition leader for the low and high watermarks of topic/partition
 * (rd_kafka_query_watermark_offsets). rk: any client handle, not NULL; low and high not NULL,
 * written only on success. Returns 0 or assay_kafka_classify() of the error (an unknown topic
 * or partition, or a timeout, is ASSAY_ERR_RETRY).
 */
int assay_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t *low,
                           int64_t *high, int timeout_ms);

/*
 * The message limit (max.message.bytes: the largest record batch the broker accepts) of each
 * of the ntopics topics, through DescribeConfigs on a short-lived handle made from
 * assay_kafka_conf_new(brokers). limits[i] gets topic i's limit, or -1 when the broker did
 * not say (a missing topic, no permission). Returns 0; ASSAY_ERR_RETRY when the broker did
 * not answer within timeout_ms; ASSAY_ERR_FATAL for bad arguments or out of memory.
 */
int assay_kafka_topic_max_bytes(const char *brokers, const char *const *topics, size_t ntopics,
                                int64_t *limits, int timeout_ms, char *errstr, size_t errstr_size);

#endif
