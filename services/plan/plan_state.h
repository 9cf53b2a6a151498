/*
 * assay-plan's in-memory state: the clients, persons, audits, teams, SoAs, stage completions,
 * certification cycles and seen command ids that the rules look at, mirroring the plan tables
 * in PostgreSQL.
 *
 * Entities are immutable once stored: a change stores a new entity under the same key. Each
 * entity lives in its own arena (struct assay_plan_arena), which is its first member, so
 * freeing an entity is destroying its arena. While a batch is open (assay_plan_state_begin)
 * every store is journaled: later commands of the batch see earlier ones, commit frees the
 * superseded entities, and rollback restores them and frees the new ones. The journal also
 * tells the database writer which keys changed (assay_plan_state_change).
 *
 * Threads: a state is used by one thread.
 */
#ifndef ASSAY_PLAN_STATE_H
#define ASSAY_PLAN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest id (client, audit, person, cycle, command, site, control...) the plan accepts. */
#define ASSAY_PLAN_ID_MAX 128
/* Room for a composite key of two ids and a standard symbol. */
#define ASSAY_PLAN_KEY_MAX (3 * (ASSAY_PLAN_ID_MAX + 1) + 32)

/*
 * A bump allocator: many small allocations freed together. Allocations are zeroed and
 * aligned for any type. Not thread-safe.
 */
struct assay_plan_arena;

/* A new empty arena, or NULL when out of memory. */
struct assay_plan_arena *assay_plan_arena_new(void);
/* Frees a and everything allocated from it; NULL is a no-op. */
void assay_plan_arena_destroy(struct assay_plan_arena *a);
/* size zeroed bytes owned by a, or NULL when out of memory (a itself stays usable). */
void *assay_plan_arena_alloc(struct assay_plan_arena *a, size_t size);
/* A copy of s in a; NULL when s is NULL or memory ran out (check assay_plan_arena_failed). */
char *assay_plan_arena_strdup(struct assay_plan_arena *a, const char *s);
/* True once an allocation from a failed. */
bool assay_plan_arena_failed(const struct assay_plan_arena *a);

/* Every stored entity starts with this. */
struct assay_plan_obj {
	struct assay_plan_arena *arena; /* owns the entity and everything it points to */
};

/* The maps of the state; the key of each is given. */
enum assay_plan_map {
	ASSAY_PLAN_MAP_CLIENT,      /* client_id -> struct assay_plan_client */
	ASSAY_PLAN_MAP_PERSON,      /* person_id -> struct assay_plan_person */
	ASSAY_PLAN_MAP_AUDIT,       /* audit_id -> struct assay_plan_audit */
	ASSAY_PLAN_MAP_ROSTER,      /* audit_id -> struct assay_plan_roster */
	ASSAY_PLAN_MAP_COMPLETION,  /* audit_id, standard -> struct assay_plan_completion */
	ASSAY_PLAN_MAP_SOA,         /* audit_id, standard -> struct assay_plan_soa */
	ASSAY_PLAN_MAP_CYCLE,       /* cycle_id -> struct assay_plan_cycle */
	ASSAY_PLAN_MAP_CYCLE_INDEX, /* client_id, standard -> struct assay_plan_cycle_index */
	ASSAY_PLAN_MAP_COMMAND,     /* command_id -> ASSAY_PLAN_SEEN (no arena) */
	ASSAY_PLAN_NMAPS
};

/* The value stored in ASSAY_PLAN_MAP_COMMAND. */
extern const struct assay_plan_obj assay_plan_seen;
#define ASSAY_PLAN_SEEN ((void *)&assay_plan_seen)

struct assay_plan_state;

/* An empty state, or NULL when out of memory. */
struct assay_plan_state *assay_plan_state_new(void);
/* Frees st and every entity in it; an open batch is rolled back first. NULL is a no-op. */
void assay_plan_state_destroy(struct assay_plan_state *st);

/* The entity stored under key in map m, or NULL. The pointer is valid until the key is
 * stored again and the batch that did so is committed (or the state destroyed). */
void *assay_plan_state_get(const struct assay_plan_state *st, enum assay_plan_map m,
                           const char *key);

/*
 * Stores value (an entity whose first member is struct assay_plan_obj, or ASSAY_PLAN_SEEN in
 * the command map) under key, taking it over on success. Inside a batch the previous value is
 * kept for rollback; outside one it is freed at once. Returns 0 or ASSAY_ERR_FATAL (out of
 * memory; value is then still the caller's).
 */
int assay_plan_state_put(struct assay_plan_state *st, enum assay_plan_map m, const char *key,
                         void *value);

/* Number of keys with a value in map m. */
size_t assay_plan_state_count(const struct assay_plan_state *st, enum assay_plan_map m);

/* Opens a batch. A batch left open is rolled back first. */
void assay_plan_state_begin(struct assay_plan_state *st);
/* Keeps the batch's changes and frees what they replaced. No-op without a batch. */
void assay_plan_state_commit(struct assay_plan_state *st);
/* Undoes the batch's changes (newest first) and frees the new entities. No-op without one. */
void assay_plan_state_rollback(struct assay_plan_state *st);

/* The keys the open batch changed, each once, in the order first changed. */
struct assay_plan_change {
	enum assay_plan_map map;
	const char *key;   /* owned by the state */
	const void *value; /* current value (the last one stored in the batch) */
	bool was_absent;   /* no value before the batch */
};
size_t assay_plan_state_nchanges(const struct assay_plan_state *st);
void assay_plan_state_change(const struct assay_plan_state *st, size_t i,
                             struct assay_plan_change *out);

/* Composite key "a<US>b[<US>c]" into buf; c may be NULL. Returns 0, or -1 when it does not
 * fit (ids are limited to ASSAY_PLAN_ID_MAX, so ASSAY_PLAN_KEY_MAX always fits). */
int assay_plan_key(char *buf, size_t size, const char *a, const char *b, const char *c);

#endif
