/*
 * A per-batch arena: many small allocations that all die together.
 *
 * Memory comes from blocks of at least ASSAY_ARENA_BLOCK bytes (a larger request gets a block
 * of its own). assay_arena_reset makes everything allocated since init or the last reset
 * invalid at once and keeps the largest block for the next batch, so a steady batch size
 * stops calling malloc; assay_arena_release frees it all.
 *
 * A plain value: assay_arena_init, assay_arena_release. Not thread-safe (one per thread).
 */
#ifndef ASSAY_ARENA_H
#define ASSAY_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#define ASSAY_ARENA_BLOCK 16384

struct assay_arena_block;

struct assay_arena {
	struct assay_arena_block *blocks; /* newest first */
	unsigned char *next, *end;        /* free space of the newest block */
	size_t used;                      /* bytes handed out since the last reset */
};

/* An empty arena (allocates nothing yet). */
void assay_arena_init(struct assay_arena *a);

/* size bytes aligned for any type (max_align_t), valid until the next reset or release.
 * size 0 gives a valid unique pointer. Returns NULL when memory runs out or size overflows. */
void *assay_arena_alloc(struct assay_arena *a, size_t size);

/* n zeroed elements of size bytes each, valid as for assay_arena_alloc. NULL when n is 0, and
 * when memory runs out or n * size overflows: then *failed is set to true (else untouched), so
 * one check after building a whole value tells whether anything was missing. */
void *assay_arena_array(struct assay_arena *a, size_t n, size_t size, bool *failed);

/* Frees every allocation at once, keeping the largest block for reuse. */
void assay_arena_reset(struct assay_arena *a);

/* Frees everything; a may be NULL. The arena is empty (as after init) afterwards. */
void assay_arena_release(struct assay_arena *a);

#endif
