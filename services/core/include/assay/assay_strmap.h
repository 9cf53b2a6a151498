#ifndef ASSAY_STRMAP_H
#define ASSAY_STRMAP_H

/*
 * A string-keyed hash map of pointers (a plain value: _init/_release): open addressing with
 * linear probing, FNV-1a hashes stored next to the keys, at most 3/4 full, deletion without
 * tombstones. The map borrows its keys and never owns its values:
 *
 *   - a key must stay valid and unchanged while it is in the map; the usual key is a string
 *     inside the value itself (e.g. an audit's audit_id), so entries cost no allocation;
 *   - values are the caller's: release and clear forget them, put hands back the one it
 *     replaces, remove hands back the one it removes. Values are never NULL.
 *
 * Keys are byte strings of the given length (NUL bytes allowed, no terminator needed).
 * Not thread-safe; const calls may run concurrently with each other.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct assay_strmap_slot {
	const char *key; /* NULL: empty slot */
	size_t len;
	uint64_t hash;
	void *value;
};

struct assay_strmap {
	struct assay_strmap_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t count;
};

/* An empty map with nothing allocated. */
void assay_strmap_init(struct assay_strmap *m);

/* Frees the table (not the keys or values); m is empty again as after init. */
void assay_strmap_release(struct assay_strmap *m);

/* Forgets every entry (not freeing keys or values), keeping the table's memory. */
void assay_strmap_clear(struct assay_strmap *m);

/* The value under key[0..len), or NULL when there is none. */
void *assay_strmap_get(const struct assay_strmap *m, const char *key, size_t len);

/*
 * Puts value (not NULL) under key[0..len) (borrowed, see above). When the key was present,
 * its value and key pointer are replaced and *old (may be NULL) receives the previous value,
 * else NULL. Returns 0, or ASSAY_ERR_FATAL when the table cannot grow (the map unchanged).
 */
int assay_strmap_put(struct assay_strmap *m, const char *key, size_t len, void *value, void **old);

/* Removes key[0..len) and returns its value, or NULL when it was absent. */
void *assay_strmap_remove(struct assay_strmap *m, const char *key, size_t len);

/* Entries in the map. */
static inline size_t assay_strmap_count(const struct assay_strmap *m)
{
	return m->count;
}

/*
 * Iterates: start with *pos = 0; each call stores the next entry's key and value (either may
 * be NULL) and returns true, or returns false after the last. The order is unspecified. The
 * map must not change during an iteration, except that the entry just returned may be
 * replaced by put with the same key.
 */
bool assay_strmap_next(const struct assay_strmap *m, size_t *pos, const char **key, void **value);

#endif
