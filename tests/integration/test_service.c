/*
 * A whole service process on the shared main(): configuration from the environment,
 * migrations, topic creation, the loop, /metrics, /healthz and /readyz, and SIGTERM ending
 * in a clean exit that leaves nothing unpublished. The service is this test program run
 * again with --service and the copy handler of assay_test_loop.
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_test_loop.h"
#include "assay_test_pg.h"
#include "assay_test_service.h"
#include "assay_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int service_main(int argc, char **argv)
{
	static struct assay_test_copy_handler h;
	static const char *consumes[1], *produces[1];
	struct assay_service_def def = {
	        .name = getenv("ASSAY_TEST_SERVICE_NAME"),
	        .description = "copies messages into loop_rows (test service)",
	        .consumes = consumes,
	        .nconsumes = 1,
	        .produces = produces,
	        .nproduces = 1,
	        .metrics_port = 0,
	};

	consumes[0] = getenv("ASSAY_TEST_SERVICE_IN");
	produces[0] = getenv("ASSAY_TEST_SERVICE_OUT");
	assay_test_copy_handler_init(&h, "service", produces[0]);
	def.handler = assay_test_copy_handler(&h);
	return assay_service_main(argc, argv, &def);
}

/* This program run again with --service and vars (NULL-terminated) in its environment. */
static pid_t spawn_service(const char *const *vars, int stderr_fd)
{
	static const char *const argv[] = {"test_service", "--service", NULL};

	return assay_test_service_start("/proc/self/exe", argv, vars, NULL, stderr_fd);
}

static void test_service_runs_serves_health_and_stops_cleanly(void **state)
{
	char url[512], in[128], out[128], service[128], body[65536];
	char v_url[600], v_in[200], v_out[200], v_name[200], v_port[64];
	const char *vars[] = {v_url,
	                      v_in,
	                      v_out,
	                      v_name,
	                      v_port,
	                      "ASSAY_TOPICS_PARTITIONS=2",
	                      "ASSAY_LOG_LEVEL=warn",
	                      "ASSAY_BATCH_MAX_MS=20",
	                      "ASSAY_KAFKA_PROPERTIES=consumer.session.timeout.ms=6000,"
	                      "consumer.heartbeat.interval.ms=500",
	                      NULL};
	struct assay_test_record *recs;
	size_t count;
	long rows, distinct;
	int port = assay_test_free_port(), code = 0;
	int64_t deadline;
	pid_t pid;

	(void)state;
	assay_test_pg_fresh_db(url, sizeof(url), "test_service");
	assay_test_loop_schema(url);
	/* the input topic is the service's to create: it must exist before anything reads it,
	 * so only a name is made here */
	assay_test_unique(in, sizeof(in), "svc-in");
	assay_test_unique(out, sizeof(out), "svc-out");
	assay_test_unique(service, sizeof(service), "svc");
	snprintf(v_url, sizeof(v_url), "ASSAY_PG_URL=%s", url);
	snprintf(v_in, sizeof(v_in), "ASSAY_TEST_SERVICE_IN=%s", in);
	snprintf(v_out, sizeof(v_out), "ASSAY_TEST_SERVICE_OUT=%s", out);
	snprintf(v_name, sizeof(v_name), "ASSAY_TEST_SERVICE_NAME=%s", service);
	snprintf(v_port, sizeof(v_port), "ASSAY_METRICS_PORT=%d", port);
	pid = spawn_service(vars, -1);

	/* ready once it has partitions; alive all along */
	deadline = assay_test_now_ms() + 60000;
	while (assay_test_now_ms() < deadline &&
	       (code = assay_test_http_get(port, "/readyz", body, sizeof(body))) != 200)
		usleep(200 * 1000);
	assert_int_equal(code, 200);
	assert_int_equal(assay_test_http_get(port, "/healthz", body, sizeof(body)), 200);
	assert_int_equal(assay_test_http_get(port, "/nowhere", body, sizeof(body)), 404);

	assay_test_produce(in, 0, 2000, NULL, NULL);
	deadline = assay_test_now_ms() + 60000;
	do {
		usleep(200 * 1000);
		assay_test_loop_counts(url, &rows, &distinct);
	} while (rows < 2000 && assay_test_now_ms() < deadline);
	assert_int_equal(rows, 2000);
	assert_int_equal(assay_test_http_get(port, "/metrics", body, sizeof(body)), 200);
	assert_non_null(strstr(body, "assay_consumed_total 2000\n"));
	assert_non_null(strstr(body, "# TYPE assay_batch_seconds histogram"));
	assert_non_null(strstr(body, "assay_consumer_lag{topic="));

	/* SIGTERM: finish, publish what is applied, leave the group, exit 0 */
	assert_int_equal(assay_test_service_stop(pid), 0);
	recs = assay_test_read_topic(out, "read_committed", 2000, 2000, 30000, &count);
	assert_int_equal(count, 2000);
	assay_test_records_free(recs, count);
	assay_test_pg_drop_db(url);
}

static void test_bad_configuration_is_refused_with_every_problem(void **state)
{
	const char *vars[] = {"ASSAY_TEST_SERVICE_NAME=svc-bad", "ASSAY_TEST_SERVICE_IN=x",
	                      "ASSAY_TEST_SERVICE_OUT=y",        "ASSAY_BATCH_MAX_MESSAGES=0",
	                      "ASSAY_METRICS_PORT=seventy",      NULL};
	char out[4096] = "";
	int fds[2];
	ssize_t n;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	pid = spawn_service(vars, fds[1]);
	close(fds[1]);
	n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	assert_true(n > 0);
	assert_int_equal(assay_test_service_wait(pid), 2);
	assert_non_null(strstr(out, "batch.max.messages"));
	assert_non_null(strstr(out, "metrics.port"));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_service_runs_serves_health_and_stops_cleanly,
	                                  assay_test_service_teardown),
	        cmocka_unit_test_teardown(test_bad_configuration_is_refused_with_every_problem,
	                                  assay_test_service_teardown),
	};

	if (argc > 1 && strcmp(argv[1], "--service") == 0)
		return service_main(1, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
