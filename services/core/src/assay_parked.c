/*
 * Parked values: bytes too large for the topic they were meant for, kept whole in
 * assay_parked_values (sql/009_parked_values.sql) so that nothing one producer sends can stop
 * a service from publishing. A dead letter or rejection whose original message would not fit
 * carries a prefix, the size and the SHA-256 and names the row; an event the broker refuses
 * for good is parked by the relay and replaced by a dead letter that says so.
 */
#include "assay_loop_int.h"
#include "assay_err.h"
#include "assay_sha256.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t assay_headers_wire_size(const struct assay_headers *h)
{
	size_t n = 0;

	for (size_t k = 0; h != NULL && k < h->count; k++)
		n += strlen(h->items[k].name) + h->items[k].size + 10; /* two varint lengths */
	return n;
}

/* A copy of len bytes at p; NULL for NULL. Sets *failed when memory runs out. */
static void *copy_bytes(const void *p, size_t len, bool *failed)
{
	void *q;

	if (p == NULL)
		return NULL;
	q = malloc(len ? len : 1);
	if (q == NULL) {
		*failed = true;
		return NULL;
	}
	memcpy(q, p, len);
	return q;
}

void assay_parked_release(struct parked *p)
{
	free(p->target_topic);
	free(p->key);
	free(p->value);
	free(p->headers);
	free(p->reason);
	memset(p, 0, sizeof(*p));
}

int assay_parked_add(struct assay_batch *batch, size_t i, int seq, const char *target_topic,
                     const void *key, size_t key_len, const void *value, size_t value_len,
                     const struct assay_headers *headers, const char *reason)
{
	struct parked *p;
	bool failed = false;

	for (size_t k = 0; k < batch->nparked; k++)
		if (batch->parked[k].msg == i && batch->parked[k].seq == seq)
			return 0; /* parked already in this attempt */
	if (batch->nparked == batch->parked_cap) {
		size_t cap = batch->parked_cap ? batch->parked_cap * 2 : 4;
		struct parked *grown = realloc(batch->parked, cap * sizeof(*grown));

		if (grown == NULL)
			return ASSAY_ERR_FATAL;
		batch->parked = grown;
		batch->parked_cap = cap;
	}
	p = &batch->parked[batch->nparked];
	memset(p, 0, sizeof(*p));
	p->msg = i;
	p->seq = seq;
	p->target_topic = target_topic ? strdup(target_topic) : NULL;
	p->key = copy_bytes(key, key_len, &failed);
	p->key_len = key_len;
	p->value = copy_bytes(value, value_len, &failed);
	p->value_len = value_len;
	p->reason = strdup(reason);
	if (headers && headers->count &&
	    assay_headers_encode(headers, &p->headers, &p->headers_len) != 0)
		failed = true;
	if (failed || p->reason == NULL || (target_topic && p->target_topic == NULL)) {
		assay_parked_release(p);
		return ASSAY_ERR_FATAL;
	}
	assay_sha256_hex(value, value_len, p->sha256);
	batch->nparked++;
	return 0;
}

static void copybin_bytes_or_null(struct assay_copybin *b, const void *p, size_t len)
{
	if (p == NULL)
		assay_copybin_null(b);
	else
		assay_copybin_bytes(b, p, len);
}

int assay_parked_write(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                       size_t errstr_size)
{
	struct assay_copybin *b = &loop->parked;

	if (batch->nparked == 0)
		return 0;
	assay_copybin_reset(b);
	for (size_t k = 0; k < batch->nparked; k++) {
		const struct parked *p = &batch->parked[k];
		const struct assay_msg *m = &batch->msgs[p->msg];

		assay_copybin_row(b, 12);
		assay_copybin_bytes(b, loop->cfg.group, strlen(loop->cfg.group));
		assay_copybin_bytes(b, m->topic, strlen(m->topic));
		assay_copybin_int32(b, m->partition);
		assay_copybin_int64(b, m->offset);
		assay_copybin_int32(b, p->seq);
		copybin_bytes_or_null(b, p->target_topic,
		                      p->target_topic ? strlen(p->target_topic) : 0);
		copybin_bytes_or_null(b, p->key, p->key_len);
		copybin_bytes_or_null(b, p->value, p->value_len);
		copybin_bytes_or_null(b, p->headers, p->headers_len);
		assay_copybin_int64(b, (int64_t)p->value_len);
		assay_copybin_bytes(b, p->sha256, 64);
		assay_copybin_bytes(b, p->reason, strlen(p->reason));
	}
	if (b->failed)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "building the parked rows failed: out of memory");
	return assay_pg_copy_binary(loop->conn,
	                            "COPY assay_parked_values (consumer_group, topic, partition, "
	                            "\"offset\", seq, target_topic, key, value, headers, "
	                            "value_size, value_sha256, reason) FROM STDIN (FORMAT binary)",
	                            b, errstr, errstr_size);
}

int assay_parked_insert(struct assay_loop *loop, const struct part *p, int64_t source_offset,
                        int seq, const char *target_topic, const void *key, size_t key_len,
                        const void *value, size_t value_len, const char *reason, char *errstr,
                        size_t errstr_size)
{
	char partition[16], offset[32], seqs[16], size[32], sha[65];
	const char *params[] = {loop->cfg.group, p->topic, partition, offset, seqs,
	                        target_topic,    key,      value,     size,   sha,
	                        reason};
	int lengths[11] = {0}, formats[11] = {0};
	PGresult *res;
	int err = 0;

	snprintf(partition, sizeof(partition), "%" PRId32, p->partition);
	snprintf(offset, sizeof(offset), "%" PRId64, source_offset);
	snprintf(seqs, sizeof(seqs), "%d", seq);
	snprintf(size, sizeof(size), "%zu", value_len);
	assay_sha256_hex(value, value_len, sha);
	lengths[6] = (int)key_len;
	formats[6] = 1;
	lengths[7] = (int)value_len;
	formats[7] = 1;
	if (key == NULL)
		params[6] = NULL;
	else if (key_len == 0)
		params[6] = "";
	if (value == NULL)
		params[7] = NULL;
	else if (value_len == 0)
		params[7] = "";
	res = PQexecParams(loop->conn,
	                   "INSERT INTO assay_parked_values (consumer_group, topic, partition, "
	                   "\"offset\", seq, target_topic, key, value, value_size, value_sha256, "
	                   "reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
	                   "ON CONFLICT DO NOTHING",
	                   11, NULL, params, lengths, formats, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		err = assay_pg_result_error(res, loop->conn, "parking an event failed", errstr,
		                            errstr_size);
	PQclear(res);
	return err;
}
