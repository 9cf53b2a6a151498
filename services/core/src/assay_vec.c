/*
 * The slow path of assay_vec_reserve: one growth policy (double, at least what is asked,
 * overflow-checked) instead of a grow helper per file.
 */
#include "assay_vec.h"
#include "assay_err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VEC_MIN_CAP 16

int assay_vec_grow(void *items_ptr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *items, *p;

	if (need <= *cap)
		return 0;
	ncap = *cap > SIZE_MAX / 2 ? need : *cap * 2;
	if (ncap < VEC_MIN_CAP)
		ncap = VEC_MIN_CAP;
	if (ncap < need)
		ncap = need;
	if (elem != 0 && ncap > SIZE_MAX / elem)
		return ASSAY_ERR_FATAL;
	/* the caller's pointer is read and written as bytes: T * and void * share a
	 * representation on every target assay builds for, and no cast hides the type at the
	 * call site */
	memcpy(&items, items_ptr, sizeof(items));
	p = realloc(items, elem != 0 ? ncap * elem : 1);
	if (p == NULL)
		return ASSAY_ERR_FATAL;
	memcpy(items_ptr, &p, sizeof(p));
	*cap = ncap;
	return 0;
}
