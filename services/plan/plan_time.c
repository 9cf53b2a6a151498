/*
 * The audit-time calculation of assay-plan (plan_time.h): the ISO/IEC 27006-1 table by
 * effective persons, capped adjustment factors, the IAF MD 11 integration reduction, the IAF
 * MD 1 total-reduction cap and sample size, the on-site share and half-day rounding. Every
 * intermediate value is returned so that the plan can show how the days came about.
 */
#include "plan_time.h"
#include "assay_err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const plan_standard_names[PLAN_NSTANDARDS] = {"ISO27001_2013", "ISO27001_2022",
                                                          "ISO42001_2023"};
const char *const plan_audit_type_names[PLAN_NAUDIT_TYPES] = {"STAGE_1", "STAGE_2", "SURVEILLANCE",
                                                              "RECERTIFICATION", "SPECIAL"};
const char *const plan_family_names[PLAN_NFAMILIES] = {"ISMS", "AIMS"};

/* ISO/IEC 27006-1:2024 Annex C as in domain-rules R2.10: rows up to 175 persons [C], the rest
 * [U] (seed data to confirm against a licensed copy; configurable). */
const char plan_isms_table_default[] =
        "10:5,15:6,25:7,45:8.5,65:10,85:11,125:12,175:13,275:14,425:15,625:16.5,875:17.5,"
        "1175:18.5,1550:19.5,2025:21,2675:22,3450:23,4350:24,5450:25,6800:26,8500:27,10700:28";

int plan_standard_parse(const char *name)
{
	for (int i = 0; name && i < PLAN_NSTANDARDS; i++)
		if (strcmp(name, plan_standard_names[i]) == 0)
			return i;
	return -1;
}

int plan_audit_type_parse(const char *name)
{
	for (int i = 0; name && i < PLAN_NAUDIT_TYPES; i++)
		if (strcmp(name, plan_audit_type_names[i]) == 0)
			return i;
	return -1;
}

enum plan_family plan_standard_family(int standard)
{
	return standard == PLAN_ISO42001_2023 ? PLAN_AIMS : PLAN_ISMS;
}

int plan_time_table_parse(const char *text, struct plan_time_table *out, char *errstr,
                          size_t errstr_size)
{
	const char *p = text;

	memset(out, 0, sizeof(*out));
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return 0;
	for (;;) {
		struct plan_time_band *b;
		char *end;
		long long upper;
		double days;

		if (out->count == PLAN_TIME_MAX_BANDS)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "audit-time table: more than %d bands",
			                  PLAN_TIME_MAX_BANDS);
		errno = 0;
		upper = strtoll(p, &end, 10);
		if (end == p || errno || *end != ':' || upper < 1)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "audit-time table: band %zu: expected persons:days",
			                  out->count + 1);
		p = end + 1;
		days = strtod(p, &end);
		if (end == p || !isfinite(days) || days <= 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "audit-time table: band %zu: days must be positive",
			                  out->count + 1);
		if (out->count > 0 && (upper <= out->bands[out->count - 1].upper ||
		                       days < out->bands[out->count - 1].days))
			return assay_errf(
			        ASSAY_ERR_FATAL, errstr, errstr_size,
			        "audit-time table: band %zu: persons must increase and days "
			        "must not decrease",
			        out->count + 1);
		b = &out->bands[out->count++];
		b->upper = upper;
		b->days = days;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 0;
		if (*p != ',')
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "audit-time table: band %zu: expected ','", out->count);
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
	}
}

double plan_time_table_days(const struct plan_time_table *t, int64_t persons, bool *extrapolated)
{
	const struct plan_time_band *last = &t->bands[t->count - 1];
	int64_t width, steps;
	double step;

	if (extrapolated)
		*extrapolated = false;
	for (size_t i = 0; i < t->count; i++)
		if (persons <= t->bands[i].upper)
			return t->bands[i].days;
	if (extrapolated)
		*extrapolated = true;
	if (t->count < 2)
		return last->days;
	/* "follow the progression" (R2.10): repeat the last band's width and step */
	width = last->upper - t->bands[t->count - 2].upper;
	step = last->days - t->bands[t->count - 2].days;
	steps = (persons - last->upper + width - 1) / width;
	return last->days + (double)steps * step;
}

void plan_time_integration_linear(struct plan_time_config *c, double max_percent)
{
	for (int k = 0; k <= PLAN_INTEGRATION_ELEMENTS; k++)
		c->integration_percent[k] = max_percent * k / PLAN_INTEGRATION_ELEMENTS;
}

void plan_time_config_default(struct plan_time_config *c)
{
	memset(c, 0, sizeof(*c));
	plan_time_table_parse(plan_isms_table_default, &c->table[PLAN_ISMS], NULL, 0);
	c->adjustment_cap_percent[PLAN_ISMS] = 30.0;
	c->adjustment_cap_percent[PLAN_AIMS] = 30.0;
	c->identical_groups[PLAN_ISMS] = true;
	c->identical_groups[PLAN_AIMS] = false;
	plan_time_integration_linear(c, 20.0);
	c->total_reduction_cap_percent = 50.0;
	c->onsite_min_percent = 80.0;
	c->sampling_factor[PLAN_STAGE_1] = 1.0;
	c->sampling_factor[PLAN_STAGE_2] = 1.0;
	c->sampling_factor[PLAN_SURVEILLANCE] = 0.6;
	c->sampling_factor[PLAN_RECERTIFICATION] = 0.8;
	c->sampling_factor[PLAN_SPECIAL] = 1.0;
	c->share_percent[PLAN_STAGE_1] = 33.3;
	c->share_percent[PLAN_STAGE_2] = 66.7;
	c->share_percent[PLAN_SURVEILLANCE] = 33.3;
	c->share_percent[PLAN_RECERTIFICATION] = 66.7;
	c->share_percent[PLAN_SPECIAL] = 33.3;
}

double plan_half_day_up(double x)
{
	if (!(x > 0))
		return 0.0;
	return ceil(x * 2.0 - 1e-9) / 2.0;
}

int32_t plan_ceil_sqrt(int64_t n)
{
	int64_t r;

	if (n <= 0)
		return 0;
	r = (int64_t)sqrt((double)n);
	while (r * r < n)
		r++;
	while (r > 1 && (r - 1) * (r - 1) >= n)
		r--;
	return (int32_t)r;
}

int32_t plan_sample_size(int32_t sites, double factor)
{
	double s;

	if (sites <= 0)
		return 0;
	s = ceil(factor * sqrt((double)sites) - 1e-9);
	if (s < 1)
		s = 1;
	return s > sites ? sites : (int32_t)s;
}

/* Appends a formatted note (arena-allocated). */
static int note(struct plan_time *t, const char **slots, size_t cap, struct plan_arena *arena,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int note(struct plan_time *t, const char **slots, size_t cap, struct plan_arena *arena,
                const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (t->nnotes == cap)
		return 0;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	slots[t->nnotes] = plan_arena_strdup(arena, buf);
	if (slots[t->nnotes] == NULL)
		return ASSAY_ERR_FATAL;
	t->nnotes++;
	return 0;
}

#define MAX_NOTES 24

int plan_time_compute(const struct plan_time_config *c, const struct plan_time_input *in,
                      struct plan_arena *arena, struct plan_time *out, char *errstr,
                      size_t errstr_size)
{
	const char **notes;
	double table_sum = 0.0, after;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (in->nstandards < 1 || in->nstandards > PLAN_MAX_STANDARDS)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "audit time: %zu standards, expected 1 or 2", in->nstandards);
	if (in->audit_type < 0 || in->audit_type >= PLAN_NAUDIT_TYPES)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "audit time: unknown audit type %d", in->audit_type);
	notes = plan_arena_alloc(arena, MAX_NOTES * sizeof(*notes));
	if (notes == NULL)
		return ASSAY_ERR_FATAL;
	out->notes = notes;
	out->configured = true;

	/* per standard (R2.10-R2.13, R2.16) */
	for (size_t s = 0; s < in->nstandards; s++) {
		struct plan_standard_time *st = &out->standards[s];
		int standard = in->standards[s];
		enum plan_family fam;
		const char *name;
		int64_t in_groups = 0, counted = 0;

		if (standard < 0 || standard >= PLAN_NSTANDARDS)
			return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
			                  "audit time: unknown standard %d", standard);
		fam = plan_standard_family(standard);
		name = plan_standard_names[standard];
		st->standard = standard;
		st->persons = in->persons;
		if (c->identical_groups[fam] && in->ngroups > 0) {
			st->groups = plan_arena_alloc(arena, in->ngroups * sizeof(*st->groups));
			if (st->groups == NULL)
				return ASSAY_ERR_FATAL;
			for (size_t g = 0; g < in->ngroups; g++) {
				int32_t n = in->groups[g].persons > 0 ? in->groups[g].persons : 0;

				st->groups[g].group_id = in->groups[g].group_id;
				st->groups[g].persons = n;
				st->groups[g].counted = plan_ceil_sqrt(n);
				in_groups += n;
				counted += st->groups[g].counted;
			}
			st->ngroups = in->ngroups;
		}
		/* effective = persons outside the groups + sum of ceil(sqrt(n)) (R2.11) */
		st->effective_persons =
		        (int32_t)((in->persons > in_groups ? in->persons - in_groups : 0) +
		                  counted);
		if (st->ngroups > 0)
			err = err ? err
			          : note(out, notes, MAX_NOTES, arena,
			                 "%s: %zu identical-work groups of %lld persons count as "
			                 "%lld, "
			                 "so %d persons count as %d",
			                 name, st->ngroups, (long long)in_groups,
			                 (long long)counted, in->persons, st->effective_persons);
		if (in_groups > in->persons)
			err = err ? err
			          : note(out, notes, MAX_NOTES, arena,
			                 "%s: the identical-work groups hold %lld persons, more "
			                 "than the "
			                 "%d registered; persons outside the groups count as 0",
			                 name, (long long)in_groups, in->persons);

		/* adjustments, each justified, summed, then capped (R2.5, R2.12, R2.13) */
		st->adjustment_cap_percent = c->adjustment_cap_percent[fam];
		for (size_t a = 0; a < in->nadjustments; a++)
			if (in->adjustments[a].standard == standard)
				st->adjustment_sum_percent += in->adjustments[a].percent;
		st->adjustment_applied_percent = st->adjustment_sum_percent;
		if (st->adjustment_sum_percent < -st->adjustment_cap_percent) {
			st->adjustment_applied_percent = -st->adjustment_cap_percent;
			err = err ? err
			          : note(out, notes, MAX_NOTES, arena,
			                 "%s: adjustments sum to %.1f%%, capped at -%.1f%%", name,
			                 st->adjustment_sum_percent, st->adjustment_cap_percent);
		}

		st->configured = c->table[fam].count > 0;
		if (!st->configured) {
			out->configured = false;
			err = err ? err
			          : note(out, notes, MAX_NOTES, arena,
			                 "%s audit time not configured", plan_family_names[fam]);
			continue;
		}
		st->table_days = plan_time_table_days(&c->table[fam], st->effective_persons,
		                                      &st->extrapolated);
		if (st->extrapolated)
			err = err ? err
			          : note(out, notes, MAX_NOTES, arena,
			                 "%s: %d persons lie above the table; its last step was "
			                 "extended",
			                 name, st->effective_persons);
		st->days = plan_half_day_up(st->table_days *
		                            (1.0 + st->adjustment_applied_percent / 100.0));
		table_sum += st->table_days;
	}
	out->nstandards = in->nstandards;
	if (err)
		return err;

	/* multi-site sample (R2.23) */
	out->sites_total = in->sites_total;
	out->sampling_factor = c->sampling_factor[in->audit_type];
	out->sites_sampled = plan_sample_size(in->sites_total, out->sampling_factor);

	/* integration (R2.17-R2.20): only a combined audit of two standards is reduced */
	out->integration_elements = in->integration_elements;
	if (in->integration_elements < 0 || in->integration_elements > PLAN_INTEGRATION_ELEMENTS)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "audit time: %d integrated elements, expected 0..7",
		                  in->integration_elements);
	if (in->nstandards > 1)
		out->integration_reduction_percent =
		        c->integration_percent[in->integration_elements];
	else if (in->integration_elements > 0)
		err = note(out, notes, MAX_NOTES, arena,
		           "one standard: no reduction for integration");
	out->total_reduction_cap_percent = c->total_reduction_cap_percent;
	out->onsite_min_percent = c->onsite_min_percent;
	out->audit_share_percent = c->share_percent[in->audit_type];
	if (err || !out->configured)
		return err;

	for (size_t s = 0; s < out->nstandards; s++)
		out->sum_days += out->standards[s].days;
	after = out->sum_days * (1.0 - out->integration_reduction_percent / 100.0);
	/* all reductions compounded against the table times, capped (R2.18, R2.19) */
	out->total_reduction_percent = table_sum > 0 ? 100.0 * (1.0 - after / table_sum) : 0.0;
	if (out->total_reduction_percent > out->total_reduction_cap_percent + 1e-9) {
		err = note(out, notes, MAX_NOTES, arena, "total reduction %.1f%% capped at %.1f%%",
		           out->total_reduction_percent, out->total_reduction_cap_percent);
		after = table_sum * (1.0 - out->total_reduction_cap_percent / 100.0);
		out->total_reduction_percent = out->total_reduction_cap_percent;
	}
	out->initial_days = plan_half_day_up(after);
	/* this audit's part of the initial time (R2.6), then the on-site floor (R2.2) */
	out->total_days = plan_half_day_up(out->initial_days * out->audit_share_percent / 100.0);
	out->onsite_days = plan_half_day_up(out->total_days * out->onsite_min_percent / 100.0);
	if (out->onsite_days > out->total_days)
		out->onsite_days = out->total_days;
	out->offsite_days = out->total_days - out->onsite_days;
	return err;
}
