#ifndef ASSAY_UTF8_H
#define ASSAY_UTF8_H

/*
 * UTF-8 validation as RFC 3629 and Unicode table 3-7 define it: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no stray continuation bytes, no
 * truncated sequences. Pure functions, safe from any thread.
 */

#include <stdbool.h>
#include <stddef.h>

/*
 * Length (1 to 4) of the well-formed sequence that starts at s, reading at most n bytes
 * (n > 0); 0 when the bytes there are not well-formed UTF-8. A NUL byte is a valid sequence
 * of length 1 here.
 */
size_t assay_utf8_seq_len(const char *s, size_t n);

/*
 * Offset of the first byte of s[0..len) that does not start a well-formed sequence, or of the
 * first NUL byte (assay's strings never carry U+0000); len when there is none. Scans ASCII
 * eight bytes at a time. s may be NULL when len is 0.
 */
size_t assay_utf8_scan(const char *s, size_t len);

/* True when s[0..len) is well-formed UTF-8 without NUL bytes. */
static inline bool assay_utf8_valid(const char *s, size_t len)
{
	return assay_utf8_scan(s, len) == len;
}

#endif
