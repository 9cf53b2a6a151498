/*
 * The runtime of the generated Avro contracts (tools/avrogen): the C views a decoded message is
 * made of, the type descriptors the generator emits for every schema in schemas/, and the
 * decoder and encoder that walk them.
 *
 * For each schemas/<name>.avsc the build generates contract_<name>.h/.c (in the build tree):
 * a C struct per record, a C enum per enum with _name and _parse, a descriptor
 * (struct assay_ct_type) per named type, and for the file's top-level record T:
 *   int assay_T_decode(struct assay_contracts *cx, const void *frame, size_t len,
 *                      struct assay_arena *arena, struct assay_T *out, char *errstr,
 *                      size_t errstr_size);
 *   int assay_T_encode(struct assay_contracts *cx, const struct assay_T *in,
 *                      struct assay_contract_buf *buf, char *errstr, size_t errstr_size);
 * which call assay_contract_decode / assay_contract_encode below.
 *
 * C representation of Avro types:
 *   boolean bool; int (and date) int32_t; long (and timestamp-millis) int64_t; float; double;
 *   string struct assay_str and bytes struct assay_bytes: views (pointer + length, NOT
 *   NUL-terminated) into the decoded frame; enum: a C enum; record: a nested struct;
 *   array: struct { T *items; size_t count; }; map: struct { struct assay_str *keys;
 *   T *values; size_t count; } (entries in wire order, a repeated key kept);
 *   ["null", T]: bool has_<field> + T <field>.
 *
 * Frames written with the reader's own schema (the codec's embedded schema of that name) are
 * read by straight-line code avrogen generates from the .avsc; others by a plan:
 *
 * Writer schemas. A frame names its writer schema by registry id. The first frame of a
 * (writer id, reader type) pair compiles a resolution plan (Avro's schema resolution: fields
 * matched by name, writer-only fields skipped, reader-only fields given the default from the
 * .avsc, int->long/float/double, long->float/double, float->double, string<->bytes, enum
 * symbols by name with the reader's default for unknown ones, unions ["null", T] on either
 * side); the plan is cached in struct assay_contracts, so later frames run it straight away.
 * A writer type that cannot be read as the reader's is refused with the field and both types
 * named ("field audit_id: writer type long cannot be read as string").
 *
 * Untrusted input: the decoder refuses (ASSAY_ERR_REJECT, reason in errstr) everything
 * assay_avro_check refuses (truncation, varints out of range, negative or huge lengths and
 * counts, invalid UTF-8 or NUL in strings, bad union and enum indexes, nesting over
 * ASSAY_AVRO_MAX_DEPTH, trailing bytes) and frames over the codec's max_message_bytes.
 *
 * Threads: a struct assay_contracts belongs to one thread (as its codec does).
 */
#ifndef ASSAY_CONTRACT_H
#define ASSAY_CONTRACT_H

#include "assay_arena.h"
#include "assay_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A string: len bytes of UTF-8 at s (not NUL-terminated). */
struct assay_str {
	const char *s;
	size_t len;
};

/* A bytes value: len bytes at p. */
struct assay_bytes {
	const unsigned char *p;
	size_t len;
};

enum assay_ct_kind {
	ASSAY_CT_NULL,
	ASSAY_CT_BOOLEAN,
	ASSAY_CT_INT,
	ASSAY_CT_LONG,
	ASSAY_CT_FLOAT,
	ASSAY_CT_DOUBLE,
	ASSAY_CT_STRING,
	ASSAY_CT_BYTES,
	ASSAY_CT_ENUM,
	ASSAY_CT_RECORD,
	ASSAY_CT_ARRAY,
	ASSAY_CT_MAP,
};

/* A field's default from the .avsc, as the generator bakes it in. */
struct assay_ct_default {
	bool is_null;  /* null (an optional field) */
	int64_t i;     /* boolean, int, long, enum index */
	double d;      /* float, double */
	const char *s; /* string, bytes */
	size_t len;    /* of s */
};

struct assay_ct_field;
struct assay_ct_reader;
struct assay_ct_writer;

/* What the generator knows of a type; all generated descriptors are const and static. */
struct assay_ct_type {
	enum assay_ct_kind kind;
	const char *name; /* full name of a record or enum ("org.assay.v1.Standard"), else
	                     the Avro type name ("string", "array") */
	size_t size;      /* sizeof the C representation */
	/* record */
	const struct assay_ct_field *fields;
	size_t nfields;
	/* enum */
	const char *const *symbols;
	int nsymbols;
	int default_symbol; /* the enum's "default" (Avro 1.9), -1 for none */
	/* array items, map values */
	const struct assay_ct_type *items;
	/* a top-level record: avrogen's straight-line code for frames of its own schema
	 * (assay_contract_io.h); NULL elsewhere */
	int (*read)(struct assay_ct_reader *r, void *out);
	int (*write)(struct assay_ct_writer *w, const void *in);
};

struct assay_ct_field {
	const char *name;
	const struct assay_ct_type *type;
	size_t offset;                       /* of the value in the record's struct */
	bool optional;                       /* ["null", type] */
	size_t present_offset;               /* of the bool has_<name>, when optional */
	const struct assay_ct_default *dflt; /* NULL when the field has no default */
};

/* The primitive descriptors (array items and map values point at them). */
extern const struct assay_ct_type assay_ct_boolean_type, assay_ct_int_type, assay_ct_long_type,
        assay_ct_float_type, assay_ct_double_type, assay_ct_string_type, assay_ct_bytes_type;

/* An encoder's reusable output: data[0..len) is the last frame encoded. A plain value:
 * assay_contract_buf_init, assay_contract_buf_release. */
struct assay_contract_buf {
	unsigned char *data;
	size_t len, cap;
};

void assay_contract_buf_init(struct assay_contract_buf *buf);
void assay_contract_buf_release(struct assay_contract_buf *buf);

/* Decoders and encoders over one codec, with their plan cache. */
struct assay_contracts;

/* Contracts over codec (borrowed: must outlive the result; its schemas must be registered
 * with assay_codec_register_embedded before encoding). Returns NULL with errstr set when
 * memory runs out. */
struct assay_contracts *assay_contracts_new(struct assay_codec *codec, char *errstr,
                                            size_t errstr_size);

/* For tests and benchmarks: with on false, decoding and encoding walk the descriptors and
 * plans even where generated straight-line code exists (on by default). */
void assay_contracts_set_generated(struct assay_contracts *cx, bool on);
bool assay_contract_generated(const struct assay_contracts *cx);

/* Frees cx and its plans; cx may be NULL. */
void assay_contracts_destroy(struct assay_contracts *cx);

/*
 * Decodes the framed message frame (len bytes, borrowed) into *out, a struct of the record
 * type (memset to zero first). Strings and bytes are views into frame (valid as long as it
 * is); arrays and maps are allocated from arena (valid until its reset). Returns 0;
 * ASSAY_ERR_REJECT (reason in errstr: bad frame, unknown schema id, a writer schema that
 * cannot be read as type, malformed body; *out then holds nothing valid, arena may hold
 * garbage until reset); ASSAY_ERR_RETRY (registry unreachable); ASSAY_ERR_FATAL (out of
 * memory).
 */
int assay_contract_decode(struct assay_contracts *cx, const struct assay_ct_type *type,
                          const void *frame, size_t len, struct assay_arena *arena, void *out,
                          char *errstr, size_t errstr_size);

/* Whether the last assay_contract_decode with cx refused the frame because a string was not
 * valid UTF-8 or held a NUL byte (a reader that answers that with a reason of its own asks
 * this instead of matching the refusal's text). */
bool assay_contract_refused_utf8(const struct assay_contracts *cx);

/*
 * Encodes in (a struct of the record type, borrowed) as a framed message with the registry
 * id of the codec's schema of that name into buf (buf->len bytes, valid until the next call
 * with buf); the bytes are those avro-c writes for the same value. Returns 0;
 * ASSAY_ERR_REJECT when the frame exceeds the codec's max_message_bytes; ASSAY_ERR_FATAL when
 * the codec has no such schema, an enum holds a value outside its symbols, a view is NULL with
 * a length, or memory runs out (our own code is wrong).
 */
int assay_contract_encode(struct assay_contracts *cx, const struct assay_ct_type *type,
                          const void *in, struct assay_contract_buf *buf, char *errstr,
                          size_t errstr_size);

/*
 * The full name of the writer schema of frame (len bytes), e.g. "org.assay.v1.AuditOpened",
 * for a topic that carries several record types: *full_name points into the codec (valid
 * until it is destroyed). Returns 0; ASSAY_ERR_REJECT (short frame, wrong magic byte,
 * unknown schema id); ASSAY_ERR_RETRY (registry unreachable); ASSAY_ERR_FATAL.
 */
int assay_contract_frame_type(struct assay_contracts *cx, const void *frame, size_t len,
                              const char **full_name, char *errstr, size_t errstr_size);

/* The index of symbol (len bytes) in type's symbols, or -1. */
int assay_contract_enum_index(const struct assay_ct_type *type, const char *symbol, size_t len);

#endif
