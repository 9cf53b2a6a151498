/*
 * The loop's librdkafka clients: the consumer (eager assignor, read_committed, bounded
 * prefetch, static membership) and the transactional producer, with the loop's callbacks
 * (logs, errors, failed deliveries) and the pass-through properties.
 */
#include "assay_loop_int.h"
#include "assay_err.h"
#include "assay_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	struct assay_loop *loop = rd_kafka_opaque(rk);

	assay_log_rdkafka(loop ? loop->cfg.log : NULL, level, fac, buf);
}

/* Delivery reports (only failed deliveries are reported): an event the broker refuses for
 * good is remembered by its id, so that the outbox path parks it instead of producing it
 * again and again. Called on the thread that polls the producer. */
static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
	struct assay_loop *loop = opaque;
	rd_kafka_headers_t *hdrs;
	int64_t suppressed = 0;
	const void *id;
	size_t len;
	bool log;

	(void)rk;
	if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR ||
	    assay_kafka_classify(rkm->err) != ASSAY_ERR_REJECT ||
	    rd_kafka_message_headers(rkm, &hdrs) != 0 ||
	    rd_kafka_header_get_last(hdrs, "event_id", &id, &len) != 0 || len + 1 != ASSAY_UUID_LEN)
		return;
	pthread_mutex_lock(&loop->mu);
	if (loop->nrefused < REFUSED_MAX) {
		memcpy(loop->refused[loop->nrefused], id, len);
		loop->refused[loop->nrefused++][len] = '\0';
	}
	log = assay_log_limit_allow(&loop->refused_log, assay_now_ms(), &suppressed);
	pthread_mutex_unlock(&loop->mu);
	if (log)
		assay_log_warn(loop->cfg.log, "event refused by the broker",
		               ASSAY_LF_STR("topic", rd_kafka_topic_name(rkm->rkt)),
		               ASSAY_LF_STR("error", rd_kafka_err2str(rkm->err)),
		               ASSAY_LF_INT("bytes", (int64_t)rkm->len),
		               ASSAY_LF_INT("suppressed", suppressed));
}

static void error_cb(rd_kafka_t *rk, int kerr, const char *reason, void *opaque)
{
	struct assay_loop *loop = opaque;

	assay_log_warn(loop->cfg.log, "kafka error", ASSAY_LF_STR("error", rd_kafka_err2name(kerr)),
	               ASSAY_LF_STR("reason", reason));
}

/* ---- lifecycle ---- */

/* Sets the pass-through librdkafka properties: "consumer.x" only on the consumer,
 * "producer.x" only on the producer, anything else on both. */
static int set_props(rd_kafka_conf_t *conf, const struct assay_loop_config *cfg, const char *scope,
                     char *errstr, size_t errstr_size)
{
	static const char *const scopes[] = {"consumer.", "producer."};

	for (size_t i = 0; i < cfg->nkafka_props; i++) {
		const char *key = cfg->kafka_props[2 * i], *value = cfg->kafka_props[2 * i + 1];
		int err;

		for (size_t k = 0; k < 2 && key; k++)
			if (strncmp(key, scopes[k], strlen(scopes[k])) == 0)
				key = strcmp(scopes[k], scope) == 0 ? key + strlen(scopes[k])
				                                    : NULL; /* the other client's */
		if (key == NULL)
			continue;
		err = assay_kafka_conf_set(conf, key, value, errstr, errstr_size);
		if (err)
			return err;
	}
	return 0;
}

/* A consumer or producer with the runtime's settings (key/value pairs in kv, ending with
 * NULL; a NULL value leaves librdkafka's default), then the pass-through properties, and the
 * loop's callbacks. NULL on failure. */
static rd_kafka_t *new_client(struct assay_loop *loop, rd_kafka_type_t type, const char *const *kv,
                              char *errstr, size_t errstr_size)
{
	const char *scope = type == RD_KAFKA_CONSUMER ? "consumer." : "producer.";
	rd_kafka_conf_t *conf = assay_kafka_conf_new(loop->cfg.brokers, errstr, errstr_size);
	rd_kafka_t *rk;
	int err = 0;

	if (conf == NULL)
		return NULL;
	for (; !err && kv[0] != NULL; kv += 2)
		if (kv[1] != NULL) /* NULL: leave librdkafka's default */
			err = assay_kafka_conf_set(conf, kv[0], kv[1], errstr, errstr_size);
	if (!err)
		err = set_props(conf, &loop->cfg, scope, errstr, errstr_size);
	if (err) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_opaque(conf, loop);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_conf_set_rebalance_cb(conf, assay_rebalance_cb);
	else
		rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
	rk = rd_kafka_new(type, conf, errstr, errstr_size);
	if (rk == NULL)
		rd_kafka_conf_destroy(conf);
	return rk;
}

int assay_clients_consumer(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	const struct assay_loop_config *cfg = &loop->cfg;
	char session[32];
	bool is_static = cfg->instance_id != NULL && *cfg->instance_id != '\0';
	const char *const kv[] = {
	        "group.id", cfg->group, "enable.auto.commit", "false", "enable.auto.offset.store",
	        "false", "auto.offset.reset", "earliest", "isolation.level", "read_committed",
	        /* eager: the cooperative assignor of librdkafka 2.0.2 has known bugs */
	        "partition.assignment.strategy", "range,roundrobin", "enable.partition.eof",
	        "false",
	        /* librdkafka prefetches up to 64 MB by default, the whole memory budget of a
	         * service (DESIGN §7): 4 MB holds several batches (a full queue no longer
	         * stalls the loop: wake_stalled_fetches). A full queue backs its partitions
	         * off for fetch.error.backoff.ms (500 ms), which starves a bounded queue
	         * (intake measured 11,000 instead of 26,000 events/s): 10 ms. Lowering
	         * queued.min.messages as well cost the mapper 40 % (55,000 → 32,000/s). */
	        "queued.max.messages.kbytes", "4096", "fetch.error.backoff.ms", "10",
	        "session.timeout.ms", session,
	        /* static membership: a restarted instance (same instance.id) takes its
	         * partitions back at once instead of after the session timeout
	         * (docs/runtime.md, "Group membership") */
	        "group.instance.id", is_static ? cfg->instance_id : NULL, NULL};
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t kerr;

	snprintf(session, sizeof(session), "%d", cfg->session_timeout_ms);
	loop->consumer = new_client(loop, RD_KAFKA_CONSUMER, kv, errstr, errstr_size);
	if (loop->consumer == NULL)
		return ASSAY_ERR_FATAL;
	{ /* the queue size in force (a pass-through property may have changed it) */
		char kbytes[32];
		size_t size = sizeof(kbytes);

		loop->fetch_queue_bytes = 4096 * 1024;
		if (rd_kafka_conf_get(rd_kafka_conf(loop->consumer), "queued.max.messages.kbytes",
		                      kbytes, &size) == RD_KAFKA_CONF_OK)
			loop->fetch_queue_bytes = (size_t)strtoull(kbytes, NULL, 10) * 1024;
	}
	rd_kafka_poll_set_consumer(loop->consumer);
	topics = rd_kafka_topic_partition_list_new((int)cfg->ntopics);
	for (size_t i = 0; i < cfg->ntopics; i++)
		rd_kafka_topic_partition_list_add(topics, cfg->topics[i], RD_KAFKA_PARTITION_UA);
	kerr = rd_kafka_subscribe(loop->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (kerr)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "subscribe failed: %s",
		                  rd_kafka_err2str(kerr));
	return 0;
}

/* The relay's transactional producer; its transactional.id is stable per instance, so a
 * restarted instance aborts what its predecessor left open instead of waiting for the
 * transaction timeout. */
int assay_clients_producer(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	const struct assay_loop_config *cfg = &loop->cfg;
	char txid[512], timeout[32], msg_timeout[32], max_bytes[32];
	const char *const kv[] = {"transactional.id", txid, "transaction.timeout.ms", timeout,
	                          /* an event that cannot be delivered (no leader, a topic
	                           * missing) fails the transaction, an abortable error, well
	                           * before the coordinator times the transaction out and
	                           * fences the producer, a fatal one */
	                          "message.timeout.ms", msg_timeout, "linger.ms", "5",
	                          /* room for the largest record a produced topic takes */
	                          "message.max.bytes", max_bytes,
	                          /* delivery_cb hears of refused events only */
	                          "delivery.report.only.error", "true", NULL};
	rd_kafka_error_t *error;
	size_t size = sizeof(max_bytes);

	snprintf(txid, sizeof(txid), "%s-%s", cfg->group, cfg->instance_id);
	snprintf(timeout, sizeof(timeout), "%d", cfg->transaction_timeout_ms);
	snprintf(msg_timeout, sizeof(msg_timeout), "%d", cfg->transaction_timeout_ms * 2 / 3);
	snprintf(max_bytes, sizeof(max_bytes), "%zu", loop->producer_max_bytes);
	loop->producer = new_client(loop, RD_KAFKA_PRODUCER, kv, errstr, errstr_size);
	if (loop->producer == NULL)
		return ASSAY_ERR_FATAL;
	/* the limit in force (a pass-through property may have changed it) */
	if (rd_kafka_conf_get(rd_kafka_conf(loop->producer), "message.max.bytes", max_bytes,
	                      &size) == RD_KAFKA_CONF_OK)
		loop->producer_max_bytes = (size_t)strtoull(max_bytes, NULL, 10);
	error = rd_kafka_init_transactions(loop->producer, cfg->transaction_timeout_ms * 2);
	if (error)
		return assay_kafka_take_error(error, "init transactions", errstr, errstr_size);
	return 0;
}

/*
 * Replaces a consumer that librdkafka declared unusable (a fatal consumer error, e.g. a static
 * member fenced after its session expired while the broker was away): the messages in hand
 * are dropped, the partitions are given up as on a revocation, and a new consumer joins with
 * the same group.instance.id; its assignment re-reads the stored offsets.
 */
int assay_clients_renew_consumer(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	assay_log_warn(loop->cfg.log, "consumer failed for good, creating it anew");
	assay_batch_discard_polled(loop);
	assay_rebalance_clear(loop);
	if (loop->cfg.metrics)
		assay_metrics_set_ready(loop->cfg.metrics, false);
	rd_kafka_consumer_close(loop->consumer);
	rd_kafka_destroy(loop->consumer);
	loop->consumer = NULL;
	loop->consumer_failed = false;
	return assay_clients_consumer(loop, errstr, errstr_size);
}
