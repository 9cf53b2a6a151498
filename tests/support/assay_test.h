/*
 * Helpers shared by the cmocka tests: the local stack's addresses, unique names so that
 * tests never collide with each other or with an earlier run, and civil dates as day numbers.
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

/* Days since 1970-01-01 of the civil date year-month-mday (proleptic Gregorian calendar), as
 * an Avro date holds it; computed here independently of the code under test. */
int32_t assay_test_day(int year, int month, int mday);

#endif
