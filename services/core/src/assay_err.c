/*
 * Names and formatting for the failure classes of assay_err.h.
 */
#include "assay_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *assay_err_name(int err)
{
	switch (err) {
	case ASSAY_OK:
		return "ok";
	case ASSAY_ERR_RETRY:
		return "retry";
	case ASSAY_ERR_REJECT:
		return "reject";
	case ASSAY_ERR_FENCED:
		return "fenced";
	case ASSAY_ERR_FATAL:
		return "fatal";
	default:
		return "unknown";
	}
}

int assay_errf(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;

	if (errstr == NULL || errstr_size == 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return err;
}
