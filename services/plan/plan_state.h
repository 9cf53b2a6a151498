/*
 * assay-plan's in-memory state: the clients, persons, audits, teams, SoAs, stage completions,
 * certification cycles and seen command ids that the rules look at, mirroring the plan tables
 * in PostgreSQL.
 *
 * Entities are immutable once stored: a change stores a new entity under the same key. Each
 * entity lives in its own arena (struct plan_arena), which is its first member, so
 * freeing an entity is destroying its arena. While a batch is open (plan_state_begin)
 * every store is journaled: later commands of the batch see earlier ones, commit frees the
 * superseded entities, and rollback restores them and frees the new ones. The journal also
 * tells the database writer which keys changed (plan_state_change).
 *
 * Threads: a state is used by one thread.
 */
#ifndef PLAN_STATE_H
#define PLAN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest id (client, audit, person, cycle, command, site, control...) the plan accepts. */
#define PLAN_ID_MAX 128
/* Room for a composite key of two ids and a standard symbol. */
#define PLAN_KEY_MAX (3 * (PLAN_ID_MAX + 1) + 32)

/*
 * A bump allocator: many small allocations freed together. Allocations are zeroed and
 * aligned for any type. Not thread-safe.
 */
struct plan_arena;

/* A new empty arena, or NULL when out of memory. */
struct plan_arena *plan_arena_new(void);
/* Frees a and everything allocated from it; NULL is a no-op. */
void plan_arena_destroy(struct plan_arena *a);
/* size zeroed bytes owned by a, or NULL when out of memory (a itself stays usable). */
void *plan_arena_alloc(struct plan_arena *a, size_t size);
/* A copy of s in a; NULL when s is NULL or memory ran out (check plan_arena_failed). */
char *plan_arena_strdup(struct plan_arena *a, const char *s);
/* True once an allocation from a failed. */
bool plan_arena_failed(const struct plan_arena *a);

/* Every stored entity starts with this. */
struct plan_obj {
	struct plan_arena *arena; /* owns the entity and everything it points to */
};

/* The maps of the state; the key of each is given. */
enum plan_map {
	PLAN_MAP_CLIENT,      /* client_id -> struct plan_client */
	PLAN_MAP_PERSON,      /* person_id -> struct plan_person */
	PLAN_MAP_AUDIT,       /* audit_id -> struct plan_audit */
	PLAN_MAP_ROSTER,      /* audit_id -> struct plan_roster */
	PLAN_MAP_COMPLETION,  /* audit_id, standard -> struct plan_completion */
	PLAN_MAP_SOA,         /* audit_id, standard -> struct plan_soa */
	PLAN_MAP_CYCLE,       /* cycle_id -> struct plan_cycle */
	PLAN_MAP_CYCLE_INDEX, /* client_id, standard -> struct plan_cycle_index */
	PLAN_MAP_COMMAND,     /* command_id -> PLAN_SEEN (no arena) */
	PLAN_NMAPS
};

/* The value stored in PLAN_MAP_COMMAND. */
extern const struct plan_obj plan_seen;
#define PLAN_SEEN ((void *)&plan_seen)

struct plan_state;

/* An empty state, or NULL when out of memory. */
struct plan_state *plan_state_new(void);
/* Frees st and every entity in it; an open batch is rolled back first. NULL is a no-op. */
void plan_state_destroy(struct plan_state *st);

/* The entity stored under key in map m, or NULL. The pointer is valid until the key is
 * stored again and the batch that did so is committed (or the state destroyed). */
void *plan_state_get(const struct plan_state *st, enum plan_map m, const char *key);

/*
 * Stores value (an entity whose first member is struct plan_obj, or PLAN_SEEN in
 * the command map) under key, taking it over on success. Inside a batch the previous value is
 * kept for rollback; outside one it is freed at once. Returns 0 or ASSAY_ERR_FATAL (out of
 * memory; value is then still the caller's).
 */
int plan_state_put(struct plan_state *st, enum plan_map m, const char *key, void *value);

/* Number of keys with a value in map m. */
size_t plan_state_count(const struct plan_state *st, enum plan_map m);

/* Opens a batch. A batch left open is rolled back first. */
void plan_state_begin(struct plan_state *st);
/* Keeps the batch's changes and frees what they replaced. No-op without a batch. */
void plan_state_commit(struct plan_state *st);
/* Undoes the batch's changes (newest first) and frees the new entities. No-op without one. */
void plan_state_rollback(struct plan_state *st);

/* The keys the open batch changed, each once, in the order first changed. */
struct plan_change {
	enum plan_map map;
	const char *key;   /* owned by the state */
	const void *value; /* current value (the last one stored in the batch) */
	bool was_absent;   /* no value before the batch */
};
size_t plan_state_nchanges(const struct plan_state *st);
void plan_state_change(const struct plan_state *st, size_t i, struct plan_change *out);

/* Composite key "a<US>b[<US>c]" into buf; c may be NULL. Returns 0, or -1 when it does not
 * fit (ids are limited to PLAN_ID_MAX, so PLAN_KEY_MAX always fits). */
int plan_key(char *buf, size_t size, const char *a, const char *b, const char *c);

#endif
