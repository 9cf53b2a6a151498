/*
 * Internals of the audit projection shared by assay_audit_projection.c (events, batch,
 * queries) and assay_audit_projection_db.c (its tables). Not for the services.
 *
 * Ownership: as in assay_audit_projection.h; aap_audit_new/aap_soa_build return owned
 * objects the caller frees with aap_audit_free/aap_soa_free (or hands to a map).
 */
#ifndef ASSAY_AUDIT_PROJECTION_INT_H
#define ASSAY_AUDIT_PROJECTION_INT_H

#include "assay_audit_projection.h"
#include "assay_pg.h"
#include "assay_strmap.h"

struct assay_audits {
	struct assay_audits_hooks hooks;
	struct assay_strmap committed;
	struct assay_strmap overlay;
	struct assay_audit **order; /* overlay entries in the order they first changed */
	size_t norder, order_cap;
	struct assay_pipeline pipe;
};

struct assay_audit *aap_audit_new(const char *audit_id, const char *tenant_id,
                                  const char *client_id);
void aap_audit_free(struct assay_audit *au);
void aap_soa_free(struct assay_audit_soa *soa);
/* Copies the distinct standards into out (*nout); ASSAY_ERR_REJECT when one is too long or
 * there are more than ASSAY_AUDIT_MAX_STANDARDS. */
int aap_check_standards(const char *const *standards, size_t n,
                        char (*out)[ASSAY_AUDIT_STANDARD_LEN], size_t *nout);
/* closed = opened and every standard completed */
void aap_update_closed(struct assay_audit *au);
/* the hooks' handle of a standard symbol, or NULL */
const void *aap_standard_ref(const struct assay_audits *p, const char *symbol);
/* A SoA of n rows (sorted; a control listed twice: the last row wins; excluded handles from
 * the hooks), NULL when out of memory. */
struct assay_audit_soa *aap_soa_build(const struct assay_audits *p, const void *std_ref,
                                      int32_t revision, const char *const *ids,
                                      const bool *applicable, size_t n);

#endif
