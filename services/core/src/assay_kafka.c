/*
 * librdkafka helpers shared by the services: base configuration, checked conf_set, topic
 * creation with the Admin API followed by a metadata wait, watermarks, and the mapping of
 * librdkafka's errors onto assay's retry / reject / fatal classes (plus ASSAY_KAFKA_ABORT for
 * abortable transactions). Nothing here keeps state between calls.
 */
#include "assay_kafka.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Milliseconds on the monotonic clock. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Time left until deadline, at least 1 ms so that a call never blocks forever. */
static int remaining_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left < 1 ? 1 : (int)left;
}

rd_kafka_conf_t *assay_kafka_conf_new(const char *brokers, char *errstr, size_t errstr_size)
{
	static const char *const defaults[][2] = {
	        {"client.id", "assay"},
	        {"socket.timeout.ms", "10000"},
	        {"api.version.request", "true"},
	};
	rd_kafka_conf_t *conf;
	size_t i;

	if (brokers == NULL || *brokers == '\0') {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "kafka config: no bootstrap brokers given");
		return NULL;
	}
	conf = rd_kafka_conf_new();
	if (conf == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "kafka config: out of memory");
		return NULL;
	}
	if (assay_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) != 0)
		goto fail;
	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (assay_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr,
		                         errstr_size) != 0)
			goto fail;
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

int assay_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                         size_t errstr_size)
{
	char rderr[512];

	rderr[0] = '\0';
	if (rd_kafka_conf_set(conf, key, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "kafka config %s: %s", key,
		                  rderr);
	return 0;
}

int assay_kafka_classify(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return 0;

	/* the broker, a leader or a coordinator is away or busy: the same work succeeds later */
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__RESOLVE:
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
	case RD_KAFKA_RESP_ERR__ISR_INSUFF:
	case RD_KAFKA_RESP_ERR__WAIT_COORD:
	case RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR__RETRY:
	case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
	case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
	case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
	case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
	case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR_NOT_CONTROLLER:
	case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
	case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
	case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
	case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
	case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
	case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
	case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
	case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
		return ASSAY_ERR_RETRY;

	/* this one record is bad: dead-letter it */
	case RD_KAFKA_RESP_ERR__BAD_MSG:
	case RD_KAFKA_RESP_ERR__BAD_COMPRESSION:
	case RD_KAFKA_RESP_ERR_INVALID_MSG:
	case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
	case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
		return ASSAY_ERR_REJECT;

	/* fenced producers, __FATAL, authorization, configuration and everything unknown */
	default:
		return ASSAY_ERR_FATAL;
	}
}

/* A newer producer with our transactional.id exists: this one must go for good. */
static int is_fencing(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__FENCED || err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
	       err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

int assay_kafka_classify_error(const rd_kafka_error_t *error)
{
	if (error == NULL)
		return 0;
	if (rd_kafka_error_is_fatal(error) || is_fencing(rd_kafka_error_code(error)))
		return ASSAY_ERR_FATAL;
	if (rd_kafka_error_txn_requires_abort(error))
		return ASSAY_KAFKA_ABORT;
	if (rd_kafka_error_is_retriable(error))
		return ASSAY_ERR_RETRY;
	return ASSAY_ERR_FATAL;
}

int assay_kafka_take_error(rd_kafka_error_t *error, const char *what, char *errstr,
                           size_t errstr_size)
{
	int err = assay_kafka_classify_error(error) == ASSAY_ERR_FATAL ? ASSAY_ERR_FATAL
	                                                               : ASSAY_ERR_RETRY;

	assay_errf(0, errstr, errstr_size, "%s failed: %s", what, rd_kafka_error_string(error));
	rd_kafka_error_destroy(error);
	return err;
}

int assay_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t *low,
                           int64_t *high, int timeout_ms)
{
	int64_t lo, hi;
	rd_kafka_resp_err_t err;

	err = rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, timeout_ms);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return assay_kafka_classify(err);
	*low = lo;
	*high = hi;
	return 0;
}

/* Sends CreateTopics for all topics and checks the per-topic results; an existing topic is
 * fine. created[i] tells whether topic i was created by this call. */
static int create_topics(rd_kafka_t *rk, const char *const *topics, size_t ntopics, int partitions,
                         int replication_factor, const char *const *configs, int64_t deadline,
                         int *created, char *errstr, size_t errstr_size)
{
	rd_kafka_NewTopic_t **newts = NULL;
	rd_kafka_AdminOptions_t *options = NULL;
	rd_kafka_queue_t *queue = NULL;
	rd_kafka_event_t *event = NULL;
	const rd_kafka_CreateTopics_result_t *result;
	const rd_kafka_topic_result_t **results;
	size_t nresults, i, j;
	char rderr[512];
	int rc;

	newts = calloc(ntopics, sizeof(*newts));
	if (newts == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "kafka create topics: out of memory");
		goto out;
	}
	for (i = 0; i < ntopics; i++) {
		newts[i] = rd_kafka_NewTopic_new(topics[i], partitions, replication_factor, rderr,
		                                 sizeof(rderr));
		if (newts[i] == NULL) {
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "kafka create topic %s: %s", topics[i], rderr);
			goto out;
		}
		for (j = 0; configs != NULL && configs[j] != NULL; j += 2) {
			if (configs[j + 1] == NULL ||
			    rd_kafka_NewTopic_set_config(newts[i], configs[j], configs[j + 1]) !=
			            RD_KAFKA_RESP_ERR_NO_ERROR) {
				rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
				                "kafka create topic %s: bad config %s", topics[i],
				                configs[j]);
				goto out;
			}
		}
	}

	options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	queue = rd_kafka_queue_new(rk);
	if (options == NULL || queue == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "kafka create topics: out of memory");
		goto out;
	}
	if (rd_kafka_AdminOptions_set_request_timeout(options, remaining_ms(deadline), rderr,
	                                              sizeof(rderr)) !=
	            RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_AdminOptions_set_operation_timeout(options, remaining_ms(deadline), rderr,
	                                                sizeof(rderr)) !=
	            RD_KAFKA_RESP_ERR_NO_ERROR) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "kafka create topics: %s",
		                rderr);
		goto out;
	}

	rd_kafka_CreateTopics(rk, newts, ntopics, options, queue);
	/* the admin request ends by itself on its request timeout; the margin covers that */
	event = rd_kafka_queue_poll(queue, remaining_ms(deadline) + 1000);
	if (event == NULL) {
		rc = assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size,
		                "kafka create topics: no answer in time");
		goto out;
	}
	if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rc = assay_errf(assay_kafka_classify(rd_kafka_event_error(event)), errstr,
		                errstr_size, "kafka create topics: %s",
		                rd_kafka_event_error_string(event));
		goto out;
	}
	result = rd_kafka_event_CreateTopics_result(event);
	if (result == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "kafka create topics: unexpected event %s",
		                rd_kafka_event_name(event));
		goto out;
	}
	results = rd_kafka_CreateTopics_result_topics(result, &nresults);
	for (i = 0; i < nresults; i++) {
		const char *name = rd_kafka_topic_result_name(results[i]);
		rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);

		if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
		    err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			const char *msg = rd_kafka_topic_result_error_string(results[i]);

			rc = assay_errf(assay_kafka_classify(err), errstr, errstr_size,
			                "kafka create topic %s: %s", name,
			                msg != NULL ? msg : rd_kafka_err2str(err));
			goto out;
		}
		for (j = 0; j < ntopics; j++)
			if (strcmp(topics[j], name) == 0)
				created[j] = err == RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	rc = 0;
out:
	if (event != NULL)
		rd_kafka_event_destroy(event);
	if (queue != NULL)
		rd_kafka_queue_destroy(queue);
	if (options != NULL)
		rd_kafka_AdminOptions_destroy(options);
	if (newts != NULL) {
		for (i = 0; i < ntopics; i++)
			if (newts[i] != NULL)
				rd_kafka_NewTopic_destroy(newts[i]);
		free(newts);
	}
	return rc;
}

/* Whether the metadata shows the topic with the wanted partitions, each with a leader. */
static int topic_ready(const rd_kafka_metadata_t *md, const char *topic, int want_partitions)
{
	int i, p;

	for (i = 0; i < md->topic_cnt; i++) {
		const rd_kafka_metadata_topic_t *mt = &md->topics[i];

		if (strcmp(mt->topic, topic) != 0)
			continue;
		if (mt->err != RD_KAFKA_RESP_ERR_NO_ERROR || mt->partition_cnt < 1)
			return 0;
		if (want_partitions > 0 && mt->partition_cnt < want_partitions)
			return 0;
		for (p = 0; p < mt->partition_cnt; p++)
			if (mt->partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
			    mt->partitions[p].leader < 0)
				return 0;
		return 1;
	}
	return 0;
}

/* Polls metadata for each topic until all are ready or the deadline passes. */
static int wait_topics(rd_kafka_t *rk, const char *const *topics, size_t ntopics, int partitions,
                       const int *created, int64_t deadline, char *errstr, size_t errstr_size)
{
	const rd_kafka_metadata_t *md;
	rd_kafka_topic_t *rkt;
	rd_kafka_resp_err_t err;
	size_t i = 0;
	int ready;

	while (i < ntopics) {
		rkt = rd_kafka_topic_new(rk, topics[i], NULL);
		if (rkt == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "kafka metadata %s: %s", topics[i],
			                  rd_kafka_err2str(rd_kafka_last_error()));
		md = NULL;
		err = rd_kafka_metadata(rk, 0, rkt, &md, remaining_ms(deadline));
		ready = err == RD_KAFKA_RESP_ERR_NO_ERROR &&
		        topic_ready(md, topics[i], created[i] ? partitions : 0);
		if (md != NULL)
			rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(rkt);
		if (ready) {
			i++;
			continue;
		}
		if (now_ms() >= deadline)
			return assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size,
			                  "kafka metadata %s: topic not ready in time (%s)",
			                  topics[i],
			                  err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(err)
			                                                    : "partitions pending");
		rd_kafka_poll(rk, 50);
	}
	return 0;
}

int assay_kafka_ensure_topics(const char *brokers, const char *const *topics, size_t ntopics,
                              int partitions, int replication_factor, const char *const *configs,
                              int timeout_ms, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	int *created = NULL;
	int64_t deadline;
	char rderr[512];
	size_t i;
	int rc;

	if (topics == NULL || ntopics == 0 || timeout_ms <= 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "kafka create topics: no topics or no timeout given");
	for (i = 0; i < ntopics; i++)
		if (topics[i] == NULL || *topics[i] == '\0')
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "kafka create topics: empty topic name");
	deadline = now_ms() + timeout_ms;

	created = calloc(ntopics, sizeof(*created));
	if (created == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "kafka create topics: out of memory");
		goto out;
	}
	conf = assay_kafka_conf_new(brokers, errstr, errstr_size);
	if (conf == NULL) {
		rc = ASSAY_ERR_FATAL;
		goto out;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
	if (rk == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "kafka create topics: %s",
		                rderr);
		goto out;
	}
	conf = NULL; /* owned by rk now */

	rc = create_topics(rk, topics, ntopics, partitions, replication_factor, configs, deadline,
	                   created, errstr, errstr_size);
	if (rc != 0)
		goto out;
	rc = wait_topics(rk, topics, ntopics, partitions, created, deadline, errstr, errstr_size);
out:
	if (rk != NULL)
		rd_kafka_destroy(rk);
	if (conf != NULL)
		rd_kafka_conf_destroy(conf);
	free(created);
	return rc;
}

/* Reads max.message.bytes from one DescribeConfigs result resource into *out. */
static void topic_limit_from(const rd_kafka_ConfigResource_t *res, int64_t *out)
{
	const rd_kafka_ConfigEntry_t **entries;
	size_t n;

	if (rd_kafka_ConfigResource_error(res) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	entries = rd_kafka_ConfigResource_configs(res, &n);
	for (size_t i = 0; i < n; i++) {
		const char *value = rd_kafka_ConfigEntry_value(entries[i]);

		if (value != NULL &&
		    strcmp(rd_kafka_ConfigEntry_name(entries[i]), "max.message.bytes") == 0) {
			char *end;
			long long v = strtoll(value, &end, 10);

			if (*end == '\0' && v > 0)
				*out = v;
		}
	}
}

int assay_kafka_topic_max_bytes(const char *brokers, const char *const *topics, size_t ntopics,
                                int64_t *limits, int timeout_ms, char *errstr, size_t errstr_size)
{
	rd_kafka_ConfigResource_t **resources = NULL;
	rd_kafka_AdminOptions_t *options = NULL;
	rd_kafka_queue_t *queue = NULL;
	rd_kafka_event_t *event = NULL;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk = NULL;
	char rderr[512];
	int rc = 0;

	for (size_t i = 0; i < ntopics; i++)
		limits[i] = -1;
	if (ntopics == 0)
		return 0;
	conf = assay_kafka_conf_new(brokers, errstr, errstr_size);
	if (conf == NULL)
		return ASSAY_ERR_FATAL;
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "kafka describe configs: %s", rderr);
	}
	resources = calloc(ntopics, sizeof(*resources));
	queue = rd_kafka_queue_new(rk);
	options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
	if (resources == NULL || queue == NULL || options == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "kafka describe configs: out of memory");
		goto out;
	}
	rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, rderr, sizeof(rderr));
	for (size_t i = 0; i < ntopics; i++)
		resources[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topics[i]);
	rd_kafka_DescribeConfigs(rk, resources, ntopics, options, queue);
	event = rd_kafka_queue_poll(queue, timeout_ms + 1000);
	if (event == NULL || rd_kafka_event_error(event)) {
		rc = assay_errf(event ? assay_kafka_classify(rd_kafka_event_error(event))
		                      : ASSAY_ERR_RETRY,
		                errstr, errstr_size, "kafka describe configs: %s",
		                event ? rd_kafka_event_error_string(event) : "no answer in time");
		goto out;
	}
	{
		const rd_kafka_DescribeConfigs_result_t *result =
		        rd_kafka_event_DescribeConfigs_result(event);
		const rd_kafka_ConfigResource_t **res;
		size_t nres = 0;

		res = result ? rd_kafka_DescribeConfigs_result_resources(result, &nres) : NULL;
		for (size_t r = 0; r < nres; r++)
			for (size_t i = 0; i < ntopics; i++)
				if (strcmp(rd_kafka_ConfigResource_name(res[r]), topics[i]) == 0)
					topic_limit_from(res[r], &limits[i]);
	}
out:
	if (event)
		rd_kafka_event_destroy(event);
	if (resources) {
		for (size_t i = 0; i < ntopics; i++)
			if (resources[i])
				rd_kafka_ConfigResource_destroy(resources[i]);
		free(resources);
	}
	if (options)
		rd_kafka_AdminOptions_destroy(options);
	if (queue)
		rd_kafka_queue_destroy(queue);
	rd_kafka_destroy(rk);
	return rc;
}
