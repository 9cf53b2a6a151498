/*
 * Nanoseconds per message through the Avro paths of this build, on the embedded schemas over an
 * in-memory registry (no stack needed):
 *   - the generated contracts (services/domain/contracts): decode and encode of EvidenceSubmitted
 * and EvidenceAccepted (the decode includes resetting its arena);
 *   - intake's path over them (services/intake/intake_events.c), on the same frames: the
 *     generated decode plus intake_submitted_read (into the rules' struct, lists cleared),
 *     and intake_accepted_fill plus the generated encode;
 *   - avro-c's generic decoding through the codec (assay_codec_decode: check + generic value).
 * An event has 3 claimed controls and 3 attributes. Each figure is the best of 5 rounds.
 *
 *   bench_codec [iterations]      (default 1000000; avro-c gets a tenth)
 *
 * Last line: BENCH codec runs=1 submitted_decode_ns=... submitted_encode_ns=...
 *            accepted_decode_ns=... accepted_encode_ns=... intake_decode_ns=...
 *            avroc_decode_ns=... intake_encode_ns=...
 */
#include "assay_test.h"
#include "assay_test_evidence.h"
#include "contract_all.h"
#include "intake_events.h"

#include "assay_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 5

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, const char *errstr)
{
	fprintf(stderr, "bench_codec: %s: %s\n", what, errstr);
	exit(1);
}

/* Everything the rounds share. */
struct bench {
	struct assay_codec *codec;
	struct assay_contracts *cx;
	struct assay_arena arena;
	struct assay_contract_buf buf;
	void *submitted; /* an EvidenceSubmitted frame written by avro-c */
	size_t submitted_len;
	struct assay_evidence_submitted ev;
	struct assay_evidence_accepted acc;
	struct assay_control_ref refs[3];
	unsigned char *accepted; /* the generated encoding of acc */
	size_t accepted_len;
	struct intake_lists lists;
	struct assay_evidence_submitted sub; /* intake's decode */
	struct intake_evidence iev;
	struct intake_control controls[3];
};

enum path {
	GEN_SUBMITTED_DECODE,
	GEN_SUBMITTED_ENCODE,
	GEN_ACCEPTED_DECODE,
	GEN_ACCEPTED_ENCODE,
	INTAKE_DECODE,
	INTAKE_ENCODE,
	AVROC_DECODE,
	NPATHS,
};

static void run_once(struct bench *b, enum path p)
{
	char errstr[256] = "";
	int rc = 0;

	switch (p) {
	case GEN_SUBMITTED_DECODE:
		assay_arena_reset(&b->arena);
		rc = assay_evidence_submitted_decode(b->cx, b->submitted, b->submitted_len,
		                                     &b->arena, &b->ev, errstr, sizeof(errstr));
		break;
	case GEN_SUBMITTED_ENCODE:
		rc = assay_evidence_submitted_encode(b->cx, &b->ev, &b->buf, errstr,
		                                     sizeof(errstr));
		break;
	case GEN_ACCEPTED_DECODE: {
		struct assay_evidence_accepted a;

		assay_arena_reset(&b->arena);
		rc = assay_evidence_accepted_decode(b->cx, b->accepted, b->accepted_len, &b->arena,
		                                    &a, errstr, sizeof(errstr));
		break;
	}
	case GEN_ACCEPTED_ENCODE:
		rc = assay_evidence_accepted_encode(b->cx, &b->acc, &b->buf, errstr,
		                                    sizeof(errstr));
		break;
	case INTAKE_DECODE:
		intake_lists_clear(&b->lists);
		assay_arena_reset(&b->arena);
		rc = assay_evidence_submitted_decode(b->cx, b->submitted, b->submitted_len,
		                                     &b->arena, &b->sub, errstr, sizeof(errstr));
		if (rc == 0)
			rc = intake_submitted_read(&b->sub, &b->iev, &b->lists);
		break;
	case INTAKE_ENCODE: {
		struct intake_accepted a = {
		        .event_id = "6d1f0c8e-6f7a-4a51-9a3e-0c2b8f1d7e55",
		        .occurred_at_ms = 1765000000000,
		        .ev = &b->iev,
		        .controls = b->controls,
		        .topic = "assay.evidence.submitted",
		        .partition = 3,
		        .offset = 123456789,
		};

		struct assay_evidence_accepted out;

		assay_arena_reset(&b->arena);
		rc = intake_accepted_fill(&a, &b->arena, &out, errstr, sizeof(errstr));
		if (rc == 0)
			rc = assay_evidence_accepted_encode(b->cx, &out, &b->buf, errstr,
			                                    sizeof(errstr));
		break;
	}
	case AVROC_DECODE: {
		struct assay_decoded d;

		rc = assay_codec_decode(b->codec, b->submitted, b->submitted_len, &d, errstr,
		                        sizeof(errstr));
		assay_decoded_release(&d);
		break;
	}
	default:
		break;
	}
	if (rc != 0)
		die("run", errstr[0] ? errstr : "a path refused the frame");
}

static double measure(struct bench *b, enum path p, long n)
{
	double best = 0;

	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_ns(), ns;

		for (long i = 0; i < n; i++)
			run_once(b, p);
		ns = (now_ns() - t0) / (double)n;
		if (r == 0 || ns < best)
			best = ns;
	}
	return best;
}

static void prepare(struct bench *b, struct assay_registry *reg)
{
	static const char *const controls[] = {"ISO27001:A.8.15", "ISO27001:A.5.1",
	                                       "ISO42001:6.1.4"};
	static const char *const keys[] = {"scanner", "region", "ticket"};
	static const char *const values[] = {"nessus 10.7", "eu-west-1", "SEC-4711"};
	struct assay_test_evidence_spec spec;
	char errstr[256] = "", sha[65];

	b->codec = assay_codec_new(reg, 1 << 20, errstr, sizeof(errstr));
	if (b->codec == NULL ||
	    assay_codec_register_embedded(b->codec, errstr, sizeof(errstr)) != 0)
		die("codec", errstr);
	b->cx = assay_contracts_new(b->codec, errstr, sizeof(errstr));
	if (b->cx == NULL)
		die("contracts", errstr);
	assay_arena_init(&b->arena);
	assay_contract_buf_init(&b->buf);
	assay_test_evidence_spec_init(&spec, "tenant-bench", "audit-5f2c9b1e", "client-0042",
	                              "evidence-000123", sha);
	spec.controls = controls;
	spec.ncontrols = 3;
	spec.attr_keys = keys;
	spec.attr_values = values;
	spec.nattrs = 3;
	spec.uri = "s3://evidence-bucket/tenant-bench/audit-5f2c9b1e/evidence-000123.json";
	assay_test_evidence_encode(b->codec, &spec, &b->submitted, &b->submitted_len);

	if (assay_evidence_submitted_decode(b->cx, b->submitted, b->submitted_len, &b->arena,
	                                    &b->ev, errstr, sizeof(errstr)) != 0)
		die("decode", errstr);
	/* the accepted event intake would write for it */
	b->acc = (struct assay_evidence_accepted){
	        .event_id = {"6d1f0c8e-6f7a-4a51-9a3e-0c2b8f1d7e55", 36},
	        .tenant_id = b->ev.tenant_id,
	        .occurred_at = 1765000000000,
	        .audit_id = b->ev.audit_id,
	        .client_id = b->ev.client_id,
	        .evidence_id = b->ev.evidence_id,
	        .submitted_event_id = b->ev.event_id,
	        .source_system = b->ev.source_system,
	        .kind = b->ev.kind,
	        .collected_at = b->ev.collected_at,
	        .sha256 = b->ev.sha256,
	        .size_bytes = b->ev.size_bytes,
	        .uri = b->ev.uri,
	        .claimed_controls = {b->refs, 3},
	        .source = {{"assay.evidence.submitted", 24}, 3, 123456789},
	};
	b->refs[0] = (struct assay_control_ref){ASSAY_STANDARD_ISO27001_2022, {"A.8.15", 6}};
	b->refs[1] = (struct assay_control_ref){ASSAY_STANDARD_ISO27001_2022, {"A.5.1", 5}};
	b->refs[2] = (struct assay_control_ref){ASSAY_STANDARD_ISO42001_2023, {"6.1.4", 5}};
	if (assay_evidence_accepted_encode(b->cx, &b->acc, &b->buf, errstr, sizeof(errstr)) != 0)
		die("encode", errstr);
	b->accepted_len = b->buf.len;
	b->accepted = malloc(b->accepted_len);
	if (b->accepted == NULL)
		die("prepare", "out of memory");
	memcpy(b->accepted, b->buf.data, b->accepted_len);

	intake_lists_init(&b->lists);
	run_once(b, INTAKE_DECODE);
	for (int i = 0; i < 3; i++) {
		b->controls[i].standard = i < 2 ? "ISO27001_2022" : "ISO42001_2023";
		snprintf(b->controls[i].id, sizeof(b->controls[i].id), "%.*s",
		         (int)b->refs[i].control_id.len, b->refs[i].control_id.s);
		b->controls[i].annex_a = i < 2;
	}
	/* intake's frame and the generated one must be the same bytes */
	run_once(b, INTAKE_ENCODE);
	if (b->buf.len != b->accepted_len || memcmp(b->buf.data, b->accepted, b->accepted_len))
		die("prepare", "intake's and the generated EvidenceAccepted differ");
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
	struct assay_registry *reg;
	struct bench b;
	double ns[NPATHS];
	static const char *const names[NPATHS] = {
	        "generated EvidenceSubmitted decode",      "generated EvidenceSubmitted encode",
	        "generated EvidenceAccepted decode",       "generated EvidenceAccepted encode",
	        "intake EvidenceSubmitted decode",         "intake EvidenceAccepted encode",
	        "avro-c generic EvidenceSubmitted decode",
	};
	char errstr[256] = "";

	if (n <= 0)
		n = 1000000;
	memset(&b, 0, sizeof(b));
	reg = assay_registry_memory_new(errstr, sizeof(errstr));
	if (reg == NULL)
		die("registry", errstr);
	prepare(&b, reg);
	for (int p = 0; p < NPATHS; p++) {
		ns[p] = measure(&b, (enum path)p, p == AVROC_DECODE ? n / 10 : n);
		fprintf(stderr, "%-42s %8.1f ns\n", names[p], ns[p]);
		printf("%-42s %8.1f ns\n", names[p], ns[p]);
	}
	printf("frames: EvidenceSubmitted %zu bytes, EvidenceAccepted %zu bytes\n", b.submitted_len,
	       b.accepted_len);
	printf("BENCH codec runs=1 submitted_decode_ns=%.0f submitted_encode_ns=%.0f "
	       "accepted_decode_ns=%.0f accepted_encode_ns=%.0f intake_decode_ns=%.0f "
	       "avroc_decode_ns=%.0f intake_encode_ns=%.0f\n",
	       ns[GEN_SUBMITTED_DECODE], ns[GEN_SUBMITTED_ENCODE], ns[GEN_ACCEPTED_DECODE],
	       ns[GEN_ACCEPTED_ENCODE], ns[INTAKE_DECODE], ns[AVROC_DECODE], ns[INTAKE_ENCODE]);
	intake_lists_release(&b.lists);
	free(b.accepted);
	free(b.submitted);
	assay_contract_buf_release(&b.buf);
	assay_arena_release(&b.arena);
	assay_contracts_destroy(b.cx);
	assay_codec_destroy(b.codec);
	assay_registry_destroy(reg);
	return 0;
}
