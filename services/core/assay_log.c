/*
 * JSON line logger: formats a record into a buffer on the stack (growing to the heap for long
 * records) and emits it with one write(2), so threads share a logger without locks. Also the
 * bridge that maps librdkafka's syslog levels onto ours.
 */
#include "assay_log.h"
#include "assay_err.h"

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

/* A line under construction: starts in caller-provided storage, moves to the heap when it
 * outgrows it. failed is set (and the line dropped) when the heap allocation fails. */
struct line {
	char *buf;
	size_t len;
	size_t cap;
	bool heap;
	bool failed;
};

static void line_reserve(struct line *ln, size_t extra)
{
	size_t want;
	char *nbuf;

	if (ln->failed || ln->len + extra <= ln->cap)
		return;
	want = ln->cap * 2;
	while (want < ln->len + extra)
		want *= 2;
	if (ln->heap) {
		nbuf = realloc(ln->buf, want);
	} else {
		nbuf = malloc(want);
		if (nbuf != NULL)
			memcpy(nbuf, ln->buf, ln->len);
	}
	if (nbuf == NULL) {
		ln->failed = true;
		return;
	}
	ln->buf = nbuf;
	ln->cap = want;
	ln->heap = true;
}

static void line_put(struct line *ln, const char *s, size_t n)
{
	line_reserve(ln, n);
	if (ln->failed)
		return;
	memcpy(ln->buf + ln->len, s, n);
	ln->len += n;
}

static void line_puts(struct line *ln, const char *s)
{
	line_put(ln, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is invalid
 * (truncated, overlong, surrogate, above U+10FFFF, stray continuation byte). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Appends s as a JSON string literal, quotes included. NULL becomes null. */
static void line_put_json_string(struct line *ln, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n, run, seq;
	char esc[7];

	if (s == NULL) {
		line_puts(ln, "null");
		return;
	}
	n = strlen(s);
	line_put(ln, "\"", 1);
	while (n > 0) {
		/* copy the longest run of bytes that need no escaping in one go */
		run = 0;
		while (run < n && p[run] >= 0x20 && p[run] != '"' && p[run] != '\\' &&
		       p[run] < 0x80)
			run++;
		if (run > 0) {
			line_put(ln, (const char *)p, run);
			p += run;
			n -= run;
			continue;
		}
		switch (*p) {
		case '"':
			line_put(ln, "\\\"", 2);
			break;
		case '\\':
			line_put(ln, "\\\\", 2);
			break;
		case '\n':
			line_put(ln, "\\n", 2);
			break;
		case '\r':
			line_put(ln, "\\r", 2);
			break;
		case '\t':
			line_put(ln, "\\t", 2);
			break;
		case '\b':
			line_put(ln, "\\b", 2);
			break;
		case '\f':
			line_put(ln, "\\f", 2);
			break;
		default:
			if (*p < 0x20) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 0x0f];
				line_put(ln, esc, 6);
				break;
			}
			seq = utf8_seq_len(p, n);
			if (seq == 0) {
				line_put(ln, "\xef\xbf\xbd", 3); /* U+FFFD for one bad byte */
				seq = 1;
			} else {
				line_put(ln, (const char *)p, seq);
			}
			p += seq;
			n -= seq;
			continue;
		}
		p++;
		n--;
	}
	line_put(ln, "\"", 1);
}

static void line_put_ts(struct line *ln)
{
	struct timespec now;
	struct tm tm;
	char buf[40];
	size_t n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", now.tv_nsec / 1000000L);
	line_put_json_string(ln, buf);
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
	struct line ln = {stack, 0, sizeof(stack), false, false};
	char num[32];
	size_t i;

	if (!assay_log_enabled(log, level))
		return;
	line_puts(&ln, "{\"ts\":");
	line_put_ts(&ln);
	line_puts(&ln, ",\"level\":\"");
	line_puts(&ln, assay_log_level_name(level));
	line_puts(&ln, "\",\"svc\":");
	line_put_json_string(&ln, log->svc);
	line_puts(&ln, ",\"msg\":");
	line_put_json_string(&ln, msg != NULL ? msg : "");
	for (i = 0; fields != NULL && i < nfields; i++) {
		if (fields[i].key == NULL || fields[i].type == ASSAY_LOG_FIELD_END)
			continue;
		line_put(&ln, ",", 1);
		line_put_json_string(&ln, fields[i].key);
		line_put(&ln, ":", 1);
		if (fields[i].type == ASSAY_LOG_FIELD_INT) {
			snprintf(num, sizeof(num), "%lld", fields[i].num);
			line_puts(&ln, num);
		} else {
			line_put_json_string(&ln, fields[i].str);
		}
	}
	line_put(&ln, "}\n", 2);
	if (ln.failed)
		write_all(log->fd, oom_line, sizeof(oom_line) - 1);
	else
		write_all(log->fd, ln.buf, ln.len);
	if (ln.heap)
		free(ln.buf);
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
