/*
 * The /metrics, /healthz and /readyz endpoint: one thread running a poll(2) loop over the
 * listening socket, a self-pipe (written by assay_http_stop) and up to
 * ASSAY_HTTP_MAX_CONNECTIONS non-blocking connections. Each connection reads one request head
 * (bounded in size and time), gets one response, and is closed after a short lingering drain
 * so the client reads the response rather than a reset. When every slot is taken, the oldest
 * connection is dropped for the new one.
 */
#include "assay_http.h"
#include "assay_err.h"
#include "assay_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MS 1000

enum conn_state { CONN_FREE, CONN_READING, CONN_WRITING, CONN_DRAINING };

struct conn {
	enum conn_state state;
	int fd;
	uint64_t seq; /* accept order: the lowest is dropped first when all slots are taken */
	int64_t deadline_ms;
	size_t len;
	char req[ASSAY_HTTP_MAX_REQUEST];
	char *resp; /* malloc'd, whole response */
	size_t resp_len;
	size_t resp_off;
};

struct assay_http {
	struct assay_metrics *m;
	int listen_fd;
	int pipe_fds[2]; /* [0] polled by the thread, [1] written by stop */
	int port;
	uint64_t accepted; /* connections accepted so far */
	_Atomic int64_t max_silence_ms;
	pthread_t thread;
	struct conn conns[ASSAY_HTTP_MAX_CONNECTIONS];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct conn *c)
{
	if (c->state == CONN_FREE)
		return;
	close(c->fd);
	free(c->resp);
	c->resp = NULL;
	c->fd = -1;
	c->state = CONN_FREE;
}

/* Prepares the whole response in c->resp and switches to writing. body may be NULL. */
static void respond(struct conn *c, int status, const char *reason, const char *ctype,
                    const char *extra_headers, const char *body, size_t body_len, bool head_only)
{
	char head[512];
	int n;

	n = snprintf(head, sizeof(head),
	             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
	             "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
	             status, reason, ctype, body_len, extra_headers != NULL ? extra_headers : "");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		conn_close(c);
		return;
	}
	if (head_only || body == NULL)
		body_len = 0;
	c->resp = malloc((size_t)n + body_len);
	if (c->resp == NULL) {
		conn_close(c);
		return;
	}
	memcpy(c->resp, head, (size_t)n);
	if (body_len > 0)
		memcpy(c->resp + n, body, body_len);
	c->resp_len = (size_t)n + body_len;
	c->resp_off = 0;
	c->state = CONN_WRITING;
}

static void respond_text(struct conn *c, int status, const char *reason, const char *body,
                         bool head_only)
{
	respond(c, status, reason, "text/plain; charset=utf-8", NULL, body, strlen(body),
	        head_only);
}

/* Length of the head if req[0..len) holds a complete one (ends with an empty line), else 0. */
static size_t head_end(const char *req, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++) {
		if (req[i] != '\n')
			continue;
		if (req[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && req[i + 1] == '\r' && req[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static bool is_token_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static void serve_path(struct assay_http *h, struct conn *c, const char *path, size_t path_len,
                       bool head_only)
{
	char *text = NULL;
	size_t text_len = 0;

	if (path_len == 8 && memcmp(path, "/metrics", 8) == 0) {
		if (assay_metrics_render(h->m, &text, &text_len) != 0) {
			respond_text(c, 500, "Internal Server Error", "cannot render metrics\n",
			             head_only);
			return;
		}
		respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, text,
		        text_len, head_only);
		free(text);
	} else if (path_len == 8 && memcmp(path, "/healthz", 8) == 0) {
		/* alive while the loop runs; a problem a restart would not cure is said, not
		 * failed */
		char problem[512], body[600];

		if (!assay_metrics_alive(h->m, atomic_load(&h->max_silence_ms)))
			respond_text(c, 503, "Service Unavailable", "main loop stalled\n",
			             head_only);
		else if (assay_metrics_problem(h->m, problem, sizeof(problem))) {
			snprintf(body, sizeof(body), "degraded: %s\n", problem);
			respond_text(c, 200, "OK", body, head_only);
		} else
			respond_text(c, 200, "OK", "ok\n", head_only);
	} else if (path_len == 7 && memcmp(path, "/readyz", 7) == 0) {
		char problem[512], body[600];

		if (assay_metrics_ready(h->m))
			respond_text(c, 200, "OK", "ok\n", head_only);
		else if (assay_metrics_problem(h->m, problem, sizeof(problem))) {
			snprintf(body, sizeof(body), "not ready: %s\n", problem);
			respond_text(c, 503, "Service Unavailable", body, head_only);
		} else
			respond_text(c, 503, "Service Unavailable", "not ready\n", head_only);
	} else {
		respond_text(c, 404, "Not Found", "not found\n", head_only);
	}
}

/* Parses the request line of a complete head and prepares the response. */
static void handle_request(struct assay_http *h, struct conn *c, size_t head_len)
{
	const char *p = c->req, *end, *method, *target, *version;
	size_t method_len, target_len, path_len;
	bool head_only;

	end = memchr(p, '\n', head_len);
	if (end > p && end[-1] == '\r')
		end--;
	if (memchr(p, '\0', head_len) != NULL)
		goto bad;
	method = p;
	while (p < end && is_token_char(*p))
		p++;
	method_len = (size_t)(p - method);
	if (method_len == 0 || p >= end || *p != ' ')
		goto bad;
	target = ++p;
	while (p < end && *p != ' ')
		p++;
	target_len = (size_t)(p - target);
	if (target_len == 0 || p >= end || *p != ' ')
		goto bad;
	version = ++p;
	if ((size_t)(end - version) != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
	    (version[7] != '0' && version[7] != '1'))
		goto bad;
	head_only = method_len == 4 && memcmp(method, "HEAD", 4) == 0;
	if (!head_only && !(method_len == 3 && memcmp(method, "GET", 3) == 0)) {
		respond(c, 405, "Method Not Allowed", "text/plain; charset=utf-8",
		        "Allow: GET, HEAD\r\n", "method not allowed\n",
		        strlen("method not allowed\n"), false);
		return;
	}
	if (*target != '/') {
		respond_text(c, 404, "Not Found", "not found\n", head_only);
		return;
	}
	for (path_len = 0; path_len < target_len && target[path_len] != '?'; path_len++)
		;
	serve_path(h, c, target, path_len, head_only);
	return;
bad:
	respond_text(c, 400, "Bad Request", "bad request\n", false);
}

static void conn_read(struct assay_http *h, struct conn *c)
{
	char discard[1024];
	ssize_t n;
	size_t end;

	if (c->state == CONN_DRAINING) {
		n = recv(c->fd, discard, sizeof(discard), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			conn_close(c);
		return;
	}
	n = recv(c->fd, c->req + c->len, sizeof(c->req) - c->len, 0);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(c);
		return;
	}
	if (n == 0) { /* the client gave up before finishing its request */
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	end = head_end(c->req, c->len);
	if (end > 0)
		handle_request(h, c, end);
	else if (c->len == sizeof(c->req))
		respond_text(c, 431, "Request Header Fields Too Large", "request too large\n",
		             false);
}

static void conn_write(struct conn *c)
{
	ssize_t n;

	n = send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(c);
		return;
	}
	c->resp_off += (size_t)n;
	if (c->resp_off < c->resp_len)
		return;
	/* all sent: half-close, then read and discard until the client closes, so unread
	 * request bytes do not turn our close into a reset that loses the response */
	free(c->resp);
	c->resp = NULL;
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_DRAINING;
	if (c->deadline_ms > now_ms() + LINGER_MS)
		c->deadline_ms = now_ms() + LINGER_MS;
}

static void accept_all(struct assay_http *h)
{
	struct conn *c, *oldest;
	size_t i;
	int fd;

	for (;;) {
		fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a transient error (EMFILE, ECONNABORTED): poll again
			         */
		c = NULL;
		oldest = &h->conns[0];
		for (i = 0; i < ASSAY_HTTP_MAX_CONNECTIONS; i++) {
			if (h->conns[i].state == CONN_FREE) {
				c = &h->conns[i];
				break;
			}
			if (h->conns[i].seq < oldest->seq)
				oldest = &h->conns[i];
		}
		if (c == NULL) { /* full: the oldest connection makes room */
			conn_close(oldest);
			c = oldest;
		}
		c->fd = fd;
		c->state = CONN_READING;
		c->len = 0;
		c->seq = ++h->accepted;
		c->deadline_ms = now_ms() + ASSAY_HTTP_TIMEOUT_MS;
	}
}

static void *serve(void *arg)
{
	struct assay_http *h = arg;
	struct pollfd pfds[2 + ASSAY_HTTP_MAX_CONNECTIONS];
	int slot[2 + ASSAY_HTTP_MAX_CONNECTIONS];
	struct conn *c;
	int64_t now, wait;
	int nfds, timeout, i, rc;

	for (;;) {
		pfds[0] = (struct pollfd){.fd = h->pipe_fds[0], .events = POLLIN};
		pfds[1] = (struct pollfd){.fd = h->listen_fd, .events = POLLIN};
		nfds = 2;
		timeout = -1;
		now = now_ms();
		for (i = 0; i < ASSAY_HTTP_MAX_CONNECTIONS; i++) {
			c = &h->conns[i];
			if (c->state == CONN_FREE)
				continue;
			pfds[nfds] = (struct pollfd){
			        .fd = c->fd,
			        .events = c->state == CONN_WRITING ? POLLOUT : POLLIN,
			};
			slot[nfds++] = i;
			wait = c->deadline_ms > now ? c->deadline_ms - now : 0;
			if (timeout < 0 || wait < timeout)
				timeout = (int)wait;
		}
		rc = poll(pfds, (nfds_t)nfds, timeout);
		if (rc < 0 && errno != EINTR)
			break; /* cannot happen with valid fds; stop serving rather than spin */
		if (rc > 0 && (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
			break;
		for (i = 2; rc > 0 && i < nfds; i++) {
			c = &h->conns[slot[i]];
			if (pfds[i].revents == 0)
				continue;
			if (c->state == CONN_WRITING)
				conn_write(c);
			else
				conn_read(h, c);
		}
		now = now_ms();
		for (i = 0; i < ASSAY_HTTP_MAX_CONNECTIONS; i++) {
			if (h->conns[i].state != CONN_FREE && h->conns[i].deadline_ms <= now)
				conn_close(&h->conns[i]);
		}
		if (rc > 0 && (pfds[1].revents & POLLIN) != 0)
			accept_all(h);
	}
	return NULL;
}

struct assay_http *assay_http_start(const char *address, int port, struct assay_metrics *m,
                                    char *errstr, size_t errstr_size)
{
	struct assay_http *h = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	int one = 1, i;

	if (address == NULL)
		address = "127.0.0.1";
	if (m == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "start http endpoint: no metrics");
		return NULL;
	}
	if (port < 0 || port > 65535) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "start http endpoint: port %d out of range 0..65535", port);
		return NULL;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, address, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, address, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*sin6);
	} else {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "start http endpoint: \"%s\" is not a numeric IP address", address);
		return NULL;
	}

	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "start http endpoint: out of memory");
		return NULL;
	}
	h->m = m;
	h->pipe_fds[0] = h->pipe_fds[1] = -1;
	atomic_init(&h->max_silence_ms, ASSAY_HTTP_DEFAULT_MAX_SILENCE_MS);
	for (i = 0; i < ASSAY_HTTP_MAX_CONNECTIONS; i++)
		h->conns[i].fd = -1;

	h->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->listen_fd < 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "start http endpoint: socket: %s",
		           strerror(errno));
		goto err_free;
	}
	setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(h->listen_fd, (struct sockaddr *)&ss, sslen) != 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "start http endpoint: bind %s port %d: %s", address, port,
		           strerror(errno));
		goto err_socket;
	}
	if (listen(h->listen_fd, 64) != 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "start http endpoint: listen: %s",
		           strerror(errno));
		goto err_socket;
	}
	sslen = sizeof(ss);
	if (getsockname(h->listen_fd, (struct sockaddr *)&ss, &sslen) != 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "start http endpoint: getsockname: %s", strerror(errno));
		goto err_socket;
	}
	h->port = ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
	if (pipe2(h->pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "start http endpoint: pipe: %s",
		           strerror(errno));
		goto err_socket;
	}
	if ((errno = pthread_create(&h->thread, NULL, serve, h)) != 0) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		           "start http endpoint: pthread_create: %s", strerror(errno));
		goto err_pipe;
	}
	return h;

err_pipe:
	close(h->pipe_fds[0]);
	close(h->pipe_fds[1]);
err_socket:
	close(h->listen_fd);
err_free:
	free(h);
	return NULL;
}

int assay_http_port(const struct assay_http *h)
{
	return h == NULL ? -1 : h->port;
}

void assay_http_set_max_silence(struct assay_http *h, int64_t max_silence_ms)
{
	if (h != NULL && max_silence_ms > 0)
		atomic_store(&h->max_silence_ms, max_silence_ms);
}

void assay_http_stop(struct assay_http *h)
{
	ssize_t w;
	int i;

	if (h == NULL)
		return;
	do
		w = write(h->pipe_fds[1], "x", 1);
	while (w < 0 && errno == EINTR);
	pthread_join(h->thread, NULL);
	for (i = 0; i < ASSAY_HTTP_MAX_CONNECTIONS; i++)
		conn_close(&h->conns[i]);
	close(h->pipe_fds[0]);
	close(h->pipe_fds[1]);
	close(h->listen_fd);
	free(h);
}
