/*
 * assay-plan's settings (plan.h): the table docs/configuration.md is generated from, and the
 * rules they configure (audit-time tables, caps, sampling and shares), checked once at start.
 */
#include "plan.h"
#include "assay_err.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S(field) offsetof(struct plan_settings, field)

const struct assay_setting plan_settings[] = {
        {"topic.audit.commands", "ASSAY_TOPIC_AUDIT_COMMANDS", ASSAY_SETTING_STRING,
         "assay.audit.commands", 0, 0, S(topic_commands), "topic of the audit commands consumed"},
        {"topic.audit.events", "ASSAY_TOPIC_AUDIT_EVENTS", ASSAY_SETTING_STRING,
         "assay.audit.events", 0, 0, S(topic_events), "topic the audit events are published to"},
        {"plan.conflict.months", "ASSAY_PLAN_CONFLICT_MONTHS", ASSAY_SETTING_INT, "24", 0, 600,
         S(conflict_months),
         "months after consultancy, employment or a declared relation with a client during "
         "which a person may not audit or decide it (17021-1, domain-rules R1.38)"},
        {"plan.time.isms.table", "ASSAY_PLAN_TIME_ISMS_TABLE", ASSAY_SETTING_STRING,
         plan_isms_table_default, 0, 0, S(isms_table),
         "ISMS audit-time table, persons:days bands (ISO/IEC 27006-1 Annex C, domain-rules "
         "R2.10)"},
        {"plan.time.aims.table", "ASSAY_PLAN_TIME_AIMS_TABLE", ASSAY_SETTING_STRING, "", 0, 0,
         S(aims_table),
         "AIMS audit-time table, persons:days bands; empty: not configured, no public source "
         "(domain-rules R2.16)"},
        {"plan.time.isms.adjustment.cap.percent", "ASSAY_PLAN_TIME_ISMS_ADJUSTMENT_CAP_PERCENT",
         ASSAY_SETTING_INT, "30", 0, 99, S(isms_adjustment_cap_percent),
         "largest reduction of the ISMS table time by adjustment factors (domain-rules R2.13)"},
        {"plan.time.aims.adjustment.cap.percent", "ASSAY_PLAN_TIME_AIMS_ADJUSTMENT_CAP_PERCENT",
         ASSAY_SETTING_INT, "30", 0, 99, S(aims_adjustment_cap_percent),
         "largest reduction of the AIMS table time by adjustment factors (domain-rules R2.5)"},
        {"plan.time.aims.identical.groups", "ASSAY_PLAN_TIME_AIMS_IDENTICAL_GROUPS",
         ASSAY_SETTING_BOOL, "false", 0, 0, S(aims_identical_groups),
         "count identical-work groups as ceil(sqrt(n)) for AIMS too (ISMS always does)"},
        {"plan.time.integration.max.percent", "ASSAY_PLAN_TIME_INTEGRATION_MAX_PERCENT",
         ASSAY_SETTING_INT, "20", 0, 20, S(integration_max_percent),
         "largest reduction for an integrated management system (IAF MD 11, domain-rules "
         "R2.18)"},
        {"plan.time.integration.table", "ASSAY_PLAN_TIME_INTEGRATION_TABLE", ASSAY_SETTING_STRING,
         "", 0, 0, S(integration_table),
         "reduction percent for 0..7 integrated elements, 8 comma-separated numbers; empty: "
         "linear up to the maximum (domain-rules R2.20)"},
        {"plan.time.total.reduction.cap.percent", "ASSAY_PLAN_TIME_TOTAL_REDUCTION_CAP_PERCENT",
         ASSAY_SETTING_INT, "50", 0, 99, S(total_reduction_cap_percent),
         "largest total reduction against the table times (IAF MD 1, domain-rules R2.19)"},
        {"plan.time.onsite.min.percent", "ASSAY_PLAN_TIME_ONSITE_MIN_PERCENT", ASSAY_SETTING_INT,
         "80", 0, 100, S(onsite_min_percent),
         "smallest on-site share of the audit time (domain-rules R2.2)"},
        {"plan.sampling.initial.permille", "ASSAY_PLAN_SAMPLING_INITIAL_PERMILLE",
         ASSAY_SETTING_INT, "1000", 1, 10000, S(sampling_permille[PLAN_STAGE_1]),
         "multi-site sample factor f (x1000) of stage 1 audits: ceil(f*sqrt(sites)) (IAF MD 1)"},
        {"plan.sampling.stage2.permille", "ASSAY_PLAN_SAMPLING_STAGE2_PERMILLE", ASSAY_SETTING_INT,
         "1000", 1, 10000, S(sampling_permille[PLAN_STAGE_2]),
         "multi-site sample factor f (x1000) of stage 2 audits (IAF MD 1)"},
        {"plan.sampling.surveillance.permille", "ASSAY_PLAN_SAMPLING_SURVEILLANCE_PERMILLE",
         ASSAY_SETTING_INT, "600", 1, 10000, S(sampling_permille[PLAN_SURVEILLANCE]),
         "multi-site sample factor f (x1000) of surveillance audits (IAF MD 1)"},
        {"plan.sampling.recertification.permille", "ASSAY_PLAN_SAMPLING_RECERTIFICATION_PERMILLE",
         ASSAY_SETTING_INT, "800", 1, 10000, S(sampling_permille[PLAN_RECERTIFICATION]),
         "multi-site sample factor f (x1000) of recertification audits (IAF MD 1)"},
        {"plan.sampling.special.permille", "ASSAY_PLAN_SAMPLING_SPECIAL_PERMILLE",
         ASSAY_SETTING_INT, "1000", 1, 10000, S(sampling_permille[PLAN_SPECIAL]),
         "multi-site sample factor f (x1000) of special audits (no source: as initial)"},
        {"plan.share.stage1.permille", "ASSAY_PLAN_SHARE_STAGE1_PERMILLE", ASSAY_SETTING_INT, "333",
         1, 10000, S(share_permille[PLAN_STAGE_1]),
         "share (x1000) of the initial audit time a stage 1 takes (domain-rules §2.6)"},
        {"plan.share.stage2.permille", "ASSAY_PLAN_SHARE_STAGE2_PERMILLE", ASSAY_SETTING_INT, "667",
         1, 10000, S(share_permille[PLAN_STAGE_2]),
         "share (x1000) of the initial audit time a stage 2 takes (domain-rules §2.6)"},
        {"plan.share.surveillance.permille", "ASSAY_PLAN_SHARE_SURVEILLANCE_PERMILLE",
         ASSAY_SETTING_INT, "333", 1, 10000, S(share_permille[PLAN_SURVEILLANCE]),
         "share (x1000) of the initial audit time a surveillance audit takes (R2.6)"},
        {"plan.share.recertification.permille", "ASSAY_PLAN_SHARE_RECERTIFICATION_PERMILLE",
         ASSAY_SETTING_INT, "667", 1, 10000, S(share_permille[PLAN_RECERTIFICATION]),
         "share (x1000) of the initial audit time a recertification audit takes (R2.6)"},
        {"plan.share.special.permille", "ASSAY_PLAN_SHARE_SPECIAL_PERMILLE", ASSAY_SETTING_INT,
         "333", 1, 10000, S(share_permille[PLAN_SPECIAL]),
         "share (x1000) of the initial audit time a special audit takes (no source: as "
         "surveillance)"},
        {NULL, NULL, 0, NULL, 0, 0, 0, "assay-plan settings"},
};

/* Appends one configuration problem to errstr ("; "-separated). */
static void problem(char *errstr, size_t errstr_size, size_t *len, int *bad, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static void problem(char *errstr, size_t errstr_size, size_t *len, int *bad, const char *fmt, ...)
{
	va_list ap;
	int n;

	*bad = 1;
	if (errstr == NULL || *len + 3 >= errstr_size)
		return;
	if (*len > 0)
		*len += (size_t)snprintf(errstr + *len, errstr_size - *len, "; ");
	va_start(ap, fmt);
	n = vsnprintf(errstr + *len, errstr_size - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n;
	if (*len >= errstr_size)
		*len = errstr_size - 1;
}

int plan_rules_from_settings(const struct plan_settings *s, struct plan_rules *r, char *errstr,
                             size_t errstr_size)
{
	char why[256];
	size_t len = 0;
	int bad = 0;

	plan_rules_default(r);
	if (errstr && errstr_size)
		errstr[0] = '\0';
	r->conflict_months = (int)s->conflict_months;
	if (plan_time_table_parse(s->isms_table, &r->time.table[PLAN_ISMS], why, sizeof(why)) != 0)
		problem(errstr, errstr_size, &len, &bad, "plan.time.isms.table: %s", why);
	if (plan_time_table_parse(s->aims_table, &r->time.table[PLAN_AIMS], why, sizeof(why)) != 0)
		problem(errstr, errstr_size, &len, &bad, "plan.time.aims.table: %s", why);
	r->time.adjustment_cap_percent[PLAN_ISMS] = (double)s->isms_adjustment_cap_percent;
	r->time.adjustment_cap_percent[PLAN_AIMS] = (double)s->aims_adjustment_cap_percent;
	r->time.identical_groups[PLAN_AIMS] = s->aims_identical_groups;
	plan_time_integration_linear(&r->time, (double)s->integration_max_percent);
	if (s->integration_table && s->integration_table[0]) {
		const char *p = s->integration_table;
		int k = 0;

		for (; k <= PLAN_INTEGRATION_ELEMENTS; k++) {
			char *end;
			double x = strtod(p, &end);

			if (end == p || x < 0 || x > (double)s->integration_max_percent ||
			    (k > 0 && x < r->time.integration_percent[k - 1]))
				break;
			r->time.integration_percent[k] = x;
			p = end;
			while (*p == ' ')
				p++;
			if (k < PLAN_INTEGRATION_ELEMENTS) {
				if (*p != ',')
					break;
				p++;
			}
		}
		if (k <= PLAN_INTEGRATION_ELEMENTS || *p != '\0')
			problem(errstr, errstr_size, &len, &bad,
			        "plan.time.integration.table: expected 8 non-decreasing percents "
			        "between 0 and %lld",
			        s->integration_max_percent);
	}
	r->time.total_reduction_cap_percent = (double)s->total_reduction_cap_percent;
	r->time.onsite_min_percent = (double)s->onsite_min_percent;
	for (int t = 0; t < PLAN_NAUDIT_TYPES; t++) {
		r->time.sampling_factor[t] = (double)s->sampling_permille[t] / 1000.0;
		r->time.share_percent[t] = (double)s->share_permille[t] / 10.0;
	}
	return bad ? ASSAY_ERR_FATAL : 0;
}
