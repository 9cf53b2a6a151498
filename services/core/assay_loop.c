/*
 * The exactly-once batch loop (see assay_loop.h and docs/runtime.md).
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
#include "assay_loop.h"
#include "assay_err.h"
#include "assay_kafka.h"
#include "assay_pg.h"

#include <endian.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RELAY_MAX_ROWS     20000
#define RELAY_UNKNOWN      (-2)
#define OUTBOX_CLEANUP_MS  1000
#define DEFAULT_DEADLETTER "assay.deadletter"

struct part {
	char *topic;
	int32_t partition;
	int32_t stream;      /* assay_offsets.id: the partition's rows in the outbox */
	int64_t db_next;     /* next offset to apply (as stored in PostgreSQL) */
	int64_t relay_pos;   /* input offset below which the outbox is published; RELAY_UNKNOWN */
	int64_t cleaned_pos; /* outbox rows below this are deleted */
	struct assay_gauge *lag;
};

struct out_event {
	size_t msg;         /* index of the causing message in its batch */
	char *source_topic; /* set when the event moves to the relay queue */
	int32_t source_partition;
	int64_t source_offset;
	int seq;
	char *topic;
	void *key;
	size_t key_len;
	void *value;
	size_t value_len;
	struct assay_headers headers;
};

/* One Kafka transaction handed to the relay thread: the queued events and the positions to
 * commit with them. Owned by the loop thread except while the relay thread runs it. */
struct relay_job {
	struct out_event *events;
	size_t nevents;
	rd_kafka_topic_partition_list_t *offsets;
	rd_kafka_consumer_group_metadata_t *cgmd;
	bool done;
	int err;
	char errstr[512];
	int64_t started_ms;
};

struct assay_batch {
	struct assay_loop *loop;
	struct assay_msg *msgs;
	size_t count;
	struct out_event *events;
	size_t nevents;
	size_t events_cap;
	size_t ndead;
};

struct assay_loop {
	struct assay_loop_config cfg;
	struct assay_handler handler;
	const char *deadletter_topic;
	rd_kafka_t *consumer;
	rd_kafka_t *producer;
	PGconn *conn;

	struct part *parts;
	size_t nparts;
	atomic_int assigned; /* nparts, readable from other threads */
	bool fatal;          /* set by the rebalance callback */
	char fatal_errstr[512];

	rd_kafka_message_t **rkms; /* the batch in hand */
	size_t nrkms;

	struct assay_copybuf copy;
	int backoff_ms;

	/* Events applied but not yet published. While mem_valid, mem holds every outbox row
	 * between relay_pos and db_next of every assigned partition, so the relay publishes from
	 * memory; otherwise (after a start, a rebalance or a re-seek) it reads the outbox. */
	struct out_event *mem;
	size_t nmem, mem_cap;
	bool mem_valid;
	int64_t last_relay_ms;
	int64_t last_cleanup_ms;

	/* The relay thread runs one Kafka transaction (a job) at a time while this thread
	 * goes on applying batches; mu guards job and quit. */
	pthread_t relay_thread;
	bool relay_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct relay_job *job; /* submitted and not yet collected */
	bool quit;
	bool cleanup_in_txn; /* the batch transaction in flight deletes published outbox rows */

	struct assay_counter *m_consumed;
	struct assay_counter *m_produced;
	struct assay_counter *m_deadlettered;
	struct assay_counter *m_retries;
	struct assay_histogram *m_batch_size;
	struct assay_histogram *m_batch_seconds;
	struct assay_histogram *m_relay_seconds;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static struct part *part_find(struct assay_loop *loop, const char *topic, int32_t partition)
{
	for (size_t i = 0; i < loop->nparts; i++)
		if (loop->parts[i].partition == partition &&
		    strcmp(loop->parts[i].topic, topic) == 0)
			return &loop->parts[i];
	return NULL;
}

static void mem_invalidate(struct assay_loop *loop);

static void parts_clear(struct assay_loop *loop)
{
	mem_invalidate(loop);
	for (size_t i = 0; i < loop->nparts; i++)
		free(loop->parts[i].topic);
	free(loop->parts);
	loop->parts = NULL;
	loop->nparts = 0;
	atomic_store(&loop->assigned, 0);
}

/* ---- database connection ---- */

/* Connects when there is no usable connection. Returns 0 or ASSAY_ERR_RETRY. */
static int db_ensure(struct assay_loop *loop, char *errstr, size_t errstr_size)
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

/* Formats "{a,b,c}" array literals for the unnest() statements. */
struct arrays {
	char *topics, *partitions, *lo, *hi;
	size_t n;
};

static int arrays_append(char **arr, const char *item)
{
	size_t len = *arr ? strlen(*arr) : 0, ilen = strlen(item);
	char *p = realloc(*arr, len + ilen + 3);

	if (p == NULL)
		return ASSAY_ERR_FATAL;
	if (len == 0)
		p[len++] = '{';
	else
		p[len - 1] = ','; /* over the closing brace */
	memcpy(p + len, item, ilen);
	memcpy(p + len + ilen, "}", 2);
	*arr = p;
	return 0;
}

static int arrays_add(struct arrays *a, const char *topic, int32_t partition, int64_t lo,
                      int64_t hi)
{
	char quoted[300], num[3][32];

	/* topic names are [a-zA-Z0-9._-]: quoting needs no escapes */
	snprintf(quoted, sizeof(quoted), "\"%s\"", topic);
	snprintf(num[0], sizeof(num[0]), "%" PRId32, partition);
	snprintf(num[1], sizeof(num[1]), "%" PRId64, lo);
	snprintf(num[2], sizeof(num[2]), "%" PRId64, hi);
	if (arrays_append(&a->topics, quoted) || arrays_append(&a->partitions, num[0]) ||
	    arrays_append(&a->lo, num[1]) || arrays_append(&a->hi, num[2]))
		return ASSAY_ERR_FATAL;
	a->n++;
	return 0;
}

static void arrays_release(struct arrays *a)
{
	free(a->topics);
	free(a->partitions);
	free(a->lo);
	free(a->hi);
	memset(a, 0, sizeof(*a));
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
	err = db_ensure(loop, errstr, errstr_size);
	if (err)
		goto out;
	{
		const char *params[] = {loop->cfg.service, a.topics, a.partitions};

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

static void batch_discard(struct assay_loop *loop);
static int relay(struct assay_loop *loop, bool force, char *errstr, size_t errstr_size);
static void event_release(struct out_event *e);

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
	if (!rd_kafka_assignment_lost(rk) && relay(loop, true, errstr, sizeof(errstr)) != 0)
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

static void error_cb(rd_kafka_t *rk, int kerr, const char *reason, void *opaque)
{
	struct assay_loop *loop = opaque;

	assay_log_warn(loop->cfg.log, "kafka error", ASSAY_LF_STR("error", rd_kafka_err2name(kerr)),
	               ASSAY_LF_STR("reason", reason));
}

/* ---- batches ---- */

size_t assay_batch_count(const struct assay_batch *batch)
{
	return batch->count;
}

struct assay_msg *assay_batch_msg(struct assay_batch *batch, size_t i)
{
	return &batch->msgs[i];
}

static void event_id_for(const struct assay_loop *loop, const char *topic, int32_t partition,
                         int64_t offset, int seq, char out[ASSAY_UUID_LEN])
{
	char name[512];
	int n = snprintf(name, sizeof(name), "%s/%s/%" PRId32 "/%" PRId64 "/%d", loop->cfg.service,
	                 topic, partition, offset, seq);

	assay_uuid_from_name(name, (size_t)n < sizeof(name) ? (size_t)n : sizeof(name) - 1, out);
}

void assay_batch_next_event_id(const struct assay_batch *batch, size_t i, char out[ASSAY_UUID_LEN])
{
	const struct assay_msg *m = &batch->msgs[i];

	event_id_for(batch->loop, m->topic, m->partition, m->offset, m->nevents, out);
}

static void event_release(struct out_event *e)
{
	free(e->source_topic);
	free(e->topic);
	free(e->key);
	free(e->value);
	assay_headers_release(&e->headers);
}

int assay_batch_emit(struct assay_batch *batch, size_t i, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     struct assay_headers *headers)
{
	struct assay_msg *m = &batch->msgs[i];
	struct out_event *e;
	int err = ASSAY_ERR_FATAL;

	if (m->nevents >= ASSAY_LOOP_MAX_EVENTS_PER_MESSAGE)
		goto fail;
	if (batch->nevents == batch->events_cap) {
		size_t cap = batch->events_cap ? batch->events_cap * 2 : 256;
		struct out_event *events = realloc(batch->events, cap * sizeof(*events));

		if (events == NULL)
			goto fail;
		batch->events = events;
		batch->events_cap = cap;
	}
	e = &batch->events[batch->nevents];
	memset(e, 0, sizeof(*e));
	e->msg = i;
	e->seq = m->nevents;
	if (headers) {
		e->headers = *headers; /* taken over */
		assay_headers_init(headers);
	}
	e->topic = strdup(topic);
	e->key = key_len ? malloc(key_len) : NULL;
	e->value = value_len ? malloc(value_len) : NULL;
	if (e->topic == NULL || (key_len && e->key == NULL) || (value_len && e->value == NULL)) {
		event_release(e);
		return ASSAY_ERR_FATAL;
	}
	if (key_len)
		memcpy(e->key, key, key_len);
	e->key_len = key_len;
	if (value_len)
		memcpy(e->value, value, value_len);
	e->value_len = value_len;
	/* event_id and produced_by are added when the event is published: the id derives from
	 * the event's position, so the outbox need not store either */
	if (assay_headers_find(&e->headers, "trace_id") == NULL) {
		rd_kafka_headers_t *in;
		const void *trace = NULL;
		size_t trace_len = 0;

		if (rd_kafka_message_headers(m->rkm, &in) == 0 &&
		    (rd_kafka_header_get_last(in, "trace_id", &trace, &trace_len) == 0 ||
		     rd_kafka_header_get_last(in, "event_id", &trace, &trace_len) == 0)) {
			if (assay_headers_add(&e->headers, "trace_id", trace, trace_len))
				goto fail_event;
		}
	}
	m->nevents++;
	batch->nevents++;
	return 0;
fail_event:
	event_release(e);
	return ASSAY_ERR_FATAL;
fail:
	if (headers)
		assay_headers_release(headers);
	return err;
}

int assay_batch_emit_avro(struct assay_batch *batch, size_t i, const char *topic, const void *key,
                          size_t key_len, const struct assay_schema *s, avro_value_t *value,
                          char *errstr, size_t errstr_size)
{
	struct assay_headers headers;
	void *buf = NULL;
	size_t len = 0;
	int err;

	err = assay_codec_encode(batch->loop->cfg.codec, s, value, &buf, &len, errstr, errstr_size);
	if (err)
		return err;
	assay_headers_init(&headers);
	if (assay_headers_add_str(&headers, "event_type", s->full_name)) {
		free(buf);
		assay_headers_release(&headers);
		return ASSAY_ERR_FATAL;
	}
	err = assay_batch_emit(batch, i, topic, key, key_len, buf, len, &headers);
	free(buf);
	return err;
}

int assay_batch_deadletter(struct assay_batch *batch, size_t i, int err_class, const char *message)
{
	struct assay_loop *loop = batch->loop;
	struct assay_msg *m = &batch->msgs[i];
	struct assay_headers h;
	char num[32];
	int err;

	assay_headers_init(&h);
	err = assay_headers_add_from_message(&h, m->rkm);
	/* the dead letter carries an event id of its own; the original's is kept renamed */
	for (size_t k = 0; !err && k < h.count; k++)
		if (strcmp(h.items[k].name, "event_id") == 0) {
			char *name = strdup("assay.dlq.event_id");

			if (name == NULL)
				err = ASSAY_ERR_FATAL;
			else {
				free(h.items[k].name);
				h.items[k].name = name;
			}
		}
	if (!err)
		err = assay_headers_add_str(&h, "assay.dlq.topic", m->topic);
	snprintf(num, sizeof(num), "%" PRId32, m->partition);
	if (!err)
		err = assay_headers_add_str(&h, "assay.dlq.partition", num);
	snprintf(num, sizeof(num), "%" PRId64, m->offset);
	if (!err)
		err = assay_headers_add_str(&h, "assay.dlq.offset", num);
	if (!err)
		err = assay_headers_add_str(&h, "assay.dlq.stage", loop->handler.stage);
	if (!err)
		err = assay_headers_add_str(&h, "assay.dlq.error.class", assay_err_name(err_class));
	if (!err)
		err = assay_headers_add_str(&h, "assay.dlq.error.message", message);
	if (err) {
		assay_headers_release(&h);
		return err;
	}
	err = assay_batch_emit(batch, i, loop->deadletter_topic, m->key, m->key_len, m->value,
	                       m->value_len, &h);
	if (err)
		return err;
	if (!m->dead)
		batch->ndead++;
	m->dead = true;
	assay_log_warn(loop->cfg.log, "message dead-lettered", ASSAY_LF_STR("topic", m->topic),
	               ASSAY_LF_INT("partition", m->partition), ASSAY_LF_INT("offset", m->offset),
	               ASSAY_LF_STR("class", assay_err_name(err_class)),
	               ASSAY_LF_STR("error", message));
	return 0;
}

static void batch_reset_outputs(struct assay_batch *batch)
{
	for (size_t k = 0; k < batch->nevents; k++)
		event_release(&batch->events[k]);
	batch->nevents = 0;
	batch->ndead = 0;
	for (size_t k = 0; k < batch->count; k++) {
		batch->msgs[k].nevents = 0;
		batch->msgs[k].dead = false;
	}
}

static void batch_release(struct assay_batch *batch)
{
	batch_reset_outputs(batch);
	for (size_t k = 0; k < batch->count; k++)
		if (batch->msgs[k].decoded_ok)
			assay_decoded_release(&batch->msgs[k].decoded);
	free(batch->events);
	free(batch->msgs);
	memset(batch, 0, sizeof(*batch));
}

/* Destroys the messages in hand (they were not applied). */
static void batch_discard(struct assay_loop *loop)
{
	for (size_t k = 0; k < loop->nrkms; k++)
		rd_kafka_message_destroy(loop->rkms[k]);
	loop->nrkms = 0;
}

/* Builds the batch view of rkms[first, first+n): decodes when the handler wants it.
 * Returns 0, ASSAY_ERR_RETRY (the registry is unreachable) or ASSAY_ERR_FATAL. */
static int batch_build(struct assay_loop *loop, struct assay_batch *batch, size_t first, size_t n,
                       char *errstr, size_t errstr_size)
{
	memset(batch, 0, sizeof(*batch));
	batch->loop = loop;
	batch->msgs = calloc(n ? n : 1, sizeof(*batch->msgs));
	if (batch->msgs == NULL)
		return ASSAY_ERR_FATAL;
	batch->count = n;
	for (size_t k = 0; k < n; k++) {
		const rd_kafka_message_t *rkm = loop->rkms[first + k];
		struct assay_msg *m = &batch->msgs[k];

		m->rkm = rkm;
		m->topic = rd_kafka_topic_name(rkm->rkt);
		m->partition = rkm->partition;
		m->offset = rkm->offset;
		m->key = rkm->key;
		m->key_len = rkm->key_len;
		m->value = rkm->payload;
		m->value_len = rkm->len;
	}
	return 0;
}

/* Decodes the values (after outputs were reset, so decode failures dead-letter afresh). */
static int batch_decode(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                        size_t errstr_size)
{
	if (!loop->handler.decode)
		return 0;
	for (size_t k = 0; k < batch->count; k++) {
		struct assay_msg *m = &batch->msgs[k];
		char why[512];
		int err;

		if (m->decoded_ok)
			continue;
		err = assay_codec_decode(loop->cfg.codec, m->value, m->value_len, &m->decoded, why,
		                         sizeof(why));
		if (err == 0) {
			m->decoded_ok = true;
		} else if (err == ASSAY_ERR_REJECT) {
			err = assay_batch_deadletter(batch, k, ASSAY_ERR_REJECT, why);
			if (err)
				return err;
		} else {
			return assay_errf(err, errstr, errstr_size, "decode failed: %s", why);
		}
	}
	return 0;
}

/* The outbox rows of the batch, COPY'd in the batch transaction. */
static int write_outbox(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                        size_t errstr_size)
{
	struct assay_copybuf *b = &loop->copy;

	if (batch->nevents == 0)
		return 0;
	assay_copybuf_reset(b);
	for (size_t k = 0; k < batch->nevents; k++) {
		const struct out_event *e = &batch->events[k];
		const struct assay_msg *m = &batch->msgs[e->msg];
		unsigned char *hbuf;
		size_t hlen;

		if (assay_headers_encode(&e->headers, &hbuf, &hlen))
			return ASSAY_ERR_FATAL;
		const struct part *p = part_find(loop, m->topic, m->partition);

		if (p == NULL) {
			free(hbuf);
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "message from unassigned partition %s/%d", m->topic,
			                  (int)m->partition);
		}
		assay_copybuf_int64(b, p->stream);
		assay_copybuf_int64(b, m->offset);
		assay_copybuf_int64(b, e->seq);
		assay_copybuf_str(b, e->topic);
		if (e->key)
			assay_copybuf_bytea(b, e->key, e->key_len);
		else
			assay_copybuf_null(b);
		if (e->value)
			assay_copybuf_bytea(b, e->value, e->value_len);
		else
			assay_copybuf_null(b);
		if (hbuf)
			assay_copybuf_bytea(b, hbuf, hlen);
		else
			assay_copybuf_null(b);
		assay_copybuf_end_row(b);
		free(hbuf);
	}
	return assay_pg_copy(loop->conn,
	                     "COPY assay_outbox (stream, source_offset, seq, topic, key, value, "
	                     "headers) FROM STDIN",
	                     b, errstr, errstr_size);
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
	loop->cleanup_in_txn = now_ms() - loop->last_cleanup_ms >= OUTBOX_CLEANUP_MS;

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
		const char *params[] = {loop->cfg.service, a.topics, a.partitions, a.lo, a.hi};

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
		const char *params[] = {clean.partitions, clean.lo};

		err = assay_pg_exec_params(loop->conn,
		                           "DELETE FROM assay_outbox o USING unnest($1::int[], "
		                           "$2::bigint[]) AS v(s, below) "
		                           "WHERE o.stream = v.s AND o.source_offset < v.below",
		                           2, params, NULL, errstr, errstr_size);
	}
out:
	arrays_release(&a);
	arrays_release(&clean);
	return err;
}

static int mem_take(struct assay_loop *loop, struct assay_batch *batch);

/* After a commit: the new stored offsets, cleaned positions, and the relay queue. */
static void batch_committed(struct assay_loop *loop, struct assay_batch *batch)
{
	for (size_t k = 0; k < batch->count; k++) {
		struct part *p = part_find(loop, batch->msgs[k].topic, batch->msgs[k].partition);

		if (p && batch->msgs[k].offset + 1 > p->db_next)
			p->db_next = batch->msgs[k].offset + 1;
	}
	if (loop->cleanup_in_txn) {
		for (size_t i = 0; i < loop->nparts; i++)
			if (loop->parts[i].relay_pos > loop->parts[i].cleaned_pos)
				loop->parts[i].cleaned_pos = loop->parts[i].relay_pos;
		loop->last_cleanup_ms = now_ms();
	}
	mem_take(loop, batch);
}

/* One attempt at applying a batch: handle, then BEGIN; rows; outbox; offsets; COMMIT. */
static int batch_attempt(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                         size_t errstr_size)
{
	int err;

	batch_reset_outputs(batch);
	err = batch_decode(loop, batch, errstr, errstr_size);
	if (err)
		return err;
	err = loop->handler.handle(loop->handler.ctx, batch, errstr, errstr_size);
	if (err)
		return ASSAY_ERR_FATAL;
	err = db_ensure(loop, errstr, errstr_size);
	if (err)
		return err;
	err = assay_pg_exec(loop->conn, "BEGIN", errstr, errstr_size);
	if (!err && loop->handler.write)
		err = loop->handler.write(loop->handler.ctx, loop->conn, batch, errstr,
		                          errstr_size);
	if (!err)
		err = write_outbox(loop, batch, errstr, errstr_size);
	if (!err)
		err = write_offsets(loop, batch, errstr, errstr_size);
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
	mem_invalidate(loop);
	err = load_db_offsets(loop, list, NULL, errstr, errstr_size);
	if (!err) {
		for (int i = 0; i < list->cnt; i++) {
			struct part *p =
			        part_find(loop, list->elems[i].topic, list->elems[i].partition);
			if (p)
				p->db_next = list->elems[i].offset;
		}
		error = rd_kafka_seek_partitions(loop->consumer, list, 10000);
		if (error) {
			err = assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size, "seek failed: %s",
			                 rd_kafka_error_string(error));
			rd_kafka_error_destroy(error);
		}
	}
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

	err = batch_build(loop, &batch, first, n, errstr, errstr_size);
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
		batch_release(&batch);
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
		batch_reset_outputs(&batch);
		err = assay_batch_deadletter(&batch, 0, ASSAY_ERR_REJECT, why);
		while (!err) {
			err = db_ensure(loop, errstr, errstr_size);
			if (!err)
				err = assay_pg_exec(loop->conn, "BEGIN", errstr, errstr_size);
			if (!err)
				err = write_outbox(loop, &batch, errstr, errstr_size);
			if (!err)
				err = write_offsets(loop, &batch, errstr, errstr_size);
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
			err = ASSAY_ERR_FENCED; /* the next rebalance or batch tries again */
	}
	batch_release(&batch);
	return err;
}

/* ---- outbox relay ---- */

static int64_t be64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return (int64_t)be64toh(v);
}

static int32_t be32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return (int32_t)be32toh(v);
}

static int relay_collect(struct assay_loop *loop, bool wait, char *errstr, size_t errstr_size);

/* Drops the relay queue (after waiting for the job in flight); the next relay reads the
 * outbox, which holds everything not yet published. */
static void mem_invalidate(struct assay_loop *loop)
{
	char errstr[512];

	if (relay_collect(loop, true, errstr, sizeof(errstr)) != 0)
		assay_log_warn(loop->cfg.log, "relay failed", ASSAY_LF_STR("error", errstr));
	for (size_t k = 0; k < loop->nmem; k++)
		event_release(&loop->mem[k]);
	loop->nmem = 0;
	loop->mem_valid = false;
}

/* After a commit: moves the batch's events into the relay queue (when it is valid). */
static int mem_take(struct assay_loop *loop, struct assay_batch *batch)
{
	if (!loop->mem_valid || batch->nevents == 0)
		return 0;
	if (loop->nmem + batch->nevents > loop->mem_cap) {
		size_t cap = loop->mem_cap ? loop->mem_cap : 1024;
		struct out_event *mem;

		while (cap < loop->nmem + batch->nevents)
			cap *= 2;
		mem = realloc(loop->mem, cap * sizeof(*mem));
		if (mem == NULL) {
			mem_invalidate(loop); /* the outbox still has them */
			return 0;
		}
		loop->mem = mem;
		loop->mem_cap = cap;
	}
	for (size_t k = 0; k < batch->nevents; k++) {
		struct out_event *e = &batch->events[k];
		const struct assay_msg *m = &batch->msgs[e->msg];

		e->source_topic = strdup(m->topic);
		if (e->source_topic == NULL) {
			mem_invalidate(loop);
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

static int txn_error(struct assay_loop *loop, rd_kafka_error_t *error, const char *what,
                     char *errstr, size_t errstr_size)
{
	int cls = assay_kafka_classify_error(error);
	int err;

	assay_errf(0, errstr, errstr_size, "%s failed: %s", what, rd_kafka_error_string(error));
	rd_kafka_error_destroy(error);
	if (cls == ASSAY_ERR_FATAL)
		return ASSAY_ERR_FATAL;
	error = rd_kafka_abort_transaction(loop->producer, -1);
	if (error) {
		err = assay_kafka_classify_error(error);
		rd_kafka_error_destroy(error);
		if (err == ASSAY_ERR_FATAL)
			return ASSAY_ERR_FATAL;
	}
	return ASSAY_ERR_RETRY;
}

/* Publishes one event inside the open transaction, adding event_id (from its position)
 * unless the handler set one, and produced_by. */
static int produce(struct assay_loop *loop, const char *topic, const void *key, size_t key_len,
                   const void *value, size_t value_len, const struct assay_headers *h,
                   const char *source_topic, int32_t source_partition, int64_t source_offset,
                   int seq, char *errstr, size_t errstr_size)
{
	rd_kafka_headers_t *hdrs = assay_headers_to_kafka(h);
	rd_kafka_resp_err_t kerr;

	if (hdrs == NULL)
		return ASSAY_ERR_FATAL;
	if (assay_headers_find(h, "event_id") == NULL) {
		char id[ASSAY_UUID_LEN];

		event_id_for(loop, source_topic, source_partition, source_offset, seq, id);
		rd_kafka_header_add(hdrs, "event_id", -1, id, -1);
	}
	if (assay_headers_find(h, "produced_by") == NULL)
		rd_kafka_header_add(hdrs, "produced_by", -1, loop->cfg.service, -1);
	for (;;) {
		kerr = rd_kafka_producev(loop->producer, RD_KAFKA_V_TOPIC(topic),
		                         RD_KAFKA_V_KEY(key, key_len),
		                         RD_KAFKA_V_VALUE((void *)value, value_len),
		                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		                         RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
		if (kerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(loop->producer, 50);
	}
	if (kerr) {
		rd_kafka_headers_destroy(hdrs);
		return assay_errf(assay_kafka_classify(kerr) == ASSAY_ERR_FATAL ? ASSAY_ERR_FATAL
		                                                                : ASSAY_ERR_RETRY,
		                  errstr, errstr_size, "produce to %s failed: %s", topic,
		                  rd_kafka_err2str(kerr));
	}
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
		struct part *p = part_find(loop, list->elems[i].topic, list->elems[i].partition);

		if (p && list->elems[i].err == 0)
			p->relay_pos = list->elems[i].offset >= 0 ? list->elems[i].offset : 0;
	}
	rd_kafka_topic_partition_list_destroy(list);
	if (kerr)
		return assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size,
		                  "reading relayed positions failed: %s", rd_kafka_err2str(kerr));
	return 0;
}

/* Produces the outbox rows of partition p between relay_pos and db_next (at most
 * RELAY_MAX_ROWS, whole input messages only) and sets *new_pos to where that ends. */
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
	snprintf(limit, sizeof(limit), "%d", RELAY_MAX_ROWS);
	res = PQexecParams(
	        loop->conn,
	        "SELECT source_offset, seq, topic, key, value, headers FROM assay_outbox "
	        "WHERE stream = $1 AND source_offset >= $2 AND source_offset < $3 "
	        "ORDER BY source_offset, seq LIMIT $4",
	        4, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = assay_pg_result_error(res, loop->conn, "reading outbox failed", errstr,
		                            errstr_size);
		PQclear(res);
		return err == ASSAY_ERR_FATAL ? err : ASSAY_ERR_RETRY;
	}
	rows = PQntuples(res);
	*new_pos = p->db_next;
	if (rows == RELAY_MAX_ROWS) /* stop before the last message, which may be cut */
		*new_pos = be64(PQgetvalue(res, rows - 1, 0));
	for (int r = 0; r < rows && !err; r++) {
		struct assay_headers h;
		char topic[256];
		int64_t offset = be64(PQgetvalue(res, r, 0));

		if (offset >= *new_pos)
			break;
		snprintf(topic, sizeof(topic), "%.*s", PQgetlength(res, r, 2),
		         PQgetvalue(res, r, 2));
		assay_headers_init(&h);
		if (!PQgetisnull(res, r, 5) &&
		    assay_headers_decode(&h, PQgetvalue(res, r, 5), (size_t)PQgetlength(res, r, 5),
		                         errstr, errstr_size))
			err = ASSAY_ERR_FATAL; /* we wrote these bytes: an invariant is broken */
		if (!err)
			err = produce(loop, topic,
			              PQgetisnull(res, r, 3) ? NULL : PQgetvalue(res, r, 3),
			              (size_t)PQgetlength(res, r, 3),
			              PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4),
			              (size_t)PQgetlength(res, r, 4), &h, p->topic, p->partition,
			              offset, be32(PQgetvalue(res, r, 1)), errstr, errstr_size);
		assay_headers_release(&h);
		(*produced)++;
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
	if (error) {
		err = assay_kafka_classify_error(error) == ASSAY_ERR_FATAL ? ASSAY_ERR_FATAL
		                                                           : ASSAY_ERR_RETRY;
		assay_errf(0, errstr, errstr_size, "begin transaction failed: %s",
		           rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		return err;
	}
	for (size_t k = 0; k < job->nevents && !err; k++) {
		const struct out_event *e = &job->events[k];

		err = produce(loop, e->topic, e->key, e->key_len, e->value, e->value_len,
		              &e->headers, e->source_topic, e->source_partition, e->source_offset,
		              e->seq, errstr, errstr_size);
	}
	if (err) {
		error = rd_kafka_abort_transaction(loop->producer, -1);
		if (error) {
			if (assay_kafka_classify_error(error) == ASSAY_ERR_FATAL)
				err = ASSAY_ERR_FATAL;
			rd_kafka_error_destroy(error);
		}
		return err;
	}
	error = rd_kafka_send_offsets_to_transaction(loop->producer, job->offsets, job->cgmd, -1);
	if (error)
		return txn_error(loop, error, "sending offsets to transaction", errstr,
		                 errstr_size);
	error = rd_kafka_commit_transaction(loop->producer, -1);
	if (error)
		return txn_error(loop, error, "commit transaction", errstr, errstr_size);
	return 0;
}

static void *relay_main(void *arg)
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

static void job_free(struct relay_job *job)
{
	for (size_t k = 0; k < job->nevents; k++)
		event_release(&job->events[k]);
	free(job->events);
	if (job->offsets)
		rd_kafka_topic_partition_list_destroy(job->offsets);
	if (job->cgmd)
		rd_kafka_consumer_group_metadata_destroy(job->cgmd);
	free(job);
}

/* Puts a failed job's events back in front of the queue, so they go out first next time. */
static int mem_requeue(struct assay_loop *loop, struct relay_job *job)
{
	struct out_event *mem;

	mem = malloc((job->nevents + loop->nmem + 1) * sizeof(*mem));
	if (mem == NULL)
		return ASSAY_ERR_FATAL;
	if (job->nevents)
		memcpy(mem, job->events, job->nevents * sizeof(*mem));
	if (loop->nmem)
		memcpy(mem + job->nevents, loop->mem, loop->nmem * sizeof(*mem));
	free(loop->mem);
	loop->mem = mem;
	loop->nmem += job->nevents;
	loop->mem_cap = loop->nmem + 1;
	job->nevents = 0; /* the events moved */
	return 0;
}

/*
 * Takes the result of the job in flight, if any: when wait, waits for it to finish. On
 * success the relayed positions move; on failure its events are queued again. Returns the
 * job's result (0 when there was none).
 */
static int relay_collect(struct assay_loop *loop, bool wait, char *errstr, size_t errstr_size)
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
			struct part *p = part_find(loop, job->offsets->elems[i].topic,
			                           job->offsets->elems[i].partition);
			if (p)
				p->relay_pos = job->offsets->elems[i].offset;
		}
		loop->last_relay_ms = now_ms();
		if (loop->m_produced)
			assay_counter_add(loop->m_produced, job->nevents);
		if (loop->m_relay_seconds)
			assay_histogram_observe(loop->m_relay_seconds,
			                        (double)(now_ms() - job->started_ms) / 1000.0);
	} else {
		assay_errf(err, errstr, errstr_size, "%s", job->errstr);
		if (err != ASSAY_ERR_FATAL && mem_requeue(loop, job))
			err = ASSAY_ERR_FATAL;
	}
	job_free(job);
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
	job->started_ms = now_ms();
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
	bool pending = false;
	int err;

	err = relay_positions(loop, errstr, errstr_size);
	if (!err)
		err = db_ensure(loop, errstr, errstr_size);
	if (err)
		return err;
	new_pos = calloc(loop->nparts, sizeof(*new_pos));
	if (new_pos == NULL)
		return ASSAY_ERR_FATAL;
	error = rd_kafka_begin_transaction(loop->producer);
	if (error) {
		err = assay_kafka_classify_error(error) == ASSAY_ERR_FATAL ? ASSAY_ERR_FATAL
		                                                           : ASSAY_ERR_RETRY;
		assay_errf(0, errstr, errstr_size, "begin transaction failed: %s",
		           rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
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
		error = rd_kafka_abort_transaction(loop->producer, -1);
		if (error) {
			if (assay_kafka_classify_error(error) == ASSAY_ERR_FATAL)
				err = ASSAY_ERR_FATAL;
			rd_kafka_error_destroy(error);
		}
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
	/* caught up: from now on the queue holds everything not yet published */
	loop->mem_valid = !pending;
	loop->last_relay_ms = now_ms();
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
static int relay(struct assay_loop *loop, bool force, char *errstr, size_t errstr_size)
{
	bool pending = false;
	int err;

	/* a full queue waits for the job in flight: backpressure on the loop */
	err = relay_collect(loop, force || loop->nmem >= 2 * (size_t)loop->cfg.relay_max_events,
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
	if (!force && now_ms() - loop->last_relay_ms < loop->cfg.relay_interval_ms &&
	    loop->nmem < (size_t)loop->cfg.relay_max_events)
		return 0;
	err = relay_submit(loop);
	if (!err && force)
		err = relay_collect(loop, true, errstr, errstr_size);
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

static int create_consumer(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	const struct assay_loop_config *cfg = &loop->cfg;
	rd_kafka_conf_t *conf = assay_kafka_conf_new(cfg->brokers, errstr, errstr_size);
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t kerr;
	static const char *const defaults[] = {
	        "enable.auto.commit",
	        "false",
	        "enable.auto.offset.store",
	        "false",
	        "auto.offset.reset",
	        "earliest",
	        "isolation.level",
	        "read_committed",
	        "partition.assignment.strategy",
	        "range,roundrobin",
	        "enable.partition.eof",
	        "false",
	};
	int err = 0;

	if (conf == NULL)
		return ASSAY_ERR_FATAL;
	err = assay_kafka_conf_set(conf, "group.id", cfg->service, errstr, errstr_size);
	for (size_t i = 0; !err && i < sizeof(defaults) / sizeof(defaults[0]); i += 2)
		err = assay_kafka_conf_set(conf, defaults[i], defaults[i + 1], errstr, errstr_size);
	if (!err)
		err = set_props(conf, cfg, "consumer.", errstr, errstr_size);
	if (err) {
		rd_kafka_conf_destroy(conf);
		return err;
	}
	rd_kafka_conf_set_opaque(conf, loop);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	loop->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
	if (loop->consumer == NULL) {
		rd_kafka_conf_destroy(conf);
		return ASSAY_ERR_FATAL;
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

static int create_producer(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	const struct assay_loop_config *cfg = &loop->cfg;
	rd_kafka_conf_t *conf = assay_kafka_conf_new(cfg->brokers, errstr, errstr_size);
	rd_kafka_error_t *error;
	char txid[512], timeout[32];
	int err;

	if (conf == NULL)
		return ASSAY_ERR_FATAL;
	snprintf(txid, sizeof(txid), "%s-%s", cfg->service, cfg->instance_id);
	snprintf(timeout, sizeof(timeout), "%d", cfg->transaction_timeout_ms);
	err = assay_kafka_conf_set(conf, "transactional.id", txid, errstr, errstr_size);
	if (!err)
		err = assay_kafka_conf_set(conf, "transaction.timeout.ms", timeout, errstr,
		                           errstr_size);
	if (!err)
		err = assay_kafka_conf_set(conf, "linger.ms", "5", errstr, errstr_size);
	if (!err)
		err = set_props(conf, cfg, "producer.", errstr, errstr_size);
	if (err) {
		rd_kafka_conf_destroy(conf);
		return err;
	}
	rd_kafka_conf_set_opaque(conf, loop);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	loop->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
	if (loop->producer == NULL) {
		rd_kafka_conf_destroy(conf);
		return ASSAY_ERR_FATAL;
	}
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
}

struct assay_loop *assay_loop_new(const struct assay_loop_config *cfg,
                                  const struct assay_handler *handler, char *errstr,
                                  size_t errstr_size)
{
	struct assay_loop *loop = calloc(1, sizeof(*loop));
	int err;

	if (loop == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
		return NULL;
	}
	loop->cfg = *cfg;
	loop->handler = *handler;
	pthread_mutex_init(&loop->mu, NULL);
	pthread_cond_init(&loop->cv, NULL);
	loop->deadletter_topic = cfg->deadletter_topic ? cfg->deadletter_topic : DEFAULT_DEADLETTER;
	if (loop->handler.decode && cfg->codec == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "handler decodes but no codec given");
		goto fail;
	}
	if (loop->cfg.batch_max_messages <= 0)
		loop->cfg.batch_max_messages = 1000;
	if (loop->cfg.batch_max_ms <= 0)
		loop->cfg.batch_max_ms = 100;
	if (loop->cfg.transaction_timeout_ms <= 0)
		loop->cfg.transaction_timeout_ms = 30000;
	if (loop->cfg.shutdown_timeout_ms <= 0)
		loop->cfg.shutdown_timeout_ms = 10000;
	if (loop->cfg.relay_interval_ms <= 0)
		loop->cfg.relay_interval_ms = 100;
	if (loop->cfg.relay_max_events <= 0)
		loop->cfg.relay_max_events = 20000;
	if (loop->cfg.retry_backoff_ms <= 0)
		loop->cfg.retry_backoff_ms = 100;
	if (loop->cfg.retry_backoff_max_ms < loop->cfg.retry_backoff_ms)
		loop->cfg.retry_backoff_max_ms = loop->cfg.retry_backoff_ms;
	backoff_reset(loop);
	assay_copybuf_init(&loop->copy);
	loop->rkms = calloc((size_t)loop->cfg.batch_max_messages, sizeof(*loop->rkms));
	if (loop->rkms == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
		goto fail;
	}
	create_metrics(loop);
	err = create_producer(loop, errstr, errstr_size);
	if (err)
		goto fail;
	if (pthread_create(&loop->relay_thread, NULL, relay_main, loop) != 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "relay thread: cannot start");
		goto fail;
	}
	loop->relay_started = true;
	err = create_consumer(loop, errstr, errstr_size);
	if (err)
		goto fail;
	return loop;
fail:
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

/* Collects up to batch_max_messages or batch_max_ms of messages into rkms. */
static void poll_batch(struct assay_loop *loop)
{
	int64_t deadline = now_ms() + loop->cfg.batch_max_ms;

	while (loop->nrkms < (size_t)loop->cfg.batch_max_messages && !stopping(loop) &&
	       !loop->fatal) {
		int64_t left = deadline - now_ms();
		rd_kafka_message_t *rkm;

		if (left <= 0)
			break;
		rkm = rd_kafka_consumer_poll(loop->consumer, (int)left);
		if (rkm == NULL)
			continue;
		if (rkm->err) {
			if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				assay_log_warn(loop->cfg.log, "consume error",
				               ASSAY_LF_STR("error", rd_kafka_message_errstr(rkm)));
			rd_kafka_message_destroy(rkm);
			continue;
		}
		if (part_find(loop, rd_kafka_topic_name(rkm->rkt), rkm->partition) == NULL) {
			rd_kafka_message_destroy(rkm); /* from a partition no longer ours */
			continue;
		}
		loop->rkms[loop->nrkms++] = rkm;
	}
}

int assay_loop_run(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	int64_t relay_failed_at = 0;
	int err = 0;

	assay_log_info(loop->cfg.log, "loop started", ASSAY_LF_STR("group", loop->cfg.service));
	while (!stopping(loop) && !loop->fatal) {
		int64_t t0;

		if (loop->cfg.metrics)
			assay_metrics_heartbeat(loop->cfg.metrics);
		poll_batch(loop);
		if (loop->fatal)
			break;
		if (loop->nrkms) {
			t0 = now_ms();
			err = apply(loop, 0, loop->nrkms, errstr, errstr_size);
			if (loop->m_batch_size)
				assay_histogram_observe(loop->m_batch_size, (double)loop->nrkms);
			if (loop->m_batch_seconds)
				assay_histogram_observe(loop->m_batch_seconds,
				                        (double)(now_ms() - t0) / 1000.0);
			batch_discard(loop);
			if (err == ASSAY_ERR_FENCED)
				err = 0;
			if (err)
				break;
		}
		if (relay_failed_at == 0 || now_ms() - relay_failed_at >= loop->backoff_ms) {
			err = relay(loop, false, errstr, errstr_size);
			if (err == ASSAY_ERR_FATAL)
				break;
			if (err) {
				assay_log_warn(loop->cfg.log, "relay failed, retrying",
				               ASSAY_LF_STR("error", errstr));
				relay_failed_at = now_ms();
			} else {
				relay_failed_at = 0;
			}
			err = 0;
		}
		update_lag(loop);
	}
	if (loop->fatal && !err) {
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "%s", loop->fatal_errstr);
	}
	if (err == 0) {
		/* graceful stop: the batch in hand was applied above; publish, leave, flush */
		char why[512];

		if (relay(loop, true, why, sizeof(why)) != 0)
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
		job_free(loop->job);
	loop->job = NULL;
	parts_clear(loop);
	if (loop->consumer)
		rd_kafka_destroy(loop->consumer);
	if (loop->producer)
		rd_kafka_destroy(loop->producer);
	if (loop->conn)
		PQfinish(loop->conn);
	free(loop->mem);
	assay_copybuf_release(&loop->copy);
	free(loop->rkms);
	pthread_cond_destroy(&loop->cv);
	pthread_mutex_destroy(&loop->mu);
	free(loop);
}
