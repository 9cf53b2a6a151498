/*
 * The pure parts of assay_kafka: the error classification table, and configuration errors
 * that librdkafka reports without a broker.
 */
#include "assay_test.h"
#include "assay_kafka.h"

#include <string.h>

static void test_classify_table(void **state)
{
	static const struct {
		rd_kafka_resp_err_t err;
		int want;
	} cases[] = {
	        {RD_KAFKA_RESP_ERR_NO_ERROR, 0},
	        /* broker or coordinator away: retry */
	        {RD_KAFKA_RESP_ERR__TRANSPORT, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR__TIMED_OUT, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR__QUEUE_FULL, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR_NOT_COORDINATOR, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, ASSAY_ERR_RETRY},
	        {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, ASSAY_ERR_RETRY},
	        /* this record is bad: reject */
	        {RD_KAFKA_RESP_ERR__BAD_MSG, ASSAY_ERR_REJECT},
	        {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, ASSAY_ERR_REJECT},
	        {RD_KAFKA_RESP_ERR_INVALID_RECORD, ASSAY_ERR_REJECT},
	        /* fenced, fatal, misconfigured or unknown: stop */
	        {RD_KAFKA_RESP_ERR__FENCED, ASSAY_ERR_FATAL},
	        {RD_KAFKA_RESP_ERR_PRODUCER_FENCED, ASSAY_ERR_FATAL},
	        {RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, ASSAY_ERR_FATAL},
	        {RD_KAFKA_RESP_ERR__FATAL, ASSAY_ERR_FATAL},
	        {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, ASSAY_ERR_FATAL},
	        {RD_KAFKA_RESP_ERR__INVALID_ARG, ASSAY_ERR_FATAL},
	        {RD_KAFKA_RESP_ERR__STATE, ASSAY_ERR_FATAL},
	        {RD_KAFKA_RESP_ERR_UNKNOWN, ASSAY_ERR_FATAL},
	        {(rd_kafka_resp_err_t)4242, ASSAY_ERR_FATAL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = assay_kafka_classify(cases[i].err);

		if (got != cases[i].want)
			fail_msg("%s: got %s, want %s", rd_kafka_err2name(cases[i].err),
			         assay_err_name(got), assay_err_name(cases[i].want));
	}
}

static void test_abort_is_distinct(void **state)
{
	(void)state;
	assert_int_not_equal(ASSAY_KAFKA_ABORT, ASSAY_OK);
	assert_int_not_equal(ASSAY_KAFKA_ABORT, ASSAY_ERR_RETRY);
	assert_int_not_equal(ASSAY_KAFKA_ABORT, ASSAY_ERR_REJECT);
	assert_int_not_equal(ASSAY_KAFKA_ABORT, ASSAY_ERR_FENCED);
	assert_int_not_equal(ASSAY_KAFKA_ABORT, ASSAY_ERR_FATAL);
	assert_true(ASSAY_KAFKA_ABORT < 0);
}

/* Errors built with rd_kafka_error_new() carry no flags: only the code can decide, and an
 * unflagged transactional error is fatal (INTRODUCTION.md: "treat anything else as fatal"). */
static void test_classify_error_without_flags(void **state)
{
	rd_kafka_error_t *error;

	(void)state;
	assert_int_equal(assay_kafka_classify_error(NULL), 0);

	error = rd_kafka_error_new(RD_KAFKA_RESP_ERR_PRODUCER_FENCED, "fenced by %s", "test");
	assert_non_null(error);
	assert_int_equal(assay_kafka_classify_error(error), ASSAY_ERR_FATAL);
	rd_kafka_error_destroy(error);

	error = rd_kafka_error_new(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, "epoch");
	assert_int_equal(assay_kafka_classify_error(error), ASSAY_ERR_FATAL);
	rd_kafka_error_destroy(error);

	error = rd_kafka_error_new(RD_KAFKA_RESP_ERR__TIMED_OUT, "unflagged timeout");
	assert_int_equal(assay_kafka_classify_error(error), ASSAY_ERR_FATAL);
	rd_kafka_error_destroy(error);
}

static void test_conf_set_unknown_property_is_fatal(void **state)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];

	(void)state;
	errstr[0] = '\0';
	assert_int_equal(
	        assay_kafka_conf_set(conf, "no.such.property", "1", errstr, sizeof(errstr)),
	        ASSAY_ERR_FATAL);
	assert_non_null(strstr(errstr, "kafka config no.such.property: "));
	/* librdkafka's own text follows */
	assert_non_null(strstr(errstr, "No such configuration property"));

	errstr[0] = '\0';
	assert_int_equal(assay_kafka_conf_set(conf, "socket.timeout.ms", "not-a-number", errstr,
	                                      sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(errstr, "kafka config socket.timeout.ms: "));

	assert_int_equal(assay_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr)), 0);
	rd_kafka_conf_destroy(conf);
}

static void test_conf_new(void **state)
{
	rd_kafka_conf_t *conf;
	char errstr[256], value[256];
	size_t size;

	(void)state;
	errstr[0] = '\0';
	assert_null(assay_kafka_conf_new(NULL, errstr, sizeof(errstr)));
	assert_non_null(strstr(errstr, "no bootstrap brokers"));
	assert_null(assay_kafka_conf_new("", errstr, sizeof(errstr)));

	conf = assay_kafka_conf_new("127.0.0.1:1", errstr, sizeof(errstr));
	assert_non_null(conf);
	size = sizeof(value);
	assert_int_equal(rd_kafka_conf_get(conf, "bootstrap.servers", value, &size),
	                 RD_KAFKA_CONF_OK);
	assert_string_equal(value, "127.0.0.1:1");
	size = sizeof(value);
	assert_int_equal(rd_kafka_conf_get(conf, "api.version.request", value, &size),
	                 RD_KAFKA_CONF_OK);
	assert_string_equal(value, "true");
	rd_kafka_conf_destroy(conf);
}

static void test_ensure_topics_bad_arguments(void **state)
{
	const char *const topics[] = {""};
	char errstr[256];

	(void)state;
	assert_int_equal(assay_kafka_ensure_topics("127.0.0.1:1", NULL, 0, 1, 1, NULL, 1000, errstr,
	                                           sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	assert_int_equal(assay_kafka_ensure_topics("127.0.0.1:1", topics, 1, 1, 1, NULL, 1000,
	                                           errstr, sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(errstr, "empty topic name"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_classify_table),
	        cmocka_unit_test(test_abort_is_distinct),
	        cmocka_unit_test(test_classify_error_without_flags),
	        cmocka_unit_test(test_conf_set_unknown_property_is_fatal),
	        cmocka_unit_test(test_conf_new),
	        cmocka_unit_test(test_ensure_topics_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
