/*
 * assay-mapper: links accepted evidence to controls. It consumes assay.evidence.accepted and
 * assay.audit.events (AuditOpened: the standards in scope; SoaSubmitted: the Annex A controls
 * excluded per standard), keeps them in the shared audit projection (assay_audit_projection.h,
 * its own rows of assay_audit_projection per consumer group), and for each
 * accepted evidence item writes its links (assay_mapper_mapped, one row per item; the view
 * mapper_links has one row per link) and publishes ControlMapped on
 * assay.control.mapped:
 *   - DIRECT to each claimed control;
 *   - along crosswalk edges to the OTHER standard, only when that standard is in the audit's
 *     scope and the control is not excluded in its SoA: AUTOMATIC for high-strength
 *     equivalent-to / equal-to edges, NEEDS_CONFIRMATION for every other edge.
 * Evidence whose audit has not been opened yet (the two topics are not ordered against each
 * other) waits in assay_mapper_pending and is mapped when the AuditOpened arrives.
 *
 * The pure parts (reading evidence into plain structs, the scope of a projected audit, the
 * decision) are functions here, unit-tested without Kafka or PostgreSQL; the handler around
 * them stages every change during handle() (the projection's batch, pending evidence) and
 * applies it to memory only in committed().
 */
#ifndef ASSAY_MAPPER_H
#define ASSAY_MAPPER_H

#include "assay_audit_projection.h"
#include "assay_catalog.h"
#include "assay_config.h"
#include "assay_crosswalk.h"
#include "assay_service.h"

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Settings of the service (table mapper_settings). The topic arrays are what the
 * service definition consumes and produces. */
struct mapper_config {
	char *consumes[2]; /* [0] topic.evidence.accepted, [1] topic.audit.events */
	char *produces[1]; /* [0] topic.control.mapped */
};
extern const struct assay_setting mapper_settings[];

#define MAPPER_MAX_CLAIMS 512

/*
 * The mapper's hooks for the shared audit projection (assay_audit_projection.h), over cat
 * (borrowed: must outlive the projection): a standard's handle is its catalog symbol when
 * the catalog has controls for it (ISO27001_2013 has none and gets no handle); an excluded
 * control's handle is its catalog control when it is an Annex A control of that standard.
 */
void mapper_audit_hooks(const struct assay_catalog *cat, struct assay_audits_hooks *hooks);

/* The mapping scope of opened audit a (applied with mapper_audit_hooks): the standards with
 * a handle, copied into standards_buf (room for ASSAY_AUDIT_MAX_STANDARDS); excluded_buf has
 * room for nbuf pointers (the SoAs' exclusions are copied into it, at most nbuf). */
void mapper_audit_scope(const struct assay_audit *a, struct assay_map_scope *scope,
                        const char **standards_buf, const struct assay_control **excluded_buf,
                        size_t nbuf);

/* An accepted evidence item read from an EvidenceAccepted record. Strings point into the
 * record (or into the owner of a copy). */
struct mapper_evidence {
	const char *accepted_event_id, *tenant_id, *audit_id, *client_id, *evidence_id;
	const char *source_system, *kind;
	int64_t collected_at;
	const struct assay_control *claimed[MAPPER_MAX_CLAIMS]; /* catalog controls */
	size_t nclaimed;
	size_t nignored; /* claims of controls the catalog does not know, or repeated */
};

/*
 * Reads EvidenceAccepted v (borrowed) into *ev. Claims of unknown controls are counted in
 * nignored, not refused (assay-intake checked them against the catalog). Returns 0;
 * ASSAY_ERR_REJECT with the reason when a field is missing or there are more than
 * MAPPER_MAX_CLAIMS claims.
 */
int mapper_evidence_read(avro_value_t *v, const struct assay_catalog *cat,
                         struct mapper_evidence *ev, char *errstr, size_t errstr_size);

/*
 * The links of ev for opened audit a (the mapping decision of assay_crosswalk_map() with
 * a's scope and SoA exclusions). out has room for out_cap links. Returns 0 or
 * ASSAY_ERR_FATAL (out_cap too small).
 */
int mapper_links(const struct assay_crosswalk *cw, const struct assay_audit *a,
                 const struct mapper_evidence *ev, struct assay_link *out, size_t out_cap,
                 size_t *nout);

/* The service: handler context with the projection and staged changes. */
struct mapper;

/* The service: name "assay-mapper", topics and settings from mapper_settings, metrics port
 * 9103; its handler context (created by the service main) loads the catalog and crosswalk at
 * init and the projection and waiting evidence after every assignment. */
extern const struct assay_service_def mapper_service;

/*
 * `assay-mapper --export-oscal FILE`: connects to ASSAY_PG_URL (default of the core
 * settings), migrates, loads the catalog and crosswalk and writes the OSCAL mapping
 * collection to FILE ("-" = stdout; NULL: usage on stderr). Returns the exit code (0 ok,
 * 1 failure reported on stderr, 2 usage).
 */
int mapper_export_oscal(const char *file);

#endif
