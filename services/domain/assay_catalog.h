/*
 * The control catalogs of the standards assay audits against: ISO/IEC 27001:2022 and
 * ISO/IEC 42001:2023 (clauses 4-10 and Annex A), plus the editions table with the windows in
 * which an edition may be used for new audits. The data lives in PostgreSQL (migration
 * sql/002_catalog.sql: assay_standards, assay_catalog_controls); assay_catalog_load() reads it
 * once into an immutable in-memory catalog.
 *
 * Only ids, short titles and themes: no text of the standards.
 *
 * Threads: a loaded catalog is never modified; share it freely between threads. Every
 * pointer returned by a lookup belongs to the catalog and lives until
 * assay_catalog_destroy().
 */
#ifndef ASSAY_CATALOG_H
#define ASSAY_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "assay_err.h"

struct assay_control {
	const char
	        *standard; /* "ISO27001_2022" | "ISO42001_2023" (the Avro enum Standard symbols) */
	const char *id;    /* "A.8.15", "6.1.4" */
	const char *title;
	const char
	        *theme; /* theme or objective, e.g. "A.8 Technological controls"; "" for clauses */
	bool annex_a;   /* Annex A control (true) or clause 4-10 requirement (false) */
};

struct assay_catalog; /* immutable after load; share freely between threads */

/*
 * Reads assay_standards and assay_catalog_controls through conn (not NULL, migrated; used
 * only during the call, by this thread). Returns 0 with *out set (the caller owns it:
 * assay_catalog_destroy()); ASSAY_ERR_RETRY when the database is unreachable;
 * ASSAY_ERR_FATAL when the tables are missing, a row is inconsistent (a control of an
 * unknown standard) or memory runs out. *out is NULL on failure.
 */
int assay_catalog_load(PGconn *conn, struct assay_catalog **out, char *errstr, size_t errstr_size);

/* Frees c and everything it owns. NULL is a no-op. */
void assay_catalog_destroy(struct assay_catalog *c);

/*
 * The control `id` of `standard` ("ISO27001_2022", "A.8.15"), or NULL when there is none.
 * c, standard and id may be NULL (result NULL). O(log n).
 */
const struct assay_control *assay_catalog_find(const struct assay_catalog *c, const char *standard,
                                               const char *id);

/* Number of Annex A controls (annex_a true) or clause requirements (false) of standard;
 * 0 for an unknown standard or NULL arguments. */
size_t assay_catalog_count(const struct assay_catalog *c, const char *standard, bool annex_a);

/* The i-th of those, in catalog order (natural order of ids: A.5.2 before A.5.10);
 * NULL when i >= assay_catalog_count(). */
const struct assay_control *assay_catalog_at(const struct assay_catalog *c, const char *standard,
                                             bool annex_a, size_t i);

/*
 * "ISO27001:A.8.15" -> standard "ISO27001_2022", id "A.8.15"; "ISO42001:6.1.4" ->
 * "ISO42001_2023", "6.1.4": the family prefix maps to the current edition (from the
 * standards table: the edition with no valid_until, or the newest). A full edition symbol
 * before the colon ("ISO27001_2022:A.8.15") is accepted too. Returns ASSAY_ERR_REJECT with a
 * reason for a malformed reference or unknown family; the id is not required to exist in the
 * catalog (use assay_catalog_find()). *standard points into the catalog; id receives a
 * terminated copy (ASSAY_ERR_REJECT when it does not fit in id_size).
 */
int assay_control_ref_parse(const struct assay_catalog *c, const char *ref, const char **standard,
                            char *id, size_t id_size, char *errstr, size_t errstr_size);

/*
 * Validity of a standard edition for new audits at time at_ms (milliseconds since the epoch,
 * UTC): valid_from <= day(at_ms) <= valid_until (valid_until NULL: open). 27001:2013 is refused
 * after 2025-10-31; windows are data in the standards table. false for an unknown standard.
 */
bool assay_catalog_edition_valid(const struct assay_catalog *c, const char *standard,
                                 int64_t at_ms);

/*
 * Beyond the core API: building a catalog from plain data (tests, tools), the interned
 * standard symbols, and a dense index of every control (0..assay_catalog_size()-1) for
 * per-control tables such as the crosswalk's adjacency.
 */

/* One row of the standards table. Days are days since 1970-01-01 (UTC). */
struct assay_standard_def {
	const char *standard; /* "ISO27001_2022" */
	const char *family;   /* "ISO27001" */
	int edition;          /* 2022 */
	int32_t valid_from;   /* first day the edition may be used for new audits */
	bool has_valid_until;
	int32_t valid_until; /* last such day, when has_valid_until */
};

/*
 * Builds a catalog from standards[0..nstandards) and controls[0..ncontrols) (copied; the
 * arrays stay the caller's). Returns 0 with *out set (caller owns it); ASSAY_ERR_REJECT when
 * the data is inconsistent (duplicate standard or control, control of an unknown standard,
 * empty id or title, annex_a disagreeing with an "A." id); ASSAY_ERR_FATAL when memory runs
 * out. *out is NULL on failure.
 */
int assay_catalog_new(const struct assay_standard_def *standards, size_t nstandards,
                      const struct assay_control *controls, size_t ncontrols,
                      struct assay_catalog **out, char *errstr, size_t errstr_size);

/* The catalog's own copy of the symbol standard ("ISO27001_2022"), or NULL when unknown.
 * Pointers from the catalog may be compared for equality instead of strcmp. */
const char *assay_catalog_standard(const struct assay_catalog *c, const char *standard);

/* Number of standards (editions) and the i-th, in table order by family and edition. */
size_t assay_catalog_standard_count(const struct assay_catalog *c);
const struct assay_standard_def *assay_catalog_standard_at(const struct assay_catalog *c, size_t i);

/* Every control of every standard, and its dense index. assay_catalog_index() gives
 * SIZE_MAX for a pointer that is not one of c's controls. */
size_t assay_catalog_size(const struct assay_catalog *c);
const struct assay_control *assay_catalog_get(const struct assay_catalog *c, size_t index);
size_t assay_catalog_index(const struct assay_catalog *c, const struct assay_control *ctl);

/* Natural order of two control ids: clauses before Annex A, then numerically per
 * component ("A.5.2" < "A.5.10"; "9.3" < "9.3.1" < "10.1"). strcmp-like result. */
int assay_control_id_cmp(const char *a, const char *b);

#endif
