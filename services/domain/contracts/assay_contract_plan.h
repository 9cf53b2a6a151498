/*
 * Resolution plans (internal to the contracts runtime): how to read values written with one
 * Avro schema (the writer's, parsed by avro-c) into the C layout of a generated type (the
 * reader's). assay_contract_plan_compile builds one; assay_contract.c runs it.
 */
#ifndef ASSAY_CONTRACT_PLAN_H
#define ASSAY_CONTRACT_PLAN_H

#include "assay_contract.h"

#include <avro.h>

enum assay_plan_op {
	PLAN_NULL,        /* writer null into an optional reader field */
	PLAN_BOOL,        /* boolean -> bool */
	PLAN_INT,         /* int -> int32_t */
	PLAN_LONG,        /* long -> int64_t */
	PLAN_INT_LONG,    /* int -> int64_t */
	PLAN_INT_FLOAT,   /* int -> float */
	PLAN_INT_DOUBLE,  /* int -> double */
	PLAN_LONG_FLOAT,  /* long -> float */
	PLAN_LONG_DOUBLE, /* long -> double */
	PLAN_FLOAT,       /* float -> float */
	PLAN_FLOAT_DOUBLE,
	PLAN_DOUBLE,
	PLAN_STRING,       /* string or bytes -> struct assay_str (UTF-8 checked) */
	PLAN_BYTES,        /* bytes -> struct assay_bytes */
	PLAN_STRING_BYTES, /* string -> struct assay_bytes (UTF-8 checked, as the writer meant) */
	PLAN_ENUM,
	PLAN_RECORD,
	PLAN_ARRAY,
	PLAN_MAP,
	PLAN_UNION,
	PLAN_FAIL, /* a union branch the reader cannot take: refused when it occurs */
};

struct assay_plan;

/* One field of the writer's record, in the writer's order. */
struct assay_plan_field {
	const char *name;                    /* the writer's */
	avro_schema_t writer;                /* its schema (for skipping) */
	const struct assay_ct_field *reader; /* NULL: the reader lacks it, skip */
	const struct assay_plan *plan;       /* when reader != NULL */
};

struct assay_plan {
	enum assay_plan_op op;
	const struct assay_ct_type *reader;
	avro_schema_t writer;
	/* enum: writer index -> reader index (-1: no such symbol, no default) */
	const int *enum_map;
	int nenum;
	/* record */
	const struct assay_plan_field *fields;
	size_t nfields;
	const struct assay_ct_field *const *defaults; /* reader fields the writer lacks */
	size_t ndefaults;
	/* array items, map values */
	const struct assay_plan *item;
	uint64_t item_min_size; /* writer bytes per item at least (map: with the key) */
	/* union: one plan per writer branch; NULL for the null branch */
	const struct assay_plan *const *branches;
	size_t nbranches;
	bool null_ok; /* the reader field is optional (a null branch sets has_ false) */
	/* fail */
	const char *why;
};

/* Compiles the plan reading values of writer (the top-level record of a writer's schema,
 * borrowed: must outlive the plan) into reader; every node is allocated from mem. Returns 0;
 * ASSAY_ERR_REJECT when the writer's schema cannot be read as reader (the field and both types
 * in errstr); ASSAY_ERR_FATAL when memory runs out. */
int assay_contract_plan_compile(avro_schema_t writer, const struct assay_ct_type *reader,
                                struct assay_arena *mem, const struct assay_plan **out,
                                char *errstr, size_t errstr_size);

/* "string", "long", the name of a named type, ... for messages. */
const char *assay_contract_writer_type_name(avro_schema_t schema);

/* The registry id of the codec's schema named type->name (looked up once, then cached in cx)
 * and the codec's message limit. Returns 0 or ASSAY_ERR_FATAL (no such schema, no memory). */
int assay_contract_own_id(struct assay_contracts *cx, const struct assay_ct_type *type, int32_t *id,
                          size_t *max_message_bytes, char *errstr, size_t errstr_size);

#endif
