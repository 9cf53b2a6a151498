#ifndef ASSAY_STRBUF_H
#define ASSAY_STRBUF_H

/*
 * A growable string buffer (a plain value: _init/_release) with the two escapings assay needs:
 * JSON string literals and the quoted elements of PostgreSQL array literals ("{...}").
 *
 * Failure is sticky: an append that runs out of memory sets failed, and every later append is
 * a no-op until reset, so a builder appends freely and checks failed once at the end.
 * Appends keep p NUL-terminated once p is set. One buffer is not thread-safe.
 */

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct assay_strbuf {
	char *p;      /* the contents, NUL-terminated; NULL until the first append (see str) */
	size_t len;   /* bytes in p, without the terminator */
	size_t cap;   /* bytes p can hold, terminator included */
	bool failed;  /* an append ran out of memory: the contents are incomplete */
	bool on_heap; /* p is malloc'd by the buffer (not the caller's initial one) */
};

/* An empty buffer with nothing allocated. */
void assay_strbuf_init(struct assay_strbuf *sb);

/* An empty buffer writing into the caller's buf (size > 0, not owned; must outlive sb or its
 * growth) until it needs more, then on the heap: no allocation for short strings. */
void assay_strbuf_init_fixed(struct assay_strbuf *sb, char *buf, size_t size);

/* Frees what the buffer allocated; sb is empty again (as after assay_strbuf_init). */
void assay_strbuf_release(struct assay_strbuf *sb);

/* Empties the buffer and clears failed, keeping its memory. */
static inline void assay_strbuf_reset(struct assay_strbuf *sb)
{
	sb->len = 0;
	sb->failed = false;
	if (sb->p != NULL)
		sb->p[0] = '\0';
}

/* Makes room for extra more bytes (and the terminator). Returns 0, or ASSAY_ERR_FATAL and
 * sets failed when out of memory or already failed. The appends call it; callers rarely do. */
int assay_strbuf_grow(struct assay_strbuf *sb, size_t extra);

/* Appends len bytes of s (may be NULL when len is 0). */
static inline void assay_strbuf_append(struct assay_strbuf *sb, const char *s, size_t len)
{
	if (sb->failed || (len >= sb->cap - sb->len && assay_strbuf_grow(sb, len) != 0))
		return;
	if (len > 0)
		memcpy(sb->p + sb->len, s, len);
	sb->len += len;
	sb->p[sb->len] = '\0';
}

/* Appends the NUL-terminated s (not NULL). */
static inline void assay_strbuf_appends(struct assay_strbuf *sb, const char *s)
{
	assay_strbuf_append(sb, s, strlen(s));
}

/* Appends one byte. */
static inline void assay_strbuf_appendc(struct assay_strbuf *sb, char c)
{
	assay_strbuf_append(sb, &c, 1);
}

/* Appends printf-style formatted text. */
__attribute__((format(printf, 2, 3))) void assay_strbuf_appendf(struct assay_strbuf *sb,
                                                                const char *fmt, ...);

/*
 * Appends s[0..len) as a JSON string literal, quotes included: " and \ escaped, \b \f \n \r \t
 * by their short escapes, other bytes below 0x20 as \u00XX, well-formed UTF-8 as it is, and
 * each byte that does not start well-formed UTF-8 (assay_utf8_seq_len) as U+FFFD, so the
 * output is always valid JSON. s may be NULL when len is 0 (the empty string).
 */
void assay_strbuf_append_json(struct assay_strbuf *sb, const char *s, size_t len);

/*
 * Appends s[0..len) as one element of a PostgreSQL array literal: double-quoted, with " and \
 * backslash-escaped (so NULL, blanks, commas and braces stay text). s may be NULL when len is
 * 0 (the empty string); a SQL null element is the caller's unquoted NULL. Separators and
 * braces are the caller's (see pg_array_next).
 */
void assay_strbuf_append_pg_elem(struct assay_strbuf *sb, const char *s, size_t len);

/* Before an element of an array literal: appends ',' unless the buffer is empty or ends with
 * '{' (the element is the first). */
static inline void assay_strbuf_pg_array_next(struct assay_strbuf *sb)
{
	if (sb->len > 0 && sb->p[sb->len - 1] != '{')
		assay_strbuf_append(sb, ",", 1);
}

/* The contents: "" while nothing was appended. Owned by sb; valid until the next append,
 * reset or release. */
static inline const char *assay_strbuf_str(const struct assay_strbuf *sb)
{
	return sb->p != NULL ? sb->p : "";
}

/*
 * Hands the contents over as a malloc'd string the caller frees (a copy when they are in the
 * caller's fixed buffer, "" when empty) and leaves sb empty as after init. NULL when the
 * buffer failed or the copy cannot be made (sb is released then too).
 */
char *assay_strbuf_detach(struct assay_strbuf *sb);

#endif
