/*
 * Topic limits: how many bytes of key, value and headers each topic the loop produces to
 * takes (its max.message.bytes as the broker says, or the producer's message.max.bytes if
 * smaller, less the record's framing). Read before the producer is made, so that it is sized
 * for the largest; read again after the broker refused an event.
 */
#include "assay_loop_int.h"
#include "assay_err.h"
#include "assay_kafka.h"

#include <stdlib.h>
#include <string.h>

size_t assay_limits_room(const struct assay_loop *loop, const char *topic)
{
	for (size_t i = 0; i < loop->nrooms; i++)
		if (strcmp(loop->rooms[i].topic, topic) == 0)
			return loop->rooms[i].room;
	return loop->default_room;
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
void assay_limits_size(struct assay_loop *loop, const int64_t *limits)
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
int assay_limits_read(struct assay_loop *loop, int64_t **limits, char *errstr, size_t errstr_size)
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

void assay_limits_refresh(struct assay_loop *loop)
{
	const char **topics = calloc(loop->nrooms + 1, sizeof(*topics));
	int64_t *limits = calloc(loop->nrooms + 1, sizeof(*limits));

	if (topics && limits) {
		fetch_limits(loop, topics, limits);
		assay_limits_size(loop, limits);
	}
	free(topics);
	free(limits);
}
