/*
 * Reading the crosswalk from its CSV file (catalog/crosswalk-27001-42001.csv): RFC 4180
 * records with quoted fields, each edge checked and every problem reported with its line.
 */
#include "assay_crosswalk.h"
#include "assay_crosswalk_int.h"
#include "assay_err.h"
#include "assay_strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- CSV ---- */

/* One CSV record: malloc'd fields and the line it starts on. */
struct csv_record {
	char **fields;
	size_t nfields, cap;
	unsigned line;
};

static void csv_free(struct csv_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < recs[i].nfields; k++)
			free(recs[i].fields[k]);
		free(recs[i].fields);
	}
	free(recs);
}

/* the field being read */
struct csv_buf {
	char *s;
	size_t len, cap;
};

static int buf_push(struct csv_buf *b, char c)
{
	if (b->len + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		char *s = realloc(b->s, cap);

		if (s == NULL)
			return -1;
		b->s = s;
		b->cap = cap;
	}
	b->s[b->len++] = c;
	return 0;
}

static int record_push(struct csv_record *r, const struct csv_buf *b)
{
	char *f;

	if (r->nfields == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		char **fs = realloc(r->fields, cap * sizeof(*fs));

		if (fs == NULL)
			return -1;
		r->fields = fs;
		r->cap = cap;
	}
	f = malloc(b->len + 1);
	if (f == NULL)
		return -1;
	if (b->len > 0)
		memcpy(f, b->s, b->len);
	f[b->len] = '\0';
	r->fields[r->nfields++] = f;
	return 0;
}

/*
 * Splits text into records of fields (RFC 4180), skipping blank lines. Returns 0 with
 * *out (caller frees with csv_free) or ASSAY_ERR_REJECT (a problem was added: unterminated
 * quote, text after a closing quote) or ASSAY_ERR_FATAL (memory).
 */
static int csv_split(const char *text, size_t len, struct csv_record **out, size_t *nout,
                     struct problems *p)
{
	struct csv_record *recs = NULL, rec = {0};
	struct csv_buf b = {0};
	size_t nrecs = 0, caprecs = 0, i = 0;
	unsigned line = 1;
	int rc = ASSAY_ERR_FATAL;

	while (i < len) {
		if (text[i] == '\n' || text[i] == '\r') { /* blank line */
			line += text[i] == '\n';
			i++;
			continue;
		}
		rec = (struct csv_record){NULL, 0, 0, line};
		for (;;) { /* one field per turn */
			b.len = 0;
			if (i < len && text[i] == '"') {
				for (i++;; i++) {
					if (i >= len) {
						assay_crosswalk_problem(
						        p, rec.line, "unterminated quoted field");
						rc = ASSAY_ERR_REJECT;
						goto fail;
					}
					if (text[i] == '"' && i + 1 < len && text[i + 1] == '"')
						i++;
					else if (text[i] == '"')
						break;
					line += text[i] == '\n';
					if (buf_push(&b, text[i]) != 0)
						goto fail;
				}
				i++;
				if (i < len && text[i] != ',' && text[i] != '\n' &&
				    text[i] != '\r') {
					assay_crosswalk_problem(p, rec.line,
					                        "text after a closing quote");
					rc = ASSAY_ERR_REJECT;
					goto fail;
				}
			} else {
				while (i < len && text[i] != ',' && text[i] != '\n' &&
				       text[i] != '\r')
					if (buf_push(&b, text[i++]) != 0)
						goto fail;
			}
			if (record_push(&rec, &b) != 0)
				goto fail;
			if (i < len && text[i] == ',') {
				i++;
				continue;
			}
			break;
		}
		if (i < len && text[i] == '\r')
			i++;
		if (i < len && text[i] == '\n') {
			i++;
			line++;
		}
		if (nrecs == caprecs) {
			size_t cap = caprecs ? caprecs * 2 : 64;
			struct csv_record *r = realloc(recs, cap * sizeof(*r));

			if (r == NULL)
				goto fail;
			recs = r;
			caprecs = cap;
		}
		recs[nrecs++] = rec;
		rec = (struct csv_record){0};
	}
	free(b.s);
	*out = recs;
	*nout = nrecs;
	return 0;
fail:
	free(b.s);
	for (size_t k = 0; k < rec.nfields; k++)
		free(rec.fields[k]);
	free(rec.fields);
	csv_free(recs, nrecs);
	*out = NULL;
	*nout = 0;
	return rc;
}

enum { COL_SOURCE, COL_TARGET, COL_RELATION, COL_STRENGTH, COL_RATIONALE, COL_PROVENANCE, NCOLS };
static const char *const col_names[NCOLS] = {"source",   "target",    "relation",
                                             "strength", "rationale", "provenance"};

int assay_crosswalk_parse_csv(const struct assay_catalog *cat, const char *text, size_t len,
                              const char *default_provenance, struct assay_crosswalk **out,
                              size_t *nproblems, char *errstr, size_t errstr_size)
{
	struct problems p = {0};
	struct csv_record *recs = NULL;
	struct assay_crosswalk_row *rows = NULL;
	size_t nrecs = 0, nrows = 0;
	int col[NCOLS];
	int rc;

	*out = NULL;
	if (nproblems != NULL)
		*nproblems = 0;
	rc = csv_split(text, len, &recs, &nrecs, &p);
	if (rc == ASSAY_ERR_FATAL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
		goto out;
	}
	if (rc == 0 && nrecs == 0)
		assay_crosswalk_problem(&p, 1, "no header row");
	if (rc == 0 && nrecs > 0) {
		for (int k = 0; k < NCOLS; k++)
			col[k] = -1;
		for (size_t f = 0; f < recs[0].nfields; f++) {
			int k;

			for (k = 0; k < NCOLS; k++)
				if (strcmp(recs[0].fields[f], col_names[k]) == 0)
					break;
			if (k == NCOLS)
				assay_crosswalk_problem(&p, recs[0].line, "unknown column %.40s",
				                        recs[0].fields[f]);
			else if (col[k] >= 0)
				assay_crosswalk_problem(&p, recs[0].line, "column %s listed twice",
				                        col_names[k]);
			else
				col[k] = (int)f;
		}
		for (int k = 0; k < COL_PROVENANCE; k++)
			if (col[k] < 0)
				assay_crosswalk_problem(&p, recs[0].line, "missing column %s",
				                        col_names[k]);
	}
	if (p.count == 0) {
		rows = calloc(nrecs, sizeof(*rows));
		if (rows == NULL) {
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "crosswalk: out of memory");
			goto out;
		}
		for (size_t r = 1; r < nrecs; r++) {
			const struct csv_record *rec = &recs[r];

			if (rec->nfields != recs[0].nfields) {
				assay_crosswalk_problem(&p, rec->line,
				                        "%zu fields, the header has %zu",
				                        rec->nfields, recs[0].nfields);
				continue;
			}
			rows[nrows] = (struct assay_crosswalk_row){
			        .source = rec->fields[col[COL_SOURCE]],
			        .target = rec->fields[col[COL_TARGET]],
			        .relation = rec->fields[col[COL_RELATION]],
			        .strength = rec->fields[col[COL_STRENGTH]],
			        .rationale = rec->fields[col[COL_RATIONALE]],
			        .provenance = col[COL_PROVENANCE] >= 0
			                              ? rec->fields[col[COL_PROVENANCE]]
			                              : default_provenance,
			        .line = rec->line,
			};
			nrows++;
		}
	}
	if (p.oom) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
		goto out;
	}
	if (rows != NULL) { /* the rows are validated even when some lines were refused */
		rc = assay_crosswalk_build(cat, rows, nrows, &p, out, errstr, errstr_size);
		if (rc != 0)
			goto out;
	}
	rc = p.count > 0 ? assay_crosswalk_refuse(&p, nproblems, errstr, errstr_size) : 0;
	if (rc != 0 && p.oom)
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "crosswalk: out of memory");
out:
	free(p.buf);
	free(rows);
	csv_free(recs, nrecs);
	return rc;
}
