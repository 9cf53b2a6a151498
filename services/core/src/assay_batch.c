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

void assay_out_event_release(struct out_event *e)
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
	e->key = key_len ? malloc(key_len) : NULL;
	e->value = value_len ? malloc(value_len) : NULL;
	if (e->topic == NULL || (key_len && e->key == NULL) || (value_len && e->value == NULL)) {
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

void assay_batch_reset_outputs(struct assay_batch *batch)
{
	for (size_t k = 0; k < batch->nevents; k++)
		assay_out_event_release(&batch->events[k]);
	batch->nevents = 0;
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
