/*
 * Helpers shared by the cmocka tests: the local stack's addresses and unique names so
 * that tests never collide with each other or with an earlier run.
 */
#ifndef ASSAY_TEST_H
#define ASSAY_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* ASSAY_KAFKA_BROKERS, or fails the test with a hint to run `compose/stack up`. */
const char *assay_test_brokers(void);

/* ASSAY_PG_URL, or fails the test with the same hint. */
const char *assay_test_pg_url(void);

/* Writes "<prefix>-<pid>-<counter>-<random>" into buf: unique across runs and processes. */
void assay_test_unique(char *buf, size_t size, const char *prefix);

#endif
