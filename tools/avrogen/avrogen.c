/*
 * avrogen: generates the C contracts of assay's Avro schemas.
 *
 *   avrogen <out-dir> <schema.avsc>...
 *
 * For each schema file <name>.avsc it writes <out-dir>/contract_<name>.h and .c: a C struct
 * per record, a C enum per enum (with _name and _parse), a const descriptor per named type for
 * the runtime in services/contracts/assay_contract.h, and for the file's top-level record
 * _decode and _encode functions. A named type defined (identically) in several files is
 * generated once, in the first file by name, and included from there by the others. It also
 * writes contract_all.h/.c: every header, and the list of top-level descriptors for tests.
 *
 * Supported: records, enums, arrays, maps, ["null", T] unions, the primitives, logical types
 * carried by int and long. Anything else (other unions, fixed, recursive types, record
 * defaults) stops the build with a message naming the file and field. A file is rewritten only
 * when its text changes, so unchanged schemas do not recompile.
 */
#include <jansson.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind {
	K_NULL,
	K_BOOLEAN,
	K_INT,
	K_LONG,
	K_FLOAT,
	K_DOUBLE,
	K_STRING,
	K_BYTES,
	K_ENUM,
	K_RECORD,
	K_ARRAY,
	K_MAP
};

struct gfield;

struct gtype {
	enum kind kind;
	char *full;  /* named: org.assay.v1.Standard */
	char *cname; /* named: standard */
	char *owner; /* named: base name of the file generating it */
	char *sig;   /* named: structure, to compare redefinitions */
	struct gfield *fields;
	size_t nfields;
	char **symbols;
	size_t nsymbols;
	int default_symbol;
	struct gtype *items;
	bool emitted; /* named, in the current file */
	bool busy;    /* being parsed (recursion check) */
};

struct gfield {
	char *name;
	struct gtype *type;
	bool optional;
	json_t *dflt; /* borrowed from the document, NULL for none */
};

struct gen {
	struct gtype **named;
	size_t nnamed;
	const char *file;         /* for messages */
	const char *base;         /* current file's base name */
	const struct gtype *root; /* current file's top-level record */
	json_t **docs;
	size_t ndocs;
};

static struct gtype prim[] = {
        [K_NULL] = {.kind = K_NULL},     [K_BOOLEAN] = {.kind = K_BOOLEAN},
        [K_INT] = {.kind = K_INT},       [K_LONG] = {.kind = K_LONG},
        [K_FLOAT] = {.kind = K_FLOAT},   [K_DOUBLE] = {.kind = K_DOUBLE},
        [K_STRING] = {.kind = K_STRING}, [K_BYTES] = {.kind = K_BYTES},
};
static const char *const prim_names[] = {"null",  "boolean", "int",    "long",
                                         "float", "double",  "string", "bytes"};

static void die(struct gen *g, const char *fmt, ...)
        __attribute__((format(printf, 2, 3), noreturn));

static void die(struct gen *g, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "avrogen: %s: ", g->file ? g->file : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL) {
		fputs("avrogen: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = xcalloc(n, 1);

	memcpy(p, s, n);
	return p;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	p = xcalloc((size_t)n + 1, 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

/* EvidenceSubmitted -> evidence_submitted; AiActTier -> ai_act_tier */
static char *snake(const char *name)
{
	size_t n = strlen(name);
	char *out = xcalloc(2 * n + 1, 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (isupper(ch) && i > 0 &&
		    (islower((unsigned char)name[i - 1]) || isdigit((unsigned char)name[i - 1]) ||
		     (i + 1 < n && islower((unsigned char)name[i + 1]))))
			*o++ = '_';
		*o++ = (char)tolower(ch);
	}
	return out;
}

static char *upper(const char *s)
{
	char *out = xstrdup(s);

	for (char *p = out; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return out;
}

static struct gtype *find_named(struct gen *g, const char *full)
{
	for (size_t i = 0; i < g->nnamed; i++)
		if (strcmp(g->named[i]->full, full) == 0)
			return g->named[i];
	return NULL;
}

static char *full_name(const char *name, const char *ns)
{
	if (strchr(name, '.') != NULL || ns == NULL || *ns == '\0')
		return xstrdup(name);
	return xprintf("%s.%s", ns, name);
}

static struct gtype *parse_type(struct gen *g, json_t *j, const char *ns, const char *where);

/* A named type: the one already known (same structure required) or a new one. */
static struct gtype *add_named(struct gen *g, struct gtype *t)
{
	struct gtype *old = find_named(g, t->full);

	if (old != NULL) {
		if (strcmp(old->sig, t->sig) != 0)
			die(g, "%s is defined differently in %s", t->full, old->owner);
		return old;
	}
	g->named = realloc(g->named, sizeof(*g->named) * (g->nnamed + 1));
	if (g->named == NULL)
		die(g, "out of memory");
	g->named[g->nnamed++] = t;
	return t;
}

static struct gtype *parse_enum(struct gen *g, json_t *j, const char *full)
{
	struct gtype *t = xcalloc(1, sizeof(*t));
	json_t *syms = json_object_get(j, "symbols");
	json_t *dflt = json_object_get(j, "default");
	size_t siglen = strlen(full) + 8;
	char *sig;

	if (!json_is_array(syms) || json_array_size(syms) == 0)
		die(g, "enum %s: no symbols", full);
	t->kind = K_ENUM;
	t->full = xstrdup(full);
	t->cname = snake(strrchr(full, '.') ? strrchr(full, '.') + 1 : full);
	t->owner = xstrdup(g->base);
	t->nsymbols = json_array_size(syms);
	t->symbols = xcalloc(t->nsymbols, sizeof(char *));
	t->default_symbol = -1;
	for (size_t i = 0; i < t->nsymbols; i++) {
		const char *s = json_string_value(json_array_get(syms, i));

		if (s == NULL)
			die(g, "enum %s: symbol %zu is not a string", full, i);
		t->symbols[i] = xstrdup(s);
		siglen += strlen(s) + 1;
		if (dflt != NULL && json_is_string(dflt) && strcmp(json_string_value(dflt), s) == 0)
			t->default_symbol = (int)i;
	}
	if (dflt != NULL && t->default_symbol < 0)
		die(g, "enum %s: default is not one of its symbols", full);
	sig = xcalloc(siglen + 16, 1);
	snprintf(sig, siglen + 16, "E%s:%d{", full, t->default_symbol);
	for (size_t i = 0; i < t->nsymbols; i++) {
		strcat(sig, t->symbols[i]);
		strcat(sig, ",");
	}
	strcat(sig, "}");
	t->sig = sig;
	return add_named(g, t);
}

static struct gtype *parse_record(struct gen *g, json_t *j, const char *full, const char *ns)
{
	struct gtype *t = xcalloc(1, sizeof(*t)), *old;
	json_t *fields = json_object_get(j, "fields");
	char *sig, *tmp;

	if (!json_is_array(fields))
		die(g, "record %s: no fields", full);
	old = find_named(g, full);
	if (old != NULL && old->busy)
		die(g, "record %s is recursive: not supported", full);
	t->kind = K_RECORD;
	t->full = xstrdup(full);
	t->cname = snake(strrchr(full, '.') ? strrchr(full, '.') + 1 : full);
	t->owner = xstrdup(g->base);
	t->busy = true;
	t->nfields = json_array_size(fields);
	t->fields = xcalloc(t->nfields, sizeof(*t->fields));
	sig = xprintf("R%s{", full);
	for (size_t i = 0; i < t->nfields; i++) {
		json_t *fj = json_array_get(fields, i);
		const char *name = json_string_value(json_object_get(fj, "name"));
		json_t *type = json_object_get(fj, "type");
		struct gfield *f = &t->fields[i];
		char *where;

		if (name == NULL || type == NULL)
			die(g, "record %s: field %zu has no name or type", full, i);
		where = xprintf("%s.%s", full, name);
		f->name = xstrdup(name);
		f->dflt = json_object_get(fj, "default");
		if (json_is_array(type)) {
			json_t *a = json_array_get(type, 0), *b = json_array_get(type, 1);

			if (json_array_size(type) != 2 || !json_is_string(a) ||
			    strcmp(json_string_value(a), "null") != 0)
				die(g, "field %s: only [\"null\", T] unions are supported", where);
			f->optional = true;
			f->type = parse_type(g, b, ns, where);
			if (f->dflt != NULL && !json_is_null(f->dflt))
				die(g, "field %s: a [\"null\", T] default must be null", where);
		} else {
			f->type = parse_type(g, type, ns, where);
		}
		if (f->type->kind == K_NULL)
			die(g, "field %s: a null field is not supported", where);
		tmp = xprintf("%s%s:%s%s,", sig, name, f->optional ? "?" : "",
		              f->type->sig ? f->type->sig : "");
		free(sig);
		sig = tmp;
		free(where);
	}
	tmp = xprintf("%s}", sig);
	free(sig);
	t->sig = tmp;
	t->busy = false;
	return add_named(g, t);
}

static struct gtype *parse_type(struct gen *g, json_t *j, const char *ns, const char *where)
{
	if (json_is_string(j)) {
		const char *name = json_string_value(j);
		struct gtype *t;
		char *full;

		for (size_t i = 0; i < sizeof(prim_names) / sizeof(prim_names[0]); i++)
			if (strcmp(name, prim_names[i]) == 0)
				return &prim[i];
		full = full_name(name, ns);
		t = find_named(g, full);
		if (t == NULL)
			die(g, "%s: unknown type %s", where, full);
		if (t->busy)
			die(g, "%s: recursive type %s is not supported", where, full);
		free(full);
		return t;
	}
	if (json_is_object(j)) {
		const char *type = json_string_value(json_object_get(j, "type"));
		const char *name = json_string_value(json_object_get(j, "name"));
		const char *own_ns = json_string_value(json_object_get(j, "namespace"));

		if (type == NULL)
			die(g, "%s: type without \"type\"", where);
		if (strcmp(type, "record") == 0 || strcmp(type, "enum") == 0) {
			char *full;
			struct gtype *t;

			if (name == NULL)
				die(g, "%s: %s without a name", where, type);
			full = full_name(name, own_ns ? own_ns : ns);
			if (own_ns == NULL && strchr(name, '.') != NULL) {
				own_ns = NULL; /* the namespace is the full name's */
			}
			if (strcmp(type, "enum") == 0) {
				t = parse_enum(g, j, full);
			} else {
				char *inner = xstrdup(full);
				char *dot = strrchr(inner, '.');

				if (dot != NULL)
					*dot = '\0';
				t = parse_record(g, j, full, dot != NULL ? inner : ns);
				free(inner);
			}
			free(full);
			return t;
		}
		if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
			struct gtype *t = xcalloc(1, sizeof(*t));
			json_t *items = json_object_get(j, type[0] == 'a' ? "items" : "values");

			t->kind = type[0] == 'a' ? K_ARRAY : K_MAP;
			if (items == NULL)
				die(g, "%s: %s without items", where, type);
			if (json_is_array(items))
				die(g, "%s: unions inside %s are not supported", where, type);
			t->items = parse_type(g, items, ns, where);
			t->sig = xprintf("%c(%s)", type[0], t->items->sig ? t->items->sig : "");
			return t;
		}
		if (strcmp(type, "fixed") == 0)
			die(g, "%s: fixed is not supported", where);
		return parse_type(g, json_object_get(j, "type"), ns, where);
	}
	die(g, "%s: unsupported type JSON", where);
}

/* ---- output ---- */

struct out {
	char *text;
	size_t len, cap;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (o->len + (size_t)n + 1 > o->cap) {
		o->cap = (o->len + (size_t)n + 1) * 2;
		o->text = realloc(o->text, o->cap);
		if (o->text == NULL) {
			fputs("avrogen: out of memory\n", stderr);
			exit(1);
		}
	}
	va_start(ap, fmt);
	vsnprintf(o->text + o->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

/* Writes o to path unless the file already holds exactly that text. */
static void write_file(const char *path, const struct out *o)
{
	FILE *f = fopen(path, "rb");
	bool same = false;

	if (f != NULL) {
		char *old = xcalloc(o->len + 2, 1);
		size_t n = fread(old, 1, o->len + 1, f);

		same = n == o->len && memcmp(old, o->text, o->len) == 0;
		free(old);
		fclose(f);
	}
	if (same)
		return;
	f = fopen(path, "wb");
	if (f == NULL || fwrite(o->text, 1, o->len, f) != o->len || fclose(f) != 0) {
		fprintf(stderr, "avrogen: cannot write %s\n", path);
		exit(1);
	}
}

/* ---- C text ---- */

static const char *const c_keywords[] = {
        "auto",     "break",  "case",   "char",     "const",    "continue", "default",  "do",
        "double",   "else",   "enum",   "extern",   "float",    "for",      "goto",     "if",
        "inline",   "int",    "long",   "register", "restrict", "return",   "short",    "signed",
        "sizeof",   "static", "struct", "switch",   "typedef",  "union",    "unsigned", "void",
        "volatile", "while",  "bool",   "true",     "false",
};

/* A field's C member name: the Avro name, with '_' appended to a C keyword. */
static char *member(const char *name)
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

/* ---- straight-line code for the reader's own schema ---- */

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

static void emit_record_code(const struct gtype *t, struct out *src)
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

static void generate(struct gen *g, const char *dir, struct gtype *root)
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

static char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *b = xstrdup(slash ? slash + 1 : path), *dot = strrchr(b, '.');

	if (dot != NULL)
		*dot = '\0';
	return b;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	struct gen g = {0};
	struct gtype **roots;
	char **bases, *path;
	struct out all_h = {0}, all_c = {0};
	int n = argc - 2;

	if (argc < 3) {
		fputs("usage: avrogen <out-dir> <schema.avsc>...\n", stderr);
		return 2;
	}
	qsort(argv + 2, (size_t)n, sizeof(char *), cmp_str);
	roots = xcalloc((size_t)n, sizeof(*roots));
	bases = xcalloc((size_t)n, sizeof(*bases));
	for (int i = 0; i < n; i++) {
		json_error_t err;
		json_t *doc = json_load_file(argv[i + 2], 0, &err);

		g.file = argv[i + 2];
		bases[i] = base_name(argv[i + 2]);
		g.base = bases[i];
		if (doc == NULL)
			die(&g, "line %d: %s", err.line, err.text);
		roots[i] = parse_type(&g, doc, NULL, bases[i]);
		if (roots[i]->kind != K_RECORD)
			die(&g, "the top-level type is not a record");
		/* defaults point into doc: keep it until the end */
		g.docs = realloc(g.docs, sizeof(json_t *) * (g.ndocs + 1));
		g.docs[g.ndocs++] = doc;
	}
	for (int i = 0; i < n; i++) {
		g.file = argv[i + 2];
		g.base = bases[i];
		for (size_t k = 0; k < g.nnamed; k++)
			g.named[k]->emitted = false;
		generate(&g, argv[1], roots[i]);
	}
	emit(&all_h, "/* generated by tools/avrogen: every contract, do not edit */\n"
	             "#ifndef ASSAY_CONTRACT_ALL_H\n#define ASSAY_CONTRACT_ALL_H\n\n");
	for (int i = 0; i < n; i++)
		emit(&all_h, "#include \"contract_%s.h\"\n", bases[i]);
	emit(&all_h, "\n/* The top-level record of every schema, in file name order. */\n"
	             "extern const struct assay_ct_type *const assay_contract_roots[];\n"
	             "extern const size_t assay_contract_nroots;\n\n#endif\n");
	emit(&all_c,
	     "/* generated by tools/avrogen: do not edit */\n#include \"contract_all.h\"\n\n"
	     "const struct assay_ct_type *const assay_contract_roots[] = {\n");
	for (int i = 0; i < n; i++)
		emit(&all_c, "\t&assay_%s_type,\n", roots[i]->cname);
	emit(&all_c, "};\nconst size_t assay_contract_nroots = %d;\n", n);
	path = xprintf("%s/contract_all.h", argv[1]);
	write_file(path, &all_h);
	free(path);
	path = xprintf("%s/contract_all.c", argv[1]);
	write_file(path, &all_c);
	free(path);
	return 0;
}
