/*
 * avrogen's straight-line code (avrogen.h): for each record, assay_<name>_read and
 * assay_<name>_write, which read and write the record's own schema field after field with the
 * steps of services/domain/contracts/assay_contract_io.h, no descriptors, no plan. The runtime
 * calls them for a frame whose writer schema is the reader's own.
 */
#include "avrogen.h"

#include <stdio.h>
#include <stdlib.h>

/* The fewest bytes a value of t takes on the wire (for block bounds). */
static unsigned min_size(const struct gtype *t)
{
	unsigned sum = 0;

	switch (t->kind) {
	case K_NULL:
		return 0;
	case K_FLOAT:
		return 4;
	case K_DOUBLE:
		return 8;
	case K_RECORD:
		for (size_t i = 0; i < t->nfields; i++)
			sum += t->fields[i].optional ? 1 : min_size(t->fields[i].type);
		return sum;
	default:
		return 1;
	}
}

static void indent(struct out *o, int n)
{
	for (int i = 0; i < n; i++)
		emit(o, "\t");
}

#define CHECK(o, ind, ...)                         \
	do {                                       \
		indent(o, ind);                    \
		emit(o, "if ((rc = " __VA_ARGS__); \
		emit(o, ") != 0)\n");              \
		indent(o, ind + 1);                \
		emit(o, "return rc;\n");           \
	} while (0)

/* Reads a value of t into the lvalue dst; lvl numbers the loop variables. */
static void emit_read(struct out *o, const struct gtype *t, const char *dst, int lvl, int ind)
{
	bool map = t->kind == K_MAP;
	char *item;

	switch (t->kind) {
	case K_BOOLEAN:
		CHECK(o, ind, "assay_ct_read_bool(r, &%s)", dst);
		return;
	case K_INT:
		CHECK(o, ind, "assay_ct_read_int(r, &%s)", dst);
		return;
	case K_LONG:
		CHECK(o, ind, "assay_ct_read_long(r, &%s)", dst);
		return;
	case K_FLOAT:
		CHECK(o, ind, "assay_ct_read_float(r, &%s)", dst);
		return;
	case K_DOUBLE:
		CHECK(o, ind, "assay_ct_read_double(r, &%s)", dst);
		return;
	case K_STRING:
		CHECK(o, ind, "assay_ct_read_str(r, &%s)", dst);
		return;
	case K_BYTES:
		CHECK(o, ind, "assay_ct_read_bytes(r, &%s)", dst);
		return;
	case K_ENUM:
		indent(o, ind);
		emit(o, "{\n");
		indent(o, ind + 1);
		emit(o, "int32_t e;\n\n");
		CHECK(o, ind + 1, "assay_ct_read_enum(r, %zu, \"%s\", &e)", t->nsymbols, t->full);
		indent(o, ind + 1);
		emit(o, "%s = (enum assay_%s)e;\n", dst, t->cname);
		indent(o, ind);
		emit(o, "}\n");
		return;
	case K_RECORD:
		CHECK(o, ind, "assay_%s_read(r, &%s)", t->cname, dst);
		return;
	case K_ARRAY:
	case K_MAP:
		indent(o, ind);
		emit(o, "{\n");
		indent(o, ind + 1);
		emit(o, "size_t n%d = 0;\n\n", lvl);
		indent(o, ind + 1);
		emit(o, "for (;;) {\n");
		indent(o, ind + 2);
		emit(o, "int64_t count%d, size%d;\n", lvl, lvl);
		indent(o, ind + 2);
		emit(o, "size_t start%d;\n\n", lvl);
		CHECK(o, ind + 2, "assay_ct_read_block(r, %s, %u, &count%d, &size%d)",
		      map ? "true" : "false", min_size(t->items) + (map ? 1 : 0), lvl, lvl);
		indent(o, ind + 2);
		emit(o, "if (count%d == 0)\n", lvl);
		indent(o, ind + 3);
		emit(o, "break;\n");
		for (int k = 0; k < (map ? 2 : 1); k++) {
			const char *m = map ? (k == 0 ? "values" : "keys") : "items";

			indent(o, ind + 2);
			emit(o,
			     "%s.%s = assay_ct_grow(r, %s.%s, n%d, (size_t)count%d, "
			     "sizeof(*%s.%s));\n",
			     dst, m, dst, m, lvl, lvl, dst, m);
			indent(o, ind + 2);
			emit(o, "if (%s.%s == NULL)\n", dst, m);
			indent(o, ind + 3);
			emit(o, "return assay_ct_oom(r);\n");
		}
		indent(o, ind + 2);
		emit(o, "start%d = r->pos;\n", lvl);
		indent(o, ind + 2);
		emit(o, "for (size_t i%d = n%d; i%d < n%d + (size_t)count%d; i%d++) {\n", lvl, lvl,
		     lvl, lvl, lvl, lvl);
		if (map)
			CHECK(o, ind + 3, "assay_ct_read_str(r, &%s.keys[i%d])", dst, lvl);
		item = xprintf("%s.%s[i%d]", dst, map ? "values" : "items", lvl);
		emit_read(o, t->items, item, lvl + 1, ind + 3);
		free(item);
		indent(o, ind + 2);
		emit(o, "}\n");
		indent(o, ind + 2);
		emit(o, "n%d += (size_t)count%d;\n", lvl, lvl);
		CHECK(o, ind + 2, "assay_ct_block_end(r, %s, start%d, size%d)",
		      map ? "true" : "false", lvl, lvl);
		indent(o, ind + 1);
		emit(o, "}\n");
		indent(o, ind + 1);
		emit(o, "%s.count = n%d;\n", dst, lvl);
		indent(o, ind);
		emit(o, "}\n");
		return;
	default:
		return;
	}
}

/* Writes the value at the lvalue src of t; field names it in messages. */
static void emit_write(struct out *o, const struct gtype *t, const char *src, const char *field,
                       int lvl, int ind)
{
	bool map = t->kind == K_MAP;
	char *item;

	switch (t->kind) {
	case K_BOOLEAN:
		CHECK(o, ind, "assay_ct_write_bool(w, %s)", src);
		return;
	case K_INT:
	case K_LONG:
		CHECK(o, ind, "assay_ct_write_long(w, %s)", src);
		return;
	case K_FLOAT:
	case K_DOUBLE:
		CHECK(o, ind, "assay_ct_write_raw(w, &%s, sizeof(%s))", src, src);
		return;
	case K_STRING:
		CHECK(o, ind, "assay_ct_write_str(w, &%s, \"%s\")", src, field);
		return;
	case K_BYTES:
		CHECK(o, ind, "assay_ct_write_bytes(w, &%s, \"%s\")", src, field);
		return;
	case K_ENUM:
		CHECK(o, ind, "assay_ct_write_enum(w, (int32_t)%s, %zu, \"%s\", \"%s\")", src,
		      t->nsymbols, t->full, field);
		return;
	case K_RECORD:
		CHECK(o, ind, "assay_%s_write(w, &%s)", t->cname, src);
		return;
	case K_ARRAY:
	case K_MAP:
		indent(o, ind);
		emit(o, "if (%s.count > 0) {\n", src);
		indent(o, ind + 1);
		emit(o, "if (%s.%s == NULL%s%s%s)\n", src, map ? "values" : "items",
		     map ? " || " : "", map ? src : "", map ? ".keys == NULL" : "");
		indent(o, ind + 2);
		emit(o, "return assay_ct_null_items(w, \"%s\", %s.count);\n", field, src);
		CHECK(o, ind + 1, "assay_ct_write_long(w, (int64_t)%s.count)", src);
		indent(o, ind + 1);
		emit(o, "for (size_t i%d = 0; i%d < %s.count; i%d++) {\n", lvl, lvl, src, lvl);
		if (map)
			CHECK(o, ind + 2, "assay_ct_write_str(w, &%s.keys[i%d], \"%s\")", src, lvl,
			      field);
		item = xprintf("%s.%s[i%d]", src, map ? "values" : "items", lvl);
		emit_write(o, t->items, item, field, lvl + 1, ind + 2);
		free(item);
		indent(o, ind + 1);
		emit(o, "}\n");
		indent(o, ind);
		emit(o, "}\n");
		CHECK(o, ind, "assay_ct_write_long(w, 0)");
		return;
	default:
		return;
	}
}

void emit_record_code(const struct gtype *t, struct out *src)
{
	emit(src,
	     "int assay_%s_read(struct assay_ct_reader *r, struct assay_%s *out)\n{\n"
	     "\tint rc = 0;\n\n",
	     t->cname, t->cname);
	for (size_t i = 0; i < t->nfields; i++) {
		const struct gfield *f = &t->fields[i];
		char *m = member(f->name), *dst = xprintf("out->%s", m);

		emit(src, "\tr->field = \"%s\";\n", f->name);
		if (f->optional) {
			emit(src, "\t{\n\t\tint64_t b;\n\n");
			CHECK(src, 2, "assay_ct_read_branch(r, 2, &b)");
			emit(src, "\t\tout->has_%s = b == 1;\n\t\tif (b == 1) {\n", f->name);
			emit_read(src, f->type, dst, 0, 3);
			emit(src, "\t\t}\n\t}\n");
		} else {
			emit_read(src, f->type, dst, 0, 1);
		}
		free(dst);
		free(m);
	}
	emit(src, "\treturn rc;\n}\n\n");

	emit(src,
	     "int assay_%s_write(struct assay_ct_writer *w, const struct assay_%s *in)\n{\n"
	     "\tint rc = 0;\n\n",
	     t->cname, t->cname);
	for (size_t i = 0; i < t->nfields; i++) {
		const struct gfield *f = &t->fields[i];
		char *m = member(f->name), *s = xprintf("in->%s", m);

		if (f->optional) {
			CHECK(src, 1, "assay_ct_write_long(w, in->has_%s ? 1 : 0)", f->name);
			emit(src, "\tif (in->has_%s) {\n", f->name);
			emit_write(src, f->type, s, f->name, 0, 2);
			emit(src, "\t}\n");
		} else {
			emit_write(src, f->type, s, f->name, 0, 1);
		}
		free(s);
		free(m);
	}
	emit(src, "\treturn rc;\n}\n\n");
}
