/*
 * Service processes for tests and benchmarks (see assay_test_service.h): fork and execve with
 * a chosen environment, SIGTERM with a bounded wait, a teardown that kills leftovers, and a
 * minimal HTTP GET for the services' /metrics and health endpoints.
 */
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_test_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_RUNNING  16
#define STOP_TIMEOUT 120000

extern char **environ;

/* The processes started and not yet reaped, for the teardown (0: a free slot). */
static pid_t running[MAX_RUNNING];

static void remember(pid_t pid)
{
	for (int i = 0; i < MAX_RUNNING; i++)
		if (running[i] == 0) {
			running[i] = pid;
			return;
		}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fail_msg("more than %d service processes at once", MAX_RUNNING);
}

static void forget(pid_t pid)
{
	for (int i = 0; i < MAX_RUNNING; i++)
		if (running[i] == pid)
			running[i] = 0;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool inherited(const char *var, const char *const *inherit)
{
	if (!starts_with(var, "ASSAY_") || starts_with(var, "ASSAY_KAFKA_BROKERS="))
		return true;
	for (; inherit != NULL && *inherit != NULL; inherit++)
		if (starts_with(var, *inherit))
			return true;
	return false;
}

pid_t assay_test_service_start(const char *path, const char *const *argv, const char *const *vars,
                               const char *const *inherit, int stderr_fd)
{
	char bin[1024];
	const char *default_argv[2];
	char **envp;
	size_t n = 0, cap = 1;
	pid_t pid;

	if (strchr(path, '/') == NULL) {
		snprintf(bin, sizeof(bin), "%s/bin/%s", ASSAY_BINARY_DIR, path);
		default_argv[0] = path;
	} else {
		snprintf(bin, sizeof(bin), "%s", path);
		default_argv[0] = strrchr(path, '/') + 1;
	}
	default_argv[1] = NULL;
	if (argv == NULL)
		argv = default_argv;
	for (size_t i = 0; vars != NULL && vars[i] != NULL; i++)
		cap++;
	for (char **e = environ; *e != NULL; e++)
		cap++;
	envp = calloc(cap, sizeof(*envp));
	assert_non_null(envp);
	for (size_t i = 0; vars != NULL && vars[i] != NULL; i++)
		envp[n++] = (char *)vars[i];
	for (char **e = environ; *e != NULL; e++)
		if (inherited(*e, inherit))
			envp[n++] = *e;
	envp[n] = NULL;
	pid = fork();
	if (pid == 0) {
		if (stderr_fd >= 0)
			dup2(stderr_fd, STDERR_FILENO);
		execve(bin, (char *const *)argv, envp);
		_exit(127);
	}
	free(envp);
	if (pid < 0)
		fail_msg("fork %s failed", bin);
	remember(pid);
	return pid;
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int assay_test_service_stop(pid_t pid)
{
	int64_t deadline = assay_test_now_ms() + STOP_TIMEOUT;
	int status = 0;
	pid_t got = 0;

	if (kill(pid, SIGTERM) != 0)
		fail_msg("kill %d: no such process", (int)pid);
	while ((got = waitpid(pid, &status, WNOHANG)) == 0 && assay_test_now_ms() < deadline)
		usleep(20 * 1000);
	if (got == 0) {
		print_error("process %d did not stop within %d s: killed\n", (int)pid,
		            STOP_TIMEOUT / 1000);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		forget(pid);
		return -1;
	}
	forget(pid);
	if (got != pid)
		fail_msg("waitpid %d failed", (int)pid);
	return exit_code(status);
}

int assay_test_service_wait(pid_t pid)
{
	int status = 0;
	pid_t got = waitpid(pid, &status, 0);

	forget(pid);
	if (got != pid)
		fail_msg("waitpid %d failed", (int)pid);
	return exit_code(status);
}

int assay_test_service_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < MAX_RUNNING; i++)
		if (running[i] > 0) {
			kill(running[i], SIGKILL);
			waitpid(running[i], NULL, 0);
			running[i] = 0;
		}
	return 0;
}

int assay_test_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int assay_test_http_get(int port, const char *path, char *body, size_t size)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char req[512];
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0, len;
	const char *sep;

	body[0] = '\0';
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return 0;
	}
	len = snprintf(req, sizeof(req),
	               "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	if (len < 0 || (size_t)len >= sizeof(req) || write(fd, req, (size_t)len) != len) {
		close(fd);
		return 0;
	}
	while (got < size - 1 && (n = read(fd, body + got, size - 1 - got)) > 0)
		got += (size_t)n;
	body[got] = '\0';
	close(fd);
	sscanf(body, "HTTP/1.%*d %d", &status);
	sep = strstr(body, "\r\n\r\n");
	if (sep != NULL)
		memmove(body, sep + 4, strlen(sep + 4) + 1);
	else
		body[0] = '\0';
	return status;
}

double assay_test_metric(int port, const char *name)
{
	size_t size = 1 << 18, nl = strlen(name);
	char *body = malloc(size);
	double v = -1;

	assert_non_null(body);
	if (assay_test_http_get(port, "/metrics", body, size) != 200) {
		free(body);
		return -1;
	}
	for (char *p = body; p != NULL && *p != '\0';
	     p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{')) {
			char *sp = strchr(p + nl, ' ');

			v = sp ? strtod(sp + 1, NULL) : -1;
			break;
		}
	free(body);
	return v;
}

long assay_test_peak_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}
