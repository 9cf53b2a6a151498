/*
 * JSON line logging.
 *
 * Every record is one JSON object on one line: "ts" (RFC 3339 UTC with milliseconds),
 * "level", "svc", "msg", then the caller's context fields in order (topic, partition,
 * offset, audit_id, sqlstate, ...). A line is formatted in a private buffer and handed to
 * the kernel with a single write(2), so concurrent threads never interleave within a line
 * and no lock is taken. Strings are escaped for JSON; invalid UTF-8 becomes U+FFFD.
 *
 *	assay_log_info(log, "batch committed", ASSAY_LF_STR("topic", topic),
 *		       ASSAY_LF_INT("partition", partition), ASSAY_LF_INT("offset", offset));
 *	assay_log_warn(log, "database unreachable");
 */
#ifndef ASSAY_LOG_H
#define ASSAY_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include <stddef.h>

enum assay_log_level { ASSAY_LOG_DEBUG, ASSAY_LOG_INFO, ASSAY_LOG_WARN, ASSAY_LOG_ERROR };

/* Field types for struct assay_log_field.type. */
enum { ASSAY_LOG_FIELD_END = 0, ASSAY_LOG_FIELD_STR = 1, ASSAY_LOG_FIELD_INT = 2 };

/* One context field (key escaped like any string, best a plain identifier). For a string
 * field str may be NULL, which is written as JSON null. Nothing is retained after the call. */
struct assay_log_field {
	const char *key;
	int type;
	const char *str;
	long long num;
};

#define ASSAY_LF_STR(k, v) ((struct assay_log_field){(k), ASSAY_LOG_FIELD_STR, (v), 0})
#define ASSAY_LF_INT(k, v) \
	((struct assay_log_field){(k), ASSAY_LOG_FIELD_INT, NULL, (long long)(v)})
/* Terminates the field lists built by the convenience macros; never counted as a field. */
#define ASSAY_LF_END ((struct assay_log_field){NULL, ASSAY_LOG_FIELD_END, NULL, 0})

struct assay_log;

/* Creates a logger for service svc (copied; NULL is written as ""). Records below min_level
 * are dropped. fd is where lines go (STDERR_FILENO normally; negative means STDERR_FILENO);
 * it is not owned and must stay open until assay_log_destroy. Returns NULL when out of
 * memory. The handle is immutable after creation: any thread may log through it. */
struct assay_log *assay_log_new(const char *svc, enum assay_log_level min_level, int fd);

/* Frees the logger (not the fd). NULL is a no-op. */
void assay_log_destroy(struct assay_log *log);

/* True when a record at level would be written (log not NULL and level >= min_level). */
int assay_log_enabled(const struct assay_log *log, enum assay_log_level level);

/* Writes one record. msg may be NULL (written as ""); fields may be NULL when nfields is 0;
 * a field with type ASSAY_LOG_FIELD_END or a NULL key is skipped. NULL log is a no-op.
 * Write errors are ignored: logging never fails its caller. Thread-safe. */
void assay_log_write(struct assay_log *log, enum assay_log_level level, const char *msg,
                     const struct assay_log_field *fields, size_t nfields);

/* Convenience: assay_log_info(log, msg, ASSAY_LF_*(...), ...) with zero or more fields. */
#define ASSAY_LOG_AT_(log, level, msg, ...)                                                   \
	assay_log_write((log), (level), (msg), (const struct assay_log_field[]){__VA_ARGS__}, \
	                sizeof((const struct assay_log_field[]){__VA_ARGS__}) /               \
	                                sizeof(struct assay_log_field) -                      \
	                        1)
#define assay_log_debug(log, ...) ASSAY_LOG_AT_((log), ASSAY_LOG_DEBUG, __VA_ARGS__, ASSAY_LF_END)
#define assay_log_info(log, ...)  ASSAY_LOG_AT_((log), ASSAY_LOG_INFO, __VA_ARGS__, ASSAY_LF_END)
#define assay_log_warn(log, ...)  ASSAY_LOG_AT_((log), ASSAY_LOG_WARN, __VA_ARGS__, ASSAY_LF_END)
#define assay_log_error(log, ...) ASSAY_LOG_AT_((log), ASSAY_LOG_ERROR, __VA_ARGS__, ASSAY_LF_END)

/*
 * A rate limit for lines that input can cause in bulk (a dead letter, a rejection): at most
 * ASSAY_LOG_LIMIT_LINES lines per ASSAY_LOG_LIMIT_WINDOW_MS; the first line allowed after
 * others were dropped says how many (field "suppressed"). A plain value: zero it to start.
 * One thread.
 */
#define ASSAY_LOG_LIMIT_LINES     20
#define ASSAY_LOG_LIMIT_WINDOW_MS 10000

struct assay_log_limit {
	int64_t window_start_ms;
	int lines;       /* allowed in the current window */
	int64_t dropped; /* since the last allowed line */
};

/* Whether a line may be written now (now_ms: any monotonic clock in milliseconds). When it
 * may, *suppressed gets the number of lines dropped since the last one allowed. */
bool assay_log_limit_allow(struct assay_log_limit *l, int64_t now_ms, int64_t *suppressed);

/* "debug", "info", "warn", "error". */
const char *assay_log_level_name(enum assay_log_level level);

/* Parses "debug", "info", "warn" (or "warning"), "error", case-insensitively, into *out.
 * Returns 0, or ASSAY_ERR_REJECT (leaving *out alone) for anything else or NULL s. */
int assay_log_level_parse(const char *s, enum assay_log_level *out);

/* Routes one librdkafka log line (from rd_kafka_conf_set_log_cb) into log: syslog levels
 * 0-3 become error, 4 warn, 5-6 info, 7 debug; fields "fac" (fac) and "source":"librdkafka".
 * fac and buf may be NULL. Thread-safe (librdkafka calls it from its own threads). */
void assay_log_rdkafka(struct assay_log *log, int syslog_level, const char *fac, const char *buf);

#endif
