/*
 * The intake rules as pure functions over plain structs: what makes submitted evidence
 * acceptable (issue 5), the reason codes of EvidenceRejected, and the checks against an audit of
 * the shared projection (owner, scope, closure, SoA per standard). No Kafka, no PostgreSQL, no
 * allocation: the handler (intake.c) fills these structs from decoded Avro values and acts on the
 * verdicts.
 *
 * Rules are checked in two steps, with de-duplication between them (intake.c):
 *   1. form (intake_check_form): strings valid UTF-8 and within the length limit, required
 *      strings not empty, attribute count, size, hash format. Needed before the evidence id
 *      and hash can be trusted as a de-duplication key.
 *   2. rules (intake_check_rules): collected-at time, audit known / owned by the tenant and
 *      client / open, claimed controls known, in scope and applicable in the SoA.
 * A verdict names the first rule broken, in the order of enum intake_reason's checks above.
 *
 * Threads: everything here is reentrant.
 */
#ifndef INTAKE_RULES_H
#define INTAKE_RULES_H

#include "assay_audit_projection.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The EvidenceRejected reason symbols (schemas/evidence_rejected.avsc), in schema order. */
enum intake_reason {
	INTAKE_OK = -1,
	INTAKE_UNKNOWN_AUDIT = 0,
	INTAKE_AUDIT_CLOSED,
	INTAKE_WRONG_TENANT,
	INTAKE_WRONG_CLIENT,
	INTAKE_NO_CONTROLS,
	INTAKE_UNKNOWN_CONTROL,
	INTAKE_OUT_OF_SCOPE,
	INTAKE_NO_SOA,
	INTAKE_EXCLUDED_IN_SOA,
	INTAKE_BAD_HASH,
	INTAKE_FUTURE_DATED,
	INTAKE_STALE,
	INTAKE_TOO_LARGE,
	INTAKE_TOO_MANY_ATTRIBUTES,
	INTAKE_STRING_TOO_LONG,
	INTAKE_EMPTY_FIELD,
	INTAKE_INVALID_UTF8,
	INTAKE_HASH_CONFLICT,
	INTAKE_REASON_COUNT
};

/* The Avro enum symbol of r ("UNKNOWN_AUDIT", ...); "OK" for INTAKE_OK. */
const char *intake_reason_name(enum intake_reason r);

/* Limits a certification body may set (settings intake.*; defaults in intake.c). */
struct intake_limits {
	int64_t future_tolerance_ms; /* collected_at may be at most this far ahead of now */
	int64_t freshness_ms;        /* collected_at may be at most this far behind now */
	int64_t max_size_bytes;      /* size_bytes of the artefact */
	size_t max_attributes;       /* entries of the attributes map */
	size_t max_string_bytes;     /* any string: ids, uri, controls, attribute keys/values */
	size_t max_controls;         /* claimed controls */
};

/* A string view (not necessarily NUL-terminated). */
struct intake_str {
	const char *p;
	size_t len;
};

struct intake_attr {
	struct intake_str key, value;
};

/* Submitted evidence: views into the decoded message, borrowed for the call. */
struct intake_evidence {
	struct intake_str event_id, tenant_id, audit_id, client_id, evidence_id, source_system,
	        kind, sha256, uri;
	int64_t collected_at_ms;
	int64_t size_bytes;
	const struct intake_str *controls; /* ncontrols claimed refs, "ISO27001:A.8.15" */
	size_t ncontrols;
	const struct intake_attr *attrs;
	size_t nattrs;
};

/* Catalog access through callbacks, so the rules run on a real catalog (assay_catalog) in the
 * service and on a small table in unit tests. */
struct intake_catalog {
	/* Resolves a submitted ref (NUL-terminated) to a standard symbol (static or owned by the
	 * catalog) and the control id copied into id. 0, or non-zero for a malformed ref or an
	 * unknown family with the reason in errstr. */
	int (*parse)(void *ctx, const char *ref, const char **standard, char *id, size_t id_size,
	             char *errstr, size_t errstr_size);
	/* 1: an Annex A control of standard; 0: a clause requirement; -1: not in the catalog */
	int (*find)(void *ctx, const char *standard, const char *id);
	void *ctx;
};

/* intake's view of an audit is the shared projection's (assay_audit_projection.h) */
#define INTAKE_MAX_STANDARDS ASSAY_AUDIT_MAX_STANDARDS
#define INTAKE_STANDARD_LEN  ASSAY_AUDIT_STANDARD_LEN
#define INTAKE_ID_LEN        32 /* a control id: "A.8.15", "6.1.4" */

/* Index of standard in a's scope, or -1. */
static inline int intake_audit_standard(const struct assay_audit *a, const char *standard)
{
	return assay_audit_standard(a, standard);
}

/* Applicability of control id in soa: 1 applicable, 0 excluded, -1 not listed. */
static inline int intake_soa_lookup(const struct assay_audit_soa *soa, const char *id)
{
	return assay_audit_soa_lookup(soa, id);
}

/* A resolved claimed control. */
struct intake_control {
	const char *standard; /* symbol, e.g. "ISO27001_2022" (static or the catalog's) */
	char id[INTAKE_ID_LEN];
	bool annex_a; /* an Annex A control (SoA applies), not a clause */
};

/* Well-formed UTF-8 (RFC 3629) without NUL bytes: assay_utf8_valid under intake's name. */
bool intake_utf8_valid(const char *s, size_t len);

/* 64 lowercase hex digits. */
bool intake_hash_valid(const struct intake_str *h);

/*
 * Step 1. Returns INTAKE_OK or the first of INTAKE_INVALID_UTF8, INTAKE_STRING_TOO_LONG,
 * INTAKE_EMPTY_FIELD, INTAKE_TOO_MANY_ATTRIBUTES, INTAKE_TOO_LARGE, INTAKE_BAD_HASH broken (a hash
 * of the wrong length is BAD_HASH, never STRING_TOO_LONG), with
 * a human message ("<field> ...") in message. Required non-empty: event_id, tenant_id,
 * audit_id, client_id, evidence_id, source_system, uri. Too many claimed controls is TOO_LARGE.
 * *usable (may be NULL) tells whether the ids may be echoed in a rejection: false when a string
 * is not UTF-8 or too long.
 */
enum intake_reason intake_check_form(const struct intake_evidence *ev,
                                     const struct intake_limits *lim, bool *usable, char *message,
                                     size_t message_size);

/*
 * Step 2, for evidence that passed step 1. audit: the projection of ev->audit_id, NULL when
 * unknown. now_ms: the reference time. resolved and bad: ev->ncontrols entries each, filled
 * with the resolved controls and with the controls the reason is about (UNKNOWN_CONTROL,
 * OUT_OF_SCOPE, NO_SOA, EXCLUDED_IN_SOA: every offending control is flagged, not just the
 * first). A family-only ref ("ISO27001:...") resolves to the edition of that family in the
 * audit's scope when the catalog's current edition is not in scope. SoA applicability is
 * checked for Annex A controls only (clauses 4-10 are never excluded).
 * Returns INTAKE_OK or the reason, with the message.
 */
enum intake_reason intake_check_rules(const struct intake_evidence *ev,
                                      const struct assay_audit *audit,
                                      const struct intake_catalog *cat,
                                      const struct intake_limits *lim, int64_t now_ms,
                                      struct intake_control *resolved, bool *bad, char *message,
                                      size_t message_size);

#endif
