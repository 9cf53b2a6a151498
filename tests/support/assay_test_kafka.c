/*
 * Kafka test helpers: see assay_test_kafka.h.
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_kafka.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t assay_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t assay_test_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void assay_test_kafka_topic(char *name, size_t size, const char *prefix, int partitions)
{
	const char *topics[1];
	char errstr[512];
	int rc;

	assay_test_unique(name, size, prefix);
	topics[0] = name;
	rc = assay_kafka_ensure_topics(assay_test_brokers(), topics, 1, partitions, 1, NULL, 20000,
	                               errstr, sizeof(errstr));
	if (rc != 0)
		fail_msg("ensure topic %s: %s: %s", name, assay_err_name(rc), errstr);
}

rd_kafka_t *assay_test_kafka_new(rd_kafka_type_t type, const char *const *conf_kv, void *opaque,
                                 void (*dr_msg_cb)(rd_kafka_t *rk, const rd_kafka_message_t *msg,
                                                   void *opaque))
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char errstr[512];
	size_t i;

	conf = assay_kafka_conf_new(assay_test_brokers(), errstr, sizeof(errstr));
	if (conf == NULL)
		fail_msg("kafka conf: %s", errstr);
	for (i = 0; conf_kv != NULL && conf_kv[i] != NULL; i += 2) {
		if (assay_kafka_conf_set(conf, conf_kv[i], conf_kv[i + 1], errstr,
		                         sizeof(errstr)) != 0) {
			rd_kafka_conf_destroy(conf);
			fail_msg("%s", errstr);
		}
	}
	if (opaque != NULL)
		rd_kafka_conf_set_opaque(conf, opaque);
	if (dr_msg_cb != NULL)
		rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		fail_msg("rd_kafka_new: %s", errstr);
	}
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_poll_set_consumer(rk);
	return rk;
}

rd_kafka_t *assay_test_kafka_reader(const char *topic, const char *isolation)
{
	char group[128];
	const char *conf[] = {"group.id",
	                      group,
	                      "auto.offset.reset",
	                      "earliest",
	                      "isolation.level",
	                      isolation,
	                      "enable.auto.commit",
	                      "false",
	                      "enable.partition.eof",
	                      "false",
	                      NULL};
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_t *rk;

	assay_test_unique(group, sizeof(group), "reader");
	rk = assay_test_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, NULL);
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
	assert_int_equal(rd_kafka_subscribe(rk, topics), 0);
	rd_kafka_topic_partition_list_destroy(topics);
	return rk;
}

static char *copy_bytes(const void *p, size_t len)
{
	char *s = malloc(len + 1);

	assert_non_null(s);
	if (len)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

struct assay_test_record *assay_test_read_topic(const char *topic, const char *isolation,
                                                size_t expect, int quiet_ms, int timeout_ms,
                                                size_t *count)
{
	struct assay_test_record *records = NULL;
	size_t n = 0, cap = 0;
	int64_t start = assay_test_now_ms(), last = start;
	rd_kafka_t *rk = assay_test_kafka_reader(topic, isolation);

	for (;;) {
		int64_t now = assay_test_now_ms();
		rd_kafka_message_t *rkm;

		if (now - start > timeout_ms || (n >= expect && now - last > quiet_ms))
			break;
		rkm = rd_kafka_consumer_poll(rk, 100);
		if (rkm == NULL)
			continue;
		if (rkm->err == 0) {
			struct assay_test_record *r;
			const struct assay_header *id;

			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				records = realloc(records, cap * sizeof(*records));
				assert_non_null(records);
			}
			r = &records[n++];
			r->key = copy_bytes(rkm->key, rkm->key_len);
			r->key_len = rkm->key_len;
			r->value = copy_bytes(rkm->payload, rkm->len);
			r->value_len = rkm->len;
			r->value_null = rkm->payload == NULL;
			assay_headers_init(&r->headers);
			assert_int_equal(assay_headers_add_from_message(&r->headers, rkm), 0);
			id = assay_headers_find(&r->headers, "event_id");
			r->event_id = id ? copy_bytes(id->value, id->size) : NULL;
			last = assay_test_now_ms();
		}
		rd_kafka_message_destroy(rkm);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	*count = n;
	return records;
}

void assay_test_records_free(struct assay_test_record *records, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(records[i].key);
		free(records[i].value);
		free(records[i].event_id);
		assay_headers_release(&records[i].headers);
	}
	free(records);
}

bool assay_test_header_equals(const struct assay_test_record *r, const char *name,
                              const char *value)
{
	const struct assay_header *h = assay_headers_find(&r->headers, name);

	return h != NULL && h->size == strlen(value) && memcmp(h->value, value, h->size) == 0;
}
