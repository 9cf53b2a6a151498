/*
 * A small handler for testing and benchmarking the batch loop: it copies every message into
 * the table loop_rows and emits one event per message ("out:" + value) on an output topic.
 * A message whose value starts with "poison" is dead-lettered by the handler (a rule it breaks);
 * one whose value is "dbreject" passes the handler but is refused by a CHECK constraint of the
 * table, so the loop's database-side rejection path is exercised too.
 */
#ifndef ASSAY_TEST_LOOP_H
#define ASSAY_TEST_LOOP_H

#include "assay_loop.h"
#include "assay_metrics.h"
#include "assay_pg.h"

#include <pthread.h>
#include <signal.h>

struct assay_test_copy_handler {
	const char *instance;  /* written into every row */
	const char *out_topic; /* where the events go */
	struct assay_copybuf rows;
	int assignments; /* calls of the assigned hook */
	int partitions;  /* partitions in the last assignment */
};

void assay_test_copy_handler_init(struct assay_test_copy_handler *h, const char *instance,
                                  const char *out_topic);
void assay_test_copy_handler_release(struct assay_test_copy_handler *h);
/* The handler table entry for h (stage "loop-test", no decoding). */
struct assay_handler assay_test_copy_handler(struct assay_test_copy_handler *h);

/* Applies the migrations and creates loop_rows in the database at url (fails the test on
 * error). */
void assay_test_loop_schema(const char *url);

/* A loop configuration for tests: the settings table's defaults (assay_loop_config_init) with
 * fast session timeouts and small backoffs; deadletter_topic NULL keeps the default topic. */
void assay_test_loop_config(struct assay_loop_config *cfg, const char *service,
                            const char *instance, const char *pg_url, const char **topic,
                            const char *deadletter_topic, const volatile sig_atomic_t *stop);

/* Produces n messages "msg-<first+i>" with keys "k-<i>" (spread over partitions by key) and
 * waits for every delivery. Values for the indexes in poison[] / dbreject[] (each list ends
 * with -1; may be NULL) are "poison" / "dbreject". */
void assay_test_produce(const char *topic, int first, int n, const int *poison,
                        const int *dbreject);

/* Rows in loop_rows, and distinct (topic, partition, offset) among them. */
void assay_test_loop_counts(const char *url, long *rows, long *distinct);

/* A loop run by assay_loop_run in a thread of its own. */
struct assay_test_loop_thread {
	struct assay_loop *loop; /* owned: destroyed by assay_test_loop_thread_join */
	pthread_t thread;
	volatile int rc; /* assay_loop_run's result once it returned; 0 while it runs */
	char errstr[512];
};

/* Creates a loop (assay_loop_new(cfg, handler); fails the test when it cannot) and starts
 * assay_loop_run in a new thread. cfg->stop is how the caller ends it. */
void assay_test_loop_thread_start(struct assay_test_loop_thread *t,
                                  const struct assay_loop_config *cfg,
                                  const struct assay_handler *handler);

/* Waits, polling every millisecond, until counter reaches want or the loop has ended with an
 * error. */
void assay_test_loop_thread_wait(const struct assay_test_loop_thread *t,
                                 const struct assay_counter *counter, uint64_t want);

/* Waits for the thread to end (the caller has set the loop's stop flag), destroys the loop and
 * returns assay_loop_run's result, with the reason in t->errstr. */
int assay_test_loop_thread_join(struct assay_test_loop_thread *t);

#endif
