#ifndef ASSAY_VEC_H
#define ASSAY_VEC_H

/*
 * Growable arrays: the one reserve helper for every "pointer, count, capacity" triple in
 * assay. The array stays a plain typed pointer in the caller's struct (T *items; size_t n, cap),
 * so indexing is ordinary C and the compiler sees the element type everywhere but here.
 */

#include <stddef.h>

/*
 * Makes *items (items_ptr is the address of the caller's T * pointer, e.g. &in->items) hold
 * at least need elements of elem bytes: when *cap is smaller, reallocates to the larger of
 * need and twice *cap (16 at the least) and updates *cap. Elements already there keep their
 * values; new ones are uninitialised. Returns 0, or ASSAY_ERR_FATAL when out of memory or the
 * size would overflow (then *items and *cap are unchanged, the old array still the caller's).
 * The array is the caller's to free(). Not thread-safe for one array.
 */
int assay_vec_grow(void *items_ptr, size_t *cap, size_t need, size_t elem);

/* assay_vec_grow's fast path: nothing to do (no call) when need <= *cap. */
static inline int assay_vec_reserve(void *items_ptr, size_t *cap, size_t need, size_t elem)
{
	return need <= *cap ? 0 : assay_vec_grow(items_ptr, cap, need, elem);
}

#endif
