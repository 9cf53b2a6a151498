/*
 * avrogen's C declarations and descriptors (avrogen.h): per schema file a header with the
 * structs and enums, and a source with the enum functions, the const descriptors the runtime
 * in services/domain/contracts walks, the straight-line code (avrogen_code.c) and the _decode and
 * _encode entry points.
 */
#include "avrogen.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const c_keywords[] = {
        "auto",     "break",  "case",   "char",     "const",    "continue", "default",  "do",
        "double",   "else",   "enum",   "extern",   "float",    "for",      "goto",     "if",
        "inline",   "int",    "long",   "register", "restrict", "return",   "short",    "signed",
        "sizeof",   "static", "struct", "switch",   "typedef",  "union",    "unsigned", "void",
        "volatile", "while",  "bool",   "true",     "false",
};

/* A field's C member name: the Avro name, with '_' appended to a C keyword. */
char *member(const char *name)
{
	for (size_t i = 0; i < sizeof(c_keywords) / sizeof(c_keywords[0]); i++)
		if (strcmp(name, c_keywords[i]) == 0)
			return xprintf("%s_", name);
	return xstrdup(name);
}

static char *ctype(const struct gtype *t)
{
	char *inner, *s;

	switch (t->kind) {
	case K_BOOLEAN:
		return xstrdup("bool");
	case K_INT:
		return xstrdup("int32_t");
	case K_LONG:
		return xstrdup("int64_t");
	case K_FLOAT:
		return xstrdup("float");
	case K_DOUBLE:
		return xstrdup("double");
	case K_STRING:
		return xstrdup("struct assay_str");
	case K_BYTES:
		return xstrdup("struct assay_bytes");
	case K_ENUM:
		return xprintf("enum assay_%s", t->cname);
	case K_RECORD:
		return xprintf("struct assay_%s", t->cname);
	case K_ARRAY:
		inner = ctype(t->items);
		s = xprintf("struct {\n\t\t%s *items;\n\t\tsize_t count;\n\t}", inner);
		free(inner);
		return s;
	case K_MAP:
		inner = ctype(t->items);
		s = xprintf("struct {\n\t\tstruct assay_str *keys;\n\t\t%s *values;\n\t\tsize_t "
		            "count;\n\t}",
		            inner);
		free(inner);
		return s;
	default:
		return xstrdup("void");
	}
}

static const char *ct_kind(enum kind k)
{
	static const char *const names[] = {
	        "ASSAY_CT_NULL",  "ASSAY_CT_BOOLEAN", "ASSAY_CT_INT",    "ASSAY_CT_LONG",
	        "ASSAY_CT_FLOAT", "ASSAY_CT_DOUBLE",  "ASSAY_CT_STRING", "ASSAY_CT_BYTES",
	        "ASSAY_CT_ENUM",  "ASSAY_CT_RECORD",  "ASSAY_CT_ARRAY",  "ASSAY_CT_MAP",
	};
	return names[k];
}

/* A C string literal of s, every byte outside [A-Za-z0-9 ._:-] as an octal escape. */
static char *c_string(const char *s)
{
	size_t n = strlen(s);
	char *out = xcalloc(4 * n + 3, 1), *o = out;

	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (isalnum(ch) || strchr(" ._:-", ch) != NULL)
			*o++ = (char)ch;
		else
			o += snprintf(o, 5, "\\%03o", ch);
	}
	*o++ = '"';
	return out;
}

/* The descriptor expression of t; anonymous ones are emitted into src as static name. */
static char *desc_ref(struct gen *g, const struct gtype *t, const char *name, struct out *src)
{
	static const char *const prims[] = {
	        [K_BOOLEAN] = "boolean", [K_INT] = "int",       [K_LONG] = "long",
	        [K_FLOAT] = "float",     [K_DOUBLE] = "double", [K_STRING] = "string",
	        [K_BYTES] = "bytes",
	};
	char *items, *inner;

	switch (t->kind) {
	case K_ENUM:
	case K_RECORD:
		return xprintf("&assay_%s_type", t->cname);
	case K_ARRAY:
	case K_MAP:
		inner = xprintf("%s_items", name);
		items = desc_ref(g, t->items, inner, src);
		emit(src,
		     "static const struct assay_ct_type %s = {\n\t.kind = %s,\n\t.name = \"%s\",\n"
		     "\t.size = %d * sizeof(void *),\n\t.default_symbol = -1,\n\t.items = "
		     "%s,\n};\n\n",
		     name, ct_kind(t->kind), t->kind == K_ARRAY ? "array" : "map",
		     t->kind == K_ARRAY ? 2 : 3, items);
		free(inner);
		free(items);
		return xprintf("&%s", name);
	default:
		return xprintf("&assay_ct_%s_type", prims[t->kind]);
	}
}

/* The default of field f (of record t) as a static, or NULL when it has none. */
static char *default_ref(struct gen *g, const struct gtype *t, const struct gfield *f,
                         struct out *src)
{
	json_t *d = f->dflt;
	char *name, *m;

	if (d == NULL)
		return NULL;
	m = member(f->name);
	name = xprintf("assay_%s_%s_dflt", t->cname, m);
	free(m);
	emit(src, "static const struct assay_ct_default %s = {", name);
	if (json_is_null(d)) {
		if (!f->optional)
			die(g, "field %s.%s: default null on a field that is not optional", t->full,
			    f->name);
		emit(src, ".is_null = true");
	} else {
		switch (f->type->kind) {
		case K_BOOLEAN:
			if (!json_is_boolean(d))
				die(g, "field %s.%s: default is not a boolean", t->full, f->name);
			emit(src, ".i = %d", json_is_true(d) ? 1 : 0);
			break;
		case K_INT:
		case K_LONG:
			if (!json_is_integer(d))
				die(g, "field %s.%s: default is not an integer", t->full, f->name);
			emit(src, ".i = INT64_C(%lld)", (long long)json_integer_value(d));
			break;
		case K_FLOAT:
		case K_DOUBLE:
			if (!json_is_number(d))
				die(g, "field %s.%s: default is not a number", t->full, f->name);
			emit(src, ".d = %.17g", json_number_value(d));
			break;
		case K_STRING:
		case K_BYTES: {
			char *lit;

			if (!json_is_string(d))
				die(g, "field %s.%s: default is not a string", t->full, f->name);
			lit = c_string(json_string_value(d));
			emit(src, ".s = %s, .len = %zu", lit, strlen(json_string_value(d)));
			free(lit);
			break;
		}
		case K_ENUM: {
			int idx = -1;

			for (size_t i = 0; json_is_string(d) && i < f->type->nsymbols; i++)
				if (strcmp(f->type->symbols[i], json_string_value(d)) == 0)
					idx = (int)i;
			if (idx < 0)
				die(g, "field %s.%s: default is not a symbol of %s", t->full,
				    f->name, f->type->full);
			emit(src, ".i = %d", idx);
			break;
		}
		case K_ARRAY:
		case K_MAP:
			if (json_is_array(d) ? json_array_size(d) != 0
			                     : !json_is_object(d) || json_object_size(d) != 0)
				die(g,
				    "field %s.%s: only empty array and map defaults are supported",
				    t->full, f->name);
			break;
		default:
			die(g, "field %s.%s: a default of this type is not supported", t->full,
			    f->name);
		}
	}
	emit(src, "};\n\n");
	return name;
}

static void emit_enum(struct gen *g, const struct gtype *t, struct out *h, struct out *src)
{
	char *up = upper(t->cname);

	emit(h, "/* %s */\nenum assay_%s {\n", t->full, t->cname);
	for (size_t i = 0; i < t->nsymbols; i++)
		emit(h, "\tASSAY_%s_%s = %zu,\n", up, t->symbols[i], i);
	emit(h, "};\n#define ASSAY_%s_NSYMBOLS %zu\n", up, t->nsymbols);
	emit(h,
	     "_Static_assert(sizeof(enum assay_%s) == sizeof(int32_t), \"enum stored as int32\");\n"
	     "extern const struct assay_ct_type assay_%s_type;\n"
	     "/* The symbol of v (static text), or NULL when v is not one. */\n"
	     "const char *assay_%s_name(enum assay_%s v);\n"
	     "/* The value of symbol s (len bytes, need not be NUL-terminated) into *out. Returns "
	     "0,\n"
	     " * or ASSAY_ERR_REJECT (*out unchanged) for a symbol %s lacks. */\n"
	     "int assay_%s_parse(const char *s, size_t len, enum assay_%s *out);\n\n",
	     t->cname, t->cname, t->cname, t->cname, t->full, t->cname, t->cname);

	emit(src, "static const char *const assay_%s_symbols[] = {\n", t->cname);
	for (size_t i = 0; i < t->nsymbols; i++)
		emit(src, "\t\"%s\",\n", t->symbols[i]);
	emit(src,
	     "};\n\nconst struct assay_ct_type assay_%s_type = {\n\t.kind = ASSAY_CT_ENUM,\n"
	     "\t.name = \"%s\",\n\t.size = sizeof(enum assay_%s),\n\t.symbols = assay_%s_symbols,\n"
	     "\t.nsymbols = %zu,\n\t.default_symbol = %d,\n};\n\n",
	     t->cname, t->full, t->cname, t->cname, t->nsymbols, t->default_symbol);
	emit(src,
	     "const char *assay_%s_name(enum assay_%s v)\n{\n"
	     "\treturn (int)v >= 0 && (int)v < %zu ? assay_%s_symbols[v] : NULL;\n}\n\n",
	     t->cname, t->cname, t->nsymbols, t->cname);
	emit(src,
	     "int assay_%s_parse(const char *s, size_t len, enum assay_%s *out)\n{\n"
	     "\tint i = assay_contract_enum_index(&assay_%s_type, s, len);\n\n"
	     "\tif (i < 0)\n\t\treturn ASSAY_ERR_REJECT;\n\t*out = (enum assay_%s)i;\n"
	     "\treturn 0;\n}\n\n",
	     t->cname, t->cname, t->cname, t->cname);
	free(up);
}

static void emit_record(struct gen *g, const struct gtype *t, struct out *h, struct out *src)
{
	char **refs = xcalloc(t->nfields, sizeof(char *)),
	     **dflts = xcalloc(t->nfields, sizeof(char *));

	emit(h, "/* %s */\nstruct assay_%s {\n", t->full, t->cname);
	for (size_t i = 0; i < t->nfields; i++) {
		const struct gfield *f = &t->fields[i];
		char *ty = ctype(f->type), *m = member(f->name), *anon;

		if (f->optional)
			emit(h, "\tbool has_%s;\n", f->name);
		emit(h, "\t%s %s;\n", ty, m);
		anon = xprintf("assay_%s_%s_type", t->cname, m);
		refs[i] = desc_ref(g, f->type, anon, src);
		dflts[i] = default_ref(g, t, f, src);
		free(anon);
		free(ty);
		free(m);
	}
	emit(h,
	     "};\nextern const struct assay_ct_type assay_%s_type;\n"
	     "/* Straight-line code for the reader's own schema (assay_contract_io.h). */\n"
	     "int assay_%s_read(struct assay_ct_reader *r, struct assay_%s *out);\n"
	     "int assay_%s_write(struct assay_ct_writer *w, const struct assay_%s *in);\n\n",
	     t->cname, t->cname, t->cname, t->cname, t->cname);
	emit_record_code(t, src);

	emit(src, "static const struct assay_ct_field assay_%s_fields[] = {\n", t->cname);
	for (size_t i = 0; i < t->nfields; i++) {
		const struct gfield *f = &t->fields[i];
		char *m = member(f->name), *present;

		present = f->optional
		                  ? xprintf("offsetof(struct assay_%s, has_%s)", t->cname, f->name)
		                  : xstrdup("0");
		emit(src,
		     "\t{\n\t\t.name = \"%s\",\n\t\t.type = %s,\n\t\t.offset = offsetof(struct "
		     "assay_%s, %s),\n\t\t.optional = %s,\n\t\t.present_offset = %s,\n"
		     "\t\t.dflt = %s%s,\n\t},\n",
		     f->name, refs[i], t->cname, m, f->optional ? "true" : "false", present,
		     dflts[i] ? "&" : "", dflts[i] ? dflts[i] : "NULL");
		free(present);
		free(m);
		free(refs[i]);
		free(dflts[i]);
	}
	emit(src, "};\n\n");
	if (t == g->root)
		emit(src,
		     "static int read_any(struct assay_ct_reader *r, void *out)\n{\n"
		     "\treturn assay_%s_read(r, out);\n}\n\n"
		     "static int write_any(struct assay_ct_writer *w, const void *in)\n{\n"
		     "\treturn assay_%s_write(w, in);\n}\n\n",
		     t->cname, t->cname);
	emit(src,
	     "const struct assay_ct_type assay_%s_type = {\n\t.kind = ASSAY_CT_RECORD,\n"
	     "\t.name = \"%s\",\n\t.size = sizeof(struct assay_%s),\n\t.fields = assay_%s_fields,\n"
	     "\t.nfields = %zu,\n\t.default_symbol = -1,\n%s};\n\n",
	     t->cname, t->full, t->cname, t->cname, t->nfields,
	     t == g->root ? "\t.read = read_any,\n\t.write = write_any,\n" : "");
	free(refs);
	free(dflts);
}

/* Emits the named types t needs (owned by this file), post-order; notes other owners. */
static void emit_defs(struct gen *g, struct gtype *t, struct out *h, struct out *src,
                      char ***includes, size_t *nincludes)
{
	if (t->kind == K_ARRAY || t->kind == K_MAP) {
		emit_defs(g, t->items, h, src, includes, nincludes);
		return;
	}
	if (t->kind != K_ENUM && t->kind != K_RECORD)
		return;
	if (strcmp(t->owner, g->base) != 0) {
		for (size_t i = 0; i < *nincludes; i++)
			if (strcmp((*includes)[i], t->owner) == 0)
				return;
		*includes = realloc(*includes, sizeof(char *) * (*nincludes + 1));
		(*includes)[(*nincludes)++] = t->owner;
		return;
	}
	if (t->emitted)
		return;
	t->emitted = true;
	if (t->kind == K_ENUM) {
		emit_enum(g, t, h, src);
		return;
	}
	for (size_t i = 0; i < t->nfields; i++)
		emit_defs(g, t->fields[i].type, h, src, includes, nincludes);
	emit_record(g, t, h, src);
}

void generate(struct gen *g, const char *dir, struct gtype *root)
{
	struct out h = {0}, src = {0}, body = {0}, defs = {0};
	char **includes = NULL, *up = upper(g->base), *path;
	size_t nincludes = 0;

	g->root = root;
	emit_defs(g, root, &defs, &body, &includes, &nincludes);
	emit(&h,
	     "/* generated by tools/avrogen from schemas/%s.avsc: do not edit */\n"
	     "#ifndef ASSAY_CONTRACT_%s_H\n#define ASSAY_CONTRACT_%s_H\n\n"
	     "#include \"assay_contract.h\"\n",
	     g->base, up, up);
	for (size_t i = 0; i < nincludes; i++)
		emit(&h, "#include \"contract_%s.h\"\n", includes[i]);
	emit(&h, "\n#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n\n%s",
	     defs.text ? defs.text : "");
	emit(&h,
	     "/* Decodes frame (any writer schema of %s) into *out: see assay_contract_decode. */\n"
	     "int assay_%s_decode(struct assay_contracts *cx, const void *frame, size_t len,\n"
	     "\t\tstruct assay_arena *arena, struct assay_%s *out, char *errstr,\n"
	     "\t\tsize_t errstr_size);\n\n"
	     "/* Encodes *in as a frame of %s into buf: see assay_contract_encode. */\n"
	     "int assay_%s_encode(struct assay_contracts *cx, const struct assay_%s *in,\n"
	     "\t\tstruct assay_contract_buf *buf, char *errstr, size_t errstr_size);\n\n#endif\n",
	     root->full, root->cname, root->cname, root->full, root->cname, root->cname);
	emit(&src,
	     "/* generated by tools/avrogen from schemas/%s.avsc: do not edit */\n"
	     "#include \"contract_%s.h\"\n\n#include \"assay_contract_io.h\"\n"
	     "#include \"assay_err.h\"\n\n%s",
	     g->base, g->base, body.text ? body.text : "");
	emit(&src,
	     "int assay_%s_decode(struct assay_contracts *cx, const void *frame, size_t len,\n"
	     "\t\tstruct assay_arena *arena, struct assay_%s *out, char *errstr,\n"
	     "\t\tsize_t errstr_size)\n{\n"
	     "\treturn assay_contract_decode(cx, &assay_%s_type, frame, len, arena, out, errstr,\n"
	     "\t\t\terrstr_size);\n}\n\n"
	     "int assay_%s_encode(struct assay_contracts *cx, const struct assay_%s *in,\n"
	     "\t\tstruct assay_contract_buf *buf, char *errstr, size_t errstr_size)\n{\n"
	     "\treturn assay_contract_encode(cx, &assay_%s_type, in, buf, errstr, errstr_size);\n"
	     "}\n",
	     root->cname, root->cname, root->cname, root->cname, root->cname, root->cname);
	path = xprintf("%s/contract_%s.h", dir, g->base);
	write_file(path, &h);
	free(path);
	path = xprintf("%s/contract_%s.c", dir, g->base);
	write_file(path, &src);
	free(path);
	free(h.text);
	free(src.text);
	free(body.text);
	free(defs.text);
	free(includes);
	free(up);
}
