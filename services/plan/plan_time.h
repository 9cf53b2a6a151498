/*
 * Audit time of a (combined) ISO/IEC 27001 + ISO/IEC 42001 audit, with every factor kept so
 * that the result can be explained (domain-rules §2, E11-E15; docs/audit-programme.md):
 *
 *   per standard: effective persons (identical-work groups count ceil(sqrt(n)), 27006-1
 *   C.3.4) -> table days (27006-1 Annex C for ISMS; AIMS only when configured, R2.16) ->
 *   adjustment factors summed and capped (default -30%, R2.5/R2.13) -> rounded up to half days;
 *   combined: sum, minus the integration reduction (<= 20%, IAF MD 11, R2.17-R2.20), the total
 *   reduction against the table times capped (default 50%, IAF MD 1, R2.19) -> initial audit
 *   time (stage 1 + stage 2); this audit's share by its type (R2.6); on-site >= 80% (R2.2);
 *   multi-site sample ceil(f * sqrt(x)) (IAF MD 1, R2.23).
 *
 * Also the domain enums shared by the plan modules (their order is the Avro enum order).
 * Pure: no I/O, no global state.
 */
#ifndef PLAN_TIME_H
#define PLAN_TIME_H

#include "plan_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Avro enum Standard */
enum plan_standard { PLAN_ISO27001_2013, PLAN_ISO27001_2022, PLAN_ISO42001_2023, PLAN_NSTANDARDS };
/* Avro enum AuditType */
enum plan_audit_type {
	PLAN_STAGE_1,
	PLAN_STAGE_2,
	PLAN_SURVEILLANCE,
	PLAN_RECERTIFICATION,
	PLAN_SPECIAL,
	PLAN_NAUDIT_TYPES
};
/* Management-system family of a standard: its audit-time method. */
enum plan_family { PLAN_ISMS, PLAN_AIMS, PLAN_NFAMILIES };

/* Integrated elements of IntegrationLevel (R2.20): documentation ... responsibilities. */
#define PLAN_INTEGRATION_ELEMENTS 7
/* The most standards one audit covers (one per family). */
#define PLAN_MAX_STANDARDS  2
#define PLAN_TIME_MAX_BANDS 64

extern const char *const plan_standard_names[PLAN_NSTANDARDS];
extern const char *const plan_audit_type_names[PLAN_NAUDIT_TYPES];
/* "ISMS", "AIMS" */
extern const char *const plan_family_names[PLAN_NFAMILIES];

/* The symbol's index, or -1. name may be NULL. */
int plan_standard_parse(const char *name);
int plan_audit_type_parse(const char *name);
enum plan_family plan_standard_family(int standard);

/* An audit-time table: persons up to `upper` (inclusive, above the previous band) -> days. */
struct plan_time_band {
	int64_t upper;
	double days;
};
struct plan_time_table {
	size_t count; /* 0: not configured */
	struct plan_time_band bands[PLAN_TIME_MAX_BANDS];
};

/*
 * Parses "upper:days,upper:days,..." (e.g. "10:5,15:6,25:7") into *out: uppers strictly
 * increasing and >= 1, days > 0 and not decreasing, at most PLAN_TIME_MAX_BANDS bands.
 * text "" (or only blanks) gives an empty, unconfigured table. Returns 0 or ASSAY_ERR_FATAL
 * (a configuration error) with the reason.
 */
int plan_time_table_parse(const char *text, struct plan_time_table *out, char *errstr,
                          size_t errstr_size);

/*
 * Days for persons from a non-empty table. Above the last band the table "follows the
 * progression": the last band's width and step repeat (*extrapolated is then set true;
 * extrapolated may be NULL).
 */
double plan_time_table_days(const struct plan_time_table *t, int64_t persons, bool *extrapolated);

/* The default ISMS table of ISO/IEC 27006-1:2024 Annex C (domain-rules R2.10). */
extern const char plan_isms_table_default[];

/* Everything a certification body may set (defaults in brackets, from domain-rules §2). */
struct plan_time_config {
	struct plan_time_table table[PLAN_NFAMILIES];  /* ISMS [R2.10], AIMS [none] */
	double adjustment_cap_percent[PLAN_NFAMILIES]; /* [30, 30] R2.5, R2.13 */
	bool identical_groups[PLAN_NFAMILIES];         /* [true, false] R2.11 */
	/* reduction for 0..7 integrated elements, each <= 20 [linear 0 .. 20] R2.18, R2.20 */
	double integration_percent[PLAN_INTEGRATION_ELEMENTS + 1];
	double total_reduction_cap_percent; /* [50] R2.19 */
	double onsite_min_percent;          /* [80] R2.2 */
	/* multi-site sampling factor f by audit type [1, 1, 0.6, 0.8, 1] R2.23 */
	double sampling_factor[PLAN_NAUDIT_TYPES];
	/* share of the initial audit time by audit type, percent
	 * [33.3, 66.7, 33.3, 66.7, 33.3] R2.6 */
	double share_percent[PLAN_NAUDIT_TYPES];
};

/* The defaults above. */
void plan_time_config_default(struct plan_time_config *c);

/* Fills integration_percent linearly: k of 7 elements -> max_percent * k / 7. */
void plan_time_integration_linear(struct plan_time_config *c, double max_percent);

/* Input of the calculation (all borrowed). */
struct plan_group_in {
	const char *group_id;
	int32_t persons;
};
struct plan_adjustment {
	int standard; /* enum plan_standard */
	const char *factor;
	double percent; /* negative reduces */
	const char *justification;
};
struct plan_time_input {
	int audit_type; /* enum plan_audit_type */
	const int *standards;
	size_t nstandards; /* 1..PLAN_MAX_STANDARDS */
	int32_t persons;   /* the client's persons (FTE) */
	const struct plan_group_in *groups;
	size_t ngroups;
	const struct plan_adjustment *adjustments; /* for any of the standards */
	size_t nadjustments;
	int32_t sites_total;
	int integration_elements; /* 0..7 */
};

/* Result (allocated in the arena given to the calculation). */
struct plan_group_count {
	const char *group_id;
	int32_t persons;
	int32_t counted; /* ceil(sqrt(persons)) */
};
struct plan_standard_time {
	int standard;
	bool configured; /* a table exists for its family; else table_days and days are unset */
	int32_t persons;
	struct plan_group_count *groups; /* empty unless its family counts groups */
	size_t ngroups;
	int32_t effective_persons;
	double table_days;
	bool extrapolated; /* persons above the table's last band */
	double adjustment_sum_percent;
	double adjustment_cap_percent;
	double adjustment_applied_percent; /* max(sum, -cap) */
	double days;                       /* table_days * (1 + applied), rounded up to 0.5 */
};
struct plan_time {
	struct plan_standard_time standards[PLAN_MAX_STANDARDS];
	size_t nstandards;
	int32_t sites_total;
	int32_t sites_sampled;
	double sampling_factor;
	bool configured; /* every standard configured: the *_days below are set */
	double sum_days;
	int integration_elements;
	double integration_reduction_percent;
	double total_reduction_percent;
	double total_reduction_cap_percent;
	double initial_days; /* stage 1 + stage 2, after all reductions, rounded up to 0.5 */
	double audit_share_percent;
	double total_days; /* this audit: initial_days * share, rounded up to 0.5 */
	double onsite_days;
	double offsite_days;
	double onsite_min_percent;
	const char **notes;
	size_t nnotes;
};

/*
 * Computes the audit time of in under c into *out, allocating groups and notes from arena.
 * A standard whose family has no table gives configured = false and the note
 * "<family> audit time not configured" (never a made-up number). Returns 0, ASSAY_ERR_REJECT
 * for an input outside the documented ranges (no standard, too many, audit type unknown), or
 * ASSAY_ERR_FATAL when the arena runs out of memory.
 */
int plan_time_compute(const struct plan_time_config *c, const struct plan_time_input *in,
                      struct plan_arena *arena, struct plan_time *out, char *errstr,
                      size_t errstr_size);

/* x rounded up to the next half day (0 for x <= 0); tolerant of floating-point noise. */
double plan_half_day_up(double x);
/* ceil(sqrt(n)) exactly, for n >= 0 (0 for n <= 0). */
int32_t plan_ceil_sqrt(int64_t n);
/* Sites to sample: ceil(f * sqrt(x)), at least 1 and at most x (0 when x <= 0). */
int32_t plan_sample_size(int32_t sites, double factor);

#endif
