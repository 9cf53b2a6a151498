/*
 * JSON line logger: formats a record into a buffer on the stack (growing to the heap for long
 * records) and emits it with one write(2), so threads share a logger without locks. Also the
 * bridge that maps librdkafka's syslog levels onto ours.
 */
#include "assay_log.h"
#include "assay_err.h"
#include "assay_strbuf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct assay_log {
	char *svc;
	enum assay_log_level min_level;
	int fd;
};

/* s as a JSON string literal; NULL becomes null. */
static void put_json(struct assay_strbuf *ln, const char *s)
{
	if (s == NULL)
		assay_strbuf_append(ln, "null", 4);
	else
		assay_strbuf_append_json(ln, s, strlen(s));
}

static void put_ts(struct assay_strbuf *ln)
{
	struct timespec now;
	struct tm tm;
	char buf[40];
	size_t n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", now.tv_nsec / 1000000L);
	put_json(ln, buf);
}

/* Writes all of buf, retrying on EINTR and short writes (a pipe or tty can take less than
 * the whole line; a regular file or a line under PIPE_BUF takes it in one call). */
static void write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += w;
		len -= (size_t)w;
	}
}

const char *assay_log_level_name(enum assay_log_level level)
{
	switch (level) {
	case ASSAY_LOG_DEBUG:
		return "debug";
	case ASSAY_LOG_INFO:
		return "info";
	case ASSAY_LOG_WARN:
		return "warn";
	case ASSAY_LOG_ERROR:
		return "error";
	}
	return "error";
}

int assay_log_level_parse(const char *s, enum assay_log_level *out)
{
	static const struct {
		const char *name;
		enum assay_log_level level;
	} names[] = {
	        {"debug", ASSAY_LOG_DEBUG},  {"info", ASSAY_LOG_INFO},   {"warn", ASSAY_LOG_WARN},
	        {"warning", ASSAY_LOG_WARN}, {"error", ASSAY_LOG_ERROR},
	};
	size_t i;

	if (s == NULL)
		return ASSAY_ERR_REJECT;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return ASSAY_ERR_REJECT;
}

struct assay_log *assay_log_new(const char *svc, enum assay_log_level min_level, int fd)
{
	struct assay_log *log;

	log = calloc(1, sizeof(*log));
	if (log == NULL)
		return NULL;
	log->svc = strdup(svc != NULL ? svc : "");
	if (log->svc == NULL) {
		free(log);
		return NULL;
	}
	log->min_level = min_level;
	log->fd = fd < 0 ? STDERR_FILENO : fd;
	return log;
}

void assay_log_destroy(struct assay_log *log)
{
	if (log == NULL)
		return;
	free(log->svc);
	free(log);
}

int assay_log_enabled(const struct assay_log *log, enum assay_log_level level)
{
	return log != NULL && level >= log->min_level;
}

void assay_log_write(struct assay_log *log, enum assay_log_level level, const char *msg,
                     const struct assay_log_field *fields, size_t nfields)
{
	static const char oom_line[] = "{\"level\":\"error\",\"msg\":\"log line dropped: out of "
	                               "memory\"}\n";
	char stack[1024];
	struct assay_strbuf ln;
	char num[32];
	size_t i;

	if (!assay_log_enabled(log, level))
		return;
	assay_strbuf_init_fixed(&ln, stack, sizeof(stack));
	assay_strbuf_appends(&ln, "{\"ts\":");
	put_ts(&ln);
	assay_strbuf_appends(&ln, ",\"level\":\"");
	assay_strbuf_appends(&ln, assay_log_level_name(level));
	assay_strbuf_appends(&ln, "\",\"svc\":");
	put_json(&ln, log->svc);
	assay_strbuf_appends(&ln, ",\"msg\":");
	put_json(&ln, msg != NULL ? msg : "");
	for (i = 0; fields != NULL && i < nfields; i++) {
		if (fields[i].key == NULL || fields[i].type == ASSAY_LOG_FIELD_END)
			continue;
		assay_strbuf_append(&ln, ",", 1);
		put_json(&ln, fields[i].key);
		assay_strbuf_append(&ln, ":", 1);
		if (fields[i].type == ASSAY_LOG_FIELD_INT) {
			snprintf(num, sizeof(num), "%lld", fields[i].num);
			assay_strbuf_appends(&ln, num);
		} else {
			put_json(&ln, fields[i].str);
		}
	}
	assay_strbuf_append(&ln, "}\n", 2);
	if (ln.failed)
		write_all(log->fd, oom_line, sizeof(oom_line) - 1);
	else
		write_all(log->fd, ln.p, ln.len);
	assay_strbuf_release(&ln);
}

void assay_log_rdkafka(struct assay_log *log, int syslog_level, const char *fac, const char *buf)
{
	enum assay_log_level level;

	if (syslog_level <= 3)
		level = ASSAY_LOG_ERROR;
	else if (syslog_level == 4)
		level = ASSAY_LOG_WARN;
	else if (syslog_level <= 6)
		level = ASSAY_LOG_INFO;
	else
		level = ASSAY_LOG_DEBUG;
	assay_log_write(
	        log, level, buf,
	        (const struct assay_log_field[]){ASSAY_LF_STR("fac", fac != NULL ? fac : ""),
	                                         ASSAY_LF_STR("source", "librdkafka")},
	        2);
}

bool assay_log_limit_allow(struct assay_log_limit *l, int64_t now_ms, int64_t *suppressed)
{
	if (now_ms - l->window_start_ms >= ASSAY_LOG_LIMIT_WINDOW_MS ||
	    now_ms < l->window_start_ms) {
		l->window_start_ms = now_ms;
		l->lines = 0;
	}
	if (l->lines >= ASSAY_LOG_LIMIT_LINES) {
		l->dropped++;
		return false;
	}
	l->lines++;
	*suppressed = l->dropped;
	l->dropped = 0;
	return true;
}
