/*
 * avrogen's internals, shared by its three files: avrogen.c (the command, the schema parser
 * and output helpers), avrogen_c.c (C declarations and descriptors) and avrogen_code.c
 * (straight-line read and write functions). The tool exits on the first error (die).
 */
#ifndef AVROGEN_H
#define AVROGEN_H

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>

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

/* Generated text, grown as needed. */
struct out {
	char *text;
	size_t len, cap;
};

/* Prints "avrogen: <file>: <message>" and exits 1. */
void die(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Allocation that exits when memory runs out. */
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* s in upper case (malloc'd). */
char *upper(const char *s);
/* Appends formatted text to o. */
void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes o to path unless the file already holds exactly that text; exits on failure. */
void write_file(const char *path, const struct out *o);

/* A field's C member name (malloc'd): the Avro name, '_' appended to a C keyword. */
char *member(const char *name);
/* Writes contract_<base>.h and .c for the file whose top-level record is root into dir. */
void generate(struct gen *g, const char *dir, struct gtype *root);

/* Appends t's assay_<name>_read and assay_<name>_write functions to src. */
void emit_record_code(const struct gtype *t, struct out *src);

#endif
