/*
 * The evidence intake rules (issue 5) as pure functions: form checks that make the
 * de-duplication key trustworthy, then the audit, time and control rules against intake's
 * projection of the audit and the control catalog. Each check returns the first rule broken
 * with a lowercase human message naming the field or the controls.
 */
#include "intake_rules.h"
#include "assay_utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[INTAKE_REASON_COUNT] = {
        "UNKNOWN_AUDIT",   "AUDIT_CLOSED",
        "WRONG_TENANT",    "WRONG_CLIENT",
        "NO_CONTROLS",     "UNKNOWN_CONTROL",
        "OUT_OF_SCOPE",    "NO_SOA",
        "EXCLUDED_IN_SOA", "BAD_HASH",
        "FUTURE_DATED",    "STALE",
        "TOO_LARGE",       "TOO_MANY_ATTRIBUTES",
        "STRING_TOO_LONG", "EMPTY_FIELD",
        "INVALID_UTF8",    "HASH_CONFLICT",
};

const char *intake_reason_name(enum intake_reason r)
{
	if (r == INTAKE_OK)
		return "OK";
	if ((int)r < 0 || r >= INTAKE_REASON_COUNT)
		return "UNKNOWN";
	return reason_names[r];
}

bool intake_utf8_valid(const char *str, size_t len)
{
	return assay_utf8_valid(str, len);
}

bool intake_hash_valid(const struct intake_str *h)
{
	if (h->len != 64)
		return false;
	for (size_t i = 0; i < 64; i++) {
		char c = h->p[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

struct named {
	const char *name;
	const struct intake_str *s;
	bool required;
};

enum intake_reason intake_check_form(const struct intake_evidence *ev,
                                     const struct intake_limits *lim, bool *usable, char *message,
                                     size_t message_size)
{
	const struct named fields[] = {
	        {"event_id", &ev->event_id, true},
	        {"tenant_id", &ev->tenant_id, true},
	        {"audit_id", &ev->audit_id, true},
	        {"client_id", &ev->client_id, true},
	        {"evidence_id", &ev->evidence_id, true},
	        {"source_system", &ev->source_system, true},
	        {"uri", &ev->uri, true},
	        {"kind", &ev->kind, false},
	        {"sha256", &ev->sha256, false},
	};
	const size_t nfields = sizeof(fields) / sizeof(fields[0]);

	if (usable)
		*usable = true;
	/* encoding first: nothing else can be trusted, not even for the rejection */
	for (size_t i = 0; i < nfields; i++)
		if (!intake_utf8_valid(fields[i].s->p, fields[i].s->len)) {
			if (usable)
				*usable = false;
			snprintf(message, message_size, "%s is not valid utf-8", fields[i].name);
			return INTAKE_INVALID_UTF8;
		}
	for (size_t i = 0; i < ev->ncontrols; i++)
		if (!intake_utf8_valid(ev->controls[i].p, ev->controls[i].len)) {
			snprintf(message, message_size, "claimed control %zu is not valid utf-8",
			         i);
			return INTAKE_INVALID_UTF8;
		}
	for (size_t i = 0; i < ev->nattrs; i++)
		if (!intake_utf8_valid(ev->attrs[i].key.p, ev->attrs[i].key.len) ||
		    !intake_utf8_valid(ev->attrs[i].value.p, ev->attrs[i].value.len)) {
			snprintf(message, message_size, "attribute %zu is not valid utf-8", i);
			return INTAKE_INVALID_UTF8;
		}

	/* a hash of the wrong length is BAD_HASH, below */
	for (size_t i = 0; i + 1 < nfields; i++)
		if (fields[i].s->len > lim->max_string_bytes) {
			if (usable)
				*usable = false;
			snprintf(message, message_size, "%s is %zu bytes long, the limit is %zu",
			         fields[i].name, fields[i].s->len, lim->max_string_bytes);
			return INTAKE_STRING_TOO_LONG;
		}
	for (size_t i = 0; i < ev->ncontrols; i++)
		if (ev->controls[i].len > lim->max_string_bytes) {
			snprintf(message, message_size,
			         "claimed control %zu is %zu bytes long, the limit is %zu", i,
			         ev->controls[i].len, lim->max_string_bytes);
			return INTAKE_STRING_TOO_LONG;
		}
	for (size_t i = 0; i < ev->nattrs; i++)
		if (ev->attrs[i].key.len > lim->max_string_bytes ||
		    ev->attrs[i].value.len > lim->max_string_bytes) {
			snprintf(message, message_size,
			         "attribute %zu is longer than the limit of %zu bytes", i,
			         lim->max_string_bytes);
			return INTAKE_STRING_TOO_LONG;
		}

	for (size_t i = 0; i < nfields; i++)
		if (fields[i].required && fields[i].s->len == 0) {
			snprintf(message, message_size, "%s is empty", fields[i].name);
			return INTAKE_EMPTY_FIELD;
		}
	for (size_t i = 0; i < ev->ncontrols; i++)
		if (ev->controls[i].len == 0) {
			snprintf(message, message_size, "claimed control %zu is empty", i);
			return INTAKE_EMPTY_FIELD;
		}

	if (ev->nattrs > lim->max_attributes) {
		snprintf(message, message_size, "%zu attributes, the limit is %zu", ev->nattrs,
		         lim->max_attributes);
		return INTAKE_TOO_MANY_ATTRIBUTES;
	}
	if (ev->size_bytes < 0 || ev->size_bytes > lim->max_size_bytes) {
		snprintf(message, message_size, "size_bytes %lld is outside 0..%lld",
		         (long long)ev->size_bytes, (long long)lim->max_size_bytes);
		return INTAKE_TOO_LARGE;
	}
	if (ev->ncontrols > lim->max_controls) {
		snprintf(message, message_size, "%zu claimed controls, the limit is %zu",
		         ev->ncontrols, lim->max_controls);
		return INTAKE_TOO_LARGE;
	}
	if (!intake_hash_valid(&ev->sha256)) {
		snprintf(message, message_size, "sha256 is not 64 lowercase hex digits");
		return INTAKE_BAD_HASH;
	}
	return INTAKE_OK;
}

/* True when a and b name editions of one family ("ISO27001_2013", "ISO27001_2022"). */
static bool same_family(const char *a, const char *b)
{
	const char *ua = strchr(a, '_'), *ub = strchr(b, '_');

	return ua && ub && ua - a == ub - b && strncmp(a, b, (size_t)(ua - a)) == 0;
}

/* Appends the flagged refs to message after prefix, as "prefix: A, B". */
static void list_flagged(const struct intake_evidence *ev, const bool *bad, const char *prefix,
                         char *message, size_t message_size)
{
	size_t used;
	bool first = true;

	snprintf(message, message_size, "%s: ", prefix);
	used = strlen(message);
	for (size_t i = 0; i < ev->ncontrols && used + 1 < message_size; i++) {
		int n;

		if (!bad[i])
			continue;
		n = snprintf(message + used, message_size - used, "%s%.*s", first ? "" : ", ",
		             (int)ev->controls[i].len, ev->controls[i].p);
		if (n < 0)
			break;
		used += (size_t)n;
		first = false;
	}
}

static bool str_eq(const struct intake_str *s, const char *z)
{
	return z != NULL && strlen(z) == s->len && memcmp(s->p, z, s->len) == 0;
}

enum intake_reason intake_check_rules(const struct intake_evidence *ev,
                                      const struct assay_audit *audit,
                                      const struct intake_catalog *cat,
                                      const struct intake_limits *lim, int64_t now_ms,
                                      struct intake_control *resolved, bool *bad, char *message,
                                      size_t message_size)
{
	enum intake_reason r = INTAKE_OK;
	size_t nbad = 0;

	for (size_t i = 0; i < ev->ncontrols; i++) {
		bad[i] = false;
		resolved[i].standard = NULL;
		resolved[i].id[0] = '\0';
		resolved[i].annex_a = false;
	}
	if (ev->collected_at_ms > now_ms + lim->future_tolerance_ms) {
		snprintf(message, message_size,
		         "collected_at is %lld ms in the future, the tolerance is %lld ms",
		         (long long)(ev->collected_at_ms - now_ms),
		         (long long)lim->future_tolerance_ms);
		return INTAKE_FUTURE_DATED;
	}
	if (ev->collected_at_ms < now_ms - lim->freshness_ms) {
		snprintf(message, message_size,
		         "collected_at is %lld days old, the freshness window is %lld days",
		         (long long)((now_ms - ev->collected_at_ms) / 86400000),
		         (long long)(lim->freshness_ms / 86400000));
		return INTAKE_STALE;
	}
	if (audit == NULL) {
		snprintf(message, message_size, "audit %.*s is not known (yet)",
		         (int)ev->audit_id.len, ev->audit_id.p);
		return INTAKE_UNKNOWN_AUDIT;
	}
	if (!str_eq(&ev->tenant_id, audit->tenant_id)) {
		snprintf(message, message_size, "audit %s belongs to another tenant",
		         audit->audit_id);
		return INTAKE_WRONG_TENANT;
	}
	if (!str_eq(&ev->client_id, audit->client_id)) {
		snprintf(message, message_size, "audit %s is for client %s, not %.*s",
		         audit->audit_id, audit->client_id, (int)ev->client_id.len,
		         ev->client_id.p);
		return INTAKE_WRONG_CLIENT;
	}
	if (audit->closed) {
		snprintf(message, message_size, "audit %s is closed", audit->audit_id);
		return INTAKE_AUDIT_CLOSED;
	}
	if (ev->ncontrols == 0) {
		snprintf(message, message_size, "no claimed controls");
		return INTAKE_NO_CONTROLS;
	}

	/* unknown: malformed, unknown family, or not in the standard's catalog */
	for (size_t i = 0; i < ev->ncontrols; i++) {
		char ref[INTAKE_STANDARD_LEN + INTAKE_ID_LEN + 16], why[128];
		const char *standard = NULL, *colon;
		int k;

		if (ev->controls[i].len >= sizeof(ref)) {
			bad[i] = true;
			nbad++;
			continue;
		}
		memcpy(ref, ev->controls[i].p, ev->controls[i].len);
		ref[ev->controls[i].len] = '\0';
		if (cat->parse(cat->ctx, ref, &standard, resolved[i].id, sizeof(resolved[i].id),
		               why, sizeof(why)) != 0 ||
		    standard == NULL) {
			bad[i] = true;
			nbad++;
			continue;
		}
		/* a family-only ref ("ISO27001:...") means the edition of the audit's scope */
		colon = strchr(ref, ':');
		if (intake_audit_standard(audit, standard) < 0 && colon != NULL &&
		    memchr(ref, '_', (size_t)(colon - ref)) == NULL) {
			for (size_t s = 0; s < audit->nstandards; s++)
				if (same_family(audit->standards[s], standard)) {
					standard = audit->standards[s];
					break;
				}
		}
		resolved[i].standard = standard;
		k = cat->find(cat->ctx, standard, resolved[i].id);
		if (k < 0) {
			bad[i] = true;
			nbad++;
		}
		resolved[i].annex_a = k == 1;
	}
	if (nbad) {
		list_flagged(ev, bad, "unknown controls", message, message_size);
		return INTAKE_UNKNOWN_CONTROL;
	}

	for (size_t i = 0; i < ev->ncontrols; i++)
		if (intake_audit_standard(audit, resolved[i].standard) < 0) {
			bad[i] = true;
			nbad++;
		}
	if (nbad) {
		list_flagged(ev, bad, "standard not in the audit's scope", message, message_size);
		return INTAKE_OUT_OF_SCOPE;
	}

	/* SoA: Annex A controls only; no SoA for the standard first, then exclusions */
	for (int pass = 0; pass < 2 && r == INTAKE_OK; pass++) {
		for (size_t i = 0; i < ev->ncontrols; i++) {
			int s = intake_audit_standard(audit, resolved[i].standard);
			const struct assay_audit_soa *soa = audit->soa[s];

			if (!resolved[i].annex_a)
				continue;
			if (pass == 0 && soa == NULL) {
				bad[i] = true;
				nbad++;
			} else if (pass == 1 && intake_soa_lookup(soa, resolved[i].id) != 1) {
				bad[i] = true;
				nbad++;
			}
		}
		if (nbad)
			r = pass == 0 ? INTAKE_NO_SOA : INTAKE_EXCLUDED_IN_SOA;
	}
	if (r == INTAKE_NO_SOA)
		list_flagged(ev, bad, "no soa yet for the standard of", message, message_size);
	else if (r == INTAKE_EXCLUDED_IN_SOA)
		list_flagged(ev, bad, "excluded (or not listed) in the soa", message, message_size);
	return r;
}
