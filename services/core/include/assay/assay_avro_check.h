/*
 * Validation of an Avro binary body against its writer's schema, before avro-c reads it.
 *
 * avro-c 1.11.1 mallocs whatever length a crafted varint claims (negative or huge), leaks the
 * buffer when a string or bytes value is truncated, and recurses without limit. This walker
 * reads the body as the Avro specification defines it and refuses anything avro-c could trip
 * on, so that a body it accepts decodes cleanly with avro_value_read.
 */
#ifndef ASSAY_AVRO_CHECK_H
#define ASSAY_AVRO_CHECK_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting of records, arrays, maps and unions deeper than this is refused. */
#define ASSAY_AVRO_MAX_DEPTH 64

/* Items of a type that encodes to zero bytes (null, empty record, fixed of size 0) cost
 * nothing on the wire but memory in avro-c; one body may hold at most this many. */
#define ASSAY_AVRO_MAX_EMPTY_ITEMS 65536

/* Checks that body (len bytes; body may be NULL when len is 0) holds exactly one value of
 * schema (borrowed) and nothing after it. Refuses, each with its own message in errstr:
 * a varint longer than 10 bytes (5 for an int) or overflowing 64 bits, an int outside 32 bits,
 * a boolean byte other than 0 or 1, a negative string/bytes length or block size, a length,
 * block, float, double or fixed that runs past the end ("truncated ..."), a string that is not
 * UTF-8 (overlong forms, surrogates, code points over U+10FFFF) or holds a NUL byte (PostgreSQL
 * text cannot store it), a union branch or enum index out of range, a block whose items do not
 * fill its declared byte size, too many zero-size items, nesting deeper than
 * ASSAY_AVRO_MAX_DEPTH, and trailing bytes after the value.
 * Returns 0 or ASSAY_ERR_REJECT. Thread-safe; allocates nothing. */
int assay_avro_check(avro_schema_t schema, const void *body, size_t len, char *errstr,
                     size_t errstr_size);

/* Checks one value of schema starting at body[*pos] (trailing bytes allowed) as assay_avro_check
 * does, for a reader that skips values of a writer's schema: depth is the nesting depth of the
 * value, *empty_items the zero-size items counted so far in this body (updated), field the
 * record field named in messages (may be NULL). Moves *pos past the value on success (and to
 * the bad byte on failure). Returns 0 or ASSAY_ERR_REJECT. Thread-safe; allocates nothing. */
int assay_avro_check_at(avro_schema_t schema, const void *body, size_t len, size_t *pos, int depth,
                        size_t *empty_items, const char *field, char *errstr, size_t errstr_size);

/* The fewest bytes a value of schema can take on the wire (0 for null, an empty record,
 * fixed(0)); what a block of n items needs at least is n times this. */
uint64_t assay_avro_min_size(avro_schema_t schema);

#endif
