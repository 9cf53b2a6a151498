/*
 * The operations endpoint, over real sockets on 127.0.0.1 with an ephemeral port: the three
 * paths and their status codes, HEAD, 404/405/400/431, garbage and half-sent requests, a
 * silent client that must neither block others nor stay open past the timeout, more idle
 * clients than slots, and start-up errors.
 */
#include "assay_test.h"
#include "assay_http.h"
#include "assay_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	struct assay_metrics *m;
	struct assay_http *h;
	int port;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int connect_to(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {10, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		buf += n;
		len -= (size_t)n;
	}
}

/* Reads until EOF; returns a malloc'd NUL-terminated response. */
static char *read_response(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	for (;;) {
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0); /* an error or timeout fails the test */
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

/* Sends raw, returns the whole response; *status gets the status code. */
static char *request(int port, const char *raw, size_t raw_len, int *status)
{
	int fd = connect_to(port);
	char *resp;

	send_all(fd, raw, raw_len);
	resp = read_response(fd);
	close(fd);
	*status = -1;
	if (strncmp(resp, "HTTP/1.1 ", 9) == 0)
		*status = (int)strtol(resp + 9, NULL, 10);
	return resp;
}

static char *request_str(int port, const char *raw, int *status)
{
	return request(port, raw, strlen(raw), status);
}

static char *get(int port, const char *path, int *status)
{
	char raw[256];
	int n = snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);

	return request(port, raw, (size_t)n, status);
}

static const char *body_of(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");

	assert_non_null(p);
	return p + 4;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	f->m = assay_metrics_new("http-test");
	assert_non_null(f->m);
	f->h = assay_http_start("127.0.0.1", 0, f->m, err, sizeof(err));
	if (f->h == NULL)
		fail_msg("assay_http_start: %s", err);
	f->port = assay_http_port(f->h);
	assert_true(f->port > 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assay_http_stop(f->h);
	assay_metrics_destroy(f->m);
	free(f);
	return 0;
}

static void test_metrics_endpoint(void **state)
{
	struct fixture *f = *state;
	struct assay_counter *c =
	        assay_metrics_counter(f->m, "assay_consumed_total", "consumed", "topic=\"t\"");
	char *resp;
	int status;

	assay_counter_add(c, 12);
	resp = get(f->port, "/metrics", &status);
	assert_int_equal(status, 200);
	assert_non_null(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; "
	                             "charset=utf-8\r\n"));
	assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
	assert_non_null(strstr(body_of(resp), "assay_consumed_total{topic=\"t\"} 12\n"));
	{
		const char *cl = strstr(resp, "Content-Length: ");

		assert_non_null(cl);
		assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body_of(resp)));
	}
	free(resp);
	resp = get(f->port, "/metrics?name[]=x", &status); /* query strings are ignored */
	assert_int_equal(status, 200);
	free(resp);
	resp = request_str(f->port, "HEAD /metrics HTTP/1.0\r\n\r\n", &status);
	assert_int_equal(status, 200);
	assert_string_equal(body_of(resp), "");
	free(resp);
}

static void test_health_and_ready(void **state)
{
	struct fixture *f = *state;
	char *resp;
	int status;

	resp = get(f->port, "/healthz", &status);
	assert_int_equal(status, 200);
	assert_string_equal(body_of(resp), "ok\n");
	free(resp);
	resp = get(f->port, "/readyz", &status);
	assert_int_equal(status, 503);
	free(resp);
	assay_metrics_set_ready(f->m, true);
	resp = get(f->port, "/readyz", &status);
	assert_int_equal(status, 200);
	assert_string_equal(body_of(resp), "ok\n");
	free(resp);
	/* a loop that stops heartbeating fails liveness */
	assay_http_set_max_silence(f->h, 50);
	sleep_ms(150);
	resp = get(f->port, "/healthz", &status);
	assert_int_equal(status, 503);
	free(resp);
	assay_http_set_max_silence(f->h, ASSAY_HTTP_DEFAULT_MAX_SILENCE_MS);
	assay_metrics_heartbeat(f->m);
	resp = get(f->port, "/healthz", &status);
	assert_int_equal(status, 200);
	free(resp);
}

static void test_errors(void **state)
{
	static const char garbage[] = "\x00\x01\x02\xff\r\n\r\n";
	static const char post[] = "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
	struct fixture *f = *state;
	char *resp;
	int status;

	resp = get(f->port, "/nope", &status);
	assert_int_equal(status, 404);
	free(resp);
	resp = get(f->port, "/metricsx", &status);
	assert_int_equal(status, 404);
	free(resp);
	resp = request(f->port, post, sizeof(post) - 1, &status);
	assert_int_equal(status, 405);
	assert_non_null(strstr(resp, "\r\nAllow: GET, HEAD\r\n"));
	free(resp);
	resp = request(f->port, garbage, sizeof(garbage) - 1, &status);
	assert_int_equal(status, 400);
	free(resp);
	resp = request_str(f->port, "GET /metrics\r\n\r\n", &status); /* HTTP/0.9 style */
	assert_int_equal(status, 400);
	free(resp);
	resp = request_str(f->port, "GET  HTTP/1.1\n\n", &status);
	assert_int_equal(status, 400);
	free(resp);
	resp = request_str(f->port, "GET /metrics HTTP/2.0\r\n\r\n", &status);
	assert_int_equal(status, 400);
	free(resp);
	resp = request_str(f->port, "GET /readyz HTTP/1.1\n\n", &status); /* bare LF is fine */
	assert_int_equal(status, 503);
	free(resp);
}

static void test_oversized_request(void **state)
{
	struct fixture *f = *state;
	size_t n = ASSAY_HTTP_MAX_REQUEST + 4096;
	char *big = malloc(n);
	char *resp;
	int status, fd;

	assert_non_null(big);
	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', n - 5);
	fd = connect_to(f->port);
	/* the server answers once its buffer is full; the rest may be refused: ignore that */
	(void)send(fd, big, n, MSG_NOSIGNAL);
	resp = read_response(fd);
	close(fd);
	assert_int_equal(strncmp(resp, "HTTP/1.1 431 ", 13), 0);
	free(resp);
	free(big);
	resp = get(f->port, "/healthz", &status);
	assert_int_equal(status, 200);
	free(resp);
}

static void test_slow_and_idle_clients(void **state)
{
	struct fixture *f = *state;
	int idle[ASSAY_HTTP_MAX_CONNECTIONS + 4];
	int silent, status;
	int64_t start;
	char *resp, byte;
	struct pollfd pfd;
	size_t i;

	/* a client that sends half a request and then nothing */
	silent = connect_to(f->port);
	send_all(silent, "GET /metr", 9);
	start = mono_ms();
	resp = get(f->port, "/healthz", &status);
	assert_int_equal(status, 200);
	assert_true(mono_ms() - start < 1000);
	free(resp);

	/* more idle connections than slots: the oldest are dropped, new requests still served */
	for (i = 0; i < sizeof(idle) / sizeof(idle[0]); i++)
		idle[i] = connect_to(f->port);
	sleep_ms(100);
	start = mono_ms();
	resp = get(f->port, "/readyz", &status);
	assert_int_equal(status, 503);
	assert_true(mono_ms() - start < 1000);
	free(resp);
	/* the first idle connection was evicted: it reads EOF now */
	pfd = (struct pollfd){.fd = idle[0], .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	assert_int_equal(recv(idle[0], &byte, 1, 0), 0);
	for (i = 0; i < sizeof(idle) / sizeof(idle[0]); i++)
		close(idle[i]);

	/* clients that connect and leave at once do no harm */
	for (i = 0; i < 20; i++)
		close(connect_to(f->port));
	resp = get(f->port, "/healthz", &status);
	assert_int_equal(status, 200);
	free(resp);
	close(silent);
}

static void test_read_timeout(void **state)
{
	struct fixture *f = *state;
	struct pollfd pfd;
	char byte;
	int fd;
	int64_t start;

	fd = connect_to(f->port);
	send_all(fd, "GET /healthz HTTP/1.1\r\n", 23); /* never finishes its head */
	start = mono_ms();
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, ASSAY_HTTP_TIMEOUT_MS + 3000), 1);
	assert_int_equal(recv(fd, &byte, 1, 0), 0); /* closed without a response */
	assert_true(mono_ms() - start >= ASSAY_HTTP_TIMEOUT_MS - 1000);
	close(fd);
}

static void test_start_errors(void **state)
{
	struct fixture *f = *state;
	struct assay_http *h;
	char err[256];

	h = assay_http_start("localhost", 0, f->m, err, sizeof(err));
	assert_null(h);
	assert_non_null(strstr(err, "not a numeric IP address"));
	h = assay_http_start("127.0.0.1", 70000, f->m, err, sizeof(err));
	assert_null(h);
	assert_non_null(strstr(err, "out of range"));
	h = assay_http_start("127.0.0.1", f->port, f->m, err, sizeof(err));
	assert_null(h);
	assert_non_null(strstr(err, "bind 127.0.0.1 port"));
	h = assay_http_start("127.0.0.1", 0, NULL, err, sizeof(err));
	assert_null(h);
	h = assay_http_start("::1", 0, f->m, err, sizeof(err));
	if (h != NULL) { /* IPv6 loopback may be missing in a container */
		assert_true(assay_http_port(h) > 0);
		assay_http_stop(h);
	}
	assert_int_equal(assay_http_port(NULL), -1);
	assay_http_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_health_and_ready, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_oversized_request, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_slow_and_idle_clients, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read_timeout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
