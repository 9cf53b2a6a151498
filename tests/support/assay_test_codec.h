/*
 * Avro helpers for tests: fill a generic value with every field set, so that a round trip
 * through the codec exercises every part of a schema; or complete a value that has only the
 * fields a test cares about.
 */
#ifndef ASSAY_TEST_CODEC_H
#define ASSAY_TEST_CODEC_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * avro-c's framed encoding of value (borrowed) with registry id id, written by avro_value_write
 * (not assay_codec_encode, whose avro_value_sizeof miscounts some values) into *frame, a
 * malloc'd buffer of exactly *len bytes (so ASan sees any over-read; the caller frees). Fails
 * the current cmocka test when avro-c refuses the value or it exceeds 1 MiB.
 */
void assay_test_avroc_frame(int32_t id, avro_value_t *value, void **frame, size_t *len);

/* Switches every union in value (records, arrays and maps walked) that has a null branch to
 * it. Fails the current cmocka test when avro-c refuses a step. */
void assay_test_null_every_union(avro_value_t *value);

#endif
