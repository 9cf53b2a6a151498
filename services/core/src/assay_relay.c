/*
 * The outbox relay: publishes what the loop applied, in Kafka transactions that also commit
 * the published input positions as the consumer group's offsets. In the steady state a
 * thread of its own publishes the events the loop queued in memory, one transaction per
 * relay interval, while the loop applies the next batches; after a start, a rebalance or a
 * failure the loop thread reads the outbox table instead (see docs/runtime.md).
 */
#include "assay_loop_int.h"
#include "assay_vec.h"
#include "assay_err.h"
#include "assay_kafka.h"

#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- outbox relay ---- */

static int64_t be64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return (int64_t)be64toh(v);
}

/* Drops the relay queue (after waiting for the job in flight); the next relay reads the
 * outbox, which holds everything not yet published. */
void assay_relay_forget(struct assay_loop *loop)
{
	char errstr[512];

	if (assay_relay_collect(loop, true, errstr, sizeof(errstr)) != 0)
		assay_log_warn(loop->cfg.log, "relay failed", ASSAY_LF_STR("error", errstr));
	for (size_t k = 0; k < loop->nmem; k++)
		assay_out_event_release(&loop->mem[k]);
	loop->nmem = 0;
	loop->mem_valid = false;
}

/* After a commit: moves the batch's events into the relay queue (when it is valid). */
int assay_relay_take(struct assay_loop *loop, struct assay_batch *batch)
{
	if (!loop->mem_valid || batch->nevents == 0)
		return 0;
	if (assay_vec_reserve(&loop->mem, &loop->mem_cap, loop->nmem + batch->nevents,
	                      sizeof(*loop->mem))) {
		assay_relay_forget(loop); /* the outbox still has them */
		return 0;
	}
	for (size_t k = 0; k < batch->nevents; k++) {
		struct out_event *e = &batch->events[k];
		const struct assay_msg *m = &batch->msgs[e->msg];

		e->source_topic = strdup(m->topic);
		if (e->source_topic == NULL) {
			assay_relay_forget(loop);
			return 0;
		}
		e->source_partition = m->partition;
		e->source_offset = m->offset;
		loop->mem[loop->nmem++] = *e; /* taken over */
		memset(e, 0, sizeof(*e));
		assay_headers_init(&e->headers);
	}
	batch->nevents = 0;
	return 0;
}

/* Aborts the open transaction after a failure err: returns ASSAY_ERR_FATAL when the abort
 * fails fatally, else err. */
static int txn_abort(struct assay_loop *loop, int err)
{
	rd_kafka_error_t *error = rd_kafka_abort_transaction(loop->producer, -1);

	if (error) {
		if (assay_kafka_classify_error(error) == ASSAY_ERR_FATAL)
			err = ASSAY_ERR_FATAL;
		rd_kafka_error_destroy(error);
	}
	return err;
}

static int txn_error(struct assay_loop *loop, rd_kafka_error_t *error, const char *what,
                     char *errstr, size_t errstr_size)
{
	if (assay_kafka_take_error(error, what, errstr, errstr_size) == ASSAY_ERR_FATAL)
		return ASSAY_ERR_FATAL;
	return txn_abort(loop, ASSAY_ERR_RETRY);
}

/* Publishes one event inside the open transaction, adding event_id (from its position)
 * unless the handler set one, and produced_by. With *value_owned (a malloc'd value) the
 * value is handed to librdkafka instead of copied: on success *value_owned is set to NULL. */
static int produce(struct assay_loop *loop, const char *topic, const void *key, size_t key_len,
                   const void *value, size_t value_len, void **value_owned,
                   const struct assay_headers *h, const char *source_topic,
                   int32_t source_partition, int64_t source_offset, int seq, char *errstr,
                   size_t errstr_size)
{
	rd_kafka_headers_t *hdrs = assay_headers_to_kafka(h);
	rd_kafka_resp_err_t kerr;

	if (hdrs == NULL)
		return ASSAY_ERR_FATAL;
	if (assay_headers_find(h, "event_id") == NULL) {
		char id[ASSAY_UUID_LEN];

		assay_loop_event_id(loop, loop->relay_ids, source_topic, source_partition,
		                    source_offset, seq, id);
		rd_kafka_header_add(hdrs, "event_id", -1, id, -1);
	}
	if (assay_headers_find(h, "produced_by") == NULL)
		rd_kafka_header_add(hdrs, "produced_by", -1, loop->cfg.service, -1);
	for (;;) {
		kerr = rd_kafka_producev(
		        loop->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
		        RD_KAFKA_V_VALUE((void *)value, value_len),
		        RD_KAFKA_V_MSGFLAGS(value_owned && *value_owned ? RD_KAFKA_MSG_F_FREE
		                                                        : RD_KAFKA_MSG_F_COPY),
		        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
		if (kerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(loop->producer, 50);
	}
	if (kerr) {
		int cls = assay_kafka_classify(kerr);

		rd_kafka_headers_destroy(hdrs);
		/* reject: this record can never be published (too large for the producer) */
		return assay_errf(
		        cls == ASSAY_ERR_FATAL || cls == ASSAY_ERR_REJECT ? cls : ASSAY_ERR_RETRY,
		        errstr, errstr_size, "produce to %s failed: %s", topic,
		        rd_kafka_err2str(kerr));
	}
	if (value_owned)
		*value_owned = NULL; /* librdkafka frees it after delivery */
	return 0;
}

/* Fills unknown relay positions from the group's committed offsets. */
static int relay_positions(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *list =
	        rd_kafka_topic_partition_list_new((int)loop->nparts);
	rd_kafka_resp_err_t kerr;

	for (size_t i = 0; i < loop->nparts; i++)
		if (loop->parts[i].relay_pos == RELAY_UNKNOWN)
			rd_kafka_topic_partition_list_add(list, loop->parts[i].topic,
			                                  loop->parts[i].partition);
	kerr = list->cnt ? rd_kafka_committed(loop->consumer, list, 10000) : 0;
	for (int i = 0; kerr == 0 && i < list->cnt; i++) {
		struct part *p =
		        assay_ledger_find(loop, list->elems[i].topic, list->elems[i].partition);

		if (p && list->elems[i].err == 0)
			p->relay_pos = list->elems[i].offset >= 0 ? list->elems[i].offset : 0;
	}
	rd_kafka_topic_partition_list_destroy(list);
	if (kerr)
		return assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size,
		                  "reading relayed positions failed: %s", rd_kafka_err2str(kerr));
	return 0;
}

/* Whether the broker refused the event with this id for good (delivery_cb); forgets it. */
static bool take_refused(struct assay_loop *loop, const char *id)
{
	bool found = false;

	pthread_mutex_lock(&loop->mu);
	for (size_t k = 0; k < loop->nrefused && !found; k++)
		if (strcmp(loop->refused[k], id) == 0) {
			memmove(loop->refused[k], loop->refused[k + 1],
			        (loop->nrefused - k - 1) * sizeof(loop->refused[0]));
			loop->nrefused--;
			found = true;
		}
	pthread_mutex_unlock(&loop->mu);
	return found;
}

/*
 * An outbox event that can never be published (the broker or the producer refuses it for
 * good, e.g. its topic's limit was lowered after it was stored): parked whole, and a dead
 * letter that names it and carries its first bytes is published in its place, under its
 * event id. Nothing else waits for it.
 */
static int relay_substitute(struct assay_loop *loop, const struct part *p,
                            const struct outbox_event *ev, const char *topic, const char *why,
                            char *errstr, size_t errstr_size)
{
	char reason[700], num[32], sha[65], where[600];
	size_t key_len = ev->key_len < PARKED_PREFIX_BYTES ? ev->key_len : PARKED_PREFIX_BYTES;
	size_t value_len =
	        ev->value_len < PARKED_PREFIX_BYTES ? ev->value_len : PARKED_PREFIX_BYTES;
	struct assay_headers h;
	int err;

	snprintf(reason, sizeof(reason), "event for topic %s of %zu bytes refused: %s", topic,
	         ev->value_len, why);
	err = assay_parked_insert(loop, p, ev->source_offset, ev->seq, topic, ev->key, ev->key_len,
	                          ev->value, ev->value_len, reason, errstr, errstr_size);
	if (err)
		return err == ASSAY_ERR_FATAL ? err : ASSAY_ERR_RETRY;
	assay_headers_init(&h);
	assay_sha256_hex(ev->value, ev->value_len, sha);
	snprintf(where, sizeof(where),
	         "assay_parked_values consumer_group=%s topic=%s partition=%" PRId32
	         " offset=%" PRId64 " seq=%" PRId32,
	         loop->cfg.group, p->topic, p->partition, ev->source_offset, ev->seq);
	err = assay_headers_add_str(&h, "assay.dlq.topic", p->topic);
	snprintf(num, sizeof(num), "%" PRId32, p->partition);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.partition", num);
	snprintf(num, sizeof(num), "%" PRId64, ev->source_offset);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.offset", num);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.stage", loop->handler.stage);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.error.class", "reject");
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.error.message", reason);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.event.topic", topic);
	snprintf(num, sizeof(num), "%zu", ev->value_len);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.value.size", num);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.value.sha256", sha);
	snprintf(num, sizeof(num), "%zu", value_len);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.value.kept", num);
	err = err ? err : assay_headers_add_str(&h, "assay.dlq.parked", where);
	if (!err)
		err = produce(loop, loop->deadletter_topic, ev->key, key_len, ev->value, value_len,
		              NULL, &h, p->topic, p->partition, ev->source_offset, ev->seq, errstr,
		              errstr_size);
	else
		err = ASSAY_ERR_FATAL;
	assay_headers_release(&h);
	if (!err) {
		if (loop->m_parked)
			assay_counter_add(loop->m_parked, 1);
		assay_log_warn(loop->cfg.log, "event parked and dead-lettered",
		               ASSAY_LF_STR("topic", topic), ASSAY_LF_STR("error", why),
		               ASSAY_LF_STR("parked", where));
	}
	return err == ASSAY_ERR_REJECT ? ASSAY_ERR_FATAL : err;
}

/* Remembers id among the struck (refused and sent again); false when it was already. */
static bool strike(struct assay_loop *loop, const char *id)
{
	for (size_t k = 0; k < loop->nstruck; k++)
		if (strcmp(loop->struck[k], id) == 0)
			return false;
	if (loop->nstruck == REFUSED_MAX)
		loop->nstruck = 0; /* forget the oldest round */
	memcpy(loop->struck[loop->nstruck++], id, ASSAY_UUID_LEN);
	return true;
}

/*
 * Whether this outbox event is to be parked because the broker refused it for good. The
 * broker refuses a whole produce request, so an event refused alongside a too large one is
 * sent again; one larger than its topic's limit as read anew (or refused a second time) is
 * parked.
 */
static bool event_refused(struct assay_loop *loop, const struct assay_headers *h,
                          const struct part *p, const struct outbox_event *ev, const char *topic)
{
	const struct assay_header *given = assay_headers_find(h, "event_id");
	char id[ASSAY_UUID_LEN];

	if (given && given->size + 1 == ASSAY_UUID_LEN) {
		memcpy(id, given->value, given->size);
		id[given->size] = '\0';
	} else {
		assay_loop_event_id(loop, loop->ids, p->topic, p->partition, ev->source_offset,
		                    ev->seq, id);
	}
	for (size_t k = 0; k < loop->nparking; k++)
		if (strcmp(loop->parking[k], id) == 0)
			return true; /* decided in an attempt that did not commit */
	if (!take_refused(loop, id))
		return false;
	if (ev->key_len + ev->value_len + assay_headers_wire_size(h) <=
	            assay_limits_room(loop, topic) &&
	    strike(loop, id))
		return false;
	if (loop->nparking < REFUSED_MAX)
		memcpy(loop->parking[loop->nparking++], id, ASSAY_UUID_LEN);
	return true;
}

/* Produces the events of partition p's outbox rows between relay_pos and db_next (at
 * most RELAY_MAX_OUTBOX_ROWS rows, whole rows only) and sets *new_pos to where that ends. */
static int relay_from_outbox(struct assay_loop *loop, const struct part *p, int64_t *new_pos,
                             size_t *produced, char *errstr, size_t errstr_size)
{
	char lo[32], hi[32], stream[16], limit[16];
	const char *params[] = {stream, lo, hi, limit};
	PGresult *res;
	int rows, err = 0;

	snprintf(stream, sizeof(stream), "%" PRId32, p->stream);
	snprintf(lo, sizeof(lo), "%" PRId64, p->relay_pos);
	snprintf(hi, sizeof(hi), "%" PRId64, p->db_next);
	snprintf(limit, sizeof(limit), "%d", RELAY_MAX_OUTBOX_ROWS);
	res = PQexecParams(loop->conn,
	                   "SELECT next_offset, events FROM assay_outbox "
	                   "WHERE stream = $1 AND next_offset > $2 AND first_offset < $3 "
	                   "ORDER BY first_offset LIMIT $4",
	                   4, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = assay_pg_result_error(res, loop->conn, "reading outbox failed", errstr,
		                            errstr_size);
		PQclear(res);
		return err == ASSAY_ERR_FATAL ? err : ASSAY_ERR_RETRY;
	}
	rows = PQntuples(res);
	*new_pos = p->db_next;
	if (rows == RELAY_MAX_OUTBOX_ROWS) /* the rest in the next transaction */
		*new_pos = be64(PQgetvalue(res, rows - 1, 0));
	for (int r = 0; r < rows && !err; r++) {
		const char *value = PQgetvalue(res, r, 1);
		size_t len = (size_t)PQgetlength(res, r, 1), pos = 0;
		struct outbox_event ev;
		int more;

		while (!err && (more = assay_outbox_get(value, len, &pos, &ev)) == 1) {
			struct assay_headers h;
			char topic[256];

			/* a row that began before the published position (another owner's batch
			 * boundaries): its earlier events are in Kafka already */
			if (ev.source_offset < p->relay_pos)
				continue;
			snprintf(topic, sizeof(topic), "%.*s", (int)ev.topic_len, ev.topic);
			assay_headers_init(&h);
			if (ev.headers && assay_headers_decode(&h, ev.headers, ev.headers_len,
			                                       errstr, errstr_size))
				err = ASSAY_ERR_FATAL; /* we wrote these bytes: an invariant is
				                          broken */
			if (!err && event_refused(loop, &h, p, &ev, topic))
				err = relay_substitute(loop, p, &ev, topic, "refused by the broker",
				                       errstr, errstr_size);
			else if (!err) {
				err = produce(loop, topic, ev.key, ev.key_len, ev.value,
				              ev.value_len, NULL, &h, p->topic, p->partition,
				              ev.source_offset, ev.seq, errstr, errstr_size);
				if (err == ASSAY_ERR_REJECT) {
					char why[512];

					snprintf(why, sizeof(why), "%s", errstr);
					err = relay_substitute(loop, p, &ev, topic, why, errstr,
					                       errstr_size);
				}
			}
			assay_headers_release(&h);
			(*produced)++;
		}
		if (!err && more < 0)
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                 "outbox row of stream %" PRId32
			                 " is malformed at byte %zu",
			                 p->stream, pos);
	}
	PQclear(res);
	return err;
}

/* Runs a job's transaction: begin, produce every event, send the positions as the group's
 * offsets (with the consumer's group metadata, so a fenced member cannot commit), commit.
 * On the relay thread, or on the loop thread while no job is in flight. */
static int relay_run_job(struct assay_loop *loop, struct relay_job *job, char *errstr,
                         size_t errstr_size)
{
	rd_kafka_error_t *error;
	int err = 0;

	error = rd_kafka_begin_transaction(loop->producer);
	if (error)
		return assay_kafka_take_error(error, "begin transaction", errstr, errstr_size);
	/* the values go to librdkafka without a copy; a failed job is published again from
	 * the outbox, not from memory (assay_relay_collect) */
	for (size_t k = 0; k < job->nevents && !err; k++) {
		struct out_event *e = &job->events[k];

		err = produce(loop, e->topic, e->key, e->key_len, e->value, e->value_len, &e->value,
		              &e->headers, e->source_topic, e->source_partition, e->source_offset,
		              e->seq, errstr, errstr_size);
	}
	if (err)
		return txn_abort(loop, err);
	error = rd_kafka_send_offsets_to_transaction(loop->producer, job->offsets, job->cgmd, -1);
	if (error)
		return txn_error(loop, error, "sending offsets to transaction", errstr,
		                 errstr_size);
	error = rd_kafka_commit_transaction(loop->producer, -1);
	if (error)
		return txn_error(loop, error, "commit transaction", errstr, errstr_size);
	return 0;
}

/* Whether any assigned partition has applied events not yet published. */
static bool relay_pending(const struct assay_loop *loop)
{
	for (size_t i = 0; i < loop->nparts; i++)
		if (loop->parts[i].db_next > loop->parts[i].relay_pos)
			return true;
	return false;
}

void *assay_relay_main(void *arg)
{
	struct assay_loop *loop = arg;

	pthread_mutex_lock(&loop->mu);
	for (;;) {
		struct relay_job *job;

		while (!loop->quit && (loop->job == NULL || loop->job->done))
			pthread_cond_wait(&loop->cv, &loop->mu);
		if (loop->quit)
			break;
		job = loop->job;
		pthread_mutex_unlock(&loop->mu);
		job->err = relay_run_job(loop, job, job->errstr, sizeof(job->errstr));
		pthread_mutex_lock(&loop->mu);
		job->done = true;
		pthread_cond_broadcast(&loop->cv);
	}
	pthread_mutex_unlock(&loop->mu);
	return NULL;
}

void assay_relay_job_free(struct relay_job *job)
{
	for (size_t k = 0; k < job->nevents; k++)
		assay_out_event_release(&job->events[k]);
	free(job->events);
	if (job->offsets)
		rd_kafka_topic_partition_list_destroy(job->offsets);
	if (job->cgmd)
		rd_kafka_consumer_group_metadata_destroy(job->cgmd);
	free(job);
}

/*
 * Takes the result of the job in flight, if any: when wait, waits for it to finish. On
 * success the relayed positions move; on failure the queue is dropped and the next relay
 * reads the outbox. Returns the job's result (0 when there was none).
 */
int assay_relay_collect(struct assay_loop *loop, bool wait, char *errstr, size_t errstr_size)
{
	struct relay_job *job;
	int err;

	pthread_mutex_lock(&loop->mu);
	job = loop->job;
	if (job != NULL && !job->done && !wait)
		job = NULL;
	while (job != NULL && !job->done)
		pthread_cond_wait(&loop->cv, &loop->mu);
	if (job != NULL)
		loop->job = NULL;
	pthread_mutex_unlock(&loop->mu);
	if (job == NULL)
		return 0;

	err = job->err;
	if (err == 0) {
		for (int i = 0; i < job->offsets->cnt; i++) {
			struct part *p = assay_ledger_find(loop, job->offsets->elems[i].topic,
			                                   job->offsets->elems[i].partition);
			if (p)
				p->relay_pos = job->offsets->elems[i].offset;
		}
		loop->last_relay_ms = assay_now_ms();
		loop->relay_failing_since_ms = 0;
		/* what was applied after the job was built waits since then at the most */
		loop->unpublished_since_ms = relay_pending(loop) ? job->started_ms : 0;
		if (loop->m_produced)
			assay_counter_add(loop->m_produced, job->nevents);
		if (loop->m_relay_seconds)
			assay_histogram_observe(loop->m_relay_seconds,
			                        (double)(assay_now_ms() - job->started_ms) /
			                                1000.0);
	} else {
		assay_errf(err, errstr, errstr_size, "%s", job->errstr);
		/* its values went to librdkafka: the outbox publishes them again */
		for (size_t k = 0; k < loop->nmem; k++)
			assay_out_event_release(&loop->mem[k]);
		loop->nmem = 0;
		loop->mem_valid = false;
	}
	assay_relay_job_free(job);
	return err;
}

/* Hands the queued events and the positions they reach to the relay thread. */
static int relay_submit(struct assay_loop *loop)
{
	struct relay_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return ASSAY_ERR_FATAL;
	job->offsets = rd_kafka_topic_partition_list_new((int)loop->nparts);
	job->cgmd = rd_kafka_consumer_group_metadata(loop->consumer);
	job->events = loop->mem; /* taken over */
	job->nevents = loop->nmem;
	job->started_ms = assay_now_ms();
	loop->mem = NULL;
	loop->nmem = loop->mem_cap = 0;
	for (size_t i = 0; i < loop->nparts; i++)
		if (loop->parts[i].db_next > loop->parts[i].relay_pos)
			rd_kafka_topic_partition_list_add(job->offsets, loop->parts[i].topic,
			                                  loop->parts[i].partition)
			        ->offset = loop->parts[i].db_next;
	pthread_mutex_lock(&loop->mu);
	loop->job = job;
	pthread_cond_broadcast(&loop->cv);
	pthread_mutex_unlock(&loop->mu);
	return 0;
}

/* The recovery path, on the loop thread: publishes the outbox rows between the committed
 * positions and db_next of every partition, read from PostgreSQL. */
static int relay_from_outbox_all(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	struct relay_job job = {0};
	int64_t *new_pos = NULL;
	size_t produced = 0;
	rd_kafka_error_t *error;
	bool pending = false, refused;
	int err;

	err = relay_positions(loop, errstr, errstr_size);
	if (!err)
		err = assay_ledger_db(loop, errstr, errstr_size);
	if (err)
		return err;
	pthread_mutex_lock(&loop->mu);
	refused = loop->nrefused > 0;
	pthread_mutex_unlock(&loop->mu);
	if (refused) /* what the broker takes may have changed */
		assay_limits_refresh(loop);
	new_pos = calloc(loop->nparts, sizeof(*new_pos));
	if (new_pos == NULL)
		return ASSAY_ERR_FATAL;
	error = rd_kafka_begin_transaction(loop->producer);
	if (error) {
		err = assay_kafka_take_error(error, "begin transaction", errstr, errstr_size);
		goto out;
	}
	job.offsets = rd_kafka_topic_partition_list_new((int)loop->nparts);
	for (size_t i = 0; i < loop->nparts && !err; i++) {
		struct part *p = &loop->parts[i];

		new_pos[i] = p->relay_pos;
		if (p->db_next <= p->relay_pos)
			continue;
		err = relay_from_outbox(loop, p, &new_pos[i], &produced, errstr, errstr_size);
		if (!err)
			rd_kafka_topic_partition_list_add(job.offsets, p->topic, p->partition)
			        ->offset = new_pos[i];
	}
	if (err) {
		err = txn_abort(loop, err);
		goto out;
	}
	job.cgmd = rd_kafka_consumer_group_metadata(loop->consumer);
	error = rd_kafka_send_offsets_to_transaction(loop->producer, job.offsets, job.cgmd, -1);
	if (!error)
		error = rd_kafka_commit_transaction(loop->producer, -1);
	if (error) {
		err = txn_error(loop, error, "publishing the outbox", errstr, errstr_size);
		goto out;
	}
	for (size_t i = 0; i < loop->nparts; i++) {
		loop->parts[i].relay_pos = new_pos[i];
		pending = pending || loop->parts[i].db_next > loop->parts[i].relay_pos;
	}
	loop->nparking = 0; /* their dead letters are published */
	loop->relay_failing_since_ms = 0;
	/* caught up: from now on the queue holds everything not yet published */
	loop->mem_valid = !pending;
	if (!pending)
		loop->unpublished_since_ms = 0;
	loop->last_relay_ms = assay_now_ms();
	if (loop->m_produced)
		assay_counter_add(loop->m_produced, produced);
out:
	if (job.offsets)
		rd_kafka_topic_partition_list_destroy(job.offsets);
	if (job.cgmd)
		rd_kafka_consumer_group_metadata_destroy(job.cgmd);
	free(new_pos);
	return err;
}

/*
 * Publishes what is applied but not yet published. Normally the queued events go to the
 * relay thread as one job, at most every relay_interval_ms unless relay_max_events are
 * waiting, so one Kafka transaction covers several batches while the next ones are
 * applied. After a start, a rebalance or a failure the outbox is read instead. force: wait
 * until everything applied is published (revoke, stop). Returns 0, ASSAY_ERR_RETRY (try
 * later) or ASSAY_ERR_FATAL.
 */
int assay_relay_publish(struct assay_loop *loop, bool force, char *errstr, size_t errstr_size)
{
	bool pending = false;
	int err;

	/* a full queue waits for the job in flight: backpressure on the loop */
	err = assay_relay_collect(loop,
	                          force || loop->nmem >= 2 * (size_t)loop->cfg.relay_max_events,
	                          errstr, errstr_size);
	if (err)
		return err;
	if (loop->job != NULL)
		return 0; /* one transaction at a time */
	for (size_t i = 0; i < loop->nparts; i++)
		pending = pending || loop->parts[i].db_next > loop->parts[i].relay_pos;
	if (!pending)
		return 0;
	if (!loop->mem_valid)
		return relay_from_outbox_all(loop, errstr, errstr_size);
	if (!force && assay_now_ms() - loop->last_relay_ms < loop->cfg.relay_interval_ms &&
	    loop->nmem < (size_t)loop->cfg.relay_max_events)
		return 0;
	err = relay_submit(loop);
	if (!err && force)
		err = assay_relay_collect(loop, true, errstr, errstr_size);
	return err;
}
