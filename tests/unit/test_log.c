/*
 * JSON line logger: field order and timestamp shape, JSON escaping (control characters,
 * invalid UTF-8), level filtering, the librdkafka bridge, long lines, and whole lines under
 * concurrent writers (every line read back must be one well-formed JSON object).
 */
#include "assay_test.h"
#include "assay_err.h"
#include "assay_log.h"

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A temporary file to log into; returns its fd (O_APPEND, unlinked). */
static int temp_fd(void)
{
	char path[] = "/tmp/assay_test_log_XXXXXX";
	int fd = mkstemp(path);
	int flags;

	assert_true(fd >= 0);
	unlink(path);
	flags = fcntl(fd, F_GETFL);
	assert_int_equal(fcntl(fd, F_SETFL, flags | O_APPEND), 0);
	return fd;
}

/* Everything written to fd so far, NUL-terminated, malloc'd. */
static char *slurp(int fd, size_t *len)
{
	off_t size = lseek(fd, 0, SEEK_END);
	char *buf;

	assert_true(size >= 0);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
	buf[size] = '\0';
	if (len != NULL)
		*len = (size_t)size;
	return buf;
}

/* Minimal validator for one flat JSON object of string/integer/null values. */
static const char *skip_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20)
			return NULL;
		if (c == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 5;
				continue;
			}
			if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0')
				return NULL;
		}
		p++;
	}
	return p + 1;
}

static int valid_json_line(const char *p, const char *end)
{
	if (*p++ != '{')
		return 0;
	for (;;) {
		p = skip_string(p);
		if (p == NULL || *p++ != ':')
			return 0;
		if (*p == '"') {
			p = skip_string(p);
			if (p == NULL)
				return 0;
		} else if (strncmp(p, "null", 4) == 0) {
			p += 4;
		} else {
			if (*p == '-')
				p++;
			if (!isdigit((unsigned char)*p))
				return 0;
			while (isdigit((unsigned char)*p))
				p++;
		}
		if (*p == '}')
			return p + 1 == end;
		if (*p++ != ',')
			return 0;
	}
}

static void test_fields_in_order(void **state)
{
	int fd = temp_fd();
	struct assay_log *log = assay_log_new("ingest", ASSAY_LOG_DEBUG, fd);
	char *out;
	const char *rest;

	(void)state;
	assert_non_null(log);
	assay_log_info(log, "batch committed", ASSAY_LF_STR("topic", "assay.readings"),
	               ASSAY_LF_INT("partition", 3), ASSAY_LF_INT("offset", -9000000000LL),
	               ASSAY_LF_STR("sqlstate", NULL));
	out = slurp(fd, NULL);
	/* {"ts":"2024-01-02T03:04:05.678Z", then the fixed fields in order */
	assert_int_equal(strncmp(out, "{\"ts\":\"", 7), 0);
	for (int i = 0; i < 24; i++) {
		char c = out[7 + i];

		if (i == 4 || i == 7)
			assert_int_equal(c, '-');
		else if (i == 10)
			assert_int_equal(c, 'T');
		else if (i == 13 || i == 16)
			assert_int_equal(c, ':');
		else if (i == 19)
			assert_int_equal(c, '.');
		else if (i == 23)
			assert_int_equal(c, 'Z');
		else
			assert_true(isdigit((unsigned char)c));
	}
	rest = out + 7 + 24;
	assert_string_equal(rest, "\",\"level\":\"info\",\"svc\":\"ingest\",\"msg\":\"batch "
	                          "committed\",\"topic\":\"assay.readings\",\"partition\":3,"
	                          "\"offset\":-9000000000,\"sqlstate\":null}\n");
	assert_true(valid_json_line(out, strchr(out, '\n')));
	free(out);
	assay_log_destroy(log);
	close(fd);
}

static void test_zero_fields_and_levels(void **state)
{
	int fd = temp_fd();
	struct assay_log *log = assay_log_new("svc", ASSAY_LOG_WARN, fd);
	char *out;

	(void)state;
	assay_log_debug(log, "dropped");
	assay_log_info(log, "dropped too", ASSAY_LF_INT("n", 1));
	assay_log_warn(log, "kept");
	assay_log_error(log, NULL);
	assay_log_write(log, ASSAY_LOG_ERROR, "no fields", NULL, 0);
	assay_log_info(NULL, "no-op on NULL");
	assert_false(assay_log_enabled(NULL, ASSAY_LOG_ERROR));
	assert_false(assay_log_enabled(log, ASSAY_LOG_INFO));
	assert_true(assay_log_enabled(log, ASSAY_LOG_WARN));
	out = slurp(fd, NULL);
	assert_null(strstr(out, "dropped"));
	assert_non_null(strstr(out, "\"level\":\"warn\",\"svc\":\"svc\",\"msg\":\"kept\"}\n"));
	assert_non_null(strstr(out, "\"level\":\"error\",\"svc\":\"svc\",\"msg\":\"\"}\n"));
	assert_non_null(
	        strstr(out, "\"level\":\"error\",\"svc\":\"svc\",\"msg\":\"no fields\"}\n"));
	free(out);
	assay_log_destroy(log);
	assay_log_destroy(NULL);
	close(fd);
}

static void test_escaping(void **state)
{
	int fd = temp_fd();
	struct assay_log *log = assay_log_new("a\"b", ASSAY_LOG_DEBUG, fd);
	char *out, *msg;

	(void)state;
	assay_log_info(log,
	               "q\" b\\ n\n r\r t\t \x01\x1f\x7f é€\xf0\x9f\x98\x80 "
	               "ff\xff overlong\xc0\xaf surrogate\xed\xa0\x80 cut\xe2\x82",
	               ASSAY_LF_STR("k\"ey", "v\x02"));
	out = slurp(fd, NULL);
	assert_true(valid_json_line(out, strchr(out, '\n')));
	msg = strstr(out, "\"svc\":");
	assert_non_null(msg);
	assert_string_equal(
	        msg, "\"svc\":\"a\\\"b\",\"msg\":\"q\\\" b\\\\ n\\n r\\r t\\t \\u0001\\u001f\x7f "
	             "é€\xf0\x9f\x98\x80 ff\xef\xbf\xbd overlong\xef\xbf\xbd\xef\xbf\xbd "
	             "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd cut\xef\xbf\xbd\xef\xbf\xbd\","
	             "\"k\\\"ey\":\"v\\u0002\"}\n");
	free(out);
	assay_log_destroy(log);
	close(fd);
}

static void test_level_parse(void **state)
{
	enum assay_log_level level = ASSAY_LOG_ERROR;

	(void)state;
	assert_int_equal(assay_log_level_parse("debug", &level), 0);
	assert_int_equal(level, ASSAY_LOG_DEBUG);
	assert_int_equal(assay_log_level_parse("INFO", &level), 0);
	assert_int_equal(level, ASSAY_LOG_INFO);
	assert_int_equal(assay_log_level_parse("warning", &level), 0);
	assert_int_equal(level, ASSAY_LOG_WARN);
	assert_int_equal(assay_log_level_parse("error", &level), 0);
	assert_int_equal(level, ASSAY_LOG_ERROR);
	assert_int_equal(assay_log_level_parse("verbose", &level), ASSAY_ERR_REJECT);
	assert_int_equal(assay_log_level_parse("", &level), ASSAY_ERR_REJECT);
	assert_int_equal(assay_log_level_parse(NULL, &level), ASSAY_ERR_REJECT);
	assert_int_equal(level, ASSAY_LOG_ERROR);
	assert_string_equal(assay_log_level_name(ASSAY_LOG_WARN), "warn");
}

static void test_rdkafka_bridge(void **state)
{
	int fd = temp_fd();
	struct assay_log *log = assay_log_new("relay", ASSAY_LOG_DEBUG, fd);
	char *out;

	(void)state;
	assay_log_rdkafka(log, 3, "FAIL", "broker down");
	assay_log_rdkafka(log, 4, "REQTMOUT", "timed out");
	assay_log_rdkafka(log, 6, "CGRPOP", "joined");
	assay_log_rdkafka(log, 7, "PROTOCOL", "bytes");
	assay_log_rdkafka(log, 0, NULL, NULL);
	out = slurp(fd, NULL);
	assert_non_null(strstr(out, "\"level\":\"error\",\"svc\":\"relay\",\"msg\":\"broker "
	                            "down\",\"fac\":\"FAIL\",\"source\":\"librdkafka\"}\n"));
	assert_non_null(strstr(out, "\"level\":\"warn\",\"svc\":\"relay\",\"msg\":\"timed "
	                            "out\",\"fac\":\"REQTMOUT\",\"source\":\"librdkafka\"}\n"));
	assert_non_null(strstr(out, "\"level\":\"info\",\"svc\":\"relay\",\"msg\":\"joined\","
	                            "\"fac\":\"CGRPOP\",\"source\":\"librdkafka\"}\n"));
	assert_non_null(strstr(out, "\"level\":\"debug\",\"svc\":\"relay\",\"msg\":\"bytes\","
	                            "\"fac\":\"PROTOCOL\",\"source\":\"librdkafka\"}\n"));
	assert_non_null(strstr(out, "\"level\":\"error\",\"svc\":\"relay\",\"msg\":\"\","
	                            "\"fac\":\"\",\"source\":\"librdkafka\"}\n"));
	free(out);
	assay_log_destroy(log);
	close(fd);
}

static void test_long_line(void **state)
{
	int fd = temp_fd();
	struct assay_log *log = assay_log_new("svc", ASSAY_LOG_DEBUG, fd);
	size_t n = 200000, len;
	char *big = malloc(n + 1), *out;

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (i % 1000 == 999) ? '"' : 'x';
	big[n] = '\0';
	assay_log_error(log, big, ASSAY_LF_STR("tail", "end"));
	out = slurp(fd, &len);
	assert_true(len > n + n / 1000);
	assert_ptr_equal(strchr(out, '\n'), out + len - 1);
	assert_true(valid_json_line(out, out + len - 1));
	assert_non_null(strstr(out, "\"tail\":\"end\"}\n"));
	free(out);
	free(big);
	assay_log_destroy(log);
	close(fd);
}

struct writer {
	struct assay_log *log;
	int id;
};

#define WRITERS 4
#define LINES   500

static void *write_lines(void *arg)
{
	struct writer *w = arg;
	char msg[3000];

	/* lines of varying length, some past the stack buffer */
	for (int i = 0; i < LINES; i++) {
		size_t len = (size_t)(i * 7 % 2500);

		memset(msg, 'a' + w->id, len);
		msg[len] = '\0';
		assay_log_info(w->log, msg, ASSAY_LF_INT("writer", w->id), ASSAY_LF_INT("i", i));
	}
	return NULL;
}

static void test_concurrent_whole_lines(void **state)
{
	int fd = temp_fd();
	struct assay_log *log = assay_log_new("svc", ASSAY_LOG_DEBUG, fd);
	pthread_t threads[WRITERS];
	struct writer writers[WRITERS];
	char *out, *line, *nl;
	int count = 0;

	(void)state;
	for (int i = 0; i < WRITERS; i++) {
		writers[i] = (struct writer){log, i};
		assert_int_equal(pthread_create(&threads[i], NULL, write_lines, &writers[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(threads[i], NULL);
	out = slurp(fd, NULL);
	for (line = out; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		assert_true(valid_json_line(line, nl));
		count++;
	}
	assert_int_equal(*line, '\0');
	assert_int_equal(count, WRITERS * LINES);
	free(out);
	assay_log_destroy(log);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fields_in_order),
	        cmocka_unit_test(test_zero_fields_and_levels),
	        cmocka_unit_test(test_escaping),
	        cmocka_unit_test(test_level_parse),
	        cmocka_unit_test(test_rdkafka_bridge),
	        cmocka_unit_test(test_long_line),
	        cmocka_unit_test(test_concurrent_whole_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
