/*
 * Metrics registry: exact Prometheus 0.0.4 text for counters, labelled series, gauges and
 * histograms; handle identity and validation; label escaping; exact totals under concurrent
 * updates while another thread renders; readiness and heartbeat.
 */
#include "assay_test.h"
#include "assay_err.h"
#include "assay_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static char *render(struct assay_metrics *m)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(assay_metrics_render(m, &text, &len), 0);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	assert_true(len > 0);
	assert_int_equal(text[len - 1], '\n');
	return text;
}

static void test_exposition_text(void **state)
{
	static const double bounds[] = {0.25, 1, 10};
	struct assay_metrics *m = assay_metrics_new("ingest");
	struct assay_counter *a, *b, *plain;
	struct assay_gauge *lag;
	struct assay_histogram *h;
	char *text;

	(void)state;
	assert_non_null(m);
	a = assay_metrics_counter(m, "assay_consumed_total", "messages consumed",
	                          "topic=\"a\",partition=\"0\"");
	b = assay_metrics_counter(m, "assay_consumed_total", "ignored second help",
	                          "topic=\"b\\\"q\\\\\\n\",partition=\"1\"");
	plain = assay_metrics_counter(m, "assay_batches_total", "batches\ncommitted \\ ok", NULL);
	lag = assay_metrics_gauge(m, "assay_lag_messages", "lag", "topic=\"a\"");
	h = assay_metrics_histogram(m, "assay_batch_seconds", "batch latency", bounds, 3);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(plain);
	assert_non_null(lag);
	assert_non_null(h);
	assert_ptr_not_equal(a, b);
	assay_counter_add(a, 5);
	assay_counter_add(a, 2);
	assay_counter_add(b, 1);
	assay_gauge_set(lag, 42);
	assay_gauge_add(lag, -0.5);
	assay_histogram_observe(h, 0.125);
	assay_histogram_observe(h, 0.25); /* le is inclusive */
	assay_histogram_observe(h, 0.5);
	assay_histogram_observe(h, 5);
	assay_histogram_observe(h, 50);
	assay_histogram_observe(h, NAN); /* ignored */
	assert_int_equal(assay_counter_value(a), 7);
	assert_true(assay_gauge_value(lag) == 41.5);
	assert_int_equal(assay_histogram_count(h), 5);
	text = render(m);
	assert_non_null(strstr(text,
	                       "# HELP assay_consumed_total messages consumed\n"
	                       "# TYPE assay_consumed_total counter\n"
	                       "assay_consumed_total{topic=\"a\",partition=\"0\"} 7\n"
	                       "assay_consumed_total{topic=\"b\\\"q\\\\\\n\",partition=\"1\"} 1\n"
	                       "# HELP assay_batches_total batches\\ncommitted \\\\ ok\n"
	                       "# TYPE assay_batches_total counter\n"
	                       "assay_batches_total 0\n"
	                       "# HELP assay_lag_messages lag\n"
	                       "# TYPE assay_lag_messages gauge\n"
	                       "assay_lag_messages{topic=\"a\"} 41.5\n"
	                       "# HELP assay_batch_seconds batch latency\n"
	                       "# TYPE assay_batch_seconds histogram\n"
	                       "assay_batch_seconds_bucket{le=\"0.25\"} 2\n"
	                       "assay_batch_seconds_bucket{le=\"1\"} 3\n"
	                       "assay_batch_seconds_bucket{le=\"10\"} 4\n"
	                       "assay_batch_seconds_bucket{le=\"+Inf\"} 5\n"
	                       "assay_batch_seconds_sum 55.875\n"
	                       "assay_batch_seconds_count 5\n"));
	assert_non_null(strstr(text, "# TYPE assay_service_info gauge\n"
	                             "assay_service_info{svc=\"ingest\"} 1\n"));
	assert_non_null(strstr(text, "# TYPE assay_ready gauge\nassay_ready 0\n"));
	assert_non_null(strstr(text, "# TYPE assay_heartbeat_age_seconds gauge\n"
	                             "assay_heartbeat_age_seconds "));
	free(text);
	assay_metrics_destroy(m);
	assay_metrics_destroy(NULL);
}

static void test_special_values(void **state)
{
	struct assay_metrics *m = assay_metrics_new("a\"b\\c");
	struct assay_gauge *g1 = assay_metrics_gauge(m, "g_inf", NULL, NULL);
	struct assay_gauge *g2 = assay_metrics_gauge(m, "g_ninf", NULL, NULL);
	struct assay_gauge *g3 = assay_metrics_gauge(m, "g_nan", NULL, NULL);
	struct assay_gauge *g4 = assay_metrics_gauge(m, "g_tenth", NULL, NULL);
	struct assay_gauge *g5 = assay_metrics_gauge(m, "g_big", NULL, NULL);
	struct assay_histogram *h = assay_metrics_histogram(m, "h_empty", NULL, NULL, 0);
	char *text;

	(void)state;
	assay_gauge_set(g1, INFINITY);
	assay_gauge_set(g2, -INFINITY);
	assay_gauge_set(g3, NAN);
	assay_gauge_set(g4, 0.1);
	assay_gauge_set(g5, 1e300);
	assay_histogram_observe(h, 3);
	text = render(m);
	assert_non_null(strstr(text, "assay_service_info{svc=\"a\\\"b\\\\c\"} 1\n"));
	assert_non_null(strstr(text, "# TYPE g_inf gauge\ng_inf +Inf\n"));
	assert_non_null(strstr(text, "g_ninf -Inf\n"));
	assert_non_null(strstr(text, "g_nan NaN\n"));
	assert_non_null(strstr(text, "g_tenth 0.1\n"));
	assert_non_null(strstr(text, "g_big 1e+300\n"));
	assert_null(strstr(text, "# HELP g_inf")); /* no help, no HELP line */
	assert_non_null(strstr(text, "h_empty_bucket{le=\"+Inf\"} 1\nh_empty_sum 3\n"
	                             "h_empty_count 1\n"));
	free(text);
	assay_metrics_destroy(m);
}

static void test_handles_and_validation(void **state)
{
	static const double bounds[] = {1, 2};
	static const double other[] = {1, 3};
	static const double unsorted[] = {2, 1};
	static const double dup[] = {1, 1};
	const double inf[] = {1, INFINITY};
	struct assay_metrics *m = assay_metrics_new("svc");
	struct assay_counter *c;
	struct assay_histogram *h;

	(void)state;
	c = assay_metrics_counter(m, "x_total", "x", "topic=\"a\"");
	assert_ptr_equal(assay_metrics_counter(m, "x_total", NULL, "topic=\"a\""), c);
	assert_ptr_not_equal(assay_metrics_counter(m, "x_total", NULL, NULL), c);
	assert_null(assay_metrics_counter(m, "x", NULL, NULL));      /* no _total */
	assert_null(assay_metrics_counter(m, "_total", NULL, NULL)); /* nothing before it */
	assert_null(assay_metrics_gauge(m, "x_total", NULL, NULL));  /* type clash */
	assert_null(assay_metrics_counter(m, "9x_total", NULL, NULL));
	assert_null(assay_metrics_counter(m, "a-b_total", NULL, NULL));
	assert_null(assay_metrics_counter(m, NULL, NULL, NULL));
	assert_null(assay_metrics_counter(NULL, "y_total", NULL, NULL));
	assert_null(assay_metrics_counter(m, "y_total", NULL, "topic=a"));
	assert_null(assay_metrics_counter(m, "y_total", NULL, "topic=\"a"));
	assert_null(assay_metrics_counter(m, "y_total", NULL, "topic=\"a\","));
	assert_null(assay_metrics_counter(m, "y_total", NULL, "topic=\"a\\x\""));
	assert_null(assay_metrics_counter(m, "y_total", NULL, "1topic=\"a\""));
	assert_null(assay_metrics_counter(m, "y_total", NULL, "topic=\"a\nb\""));
	assert_non_null(assay_metrics_counter(m, "ns:y_total", NULL, "a=\"\",b_2=\"\\\\\""));
	h = assay_metrics_histogram(m, "h", NULL, bounds, 2);
	assert_non_null(h);
	assert_ptr_equal(assay_metrics_histogram(m, "h", NULL, bounds, 2), h);
	assert_null(assay_metrics_histogram(m, "h", NULL, other, 2));
	assert_null(assay_metrics_histogram(m, "h", NULL, bounds, 1));
	assert_null(assay_metrics_histogram(m, "h2", NULL, unsorted, 2));
	assert_null(assay_metrics_histogram(m, "h2", NULL, dup, 2));
	assert_null(assay_metrics_histogram(m, "h2", NULL, inf, 2));
	assert_null(assay_metrics_histogram(m, "x_total", NULL, bounds, 2));
	assert_null(assay_metrics_counter(m, "assay_ready", NULL, NULL)); /* registry's own gauge */
	/* NULL handles are no-ops */
	assay_counter_add(NULL, 1);
	assay_gauge_set(NULL, 1);
	assay_gauge_add(NULL, 1);
	assay_histogram_observe(NULL, 1);
	assert_int_equal(assay_counter_value(NULL), 0);
	assert_int_equal(assay_histogram_count(NULL), 0);
	assert_int_equal(assay_metrics_render(NULL, NULL, NULL), ASSAY_ERR_FATAL);
	assay_metrics_destroy(m);
}

static void test_escape_label(void **state)
{
	char buf[64], small[4];

	(void)state;
	assert_int_equal(assay_metrics_escape_label(buf, sizeof(buf), "a\\b\"c\nd"), 10);
	assert_string_equal(buf, "a\\\\b\\\"c\\nd");
	assert_int_equal(assay_metrics_escape_label(small, sizeof(small), "\"\"\""), 6);
	assert_string_equal(small, "\\\"\\");
	assert_int_equal(assay_metrics_escape_label(NULL, 0, "abc"), 3);
	assert_int_equal(assay_metrics_escape_label(buf, sizeof(buf), ""), 0);
	assert_string_equal(buf, "");
}

#define THREADS 4
#define ADDS    100000

struct worker {
	struct assay_metrics *m;
	int id;
};

static void *update(void *arg)
{
	struct worker *w = arg;
	struct assay_counter *c = assay_metrics_counter(w->m, "race_total", "r", NULL);
	struct assay_gauge *g = assay_metrics_gauge(w->m, "race_gauge", "g", NULL);
	char labels[32];
	struct assay_counter *own;
	struct assay_histogram *h;
	static const double bounds[] = {0.5, 1.5};

	h = assay_metrics_histogram(w->m, "race_hist", "h", bounds, 2);
	snprintf(labels, sizeof(labels), "worker=\"%d\"", w->id);
	own = assay_metrics_counter(w->m, "race_total", NULL, labels);
	for (int i = 0; i < ADDS; i++) {
		assay_counter_add(c, 1);
		assay_counter_add(own, 2);
		assay_gauge_add(g, 1);
		assay_histogram_observe(h, (double)(i % 3));
		assay_metrics_heartbeat(w->m);
	}
	return NULL;
}

static void *render_loop(void *arg)
{
	struct assay_metrics *m = arg;

	for (int i = 0; i < 200; i++) {
		char *text = NULL;
		size_t len;

		if (assay_metrics_render(m, &text, &len) != 0 || len == 0 || text[len - 1] != '\n')
			abort();
		free(text);
	}
	return NULL;
}

static void test_concurrent_updates(void **state)
{
	struct assay_metrics *m = assay_metrics_new("svc");
	pthread_t threads[THREADS], renderer;
	struct worker workers[THREADS];
	char *text, line[64];

	(void)state;
	assert_int_equal(pthread_create(&renderer, NULL, render_loop, m), 0);
	for (int i = 0; i < THREADS; i++) {
		workers[i] = (struct worker){m, i};
		assert_int_equal(pthread_create(&threads[i], NULL, update, &workers[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	pthread_join(renderer, NULL);
	text = render(m);
	snprintf(line, sizeof(line), "\nrace_total %d\n", THREADS * ADDS);
	assert_non_null(strstr(text, line));
	for (int i = 0; i < THREADS; i++) {
		snprintf(line, sizeof(line), "\nrace_total{worker=\"%d\"} %d\n", i, 2 * ADDS);
		assert_non_null(strstr(text, line));
	}
	snprintf(line, sizeof(line), "\nrace_gauge %d\n", THREADS * ADDS);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line), "\nrace_hist_count %d\n", THREADS * ADDS);
	assert_non_null(strstr(text, line));
	/* i % 3 gives 0, 1, 2 evenly-ish: sum is exact in doubles at this size */
	snprintf(line, sizeof(line), "\nrace_hist_sum %d\n",
	         THREADS * ((ADDS / 3) * 3 + (ADDS % 3 == 2 ? 1 : 0)));
	assert_non_null(strstr(text, line));
	free(text);
	assay_metrics_destroy(m);
}

static void test_health(void **state)
{
	struct assay_metrics *m = assay_metrics_new("svc");
	char *text;

	(void)state;
	assert_false(assay_metrics_ready(m));
	assay_metrics_set_ready(m, true);
	assert_true(assay_metrics_ready(m));
	text = render(m);
	assert_non_null(strstr(text, "\nassay_ready 1\n"));
	free(text);
	assay_metrics_set_ready(m, false);
	assert_false(assay_metrics_ready(m));
	assert_true(assay_metrics_alive(m, 10000)); /* creation counts as a heartbeat */
	sleep_ms(60);
	assert_false(assay_metrics_alive(m, 20));
	text = render(m);
	assert_null(strstr(text, "\nassay_heartbeat_age_seconds 0\n"));
	free(text);
	assay_metrics_heartbeat(m);
	assert_true(assay_metrics_alive(m, 20));
	assert_false(assay_metrics_alive(NULL, 1000));
	assert_false(assay_metrics_ready(NULL));
	assay_metrics_set_ready(NULL, true);
	assay_metrics_heartbeat(NULL);
	assay_metrics_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_exposition_text),
	        cmocka_unit_test(test_special_values),
	        cmocka_unit_test(test_handles_and_validation),
	        cmocka_unit_test(test_escape_label),
	        cmocka_unit_test(test_concurrent_updates),
	        cmocka_unit_test(test_health),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
