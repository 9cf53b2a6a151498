/*
 * avrogen: generates the C contracts of assay's Avro schemas.
 *
 *   avrogen <out-dir> <schema.avsc>...
 *
 * For each schema file <name>.avsc it writes <out-dir>/contract_<name>.h and .c: a C struct
 * per record, a C enum per enum (with _name and _parse), a const descriptor per named type for
 * the runtime in services/domain/contracts/assay_contract.h, and for the file's top-level record
 * _decode and _encode functions. A named type defined (identically) in several files is
 * generated once, in the first file by name, and included from there by the others. It also
 * writes contract_all.h/.c: every header, and the list of top-level descriptors for tests.
 *
 * Supported: records, enums, arrays, maps, ["null", T] unions, the primitives, logical types
 * carried by int and long. Anything else (other unions, fixed, recursive types, record
 * defaults) stops the build with a message naming the file and field. A file is rewritten only
 * when its text changes, so unchanged schemas do not recompile.
 *
 * This file: the command, the schema parser (JSON to struct gtype) and the output helpers.
 */
#include "avrogen.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct gtype prim[] = {
        [K_NULL] = {.kind = K_NULL},     [K_BOOLEAN] = {.kind = K_BOOLEAN},
        [K_INT] = {.kind = K_INT},       [K_LONG] = {.kind = K_LONG},
        [K_FLOAT] = {.kind = K_FLOAT},   [K_DOUBLE] = {.kind = K_DOUBLE},
        [K_STRING] = {.kind = K_STRING}, [K_BYTES] = {.kind = K_BYTES},
};
static const char *const prim_names[] = {"null",  "boolean", "int",    "long",
                                         "float", "double",  "string", "bytes"};

void die(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

void die(struct gen *g, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "avrogen: %s: ", g->file ? g->file : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL) {
		fputs("avrogen: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = xcalloc(n, 1);

	memcpy(p, s, n);
	return p;
}

char *xprintf(const char *fmt, ...)
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

char *upper(const char *s)
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

void emit(struct out *o, const char *fmt, ...)
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
void write_file(const char *path, const struct out *o)
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
