/*
 * Service processes for tests and benchmarks: start an executable (a service of this build,
 * or the test program itself) with an environment of ASSAY_* variables chosen by the test,
 * stop it with SIGTERM, kill whatever a failed test left running, and talk to it over HTTP
 * (/metrics, /healthz, /readyz) on a free port.
 *
 * Helpers fail the running cmocka test where they say so; the started processes are
 * remembered (at most 16 at a time) so that assay_test_service_teardown can end them.
 */
#ifndef ASSAY_TEST_SERVICE_H
#define ASSAY_TEST_SERVICE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Starts a process and returns its pid.
 * path: an executable path (with a '/'), or the name of an executable of this build's bin/
 *   directory, e.g. "assay-intake".
 * argv: its arguments, NULL-terminated (argv[0] included); NULL: just the name.
 * vars: "NAME=value" strings, NULL-terminated; they come first in the environment, followed
 *   by this process's environment without the variables whose names start with "ASSAY_"
 *   (so that a setting of the test run never leaks into the service), except
 *   ASSAY_KAFKA_BROKERS and those starting with one of the prefixes in inherit
 *   (NULL-terminated, e.g. "ASSAY_BATCH_"; may be NULL).
 * stderr_fd: the child's stderr when >= 0 (the caller keeps its own descriptor); -1: shared.
 * Fails the test when the process cannot be forked. An exec failure ends the child with 127.
 */
pid_t assay_test_service_start(const char *path, const char *const *argv, const char *const *vars,
                               const char *const *inherit, int stderr_fd);

/*
 * Sends SIGTERM and waits for the process to end; after 120 s it is killed (SIGKILL).
 * Returns its exit status (0..255), or -1 when it ended by a signal or had to be killed.
 */
int assay_test_service_stop(pid_t pid);

/* Waits for the process to end by itself; returns the exit status as assay_test_service_stop
 * does. */
int assay_test_service_wait(pid_t pid);

/* A cmocka teardown (state unused): kills (SIGKILL) and reaps every process started by
 * assay_test_service_start and not yet stopped or waited for, e.g. after a failed assertion
 * ended the test early. Returns 0. */
int assay_test_service_teardown(void **state);

/* A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice). */
int assay_test_free_port(void);

/*
 * GET path from http://127.0.0.1:port. Returns the status code (0 when nothing answers) and
 * the body in body (NUL-terminated; the response is read into body whole, so at most
 * size - 1 bytes of headers and body together).
 */
int assay_test_http_get(int port, const char *path, char *body, size_t size);

/* The value of the first line "name value" or "name{labels} value" on /metrics at port, or -1
 * when it is not there or nothing answers. */
double assay_test_metric(int port, const char *name);

/* Peak resident memory (VmHWM) of a running process in kB, or -1. */
long assay_test_peak_rss_kb(pid_t pid);

#endif
