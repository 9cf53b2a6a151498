/*
 * Schema registry: the schema ids of the Confluent framing.
 *
 * A registry hands out one 32-bit id per normalized schema text and gives the text back for an
 * id. Normalized means parsed by avro-c and written back with avro_schema_to_json, so
 * whitespace, key order inside a JSON object, "doc", "default" and "logicalType" attributes do
 * not change the id (avro-c keeps none of them; they do not change the wire format either).
 * The same normalized text always gets the same id, and ids never change.
 *
 * Backends: the built-in one is the assay_schemas table in PostgreSQL (sql/001_core.sql); an
 * in-memory one serves tests and tools. Another backend (e.g. a Confluent Schema Registry over
 * HTTP) plugs in through struct assay_registry_backend and assay_registry_new.
 *
 * Threads: a registry handle is not thread-safe; use one per thread.
 */
#ifndef ASSAY_REGISTRY_H
#define ASSAY_REGISTRY_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#define ASSAY_REGISTRY_FINGERPRINT_SIZE 32 /* SHA-256 */

struct assay_registry;

/* The built-in backend: the assay_schemas table reached through pg_url (a libpq URL or
 * key=value string; a connect_timeout of 10 s applies unless the string names its own). The
 * handle owns one PGconn, connected on first use and again after a connection failure (a call
 * that finds its connection dead reconnects and tries once more before returning
 * ASSAY_ERR_RETRY). Returns NULL with errstr set when pg_url cannot be parsed or memory runs
 * out; no connection is made here. */
struct assay_registry *assay_registry_pg_new(const char *pg_url, char *errstr, size_t errstr_size);

/* A registry that lives in this process only: ids 1, 2, 3, ... in registration order. Returns
 * NULL with errstr set when memory runs out. */
struct assay_registry *assay_registry_memory_new(char *errstr, size_t errstr_size);

/* Frees reg and everything it owns (closes its connection). reg may be NULL. */
void assay_registry_destroy(struct assay_registry *reg);

/* Registers the schema text schema_json (need not be normalized) and stores its id in *id.
 * Idempotent: the same normalized text always yields the same id, also across handles,
 * processes and restarts, and also when two connections register it at the same time.
 * Returns 0; ASSAY_ERR_REJECT when schema_json is not a schema avro-c accepts;
 * ASSAY_ERR_RETRY when the backend is unreachable; ASSAY_ERR_FATAL when the backend answers
 * with something else (e.g. the table is missing) or memory runs out. */
int assay_registry_register(struct assay_registry *reg, const char *schema_json, int32_t *id,
                            char *errstr, size_t errstr_size);

/* As assay_registry_register, for a schema already parsed (it is only read, not kept). */
int assay_registry_register_schema(struct assay_registry *reg, avro_schema_t schema, int32_t *id,
                                   char *errstr, size_t errstr_size);

/* Looks up the normalized schema text of id into *schema_json (malloc'd, NUL-terminated; the
 * caller frees it; set only on success). Returns 0; ASSAY_ERR_REJECT when no schema has that
 * id; ASSAY_ERR_RETRY when the backend is unreachable; ASSAY_ERR_FATAL as above. */
int assay_registry_lookup(struct assay_registry *reg, int32_t id, char **schema_json, char *errstr,
                          size_t errstr_size);

/* The normalized text of schema: avro_schema_to_json output, malloc'd and NUL-terminated, into
 * *text (caller frees) and its length into *len (may be NULL). Returns 0 or ASSAY_ERR_FATAL. */
int assay_registry_normalize(avro_schema_t schema, char **text, size_t *len, char *errstr,
                             size_t errstr_size);

/* The full name of schema: "namespace.name" for a record, enum or fixed (just "name" without a
 * namespace), otherwise the type name ("string", "union", ...). Written into buf (truncated
 * to size, always terminated); returns buf. */
const char *assay_registry_full_name(avro_schema_t schema, char *buf, size_t size);

/*
 * Backend interface. A backend receives normalized text, its full name and its SHA-256
 * fingerprint; it stores them and answers with an id. impl is the backend's own state.
 */
struct assay_registry_backend {
	const char *name; /* e.g. "postgresql" */
	int (*register_text)(void *impl, const char *text, size_t text_len, const char *full_name,
	                     const unsigned char fingerprint[ASSAY_REGISTRY_FINGERPRINT_SIZE],
	                     int32_t *id, char *errstr, size_t errstr_size);
	int (*lookup)(void *impl, int32_t id, char **text, char *errstr, size_t errstr_size);
	void (*destroy)(void *impl);
};

/* A registry over backend (borrowed; usually static const) and impl (owned: backend->destroy
 * is called on it by assay_registry_destroy, and here when this fails). Returns NULL with
 * errstr set when memory runs out. */
struct assay_registry *assay_registry_new(const struct assay_registry_backend *backend, void *impl,
                                          char *errstr, size_t errstr_size);

#endif
