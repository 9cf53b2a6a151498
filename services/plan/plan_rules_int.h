/*
 * Internal to the rules of assay-plan (plan_rules*.c): the helpers every command family
 * shares (reasons, entity copies, lookups) and each family's check and apply functions,
 * which plan_apply (plan_rules.c) dispatches to. plan_check_* add every broken rule to res
 * and return 0 or ASSAY_ERR_FATAL (out of memory); plan_apply_* change the state (errstr set
 * on failure). Not for use outside services/plan.
 */
#ifndef PLAN_RULES_INT_H
#define PLAN_RULES_INT_H

#include "plan_rules.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLAN_ADUP(a, s) plan_arena_strdup((a), (s))

/* What a resolved scope needs beyond the command: its cycle. */
struct plan_scope_plan {
	const char *cycle_id; /* borrowed or in buf */
	char buf[PLAN_KEY_MAX];
	bool new_cycle;
	int32_t seq;
};

int plan_refuse(struct plan_result *res, int code, const char *subject, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* reasons, entity copies, lookups (plan_rules.c) */
int plan_check_id(struct plan_result *res, const char *what, const char *id);
bool plan_blank(const char *s);
const char *plan_std_name(int standard);
int plan_check_standard_current(const struct plan_rules *r, struct plan_result *res, int standard,
                                const int64_t *at_ms, size_t nat);
int plan_check_tenant(struct plan_result *res, const char *what, const char *id,
                      const char *entity_tenant, const char *cmd_tenant);
void plan_entity_free(void *e);
int plan_store(struct plan_state *st, enum plan_map m, const char *key, void *e, char *errstr,
               size_t errstr_size);
void *plan_arr_dup(struct plan_arena *a, const void *p, size_t n, size_t size);
struct plan_client *plan_client_copy(const struct plan_client *c);
struct plan_person *plan_person_copy(const struct plan_person *p);
struct plan_cycle *plan_cycle_copy(const struct plan_cycle *c, size_t extra_audits,
                                   size_t extra_dms);
const struct plan_cycle *plan_cycle_get(const struct plan_state *st, const char *id);
const struct plan_roster *plan_roster_get(const struct plan_state *st, const char *audit_id);
const struct plan_member *plan_roster_find(const struct plan_roster *ro, const char *person_id);
const struct plan_completion *plan_completion_get(const struct plan_state *st, const char *audit_id,
                                                  int standard);
const struct plan_scope *plan_audit_scope(const struct plan_audit *au, int standard);
/* The scope of standard s, named by a command, in audit au, the first time the command names
 * it (*seen: the standards named so far). NULL with *err set when s is unknown or au does not
 * cover it (refused), NULL with *err unchanged when the command named s before. */
const struct plan_scope *plan_command_scope(const struct plan_audit *au, int s, unsigned *seen,
                                            struct plan_result *res, int *err);
bool plan_audit_closed(const struct plan_state *st, const struct plan_audit *au);
bool plan_cycle_has_dm(const struct plan_cycle *cy, const char *person_id);
bool plan_cycle_has_member(const struct plan_state *st, const struct plan_cycle *cy,
                           const char *person_id);
const struct plan_audit *plan_audit_for(const struct plan_state *st, const struct plan_cmd *cmd,
                                        const char *audit_id, struct plan_result *res, int *err);

/* RegisterClient, RecordAuditor (plan_rules_party.c) */
int plan_check_register_client(const struct plan_state *st, const struct plan_cmd *cmd,
                               struct plan_result *res);
int plan_apply_register_client(struct plan_state *st, const struct plan_cmd *cmd,
                               struct plan_result *res, char *errstr, size_t errstr_size);
int plan_check_record_auditor(const struct plan_state *st, const struct plan_cmd *cmd,
                              struct plan_result *res);
int plan_apply_record_auditor(struct plan_state *st, const struct plan_cmd *cmd,
                              struct plan_result *res, char *errstr, size_t errstr_size);

/* OpenAudit (plan_rules_audit.c) */
bool plan_same_audit(const struct plan_audit *a, const struct plan_cmd *cmd);
int plan_check_open_audit(const struct plan_state *st, const struct plan_rules *r,
                          const struct plan_cmd *cmd, const struct plan_client **cl,
                          struct plan_scope_plan *plans, struct plan_result *res);
int plan_apply_open_audit(struct plan_state *st, const struct plan_rules *r,
                          const struct plan_cmd *cmd, const struct plan_client *c,
                          const struct plan_scope_plan *plans, struct plan_result *res,
                          char *errstr, size_t errstr_size);

/* AssignTeamMember, RecordDecisionMaker (plan_rules_team.c) */
int plan_check_assign(const struct plan_state *st, const struct plan_rules *r,
                      const struct plan_cmd *cmd, struct plan_result *res);
int plan_apply_assign(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                      char *errstr, size_t errstr_size);
int plan_check_dm(const struct plan_state *st, const struct plan_rules *r,
                  const struct plan_cmd *cmd, struct plan_result *res);
int plan_apply_dm(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                  char *errstr, size_t errstr_size);

/* SubmitSoa, CompleteStage (plan_rules_stage.c) */
int plan_check_soa(const struct plan_state *st, const struct plan_rules *r,
                   const struct plan_cmd *cmd, struct plan_result *res);
int plan_apply_soa(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                   char *errstr, size_t errstr_size);
int plan_check_complete(const struct plan_state *st, const struct plan_cmd *cmd,
                        struct plan_result *res);
int plan_apply_complete(struct plan_state *st, const struct plan_cmd *cmd, struct plan_result *res,
                        char *errstr, size_t errstr_size);

#endif
