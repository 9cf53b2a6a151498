/*
 * Avro helpers for tests: fill a generic value with every field set, so that a round trip
 * through the codec exercises every part of a schema; or complete a value that has only the
 * fields a test cares about.
 */
#ifndef ASSAY_TEST_CODEC_H
#define ASSAY_TEST_CODEC_H

#include <avro.h>

/*
 * Fills value (a fresh generic value, borrowed) by walking its schema: strings (with non-ASCII
 * UTF-8), bytes, numbers, booleans, enums (a symbol other than the first where there is one),
 * fixed, every record field, arrays with 2 elements, maps with 2 entries, and the first
 * non-null branch of each union (the null branch below nesting depth 6, so recursive schemas
 * end). seed varies the values. Fails the current cmocka test when avro-c refuses a value.
 */
void assay_test_fill_value(avro_value_t *value, unsigned seed);

/*
 * Selects the null branch of every union in value (walking records, arrays, maps and the
 * branches already selected) that has no branch selected yet, so that a value with only the
 * fields a test sets still encodes. A union without a null branch is left alone. value is
 * borrowed. Fails the current cmocka test when avro-c refuses a step.
 */
void assay_test_null_unset_unions(avro_value_t *value);

#endif
