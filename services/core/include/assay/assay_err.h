/*
 * Failure classes shared by the whole runtime.
 *
 * Every assay function that can fail returns 0 on success or one of the negative values
 * below, chosen by what the caller must do next (librdkafka's retriable / abortable / fatal
 * split is the model). Where a reason helps, the last two parameters of a function are
 * `char *errstr, size_t errstr_size`, filled in lowercase house style.
 */
#ifndef ASSAY_ERR_H
#define ASSAY_ERR_H

#include <stddef.h>

enum assay_err {
	ASSAY_OK = 0,
	/* transient (broker or database unreachable, serialization failure): back off and
	 * retry the same work, never skip it */
	ASSAY_ERR_RETRY = -1,
	/* this input is bad (cannot decode, violates a rule): dead-letter or reject it with
	 * the reason and move on */
	ASSAY_ERR_REJECT = -2,
	/* someone else owns the partition now (offset compare-and-set failed, fenced): roll
	 * back and re-seek */
	ASSAY_ERR_FENCED = -3,
	/* our own invariant is broken, a producer is fenced for good, or memory ran out:
	 * exit non-zero so a supervisor restarts the service */
	ASSAY_ERR_FATAL = -4,
};

/* "ok", "retry", "reject", "fenced", "fatal"; "unknown" for anything else. */
const char *assay_err_name(int err);

/* Formats into errstr (when errstr is not NULL and errstr_size > 0), always terminated.
 * Returns err so a caller can write `return assay_errf(ASSAY_ERR_REJECT, ...)`. */
int assay_errf(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

#endif
