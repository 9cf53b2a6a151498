/*
 * Kafka message headers as the runtime keeps them: an ordered list of (name, bytes) that can
 * be built by a handler, stored in the outbox (assay_headers_encode/decode) and turned into
 * librdkafka headers when the relay publishes.
 */
#ifndef ASSAY_HEADERS_H
#define ASSAY_HEADERS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

struct assay_header {
	char *name;  /* NUL-terminated */
	void *value; /* may be NULL when size is 0 */
	size_t size;
};

/* A plain value: zero-initialize or assay_headers_init, free with assay_headers_release. */
struct assay_headers {
	struct assay_header *items;
	size_t count;
	size_t cap;
};

void assay_headers_init(struct assay_headers *h);
void assay_headers_release(struct assay_headers *h);

/* Appends a copy of name and value. Returns 0 or ASSAY_ERR_FATAL when memory ran out. */
int assay_headers_add(struct assay_headers *h, const char *name, const void *value, size_t size);
int assay_headers_add_str(struct assay_headers *h, const char *name, const char *value);

/* The first header called name, or NULL. */
const struct assay_header *assay_headers_find(const struct assay_headers *h, const char *name);

/* Appends copies of every header of a consumed message. Returns 0 or ASSAY_ERR_FATAL. */
int assay_headers_add_from_message(struct assay_headers *h, const rd_kafka_message_t *rkm);

/*
 * Outbox encoding: for each header a 2-byte big-endian name length, the name, a 4-byte
 * big-endian value length, the value. encode returns a malloc'd buffer (NULL with *len 0
 * for an empty list) or ASSAY_ERR_FATAL; decode appends to h and returns 0 or
 * ASSAY_ERR_REJECT with the reason when the bytes are malformed.
 */
int assay_headers_encode(const struct assay_headers *h, unsigned char **buf, size_t *len);
int assay_headers_decode(struct assay_headers *h, const void *buf, size_t len, char *errstr,
                         size_t errstr_size);

/* A new librdkafka header list with copies of every header (the caller owns it until it
 * hands it to a produce call). NULL when memory ran out. */
rd_kafka_headers_t *assay_headers_to_kafka(const struct assay_headers *h);

#endif
