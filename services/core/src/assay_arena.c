/*
 * The per-batch arena (assay_arena.h): a bump allocator over a list of malloc'd blocks. An
 * allocation rounds up to max_align_t; a block that cannot hold it is replaced by a new one of
 * twice the size of the request or ASSAY_ARENA_BLOCK, whichever is larger. Reset keeps the
 * largest block, so a batch of the same size as the last one allocates nothing.
 */
#include "assay_arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct assay_arena_block {
	struct assay_arena_block *next;
	size_t size; /* bytes of data */
	alignas(max_align_t) unsigned char data[];
};

#define ALIGN alignof(max_align_t)

void assay_arena_init(struct assay_arena *a)
{
	a->blocks = NULL;
	a->next = NULL;
	a->end = NULL;
	a->used = 0;
}

static int add_block(struct assay_arena *a, size_t need)
{
	size_t size = ASSAY_ARENA_BLOCK;
	struct assay_arena_block *b;

	if (need > SIZE_MAX / 2 - sizeof(*b))
		return -1;
	if (size < need * 2)
		size = need * 2;
	b = malloc(sizeof(*b) + size);
	if (b == NULL)
		return -1;
	b->size = size;
	b->next = a->blocks;
	a->blocks = b;
	a->next = b->data;
	a->end = b->data + size;
	return 0;
}

void *assay_arena_alloc(struct assay_arena *a, size_t size)
{
	void *p;

	if (size > SIZE_MAX - ALIGN)
		return NULL;
	size = (size + ALIGN - 1) & ~(ALIGN - 1);
	if (size == 0)
		size = ALIGN;
	if (a->next == NULL || (size_t)(a->end - a->next) < size) {
		if (add_block(a, size) != 0)
			return NULL;
	}
	p = a->next;
	a->next += size;
	a->used += size;
	return p;
}

void *assay_arena_array(struct assay_arena *a, size_t n, size_t size, bool *failed)
{
	void *p;

	if (n == 0)
		return NULL;
	p = size != 0 && n > SIZE_MAX / size ? NULL : assay_arena_alloc(a, n * size);
	if (p == NULL) {
		*failed = true;
		return NULL;
	}
	return memset(p, 0, n * size);
}

void assay_arena_reset(struct assay_arena *a)
{
	struct assay_arena_block *keep = NULL, *b = a->blocks;

	while (b != NULL) {
		struct assay_arena_block *next = b->next;

		if (keep == NULL || b->size > keep->size) {
			free(keep);
			keep = b;
		} else {
			free(b);
		}
		b = next;
	}
	a->blocks = keep;
	a->used = 0;
	if (keep != NULL) {
		keep->next = NULL;
		a->next = keep->data;
		a->end = keep->data + keep->size;
	} else {
		a->next = NULL;
		a->end = NULL;
	}
}

void assay_arena_release(struct assay_arena *a)
{
	if (a == NULL)
		return;
	while (a->blocks != NULL) {
		struct assay_arena_block *next = a->blocks->next;

		free(a->blocks);
		a->blocks = next;
	}
	assay_arena_init(a);
}
