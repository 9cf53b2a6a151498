/*
 * The batch loop against the real broker and database: exactly-once effects and events,
 * dead letters, SIGKILLs at random moments, a database restart, and two instances sharing
 * the partitions of a topic.
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_test_loop.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PARTITIONS 4

struct runner {
	struct assay_loop_config cfg;
	struct assay_test_copy_handler h;
	struct assay_test_loop_thread t;
	volatile sig_atomic_t stop;
	const char *topics[1];
};

static void runner_start(struct runner *r, const char *service, const char *instance,
                         const char *url, const char *topic, const char *out, const char *dlq)
{
	struct assay_handler handler;

	memset(r, 0, sizeof(*r));
	r->topics[0] = topic;
	assay_test_copy_handler_init(&r->h, instance, out);
	handler = assay_test_copy_handler(&r->h);
	assay_test_loop_config(&r->cfg, service, instance, url, r->topics, dlq, &r->stop);
	assay_test_loop_thread_start(&r->t, &r->cfg, &handler);
}

static void runner_stop(struct runner *r)
{
	r->stop = 1;
	if (assay_test_loop_thread_join(&r->t) != 0)
		fail_msg("loop ended with %d: %s", r->t.rc, r->t.errstr);
	assay_test_copy_handler_release(&r->h);
}

/* Waits until loop_rows holds want rows (bounded); returns the row count. */
static long wait_rows(const char *url, long want, int timeout_ms)
{
	int64_t deadline = assay_test_now_ms() + timeout_ms;
	long rows = 0, distinct = 0;

	while (assay_test_now_ms() < deadline) {
		assay_test_loop_counts(url, &rows, &distinct);
		if (rows >= want)
			break;
		usleep(200 * 1000);
	}
	return rows;
}

struct fixture {
	char url[512];
	char in[128], out[128], dlq[128], service[128];
};

static void fixture_init(struct fixture *f, const char *name)
{
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "test_loop_%s", name);
	assay_test_pg_fresh_db(f->url, sizeof(f->url), prefix);
	assay_test_loop_schema(f->url);
	assay_test_kafka_topic(f->in, sizeof(f->in), "loop-in", PARTITIONS);
	assay_test_kafka_topic(f->out, sizeof(f->out), "loop-out", PARTITIONS);
	assay_test_kafka_topic(f->dlq, sizeof(f->dlq), "loop-dlq", 1);
	assay_test_unique(f->service, sizeof(f->service), "loop-svc");
}

static void fixture_release(struct fixture *f)
{
	assay_test_pg_drop_db(f->url);
}

static int compare_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every expected message exactly once: rows, outputs and event ids. skip: indexes that must
 * not appear (dead-lettered), ending with -1. */
static void assert_exactly_once(const struct fixture *f, int n, const int *skip)
{
	size_t count, expected = (size_t)n;
	long rows, distinct;
	struct assay_test_record *recs;
	const char **ids;
	char *seen = calloc((size_t)n, 1);

	for (const int *s = skip; s && *s >= 0; s++)
		expected--;
	assay_test_loop_counts(f->url, &rows, &distinct);
	assert_int_equal(rows, (long)expected);
	assert_int_equal(distinct, (long)expected);

	recs = assay_test_read_topic(f->out, "read_committed", expected, 3000, 60000, &count);
	assert_int_equal(count, expected);
	ids = calloc(count ? count : 1, sizeof(*ids));
	for (size_t i = 0; i < count; i++) {
		int idx = -1;

		assert_int_equal(sscanf(recs[i].value, "out:msg-%d", &idx), 1);
		assert_true(idx >= 0 && idx < n);
		assert_int_equal(seen[idx], 0); /* no duplicate */
		seen[idx] = 1;
		assert_non_null(recs[i].event_id);
		ids[i] = recs[i].event_id;
	}
	qsort(ids, count, sizeof(*ids), compare_str);
	for (size_t i = 1; i < count; i++)
		assert_string_not_equal(ids[i - 1], ids[i]); /* event ids are unique */
	free(ids);
	assay_test_records_free(recs, count);
	free(seen);
}

static void test_exactly_once_10k(void **state)
{
	struct fixture f;
	struct runner r;

	(void)state;
	fixture_init(&f, "once");
	assay_test_produce(f.in, 0, 10000, NULL, NULL);
	runner_start(&r, f.service, "a", f.url, f.in, f.out, f.dlq);
	assert_int_equal(wait_rows(f.url, 10000, 60000), 10000);
	runner_stop(&r);
	assert_exactly_once(&f, 10000, NULL);
	fixture_release(&f);
}

static void test_poison_is_deadlettered(void **state)
{
	static const int poison[] = {50, -1}, dbreject[] = {70, -1}, skip[] = {50, 70, -1};
	struct fixture f;
	struct runner r;
	struct assay_test_record *dead;
	size_t ndead;
	bool saw_poison = false, saw_dbreject = false;

	(void)state;
	fixture_init(&f, "poison");
	assay_test_produce(f.in, 0, 100, poison, dbreject);
	runner_start(&r, f.service, "a", f.url, f.in, f.out, f.dlq);
	assert_int_equal(wait_rows(f.url, 98, 60000), 98);
	runner_stop(&r);
	assert_exactly_once(&f, 100, skip);

	dead = assay_test_read_topic(f.dlq, "read_committed", 2, 2000, 30000, &ndead);
	assert_int_equal(ndead, 2);
	for (size_t i = 0; i < ndead; i++) {
		const struct assay_header *topic =
		        assay_headers_find(&dead[i].headers, "assay.dlq.topic");
		const struct assay_header *stage =
		        assay_headers_find(&dead[i].headers, "assay.dlq.stage");
		const struct assay_header *cls =
		        assay_headers_find(&dead[i].headers, "assay.dlq.error.class");
		const struct assay_header *msg =
		        assay_headers_find(&dead[i].headers, "assay.dlq.error.message");

		assert_non_null(assay_headers_find(&dead[i].headers, "assay.dlq.partition"));
		assert_non_null(assay_headers_find(&dead[i].headers, "assay.dlq.offset"));
		assert_non_null(topic);
		assert_non_null(stage);
		assert_non_null(cls);
		assert_non_null(msg);
		assert_memory_equal(topic->value, f.in, strlen(f.in));
		assert_memory_equal(stage->value, "loop-test", 9);
		assert_memory_equal(cls->value, "reject", 6);
		if (strcmp(dead[i].value, "poison") == 0) {
			/* the original bytes and key, and the handler's reason */
			assert_string_equal(dead[i].key, "k-50");
			assert_memory_equal(msg->value, "poison message", 14);
			saw_poison = true;
		} else if (strcmp(dead[i].value, "dbreject") == 0) {
			/* refused by the database: its message names the constraint */
			assert_string_equal(dead[i].key, "k-70");
			assert_non_null(memmem(msg->value, msg->size, "check constraint", 16));
			saw_dbreject = true;
		}
	}
	assert_true(saw_poison);
	assert_true(saw_dbreject);
	assay_test_records_free(dead, ndead);
	fixture_release(&f);
}

/* ---- the loop as a child process, for SIGKILL ---- */

static volatile sig_atomic_t child_stop;

static void on_term(int sig)
{
	(void)sig;
	child_stop = 1;
}

static int child_main(void)
{
	struct assay_loop_config cfg;
	struct assay_test_copy_handler h;
	struct assay_handler handler;
	struct assay_loop *loop;
	const char *topic = getenv("ASSAY_TEST_CHILD_TOPIC");
	char errstr[512];
	int rc;

	signal(SIGTERM, on_term);
	assay_test_copy_handler_init(&h, "child", getenv("ASSAY_TEST_CHILD_OUT"));
	handler = assay_test_copy_handler(&h);
	assay_test_loop_config(&cfg, getenv("ASSAY_TEST_CHILD_SERVICE"), "child",
	                       getenv("ASSAY_TEST_CHILD_PG"), &topic,
	                       getenv("ASSAY_TEST_CHILD_DLQ"), &child_stop);
	if (getenv("ASSAY_TEST_CHILD_HOLD")) { /* apply, but do not publish for 10 minutes */
		cfg.relay_interval_ms = 600000;
		cfg.relay_max_events = 1000000;
	}
	loop = assay_loop_new(&cfg, &handler, errstr, sizeof(errstr));
	if (loop == NULL) {
		fprintf(stderr, "child: %s\n", errstr);
		return 1;
	}
	rc = assay_loop_run(loop, errstr, sizeof(errstr));
	if (rc)
		fprintf(stderr, "child: %s\n", errstr);
	assay_loop_destroy(loop);
	assay_test_copy_handler_release(&h);
	return rc ? 1 : 0;
}

/* hold: the child applies but does not publish (its events stay in the outbox) */
static pid_t spawn_child_holding(const struct fixture *f, bool hold)
{
	static const char *const argv[] = {"test_loop", "--child", NULL};
	static const char *const inherit[] = {"ASSAY_", NULL}; /* the whole environment */
	char v[5][600];
	const char *vars[] = {v[0], v[1], v[2], v[3], v[4], hold ? "ASSAY_TEST_CHILD_HOLD=1" : NULL,
	                      NULL};

	snprintf(v[0], sizeof(v[0]), "ASSAY_TEST_CHILD_TOPIC=%s", f->in);
	snprintf(v[1], sizeof(v[1]), "ASSAY_TEST_CHILD_OUT=%s", f->out);
	snprintf(v[2], sizeof(v[2]), "ASSAY_TEST_CHILD_DLQ=%s", f->dlq);
	snprintf(v[3], sizeof(v[3]), "ASSAY_TEST_CHILD_SERVICE=%s", f->service);
	snprintf(v[4], sizeof(v[4]), "ASSAY_TEST_CHILD_PG=%s", f->url);
	return assay_test_service_start("/proc/self/exe", argv, vars, inherit, -1);
}

static pid_t spawn_child(const struct fixture *f)
{
	return spawn_child_holding(f, false);
}

struct paced_producer {
	const char *topic;
	int total, per_round, pause_ms;
	pthread_t thread;
};

/* Produces total messages in rounds of per_round with a pause between, so that the kills of
 * the test land while messages are being applied and relayed. */
static void *paced_produce(void *arg)
{
	struct paced_producer *p = arg;

	for (int first = 0; first < p->total; first += p->per_round) {
		assay_test_produce(p->topic, first, p->per_round, NULL, NULL);
		usleep((useconds_t)p->pause_ms * 1000);
	}
	return NULL;
}

static void test_sigkill_at_random_moments(void **state)
{
	struct fixture f;
	struct paced_producer producer;
	int kills = 0;
	pid_t pid;

	(void)state;
	fixture_init(&f, "kill");
	producer = (struct paced_producer){
	        .topic = f.in, .total = 30000, .per_round = 1000, .pause_ms = 400};
	assert_int_equal(pthread_create(&producer.thread, NULL, paced_produce, &producer), 0);
	srand((unsigned)time(NULL));
	while (kills < 6) {
		long rows, distinct;

		pid = spawn_child(&f);
		/* between 1.5 and 4 s: joining the group, applying, relaying, or in between */
		usleep((useconds_t)(1500 + rand() % 2500) * 1000);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(assay_test_service_wait(pid), -1); /* ended by the signal */
		kills++;
		assay_test_loop_counts(f.url, &rows, &distinct);
		assert_int_equal(rows, distinct); /* never a duplicate, even mid-run */
	}
	pthread_join(producer.thread, NULL);
	pid = spawn_child(&f);
	wait_rows(f.url, 30000, 120000);
	assert_int_equal(assay_test_service_stop(pid), 0);
	assert_exactly_once(&f, 30000, NULL);
	fixture_release(&f);
}

/*
 * The recovery path on its own: a child applies 5,000 messages but publishes at most its
 * first batch (the other events wait in the outbox) and is killed; the next one must publish
 * exactly those events from the outbox before new ones, and delete the outbox rows once Kafka holds
 * them.
 */
static void test_outbox_published_after_kill(void **state)
{
	struct fixture f;
	struct assay_test_record *recs;
	size_t count;
	pid_t pid;

	(void)state;
	fixture_init(&f, "outbox");
	assay_test_produce(f.in, 0, 5000, NULL, NULL);
	pid = spawn_child_holding(&f, true);
	assert_int_equal(wait_rows(f.url, 5000, 60000), 5000);
	assert_true(assay_test_pg_scalar(f.url, "SELECT count(*) FROM assay_outbox") > 0);
	/* held: the first batch may be published at once, the rest waits in the outbox */
	recs = assay_test_read_topic(f.out, "read_committed", 5000, 1000, 3000, &count);
	assay_test_records_free(recs, count);
	assert_true(count <= 1000);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(assay_test_service_wait(pid), -1);

	pid = spawn_child(&f);
	recs = assay_test_read_topic(f.out, "read_committed", 5000, 3000, 60000, &count);
	assay_test_records_free(recs, count);
	assert_int_equal(count, 5000);
	/* a later batch deletes the rows Kafka holds */
	assay_test_produce(f.in, 5000, 1000, NULL, NULL);
	assert_int_equal(wait_rows(f.url, 6000, 60000), 6000);
	assay_test_pg_wait(f.url, "SELECT count(*) FROM assay_outbox WHERE first_offset = 0", 0,
	                   30000);
	assert_int_equal(assay_test_service_stop(pid), 0);
	assert_exactly_once(&f, 6000, NULL);
	fixture_release(&f);
}

static void stack(const char *what)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s/compose/stack %s >/dev/null", ASSAY_SOURCE_DIR, what);
	assert_int_equal(system(cmd), 0);
}

static void test_database_restart(void **state)
{
	struct fixture f;
	struct runner r;

	(void)state;
	fixture_init(&f, "pgrestart");
	runner_start(&r, f.service, "a", f.url, f.in, f.out, f.dlq);
	assay_test_produce(f.in, 0, 5000, NULL, NULL);
	assert_true(wait_rows(f.url, 1, 60000) >= 1);
	stack("pg-stop");
	assay_test_produce(f.in, 5000, 5000, NULL, NULL); /* arrives while the database is down */
	sleep(2);
	stack("pg-start");
	assert_int_equal(wait_rows(f.url, 10000, 90000), 10000);
	runner_stop(&r);
	assert_exactly_once(&f, 10000, NULL);
	fixture_release(&f);
}

static void test_broker_restart(void **state)
{
	struct fixture f;
	struct runner r;

	(void)state;
	fixture_init(&f, "kafkarestart");
	runner_start(&r, f.service, "a", f.url, f.in, f.out, f.dlq);
	assay_test_produce(f.in, 0, 5000, NULL, NULL);
	assert_true(wait_rows(f.url, 1, 60000) >= 1);
	/* the broker goes away while batches are applied and relayed: relay transactions
	 * fail, the outbox keeps what they did not publish */
	stack("kafka-stop");
	sleep(2);
	stack("kafka-start");
	assay_test_produce(f.in, 5000, 5000, NULL, NULL);
	assert_int_equal(wait_rows(f.url, 10000, 120000), 10000);
	runner_stop(&r);
	assert_exactly_once(&f, 10000, NULL);
	fixture_release(&f);
}

static long rows_of(const char *url, const char *instance)
{
	char errstr[512], sql[256];
	PGconn *conn = NULL;
	PGresult *res = NULL;
	long n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM loop_rows WHERE instance = '%s'",
	         instance);
	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr)))
		fail_msg("%s", errstr);
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(conn);
	return n;
}

/* Another owner moved the stored offsets (a zombie's commit, simulated by hand): the next
 * batch's compare-and-set fails, the loop rolls it back, has the handler reload its state,
 * re-seeks to what is stored and goes on without applying anything twice. */
static void test_offsets_moved_by_another_owner(void **state)
{
	struct fixture f;
	struct runner r;
	char sql[512];
	long moved;
	int before;

	(void)state;
	fixture_init(&f, "fenced");
	runner_start(&r, f.service, "a", f.url, f.in, f.out, f.dlq);
	assay_test_produce(f.in, 0, 100, NULL, NULL);
	assert_int_equal(wait_rows(f.url, 100, 60000), 100);
	before = r.h.assignments;
	snprintf(sql, sizeof(sql),
	         "UPDATE assay_offsets SET next_offset = next_offset + 50 "
	         "WHERE consumer_group = '%s'",
	         f.service);
	{
		PGconn *conn = NULL;
		char errstr[256];

		assert_int_equal(assay_pg_connect(f.url, &conn, errstr, sizeof(errstr)), 0);
		assay_test_pg_exec(conn, sql);
		moved = (long)assay_test_pg_int(conn, "SELECT count(*) FROM assay_offsets");
		PQfinish(conn);
	}
	assert_int_equal(moved, PARTITIONS);
	/* 400 more, about 100 per partition: the first 50 of each lie in the moved range */
	assay_test_produce(f.in, 100, 400, NULL, NULL);
	assert_int_equal(wait_rows(f.url, 300, 60000), 300);
	sleep(2); /* nothing else may arrive */
	runner_stop(&r);
	{
		long rows, distinct;

		assay_test_loop_counts(f.url, &rows, &distinct);
		assert_int_equal(rows, 300);
		assert_int_equal(distinct, 300);
	}
	assert_true(r.h.assignments > before); /* the handler was asked to reload */
	fixture_release(&f);
}

static void test_two_instances_share_and_hand_over(void **state)
{
	struct fixture f;
	struct runner a, b;
	int64_t deadline;

	(void)state;
	fixture_init(&f, "group");
	runner_start(&a, f.service, "a", f.url, f.in, f.out, f.dlq);
	runner_start(&b, f.service, "b", f.url, f.in, f.out, f.dlq);
	deadline = assay_test_now_ms() + 60000;
	while ((assay_loop_assigned(a.t.loop) == 0 || assay_loop_assigned(b.t.loop) == 0 ||
	        assay_loop_assigned(a.t.loop) + assay_loop_assigned(b.t.loop) != PARTITIONS) &&
	       assay_test_now_ms() < deadline)
		usleep(100 * 1000);
	assert_true(assay_loop_assigned(a.t.loop) > 0);
	assert_true(assay_loop_assigned(b.t.loop) > 0);
	assert_int_equal(assay_loop_assigned(a.t.loop) + assay_loop_assigned(b.t.loop), PARTITIONS);

	assay_test_produce(f.in, 0, 5000, NULL, NULL);
	assert_int_equal(wait_rows(f.url, 5000, 60000), 5000);
	assert_true(rows_of(f.url, "a") > 0);
	assert_true(rows_of(f.url, "b") > 0);

	runner_stop(&a); /* leaves the group: b takes every partition */
	deadline = assay_test_now_ms() + 60000;
	while (assay_loop_assigned(b.t.loop) != PARTITIONS && assay_test_now_ms() < deadline)
		usleep(100 * 1000);
	assert_int_equal(assay_loop_assigned(b.t.loop), PARTITIONS);
	/* the handler was told of the new assignment, to reload its state */
	assert_true(b.h.assignments >= 2);
	assert_int_equal(b.h.partitions, PARTITIONS);
	assay_test_produce(f.in, 5000, 5000, NULL, NULL);
	assert_int_equal(wait_rows(f.url, 10000, 60000), 10000);
	runner_stop(&b);
	assert_exactly_once(&f, 10000, NULL);
	fixture_release(&f);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_exactly_once_10k),
	        cmocka_unit_test(test_poison_is_deadlettered),
	        cmocka_unit_test(test_two_instances_share_and_hand_over),
	        cmocka_unit_test(test_offsets_moved_by_another_owner),
	        cmocka_unit_test(test_outbox_published_after_kill),
	        cmocka_unit_test(test_database_restart),
	        cmocka_unit_test(test_broker_restart),
	        cmocka_unit_test_teardown(test_sigkill_at_random_moments,
	                                  assay_test_service_teardown),
	};

	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return child_main();
	if (getenv("ASSAY_TEST_FILTER")) /* e.g. "*two_instances*" */
		cmocka_set_test_filter(getenv("ASSAY_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
