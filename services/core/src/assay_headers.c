/*
 * Header lists: building, outbox encoding, and conversion to and from librdkafka.
 */
#include "assay_headers.h"
#include "assay_vec.h"
#include "assay_err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void assay_headers_init(struct assay_headers *h)
{
	memset(h, 0, sizeof(*h));
}

void assay_headers_release(struct assay_headers *h)
{
	for (size_t i = 0; i < h->count; i++) {
		free(h->items[i].name);
		free(h->items[i].value);
	}
	free(h->items);
	assay_headers_init(h);
}

int assay_headers_add(struct assay_headers *h, const char *name, const void *value, size_t size)
{
	struct assay_header *item;

	if (assay_vec_reserve(&h->items, &h->cap, h->count + 1, sizeof(*h->items)))
		return ASSAY_ERR_FATAL;
	item = &h->items[h->count];
	item->name = strdup(name);
	item->value = size ? malloc(size) : NULL;
	item->size = size;
	if (item->name == NULL || (size && item->value == NULL)) {
		free(item->name);
		free(item->value);
		return ASSAY_ERR_FATAL;
	}
	if (size)
		memcpy(item->value, value, size);
	h->count++;
	return 0;
}

int assay_headers_add_str(struct assay_headers *h, const char *name, const char *value)
{
	return assay_headers_add(h, name, value, strlen(value));
}

const struct assay_header *assay_headers_find(const struct assay_headers *h, const char *name)
{
	for (size_t i = 0; i < h->count; i++)
		if (strcmp(h->items[i].name, name) == 0)
			return &h->items[i];
	return NULL;
}

int assay_headers_add_from_message(struct assay_headers *h, const rd_kafka_message_t *rkm)
{
	rd_kafka_headers_t *hdrs;
	const char *name;
	const void *value;
	size_t size;

	if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0; /* no headers */
	for (size_t i = 0;
	     rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
	     i++) {
		int err = assay_headers_add(h, name, value, size);

		if (err)
			return err;
	}
	return 0;
}

int assay_headers_encode(const struct assay_headers *h, unsigned char **buf, size_t *len)
{
	size_t total = 0;
	unsigned char *p;

	*buf = NULL;
	*len = 0;
	if (h->count == 0)
		return 0;
	for (size_t i = 0; i < h->count; i++)
		total += 2 + strlen(h->items[i].name) + 4 + h->items[i].size;
	p = malloc(total);
	if (p == NULL)
		return ASSAY_ERR_FATAL;
	*buf = p;
	*len = total;
	for (size_t i = 0; i < h->count; i++) {
		size_t nlen = strlen(h->items[i].name);
		uint32_t vlen = (uint32_t)h->items[i].size;

		*p++ = (unsigned char)(nlen >> 8);
		*p++ = (unsigned char)nlen;
		memcpy(p, h->items[i].name, nlen);
		p += nlen;
		*p++ = (unsigned char)(vlen >> 24);
		*p++ = (unsigned char)(vlen >> 16);
		*p++ = (unsigned char)(vlen >> 8);
		*p++ = (unsigned char)vlen;
		if (vlen)
			memcpy(p, h->items[i].value, vlen);
		p += vlen;
	}
	return 0;
}

int assay_headers_decode(struct assay_headers *h, const void *buf, size_t len, char *errstr,
                         size_t errstr_size)
{
	const unsigned char *p = buf, *end = p + len;

	while (p < end) {
		size_t nlen, vlen;
		char name[1024];
		int err;

		if (end - p < 2)
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "headers: truncated name length");
		nlen = ((size_t)p[0] << 8) | p[1];
		p += 2;
		if (nlen == 0 || nlen >= sizeof(name) || (size_t)(end - p) < nlen + 4)
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "headers: bad name length %zu", nlen);
		memcpy(name, p, nlen);
		name[nlen] = '\0';
		p += nlen;
		vlen = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
		p += 4;
		if ((size_t)(end - p) < vlen)
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "headers: value of %s truncated", name);
		err = assay_headers_add(h, name, p, vlen);
		if (err)
			return err;
		p += vlen;
	}
	return 0;
}

rd_kafka_headers_t *assay_headers_to_kafka(const struct assay_headers *h)
{
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(h->count ? h->count : 1);

	if (hdrs == NULL)
		return NULL;
	for (size_t i = 0; i < h->count; i++) {
		if (rd_kafka_header_add(hdrs, h->items[i].name, -1, h->items[i].value,
		                        (ssize_t)h->items[i].size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			rd_kafka_headers_destroy(hdrs);
			return NULL;
		}
	}
	return hdrs;
}
