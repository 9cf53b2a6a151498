/*
 * The outbox rows (sql/007_outbox_batches.sql): one per stream and batch, holding the events
 * the batch's messages of that stream caused, in the order they were emitted; the relay
 * reads them back after a start, a rebalance or a failure. Per event: source offset
 * (8 bytes), sequence (4), then topic, key, value and headers, each a 4-byte length (-1 for
 * NULL) and its bytes; big-endian.
 */
#include "assay_loop_int.h"

#include <stdlib.h>
#include <string.h>

static void put_u32(struct assay_copybin *b, uint32_t v)
{
	unsigned char w[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 8), (unsigned char)v};

	assay_copybin_append(b, w, sizeof(w));
}

static void put_part(struct assay_copybin *b, const void *p, size_t len)
{
	if (p == NULL) {
		put_u32(b, UINT32_MAX);
		return;
	}
	if (len >= INT32_MAX) {
		b->failed = 1;
		return;
	}
	put_u32(b, (uint32_t)len);
	assay_copybin_append(b, p, len);
}

void assay_outbox_put(struct assay_copybin *b, int64_t source_offset, const struct out_event *e,
                      const void *headers, size_t headers_len)
{
	put_u32(b, (uint32_t)((uint64_t)source_offset >> 32));
	put_u32(b, (uint32_t)source_offset);
	put_u32(b, (uint32_t)e->seq);
	put_part(b, e->topic, strlen(e->topic));
	put_part(b, e->key, e->key_len);
	put_part(b, e->value, e->value_len);
	put_part(b, headers, headers_len);
}

static int get_u32(const unsigned char *buf, size_t len, size_t *pos, uint32_t *v)
{
	if (len - *pos < 4)
		return -1;
	*v = (uint32_t)buf[*pos] << 24 | (uint32_t)buf[*pos + 1] << 16 |
	     (uint32_t)buf[*pos + 2] << 8 | buf[*pos + 3];
	*pos += 4;
	return 0;
}

static int get_part(const unsigned char *buf, size_t len, size_t *pos, const void **p, size_t *plen)
{
	uint32_t n;

	if (get_u32(buf, len, pos, &n) != 0)
		return -1;
	if (n == UINT32_MAX) {
		*p = NULL;
		*plen = 0;
		return 0;
	}
	if (n > len - *pos)
		return -1;
	*p = buf + *pos;
	*plen = n;
	*pos += n;
	return 0;
}

int assay_outbox_get(const void *value, size_t len, size_t *pos, struct outbox_event *out)
{
	const unsigned char *buf = value;
	uint32_t hi, lo, seq;
	const void *topic;

	if (*pos > len)
		return -1;
	if (*pos == len)
		return 0;
	if (get_u32(buf, len, pos, &hi) || get_u32(buf, len, pos, &lo) ||
	    get_u32(buf, len, pos, &seq) || get_part(buf, len, pos, &topic, &out->topic_len) ||
	    topic == NULL || get_part(buf, len, pos, &out->key, &out->key_len) ||
	    get_part(buf, len, pos, &out->value, &out->value_len) ||
	    get_part(buf, len, pos, &out->headers, &out->headers_len))
		return -1;
	out->source_offset = (int64_t)((uint64_t)hi << 32 | lo);
	out->seq = (int32_t)seq;
	out->topic = topic;
	return 1;
}

static bool of_part(const struct assay_msg *m, const struct part *p)
{
	return m->partition == p->partition && strcmp(m->topic, p->topic) == 0;
}

int assay_outbox_rows(struct assay_copybin *b, const struct part *parts, size_t nparts,
                      const struct assay_batch *batch, size_t *written)
{
	*written = 0;
	assay_copybin_reset(b);
	for (size_t i = 0; i < nparts; i++) {
		const struct part *p = &parts[i];
		int64_t first = -1, last = -1;
		size_t at;

		/* a handler may emit for its messages in any order: the row spans them all */
		for (size_t k = 0; k < batch->nevents; k++) {
			const struct assay_msg *m = &batch->msgs[batch->events[k].msg];

			if (!of_part(m, p))
				continue;
			if (first < 0 || m->offset < first)
				first = m->offset;
			if (m->offset > last)
				last = m->offset;
		}
		if (first < 0)
			continue;
		assay_copybin_row(b, 4);
		assay_copybin_int32(b, p->stream);
		assay_copybin_int64(b, first);
		assay_copybin_int64(b, last + 1);
		at = assay_copybin_bytes_open(b);
		for (size_t k = 0; k < batch->nevents; k++) {
			const struct out_event *e = &batch->events[k];
			const struct assay_msg *m = &batch->msgs[e->msg];
			unsigned char *hbuf;
			size_t hlen;

			if (!of_part(m, p))
				continue;
			if (assay_headers_encode(&e->headers, &hbuf, &hlen))
				return -1;
			assay_outbox_put(b, m->offset, e, hbuf, hlen);
			free(hbuf);
			(*written)++;
		}
		assay_copybin_bytes_close(b, at);
	}
	return b->failed ? -1 : 0;
}
