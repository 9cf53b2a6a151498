/*
 * Intake's in-memory projection of the audits (struct intake_audit, intake_rules.h), kept
 * current from assay.audit.events: AuditOpened creates an audit, SoaSubmitted replaces one
 * standard's SoA (a higher revision only), StageCompleted marks standards completed and closes
 * the audit once every standard of its scope is completed.
 *
 * Changes made while a batch is handled go to an overlay that lookups see first; commit moves
 * them into the projection, rollback drops them, so a batch that is rolled back and handled
 * again sees exactly the state before it. The changed audits of the overlay are what the
 * handler writes to intake_audits / intake_soa.
 *
 * Threads: one thread at a time. Audits returned by lookups stay valid until the next change,
 * commit or rollback.
 */
#ifndef INTAKE_AUDITS_H
#define INTAKE_AUDITS_H

#include "intake_rules.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct intake_audits;

/* An empty projection, or NULL when out of memory. */
struct intake_audits *intake_audits_new(void);

/* Frees the projection with its overlay. NULL is a no-op. */
void intake_audits_destroy(struct intake_audits *a);

/* The audit (overlay first), or NULL. audit_id: len bytes, not NUL-terminated. */
const struct intake_audit *intake_audits_find(const struct intake_audits *a, const char *audit_id,
                                              size_t len);

/*
 * AuditOpened (into the overlay). standards: n Standard symbols (n <= INTAKE_MAX_STANDARDS,
 * longer symbols or more standards are ASSAY_ERR_REJECT). An audit opened again keeps its
 * SoAs and completion when the owner is the same (a replayed event); otherwise it is replaced.
 * Returns 0, ASSAY_ERR_REJECT, or ASSAY_ERR_FATAL (memory).
 */
int intake_audits_open(struct intake_audits *a, const char *audit_id, const char *tenant_id,
                       const char *client_id, const char *const *standards, size_t n);

/*
 * SoaSubmitted: n rows of control id and applicability for standard (must be in the audit's
 * scope). Ignored (returns 1) when the audit is unknown, the standard is not in scope, or a
 * revision as high is already applied. Returns 0 when applied, 1 when ignored,
 * ASSAY_ERR_FATAL when out of memory.
 */
int intake_audits_soa(struct intake_audits *a, const char *audit_id, const char *standard,
                      int32_t revision, const char *const *ids, const bool *applicable, size_t n);

/* StageCompleted for standards (n). Returns 0 when the audit changed, 1 when ignored (unknown
 * audit or nothing new), ASSAY_ERR_FATAL when out of memory. */
int intake_audits_complete(struct intake_audits *a, const char *audit_id,
                           const char *const *standards, size_t n);

/* The audits changed in the overlay (0..count-1), for writing them. */
size_t intake_audits_changed_count(const struct intake_audits *a);
const struct intake_audit *intake_audits_changed(const struct intake_audits *a, size_t i);

/* Moves the overlay into the projection / drops it. */
void intake_audits_commit(struct intake_audits *a);
void intake_audits_rollback(struct intake_audits *a);

/* Audits in the projection (committed). */
size_t intake_audits_count(const struct intake_audits *a);

/* Deep copy / free of one audit (exposed for the loader and tests). */
struct intake_audit *intake_audit_dup(const struct intake_audit *src);
void intake_audit_free(struct intake_audit *au);

#endif
