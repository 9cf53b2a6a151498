/*
 * Intake's Avro layer: EvidenceSubmitted into struct intake_evidence, and EvidenceAccepted out
 * of it, without avro-c's generic values where the schema is known.
 *
 * Decoding has two paths that give the same result:
 *   - intake_submitted_decode reads a frame whose writer schema is intake's own embedded
 *     EvidenceSubmitted (same registry id) in one pass over the bytes: the strings are views
 *     into the frame, nothing is allocated per message. Anything it is not sure of (another
 *     writer schema, any malformed or unusual body) it leaves to the generic path, so every
 *     refusal, dead letter and reject reason is decided by the generic path exactly as before.
 *   - intake_submitted_from_value reads a value the codec decoded with any writer schema
 *     (fields by name: older and newer writers).
 * Encoding: intake_accepted_encode writes the framed EvidenceAccepted (magic byte, schema id,
 * body) into a buffer the writer reuses; the bytes are those avro-c writes for the same value
 * (tests/unit/test_intake_fastpath.c compares them).
 *
 * Both fast paths are written against the field order of schemas/evidence_submitted.avsc and
 * evidence_accepted.avsc; their _init functions compare the schema's shape with it.
 *
 * Threads: a reader is read-only after init (any thread); a writer and a struct intake_lists
 * belong to one thread.
 */
#ifndef INTAKE_AVRO_H
#define INTAKE_AVRO_H

#include "intake_rules.h"

#include "assay_codec.h"

#include <stdbool.h>
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

/* Room for need elements of elem bytes in the array *p of capacity *cap (doubled as needed;
 * intake's per-batch arrays). 0, or ASSAY_ERR_FATAL when memory runs out. */
int intake_reserve(void **p, size_t *cap, size_t need, size_t elem);

/*
 * Fills ev from v, a decoded EvidenceSubmitted of any writer schema (borrowed): strings are
 * views into v (NUL-terminated there), kind a symbol of the writer's schema ("OTHER" when the
 * writer has no kind), claimed controls and attributes appended to l with ev->controls and
 * ev->attrs pointing there (valid until l grows). Returns 0; ASSAY_ERR_REJECT when a field
 * is missing or of another type (a dead letter; the reason in why, l as it was);
 * ASSAY_ERR_FATAL when out of memory.
 */
int intake_submitted_from_value(avro_value_t *v, struct intake_evidence *ev, struct intake_lists *l,
                                char *why, size_t why_size);

/* intake_submitted_decode's answer for a frame it leaves to the generic path. */
#define INTAKE_AVRO_GENERIC 1

/* What the fast decoder knows of intake's EvidenceSubmitted. A plain value, no release. */
struct intake_submitted_reader {
	bool enabled;             /* the schema has the shape the decoder reads */
	int32_t id;               /* registry id of the embedded schema */
	size_t max_message_bytes; /* the codec's limit (0: none) */
	avro_schema_t kind;       /* the EvidenceKind enum (borrowed from the codec) */
	int nkinds;
};

/* The decoder of most attribute entries; a map with more goes the generic path. */
#define INTAKE_AVRO_FAST_MAX_ATTRS 64

/*
 * Prepares r for frames written with s (the codec's embedded EvidenceSubmitted, borrowed: the
 * codec must outlive r) by a codec refusing frames over max_message_bytes (0: no limit).
 * Returns 0; ASSAY_ERR_REJECT with the difference in errstr when s does not have the shape
 * of schemas/evidence_submitted.avsc: r is then disabled and every frame takes the generic
 * path.
 */
int intake_submitted_reader_init(struct intake_submitted_reader *r, const struct assay_schema *s,
                                 size_t max_message_bytes, char *errstr, size_t errstr_size);

/*
 * Decodes the framed message frame (len bytes, borrowed) as intake_submitted_from_value would
 * decode what the codec makes of it, when the frame carries r's schema id and the body is one
 * the codec accepts and decodes alike: strings are views into frame, NOT NUL-terminated
 * (valid as long as frame), kind a symbol of r's schema; claimed controls and attributes are
 * appended to l. Returns 0; INTAKE_AVRO_GENERIC (l as it was) for a frame the generic path
 * must decide: r disabled, another schema id, a frame over the limit, a varint, length, enum
 * index or block count out of what the codec allows or negative (block counts with a byte
 * size included), truncation, invalid UTF-8 or a NUL byte, trailing bytes, duplicate
 * attribute keys (avro-c keeps the last value) or more than INTAKE_AVRO_FAST_MAX_ATTRS;
 * ASSAY_ERR_FATAL when out of memory.
 */
int intake_submitted_decode(const struct intake_submitted_reader *r, const void *frame, size_t len,
                            struct intake_evidence *ev, struct intake_lists *l);

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

#define INTAKE_AVRO_MAX_SYMBOLS 64

/* The EvidenceAccepted encoder and its reusable output buffer. A plain value:
 * intake_accepted_writer_init, intake_accepted_writer_release. */
struct intake_accepted_writer {
	int32_t id;
	size_t max_message_bytes;
	const char *kinds[INTAKE_AVRO_MAX_SYMBOLS]; /* EvidenceKind symbols (the codec's) */
	int nkinds, kind_other;
	const char *standards[INTAKE_AVRO_MAX_SYMBOLS]; /* Standard symbols */
	int nstandards;
	unsigned char *buf; /* the last frame encoded: len bytes */
	size_t len, cap;
};

/* Prepares w for s (the codec's EvidenceAccepted, borrowed: the codec must outlive w) and
 * frames of at most max_message_bytes (0: no limit). Returns 0, or ASSAY_ERR_FATAL when s does
 * not have the shape of schemas/evidence_accepted.avsc (our code and schema disagree). */
int intake_accepted_writer_init(struct intake_accepted_writer *w, const struct assay_schema *s,
                                size_t max_message_bytes, char *errstr, size_t errstr_size);
void intake_accepted_writer_release(struct intake_accepted_writer *w);

/*
 * Encodes a into w->buf (w->len bytes, valid until the next call): magic byte, schema id, Avro
 * body. A kind the schema lacks is written as OTHER. Returns 0; ASSAY_ERR_REJECT when the
 * frame exceeds the limit; ASSAY_ERR_FATAL when a control's standard is not a Standard symbol
 * or memory runs out.
 */
int intake_accepted_encode(struct intake_accepted_writer *w, const struct intake_accepted *a,
                           char *errstr, size_t errstr_size);

#endif
