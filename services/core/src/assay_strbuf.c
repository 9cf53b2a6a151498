/*
 * The string buffer every builder of text in assay shares: SQL array literals for unnest(),
 * JSON for log lines, jsonb columns and exports. Appends are inline and copy runs of bytes
 * that need no escaping in one go; only growth and escaping live here.
 */
#include "assay_strbuf.h"
#include "assay_err.h"
#include "assay_utf8.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define STRBUF_MIN_CAP 64

void assay_strbuf_init(struct assay_strbuf *sb)
{
	*sb = (struct assay_strbuf){0};
}

void assay_strbuf_init_fixed(struct assay_strbuf *sb, char *buf, size_t size)
{
	*sb = (struct assay_strbuf){.p = buf, .cap = size};
	buf[0] = '\0';
}

void assay_strbuf_release(struct assay_strbuf *sb)
{
	if (sb->on_heap)
		free(sb->p);
	assay_strbuf_init(sb);
}

int assay_strbuf_grow(struct assay_strbuf *sb, size_t extra)
{
	size_t want, cap;
	char *p;

	if (sb->failed)
		return ASSAY_ERR_FATAL;
	if (extra > SIZE_MAX - 1 - sb->len)
		goto fail;
	want = sb->len + extra + 1;
	if (want <= sb->cap)
		return 0;
	cap = sb->cap < STRBUF_MIN_CAP ? STRBUF_MIN_CAP : sb->cap;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if (sb->on_heap) {
		p = realloc(sb->p, cap);
	} else {
		p = malloc(cap);
		if (p != NULL && sb->p != NULL)
			memcpy(p, sb->p, sb->len + 1);
		else if (p != NULL)
			p[0] = '\0';
	}
	if (p == NULL)
		goto fail;
	sb->p = p;
	sb->cap = cap;
	sb->on_heap = true;
	return 0;
fail:
	sb->failed = true;
	return ASSAY_ERR_FATAL;
}

void assay_strbuf_appendf(struct assay_strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (sb->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(sb->p ? sb->p + sb->len : NULL, sb->p ? sb->cap - sb->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->failed = true;
		return;
	}
	if ((size_t)n >= sb->cap - sb->len || sb->p == NULL) {
		if (assay_strbuf_grow(sb, (size_t)n) != 0)
			return;
		va_start(ap, fmt);
		vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
		va_end(ap);
	}
	sb->len += (size_t)n;
}

/* Bytes JSON takes as they are: printable ASCII other than " and \ (UTF-8 is checked apart). */
static inline bool json_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

void assay_strbuf_append_json(struct assay_strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t run, seq;
	char esc[6];

	assay_strbuf_append(sb, "\"", 1);
	while (len > 0) {
		/* copy the longest run of bytes that need no escaping in one go */
		for (run = 0; run < len && json_plain(p[run]); run++)
			;
		if (run > 0) {
			assay_strbuf_append(sb, (const char *)p, run);
			p += run;
			len -= run;
			continue;
		}
		seq = 1;
		switch (*p) {
		case '"':
			assay_strbuf_append(sb, "\\\"", 2);
			break;
		case '\\':
			assay_strbuf_append(sb, "\\\\", 2);
			break;
		case '\n':
			assay_strbuf_append(sb, "\\n", 2);
			break;
		case '\r':
			assay_strbuf_append(sb, "\\r", 2);
			break;
		case '\t':
			assay_strbuf_append(sb, "\\t", 2);
			break;
		case '\b':
			assay_strbuf_append(sb, "\\b", 2);
			break;
		case '\f':
			assay_strbuf_append(sb, "\\f", 2);
			break;
		default:
			if (*p < 0x20) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 0x0f];
				assay_strbuf_append(sb, esc, 6);
				break;
			}
			seq = assay_utf8_seq_len((const char *)p, len);
			if (seq == 0) {
				assay_strbuf_append(sb, "\xef\xbf\xbd",
				                    3); /* U+FFFD for one bad byte */
				seq = 1;
			} else {
				assay_strbuf_append(sb, (const char *)p, seq);
			}
		}
		p += seq;
		len -= seq;
	}
	assay_strbuf_append(sb, "\"", 1);
}

void assay_strbuf_append_pg_elem(struct assay_strbuf *sb, const char *s, size_t len)
{
	size_t start = 0;

	assay_strbuf_append(sb, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '"' && s[i] != '\\')
			continue;
		assay_strbuf_append(sb, s + start, i - start);
		assay_strbuf_append(sb, "\\", 1);
		start = i; /* the escaped character starts the next run */
	}
	assay_strbuf_append(sb, s + start, len - start);
	assay_strbuf_append(sb, "\"", 1);
}

char *assay_strbuf_detach(struct assay_strbuf *sb)
{
	char *out = NULL;

	if (sb->failed) {
		assay_strbuf_release(sb);
		return NULL;
	}
	if (sb->on_heap)
		out = sb->p;
	else
		out = strdup(assay_strbuf_str(sb));
	sb->on_heap = false; /* handed over (or a copy made): release must not free it */
	assay_strbuf_release(sb);
	return out;
}
