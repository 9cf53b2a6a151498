/*
 * Evidence for tests and benchmarks of the evidence pipeline (intake, mapper, risk): Avro
 * builders for EvidenceSubmitted and the audit events intake follows (AuditOpened,
 * SoaSubmitted, StageCompleted), and a generator that sets up audits and streams valid
 * evidence (with a configurable share of invalid events) at a configurable rate.
 *
 * Every helper fails the running cmocka test instead of returning an error.
 */
#ifndef ASSAY_TEST_EVIDENCE_H
#define ASSAY_TEST_EVIDENCE_H

#include "assay_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One EvidenceSubmitted; NULL strings get the defaults of assay_test_evidence_spec_init. */
struct assay_test_evidence_spec {
	const char *event_id; /* NULL: a random UUID */
	const char *tenant_id, *audit_id, *client_id, *evidence_id, *source_system, *kind;
	const char *sha256, *uri;
	int64_t collected_at_ms;
	int64_t size_bytes;
	const char *const *controls; /* "ISO27001:A.8.15" */
	size_t ncontrols;
	const char *const *attr_keys, *const *attr_values;
	size_t nattrs;
};

/* Valid-looking defaults for evidence evidence_id of audit_id (tenant, client given):
 * source "scanner", kind CONFIGURATION_SCAN, sha256 = SHA-256 of evidence_id in hex (written
 * into sha_buf, 65 bytes, which must outlive the spec), collected an hour ago, 4096 bytes,
 * no controls, no attributes. */
void assay_test_evidence_spec_init(struct assay_test_evidence_spec *s, const char *tenant_id,
                                   const char *audit_id, const char *client_id,
                                   const char *evidence_id, char sha_buf[65]);

/* SHA-256 of text as 64 lowercase hex digits into out (65 bytes). */
void assay_test_sha256_hex(const char *text, char out[65]);

/* Encoded (framed) messages; *buf is malloc'd (caller frees). */
void assay_test_evidence_encode(struct assay_codec *codec, const struct assay_test_evidence_spec *s,
                                void **buf, size_t *len);
void assay_test_audit_opened_encode(struct assay_codec *codec, const char *tenant_id,
                                    const char *audit_id, const char *client_id,
                                    const char *const *standards, size_t nstandards, void **buf,
                                    size_t *len);
/* ids[i] applicable[i], n rows. */
void assay_test_soa_encode(struct assay_codec *codec, const char *tenant_id, const char *audit_id,
                           const char *client_id, const char *standard, int revision,
                           const char *const *ids, const bool *applicable, size_t n, void **buf,
                           size_t *len);
void assay_test_stage_completed_encode(struct assay_codec *codec, const char *tenant_id,
                                       const char *audit_id, const char *client_id,
                                       const char *const *standards, size_t nstandards, void **buf,
                                       size_t *len);

/* What the generator makes. */
struct assay_test_evidence_config {
	const char *pg_url;         /* migrated database: schema registry and control catalog */
	const char *audit_topic;    /* AuditOpened / SoaSubmitted go here */
	const char *evidence_topic; /* EvidenceSubmitted go here */
	const char *tenant_id;      /* NULL: "cb-gen" */
	int clients;                /* audits are spread over clients (>= 1) */
	int audits;                 /* evidence is spread over audits (>= 1) */
	double invalid_share;       /* 0..1: share of evidence that breaks a rule */
	double rate;                /* evidence per second; 0: as fast as the producer takes it */
	int attributes;             /* attributes per evidence (default 0 -> 2) */
};

struct assay_test_evidence;

/* A generator: codec over the database's registry, catalog loaded, idempotent producer. */
struct assay_test_evidence *assay_test_evidence_new(const struct assay_test_evidence_config *cfg);
void assay_test_evidence_destroy(struct assay_test_evidence *g);

/* The generator's codec (for decoding outputs in tests). */
struct assay_codec *assay_test_evidence_codec(struct assay_test_evidence *g);

/* Produces, for every audit "audit-<k>" (client "client-<k % clients>"), an AuditOpened over
 * ISO27001_2022 and ISO42001_2023 and one SoaSubmitted per standard that lists every Annex A
 * control, all applicable except the last of each standard; waits for delivery. */
void assay_test_evidence_audits(struct assay_test_evidence *g);

/*
 * Produces count EvidenceSubmitted with evidence ids "ev-<first+i>" (key audit_id, header
 * trace_id "gen-<first+i>", record timestamp = now), paced at cfg->rate. Evidence i goes to
 * audit (first+i) % audits and claims two applicable 27001 controls and one 42001 control.
 * Every round(1/invalid_share)-th one is invalid instead, cycling through BAD_HASH,
 * FUTURE_DATED, UNKNOWN_CONTROL, UNKNOWN_AUDIT, EXCLUDED_IN_SOA. sent_ms (may be NULL): count
 * entries, the record timestamp of each. Waits for delivery. Returns the number of invalid
 * ones.
 */
long assay_test_evidence_produce(struct assay_test_evidence *g, long first, long count,
                                 int64_t *sent_ms);

/* Is evidence number seq one of the invalid ones (same rule as produce)? */
bool assay_test_evidence_is_invalid(const struct assay_test_evidence *g, long seq);

/* Produces one raw message (value may be NULL) with key (may be NULL) and waits for it. */
void assay_test_evidence_send(struct assay_test_evidence *g, const char *topic, const char *key,
                              const void *value, size_t len);

#endif
