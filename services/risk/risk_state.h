/*
 * The state of assay-risk in memory, and how a batch changes it: the audits (scope, SoA, AI
 * systems, reference day), the evidence of every control as aggregates (link counts, and per
 * source system the newest collected day per tier and link kind), the stored scores, the last
 * summary per standard and the AI dimension scores. No I/O: the service decodes events into
 * the plain structs below, and writes and publishes what risk_state_finish() reports.
 *
 * A batch:
 *
 *	risk_state_begin(s);
 *	risk_state_apply_opened / _soa / _mapped(s, msg_index, &event, ...);   // per message
 *	risk_state_finish(s, &out);     // recompute the touched controls; results and rows
 *	... write out, then risk_state_commit(s) or risk_state_rollback(s)
 *
 * Every change is applied in place and undone by risk_state_rollback() (or by the next
 * risk_state_begin() when neither commit nor rollback came), so the state always equals what
 * the database holds after the last committed batch. Only controls a batch touches are
 * recomputed: those with new links, every control of an audit whose scope, SoA, AI systems or
 * reference day changed.
 *
 * Determinism: the final state depends only on the set of events per audit and the order
 * within each topic partition, never on how they were split into batches or interleaved
 * across topics: evidence aggregates are sums and maxima, the reference day is the newest
 * event day of the audit, and every score is a function of the final state.
 *
 * Threads: a state belongs to one thread.
 */
#ifndef RISK_STATE_H
#define RISK_STATE_H

#include "assay_catalog.h"
#include "risk_model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RISK_MAX_STD 4 /* catalog standards with controls */

/* A row of risk_theme_defaults: likelihood and impact of a control group ("A.8", "6"). */
struct risk_theme_row {
	const char *standard, *group;
	int likelihood, impact;
};

/* A row of risk_dimension_tags. */
struct risk_tag_row {
	const char *standard, *control_id, *dimension;
};

/* One control of one audit and standard. */
struct risk_ctl {
	struct risk_evidence ev;
	struct risk_score sc; /* the stored score, when scored */
	bool scored;          /* a risk_scores row exists */
	uint32_t epoch;       /* batch that saved it for undo */
};

/* The undoable header of an audit. Strings and arrays owned. */
struct risk_audit_hdr {
	char *tenant_id, *client_id; /* "" until known */
	bool opened;                 /* AuditOpened seen */
	int32_t ref_day;             /* newest event day; RISK_DAY_NONE before any */
	struct risk_ai_system *ai;   /* ids owned */
	size_t nai;
	struct risk_ai_effect effect;
	bool in_scope[RISK_MAX_STD];
	int32_t soa_revision[RISK_MAX_STD]; /* 0: no SoA */
	uint8_t *excluded[RISK_MAX_STD];    /* per position, 1 = excluded; NULL without SoA */
	bool published[RISK_MAX_STD];       /* a summary is stored */
	struct risk_summary last[RISK_MAX_STD];
	bool dims_published;
	struct risk_dim_score dims[RISK_NDIMS];
};

struct risk_audit {
	char *audit_id;
	struct risk_audit_hdr h;
	struct risk_ctl *ctl[RISK_MAX_STD]; /* per position of the standard */
	/* batch bookkeeping */
	uint32_t epoch;
	size_t last_msg;
	bool hdr_dirty;
	bool all_dirty[RISK_MAX_STD];
	bool soa_dirty[RISK_MAX_STD];
	uint32_t *dirty; /* (std << 16) | position of controls touched in the batch */
	size_t ndirty, capdirty;
};

/* Events, decoded by the service. Strings are borrowed for the call. */
struct risk_opened_ev {
	const char *audit_id, *tenant_id, *client_id;
	int64_t occurred_at;
	const char *const *standards;
	size_t nstandards;
	const struct risk_ai_system *ai;
	size_t nai;
};

struct risk_soa_ev {
	const char *audit_id, *tenant_id, *client_id;
	int64_t occurred_at;
	const char *standard;
	int32_t revision;
	const char *const *excluded; /* control ids with applicable = false */
	size_t nexcluded;
};

struct risk_link_ev {
	const char *standard, *control_id;
	int link; /* enum risk_link */
};

struct risk_mapped_ev {
	const char *audit_id, *tenant_id, *client_id;
	int64_t occurred_at;
	const char *source_system, *kind;
	int64_t collected_at;
	const struct risk_link_ev *links;
	size_t nlinks;
};

/* What a batch produced. Pointers are valid until the next begin/commit/rollback. */
struct risk_change {
	uint16_t std, pos;
	struct risk_score now;
	bool had_prev; /* previous residual/band exist (scored and not blocking before) */
	int prev_residual, prev_band;
};

struct risk_result { /* one RiskScored to publish */
	struct risk_audit *audit;
	int std;
	size_t msg; /* the batch message it is attributed to (the audit's last) */
	size_t first_change, nchanges;
	struct risk_summary summary;
	bool with_dims; /* the AI standard: dims/prev_dims are set */
	struct risk_dim_score dims[RISK_NDIMS], prev_dims[RISK_NDIMS];
	bool prev_dims_valid;
};

struct risk_row_ref {
	struct risk_audit *audit;
	uint16_t std, pos;
};

struct risk_evidence_delta {
	struct risk_audit *audit;
	uint16_t std, pos;
	uint32_t source;
	uint8_t tier, link;
	int32_t day;
};

struct risk_batch_out {
	struct risk_result *results;
	size_t nresults;
	struct risk_change *changes;
	size_t nchanges;
	struct risk_row_ref *score_rows; /* upsert: values in audit->ctl[std][pos].sc */
	size_t nscore_rows;
	struct risk_row_ref *score_deletes;
	size_t nscore_deletes;
	struct risk_row_ref *summary_rows; /* upsert: audit->h.last[std] (pos unused) */
	size_t nsummary_rows;
	struct risk_audit **dim_rows; /* upsert: audit->h.dims */
	size_t ndim_rows;
	struct risk_audit **audit_rows; /* upsert: the header */
	size_t naudit_rows;
	struct risk_row_ref *soa_rows; /* upsert: soa_revision / excluded (pos unused) */
	size_t nsoa_rows;
	struct risk_evidence_delta *deltas; /* add to risk_evidence */
	size_t ndeltas;
	size_t recomputed; /* controls scored in the batch */
};

struct risk_state;

/*
 * A state over cat (borrowed: must outlive the state) with params p (copied), the theme
 * defaults and dimension tags (copied into per-control tables; rows naming unknown
 * standards or controls are ignored, unknown dimensions refused). Returns 0 with *out set,
 * ASSAY_ERR_FATAL (bad data, memory) with the reason.
 */
int risk_state_new(const struct assay_catalog *cat, const struct risk_params *p,
                   const struct risk_theme_row *themes, size_t nthemes,
                   const struct risk_tag_row *tags, size_t ntags, struct risk_state **out,
                   char *errstr, size_t errstr_size);
void risk_state_destroy(struct risk_state *s);

const struct risk_params *risk_state_params(const struct risk_state *s);

/* Standards (slots 0..n-1): catalog symbol, whether it is the AI standard (dimensions),
 * number of positions, the control at a position, its likelihood/impact/dimension bits. */
size_t risk_state_nstd(const struct risk_state *s);
const char *risk_state_std_symbol(const struct risk_state *s, int std);
bool risk_state_std_is_ai(const struct risk_state *s, int std);
int risk_state_std_index(const struct risk_state *s, const char *standard); /* -1 unknown */
size_t risk_state_std_size(const struct risk_state *s, int std);
const struct assay_control *risk_state_control(const struct risk_state *s, int std, size_t pos);
unsigned risk_state_control_dims(const struct risk_state *s, int std, size_t pos);
void risk_state_control_theme(const struct risk_state *s, int std, size_t pos, int *likelihood,
                              int *impact);
/* Position of control id in std; -1 when unknown. */
int risk_state_position(const struct risk_state *s, int std, const char *control_id);
/* Name of an interned source system. */
const char *risk_state_source_name(const struct risk_state *s, uint32_t source);

/* The audit, or NULL. */
const struct risk_audit *risk_state_find(const struct risk_state *s, const char *audit_id);
size_t risk_state_naudits(const struct risk_state *s);

/* Batch. The apply functions return 0, ASSAY_ERR_REJECT (an event that cannot be applied:
 * empty audit id) or ASSAY_ERR_FATAL (memory). */
void risk_state_begin(struct risk_state *s);
int risk_state_apply_opened(struct risk_state *s, size_t msg, const struct risk_opened_ev *ev,
                            char *errstr, size_t errstr_size);
int risk_state_apply_soa(struct risk_state *s, size_t msg, const struct risk_soa_ev *ev,
                         char *errstr, size_t errstr_size);
int risk_state_apply_mapped(struct risk_state *s, size_t msg, const struct risk_mapped_ev *ev,
                            char *errstr, size_t errstr_size);
/* Recomputes what the batch touched and fills out (owned by s). 0 or ASSAY_ERR_FATAL. */
int risk_state_finish(struct risk_state *s, const struct risk_batch_out **out, char *errstr,
                      size_t errstr_size);
void risk_state_commit(struct risk_state *s);
void risk_state_rollback(struct risk_state *s);

/*
 * Loading the stored state at start (outside a batch; no results). Each returns 0,
 * ASSAY_ERR_FATAL (memory) — rows naming unknown standards or controls are skipped.
 */
int risk_state_load_audit(struct risk_state *s, const char *audit_id, const char *tenant_id,
                          const char *client_id, bool opened, int32_t ref_day,
                          const char *const *standards, size_t nstandards,
                          const struct risk_ai_system *ai, size_t nai);
int risk_state_load_soa(struct risk_state *s, const char *audit_id, const char *standard,
                        int32_t revision, const char *const *excluded, size_t nexcluded);
int risk_state_load_evidence(struct risk_state *s, const char *audit_id, const char *standard,
                             const char *control_id, const char *source, int tier, int link,
                             int32_t newest_day, int32_t items);
int risk_state_load_score(struct risk_state *s, const char *audit_id, const char *standard,
                          const char *control_id, const struct risk_score *sc);
/* top[i].control_id are looked up in the catalog (unknown ones dropped). */
int risk_state_load_summary(struct risk_state *s, const char *audit_id, const char *standard,
                            const struct risk_summary *sum);
int risk_state_load_dim(struct risk_state *s, const char *audit_id, int dim,
                        const struct risk_dim_score *d);

#endif
