/*
 * The journaled entity maps behind assay-plan's rules (plan_state.h): string-keyed open
 * addressing tables whose nodes never move or disappear (an absent value is a NULL value), so
 * the batch journal can point at nodes; and the arena every entity is allocated in.
 */
#include "plan_state.h"
#include "assay_err.h"
#include "assay_strmap.h"
#include "assay_vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

#define ARENA_BLOCK 1024
#define ARENA_ALIGN 16

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct plan_arena {
	struct arena_block *head;
	bool failed;
};

struct plan_arena *plan_arena_new(void)
{
	return calloc(1, sizeof(struct plan_arena));
}

void plan_arena_destroy(struct plan_arena *a)
{
	struct arena_block *b, *next;

	if (a == NULL)
		return;
	for (b = a->head; b; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
}

void *plan_arena_alloc(struct plan_arena *a, size_t size)
{
	struct arena_block *b = a->head;
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	void *p;

	if (need == 0)
		need = ARENA_ALIGN;
	if (b == NULL || b->cap - b->used < need) {
		size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;

		b = malloc(sizeof(*b) + cap);
		if (b == NULL) {
			a->failed = true;
			return NULL;
		}
		b->used = 0;
		b->cap = cap;
		/* a big allocation gets its own block behind the current one, so the
		 * current block keeps serving small ones */
		if (a->head != NULL && cap > ARENA_BLOCK) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	p = b->data + b->used;
	b->used += need;
	memset(p, 0, need);
	return p;
}

char *plan_arena_strdup(struct plan_arena *a, const char *s)
{
	size_t n;
	char *p;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	p = plan_arena_alloc(a, n + 1);
	if (p)
		memcpy(p, s, n + 1);
	return p;
}

bool plan_arena_failed(const struct plan_arena *a)
{
	return a->failed;
}

/* ---- maps ---- */

const struct plan_obj plan_seen = {NULL};

struct node {
	char *key;
	void *value;
	uint64_t gen; /* batch generation that last recorded this node as changed */
};

struct map {
	struct assay_strmap nodes; /* struct node by its key (the node's own copy) */
	size_t present;
};

struct journal_entry {
	enum plan_map m;
	struct node *node;
	void *old;
};

struct change {
	enum plan_map m;
	struct node *node;
	bool was_absent;
};

struct plan_state {
	struct map maps[PLAN_NMAPS];
	bool open;
	uint64_t gen;
	struct journal_entry *journal;
	size_t njournal, journal_cap;
	struct change *changes;
	size_t nchanges, changes_cap;
};

static void value_free(void *v)
{
	if (v != NULL && v != PLAN_SEEN)
		plan_arena_destroy(((struct plan_obj *)v)->arena);
}

static struct node *map_find(const struct map *m, const char *key)
{
	return assay_strmap_get(&m->nodes, key, strlen(key));
}

static struct node *map_insert(struct map *m, const char *key)
{
	struct node *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->key = strdup(key);
	if (n->key == NULL || assay_strmap_put(&m->nodes, n->key, strlen(n->key), n, NULL) != 0) {
		free(n->key);
		free(n);
		return NULL;
	}
	return n;
}

struct plan_state *plan_state_new(void)
{
	return calloc(1, sizeof(struct plan_state));
}

void plan_state_destroy(struct plan_state *st)
{
	if (st == NULL)
		return;
	plan_state_rollback(st);
	for (size_t k = 0; k < PLAN_NMAPS; k++) {
		struct map *m = &st->maps[k];

		size_t pos = 0;
		void *v;

		while (assay_strmap_next(&m->nodes, &pos, NULL, &v)) {
			struct node *n = v;

			value_free(n->value);
			free(n->key);
			free(n);
		}
		assay_strmap_release(&m->nodes);
	}
	free(st->journal);
	free(st->changes);
	free(st);
}

void *plan_state_get(const struct plan_state *st, enum plan_map m, const char *key)
{
	struct node *n = map_find(&st->maps[m], key);

	return n ? n->value : NULL;
}

size_t plan_state_count(const struct plan_state *st, enum plan_map m)
{
	return st->maps[m].present;
}

int plan_state_put(struct plan_state *st, enum plan_map m, const char *key, void *value)
{
	struct map *map = &st->maps[m];
	struct node *n = map_find(map, key);

	if (st->open && (assay_vec_reserve(&st->journal, &st->journal_cap, st->njournal + 1,
	                                   sizeof(*st->journal)) != 0 ||
	                 assay_vec_reserve(&st->changes, &st->changes_cap, st->nchanges + 1,
	                                   sizeof(*st->changes)) != 0))
		return ASSAY_ERR_FATAL;
	if (n == NULL && (n = map_insert(map, key)) == NULL)
		return ASSAY_ERR_FATAL;
	if (n->value == NULL && value != NULL)
		map->present++;
	else if (n->value != NULL && value == NULL)
		map->present--;
	if (st->open) {
		st->journal[st->njournal++] = (struct journal_entry){m, n, n->value};
		if (n->gen != st->gen) {
			n->gen = st->gen;
			st->changes[st->nchanges++] = (struct change){m, n, n->value == NULL};
		}
	} else {
		value_free(n->value);
	}
	n->value = value;
	return 0;
}

void plan_state_begin(struct plan_state *st)
{
	if (st->open)
		plan_state_rollback(st);
	st->open = true;
	st->gen++;
	st->njournal = 0;
	st->nchanges = 0;
}

void plan_state_commit(struct plan_state *st)
{
	if (!st->open)
		return;
	for (size_t i = 0; i < st->njournal; i++)
		value_free(st->journal[i].old);
	st->njournal = 0;
	st->nchanges = 0;
	st->open = false;
}

void plan_state_rollback(struct plan_state *st)
{
	if (!st->open)
		return;
	for (size_t i = st->njournal; i-- > 0;) {
		struct journal_entry *j = &st->journal[i];
		struct map *map = &st->maps[j->m];

		if (j->node->value == NULL && j->old != NULL)
			map->present++;
		else if (j->node->value != NULL && j->old == NULL)
			map->present--;
		value_free(j->node->value);
		j->node->value = j->old;
	}
	st->njournal = 0;
	st->nchanges = 0;
	st->open = false;
	st->gen++; /* nodes marked by the undone batch count as unchanged again */
}

size_t plan_state_nchanges(const struct plan_state *st)
{
	return st->open ? st->nchanges : 0;
}

void plan_state_change(const struct plan_state *st, size_t i, struct plan_change *out)
{
	const struct change *c = &st->changes[i];

	out->map = c->m;
	out->key = c->node->key;
	out->value = c->node->value;
	out->was_absent = c->was_absent;
}

int plan_key(char *buf, size_t size, const char *a, const char *b, const char *c)
{
	int n = c ? snprintf(buf, size, "%s\x1f%s\x1f%s", a, b, c)
	          : snprintf(buf, size, "%s\x1f%s", a, b);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}
