/*
 * The exactly-once batch loop (see assay_loop.h and docs/runtime.md): consuming, applying a
 * batch in one PostgreSQL transaction, rebalances and the loop's life cycle. The handler's
 * view of a batch is in assay_batch.c, publishing in assay_relay.c.
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

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static bool stopping(const struct assay_loop *loop)
{
	return loop->cfg.stop != NULL && *loop->cfg.stop;
}

/* Sleeps the current backoff (in slices, so a stop request is seen) and doubles it. */
static void backoff(struct assay_loop *loop)
{
	int left = loop->backoff_ms;

	if (loop->m_retries)
		assay_counter_add(loop->m_retries, 1);
	while (left > 0 && !stopping(loop)) {
		int slice = left < 100 ? left : 100;

		sleep_ms(slice);
		left -= slice;
	}
	loop->backoff_ms *= 2;
	if (loop->backoff_ms > loop->cfg.retry_backoff_max_ms)
		loop->backoff_ms = loop->cfg.retry_backoff_max_ms;
}

static void backoff_reset(struct assay_loop *loop)
{
	loop->backoff_ms = loop->cfg.retry_backoff_ms;
}

/* ---- partitions ---- */

struct part *assay_loop_part_find(struct assay_loop *loop, const char *topic, int32_t partition)
{
	for (size_t i = 0; i < loop->nparts; i++)
		if (loop->parts[i].partition == partition &&
		    strcmp(loop->parts[i].topic, topic) == 0)
			return &loop->parts[i];
	return NULL;
}

static void parts_clear(struct assay_loop *loop)
{
	assay_relay_forget(loop);
	for (size_t i = 0; i < loop->nparts; i++)
		free(loop->parts[i].topic);
	free(loop->parts);
	loop->parts = NULL;
	loop->nparts = 0;
	atomic_store(&loop->assigned, 0);
}

size_t assay_loop_room(const struct assay_loop *loop, const char *topic)
{
	for (size_t i = 0; i < loop->nrooms; i++)
		if (strcmp(loop->rooms[i].topic, topic) == 0)
			return loop->rooms[i].room;
	return loop->default_room;
}

/* ---- database connection ---- */

/* Connects when there is no usable connection. Returns 0 or ASSAY_ERR_RETRY. */
int assay_loop_db_ensure(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	if (loop->conn != NULL && PQstatus(loop->conn) == CONNECTION_OK)
		return 0;
	if (loop->conn != NULL) {
		PQfinish(loop->conn);
		loop->conn = NULL;
	}
	return assay_pg_connect(loop->cfg.pg_url, &loop->conn, errstr, errstr_size);
}

static void db_rollback(struct assay_loop *loop)
{
	PGresult *res;

	if (loop->conn == NULL || PQstatus(loop->conn) != CONNECTION_OK)
		return;
	res = PQexec(loop->conn, "ROLLBACK");
	PQclear(res);
}

/* Formats "{a,b,c}" array literals for the unnest() statements; each stays closed ("}") after
 * every element, so it is ready as a parameter. */
struct arrays {
	struct assay_strbuf topics, partitions, lo, hi;
	size_t n;
};

/* Opens arr, or reopens it over its closing brace, for one more element. */
static void arrays_next(struct assay_strbuf *arr)
{
	if (arr->len == 0) {
		assay_strbuf_appendc(arr, '{');
		return;
	}
	arr->len--; /* over the closing brace */
	assay_strbuf_appendc(arr, ',');
}

static int arrays_add(struct arrays *a, const char *topic, int32_t partition, int64_t lo,
                      int64_t hi)
{
	arrays_next(&a->topics);
	assay_strbuf_append_pg_elem(&a->topics, topic, strlen(topic));
	arrays_next(&a->partitions);
	assay_strbuf_appendf(&a->partitions, "%" PRId32, partition);
	arrays_next(&a->lo);
	assay_strbuf_appendf(&a->lo, "%" PRId64, lo);
	arrays_next(&a->hi);
	assay_strbuf_appendf(&a->hi, "%" PRId64, hi);
	assay_strbuf_appendc(&a->topics, '}');
	assay_strbuf_appendc(&a->partitions, '}');
	assay_strbuf_appendc(&a->lo, '}');
	assay_strbuf_appendc(&a->hi, '}');
	if (a->topics.failed || a->partitions.failed || a->lo.failed || a->hi.failed)
		return ASSAY_ERR_FATAL;
	a->n++;
	return 0;
}

static void arrays_release(struct arrays *a)
{
	assay_strbuf_release(&a->topics);
	assay_strbuf_release(&a->partitions);
	assay_strbuf_release(&a->lo);
	assay_strbuf_release(&a->hi);
	a->n = 0;
}

/* ---- rebalance: positions from PostgreSQL and Kafka ---- */

/* Reads (and creates, at 0) the stored offsets of the partitions in list into their
 * offset fields, and their stream ids into streams (list->cnt entries) unless NULL. */
static int load_db_offsets(struct assay_loop *loop, rd_kafka_topic_partition_list_t *list,
                           int32_t *streams, char *errstr, size_t errstr_size)
{
	struct arrays a = {0};
	PGresult *res = NULL;
	int err;

	for (int i = 0; i < list->cnt; i++) {
		err = arrays_add(&a, list->elems[i].topic, list->elems[i].partition, 0, 0);
		if (err)
			goto out;
	}
	err = assay_loop_db_ensure(loop, errstr, errstr_size);
	if (err)
		goto out;
	{
		const char *params[] = {loop->cfg.group, a.topics.p, a.partitions.p};

		err = assay_pg_exec_params(
		        loop->conn,
		        "INSERT INTO assay_offsets (consumer_group, topic, partition, next_offset) "
		        "SELECT $1, t, p, 0 FROM unnest($2::text[], $3::int[]) AS v(t, p) "
		        "ON CONFLICT DO NOTHING",
		        3, params, NULL, errstr, errstr_size);
		if (err)
			goto out;
		err = assay_pg_query(
		        loop->conn,
		        "SELECT o.topic, o.partition, o.next_offset, o.id FROM assay_offsets o "
		        "JOIN unnest($2::text[], $3::int[]) AS v(t, p) "
		        "ON o.topic = v.t AND o.partition = v.p "
		        "WHERE o.consumer_group = $1",
		        3, params, &res, errstr, errstr_size);
		if (err)
			goto out;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		const char *topic = PQgetvalue(res, r, 0);
		int32_t partition = (int32_t)strtol(PQgetvalue(res, r, 1), NULL, 10);
		int64_t next = strtoll(PQgetvalue(res, r, 2), NULL, 10);

		for (int i = 0; i < list->cnt; i++)
			if (list->elems[i].partition == partition &&
			    strcmp(list->elems[i].topic, topic) == 0) {
				list->elems[i].offset = next;
				if (streams)
					streams[i] =
					        (int32_t)strtol(PQgetvalue(res, r, 3), NULL, 10);
			}
	}
out:
	PQclear(res);
	arrays_release(&a);
	return err;
}

static int on_assign(struct assay_loop *loop, rd_kafka_topic_partition_list_t *list, char *errstr,
                     size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *committed = NULL;
	rd_kafka_resp_err_t kerr;
	int32_t *streams;
	bool published = true;
	int err;

	streams = calloc((size_t)list->cnt + 1, sizeof(*streams));
	if (streams == NULL)
		return ASSAY_ERR_FATAL;
	for (;;) {
		err = load_db_offsets(loop, list, streams, errstr, errstr_size);
		if (err != ASSAY_ERR_RETRY || stopping(loop))
			break;
		assay_log_warn(loop->cfg.log, "stored offsets unavailable, retrying",
		               ASSAY_LF_STR("error", errstr));
		backoff(loop);
	}
	/* the handler's state may have changed under another owner: reload it */
	while (err == 0 && loop->handler.assigned) {
		err = assay_loop_db_ensure(loop, errstr, errstr_size);
		if (err == 0)
			err = loop->handler.assigned(loop->handler.ctx, loop->conn, list, errstr,
			                             errstr_size);
		if (err != ASSAY_ERR_RETRY || stopping(loop))
			break;
		assay_log_warn(loop->cfg.log, "handler state unavailable, retrying",
		               ASSAY_LF_STR("error", errstr));
		backoff(loop);
		err = 0;
	}
	backoff_reset(loop);
	if (err)
		goto out;

	parts_clear(loop);
	loop->parts = calloc((size_t)list->cnt + 1, sizeof(*loop->parts));
	if (loop->parts == NULL) {
		err = ASSAY_ERR_FATAL;
		goto out;
	}
	/* the group's committed offsets are the relayed positions */
	committed = rd_kafka_topic_partition_list_copy(list);
	kerr = rd_kafka_committed(loop->consumer, committed, 10000);
	for (int i = 0; i < list->cnt; i++) {
		struct part *p = &loop->parts[loop->nparts];
		char labels[400];

		p->topic = strdup(list->elems[i].topic);
		if (p->topic == NULL) {
			err = ASSAY_ERR_FATAL;
			goto out;
		}
		loop->nparts++;
		p->partition = list->elems[i].partition;
		p->stream = streams[i];
		p->db_next = list->elems[i].offset;
		p->polled_next = p->db_next;
		p->relay_pos = RELAY_UNKNOWN;
		if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR && committed->elems[i].err == 0)
			p->relay_pos =
			        committed->elems[i].offset >= 0 ? committed->elems[i].offset : 0;
		published = published && p->relay_pos == p->db_next;
		p->cleaned_pos = 0;
		if (loop->cfg.metrics) {
			snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%" PRId32 "\"",
			         p->topic, p->partition);
			p->lag = assay_metrics_gauge(loop->cfg.metrics, "assay_consumer_lag",
			                             "messages between the stored offset and the "
			                             "partition's end",
			                             labels);
		}
		assay_log_info(loop->cfg.log, "partition assigned", ASSAY_LF_STR("topic", p->topic),
		               ASSAY_LF_INT("partition", p->partition),
		               ASSAY_LF_INT("offset", p->db_next),
		               ASSAY_LF_INT("relayed", p->relay_pos));
	}
	/* everything applied is published: the relay can work from memory at once */
	loop->mem_valid = published;
	loop->unpublished_since_ms = published ? 0 : assay_now_ms();
	kerr = rd_kafka_assign(loop->consumer, list);
	if (kerr) {
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "assign failed: %s",
		                 rd_kafka_err2str(kerr));
		goto out;
	}
	atomic_store(&loop->assigned, (int)loop->nparts);
	if (loop->cfg.metrics)
		assay_metrics_set_ready(loop->cfg.metrics, true);
out:
	if (committed)
		rd_kafka_topic_partition_list_destroy(committed);
	free(streams);
	return err;
}

/* Destroys the messages in hand (they were not applied). */
static void batch_discard(struct assay_loop *loop)
{
	for (size_t k = 0; k < loop->nrkms; k++)
		rd_kafka_message_destroy(loop->rkms[k]);
	loop->nrkms = 0;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t kerr,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
	struct assay_loop *loop = opaque;
	char errstr[400] = "";
	int err;

	if (kerr == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		err = on_assign(loop, list, errstr, sizeof(errstr));
		if (err && !stopping(loop)) {
			loop->fatal = true;
			snprintf(loop->fatal_errstr, sizeof(loop->fatal_errstr),
			         "partition assignment failed: %s", errstr);
			rd_kafka_assign(rk, NULL);
		}
		return;
	}
	/* revoked (or an error): messages in hand are not applied; the next owner reads them
	 * from the stored offsets. Publish what is applied so the handover is quick. */
	batch_discard(loop);
	if (!rd_kafka_assignment_lost(rk) &&
	    assay_relay_publish(loop, true, errstr, sizeof(errstr)) != 0)
		assay_log_warn(loop->cfg.log, "relay before revoke failed",
		               ASSAY_LF_STR("error", errstr));
	assay_log_info(loop->cfg.log, "partitions revoked", ASSAY_LF_INT("count", list->cnt));
	parts_clear(loop);
	if (loop->cfg.metrics)
		assay_metrics_set_ready(loop->cfg.metrics, false);
	rd_kafka_assign(rk, NULL);
}

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
	const void *id;
	size_t len;

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
	pthread_mutex_unlock(&loop->mu);
	assay_log_warn(loop->cfg.log, "event refused by the broker",
	               ASSAY_LF_STR("topic", rd_kafka_topic_name(rkm->rkt)),
	               ASSAY_LF_STR("error", rd_kafka_err2str(rkm->err)),
	               ASSAY_LF_INT("bytes", (int64_t)rkm->len));
}

static void error_cb(rd_kafka_t *rk, int kerr, const char *reason, void *opaque)
{
	struct assay_loop *loop = opaque;

	assay_log_warn(loop->cfg.log, "kafka error", ASSAY_LF_STR("error", rd_kafka_err2name(kerr)),
	               ASSAY_LF_STR("reason", reason));
}

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

/*
 * Moves the stored offsets of every partition in the batch with a compare-and-set on the
 * values this loop last stored, and deletes outbox rows that Kafka already holds.
 * Returns 0, ASSAY_ERR_FENCED when a row did not match, or the failure class.
 */
static int write_offsets(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                         size_t errstr_size)
{
	struct arrays a = {0}, clean = {0};
	int64_t affected = 0;
	int err = 0;

	/* outbox rows Kafka already holds are deleted about once a second, not every batch */
	loop->cleanup_in_txn = assay_now_ms() - loop->last_cleanup_ms >= OUTBOX_CLEANUP_MS;

	for (size_t i = 0; i < loop->nparts; i++) {
		struct part *p = &loop->parts[i];
		int64_t next = -1;

		for (size_t k = 0; k < batch->count; k++)
			if (batch->msgs[k].partition == p->partition &&
			    strcmp(batch->msgs[k].topic, p->topic) == 0 &&
			    batch->msgs[k].offset + 1 > next)
				next = batch->msgs[k].offset + 1;
		if (next >= 0 && (err = arrays_add(&a, p->topic, p->partition, p->db_next, next)))
			goto out;
		if (loop->cleanup_in_txn && p->relay_pos > p->cleaned_pos &&
		    (err = arrays_add(&clean, p->topic, p->stream, p->relay_pos, 0)))
			goto out;
	}
	if (a.n) {
		const char *params[] = {loop->cfg.group, a.topics.p, a.partitions.p, a.lo.p,
		                        a.hi.p};

		err = assay_pg_exec_params(
		        loop->conn,
		        "UPDATE assay_offsets o SET next_offset = v.hi, updated_at = now() "
		        "FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) "
		        "AS v(t, p, lo, hi) "
		        "WHERE o.consumer_group = $1 AND o.topic = v.t AND o.partition = v.p "
		        "AND o.next_offset = v.lo",
		        5, params, &affected, errstr, errstr_size);
		if (err)
			goto out;
		if (affected != (int64_t)a.n) {
			err = assay_errf(ASSAY_ERR_FENCED, errstr, errstr_size,
			                 "stored offsets moved by another consumer (%" PRId64
			                 " of %zu partitions matched)",
			                 affected, a.n);
			goto out;
		}
	}
	if (clean.n) {
		/* the partitions column of clean holds stream ids here */
		const char *params[] = {clean.partitions.p, clean.lo.p};

		err = assay_pg_exec_params(loop->conn,
		                           "DELETE FROM assay_outbox o USING unnest($1::int[], "
		                           "$2::bigint[]) AS v(s, below) "
		                           "WHERE o.stream = v.s AND o.next_offset <= v.below",
		                           2, params, NULL, errstr, errstr_size);
	}
out:
	arrays_release(&a);
	arrays_release(&clean);
	return err;
}

/* After a commit: the new stored offsets, cleaned positions, and the relay queue. */
static void batch_committed(struct assay_loop *loop, struct assay_batch *batch)
{
	for (size_t k = 0; k < batch->count; k++) {
		struct part *p =
		        assay_loop_part_find(loop, batch->msgs[k].topic, batch->msgs[k].partition);

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
	err = assay_loop_db_ensure(loop, errstr, errstr_size);
	if (err)
		return err;
	/* the offsets first: a stale owner is fenced before its rows can collide with the new
	 * owner's (a collision would look like a refused row) */
	err = assay_pg_exec(loop->conn, "BEGIN", errstr, errstr_size);
	if (!err)
		err = write_offsets(loop, batch, errstr, errstr_size);
	if (!err && loop->handler.write)
		err = loop->handler.write(loop->handler.ctx, loop->conn, batch, errstr,
		                          errstr_size);
	if (!err)
		err = write_outputs(loop, batch, errstr, errstr_size);
	if (!err)
		err = assay_pg_exec(loop->conn, "COMMIT", errstr, errstr_size);
	if (err) {
		db_rollback(loop);
		if (loop->handler.rolled_back)
			loop->handler.rolled_back(loop->handler.ctx, batch);
		return err;
	}
	batch_committed(loop, batch);
	if (loop->handler.committed)
		loop->handler.committed(loop->handler.ctx, batch);
	return 0;
}

/* Re-reads the stored offsets of the assigned partitions and seeks the consumer to them. */
static int reseek(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *list =
	        rd_kafka_topic_partition_list_new((int)loop->nparts);
	rd_kafka_error_t *error;
	int err;

	for (size_t i = 0; i < loop->nparts; i++)
		rd_kafka_topic_partition_list_add(list, loop->parts[i].topic,
		                                  loop->parts[i].partition);
	assay_relay_forget(loop);
	/* all three steps or none: applying with stored offsets the consumer has not been
	 * moved to, or with state not reloaded, would skip or misjudge messages */
	for (;;) {
		err = assay_loop_db_ensure(loop, errstr, errstr_size);
		if (!err)
			err = load_db_offsets(loop, list, NULL, errstr, errstr_size);
		if (!err) {
			for (int i = 0; i < list->cnt; i++) {
				struct part *p = assay_loop_part_find(loop, list->elems[i].topic,
				                                      list->elems[i].partition);
				if (p) {
					p->db_next = list->elems[i].offset;
					p->polled_next = p->db_next;
					p->relay_pos = RELAY_UNKNOWN; /* re-read what Kafka holds */
				}
			}
			/* another owner changed the state: the handler reloads it, as after an
			 * assignment */
			if (loop->handler.assigned)
				err = loop->handler.assigned(loop->handler.ctx, loop->conn, list,
				                             errstr, errstr_size);
		}
		if (!err) {
			error = rd_kafka_seek_partitions(loop->consumer, list, 10000);
			if (error) {
				err = assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size,
				                 "seek failed: %s", rd_kafka_error_string(error));
				rd_kafka_error_destroy(error);
			}
		}
		if (err != ASSAY_ERR_RETRY || stopping(loop))
			break;
		assay_log_warn(loop->cfg.log, "re-seek failed, retrying",
		               ASSAY_LF_STR("error", errstr));
		backoff(loop);
	}
	backoff_reset(loop);
	rd_kafka_topic_partition_list_destroy(list);
	return err;
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
		if (stopping(loop))
			break;
		assay_log_warn(loop->cfg.log, "batch failed, retrying",
		               ASSAY_LF_STR("error", errstr),
		               ASSAY_LF_INT("backoff_ms", loop->backoff_ms));
		backoff(loop);
		err = 0;
	}
	if (err == 0) {
		backoff_reset(loop);
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
			err = assay_loop_db_ensure(loop, errstr, errstr_size);
			if (!err)
				err = assay_pg_exec(loop->conn, "BEGIN", errstr, errstr_size);
			if (!err)
				err = write_offsets(loop, &batch, errstr, errstr_size);
			if (!err)
				err = write_outputs(loop, &batch, errstr, errstr_size);
			if (!err)
				err = assay_pg_exec(loop->conn, "COMMIT", errstr, errstr_size);
			if (!err)
				break;
			db_rollback(loop);
			if (err != ASSAY_ERR_RETRY || stopping(loop))
				break;
			backoff(loop);
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
		err = reseek(loop, errstr, errstr_size);
		if (err == 0)
			err = ASSAY_ERR_FENCED;
		else if (err == ASSAY_ERR_RETRY)
			err = ASSAY_ERR_FENCED; /* only when stopping: nothing more is applied */
	}
	assay_batch_release(&batch);
	return err;
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
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	else
		rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
	rk = rd_kafka_new(type, conf, errstr, errstr_size);
	if (rk == NULL)
		rd_kafka_conf_destroy(conf);
	return rk;
}

static int create_consumer(struct assay_loop *loop, char *errstr, size_t errstr_size)
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
static int create_producer(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	const struct assay_loop_config *cfg = &loop->cfg;
	char txid[512], timeout[32], max_bytes[32];
	const char *const kv[] = {"transactional.id", txid, "transaction.timeout.ms", timeout,
	                          "linger.ms", "5",
	                          /* room for the largest record a produced topic takes */
	                          "message.max.bytes", max_bytes,
	                          /* delivery_cb hears of refused events only */
	                          "delivery.report.only.error", "true", NULL};
	rd_kafka_error_t *error;
	size_t size = sizeof(max_bytes);
	int err;

	snprintf(txid, sizeof(txid), "%s-%s", cfg->group, cfg->instance_id);
	snprintf(timeout, sizeof(timeout), "%d", cfg->transaction_timeout_ms);
	snprintf(max_bytes, sizeof(max_bytes), "%zu", loop->producer_max_bytes);
	loop->producer = new_client(loop, RD_KAFKA_PRODUCER, kv, errstr, errstr_size);
	if (loop->producer == NULL)
		return ASSAY_ERR_FATAL;
	/* the limit in force (a pass-through property may have changed it) */
	if (rd_kafka_conf_get(rd_kafka_conf(loop->producer), "message.max.bytes", max_bytes,
	                      &size) == RD_KAFKA_CONF_OK)
		loop->producer_max_bytes = (size_t)strtoull(max_bytes, NULL, 10);
	error = rd_kafka_init_transactions(loop->producer, cfg->transaction_timeout_ms * 2);
	if (error) {
		err = assay_kafka_classify_error(error) == ASSAY_ERR_FATAL ? ASSAY_ERR_FATAL
		                                                           : ASSAY_ERR_RETRY;
		assay_errf(0, errstr, errstr_size, "init transactions failed: %s",
		           rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		return err;
	}
	return 0;
}

/* The message limit of each room's topic from the broker into limits (Kafka's default
 * where the broker does not say or cannot be asked). */
static void fetch_limits(struct assay_loop *loop, const char **topics, int64_t *limits)
{
	char why[512];

	for (size_t i = 0; i < loop->nrooms; i++)
		topics[i] = loop->rooms[i].topic;
	if (assay_kafka_topic_max_bytes(loop->cfg.brokers, topics, loop->nrooms, limits, 10000, why,
	                                sizeof(why)) != 0)
		assay_log_warn(loop->cfg.log,
		               "topic limits unknown, assuming Kafka's default max.message.bytes",
		               ASSAY_LF_STR("error", why));
	for (size_t i = 0; i < loop->nrooms; i++)
		if (limits[i] <= 0)
			limits[i] = TOPIC_DEFAULT_MAX_BYTES;
}

/* Each room is its topic's limit or the producer's, whichever is smaller, less the record's
 * framing. */
static void size_rooms(struct assay_loop *loop, const int64_t *limits)
{
	size_t producer = loop->producer_max_bytes;

	loop->default_room =
	        (producer < TOPIC_DEFAULT_MAX_BYTES ? producer : TOPIC_DEFAULT_MAX_BYTES) -
	        RECORD_OVERHEAD;
	for (size_t i = 0; i < loop->nrooms; i++) {
		size_t limit = (size_t)limits[i] < producer ? (size_t)limits[i] : producer;

		loop->rooms[i].room = limit > RECORD_OVERHEAD ? limit - RECORD_OVERHEAD : 0;
		assay_log_info(loop->cfg.log, "topic limit",
		               ASSAY_LF_STR("topic", loop->rooms[i].topic),
		               ASSAY_LF_INT("max_record_bytes", (int64_t)loop->rooms[i].room));
	}
}

/* Reads the message limits of the topics the loop produces to (and the dead-letter topic)
 * and sizes the producer for the largest. Before the producer exists. */
static int read_topic_limits(struct assay_loop *loop, int64_t **limits, char *errstr,
                             size_t errstr_size)
{
	size_t n = loop->cfg.nproduces + 1;
	const char **topics = calloc(n, sizeof(*topics));

	*limits = calloc(n, sizeof(**limits));
	loop->rooms = calloc(n, sizeof(*loop->rooms));
	if (topics == NULL || *limits == NULL || loop->rooms == NULL) {
		free(topics);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		loop->rooms[i].topic = strdup(i < loop->cfg.nproduces ? loop->cfg.produces[i]
		                                                      : loop->deadletter_topic);
		if (loop->rooms[i].topic == NULL) {
			free(topics);
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
		}
		loop->nrooms++;
	}
	fetch_limits(loop, topics, *limits);
	free(topics);
	loop->producer_max_bytes = PRODUCER_DEFAULT_MAX_BYTES;
	for (size_t i = 0; i < n; i++)
		if ((size_t)(*limits)[i] > loop->producer_max_bytes)
			loop->producer_max_bytes = (size_t)(*limits)[i];
	return 0;
}

void assay_loop_refresh_rooms(struct assay_loop *loop)
{
	const char **topics = calloc(loop->nrooms + 1, sizeof(*topics));
	int64_t *limits = calloc(loop->nrooms + 1, sizeof(*limits));

	if (topics && limits) {
		fetch_limits(loop, topics, limits);
		size_rooms(loop, limits);
	}
	free(topics);
	free(limits);
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
	backoff_reset(loop);
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
	err = read_topic_limits(loop, &limits, errstr, errstr_size);
	if (!err)
		err = create_producer(loop, errstr, errstr_size);
	if (err)
		goto fail;
	size_rooms(loop, limits);
	free(limits);
	limits = NULL;
	if (pthread_create(&loop->relay_thread, NULL, assay_relay_main, loop) != 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "relay thread: cannot start");
		goto fail;
	}
	loop->relay_started = true;
	err = create_consumer(loop, errstr, errstr_size);
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

	while (loop->nrkms < (size_t)loop->cfg.batch_max_messages && !stopping(loop) &&
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
		p = assay_loop_part_find(loop, rd_kafka_topic_name(rkm->rkt), rkm->partition);
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

/*
 * Replaces a consumer that librdkafka declared unusable (a fatal consumer error, e.g. a static
 * member fenced after its session expired while the broker was away): the messages in hand
 * are dropped, the partitions are given up as on a revocation, and a new consumer joins with
 * the same group.instance.id; its assignment re-reads the stored offsets.
 */
static int renew_consumer(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	assay_log_warn(loop->cfg.log, "consumer failed for good, creating it anew");
	batch_discard(loop);
	parts_clear(loop);
	if (loop->cfg.metrics)
		assay_metrics_set_ready(loop->cfg.metrics, false);
	rd_kafka_consumer_close(loop->consumer);
	rd_kafka_destroy(loop->consumer);
	loop->consumer = NULL;
	loop->consumer_failed = false;
	return create_consumer(loop, errstr, errstr_size);
}

int assay_loop_run(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	int64_t relay_failed_at = 0;
	int err = 0;

	assay_log_info(loop->cfg.log, "loop started", ASSAY_LF_STR("group", loop->cfg.group));
	while (!stopping(loop) && !loop->fatal) {
		int64_t t0;

		if (loop->cfg.metrics)
			assay_metrics_heartbeat(loop->cfg.metrics);
		poll_batch(loop);
		if (loop->fatal)
			break;
		if (loop->consumer_failed) {
			err = renew_consumer(loop, errstr, errstr_size);
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
			batch_discard(loop);
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
	batch_discard(loop);
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
	batch_discard(loop);
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
	parts_clear(loop);
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
