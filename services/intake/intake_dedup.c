/*
 * A set of 64-bit fingerprints for intake's de-duplication: open addressing with linear
 * probing over a power-of-two table of uint64_t (0 marks an empty slot), grown to twice its
 * size when it would pass 3/4 full. Fingerprints are well mixed, so their low bits index the
 * table directly.
 */
#include "intake_dedup.h"
#include "assay_err.h"

#include <stdlib.h>
#include <string.h>

struct intake_dedup {
	uint64_t *slots;
	size_t mask; /* slots - 1 */
	size_t count;
};

static size_t capacity_for(size_t expected)
{
	size_t cap = 1024;

	while (cap - cap / 4 <= expected)
		cap *= 2;
	return cap;
}

struct intake_dedup *intake_dedup_new(size_t expected)
{
	struct intake_dedup *d = calloc(1, sizeof(*d));
	size_t cap = capacity_for(expected);

	if (d == NULL)
		return NULL;
	d->slots = calloc(cap, sizeof(*d->slots));
	if (d->slots == NULL) {
		free(d);
		return NULL;
	}
	d->mask = cap - 1;
	return d;
}

void intake_dedup_destroy(struct intake_dedup *d)
{
	if (d == NULL)
		return;
	free(d->slots);
	free(d);
}

/* FNV-1a over the bytes, then the splitmix64 finalizer so every bit of the result (the
 * table index uses the low ones) depends on every input byte. */
static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

uint64_t intake_dedup_fingerprint(const char *tenant, size_t tenant_len, const char *id,
                                  size_t id_len)
{
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, tenant, tenant_len);

	h = fnv1a(h, "", 1); /* the separator: ("ab", "c") is not ("a", "bc") */
	h = fnv1a(h, id, id_len);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h ? h : 1;
}

/* Undoes the COPY text escapes of one column value in place; returns the new length. */
static size_t unescape(char *s, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\\' && i + 1 < len) {
			char e = s[++i];

			switch (e) {
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'v':
				c = '\v';
				break;
			default:
				if (e >= '0' && e <= '7') {
					int v = e - '0';

					for (int k = 0; k < 2 && i + 1 < len && s[i + 1] >= '0' &&
					                s[i + 1] <= '7';
					     k++)
						v = v * 8 + (s[++i] - '0');
					c = (char)v;
				} else {
					c = e; /* \\ and any other escaped character */
				}
			}
		}
		s[out++] = c;
	}
	return out;
}

int intake_dedup_copy_line(char *line, size_t len, uint64_t *fp)
{
	char *tab = memchr(line, '\t', len);
	size_t tlen, ilen;

	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (tab == NULL || memchr(tab + 1, '\t', len - (size_t)(tab + 1 - line)) != NULL)
		return -1;
	tlen = unescape(line, (size_t)(tab - line));
	ilen = unescape(tab + 1, len - (size_t)(tab + 1 - line));
	*fp = intake_dedup_fingerprint(line, tlen, tab + 1, ilen);
	return 0;
}

static void insert(uint64_t *slots, size_t mask, uint64_t fp)
{
	size_t i = (size_t)fp & mask;

	while (slots[i] != 0)
		i = (i + 1) & mask;
	slots[i] = fp;
}

static int grow(struct intake_dedup *d)
{
	size_t cap = (d->mask + 1) * 2;
	uint64_t *slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return ASSAY_ERR_FATAL;
	for (size_t i = 0; i <= d->mask; i++)
		if (d->slots[i])
			insert(slots, cap - 1, d->slots[i]);
	free(d->slots);
	d->slots = slots;
	d->mask = cap - 1;
	return 0;
}

int intake_dedup_add(struct intake_dedup *d, uint64_t fp)
{
	size_t cap = d->mask + 1;

	if (fp == 0)
		fp = 1;
	if (intake_dedup_contains(d, fp))
		return 0;
	if (d->count + 1 > cap - cap / 4 && grow(d) != 0)
		return ASSAY_ERR_FATAL;
	insert(d->slots, d->mask, fp);
	d->count++;
	return 0;
}

bool intake_dedup_contains(const struct intake_dedup *d, uint64_t fp)
{
	size_t i;

	if (fp == 0)
		fp = 1;
	for (i = (size_t)fp & d->mask; d->slots[i] != 0; i = (i + 1) & d->mask)
		if (d->slots[i] == fp)
			return true;
	return false;
}

size_t intake_dedup_count(const struct intake_dedup *d)
{
	return d->count;
}

size_t intake_dedup_bytes(const struct intake_dedup *d)
{
	return (d->mask + 1) * sizeof(*d->slots);
}
