/*
 * The risk model of assay-risk (docs/risk-model.md), as pure functions over plain structs:
 * inherent risk = likelihood x impact on the 5x5 matrix (domain-rules 3.1), raised for ISO
 * 42001 controls by the AI systems in scope (3.4, 3.6; a prohibited practice sets a blocking
 * flag instead of a score), evidence strength by kind, freshness and link kind, coverage over
 * independent sources, residual = inherent reduced by coverage, and the bands.
 *
 * Every number is a field of struct risk_params (filled from the service's settings, whose
 * defaults are risk_params_default()). All arithmetic is integer (per mille), so a score
 * never depends on the order in which evidence arrived or on floating-point rounding.
 *
 * Threads: no state; every function is safe from any thread.
 */
#ifndef RISK_MODEL_H
#define RISK_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Evidence strength tiers, strongest first (issue 7: automated scan or test result above
 * sampled logs above documents above attestations). */
enum risk_tier {
	RISK_TIER_AUTOMATED,   /* CONFIGURATION_SCAN, TEST_REPORT, BIAS_EVALUATION */
	RISK_TIER_SAMPLED,     /* LOG_SAMPLE, ACCESS_REVIEW */
	RISK_TIER_DOCUMENT,    /* POLICY, MODEL_CARD, DATA_PROVENANCE */
	RISK_TIER_ATTESTATION, /* ATTESTATION */
	RISK_TIER_OTHER,       /* OTHER and symbols this reader does not know */
};
#define RISK_NTIERS 5

/* How evidence is linked (the Avro enum LinkKind, same order). */
enum risk_link { RISK_LINK_DIRECT, RISK_LINK_AUTOMATIC, RISK_LINK_PENDING };
#define RISK_NLINKS   3
#define RISK_NCOUNTED 2 /* DIRECT and AUTOMATIC count; NEEDS_CONFIRMATION counts for nothing */

/* Bands of a 1-25 score (the Avro enum RiskBand, same order); RISK_BAND_NONE = no score. */
enum risk_band {
	RISK_BAND_NONE = -1,
	RISK_BAND_VERY_LOW = 0,
	RISK_BAND_LOW,
	RISK_BAND_MEDIUM,
	RISK_BAND_HIGH,
	RISK_BAND_CRITICAL,
};
#define RISK_NBANDS 5

/* EU AI Act tier of an AI system (the Avro enum AiActTier, same order). */
enum risk_ai_tier {
	RISK_AI_PROHIBITED,
	RISK_AI_HIGH_RISK,
	RISK_AI_LIMITED_RISK,
	RISK_AI_MINIMAL_RISK,
	RISK_AI_NOT_ASSESSED,
};

/* The organization's roles for an AI system (bit set; the Avro enum AiRole). */
#define RISK_ROLE_PROVIDER 1u
#define RISK_ROLE_PRODUCER 2u
#define RISK_ROLE_USER     4u

/* AI risk dimensions (the Avro enum AiRiskDimension, same order). */
#define RISK_NDIMS 8

/* The most top risks a summary carries (risk.top.count is at most this). */
#define RISK_TOP_MAX 20

/* The model's numbers. Scores are 1-25, strengths and coverage per mille (0-1000). */
struct risk_params {
	int likelihood_default; /* controls whose theme has no row in risk_theme_defaults */
	int impact_default;
	/* impact floors for ISO 42001 controls from the AI systems in scope (0 = no floor) */
	int ai_impact_high_risk;          /* HIGH_RISK, organization a user */
	int ai_impact_high_risk_provider; /* HIGH_RISK, organization provider or producer */
	int ai_impact_limited_risk;       /* LIMITED_RISK */
	int ai_impact_not_assessed;       /* NOT_ASSESSED */
	int tier_permille[RISK_NTIERS];   /* strength of a fresh, direct item of each tier */
	int link_permille[RISK_NCOUNTED]; /* factor of a DIRECT / AUTOMATIC link */
	int fresh_full_days;              /* full strength up to this age in days */
	int fresh_window_days;            /* no strength from this age on; linear in between */
	int single_source_permille;       /* most coverage one source system can give */
	int source_bonus_permille;        /* added by each further independent source */
	int max_reduction_permille;       /* largest share of inherent risk coverage removes */
	int band_min[RISK_NBANDS];        /* lowest score of each band; band_min[0] is 1 */
	int top_count;                    /* top risks per summary, at most RISK_TOP_MAX */
};

/* The documented defaults (docs/risk-model.md). */
void risk_params_default(struct risk_params *p);

/* Checks ranges and orderings (fresh_full_days < fresh_window_days, band_min increasing from
 * 1, ...). Returns 0 or ASSAY_ERR_FATAL with the first problem in errstr. */
int risk_params_check(const struct risk_params *p, char *errstr, size_t errstr_size);

/* Tier of an EvidenceKind symbol; unknown symbols and NULL are RISK_TIER_OTHER. */
enum risk_tier risk_kind_tier(const char *kind);

/* Link kind of a LinkKind symbol; -1 for an unknown symbol or NULL. */
int risk_link_parse(const char *symbol);

/* AiActTier symbol -> enum; -1 for an unknown symbol (callers treat it as NOT_ASSESSED). */
int risk_ai_tier_parse(const char *symbol);
/* AiRole symbol -> RISK_ROLE_* bit; 0 for an unknown symbol. */
unsigned risk_ai_role_parse(const char *symbol);

/* "VERY_LOW" .. "CRITICAL"; NULL for RISK_BAND_NONE or out of range. */
const char *risk_band_symbol(int band);
/* Band of score (1-25) with p's band limits; RISK_BAND_NONE for score < 1. */
int risk_band_of(const struct risk_params *p, int score);

/* "BIAS_FAIRNESS" .. "ACCOUNTABILITY" for 0..RISK_NDIMS-1; NULL otherwise. */
const char *risk_dim_symbol(int dim);
/* Index of a dimension symbol; -1 when unknown. */
int risk_dim_parse(const char *symbol);

/* Day number (days since 1970-01-01 UTC, floor) of a timestamp in milliseconds. */
int32_t risk_day_of_ms(int64_t ms);

/* Freshness factor (per mille) of evidence age_days old (negative ages count as 0). */
int risk_freshness_permille(const struct risk_params *p, int32_t age_days);

/* Strength (per mille) of one item: tier x freshness x link. link must be DIRECT or
 * AUTOMATIC (a pending link has strength 0). */
int risk_strength_permille(const struct risk_params *p, enum risk_tier tier, enum risk_link link,
                           int32_t age_days);

/* Coverage (per mille) from the strengths of independent sources (one value per source
 * system: the strongest of its items): the strongest source gives up to
 * single_source_permille, each other source adds source_bonus_permille scaled by its
 * strength; at most 1000. The result does not depend on the order of strengths. */
int risk_coverage_permille(const struct risk_params *p, const int *strengths, size_t n);

/* Residual score: inherent reduced by coverage x max_reduction, rounded half up, at least 1. */
int risk_residual(const struct risk_params *p, int inherent, int coverage_permille);

/* One AI system in an audit's scope. */
struct risk_ai_system {
	const char *id;
	int tier;       /* enum risk_ai_tier */
	unsigned roles; /* RISK_ROLE_* bits */
};

/* What the AI systems in scope do to ISO 42001 controls. */
struct risk_ai_effect {
	int impact_floor;       /* 0 = none */
	bool blocking;          /* a PROHIBITED practice is in scope */
	size_t blocking_system; /* index into the systems of the first prohibited one (lowest id) */
};

/* The effect of systems[0..n) (n may be 0; systems may then be NULL). */
void risk_ai_effect_of(const struct risk_params *p, const struct risk_ai_system *systems, size_t n,
                       struct risk_ai_effect *out);

/* The newest collected day of a source system's counted evidence of one control, per tier and
 * counted link kind (RISK_DAY_NONE when there is none). */
#define RISK_DAY_NONE INT32_MIN
struct risk_source {
	uint32_t source; /* interned source system id */
	int32_t newest[RISK_NTIERS][RISK_NCOUNTED];
};

/* The evidence of one control: link counts and the sources. */
struct risk_evidence {
	int32_t links[RISK_NLINKS]; /* evidence items per link kind */
	uint32_t nsources, cap;
	struct risk_source *sources; /* owned by whoever owns the struct */
};

/* A computed control score. */
struct risk_score {
	int likelihood, impact, inherent, coverage;
	int links[RISK_NLINKS];
	int sources;  /* independent sources with counted evidence */
	int residual; /* 0 when blocking */
	int band;     /* RISK_BAND_NONE when blocking */
	bool blocking;
};

/*
 * Scores one control. likelihood/impact: the theme's defaults (1-5). ai: the AI effect for an
 * ISO 42001 control, NULL for other standards. ev: its evidence (NULL = none). ref_day: the
 * day freshness is measured against.
 */
void risk_score_control(const struct risk_params *p, int likelihood, int impact,
                        const struct risk_ai_effect *ai, const struct risk_evidence *ev,
                        int32_t ref_day, struct risk_score *out);

/* One control's contribution to a summary. */
struct risk_summary_item {
	const char *control_id; /* borrowed (catalog) */
	size_t order;           /* catalog order: ties in the top list go to the lower order */
	int inherent, residual, band;
	bool blocking, with_evidence;
};

struct risk_top {
	const char *control_id; /* borrowed */
	int residual, band;
};

/* Per-standard summary. Plain value: compare with risk_summary_equal. */
struct risk_summary {
	int applicable, with_evidence;
	int bands[RISK_NBANDS];
	int blocking;
	int ntop;
	struct risk_top top[RISK_TOP_MAX];
};

/* The summary of items[0..n): counts, and the top_count highest residuals (ties: higher
 * inherent first, then catalog order); blocking controls are counted, never in the top. */
void risk_summarize(const struct risk_params *p, const struct risk_summary_item *items, size_t n,
                    struct risk_summary *out);
bool risk_summary_equal(const struct risk_summary *a, const struct risk_summary *b);

/* The score of one AI risk dimension: the highest residual among the applicable, scored
 * (non-blocking) controls tagged with it; 0 when none is scored. */
struct risk_dim_score {
	int controls; /* applicable controls tagged with the dimension */
	int residual; /* 0 = null */
	int band;     /* RISK_BAND_NONE = null */
};

#endif
