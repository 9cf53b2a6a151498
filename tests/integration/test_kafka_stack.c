/*
 * Proves the local Kafka stack is real with librdkafka 2.0.2: an idempotent producer whose
 * 1,000 messages come back exactly and in order; a transactional producer whose aborted batch
 * is in the log yet invisible to read_committed (and visible to read_uncommitted, so the check
 * can fail); abortable and fencing errors classified by assay_kafka; and a two-member consumer
 * group that splits four partitions and hands them all to the survivor when one leaves. Each
 * test uses its own topics; every wait is bounded.
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC_SIZE 128
#define WAIT_MS    30000

/* Delivery report tally, the producer's opaque. */
struct delivery {
	int ok;
	int failed;
	rd_kafka_resp_err_t first_err;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	struct delivery *dr = opaque;

	(void)rk;
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		dr->ok++;
		return;
	}
	if (dr->failed++ == 0)
		dr->first_err = msg->err;
}

/* Produces "<prefix>-<first..first+count-1>" to partition, serving delivery reports. */
static void produce_range(rd_kafka_t *rk, const char *topic, int32_t partition, const char *prefix,
                          int first, int count)
{
	char payload[64];
	rd_kafka_resp_err_t err;
	int i, len;

	for (i = first; i < first + count; i++) {
		len = snprintf(payload, sizeof(payload), "%s-%d", prefix, i);
		do {
			err = rd_kafka_producev(
			        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
			        RD_KAFKA_V_VALUE(payload, (size_t)len),
			        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
			if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(rk, 10);
		} while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			fail_msg("produce %s: %s", payload, rd_kafka_err2str(err));
		rd_kafka_poll(rk, 0);
	}
}

/* assay_err_name, plus "abort" for ASSAY_KAFKA_ABORT. */
static const char *outcome_name(int rc)
{
	return rc == ASSAY_KAFKA_ABORT ? "abort" : assay_err_name(rc);
}

/* Fails the test with the error's text when error is not NULL; destroys it. */
static void txn_ok(rd_kafka_error_t *error, const char *what)
{
	if (error == NULL)
		return;
	fail_msg("%s: %s (%s)", what, rd_kafka_error_string(error),
	         outcome_name(assay_kafka_classify_error(error)));
}

/* A consumer assigned to every partition of topic from the beginning, reporting EOF. */
static rd_kafka_t *assigned_consumer(const char *topic, int npartitions, const char *isolation)
{
	char group[TOPIC_SIZE];
	const char *conf[] = {
	        "group.id",
	        group,
	        "enable.partition.eof",
	        "true",
	        "enable.auto.commit",
	        "false",
	        "auto.offset.reset",
	        "earliest",
	        "isolation.level",
	        isolation,
	        NULL,
	};
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_resp_err_t err;
	rd_kafka_t *rk;
	int p;

	assay_test_unique(group, sizeof(group), "assay-test-reader");
	rk = assay_test_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, NULL);
	parts = rd_kafka_topic_partition_list_new(npartitions);
	for (p = 0; p < npartitions; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
		        RD_KAFKA_OFFSET_BEGINNING;
	err = rd_kafka_assign(rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		fail_msg("assign %s: %s", topic, rd_kafka_err2str(err));
	return rk;
}

typedef void (*on_message_fn)(const rd_kafka_message_t *msg, const char *payload, void *arg);

/* Polls until every partition (< 64) has reported EOF, handing each message to on_message
 * with its payload as a string. Returns the number of messages. */
static int drain(rd_kafka_t *rk, int npartitions, on_message_fn on_message, void *arg)
{
	int64_t deadline = assay_test_now_ms() + WAIT_MS;
	uint64_t eof = 0, all = (UINT64_C(1) << npartitions) - 1;
	rd_kafka_message_t *msg;
	char payload[256];
	int count = 0;
	size_t len;

	while (eof != all) {
		if (assay_test_now_ms() > deadline)
			fail_msg("no end of partition after %d ms (eof mask %llx, %d messages)",
			         WAIT_MS, (unsigned long long)eof, count);
		msg = rd_kafka_consumer_poll(rk, 100);
		if (msg == NULL)
			continue;
		if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			eof |= UINT64_C(1) << msg->partition;
		} else if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			char text[256];

			snprintf(text, sizeof(text), "%s", rd_kafka_message_errstr(msg));
			rd_kafka_message_destroy(msg);
			fail_msg("consume: %s", text);
		} else {
			len = msg->len < sizeof(payload) - 1 ? msg->len : sizeof(payload) - 1;
			memcpy(payload, msg->payload, len);
			payload[len] = '\0';
			count++;
			on_message(msg, payload, arg);
		}
		rd_kafka_message_destroy(msg);
	}
	return count;
}

static void close_consumer(rd_kafka_t *rk)
{
	rd_kafka_resp_err_t err = rd_kafka_consumer_close(rk);

	rd_kafka_destroy(rk);
	assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* ---- topic creation ------------------------------------------------------------------- */

/* Two new topics are created and usable at once; a second call on existing topics succeeds;
 * a name the broker refuses is fatal and named in the message. */
static void test_ensure_topics(void **state)
{
	char first[TOPIC_SIZE], second[TOPIC_SIZE], errstr[512];
	const char *topics[2] = {first, second};
	const char *bad[1] = {"assay test bad name"};
	const char *conf[] = {"group.id", "assay-test-unused", NULL};
	rd_kafka_t *rk;
	int64_t low, high;
	int i, rc;

	(void)state;
	assay_test_unique(first, sizeof(first), "assay-test-ensure");
	assay_test_unique(second, sizeof(second), "assay-test-ensure");
	for (i = 0; i < 2; i++) {
		rc = assay_kafka_ensure_topics(assay_test_brokers(), topics, 2, 2, 1, NULL, 20000,
		                               errstr, sizeof(errstr));
		if (rc != 0)
			fail_msg("ensure topics, call %d: %s: %s", i + 1, assay_err_name(rc),
			         errstr);
	}

	/* metadata already settled: both partitions of both topics answer right away */
	rk = assay_test_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, NULL);
	for (i = 0; i < 4; i++) {
		assert_int_equal(
		        assay_kafka_watermarks(rk, topics[i / 2], i % 2, &low, &high, 5000), 0);
		assert_int_equal(low, 0);
		assert_int_equal(high, 0);
	}
	/* a partition the topic does not have: not there yet, as far as the client can tell */
	assert_int_equal(assay_kafka_watermarks(rk, first, 7, &low, &high, 2000), ASSAY_ERR_RETRY);
	close_consumer(rk);

	errstr[0] = '\0';
	rc = assay_kafka_ensure_topics(assay_test_brokers(), bad, 1, 1, 1, NULL, 10000, errstr,
	                               sizeof(errstr));
	assert_int_equal(rc, ASSAY_ERR_FATAL);
	assert_non_null(strstr(errstr, "kafka create topic assay test bad name: "));
}

/* ---- idempotent producer -------------------------------------------------------------- */

#define IDEMP_PARTITIONS 3
#define IDEMP_MESSAGES   1000

struct idemp_check {
	int next[IDEMP_PARTITIONS];      /* next expected message number per partition */
	int64_t count[IDEMP_PARTITIONS]; /* messages seen per partition = next offset */
};

static void check_idemp(const rd_kafka_message_t *msg, const char *payload, void *arg)
{
	struct idemp_check *check = arg;
	int32_t p = msg->partition;
	char *end;
	long n;

	assert_in_range(p, 0, IDEMP_PARTITIONS - 1);
	assert_memory_equal(payload, "msg-", 4);
	n = strtol(payload + 4, &end, 10);
	assert_true(*end == '\0');
	if (n != check->next[p])
		fail_msg("partition %d: got msg-%ld, want msg-%d", (int)p, n, check->next[p]);
	/* one copy of each message, no gaps: offsets run 0, 1, 2, ... */
	assert_int_equal(msg->offset, check->count[p]);
	check->next[p] += IDEMP_PARTITIONS;
	check->count[p]++;
}

static void test_idempotent_producer(void **state)
{
	char topic[TOPIC_SIZE], value[16];
	const char *conf[] = {"enable.idempotence", "true", "linger.ms", "5", "acks", "all", NULL};
	struct delivery dr = {0};
	struct idemp_check check;
	rd_kafka_t *producer, *consumer;
	int64_t low, high;
	size_t size = sizeof(value);
	int i, n;

	(void)state;
	assay_test_kafka_topic(topic, sizeof(topic), "assay-test-idemp", IDEMP_PARTITIONS);
	producer = assay_test_kafka_new(RD_KAFKA_PRODUCER, conf, &dr, on_delivery);
	assert_int_equal(
	        rd_kafka_conf_get(rd_kafka_conf(producer), "enable.idempotence", value, &size),
	        RD_KAFKA_CONF_OK);
	assert_string_equal(value, "true");

	for (i = 0; i < IDEMP_MESSAGES; i++)
		produce_range(producer, topic, i % IDEMP_PARTITIONS, "msg", i, 1);
	assert_int_equal(rd_kafka_flush(producer, WAIT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_destroy(producer);
	if (dr.failed != 0)
		fail_msg("%d deliveries failed, first: %s", dr.failed,
		         rd_kafka_err2str(dr.first_err));
	assert_int_equal(dr.ok, IDEMP_MESSAGES);

	for (i = 0; i < IDEMP_PARTITIONS; i++) {
		check.next[i] = i;
		check.count[i] = 0;
	}
	consumer = assigned_consumer(topic, IDEMP_PARTITIONS, "read_committed");
	n = drain(consumer, IDEMP_PARTITIONS, check_idemp, &check);
	assert_int_equal(n, IDEMP_MESSAGES);
	for (i = 0; i < IDEMP_PARTITIONS; i++) {
		/* every message of this partition arrived: the next one would be >= 1000 */
		assert_in_range(check.next[i], IDEMP_MESSAGES,
		                IDEMP_MESSAGES + IDEMP_PARTITIONS - 1);
		assert_int_equal(assay_kafka_watermarks(consumer, topic, i, &low, &high, 10000), 0);
		assert_int_equal(low, 0);
		assert_int_equal(high, check.count[i]);
	}
	close_consumer(consumer);
}

/* ---- transactions --------------------------------------------------------------------- */

#define TXN_BATCH 100
#define TXN_AFTER 10

struct txn_check {
	int committed; /* "committed-N" seen, in order */
	int aborted;   /* "aborted-N" seen, in order */
	int other;
};

static void check_txn(const rd_kafka_message_t *msg, const char *payload, void *arg)
{
	struct txn_check *check = arg;
	char want[64];

	(void)msg;
	if (strncmp(payload, "committed-", 10) == 0) {
		snprintf(want, sizeof(want), "committed-%d", check->committed++);
		assert_string_equal(payload, want);
	} else if (strncmp(payload, "aborted", 7) == 0) {
		snprintf(want, sizeof(want), "aborted-%d", check->aborted++);
		assert_string_equal(payload, want);
	} else {
		check->other++;
	}
}

static rd_kafka_t *txn_producer(const char *txid, struct delivery *dr)
{
	const char *conf[] = {"transactional.id", txid, "transaction.timeout.ms", "10000", NULL};
	rd_kafka_t *rk = assay_test_kafka_new(RD_KAFKA_PRODUCER, conf, dr, on_delivery);

	txn_ok(rd_kafka_init_transactions(rk, WAIT_MS), "init transactions");
	return rk;
}

static void test_transactions_hide_aborted(void **state)
{
	char topic[TOPIC_SIZE], txid[TOPIC_SIZE];
	struct delivery dr = {0};
	struct txn_check committed = {0}, uncommitted = {0};
	rd_kafka_t *producer, *consumer;
	int64_t low, high, deadline;
	int n;

	(void)state;
	assay_test_kafka_topic(topic, sizeof(topic), "assay-test-txn", 1);
	assay_test_unique(txid, sizeof(txid), "assay-test-txid");
	producer = txn_producer(txid, &dr);

	txn_ok(rd_kafka_begin_transaction(producer), "begin 1");
	produce_range(producer, topic, 0, "committed", 0, TXN_BATCH);
	txn_ok(rd_kafka_commit_transaction(producer, -1), "commit 1");
	assert_int_equal(dr.ok, TXN_BATCH);

	txn_ok(rd_kafka_begin_transaction(producer), "begin 2");
	produce_range(producer, topic, 0, "aborted", 0, TXN_BATCH);
	/* make sure the aborted records reach the log: abort alone would purge them unsent */
	assert_int_equal(rd_kafka_flush(producer, WAIT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(dr.ok, 2 * TXN_BATCH);
	txn_ok(rd_kafka_abort_transaction(producer, -1), "abort 2");

	txn_ok(rd_kafka_begin_transaction(producer), "begin 3");
	produce_range(producer, topic, 0, "committed", TXN_BATCH, TXN_AFTER);
	txn_ok(rd_kafka_commit_transaction(producer, -1), "commit 3");
	rd_kafka_destroy(producer);
	assert_int_equal(dr.failed, 0);
	assert_int_equal(dr.ok, 2 * TXN_BATCH + TXN_AFTER);

	consumer = assigned_consumer(topic, 1, "read_committed");
	/* commit_transaction returns once the coordinator has logged the commit; the markers
	 * reach the partition a moment later, and until then the last stable offset (the "high"
	 * a read_committed client sees) stops before the last batch. Wait until all 210 records
	 * and the 3 transaction markers are stable, or a read_committed reader would stop short. */
	deadline = assay_test_now_ms() + WAIT_MS;
	do {
		assert_int_equal(assay_kafka_watermarks(consumer, topic, 0, &low, &high, 10000), 0);
		if (high == 2 * TXN_BATCH + TXN_AFTER + 3 || assay_test_now_ms() > deadline)
			break;
		rd_kafka_poll(consumer, 20);
	} while (1);
	assert_int_equal(low, 0);
	assert_int_equal(high, 2 * TXN_BATCH + TXN_AFTER + 3);
	n = drain(consumer, 1, check_txn, &committed);
	close_consumer(consumer);
	assert_int_equal(committed.aborted, 0);
	assert_int_equal(committed.other, 0);
	assert_int_equal(committed.committed, TXN_BATCH + TXN_AFTER);
	assert_int_equal(n, TXN_BATCH + TXN_AFTER);

	/* the same log read uncommitted does show the aborted batch: the check above can fail */
	consumer = assigned_consumer(topic, 1, "read_uncommitted");
	n = drain(consumer, 1, check_txn, &uncommitted);
	close_consumer(consumer);
	assert_int_equal(uncommitted.aborted, TXN_BATCH);
	assert_int_equal(uncommitted.committed, TXN_BATCH + TXN_AFTER);
	assert_int_equal(n, 2 * TXN_BATCH + TXN_AFTER);
}

/* A record the broker refuses makes the transaction abortable: ASSAY_KAFKA_ABORT, and after
 * rd_kafka_abort_transaction the same producer commits again. */
static void test_transaction_abortable_error(void **state)
{
	const char *topic_configs[] = {"max.message.bytes", "1024", NULL};
	char topic[TOPIC_SIZE], txid[TOPIC_SIZE], errstr[512], big[4096];
	const char *topics[1] = {topic};
	struct delivery dr = {0};
	rd_kafka_error_t *error;
	rd_kafka_t *producer;
	rd_kafka_resp_err_t err;
	int64_t deadline;
	int rc, attempt;

	(void)state;
	assay_test_unique(topic, sizeof(topic), "assay-test-abortable");
	rc = assay_kafka_ensure_topics(assay_test_brokers(), topics, 1, 1, 1, topic_configs, 20000,
	                               errstr, sizeof(errstr));
	if (rc != 0)
		fail_msg("ensure topic: %s", errstr);
	assay_test_unique(txid, sizeof(txid), "assay-test-txid");
	producer = txn_producer(txid, &dr);

	memset(big, 'x', sizeof(big));
	txn_ok(rd_kafka_begin_transaction(producer), "begin");
	err = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
	                        RD_KAFKA_V_VALUE(big, sizeof(big)),
	                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
	error = rd_kafka_commit_transaction(producer, -1);
	assert_non_null(error);
	rc = assay_kafka_classify_error(error);
	if (rc != ASSAY_KAFKA_ABORT)
		fail_msg("commit of a refused record: %s classified %s, want abort",
		         rd_kafka_error_string(error), outcome_name(rc));
	rd_kafka_error_destroy(error);
	/* the record itself is what the broker refused: reject it */
	deadline = assay_test_now_ms() + WAIT_MS;
	while (dr.failed == 0 && assay_test_now_ms() < deadline)
		rd_kafka_poll(producer, 100);
	assert_int_equal(dr.failed, 1);
	assert_int_equal(assay_kafka_classify(dr.first_err), ASSAY_ERR_REJECT);

	txn_ok(rd_kafka_abort_transaction(producer, -1), "abort");

	/* librdkafka 2.0.2 keeps the refused record's sequence number, so the next transaction
	 * fails with OUT_OF_ORDER_SEQUENCE_NUMBER ("requires epoch bump"), abortable again; the
	 * abort bumps the epoch and the one after succeeds. A caller loops on ASSAY_KAFKA_ABORT. */
	for (attempt = 1;; attempt++) {
		if (attempt > 3)
			fail_msg("no commit after %d abort-and-retry rounds", attempt - 1);
		txn_ok(rd_kafka_begin_transaction(producer), "begin again");
		produce_range(producer, topic, 0, "committed", 0, 1);
		error = rd_kafka_commit_transaction(producer, -1);
		if (error == NULL)
			break;
		rc = assay_kafka_classify_error(error);
		if (rc != ASSAY_KAFKA_ABORT)
			fail_msg("commit after abort: %s classified %s, want abort",
			         rd_kafka_error_string(error), outcome_name(rc));
		rd_kafka_error_destroy(error);
		txn_ok(rd_kafka_abort_transaction(producer, -1), "abort again");
	}
	print_message("committed again on attempt %d\n", attempt);
	assert_int_equal(dr.ok, 1);
	rd_kafka_destroy(producer);
}

/* A second producer with the same transactional.id fences the first: FATAL. */
static void test_transaction_fenced(void **state)
{
	char topic[TOPIC_SIZE], txid[TOPIC_SIZE], errstr[512];
	struct delivery dr_old = {0}, dr_new = {0};
	rd_kafka_t *old_producer, *new_producer;
	rd_kafka_error_t *error;
	rd_kafka_resp_err_t err;

	(void)state;
	assay_test_kafka_topic(topic, sizeof(topic), "assay-test-fenced", 1);
	assay_test_unique(txid, sizeof(txid), "assay-test-txid");
	old_producer = txn_producer(txid, &dr_old);
	new_producer = txn_producer(txid, &dr_new);

	error = rd_kafka_begin_transaction(old_producer);
	if (error == NULL) {
		produce_range(old_producer, topic, 0, "zombie", 0, 1);
		error = rd_kafka_commit_transaction(old_producer, WAIT_MS);
	}
	assert_non_null(error);
	assert_int_equal(assay_kafka_classify_error(error), ASSAY_ERR_FATAL);
	rd_kafka_error_destroy(error);
	err = rd_kafka_fatal_error(old_producer, errstr, sizeof(errstr));
	assert_int_equal(assay_kafka_classify(err), ASSAY_ERR_FATAL);
	rd_kafka_destroy(old_producer);

	/* the new producer owns the transactional.id */
	txn_ok(rd_kafka_begin_transaction(new_producer), "begin new");
	produce_range(new_producer, topic, 0, "committed", 0, 1);
	txn_ok(rd_kafka_commit_transaction(new_producer, -1), "commit new");
	assert_int_equal(dr_new.ok, 1);
	rd_kafka_destroy(new_producer);
}

/* ---- consumer group ------------------------------------------------------------------- */

#define GROUP_PARTITIONS 4

/* Bit p set for each partition p of topic in the consumer's assignment; *count gets the
 * number of entries (of any topic). */
static unsigned assignment_mask(rd_kafka_t *rk, const char *topic, int *count)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	rd_kafka_resp_err_t err;
	unsigned mask = 0;
	int i;

	err = rd_kafka_assignment(rk, &parts);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		fail_msg("assignment: %s", rd_kafka_err2str(err));
	*count = parts->cnt;
	for (i = 0; i < parts->cnt; i++)
		if (strcmp(parts->elems[i].topic, topic) == 0 && parts->elems[i].partition >= 0 &&
		    parts->elems[i].partition < 32)
			mask |= 1u << parts->elems[i].partition;
	rd_kafka_topic_partition_list_destroy(parts);
	return mask;
}

/* One poll round; a message (there should be none) or event is destroyed at once. */
static void poll_once(rd_kafka_t *rk)
{
	rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 100);

	if (msg != NULL)
		rd_kafka_message_destroy(msg);
}

static rd_kafka_t *group_member(const char *group, const char *topic)
{
	const char *conf[] = {
	        "group.id",
	        group,
	        "partition.assignment.strategy",
	        "range",
	        "session.timeout.ms",
	        "6000",
	        "heartbeat.interval.ms",
	        "500",
	        "enable.auto.commit",
	        "false",
	        "auto.offset.reset",
	        "earliest",
	        NULL,
	};
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t err;
	rd_kafka_t *rk;

	rk = assay_test_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, NULL);
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		fail_msg("subscribe %s: %s", topic, rd_kafka_err2str(err));
	return rk;
}

static void test_consumer_group_splits_partitions(void **state)
{
	const unsigned all = (1u << GROUP_PARTITIONS) - 1;
	char topic[TOPIC_SIZE], group[TOPIC_SIZE];
	rd_kafka_t *first, *second;
	unsigned mask1 = 0, mask2 = 0;
	int count1 = 0, count2 = 0;
	int64_t deadline, started;

	(void)state;
	assay_test_kafka_topic(topic, sizeof(topic), "assay-test-group", GROUP_PARTITIONS);
	assay_test_unique(group, sizeof(group), "assay-test-group");
	first = group_member(group, topic);
	second = group_member(group, topic);

	started = assay_test_now_ms();
	deadline = started + WAIT_MS;
	while (count1 == 0 || count2 == 0) {
		if (assay_test_now_ms() > deadline)
			fail_msg("no assignment for both members after %d ms (%d and %d)", WAIT_MS,
			         count1, count2);
		poll_once(first);
		poll_once(second);
		mask1 = assignment_mask(first, topic, &count1);
		mask2 = assignment_mask(second, topic, &count2);
	}
	print_message("both members assigned after %lld ms: %x and %x\n",
	              (long long)(assay_test_now_ms() - started), mask1, mask2);
	assert_int_equal(mask1 & mask2, 0);
	assert_int_equal(mask1 | mask2, all);
	assert_int_equal(count1 + count2, GROUP_PARTITIONS);

	/* a member that leaves hands its partitions to the other at once */
	close_consumer(second);
	started = assay_test_now_ms();
	deadline = started + WAIT_MS;
	while (count1 != GROUP_PARTITIONS) {
		if (assay_test_now_ms() > deadline)
			fail_msg("survivor holds %d partitions after %d ms", count1, WAIT_MS);
		poll_once(first);
		mask1 = assignment_mask(first, topic, &count1);
	}
	print_message("survivor took all partitions after %lld ms\n",
	              (long long)(assay_test_now_ms() - started));
	assert_int_equal(mask1, all);
	close_consumer(first);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ensure_topics),
	        cmocka_unit_test(test_idempotent_producer),
	        cmocka_unit_test(test_transactions_hide_aborted),
	        cmocka_unit_test(test_transaction_abortable_error),
	        cmocka_unit_test(test_transaction_fenced),
	        cmocka_unit_test(test_consumer_group_splits_partitions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
