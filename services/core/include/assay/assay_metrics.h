/*
 * Prometheus metrics registry and health state.
 *
 * A service creates one registry, gets handles for its counters, gauges and histograms once
 * (creation takes a lock), then updates them from any thread with C11 atomics only, while the
 * HTTP thread renders the text exposition format 0.0.4 (HELP/TYPE lines, histogram buckets
 * cumulative up to le="+Inf", _sum and _count). The registry owns every handle; handles stay
 * valid until assay_metrics_destroy. Update functions accept a NULL handle as a no-op, so a
 * failed creation costs a metric, never a crash.
 *
 * Labels are given at creation as one preformatted string, `topic="a",partition="0"`: label
 * names [a-zA-Z_][a-zA-Z0-9_]*, values quoted with \\, \" and \n escaped (use
 * assay_metrics_escape_label for values that may contain them). The same name and label string
 * return the same handle.
 *
 * The health block: the loop calls assay_metrics_heartbeat each iteration and
 * assay_metrics_set_ready when its dependencies are up; /healthz and /readyz read them.
 * Rendered as assay_ready and assay_heartbeat_age_seconds, plus assay_service_info{svc=...}.
 */
#ifndef ASSAY_METRICS_H
#define ASSAY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct assay_metrics;
struct assay_counter;
struct assay_gauge;
struct assay_histogram;

/* Creates a registry for service svc (copied; NULL means ""). NULL when out of memory. The
 * heartbeat clock starts now, so a loop has max_silence_ms to send its first heartbeat. */
struct assay_metrics *assay_metrics_new(const char *svc);

/* Frees the registry and all its handles. Stop the HTTP endpoint first. NULL is a no-op. */
void assay_metrics_destroy(struct assay_metrics *m);

/*
 * Returns the counter name{labels}, creating it at 0 on first use. name must match
 * [a-zA-Z_:][a-zA-Z0-9_:]* and end in "_total"; help (may be NULL) is taken from the first
 * creation of the name; labels may be NULL or "" for none. Returns NULL for an invalid name or
 * label string, a name already used by another metric type, or out of memory. Thread-safe.
 */
struct assay_counter *assay_metrics_counter(struct assay_metrics *m, const char *name,
                                            const char *help, const char *labels);
void assay_counter_add(struct assay_counter *c, uint64_t n);
uint64_t assay_counter_value(const struct assay_counter *c); /* 0 for NULL */

/* Same rules as counters, except the name need not end in "_total". Starts at 0. */
struct assay_gauge *assay_metrics_gauge(struct assay_metrics *m, const char *name, const char *help,
                                        const char *labels);
void assay_gauge_set(struct assay_gauge *g, double v);
void assay_gauge_add(struct assay_gauge *g, double delta); /* negative to decrease */
double assay_gauge_value(const struct assay_gauge *g);     /* 0 for NULL */

/*
 * Returns the histogram name (no labels) with n upper bounds (copied; finite, strictly
 * increasing; the +Inf bucket is implicit; n may be 0). A second call with the same name
 * returns the existing histogram if the bounds are identical, else NULL. NULL also for an
 * invalid name or bounds or out of memory. Thread-safe.
 */
struct assay_histogram *assay_metrics_histogram(struct assay_metrics *m, const char *name,
                                                const char *help, const double *bounds, size_t n);
/* Counts v in the first bucket with v <= bound (or +Inf) and adds it to the sum; NaN is
 * ignored. */
void assay_histogram_observe(struct assay_histogram *h, double v);
uint64_t assay_histogram_count(const struct assay_histogram *h); /* 0 for NULL */

/* Renders every metric into a malloc'd, NUL-terminated buffer (*out, to be freed by the
 * caller) of *len bytes, ending with "\n". Returns 0, or ASSAY_ERR_FATAL (out of memory or
 * NULL argument; *out set to NULL). Thread-safe against updates and creation. */
int assay_metrics_render(struct assay_metrics *m, char **out, size_t *len);

/* Readiness: false at creation. Thread-safe; NULL m is a no-op. */
void assay_metrics_set_ready(struct assay_metrics *m, bool ready);
/* Ready: set ready and no problem. */
bool assay_metrics_ready(struct assay_metrics *m);

/* A problem that makes the service unready although its loop runs (e.g. the relay cannot
 * publish), in words; NULL clears it. Copied. Thread-safe. */
void assay_metrics_set_problem(struct assay_metrics *m, const char *problem);
/* The problem into out (size bytes, NUL-terminated): true when there is one. */
bool assay_metrics_problem(struct assay_metrics *m, char *out, size_t size);

/* Records that the loop is making progress (monotonic clock). Thread-safe; cheap. */
void assay_metrics_heartbeat(struct assay_metrics *m);

/* True when the last heartbeat (or creation) is at most max_silence_ms ago. False for NULL. */
bool assay_metrics_alive(struct assay_metrics *m, int64_t max_silence_ms);

/* Escapes value for use between the quotes of a label: \ → \\, " → \", newline → \n. Writes
 * at most size bytes including the terminator into out (size 0: nothing written). Returns the
 * length the escaped value needs, excluding the terminator, like snprintf. */
size_t assay_metrics_escape_label(char *out, size_t size, const char *value);

#endif
