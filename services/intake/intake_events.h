/*
 * Intake's events on the generated contracts (contract_evidence_*.h): a decoded
 * EvidenceSubmitted read into the struct intake_evidence the rules check, and an accepted
 * item written out as EvidenceAccepted. The decoding and encoding themselves are the
 * generated code's (straight-line for intake's own writer schema, a resolution plan for
 * others); what is left here is the mapping between the contract's C view and intake's.
 *
 * Threads: a struct intake_lists belongs to one thread; the functions are reentrant.
 */
#ifndef INTAKE_EVENTS_H
#define INTAKE_EVENTS_H

#include "intake_rules.h"

#include "contract_evidence_accepted.h"
#include "contract_evidence_submitted.h"

#include <stddef.h>
#include <stdint.h>

/* The claimed controls and attributes of a batch's evidence, appended item after item (one
 * item's entries are contiguous). A plain value: intake_lists_init, intake_lists_release. */
struct intake_lists {
	struct intake_str *controls;
	size_t ncontrols, controls_cap;
	struct intake_attr *attrs;
	size_t nattrs, attrs_cap;
};

void intake_lists_init(struct intake_lists *l);
void intake_lists_release(struct intake_lists *l);

/* Forgets the entries (keeps the memory), for the next batch. */
void intake_lists_clear(struct intake_lists *l);

/*
 * Fills ev from in, a decoded EvidenceSubmitted (borrowed): strings are views into the frame
 * in was decoded from (NOT NUL-terminated), kind the EvidenceKind symbol, claimed controls
 * and attributes appended to l with ev->controls and ev->attrs pointing there (valid until l
 * grows). A key repeated in attributes is kept once, where it first appears, with its last
 * value (as avro-c's map reads it). Returns 0, or ASSAY_ERR_FATAL when out of memory (l as it
 * was).
 */
int intake_submitted_read(const struct assay_evidence_submitted *in, struct intake_evidence *ev,
                          struct intake_lists *l);

/* One EvidenceAccepted, from accepted evidence (all borrowed). */
struct intake_accepted {
	const char *event_id; /* NUL-terminated */
	int64_t occurred_at_ms;
	const struct intake_evidence *ev;
	const struct intake_control *controls; /* ev->ncontrols, resolved */
	const char *topic;                     /* source coordinates */
	int32_t partition;
	int64_t offset;
};

/*
 * Fills out with a's values for assay_evidence_accepted_encode: strings are views of a's,
 * the claimed controls are refs allocated from arena (valid until its reset); a kind the
 * schema lacks becomes OTHER. Returns 0; ASSAY_ERR_FATAL (reason in errstr) when a control's
 * standard is not a Standard symbol or memory runs out.
 */
int intake_accepted_fill(const struct intake_accepted *a, struct assay_arena *arena,
                         struct assay_evidence_accepted *out, char *errstr, size_t errstr_size);

#endif
