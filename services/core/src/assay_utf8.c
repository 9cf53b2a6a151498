/*
 * UTF-8 validation, the one copy: the Avro checker (strings on the wire), intake's field
 * rules and the JSON escaping of assay_strbuf all ask here. The byte ranges follow Unicode
 * table 3-7, so overlong forms, surrogates and code points above U+10FFFF fail on their second
 * byte without decoding.
 */
#include "assay_utf8.h"

#include <stdint.h>
#include <string.h>

size_t assay_utf8_seq_len(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t more;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		more = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		more = 2;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		more = 3;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0; /* continuation byte, overlong C0/C1, or F5..FF */
	}
	if (n <= more || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k <= more; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return more + 1;
}

size_t assay_utf8_scan(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n;

	while (i < len) {
		/* eight ASCII bytes at a time: no byte with its high bit set, and none zero (the
		 * high bit of (b | 0x80) - 1 is clear only for b = 0 or 0x80; no borrows) */
		if (len - i >= 8) {
			const uint64_t high = 0x8080808080808080ULL, ones = 0x0101010101010101ULL;
			uint64_t w;

			memcpy(&w, s + i, 8);
			if (((w | ~((w | high) - ones)) & high) == 0) {
				i += 8;
				continue;
			}
		}
		if (s[i] == 0)
			return i;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		n = assay_utf8_seq_len(str + i, len - i);
		if (n == 0)
			return i;
		i += n;
	}
	return len;
}
