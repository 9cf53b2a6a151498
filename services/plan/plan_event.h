/*
 * assay-plan's events onto the wire: the event of an applied command or the
 * AuditCommandRefused of a refused one, built as the generated contract structs
 * (contract_<event>.h) from what the rules produced, and encoded as a framed message.
 *
 * Threads: as the struct assay_contracts given (one thread).
 */
#ifndef PLAN_EVENT_H
#define PLAN_EVENT_H

#include "plan_rules.h"
#include "assay_arena.h"
#include "assay_contract.h"

/* Event fields every event carries (borrowed). */
struct plan_event_head {
	const char *event_id;
	const char *tenant_id;
	int64_t occurred_at;
	const char *command_id;
};

/* An encoded event: the frame is buf->data[0..buf->len). */
struct plan_event {
	const char *type; /* the schema's full name ("org.assay.v1.AuditOpened"), static */
	const char *key;  /* the id the event is keyed by (borrowed from res or cmd) */
};

/*
 * Encodes the event of cmd, applied with result res (res->status PLAN_APPLIED), into buf,
 * its type and key into *ev. Arrays of the event are allocated from arena (valid until its
 * reset). Returns 0; ASSAY_ERR_REJECT when the frame exceeds the codec's limit;
 * ASSAY_ERR_FATAL (out of memory, or an entity the event cannot hold: our own bug).
 */
int plan_event_applied(struct assay_contracts *cx, struct assay_arena *arena,
                       const struct plan_cmd *cmd, const struct plan_result *res,
                       const struct plan_event_head *h, struct assay_contract_buf *buf,
                       struct plan_event *ev, char *errstr, size_t errstr_size);

/*
 * Encodes AuditCommandRefused for a command of kind with every reason of res into buf (its
 * type into *ev; ev->key is left NULL: the caller keys a refusal by the command's key).
 * client_id, audit_id and person_id may be NULL. Returns as plan_event_applied.
 */
int plan_event_refused(struct assay_contracts *cx, struct assay_arena *arena, int kind,
                       const char *client_id, const char *audit_id, const char *person_id,
                       const struct plan_result *res, const struct plan_event_head *h,
                       struct assay_contract_buf *buf, struct plan_event *ev, char *errstr,
                       size_t errstr_size);

#endif
