/*
 * Kafka test helpers: see assay_test_kafka.h.
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_kafka.h"

#include <time.h>

int64_t assay_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
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
