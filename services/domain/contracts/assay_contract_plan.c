/*
 * Compiling resolution plans: Avro's schema resolution rules applied once per (writer schema,
 * reader type), so that decoding a frame is a walk of a ready plan. Records are matched by
 * unqualified name and their fields by name; a reader field the writer lacks takes its
 * default (refused when it has none); the promotions are int -> long, float, double;
 * long -> float, double; float -> double; string <-> bytes. A writer union gets one plan per
 * branch: a branch the reader cannot read becomes a PLAN_FAIL refused only when a frame uses
 * it, as Avro resolves unions per value.
 */
#include "assay_contract_plan.h"

#include "assay_avro_check.h"
#include "assay_err.h"

#include <stdio.h>
#include <string.h>

struct compile {
	struct assay_arena *mem;
	char *errstr;
	size_t errstr_size;
	char path[256]; /* dotted path of the field being compiled */
};

static avro_schema_t resolve(avro_schema_t schema)
{
	while (schema != NULL && is_avro_link(schema))
		schema = avro_schema_link_target(schema);
	return schema;
}

const char *assay_contract_writer_type_name(avro_schema_t schema)
{
	schema = resolve(schema);
	switch (avro_typeof(schema)) {
	case AVRO_NULL:
		return "null";
	case AVRO_BOOLEAN:
		return "boolean";
	case AVRO_INT32:
		return "int";
	case AVRO_INT64:
		return "long";
	case AVRO_FLOAT:
		return "float";
	case AVRO_DOUBLE:
		return "double";
	case AVRO_STRING:
		return "string";
	case AVRO_BYTES:
		return "bytes";
	case AVRO_ARRAY:
		return "array";
	case AVRO_MAP:
		return "map";
	case AVRO_UNION:
		return "union";
	case AVRO_RECORD:
	case AVRO_ENUM:
	case AVRO_FIXED:
		return avro_schema_name(schema);
	default:
		return "unknown";
	}
}

/* The part of a full name after the last dot. */
static const char *short_name(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot != NULL ? dot + 1 : name;
}

static struct assay_plan *node(struct compile *c, enum assay_plan_op op, avro_schema_t writer,
                               const struct assay_ct_type *reader)
{
	struct assay_plan *p = assay_arena_alloc(c->mem, sizeof(*p));

	if (p == NULL)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->op = op;
	p->writer = writer;
	p->reader = reader;
	return p;
}

static int oom(struct compile *c)
{
	return assay_errf(ASSAY_ERR_FATAL, c->errstr, c->errstr_size, "plan: out of memory");
}

static int mismatch(struct compile *c, avro_schema_t writer, const struct assay_ct_type *reader)
{
	return assay_errf(ASSAY_ERR_REJECT, c->errstr, c->errstr_size,
	                  "field %s: writer type %s cannot be read as %s",
	                  c->path[0] ? c->path : "(top)", assay_contract_writer_type_name(writer),
	                  reader->name);
}

static int compile(struct compile *c, avro_schema_t writer, const struct assay_ct_type *reader,
                   bool optional, int depth, const struct assay_plan **out);

/* A scalar's plan op, or -1 when writer cannot be read as reader. */
static int scalar_op(avro_type_t w, enum assay_ct_kind r)
{
	switch (r) {
	case ASSAY_CT_BOOLEAN:
		return w == AVRO_BOOLEAN ? PLAN_BOOL : -1;
	case ASSAY_CT_INT:
		return w == AVRO_INT32 ? PLAN_INT : -1;
	case ASSAY_CT_LONG:
		return w == AVRO_INT32 ? PLAN_INT_LONG : w == AVRO_INT64 ? PLAN_LONG : -1;
	case ASSAY_CT_FLOAT:
		return w == AVRO_INT32   ? PLAN_INT_FLOAT
		       : w == AVRO_INT64 ? PLAN_LONG_FLOAT
		       : w == AVRO_FLOAT ? PLAN_FLOAT
		                         : -1;
	case ASSAY_CT_DOUBLE:
		return w == AVRO_INT32    ? PLAN_INT_DOUBLE
		       : w == AVRO_INT64  ? PLAN_LONG_DOUBLE
		       : w == AVRO_FLOAT  ? PLAN_FLOAT_DOUBLE
		       : w == AVRO_DOUBLE ? PLAN_DOUBLE
		                          : -1;
	case ASSAY_CT_STRING:
		return w == AVRO_STRING || w == AVRO_BYTES ? PLAN_STRING : -1;
	case ASSAY_CT_BYTES:
		return w == AVRO_BYTES ? PLAN_BYTES : w == AVRO_STRING ? PLAN_STRING_BYTES : -1;
	default:
		return -1;
	}
}

static int compile_enum(struct compile *c, avro_schema_t writer, const struct assay_ct_type *reader,
                        const struct assay_plan **out)
{
	int n = avro_schema_enum_number_of_symbols(writer);
	struct assay_plan *p = node(c, PLAN_ENUM, writer, reader);
	int *map = assay_arena_alloc(c->mem, sizeof(int) * (size_t)(n > 0 ? n : 1));

	if (p == NULL || map == NULL)
		return oom(c);
	for (int i = 0; i < n; i++) {
		const char *sym = avro_schema_enum_get(writer, i);
		int r = assay_contract_enum_index(reader, sym, strlen(sym));

		map[i] = r >= 0 ? r : reader->default_symbol;
	}
	p->enum_map = map;
	p->nenum = n;
	*out = p;
	return 0;
}

static int compile_record(struct compile *c, avro_schema_t writer,
                          const struct assay_ct_type *reader, int depth,
                          const struct assay_plan **out)
{
	size_t nw = avro_schema_record_size(writer);
	size_t path_len = strlen(c->path);
	struct assay_plan *p = node(c, PLAN_RECORD, writer, reader);
	struct assay_plan_field *fields = assay_arena_alloc(c->mem, sizeof(*fields) * (nw + 1));
	const struct assay_ct_field **defaults =
	        assay_arena_alloc(c->mem, sizeof(*defaults) * (reader->nfields + 1));
	int rc;

	if (p == NULL || fields == NULL || defaults == NULL)
		return oom(c);
	for (size_t i = 0; i < nw; i++) {
		fields[i].name = avro_schema_record_field_name(writer, (int)i);
		fields[i].writer = avro_schema_record_field_get_by_index(writer, (int)i);
		fields[i].reader = NULL;
		fields[i].plan = NULL;
		for (size_t k = 0; k < reader->nfields; k++) {
			if (strcmp(reader->fields[k].name, fields[i].name) == 0) {
				fields[i].reader = &reader->fields[k];
				break;
			}
		}
		if (fields[i].reader == NULL)
			continue;
		snprintf(c->path + path_len, sizeof(c->path) - path_len, "%s%s",
		         path_len ? "." : "", fields[i].name);
		rc = compile(c, fields[i].writer, fields[i].reader->type,
		             fields[i].reader->optional, depth + 1, &fields[i].plan);
		if (rc != 0)
			return rc;
		c->path[path_len] = '\0';
	}
	p->fields = fields;
	p->nfields = nw;
	for (size_t k = 0; k < reader->nfields; k++) {
		const struct assay_ct_field *f = &reader->fields[k];
		bool found = false;

		for (size_t i = 0; i < nw && !found; i++)
			found = fields[i].reader == f;
		if (found)
			continue;
		if (f->dflt == NULL)
			return assay_errf(
			        ASSAY_ERR_REJECT, c->errstr, c->errstr_size,
			        "field %s%s%s: missing from the writer's schema and has no "
			        "default",
			        c->path, path_len ? "." : "", f->name);
		defaults[p->ndefaults++] = f;
	}
	p->defaults = defaults;
	*out = p;
	return 0;
}

static int compile_union(struct compile *c, avro_schema_t writer,
                         const struct assay_ct_type *reader, bool optional, int depth,
                         const struct assay_plan **out)
{
	size_t n = avro_schema_union_size(writer);
	struct assay_plan *p = node(c, PLAN_UNION, writer, reader);
	const struct assay_plan **branches = assay_arena_alloc(c->mem, sizeof(*branches) * (n + 1));
	char why[256];

	if (p == NULL || branches == NULL)
		return oom(c);
	p->null_ok = optional;
	for (size_t i = 0; i < n; i++) {
		avro_schema_t b = resolve(avro_schema_union_branch(writer, (int)i));
		int rc;

		branches[i] = NULL;
		if (avro_typeof(b) == AVRO_NULL && optional)
			continue;
		rc = compile(c, b, reader, false, depth + 1, &branches[i]);
		if (rc == ASSAY_ERR_REJECT) {
			/* refused only when a frame takes this branch */
			struct assay_plan *fail = node(c, PLAN_FAIL, b, reader);
			char *text;

			snprintf(why, sizeof(why), "%s", c->errstr ? c->errstr : "");
			text = assay_arena_alloc(c->mem, strlen(why) + 1);
			if (fail == NULL || text == NULL)
				return oom(c);
			memcpy(text, why, strlen(why) + 1);
			fail->why = text;
			branches[i] = fail;
		} else if (rc != 0) {
			return rc;
		}
	}
	p->branches = branches;
	p->nbranches = n;
	*out = p;
	return 0;
}

static int compile(struct compile *c, avro_schema_t writer, const struct assay_ct_type *reader,
                   bool optional, int depth, const struct assay_plan **out)
{
	avro_type_t w;
	int op;

	writer = resolve(writer);
	w = avro_typeof(writer);
	if (depth > ASSAY_AVRO_MAX_DEPTH)
		return assay_errf(ASSAY_ERR_REJECT, c->errstr, c->errstr_size,
		                  "field %s: nesting depth over %d", c->path, ASSAY_AVRO_MAX_DEPTH);
	if (w == AVRO_UNION)
		return compile_union(c, writer, reader, optional, depth, out);
	if (w == AVRO_NULL) {
		if (!optional)
			return mismatch(c, writer, reader);
		*out = node(c, PLAN_NULL, writer, reader);
		return *out ? 0 : oom(c);
	}
	switch (reader->kind) {
	case ASSAY_CT_ENUM:
		if (w != AVRO_ENUM ||
		    strcmp(short_name(avro_schema_name(writer)), short_name(reader->name)) != 0)
			return mismatch(c, writer, reader);
		return compile_enum(c, writer, reader, out);
	case ASSAY_CT_RECORD:
		if (w != AVRO_RECORD ||
		    strcmp(short_name(avro_schema_name(writer)), short_name(reader->name)) != 0)
			return mismatch(c, writer, reader);
		return compile_record(c, writer, reader, depth, out);
	case ASSAY_CT_ARRAY:
	case ASSAY_CT_MAP: {
		bool map = reader->kind == ASSAY_CT_MAP;
		avro_schema_t item;
		struct assay_plan *p;
		int rc;

		if (w != (map ? AVRO_MAP : AVRO_ARRAY))
			return mismatch(c, writer, reader);
		item = map ? avro_schema_map_values(writer) : avro_schema_array_items(writer);
		p = node(c, map ? PLAN_MAP : PLAN_ARRAY, writer, reader);
		if (p == NULL)
			return oom(c);
		p->item_min_size = assay_avro_min_size(item) + (map ? 1 : 0);
		rc = compile(c, item, reader->items, false, depth + 1, &p->item);
		if (rc != 0)
			return rc;
		*out = p;
		return 0;
	}
	default:
		op = scalar_op(w, reader->kind);
		if (op < 0)
			return mismatch(c, writer, reader);
		*out = node(c, (enum assay_plan_op)op, writer, reader);
		return *out ? 0 : oom(c);
	}
}

int assay_contract_plan_compile(avro_schema_t writer, const struct assay_ct_type *reader,
                                struct assay_arena *mem, const struct assay_plan **out,
                                char *errstr, size_t errstr_size)
{
	struct compile c = {.mem = mem, .errstr = errstr, .errstr_size = errstr_size};

	*out = NULL;
	return compile(&c, writer, reader, false, 0, out);
}
