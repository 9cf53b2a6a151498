/*
 * The Avro codec: Confluent framing over avro-c, schemas cached by id, field access by name.
 *
 * A framed message is byte 0 = 0x00 (magic), bytes 1..4 = schema id (big-endian), then the
 * Avro binary body. Encoding uses a schema of this process; decoding uses the WRITER's schema
 * named by the id in the frame (fetched from the registry on first sight, then cached), so a
 * consumer reads data written with older or newer schemas. avro-c does not apply reader
 * defaults, so application code reads fields by name with the helpers below, which fill in the
 * caller's default where the writer's schema lacks a field.
 *
 * Every body is walked by assay_avro_check before avro-c sees it: malformed input is refused
 * with ASSAY_ERR_REJECT and a specific message, never crashes and never leaks.
 *
 * Threads: a codec is not thread-safe (it reuses one reader and one writer, and its registry
 * is not thread-safe either); use one per thread. The struct assay_schema pointers it hands
 * out stay valid until assay_codec_destroy.
 */
#ifndef ASSAY_CODEC_H
#define ASSAY_CODEC_H

#include "assay_registry.h"

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ASSAY_CODEC_HEADER_SIZE 5 /* magic byte + 4-byte schema id */
#define ASSAY_CODEC_MAGIC       0x00

struct assay_codec;

/* A schema known to the codec; owned by the codec, read-only for callers. */
struct assay_schema {
	int32_t id;                /* registry id, written into every frame */
	const char *full_name;     /* e.g. "org.assay.v1.EvidenceSubmitted" */
	avro_schema_t schema;      /* parsed once */
	avro_value_iface_t *iface; /* generic value class of schema */
};

/* A decoded message. value is a generic value of schema->schema (the writer's schema), owned
 * by this struct until assay_decoded_release. */
struct assay_decoded {
	const struct assay_schema *schema;
	avro_value_t value;
};

/* A codec over reg (borrowed: must outlive the codec) that refuses frames longer than
 * max_message_bytes (0 = no limit; use Kafka's message.max.bytes or smaller). Returns NULL
 * with errstr set when memory runs out. */
struct assay_codec *assay_codec_new(struct assay_registry *reg, size_t max_message_bytes,
                                    char *errstr, size_t errstr_size);

/* The limit given to assay_codec_new (0 = none). */
size_t assay_codec_max_message_bytes(const struct assay_codec *codec);

/* Frees codec and all its schemas. codec may be NULL. */
void assay_codec_destroy(struct assay_codec *codec);

/* Registers every schema of assay_embedded_schemas (the .avsc files of schemas/) with
 * the registry and caches it, so assay_codec_schema_by_name finds it. Each file must be one
 * self-contained schema (avro-c cannot resolve names defined in another file). Returns 0;
 * ASSAY_ERR_RETRY when the registry is unreachable; ASSAY_ERR_FATAL when a file does not
 * parse, two files define the same full name differently, or the registry fails otherwise. */
int assay_codec_register_embedded(struct assay_codec *codec, char *errstr, size_t errstr_size);

/* Registers the schema text schema_json (for tools, tests and schemas not embedded), caches it
 * and points *out at it. A schema registered this way is found by name only when no embedded
 * schema has that name. Returns 0; ASSAY_ERR_REJECT when schema_json does not parse;
 * ASSAY_ERR_RETRY / ASSAY_ERR_FATAL as for assay_registry_register. */
int assay_codec_register(struct assay_codec *codec, const char *schema_json,
                         const struct assay_schema **out, char *errstr, size_t errstr_size);

/* The schema named full_name, preferring the embedded one. Returns 0 or ASSAY_ERR_FATAL
 * (asking for a schema this process does not have is a bug in our own code). */
int assay_codec_schema_by_name(struct assay_codec *codec, const char *full_name,
                               const struct assay_schema **out, char *errstr, size_t errstr_size);

/* Checks the wire header of frame (len bytes) and reads its schema id into *id. Refuses an
 * empty frame, one shorter than the header, one without the magic byte and one longer than
 * max_message_bytes (0 = no limit). Returns 0 or ASSAY_ERR_REJECT ("decode: ..."). Pure. */
int assay_codec_frame_id(const void *frame, size_t len, size_t max_message_bytes, int32_t *id,
                         char *errstr, size_t errstr_size);

/* The schema with registry id id, from the cache or else from the registry (then cached).
 * Returns 0; ASSAY_ERR_REJECT for an unknown id; ASSAY_ERR_RETRY when the registry is
 * unreachable; ASSAY_ERR_FATAL when its stored text does not parse or memory runs out. */
int assay_codec_schema_by_id(struct assay_codec *codec, int32_t id, const struct assay_schema **out,
                             char *errstr, size_t errstr_size);

/* A fresh generic value of s in *value (every field zero/empty; the caller decrefs it with
 * avro_value_decref). Returns 0 or ASSAY_ERR_FATAL (out of memory). */
int assay_codec_value_new(const struct assay_schema *s, avro_value_t *value);

/* Encodes value (a value of s->schema, borrowed) into a framed message: *buf malloc'd (caller
 * frees), *len its size. Returns 0; ASSAY_ERR_REJECT when the frame would exceed
 * max_message_bytes; ASSAY_ERR_FATAL when value is not of s's schema or avro-c fails. */
int assay_codec_encode(struct assay_codec *codec, const struct assay_schema *s, avro_value_t *value,
                       void **buf, size_t *len, char *errstr, size_t errstr_size);

/* Decodes the framed message buf (len bytes; buf may be NULL when len is 0) into *out with the
 * writer's schema. On success the caller owns out and calls assay_decoded_release; on failure
 * out holds nothing to release. Returns 0; ASSAY_ERR_REJECT (empty or short frame, wrong magic
 * byte, unknown schema id, message too large, body refused by assay_avro_check or avro-c);
 * ASSAY_ERR_RETRY when the registry is unreachable; ASSAY_ERR_FATAL (out of memory, registry
 * returned a schema that does not parse). */
int assay_codec_decode(struct assay_codec *codec, const void *buf, size_t len,
                       struct assay_decoded *out, char *errstr, size_t errstr_size);

/* Releases what d holds and clears it. d may be NULL or already released. */
void assay_decoded_release(struct assay_decoded *d);

/*
 * Reading fields by name. record is a record value (e.g. &decoded.value, or a nested record
 * obtained with assay_value_record). A field whose type is a union is read through its current
 * branch. Strings point into the value and live as long as it does.
 *
 * The plain getters return ASSAY_ERR_REJECT when the field is missing from the writer's
 * schema, is null, or has another type. The _or getters give dflt when the field is missing
 * (an older writer) or null, and ASSAY_ERR_REJECT only when it has another type.
 */
int assay_value_string(avro_value_t *record, const char *field, const char **out, size_t *len);
int assay_value_string_or(avro_value_t *record, const char *field, const char *dflt,
                          const char **out);
/* An optional string: *out = NULL (and *len = 0; len may be NULL) when the field is missing
 * or null. */
int assay_value_opt_string(avro_value_t *record, const char *field, const char **out, size_t *len);
int assay_value_bytes(avro_value_t *record, const char *field, const void **out, size_t *len);
int assay_value_long(avro_value_t *record, const char *field, int64_t *out);
int assay_value_long_or(avro_value_t *record, const char *field, int64_t dflt, int64_t *out);
/* An int or long field; a long outside 32 bits is ASSAY_ERR_REJECT. */
int assay_value_int(avro_value_t *record, const char *field, int32_t *out);
int assay_value_int_or(avro_value_t *record, const char *field, int32_t dflt, int32_t *out);
/* A float or double field. */
int assay_value_double(avro_value_t *record, const char *field, double *out);
int assay_value_double_or(avro_value_t *record, const char *field, double dflt, double *out);
int assay_value_bool(avro_value_t *record, const char *field, bool *out);
int assay_value_bool_or(avro_value_t *record, const char *field, bool dflt, bool *out);
/* An enum field's symbol (points into the writer's schema). */
int assay_value_enum(avro_value_t *record, const char *field, const char **symbol);
int assay_value_enum_or(avro_value_t *record, const char *field, const char *dflt,
                        const char **symbol);
/* A nested record field into *out (a view into record; nothing to release). */
int assay_value_record(avro_value_t *record, const char *field, avro_value_t *out);
/* An array field into *out (a view) and its length into *count. assay_value_array_opt gives
 * *count = 0 when the field is missing or null. */
int assay_value_array(avro_value_t *record, const char *field, avro_value_t *out, size_t *count);
int assay_value_array_opt(avro_value_t *record, const char *field, avro_value_t *out,
                          size_t *count);
/* Element i of an array view into *elem (union elements through their branch). */
int assay_value_array_get(avro_value_t *array, size_t i, avro_value_t *elem);
/* A map field into *out (a view) and its size into *count; entries by index (0..count-1) with
 * assay_value_map_get. assay_value_map_opt gives *count = 0 when missing or null. */
int assay_value_map(avro_value_t *record, const char *field, avro_value_t *out, size_t *count);
int assay_value_map_opt(avro_value_t *record, const char *field, avro_value_t *out, size_t *count);
int assay_value_map_get(avro_value_t *map, size_t i, const char **key, avro_value_t *value);
/* A string element or map value (through its union branch). */
int assay_value_as_string(avro_value_t *value, const char **out, size_t *len);

/*
 * Setting fields by name, for encoding. A union field gets the branch of the right type.
 * Return 0; ASSAY_ERR_FATAL when record has no such field or the field cannot hold the type
 * (our own code disagrees with the schema); assay_value_set_enum returns ASSAY_ERR_REJECT for
 * a symbol the enum does not have.
 */
int assay_value_set_string(avro_value_t *record, const char *field, const char *s);
int assay_value_set_string_len(avro_value_t *record, const char *field, const char *s, size_t len);
/* s == NULL selects the null branch of a ["null", "string"] union. */
int assay_value_set_null_or_string(avro_value_t *record, const char *field, const char *s);
int assay_value_set_long(avro_value_t *record, const char *field, int64_t v);
int assay_value_set_int(avro_value_t *record, const char *field, int32_t v);
int assay_value_set_double(avro_value_t *record, const char *field, double v);
int assay_value_set_bool(avro_value_t *record, const char *field, bool v);
int assay_value_set_enum(avro_value_t *record, const char *field, const char *symbol);
int assay_value_set_bytes(avro_value_t *record, const char *field, const void *buf, size_t len);
/* The field itself into *out (a view), with a union switched to its branch of type type
 * (AVRO_RECORD, AVRO_ARRAY, AVRO_MAP, ...), for filling nested values with avro-c calls. */
int assay_value_field(avro_value_t *record, const char *field, avro_type_t type, avro_value_t *out);

#endif
