/*
 * The crosswalk between the standards of the catalog (ISO/IEC 27001:2022 <-> ISO/IEC
 * 42001:2023): typed edges with an OSCAL mapping relation, a strength, a rationale and a
 * provenance; loaded from the table assay_crosswalk (sql/002_catalog.sql) or a CSV file and
 * validated the same way; the mapping decision that turns the controls an evidence item
 * claims into links; and the export as an OSCAL mapping-collection JSON document.
 *
 * The crosswalk is assay's judgement, not ISO's (docs/crosswalk.md). Links say which evidence
 * may be looked at for a control, never what it proves: conclusions are not copied across
 * standards (domain-rules R4.4).
 *
 * Threads: a crosswalk is immutable after it is built; share it freely. It borrows the
 * catalog it was built over, which must outlive it.
 */
#ifndef ASSAY_CROSSWALK_H
#define ASSAY_CROSSWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "assay_catalog.h"
#include "assay_err.h"

/* OSCAL mapping relations, source to target (the Avro enum OscalRelation, same order). */
enum assay_relation {
	ASSAY_REL_EQUIVALENT_TO,
	ASSAY_REL_EQUAL_TO,
	ASSAY_REL_SUBSET_OF,
	ASSAY_REL_SUPERSET_OF,
	ASSAY_REL_INTERSECTS_WITH,
};

/* Strength of an edge (the Avro enum CrosswalkStrength, same order: strongest first). */
enum assay_strength { ASSAY_STRENGTH_HIGH, ASSAY_STRENGTH_MEDIUM, ASSAY_STRENGTH_LOW };

/* How evidence is linked to a control (the Avro enum LinkKind, same order). */
enum assay_link_kind { ASSAY_LINK_DIRECT, ASSAY_LINK_AUTOMATIC, ASSAY_LINK_NEEDS_CONFIRMATION };

/* "equivalent-to" (OSCAL token) / "EQUIVALENT_TO" (Avro symbol). */
const char *assay_relation_token(enum assay_relation r);
const char *assay_relation_symbol(enum assay_relation r);
/* Accepts the token or the symbol. Returns 0 or ASSAY_ERR_REJECT. */
int assay_relation_parse(const char *s, enum assay_relation *out);
/* The relation read from target to source: subset-of <-> superset-of, others themselves. */
enum assay_relation assay_relation_inverse(enum assay_relation r);
/* "high" / "HIGH" */
const char *assay_strength_token(enum assay_strength s);
const char *assay_strength_symbol(enum assay_strength s);
int assay_strength_parse(const char *s, enum assay_strength *out);
/* "DIRECT", "AUTOMATIC", "NEEDS_CONFIRMATION" */
const char *assay_link_kind_symbol(enum assay_link_kind k);

/* The kind of link an edge makes: AUTOMATIC only for a high-strength equivalent-to or
 * equal-to edge (domain-rules R4.4), NEEDS_CONFIRMATION for every other edge. */
enum assay_link_kind assay_crosswalk_link_kind(enum assay_relation r, enum assay_strength s);

/* One validated edge. Controls point into the catalog, strings into the crosswalk. */
struct assay_crosswalk_edge {
	const struct assay_control *source;
	const struct assay_control *target;
	enum assay_relation relation;
	enum assay_strength strength;
	const char *rationale;
	const char *provenance;
};

/* One unvalidated row, as read from a file or table. Ends are references parsed with
 * assay_control_ref_parse() ("ISO27001:A.5.1" or "ISO27001_2022:A.5.1"). Any member may be
 * NULL (reported as missing). line: where the row came from, for messages (0: use the row's
 * position, counted from 1). */
struct assay_crosswalk_row {
	const char *source;
	const char *target;
	const char *relation;
	const char *strength;
	const char *rationale;
	const char *provenance;
	unsigned line;
};

struct assay_crosswalk;

/*
 * Validates rows[0..n) against cat (borrowed; must outlive the crosswalk) and builds the
 * crosswalk. Every problem is collected, not just the first: an end that is not a control of
 * the catalog; both ends in the same standard; an unknown relation or strength; an empty
 * rationale or provenance; a pair listed twice (with different relations or strengths, or
 * not); a pair listed in both directions whose relations are not each other's inverse or
 * whose strengths differ. Returns 0 with *out set (caller owns it); ASSAY_ERR_REJECT with
 * "crosswalk refused, N problems: line 3: ...; line 7: ..." in errstr (cut at errstr_size);
 * ASSAY_ERR_FATAL when memory runs out. *out is NULL on failure. nproblems: NULL, or receives
 * the number of problems found.
 */
int assay_crosswalk_new(const struct assay_catalog *cat, const struct assay_crosswalk_row *rows,
                        size_t n, struct assay_crosswalk **out, size_t *nproblems, char *errstr,
                        size_t errstr_size);

/*
 * Parses CSV text (RFC 4180: quoted fields, "" inside quotes, LF or CRLF line ends) of len
 * bytes with a header row naming the columns source, target, relation, strength, rationale
 * and optionally provenance (any order; other columns are refused); rows without a provenance
 * column get default_provenance (not NULL). Then as assay_crosswalk_new(); malformed CSV
 * (unterminated quote, wrong number of fields on a line, missing column) is reported among
 * the problems. Line numbers count from 1 at the header.
 */
int assay_crosswalk_parse_csv(const struct assay_catalog *cat, const char *text, size_t len,
                              const char *default_provenance, struct assay_crosswalk **out,
                              size_t *nproblems, char *errstr, size_t errstr_size);

/*
 * Reads the table assay_crosswalk through conn (used during the call only) and validates it
 * as assay_crosswalk_new() (line = row position in (source, target) order). Returns 0;
 * ASSAY_ERR_RETRY when the database is unreachable; ASSAY_ERR_FATAL when the table is
 * missing or its content is refused (our own data is broken: errstr lists every problem).
 */
int assay_crosswalk_load(PGconn *conn, const struct assay_catalog *cat,
                         struct assay_crosswalk **out, char *errstr, size_t errstr_size);

/* Frees cw. NULL is a no-op. */
void assay_crosswalk_destroy(struct assay_crosswalk *cw);

/* Edges in input order; NULL when i >= count. */
size_t assay_crosswalk_count(const struct assay_crosswalk *cw);
const struct assay_crosswalk_edge *assay_crosswalk_edge_at(const struct assay_crosswalk *cw,
                                                           size_t i);

/* The audit context of a mapping decision. */
struct assay_map_scope {
	/* standards in the audit's scope: catalog symbols (compared with strcmp) */
	const char *const *standards;
	size_t nstandards;
	/* Annex A controls excluded in their standard's SoA (catalog pointers) */
	const struct assay_control *const *excluded;
	size_t nexcluded;
};

/* One link of an evidence item to a control. */
struct assay_link {
	const struct assay_control *control; /* always in scope, never excluded */
	enum assay_link_kind kind;
	const struct assay_control *via; /* claimed control the edge starts from; NULL: DIRECT */
	enum assay_relation relation;    /* from via to control; meaningless for DIRECT */
	enum assay_strength strength;    /* meaningless for DIRECT */
};

/* Room assay_crosswalk_map() needs for nclaimed claimed controls. */
size_t assay_crosswalk_links_bound(const struct assay_crosswalk *cw, size_t nclaimed);

/*
 * The mapping decision, pure. claimed[0..nclaimed): controls of cw's catalog the evidence
 * claims (NULL entries are skipped). Makes:
 *   - a DIRECT link to each claimed control whose standard is in scope and that is not
 *     excluded;
 *   - along every crosswalk edge (either direction, the relation read from the claimed
 *     control's side) to a control of ANOTHER standard that is in scope and not excluded in
 *     that standard's SoA: AUTOMATIC for a high-strength equivalent-to / equal-to edge,
 *     NEEDS_CONFIRMATION otherwise.
 * One link per control: the best wins (DIRECT, then AUTOMATIC, then NEEDS_CONFIRMATION; then
 * the stronger edge; then catalog order of via). Links come out DIRECT first, then by kind,
 * each kind in catalog order. out has room for out_cap links (assay_crosswalk_links_bound());
 * *nout receives the count. Returns 0, or ASSAY_ERR_FATAL when out_cap is too small.
 */
int assay_crosswalk_map(const struct assay_crosswalk *cw,
                        const struct assay_control *const *claimed, size_t nclaimed,
                        const struct assay_map_scope *scope, struct assay_link *out, size_t out_cap,
                        size_t *nout);

/*
 * Writes the crosswalk as an OSCAL mapping-collection JSON document: one mapping per
 * (source standard, target standard) pair, one map per edge with the relationship token,
 * sources and targets (id-ref: the Annex A id as is, "clause-<id>" for a clause, since OSCAL
 * tokens cannot start with a digit), the rationale as remarks and strength, provenance and
 * the assay references as props. Deterministic UUIDs (name-based) so that the same crosswalk
 * exports the same document; last-modified from now_ms. Returns 0 or ASSAY_ERR_FATAL on a
 * write error.
 */
int assay_crosswalk_write_oscal(const struct assay_crosswalk *cw, FILE *out, int64_t now_ms,
                                char *errstr, size_t errstr_size);

#endif
