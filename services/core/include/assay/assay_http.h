/*
 * The operations endpoint: a tiny HTTP/1.0-style server on its own thread serving
 *
 *	GET /metrics	200, Prometheus text format 0.0.4 from the registry
 *	GET /healthz	200 "ok" while the loop heartbeats (assay_metrics_heartbeat) within the
 *			liveness window (30 s unless changed), else 503
 *	GET /readyz	200 "ok" after assay_metrics_set_ready(m, true), else 503
 *	anything else	404; a method other than GET or HEAD: 405; malformed: 400
 *
 * Every response closes the connection. Requests are capped in size (ASSAY_HTTP_MAX_REQUEST)
 * and time (ASSAY_HTTP_TIMEOUT_MS per connection); several connections are served at once,
 * so a slow or silent client cannot hold the endpoint. Meant for loopback or a trusted
 * network: there is no TLS and no authentication.
 */
#ifndef ASSAY_HTTP_H
#define ASSAY_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct assay_metrics;
struct assay_http;

#define ASSAY_HTTP_MAX_REQUEST            8192
#define ASSAY_HTTP_TIMEOUT_MS             5000
#define ASSAY_HTTP_MAX_CONNECTIONS        16
#define ASSAY_HTTP_DEFAULT_MAX_SILENCE_MS 30000

/*
 * Binds address (numeric IPv4 or IPv6, e.g. "127.0.0.1"; NULL means "127.0.0.1") and port
 * (0 = an ephemeral port, see assay_http_port), and starts the serving thread. m is not owned
 * and must outlive assay_http_stop. Returns NULL with the reason in errstr (bad address, port
 * out of range, bind or listen failure such as the port being taken, thread creation failure).
 */
struct assay_http *assay_http_start(const char *address, int port, struct assay_metrics *m,
                                    char *errstr, size_t errstr_size);

/* The bound TCP port (the actual one when started with 0); -1 for NULL. */
int assay_http_port(const struct assay_http *h);

/* Changes the liveness window of /healthz (ms, > 0). Thread-safe; NULL h is a no-op. */
void assay_http_set_max_silence(struct assay_http *h, int64_t max_silence_ms);

/* Stops the thread (waking it through a self-pipe), closes every connection and the listening
 * socket, frees h. NULL is a no-op. Call from the thread that started it. */
void assay_http_stop(struct assay_http *h);

#endif
