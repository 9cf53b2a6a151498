/*
 * The handler's view of a batch: the messages, events it emits, dead letters, and the
 * name-based event ids (see assay_loop.h).
 */
#include "assay_loop_int.h"
#include "assay_vec.h"
#include "assay_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- batches ---- */

size_t assay_batch_count(const struct assay_batch *batch)
{
	return batch->count;
}

struct assay_msg *assay_batch_msg(struct assay_batch *batch, size_t i)
{
	return &batch->msgs[i];
}

void assay_loop_event_id(const struct assay_loop *loop, struct assay_uuid_maker *maker,
                         const char *topic, int32_t partition, int64_t offset, int seq,
                         char out[ASSAY_UUID_LEN])
{
	char name[512];
	int n = snprintf(name, sizeof(name), "%s/%s/%" PRId32 "/%" PRId64 "/%d", loop->cfg.service,
	                 topic, partition, offset, seq);

	assay_uuid_make(maker, name, (size_t)n < sizeof(name) ? (size_t)n : sizeof(name) - 1, out);
}

void assay_batch_next_event_id(const struct assay_batch *batch, size_t i, char out[ASSAY_UUID_LEN])
{
	const struct assay_msg *m = &batch->msgs[i];

	assay_loop_event_id(batch->loop, batch->loop->ids, m->topic, m->partition, m->offset,
	                    m->nevents, out);
}

/* The last header called name of message m (from Kafka, or given to a hand-built batch):
 * true with *v, *len set when there is one. */
static bool msg_header(const struct assay_msg *m, const char *name, const void **v, size_t *len)
{
	rd_kafka_headers_t *in;

	if (m->rkm == NULL) {
		const struct assay_header *h =
		        m->headers ? assay_headers_find(m->headers, name) : NULL;

		if (h == NULL)
			return false;
		*v = h->value;
		*len = h->size;
		return true;
	}
	return rd_kafka_message_headers(m->rkm, &in) == 0 &&
	       rd_kafka_header_get_last(in, name, v, len) == 0;
}

/* Appends copies of every header of message m to h. 0 or ASSAY_ERR_FATAL. */
static int msg_headers_copy(const struct assay_msg *m, struct assay_headers *h)
{
	if (m->rkm != NULL)
		return assay_headers_add_from_message(h, m->rkm);
	for (size_t k = 0; m->headers && k < m->headers->count; k++)
		if (assay_headers_add(h, m->headers->items[k].name, m->headers->items[k].value,
		                      m->headers->items[k].size))
			return ASSAY_ERR_FATAL;
	return 0;
}

void assay_out_event_release(struct out_event *e)
{
	free(e->source_topic);
	free(e->topic);
	free(e->key);
	free(e->value);
	assay_headers_release(&e->headers);
}

static int deadletter(struct assay_batch *batch, size_t i, int err_class, const char *message,
                      bool mark_dead);

size_t assay_batch_room(const struct assay_batch *batch, const char *topic)
{
	return assay_limits_room(batch->loop, topic);
}

/* An event that does not fit its topic: parked whole (under the sequence number it would
 * have had) and replaced by a dead letter of its input that names it. */
static int emit_oversized(struct assay_batch *batch, size_t i, const char *topic, const void *key,
                          size_t key_len, const void *value, size_t value_len,
                          struct assay_headers *headers, size_t size, size_t room)
{
	struct assay_msg *m = &batch->msgs[i];
	const struct assay_header *type = assay_headers_find(headers, "event_type");
	char why[700];
	int err;

	snprintf(why, sizeof(why),
	         "event %.*s of %zu bytes does not fit topic %s (at most %zu); parked as seq %d",
	         type ? (int)type->size : 0, type ? (const char *)type->value : "", size, topic,
	         room, m->nevents);
	err = assay_parked_add(batch, i, m->nevents, topic, key, key_len, value, value_len, headers,
	                       why);
	assay_headers_release(headers);
	if (err)
		return err;
	return deadletter(batch, i, ASSAY_ERR_REJECT, why, false);
}

int assay_batch_emit(struct assay_batch *batch, size_t i, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     struct assay_headers *headers)
{
	struct assay_msg *m = &batch->msgs[i];
	struct out_event *e;
	int err = ASSAY_ERR_FATAL;
	size_t size, room;

	if (m->nevents >= ASSAY_LOOP_MAX_EVENTS_PER_MESSAGE)
		goto fail;
	size = key_len + value_len + assay_headers_wire_size(headers);
	room = assay_limits_room(batch->loop, topic);
	if (size > room) {
		struct assay_headers none;

		if (strcmp(topic, batch->loop->deadletter_topic) == 0) {
			assay_headers_release(headers);
			return ASSAY_ERR_FATAL; /* deadletter() bounds what it emits */
		}

		if (headers == NULL) {
			assay_headers_init(&none);
			headers = &none;
		}
		return emit_oversized(batch, i, topic, key, key_len, value, value_len, headers,
		                      size, room);
	}
	if (assay_vec_reserve(&batch->events, &batch->events_cap, batch->nevents + 1,
	                      sizeof(*batch->events)))
		goto fail;
	e = &batch->events[batch->nevents];
	memset(e, 0, sizeof(*e));
	e->msg = i;
	e->seq = m->nevents;
	if (headers) {
		e->headers = *headers; /* taken over */
		assay_headers_init(headers);
	}
	e->topic = strdup(topic);
	/* an empty key or value stays empty (a non-NULL pointer), NULL stays NULL */
	e->key = key ? malloc(key_len ? key_len : 1) : NULL;
	e->value = value ? malloc(value_len ? value_len : 1) : NULL;
	if (e->topic == NULL || (key && e->key == NULL) || (value && e->value == NULL)) {
		assay_out_event_release(e);
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
		const void *trace = NULL;
		size_t trace_len = 0;

		/* a trace longer than any id is not carried on: it would make every event of
		 * that input as large as the producer wants */
		if ((msg_header(m, "trace_id", &trace, &trace_len) ||
		     msg_header(m, "event_id", &trace, &trace_len)) &&
		    trace_len <= TRACE_ID_MAX_BYTES) {
			if (assay_headers_add(&e->headers, "trace_id", trace, trace_len))
				goto fail_event;
		}
	}
	m->nevents++;
	batch->nevents++;
	return 0;
fail_event:
	assay_out_event_release(e);
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
	void *buf = NULL;
	size_t len = 0;
	int err;

	err = assay_codec_encode(batch->loop->cfg.codec, s, value, &buf, &len, errstr, errstr_size);
	if (err)
		return err;
	err = assay_batch_emit_typed(batch, i, topic, key, key_len, buf, len, s->full_name);
	free(buf);
	return err;
}

int assay_batch_emit_typed(struct assay_batch *batch, size_t i, const char *topic, const void *key,
                           size_t key_len, const void *value, size_t value_len,
                           const char *event_type)
{
	struct assay_headers headers;

	assay_headers_init(&headers);
	if (assay_headers_add_str(&headers, "event_type", event_type)) {
		assay_headers_release(&headers);
		return ASSAY_ERR_FATAL;
	}
	/* headers handed over: assay_batch_emit releases them on every path */
	return assay_batch_emit(batch, i, topic, key, key_len, value, value_len, &headers);
}

/* Adds the dead-letter headers that describe message m and the failure. */
static int add_dlq_headers(struct assay_headers *h, const struct assay_loop *loop,
                           const struct assay_msg *m, int err_class, const char *message)
{
	char num[32];
	int err;

	err = assay_headers_add_str(h, "assay.dlq.topic", m->topic);
	snprintf(num, sizeof(num), "%" PRId32, m->partition);
	if (!err)
		err = assay_headers_add_str(h, "assay.dlq.partition", num);
	snprintf(num, sizeof(num), "%" PRId64, m->offset);
	if (!err)
		err = assay_headers_add_str(h, "assay.dlq.offset", num);
	if (!err)
		err = assay_headers_add_str(h, "assay.dlq.stage", loop->handler.stage);
	if (!err)
		err = assay_headers_add_str(h, "assay.dlq.error.class", assay_err_name(err_class));
	if (!err)
		err = assay_headers_add_str(h, "assay.dlq.error.message", message);
	return err;
}

/* The headers saying that only a prefix of the message travels and where the rest is. */
static int add_parked_headers(struct assay_headers *h, const struct assay_loop *loop,
                              const struct assay_msg *m, const char *sha256, size_t kept)
{
	char num[32], where[600];
	int err;

	snprintf(num, sizeof(num), "%zu", m->value_len);
	err = assay_headers_add_str(h, "assay.dlq.value.size", num);
	if (!err)
		err = assay_headers_add_str(h, "assay.dlq.value.sha256", sha256);
	snprintf(num, sizeof(num), "%zu", kept);
	if (!err)
		err = assay_headers_add_str(h, "assay.dlq.value.kept", num);
	snprintf(where, sizeof(where),
	         "assay_parked_values consumer_group=%s topic=%s partition=%" PRId32
	         " offset=%" PRId64 " seq=-1",
	         loop->cfg.group, m->topic, m->partition, m->offset);
	if (!err)
		err = assay_headers_add_str(h, "assay.dlq.parked", where);
	return err;
}

/* A header's value as a string for a log line ("" when absent). */
static void header_text(const struct assay_msg *m, const char *name, char *out, size_t size)
{
	const void *v;
	size_t len;

	out[0] = '\0';
	if (msg_header(m, name, &v, &len) && v != NULL)
		snprintf(out, size, "%.*s", (int)(len < size ? len : size - 1), (const char *)v);
}

static void log_deadletter(struct assay_loop *loop, const struct assay_msg *m, int err_class,
                           const char *message, bool parked)
{
	char event_id[128], trace_id[128];
	int64_t suppressed;

	if (!assay_log_limit_allow(&loop->dlq_log, assay_now_ms(), &suppressed))
		return;
	header_text(m, "event_id", event_id, sizeof(event_id));
	header_text(m, "trace_id", trace_id, sizeof(trace_id));
	assay_log_warn(loop->cfg.log, "message dead-lettered", ASSAY_LF_STR("topic", m->topic),
	               ASSAY_LF_INT("partition", m->partition), ASSAY_LF_INT("offset", m->offset),
	               ASSAY_LF_STR("event_id", event_id), ASSAY_LF_STR("trace_id", trace_id),
	               ASSAY_LF_STR("class", assay_err_name(err_class)),
	               ASSAY_LF_STR("error", message),
	               ASSAY_LF_STR("deadletter_topic", loop->deadletter_topic),
	               ASSAY_LF_STR("value", parked ? "parked" : "whole"),
	               ASSAY_LF_INT("suppressed", suppressed));
}

/*
 * Dead-letters message i (see assay_batch_deadletter). When the original key, value and
 * headers would not fit the dead-letter topic, the whole message is parked and the dead
 * letter carries a prefix, the size and the SHA-256 of the value and where it is parked.
 * mark_dead: the message counts as dead-lettered (handlers skip it); false when it only
 * replaces an event that does not fit.
 */
static int deadletter(struct assay_batch *batch, size_t i, int err_class, const char *message,
                      bool mark_dead)
{
	struct assay_loop *loop = batch->loop;
	struct assay_msg *m = &batch->msgs[i];
	size_t room = assay_limits_room(loop, loop->deadletter_topic);
	size_t key_len = m->key_len, value_len = m->value_len;
	struct assay_headers h, original;
	bool parked = false;
	int err;

	assay_headers_init(&h);
	assay_headers_init(&original);
	err = msg_headers_copy(m, &original);
	/* the dead letter carries an event id of its own; the original's is kept renamed */
	for (size_t k = 0; !err && k < original.count; k++)
		if (strcmp(original.items[k].name, "event_id") == 0) {
			char *name = strdup("assay.dlq.event_id");

			if (name == NULL)
				err = ASSAY_ERR_FATAL;
			else {
				free(original.items[k].name);
				original.items[k].name = name;
			}
		}
	for (size_t k = 0; !err && k < original.count; k++)
		err = assay_headers_add(&h, original.items[k].name, original.items[k].value,
		                        original.items[k].size);
	if (!err)
		err = add_dlq_headers(&h, loop, m, err_class, message);
	if (!err && key_len + value_len + assay_headers_wire_size(&h) > room) {
		char sha[65];

		parked = true;
		err = assay_parked_add(batch, i, -1, NULL, m->key, m->key_len, m->value,
		                       m->value_len, &original, message);
		if (key_len > PARKED_PREFIX_BYTES)
			key_len = PARKED_PREFIX_BYTES;
		if (value_len > PARKED_PREFIX_BYTES)
			value_len = PARKED_PREFIX_BYTES;
		assay_sha256_hex(m->value, m->value_len, sha);
		if (!err)
			err = add_parked_headers(&h, loop, m, sha, value_len);
		if (!err && key_len + value_len + assay_headers_wire_size(&h) > room) {
			/* the original headers are too large themselves: they stay parked */
			assay_headers_release(&h);
			err = add_dlq_headers(&h, loop, m, err_class, message);
			if (!err)
				err = add_parked_headers(&h, loop, m, sha, value_len);
		}
		if (!err && key_len + value_len + assay_headers_wire_size(&h) > room)
			key_len = value_len = 0; /* a topic smaller than any prefix */
	}
	assay_headers_release(&original);
	if (err) {
		assay_headers_release(&h);
		return err;
	}
	err = assay_batch_emit(batch, i, loop->deadletter_topic, m->key, key_len, m->value,
	                       value_len, &h);
	if (err)
		return err;
	if (mark_dead && !m->dead)
		batch->ndead++;
	if (mark_dead)
		m->dead = true;
	log_deadletter(loop, m, err_class, message, parked);
	return 0;
}

int assay_batch_deadletter(struct assay_batch *batch, size_t i, int err_class, const char *message)
{
	return deadletter(batch, i, err_class, message, true);
}

int assay_batch_park(struct assay_batch *batch, size_t i, const char *reason, char *where,
                     size_t where_size)
{
	const struct assay_msg *m = &batch->msgs[i];
	struct assay_headers original;
	int err;

	assay_headers_init(&original);
	err = msg_headers_copy(m, &original);
	if (!err)
		err = assay_parked_add(batch, i, -1, NULL, m->key, m->key_len, m->value,
		                       m->value_len, &original, reason);
	assay_headers_release(&original);
	if (!err && where)
		snprintf(where, where_size,
		         "assay_parked_values consumer_group=%s topic=%s partition=%" PRId32
		         " offset=%" PRId64 " seq=-1",
		         batch->loop->cfg.group, m->topic, m->partition, m->offset);
	return err;
}

void assay_batch_reset_outputs(struct assay_batch *batch)
{
	for (size_t k = 0; k < batch->nevents; k++)
		assay_out_event_release(&batch->events[k]);
	batch->nevents = 0;
	for (size_t k = 0; k < batch->nparked; k++)
		assay_parked_release(&batch->parked[k]);
	batch->nparked = 0;
	batch->ndead = 0;
	for (size_t k = 0; k < batch->count; k++) {
		batch->msgs[k].nevents = 0;
		batch->msgs[k].dead = false;
	}
}

void assay_batch_release(struct assay_batch *batch)
{
	assay_batch_reset_outputs(batch);
	for (size_t k = 0; k < batch->count; k++)
		if (batch->msgs[k].decoded_ok)
			assay_decoded_release(&batch->msgs[k].decoded);
	free(batch->events);
	free(batch->parked);
	free(batch->msgs);
	memset(batch, 0, sizeof(*batch));
}

/* Builds the batch view of rkms[first, first+n): decodes when the handler wants it.
 * Returns 0, ASSAY_ERR_RETRY (the registry is unreachable) or ASSAY_ERR_FATAL. */
int assay_batch_build(struct assay_loop *loop, struct assay_batch *batch, size_t first, size_t n,
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
int assay_batch_decode_all(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
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

void assay_batch_discard_polled(struct assay_loop *loop)
{
	for (size_t k = 0; k < loop->nrkms; k++)
		rd_kafka_message_destroy(loop->rkms[k]);
	loop->nrkms = 0;
}

/* ---- batches built by hand, for unit tests of handlers ---- */

struct assay_batch *assay_batch_new_for_test(const char *service,
                                             const struct assay_test_message *msgs, size_t n)
{
	struct assay_loop *loop = calloc(1, sizeof(*loop));
	struct assay_batch *batch = calloc(1, sizeof(*batch));

	if (loop == NULL || batch == NULL)
		goto fail;
	loop->cfg.service = service;
	loop->cfg.group = service;
	loop->cfg.deadletter_topic = "assay.deadletter";
	loop->deadletter_topic = loop->cfg.deadletter_topic;
	loop->handler.stage = "test";
	loop->default_room = TOPIC_DEFAULT_MAX_BYTES - RECORD_OVERHEAD;
	loop->ids = assay_uuid_maker_new();
	if (loop->ids == NULL)
		goto fail;
	batch->loop = loop;
	batch->msgs = calloc(n ? n : 1, sizeof(*batch->msgs));
	if (batch->msgs == NULL)
		goto fail;
	batch->count = n;
	for (size_t k = 0; k < n; k++) {
		struct assay_msg *m = &batch->msgs[k];

		m->topic = msgs[k].topic;
		m->partition = msgs[k].partition;
		m->offset = msgs[k].offset;
		m->key = msgs[k].key;
		m->key_len = msgs[k].key_len;
		m->value = msgs[k].value;
		m->value_len = msgs[k].value_len;
		m->headers = msgs[k].headers;
	}
	return batch;
fail:
	if (loop)
		assay_uuid_maker_destroy(loop->ids);
	free(loop);
	if (batch)
		free(batch->msgs);
	free(batch);
	return NULL;
}

void assay_batch_set_room_for_test(struct assay_batch *batch, size_t room)
{
	batch->loop->default_room = room;
}

void assay_batch_free_for_test(struct assay_batch *batch)
{
	struct assay_loop *loop;

	if (batch == NULL)
		return;
	loop = batch->loop;
	assay_batch_release(batch);
	assay_uuid_maker_destroy(loop->ids);
	free(loop);
	free(batch);
}

size_t assay_batch_events(const struct assay_batch *batch)
{
	return batch->nevents;
}

void assay_batch_event(const struct assay_batch *batch, size_t k, struct assay_test_event *out)
{
	const struct out_event *e = &batch->events[k];

	out->msg = e->msg;
	out->topic = e->topic;
	out->key = e->key;
	out->key_len = e->key_len;
	out->value = e->value;
	out->value_len = e->value_len;
	out->headers = &e->headers;
}

size_t assay_batch_parked_count(const struct assay_batch *batch)
{
	return batch->nparked;
}
