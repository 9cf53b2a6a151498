/*
 * The string map behind every keyed table of the services (audits by audit_id in intake,
 * mapper and risk; plan's documents by key): one probing loop, one growth rule and one
 * deletion instead of a hand-written map per service.
 */
#include "assay_strmap.h"
#include "assay_err.h"

#include <stdlib.h>
#include <string.h>

#define STRMAP_MIN_CAP 16

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static bool slot_is(const struct assay_strmap_slot *sl, const char *key, size_t len, uint64_t hash)
{
	return sl->hash == hash && sl->len == len && memcmp(sl->key, key, len) == 0;
}

/* The slot holding key, or the empty slot where it would go. m->cap > 0. */
static struct assay_strmap_slot *find(const struct assay_strmap *m, const char *key, size_t len,
                                      uint64_t hash)
{
	size_t mask = m->cap - 1, i = (size_t)hash & mask;

	while (m->slots[i].key != NULL && !slot_is(&m->slots[i], key, len, hash))
		i = (i + 1) & mask;
	return &m->slots[i];
}

void assay_strmap_init(struct assay_strmap *m)
{
	*m = (struct assay_strmap){0};
}

void assay_strmap_release(struct assay_strmap *m)
{
	free(m->slots);
	assay_strmap_init(m);
}

void assay_strmap_clear(struct assay_strmap *m)
{
	if (m->slots != NULL)
		memset(m->slots, 0, m->cap * sizeof(*m->slots));
	m->count = 0;
}

void *assay_strmap_get(const struct assay_strmap *m, const char *key, size_t len)
{
	if (m->count == 0)
		return NULL;
	return find(m, key, len, hash_bytes(key, len))->value;
}

static int grow(struct assay_strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : STRMAP_MIN_CAP;
	struct assay_strmap_slot *old = m->slots;
	size_t ocap = m->cap;

	if (cap > SIZE_MAX / sizeof(*m->slots))
		return ASSAY_ERR_FATAL;
	m->slots = calloc(cap, sizeof(*m->slots));
	if (m->slots == NULL) {
		m->slots = old;
		return ASSAY_ERR_FATAL;
	}
	m->cap = cap;
	for (size_t i = 0; i < ocap; i++) {
		size_t k;

		if (old[i].key == NULL)
			continue;
		for (k = (size_t)old[i].hash & (cap - 1); m->slots[k].key; k = (k + 1) & (cap - 1))
			;
		m->slots[k] = old[i];
	}
	free(old);
	return 0;
}

int assay_strmap_put(struct assay_strmap *m, const char *key, size_t len, void *value, void **old)
{
	uint64_t hash = hash_bytes(key, len);
	struct assay_strmap_slot *sl;

	if (old != NULL)
		*old = NULL;
	if (m->cap > 0) {
		sl = find(m, key, len, hash);
		if (sl->key != NULL) {
			if (old != NULL)
				*old = sl->value;
			sl->key = key;
			sl->value = value;
			return 0;
		}
	}
	if ((m->count + 1) * 4 > m->cap * 3) {
		if (grow(m) != 0)
			return ASSAY_ERR_FATAL;
	}
	sl = find(m, key, len, hash);
	*sl = (struct assay_strmap_slot){key, len, hash, value};
	m->count++;
	return 0;
}

void *assay_strmap_remove(struct assay_strmap *m, const char *key, size_t len)
{
	struct assay_strmap_slot *sl;
	size_t mask, i, j;
	void *value;

	if (m->count == 0)
		return NULL;
	sl = find(m, key, len, hash_bytes(key, len));
	if (sl->key == NULL)
		return NULL;
	value = sl->value;
	mask = m->cap - 1;
	i = (size_t)(sl - m->slots);
	/* backward shift: pull later entries of the run into the hole when their home slot is
	 * not between the hole and where they stand (cyclically), so no probe ever stops early */
	for (j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
		size_t home = (size_t)m->slots[j].hash & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i] = (struct assay_strmap_slot){0};
	m->count--;
	return value;
}

bool assay_strmap_next(const struct assay_strmap *m, size_t *pos, const char **key, void **value)
{
	for (; *pos < m->cap; (*pos)++) {
		const struct assay_strmap_slot *sl = &m->slots[*pos];

		if (sl->key == NULL)
			continue;
		(*pos)++;
		if (key != NULL)
			*key = sl->key;
		if (value != NULL)
			*value = sl->value;
		return true;
	}
	return false;
}
