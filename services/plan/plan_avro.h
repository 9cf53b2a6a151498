/*
 * assay-plan's Avro layer: decoded audit commands (assay.audit.commands) into the plain
 * structs of plan_rules.h, and the events of assay.audit.events from the entities the rules
 * produced. Field names and types are those of the .avsc files in schemas/.
 */
#ifndef PLAN_AVRO_H
#define PLAN_AVRO_H

#include "plan_rules.h"
#include "assay_codec.h"

#include <avro.h>

/* The command kind of a record full name ("org.assay.v1.OpenAudit"), or -1. */
int plan_cmd_kind(const char *full_name);

/*
 * Reads the command record value (of full name full_name) into *cmd. Strings point into value
 * (valid while it lives); arrays are allocated from a (valid until it is destroyed). Returns 0,
 * ASSAY_ERR_REJECT when the record is not a command of this service or a field is missing or
 * of the wrong type (errstr names it), or ASSAY_ERR_FATAL when a runs out of memory.
 */
int plan_decode(avro_value_t *value, const char *full_name, struct plan_arena *a,
                struct plan_cmd *cmd, char *errstr, size_t errstr_size);

/* Event fields every event carries. */
struct plan_event_head {
	const char *event_id;
	const char *tenant_id;
	int64_t occurred_at;
	const char *command_id;
};

/*
 * Fill a fresh value (assay_codec_value_new of the event's schema) with the event for an
 * applied command. Return 0, or ASSAY_ERR_FATAL when the value does not fit the schema (our
 * own bug) or memory runs out.
 */
int plan_encode_client_registered(avro_value_t *v, const struct plan_event_head *h,
                                  const struct plan_client *c);
int plan_encode_auditor_recorded(avro_value_t *v, const struct plan_event_head *h,
                                 const struct plan_person *p);
int plan_encode_audit_opened(avro_value_t *v, const struct plan_event_head *h,
                             const struct plan_audit *a);
int plan_encode_team_member_assigned(avro_value_t *v, const struct plan_event_head *h,
                                     const struct plan_audit *a, const struct plan_member *m);
int plan_encode_soa_submitted(avro_value_t *v, const struct plan_event_head *h,
                              const struct plan_audit *a, const struct plan_soa *s);
int plan_encode_stage_completed(avro_value_t *v, const struct plan_event_head *h,
                                const struct plan_audit *a, const struct plan_complete *c);
int plan_encode_decision_maker_recorded(avro_value_t *v, const struct plan_event_head *h,
                                        const struct plan_audit *a, int standard,
                                        const char *cycle_id, const char *person_id);
/* client_id, audit_id, person_id may be NULL. */
int plan_encode_refused(avro_value_t *v, const struct plan_event_head *h, const char *command_type,
                        const char *client_id, const char *audit_id, const char *person_id,
                        const struct plan_reason *reasons, size_t nreasons);

#endif
