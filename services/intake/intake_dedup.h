/*
 * The in-memory de-duplication index of accepted evidence: a set of 64-bit fingerprints of
 * (tenant, evidence id), 8 bytes per slot in one open-addressing table (linear probing, load
 * at most 3/4), so a million stored rows cost 16 MB and no message needs a query to be known
 * new. The set only answers "certainly new" or "maybe seen": a hit (a real replay or conflict,
 * or a fingerprint collision, about n / 2^64 per lookup) is settled by one batched query per
 * batch against intake_evidence, which also yields the stored hash for HASH_CONFLICT.
 * docs/intake.md explains the design and its memory.
 *
 * The fingerprint is a 64-bit FNV-1a hash of tenant || 0x00 || evidence id with the splitmix64
 * finalizer: not cryptographic, and it need not be: a collision (crafted or not) only costs a
 * query, never a wrong decision. intake.c recomputes it from the stored ids at start.
 *
 * Threads: a set is used by one thread at a time.
 */
#ifndef INTAKE_DEDUP_H
#define INTAKE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct intake_dedup;

/* An empty set sized for about expected entries (0: a small default). NULL when out of
 * memory. */
struct intake_dedup *intake_dedup_new(size_t expected);

/* Frees d. NULL is a no-op. */
void intake_dedup_destroy(struct intake_dedup *d);

/* The fingerprint of (tenant, evidence id); never 0. */
uint64_t intake_dedup_fingerprint(const char *tenant, size_t tenant_len, const char *id,
                                  size_t id_len);

/* The fingerprint of one row of `COPY (SELECT tenant_id, evidence_id ...) TO STDOUT` (text
 * format: two tab-separated columns with COPY's backslash escapes, an optional newline).
 * line (len bytes) is unescaped in place. Returns 0, or -1 when it is not two columns. */
int intake_dedup_copy_line(char *line, size_t len, uint64_t *fp);

/* Adds fp (no-op when present). Returns 0, or ASSAY_ERR_FATAL when the table cannot grow. */
int intake_dedup_add(struct intake_dedup *d, uint64_t fp);

/* True when fp may have been added. */
bool intake_dedup_contains(const struct intake_dedup *d, uint64_t fp);

/* Entries, and bytes of the table. */
size_t intake_dedup_count(const struct intake_dedup *d);
size_t intake_dedup_bytes(const struct intake_dedup *d);

#endif
