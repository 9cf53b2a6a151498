/*
 * The audit projection every consumer of assay.audit.events keeps (intake, mapper, risk): per
 * audit its tenant and client, the standards in scope, the SoA of each standard (latest
 * revision: control ids with their applicability), the standards whose stage was completed
 * and whether the audit is closed (every standard of the scope completed). One module, one
 * batch mechanism, one pair of tables (sql/010_audit_projection.sql, a copy per consumer
 * group). docs/audit-projection.md describes it.
 *
 * A batch:
 *
 *	assay_audits_begin(p);                       // drops whatever a batch left behind
 *	assay_audits_apply_frame(p, cx, arena, ...); // per audit event (or apply_opened / ...)
 *	... queries see the batch's changes ...
 *	assay_audits_write(p, conn, group, service); // in the batch transaction: one pipeline
 *	assay_audits_commit(p) or assay_audits_rollback(p)
 *
 * Batch mechanism: copy on write per audit. The first change of an audit in a batch copies
 * the committed audit into an overlay that lookups see first; commit moves the overlay's
 * audits into the committed map, rollback frees them. A batch rolled back and handled again
 * therefore sees exactly the state before it, and the overlay is what write() stores.
 *
 * Ownership: the projection owns every audit, string and SoA. Audits returned by lookups are
 * the projection's and stay valid until the next change, begin, commit, rollback or load.
 * Hooks (may be NULL) let a consumer attach its own handles (e.g. catalog pointers) to the
 * standards and excluded controls as they are applied, so its per-evidence path needs no
 * further lookups.
 *
 * Threads: a projection belongs to one thread.
 */
#ifndef ASSAY_AUDIT_PROJECTION_H
#define ASSAY_AUDIT_PROJECTION_H

#include "assay_arena.h"
#include "assay_contract.h"
#include "contract_audit_opened.h"
#include "contract_soa_submitted.h"
#include "contract_stage_completed.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ASSAY_AUDIT_MAX_STANDARDS 4
#define ASSAY_AUDIT_STANDARD_LEN  24 /* "ISO42001_2023" and room to spare */

/* One standard's latest SoA. The first four members are the plain SoA (positional
 * initializers in tests rely on their order). */
struct assay_audit_soa {
	int32_t revision;
	size_t n;
	char **ids;       /* n NUL-terminated control ids, sorted by strcmp, each once */
	bool *applicable; /* n flags */
	/* the hooks' handles of the excluded (not applicable) controls that have one */
	const void **excluded;
	size_t nexcluded;
};

/* The projection of one audit. */
struct assay_audit {
	char *audit_id, *tenant_id, *client_id;
	bool opened; /* AuditOpened seen; before it only SoAs are kept (tenant, client from them) */
	int64_t opened_at; /* occurred_at of the AuditOpened, ms */
	size_t nstandards;
	/* opened: the standards in scope; not opened: the standards SoAs arrived for */
	char standards[ASSAY_AUDIT_MAX_STANDARDS][ASSAY_AUDIT_STANDARD_LEN];
	const void *standard_ref[ASSAY_AUDIT_MAX_STANDARDS];    /* hooks.standard, NULL: none */
	bool completed[ASSAY_AUDIT_MAX_STANDARDS];              /* StageCompleted named it */
	struct assay_audit_soa *soa[ASSAY_AUDIT_MAX_STANDARDS]; /* NULL: no SoA yet */
	bool closed; /* opened and every standard of the scope completed */
};

/* A consumer's handles for what it looks at per evidence item. Either function may be NULL. */
struct assay_audits_hooks {
	/* the handle of a standard symbol, or NULL when the consumer has none */
	const void *(*standard)(void *ctx, const char *symbol);
	/* the handle of an excluded control (standard: its standard's handle), or NULL */
	const void *(*control)(void *ctx, const void *standard, const char *id);
	void *ctx;
};

struct assay_audits;

/* An empty projection with hooks (copied; NULL: none), or NULL when out of memory. */
struct assay_audits *assay_audits_new(const struct assay_audits_hooks *hooks);
/* Frees the projection with its overlay. NULL is a no-op. */
void assay_audits_destroy(struct assay_audits *p);

/* ---- queries (the batch's changes first) ---- */

/* The audit (opened or not), or NULL. audit_id: len bytes, need not be NUL-terminated.
 * One hash lookup (two while a batch changed audits), no allocation. */
const struct assay_audit *assay_audits_get(const struct assay_audits *p, const char *audit_id,
                                           size_t len);
/* The audit when AuditOpened was seen, else NULL. */
const struct assay_audit *assay_audits_find(const struct assay_audits *p, const char *audit_id,
                                            size_t len);
/* Audits in the committed projection. */
size_t assay_audits_count(const struct assay_audits *p);

/* Index of standard in a's standards, or -1. */
int assay_audit_standard(const struct assay_audit *a, const char *standard);
/* Standard in scope of the opened audit a. */
bool assay_audit_in_scope(const struct assay_audit *a, const char *standard);
/* StageCompleted named standard. */
bool assay_audit_stage_completed(const struct assay_audit *a, const char *standard);
/* Applicability of control id in soa: 1 applicable, 0 excluded, -1 not listed. */
int assay_audit_soa_lookup(const struct assay_audit_soa *soa, const char *id);
/* Applicability of control id in a's SoA of standard: 1, 0, -1 not listed, -2 no SoA. */
int assay_audit_applicable(const struct assay_audit *a, const char *standard, const char *id);

/* ---- batch ---- */

void assay_audits_begin(struct assay_audits *p);
void assay_audits_commit(struct assay_audits *p);
void assay_audits_rollback(struct assay_audits *p);
/* Audits changed in the batch (0..count-1), in the order they first changed. */
size_t assay_audits_changed_count(const struct assay_audits *p);
const struct assay_audit *assay_audits_changed(const struct assay_audits *p, size_t i);

/*
 * Applying events. Each returns 0 when the projection changed, 1 when the event changed
 * nothing (an older SoA revision, a StageCompleted of an unknown audit or of standards
 * already completed, a SoA for a standard outside an opened audit's scope), ASSAY_ERR_REJECT
 * (empty audit id, more than ASSAY_AUDIT_MAX_STANDARDS distinct standards, a symbol too long)
 * or ASSAY_ERR_FATAL (memory).
 *
 * open: an audit opened again keeps its SoAs and completions of standards still in scope
 * when the owner is the same (a replayed event) or it was not opened yet; otherwise it is
 * replaced. soa: a higher revision replaces the standard's SoA (a control listed twice: the
 * last row wins); for an audit not opened yet the SoA is kept for when it opens.
 */
int assay_audits_open(struct assay_audits *p, const char *audit_id, const char *tenant_id,
                      const char *client_id, int64_t opened_at, const char *const *standards,
                      size_t n);
int assay_audits_soa(struct assay_audits *p, const char *audit_id, const char *tenant_id,
                     const char *client_id, const char *standard, int32_t revision,
                     const char *const *ids, const bool *applicable, size_t n);
int assay_audits_complete(struct assay_audits *p, const char *audit_id,
                          const char *const *standards, size_t n);

/* The same from decoded contracts (views are copied). */
int assay_audits_apply_opened(struct assay_audits *p, const struct assay_audit_opened *ev);
int assay_audits_apply_soa(struct assay_audits *p, const struct assay_soa_submitted *ev);
int assay_audits_apply_stage(struct assay_audits *p, const struct assay_stage_completed *ev);

/* The audit events the projection reads. */
enum assay_audit_event {
	ASSAY_AUDIT_EV_OTHER = 0, /* another record of assay.audit.events: not read */
	ASSAY_AUDIT_EV_OPENED,
	ASSAY_AUDIT_EV_SOA,
	ASSAY_AUDIT_EV_STAGE,
};

/* The kind of record a frame holds, by the full name of its writer schema. */
enum assay_audit_event assay_audits_event_kind(const char *full_name);

/*
 * Decodes a frame of assay.audit.events with the generated contracts (the writer schema
 * dispatches: assay_contract_frame_type) and applies it. arena: scratch for the decoded
 * arrays (the caller resets it). *kind (may be NULL) gets the record's kind. Returns what
 * the apply functions return (1 also for records the projection does not read), or the
 * decoder's ASSAY_ERR_REJECT / ASSAY_ERR_RETRY with the reason in errstr.
 */
int assay_audits_apply_frame(struct assay_audits *p, struct assay_contracts *cx,
                             struct assay_arena *arena, const void *frame, size_t len,
                             enum assay_audit_event *kind, char *errstr, size_t errstr_size);

/* ---- storage (tables assay_audit_projection, assay_audit_projection_soa;
 * assay_audit_projection_db.c) ---- */

/*
 * Writes the audits changed in the batch as the rows of consumer group `group` (service: the
 * consumer's name, kept for the compatibility views) in ONE pipeline round trip on conn,
 * inside the caller's transaction. Nothing is sent when nothing changed. Returns 0,
 * ASSAY_ERR_RETRY, ASSAY_ERR_FATAL with the reason.
 */
int assay_audits_write(struct assay_audits *p, PGconn *conn, const char *group, const char *service,
                       char *errstr, size_t errstr_size);

/*
 * Replaces the projection (committed state and overlay) with the rows of consumer group
 * `group` (two queries). The new state is built aside: on failure the previous one is kept.
 * Returns 0, ASSAY_ERR_RETRY, ASSAY_ERR_FATAL with the reason.
 */
int assay_audits_load(struct assay_audits *p, PGconn *conn, const char *group, char *errstr,
                      size_t errstr_size);

#endif
