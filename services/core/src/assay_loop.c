/*
 * The exactly-once batch loop (see assay_loop.h and docs/runtime.md): polling, applying a
 * batch in one PostgreSQL transaction, health, and the loop's life cycle. Around it:
 * assay_ledger.c (partitions, stored offsets), assay_rebalance.c (assignment), assay_clients.c
 * (consumer and producer), assay_limits.c (topic limits), assay_batch.c (the handler's view
 * of a batch), assay_relay.c (publishing). The loop calls them; none of them calls the loop.
 *
 * Positions. For every assigned partition the loop knows two offsets:
 *   db_next    the next offset to apply; stored in assay_offsets and moved only by the
 *              transaction that applies the messages before it (compare-and-set);
 *   relay_pos  the input offset up to which the outbox rows caused by those messages are
 *              published; stored as the consumer group's committed offset in Kafka and moved
 *              only by the Kafka transaction that publishes them (send_offsets_to_transaction
 *              with the consumer's group metadata, so a fenced zombie cannot commit).
 * relay_pos <= db_next always. A crash anywhere loses nothing (both positions are durable
 * and only move together with their effects) and repeats nothing (each effect is guarded by
 * the position that moves with it).
 */
#include "assay_loop_int.h"
#include "assay_config.h"
#include "assay_err.h"
#include "assay_kafka.h"
#include "assay_strbuf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The batch's events (assay_outbox_rows) and parked values, COPY'd in the batch
 * transaction. */
static int write_outputs(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                         size_t errstr_size)
{
	size_t written;
	int err;

	err = assay_parked_write(loop, batch, errstr, errstr_size);
	if (err || batch->nevents == 0)
		return err;
	if (assay_outbox_rows(&loop->outbox, loop->parts, loop->nparts, batch, &written) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "building the outbox rows failed: out of memory");
	if (written != batch->nevents)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "%zu events of the batch come from unassigned partitions",
		                  batch->nevents - written);
	return assay_pg_copy_binary(loop->conn,
	                            "COPY assay_outbox (stream, first_offset, next_offset, events) "
	                            "FROM STDIN (FORMAT binary)",
	                            &loop->outbox, errstr, errstr_size);
}

/* After a commit: the new stored offsets, cleaned positions, and the relay queue. */
static void batch_committed(struct assay_loop *loop, struct assay_batch *batch)
{
	for (size_t k = 0; k < batch->count; k++) {
		struct part *p =
		        assay_ledger_find(loop, batch->msgs[k].topic, batch->msgs[k].partition);

		if (p && batch->msgs[k].offset + 1 > p->db_next)
			p->db_next = batch->msgs[k].offset + 1;
	}
	if (loop->cleanup_in_txn) {
		for (size_t i = 0; i < loop->nparts; i++)
			if (loop->parts[i].relay_pos > loop->parts[i].cleaned_pos)
				loop->parts[i].cleaned_pos = loop->parts[i].relay_pos;
		loop->last_cleanup_ms = assay_now_ms();
	}
	if (batch->nevents && loop->unpublished_since_ms == 0)
		loop->unpublished_since_ms = assay_now_ms();
	if (loop->m_parked && batch->nparked)
		assay_counter_add(loop->m_parked, batch->nparked);
	assay_relay_take(loop, batch);
}

/* One attempt at applying a batch: handle, then BEGIN; rows; outbox; offsets; COMMIT. */
static int batch_attempt(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                         size_t errstr_size)
{
	int err;

	assay_batch_reset_outputs(batch);
	err = assay_batch_decode_all(loop, batch, errstr, errstr_size);
	if (err)
		return err;
	err = loop->handler.handle(loop->handler.ctx, batch, errstr, errstr_size);
	if (err)
		return ASSAY_ERR_FATAL;
	err = assay_ledger_db(loop, errstr, errstr_size);
	if (err)
		return err;
	/* the offsets first: a stale owner is fenced before its rows can collide with the new
	 * owner's (a collision would look like a refused row) */
	err = assay_pg_exec(loop->conn, "BEGIN", errstr, errstr_size);
	if (!err)
		err = assay_ledger_store(loop, batch, errstr, errstr_size);
	if (!err && loop->handler.write)
		err = loop->handler.write(loop->handler.ctx, loop->conn, batch, errstr,
		                          errstr_size);
	if (!err)
		err = write_outputs(loop, batch, errstr, errstr_size);
	if (!err)
		err = assay_pg_exec(loop->conn, "COMMIT", errstr, errstr_size);
	if (err) {
		assay_ledger_rollback(loop);
		if (loop->handler.rolled_back)
			loop->handler.rolled_back(loop->handler.ctx, batch);
		return err;
	}
	batch_committed(loop, batch);
	if (loop->handler.committed)
		loop->handler.committed(loop->handler.ctx, batch);
	return 0;
}

/*
 * Applies rkms[first, first+n) with retries: transient failures back off and retry the same
 * messages; a refused row splits the work into single messages so only the culprit is
 * dead-lettered. Returns 0, ASSAY_ERR_FENCED (the messages were dropped and the consumer
 * re-seeked), or ASSAY_ERR_FATAL.
 */
static int apply(struct assay_loop *loop, size_t first, size_t n, char *errstr, size_t errstr_size)
{
	struct assay_batch batch;
	int err;

	err = assay_batch_build(loop, &batch, first, n, errstr, errstr_size);
	for (;;) {
		if (err)
			break;
		err = batch_attempt(loop, &batch, errstr, errstr_size);
		if (err != ASSAY_ERR_RETRY)
			break;
		if (assay_loop_stopping(loop))
			break;
		assay_log_warn(loop->cfg.log, "batch failed, retrying",
		               ASSAY_LF_STR("error", errstr),
		               ASSAY_LF_INT("backoff_ms", loop->backoff_ms));
		assay_loop_backoff(loop);
		err = 0;
	}
	if (err == 0) {
		assay_loop_backoff_reset(loop);
		if (loop->m_consumed)
			assay_counter_add(loop->m_consumed, n);
		if (loop->m_deadlettered && batch.ndead)
			assay_counter_add(loop->m_deadlettered, batch.ndead);
	} else if (err == ASSAY_ERR_REJECT && n > 1) {
		assay_log_warn(loop->cfg.log,
		               "batch refused by the database, applying it message by message",
		               ASSAY_LF_STR("error", errstr), ASSAY_LF_INT("messages", (int64_t)n));
		assay_batch_release(&batch);
		for (size_t k = 0; k < n; k++) {
			err = apply(loop, first + k, 1, errstr, errstr_size);
			if (err)
				return err;
		}
		return 0;
	} else if (err == ASSAY_ERR_REJECT) {
		/* the database refused this one message: dead-letter it alone */
		char why[512];

		snprintf(why, sizeof(why), "%s", errstr);
		assay_batch_reset_outputs(&batch);
		err = assay_batch_deadletter(&batch, 0, ASSAY_ERR_REJECT, why);
		while (!err) {
			err = assay_ledger_db(loop, errstr, errstr_size);
			if (!err)
				err = assay_pg_exec(loop->conn, "BEGIN", errstr, errstr_size);
			if (!err)
				err = assay_ledger_store(loop, &batch, errstr, errstr_size);
			if (!err)
				err = write_outputs(loop, &batch, errstr, errstr_size);
			if (!err)
				err = assay_pg_exec(loop->conn, "COMMIT", errstr, errstr_size);
			if (!err)
				break;
			assay_ledger_rollback(loop);
			if (err != ASSAY_ERR_RETRY || assay_loop_stopping(loop))
				break;
			assay_loop_backoff(loop);
			err = 0;
		}
		if (!err) {
			batch_committed(loop, &batch);
			if (loop->m_consumed)
				assay_counter_add(loop->m_consumed, 1);
			if (loop->m_deadlettered)
				assay_counter_add(loop->m_deadlettered, 1);
		}
	}
	if (err == ASSAY_ERR_FENCED) {
		assay_log_warn(loop->cfg.log, "offsets fenced, re-seeking",
		               ASSAY_LF_STR("error", errstr));
		err = assay_rebalance_reseek(loop, errstr, errstr_size);
		if (err == 0)
			err = ASSAY_ERR_FENCED;
		else if (err == ASSAY_ERR_RETRY)
			err = ASSAY_ERR_FENCED; /* only when stopping: nothing more is applied */
	}
	assay_batch_release(&batch);
	return err;
}

static void create_metrics(struct assay_loop *loop)
{
	static const double sizes[] = {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
	static const double seconds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	                                 0.1,   0.25,   0.5,   1,    2.5,   5};
	struct assay_metrics *m = loop->cfg.metrics;

	if (m == NULL)
		return;
	loop->m_consumed = assay_metrics_counter(
	        m, "assay_consumed_total", "messages applied (including dead-lettered)", NULL);
	loop->m_produced = assay_metrics_counter(m, "assay_produced_total",
	                                         "events published from the outbox", NULL);
	loop->m_deadlettered = assay_metrics_counter(
	        m, "assay_deadlettered_total", "messages sent to the dead-letter topic", NULL);
	loop->m_retries = assay_metrics_counter(m, "assay_retries_total",
	                                        "transient failures retried after a backoff", NULL);
	loop->m_batch_size = assay_metrics_histogram(m, "assay_batch_size", "messages per batch",
	                                             sizes, sizeof(sizes) / sizeof(sizes[0]));
	loop->m_batch_seconds = assay_metrics_histogram(
	        m, "assay_batch_seconds", "time to apply one batch in PostgreSQL", seconds,
	        sizeof(seconds) / sizeof(seconds[0]));
	loop->m_relay_seconds = assay_metrics_histogram(
	        m, "assay_relay_seconds", "time to publish the outbox in one Kafka transaction",
	        seconds, sizeof(seconds) / sizeof(seconds[0]));
	loop->m_oldest_unpublished = assay_metrics_gauge(
	        m, "assay_outbox_oldest_unpublished_seconds",
	        "age of the oldest applied event not yet published (0 when none waits)", NULL);
	loop->m_parked = assay_metrics_counter(
	        m, "assay_parked_total",
	        "messages and events kept in assay_parked_values because they do not fit their "
	        "topic",
	        NULL);
}

void assay_loop_config_init(struct assay_loop_config *cfg, const struct assay_core_config *core)
{
	struct assay_core_config defaults;

	if (core == NULL) {
		assay_core_config_defaults(&defaults);
		core = &defaults; /* its strings point into the static table */
	}
	*cfg = (struct assay_loop_config){
	        .group = core->group_id,
	        .instance_id = core->instance_id,
	        .brokers = core->brokers,
	        .pg_url = core->pg_url,
	        .deadletter_topic = core->deadletter_topic,
	        /* the table's ranges keep these within int */
	        .batch_max_messages = (int)core->batch_max_messages,
	        .batch_max_ms = (int)core->batch_max_ms,
	        .transaction_timeout_ms = (int)core->transaction_timeout_ms,
	        .relay_interval_ms = (int)core->relay_interval_ms,
	        .relay_max_events = (int)core->relay_max_events,
	        .retry_backoff_ms = (int)core->retry_backoff_ms,
	        .retry_backoff_max_ms = (int)core->retry_backoff_max_ms,
	        .shutdown_timeout_ms = (int)core->shutdown_timeout_ms,
	        .session_timeout_ms = (int)core->session_timeout_ms,
	        .relay_unready_ms = (int)core->relay_unready_ms,
	};
}

struct assay_loop *assay_loop_new(const struct assay_loop_config *cfg,
                                  const struct assay_handler *handler, char *errstr,
                                  size_t errstr_size)
{
	struct assay_loop *loop = calloc(1, sizeof(*loop));
	int64_t *limits = NULL;
	int err;

	if (loop == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
		return NULL;
	}
	loop->cfg = *cfg;
	loop->handler = *handler;
	if (loop->cfg.group == NULL || *loop->cfg.group == '\0')
		loop->cfg.group = loop->cfg.service;
	pthread_mutex_init(&loop->mu, NULL);
	pthread_cond_init(&loop->cv, NULL);
	loop->deadletter_topic = cfg->deadletter_topic;
	if (loop->handler.decode && cfg->codec == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "handler decodes but no codec given");
		goto fail;
	}
	if (cfg->batch_max_messages <= 0 || cfg->batch_max_ms <= 0 ||
	    cfg->transaction_timeout_ms <= 0 || cfg->shutdown_timeout_ms < 0 ||
	    cfg->relay_interval_ms <= 0 || cfg->relay_max_events <= 0 ||
	    cfg->retry_backoff_ms <= 0 || cfg->relay_unready_ms <= 0 ||
	    cfg->session_timeout_ms <= 0 || cfg->deadletter_topic == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "loop config incomplete: start from assay_loop_config_init");
		goto fail;
	}
	if (loop->cfg.retry_backoff_max_ms < loop->cfg.retry_backoff_ms)
		loop->cfg.retry_backoff_max_ms = loop->cfg.retry_backoff_ms;
	assay_loop_backoff_reset(loop);
	assay_copybin_init(&loop->outbox);
	assay_copybin_init(&loop->parked);
	loop->rkms = calloc((size_t)loop->cfg.batch_max_messages, sizeof(*loop->rkms));
	if (loop->rkms == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
		goto fail;
	}
	loop->ids = assay_uuid_maker_new();
	loop->relay_ids = assay_uuid_maker_new();
	if (loop->ids == NULL || loop->relay_ids == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "sha-256 unavailable");
		goto fail;
	}
	create_metrics(loop);
	err = assay_limits_read(loop, &limits, errstr, errstr_size);
	if (!err)
		err = assay_clients_producer(loop, errstr, errstr_size);
	if (err)
		goto fail;
	assay_limits_size(loop, limits);
	free(limits);
	limits = NULL;
	if (pthread_create(&loop->relay_thread, NULL, assay_relay_main, loop) != 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "relay thread: cannot start");
		goto fail;
	}
	loop->relay_started = true;
	err = assay_clients_consumer(loop, errstr, errstr_size);
	if (err)
		goto fail;
	return loop;
fail:
	free(limits);
	assay_loop_destroy(loop);
	return NULL;
}

static void update_lag(struct assay_loop *loop)
{
	for (size_t i = 0; i < loop->nparts; i++) {
		struct part *p = &loop->parts[i];
		int64_t low, high;

		if (p->lag == NULL ||
		    rd_kafka_get_watermark_offsets(loop->consumer, p->topic, p->partition, &low,
		                                   &high) != 0 ||
		    high < 0)
			continue;
		assay_gauge_set(p->lag, (double)(high > p->db_next ? high - p->db_next : 0));
	}
}

/* A relay attempt failed (it is retried after the backoff): counted, remembered for the
 * health endpoints, logged. */
static void relay_failed(struct assay_loop *loop, const char *why)
{
	if (loop->m_retries)
		assay_counter_add(loop->m_retries, 1);
	if (loop->relay_failing_since_ms == 0)
		loop->relay_failing_since_ms = assay_now_ms();
	snprintf(loop->relay_error, sizeof(loop->relay_error), "%s", why);
	assay_log_warn(loop->cfg.log, "relay failed, retrying", ASSAY_LF_STR("error", why));
}

/*
 * About once a second: the age of the oldest unpublished event as a metric, and the service
 * unready (/readyz 503, the reason in /healthz and /readyz) once the relay has failed, or
 * applied events have waited, longer than relay_unready_ms.
 */
static void update_health(struct assay_loop *loop)
{
	int64_t now = assay_now_ms(), waiting, failing;
	char why[700];

	if (now - loop->health_checked_ms < 1000)
		return;
	loop->health_checked_ms = now;
	waiting = loop->unpublished_since_ms ? now - loop->unpublished_since_ms : 0;
	failing = loop->relay_failing_since_ms ? now - loop->relay_failing_since_ms : 0;
	if (loop->m_oldest_unpublished)
		assay_gauge_set(loop->m_oldest_unpublished, (double)waiting / 1000.0);
	if (loop->cfg.metrics == NULL)
		return;
	if (failing > loop->cfg.relay_unready_ms)
		snprintf(why, sizeof(why), "relay cannot publish for %" PRId64 " s: %s",
		         failing / 1000, loop->relay_error);
	else if (waiting > loop->cfg.relay_unready_ms)
		snprintf(why, sizeof(why), "applied events wait %" PRId64 " s to be published",
		         waiting / 1000);
	else
		why[0] = '\0';
	assay_metrics_set_problem(loop->cfg.metrics, why[0] ? why : NULL);
}

/* Collects up to batch_max_messages or batch_max_ms of messages into rkms. */
/*
 * Restarts a fetcher that stopped on a full queue. librdkafka 2.0.2 stops fetching once its
 * local queue holds queued.max.messages.kbytes and decides again only when its broker thread
 * next wakes up, up to a second later even when the queue drained long before: with a
 * backlog, intake sat idle 0.6-1 s after every few MB (37,000 instead of 68,000 events/s).
 * Called when the queue is empty: if at least half a queue was taken since it was last
 * empty, it was full and the fetcher may be asleep; a seek of the partitions the broker has
 * more of to their next undelivered offsets wakes it. (At a moderate rate the queue runs
 * empty long before it fills, and nothing is done: a seek discards the fetch in flight.)
 */
static void wake_stalled_fetches(struct assay_loop *loop)
{
	rd_kafka_topic_partition_list_t *list = NULL;
	rd_kafka_error_t *error;
	bool was_full = loop->polled_bytes >= loop->fetch_queue_bytes / 2;

	loop->polled_bytes = 0;
	if (!was_full)
		return;
	for (size_t i = 0; i < loop->nparts; i++) {
		struct part *p = &loop->parts[i];
		int64_t lo, hi;

		/* one past is a transaction's commit marker, not a message */
		if (rd_kafka_get_watermark_offsets(loop->consumer, p->topic, p->partition, &lo,
		                                   &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
		    hi <= p->polled_next + 1)
			continue;
		if (list == NULL)
			list = rd_kafka_topic_partition_list_new((int)loop->nparts);
		rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset =
		        p->polled_next;
	}
	if (list == NULL)
		return;
	error = rd_kafka_seek_partitions(loop->consumer, list, 0); /* asynchronous */
	if (error) {
		assay_log_warn(loop->cfg.log, "waking the fetcher failed",
		               ASSAY_LF_STR("error", rd_kafka_error_string(error)));
		rd_kafka_error_destroy(error);
	}
	rd_kafka_topic_partition_list_destroy(list);
}

static void poll_batch(struct assay_loop *loop)
{
	int64_t deadline = assay_now_ms() + loop->cfg.batch_max_ms;

	while (loop->nrkms < (size_t)loop->cfg.batch_max_messages && !assay_loop_stopping(loop) &&
	       !loop->fatal) {
		int64_t left = deadline - assay_now_ms();
		rd_kafka_message_t *rkm;
		struct part *p;

		if (left <= 0)
			break;
		rkm = rd_kafka_consumer_poll(loop->consumer, 0);
		if (rkm == NULL) { /* the local queue is empty */
			wake_stalled_fetches(loop);
			rkm = rd_kafka_consumer_poll(loop->consumer, (int)left);
		}
		if (rkm == NULL)
			continue;
		if (rkm->err) {
			if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				assay_log_warn(loop->cfg.log, "consume error",
				               ASSAY_LF_STR("error", rd_kafka_message_errstr(rkm)));
			/* the consumer cannot go on (e.g. fenced as a static member): it is made
			 * anew before the next poll */
			if (rkm->err == RD_KAFKA_RESP_ERR__FATAL)
				loop->consumer_failed = true;
			rd_kafka_message_destroy(rkm);
			if (loop->consumer_failed)
				break;
			continue;
		}
		p = assay_ledger_find(loop, rd_kafka_topic_name(rkm->rkt), rkm->partition);
		if (p == NULL) {
			rd_kafka_message_destroy(rkm); /* from a partition no longer ours */
			continue;
		}
		if (rkm->offset < p->polled_next) {
			rd_kafka_message_destroy(rkm); /* delivered again: in hand or applied */
			continue;
		}
		p->polled_next = rkm->offset + 1;
		loop->polled_bytes += rkm->len + rkm->key_len;
		loop->rkms[loop->nrkms++] = rkm;
	}
}

int assay_loop_run(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	int64_t relay_failed_at = 0;
	int err = 0;

	assay_log_info(loop->cfg.log, "loop started", ASSAY_LF_STR("group", loop->cfg.group));
	while (!assay_loop_stopping(loop) && !loop->fatal) {
		int64_t t0;

		if (loop->cfg.metrics)
			assay_metrics_heartbeat(loop->cfg.metrics);
		poll_batch(loop);
		if (loop->fatal)
			break;
		if (loop->consumer_failed) {
			/* fenced again and again: another live instance has this instance.id */
			if (assay_now_ms() - loop->renewed_ms < RENEW_MIN_INTERVAL_MS) {
				err = assay_errf(
				        ASSAY_ERR_FATAL, errstr, errstr_size,
				        "consumer fenced twice within %d s: another instance "
				        "of group %s runs with instance.id %s",
				        RENEW_MIN_INTERVAL_MS / 1000, loop->cfg.group,
				        loop->cfg.instance_id);
				break;
			}
			loop->renewed_ms = assay_now_ms();
			err = assay_clients_renew_consumer(loop, errstr, errstr_size);
			if (err)
				break;
			continue;
		}
		if (loop->nrkms) {
			t0 = assay_now_ms();
			err = apply(loop, 0, loop->nrkms, errstr, errstr_size);
			if (loop->m_batch_size)
				assay_histogram_observe(loop->m_batch_size, (double)loop->nrkms);
			if (loop->m_batch_seconds)
				assay_histogram_observe(loop->m_batch_seconds,
				                        (double)(assay_now_ms() - t0) / 1000.0);
			assay_batch_discard_polled(loop);
			if (err == ASSAY_ERR_FENCED)
				err = 0;
			if (err)
				break;
		}
		if (relay_failed_at == 0 || assay_now_ms() - relay_failed_at >= loop->backoff_ms) {
			err = assay_relay_publish(loop, false, errstr, errstr_size);
			if (err == ASSAY_ERR_FATAL)
				break;
			if (err) {
				relay_failed(loop, errstr);
				relay_failed_at = assay_now_ms();
			} else {
				relay_failed_at = 0;
			}
			err = 0;
		}
		update_lag(loop);
		update_health(loop);
	}
	if (loop->fatal && !err) {
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "%s", loop->fatal_errstr);
	}
	if (err == 0) {
		/* graceful stop: the batch in hand was applied above; publish, leave, flush */
		char why[512];

		if (assay_relay_publish(loop, true, why, sizeof(why)) != 0)
			assay_log_warn(loop->cfg.log, "final relay failed",
			               ASSAY_LF_STR("error", why));
	}
	assay_batch_discard_polled(loop);
	/* a static member does not leave the group here (KIP-345): its partitions wait for it
	 * to come back, or session.timeout.ms (docs/runtime.md, "Group membership") */
	rd_kafka_consumer_close(loop->consumer);
	rd_kafka_flush(loop->producer, loop->cfg.shutdown_timeout_ms);
	assay_log_info(loop->cfg.log, err ? "loop failed" : "loop stopped",
	               ASSAY_LF_STR("error", err ? errstr : ""));
	return err ? ASSAY_ERR_FATAL : 0;
}

int assay_loop_assigned(const struct assay_loop *loop)
{
	return atomic_load(&((struct assay_loop *)loop)->assigned);
}

void assay_loop_destroy(struct assay_loop *loop)
{
	if (loop == NULL)
		return;
	assay_batch_discard_polled(loop);
	if (loop->relay_started) {
		pthread_mutex_lock(&loop->mu);
		loop->quit = true; /* seen once the job in flight, if any, is done */
		pthread_cond_broadcast(&loop->cv);
		pthread_mutex_unlock(&loop->mu);
		pthread_join(loop->relay_thread, NULL);
	}
	if (loop->job)
		assay_relay_job_free(loop->job);
	loop->job = NULL;
	assay_rebalance_clear(loop);
	if (loop->consumer)
		rd_kafka_destroy(loop->consumer);
	if (loop->producer)
		rd_kafka_destroy(loop->producer);
	if (loop->conn)
		PQfinish(loop->conn);
	free(loop->mem);
	assay_copybin_release(&loop->outbox);
	assay_copybin_release(&loop->parked);
	for (size_t i = 0; i < loop->nrooms; i++)
		free(loop->rooms[i].topic);
	free(loop->rooms);
	assay_uuid_maker_destroy(loop->ids);
	assay_uuid_maker_destroy(loop->relay_ids);
	free(loop->rkms);
	pthread_cond_destroy(&loop->cv);
	pthread_mutex_destroy(&loop->mu);
	free(loop);
}
