/*
 * assay-plan's rules: the audit commands as plain structs, the entities they create, and
 * assay_plan_apply(), which checks a command against the state and either changes the state
 * (applied) or changes nothing and lists EVERY rule it breaks (refused). Sources of the rules:
 * domain-rules §1-§2 and E1, E10-E17, E19, E20 (cited at each check in plan_rules.c).
 *
 * Pure: no I/O; the clock and the control catalog come in through struct assay_plan_rules.
 * Strings in commands are borrowed; entities own theirs (in their arena).
 */
#ifndef ASSAY_PLAN_RULES_H
#define ASSAY_PLAN_RULES_H

#include "plan_state.h"
#include "plan_time.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A calendar date (days since 1970-01-01) that is not set. */
#define ASSAY_PLAN_NO_DATE INT32_MIN

/* Avro enums (same order) */
enum assay_plan_role {
	ASSAY_PLAN_AUDITOR,
	ASSAY_PLAN_LEAD_AUDITOR,
	ASSAY_PLAN_TECHNICAL_EXPERT,
	ASSAY_PLAN_DECISION_MAKER,
	ASSAY_PLAN_NROLES
};
enum assay_plan_relation_kind {
	ASSAY_PLAN_CONSULTANCY,
	ASSAY_PLAN_EMPLOYMENT,
	ASSAY_PLAN_DECLARED_RELATIONSHIP,
	ASSAY_PLAN_NRELATION_KINDS
};
#define ASSAY_PLAN_NAI_ROLES 3 /* AiRole: PROVIDER, PRODUCER, USER (bit i = symbol i) */
#define ASSAY_PLAN_NAI_TIERS 5 /* AiActTier: PROHIBITED ... NOT_ASSESSED */

extern const char *const assay_plan_role_names[ASSAY_PLAN_NROLES];
extern const char *const assay_plan_relation_kind_names[ASSAY_PLAN_NRELATION_KINDS];
extern const char *const assay_plan_ai_role_names[ASSAY_PLAN_NAI_ROLES];
extern const char *const assay_plan_ai_tier_names[ASSAY_PLAN_NAI_TIERS];
extern const char *const assay_plan_integration_names[ASSAY_PLAN_INTEGRATION_ELEMENTS];
/* The symbol's index in names (n entries), or -1. */
int assay_plan_enum_parse(const char *const *names, int n, const char *name);

/* Avro enum AuditRefusalCode */
enum assay_plan_refusal {
	ASSAY_PLAN_WRONG_TENANT,
	ASSAY_PLAN_UNKNOWN_CLIENT,
	ASSAY_PLAN_UNKNOWN_AUDIT,
	ASSAY_PLAN_UNKNOWN_PERSON,
	ASSAY_PLAN_ID_CONFLICT,
	ASSAY_PLAN_AUDIT_CLOSED,
	ASSAY_PLAN_APPLICATION_INCOMPLETE,
	ASSAY_PLAN_INVALID_VALUE,
	ASSAY_PLAN_INVALID_DATES,
	ASSAY_PLAN_NO_STANDARD,
	ASSAY_PLAN_STANDARD_NOT_CURRENT,
	ASSAY_PLAN_STANDARD_NOT_IN_AUDIT,
	ASSAY_PLAN_UNKNOWN_CYCLE,
	ASSAY_PLAN_STAGE1_NOT_COMPLETED,
	ASSAY_PLAN_STAGE_ALREADY_COMPLETED,
	ASSAY_PLAN_NO_COMPETENT_MEMBER,
	ASSAY_PLAN_NOT_COMPETENT,
	ASSAY_PLAN_CONFLICT_OF_INTEREST,
	ASSAY_PLAN_DECISION_MAKER_ON_TEAM,
	ASSAY_PLAN_TEAM_MEMBER_AS_DECISION_MAKER,
	ASSAY_PLAN_SOA_MISSING_CONTROL,
	ASSAY_PLAN_SOA_UNKNOWN_CONTROL,
	ASSAY_PLAN_SOA_DUPLICATE_CONTROL,
	ASSAY_PLAN_MISSING_JUSTIFICATION,
	ASSAY_PLAN_NREFUSALS
};
extern const char *const assay_plan_refusal_names[ASSAY_PLAN_NREFUSALS];

/* ---- entities (also the payload of the commands that create them) ---- */

struct assay_plan_site {
	const char *site_id, *name, *country; /* country may be NULL */
	int32_t persons;
	bool central_function;
};
struct assay_plan_group {
	const char *group_id, *description;
	int32_t persons;
	const char *justification;
};
struct assay_plan_ai_system {
	const char *ai_system_id, *name;
	unsigned roles;               /* bit per AiRole */
	int tier;                     /* AiActTier index */
	const char *intended_purpose; /* may be NULL */
};

struct assay_plan_client {
	struct assay_plan_obj obj;
	const char *client_id, *tenant_id, *legal_name, *command_id;
	int32_t revision; /* 1, 2, ... (entity only) */
	int32_t persons;
	struct assay_plan_site *sites;
	size_t nsites;
	struct assay_plan_group *groups;
	size_t ngroups;
	struct assay_plan_ai_system *ai_systems;
	size_t nai_systems;
};

struct assay_plan_competence {
	int standard, role;
	const char *technical_area;      /* may be NULL */
	int32_t valid_from, valid_until; /* ASSAY_PLAN_NO_DATE: open */
};
struct assay_plan_relation {
	const char *client_id;
	int kind;
	int32_t started_on, ended_on; /* ended_on ASSAY_PLAN_NO_DATE: ongoing */
};
struct assay_plan_person {
	struct assay_plan_obj obj;
	const char *person_id, *tenant_id, *name, *command_id;
	int32_t revision;
	struct assay_plan_competence *competences;
	size_t ncompetences;
	struct assay_plan_relation *relations;
	size_t nrelations;
};

struct assay_plan_scope {
	int standard;
	const char *cycle_id; /* in a command may be NULL; in an entity always set */
	const char *scope_statement;
};
struct assay_plan_audit {
	struct assay_plan_obj obj;
	const char *audit_id, *tenant_id, *client_id, *command_id;
	int audit_type;
	struct assay_plan_scope *scopes;
	size_t nscopes;
	int32_t planned_start, planned_end;
	const char **site_ids;
	size_t nsite_ids;
	bool integration[ASSAY_PLAN_INTEGRATION_ELEMENTS];
	struct assay_plan_adjustment *adjustments;
	size_t nadjustments;
	/* set when opened by this process; NULL/0 for audits loaded from the database */
	const struct assay_plan_ai_system *ai_systems;
	size_t nai_systems;
	const struct assay_plan_time *time;
};

struct assay_plan_member {
	const char *person_id;
	int role;
	unsigned standards; /* bit per enum assay_plan_standard */
};
struct assay_plan_roster {
	struct assay_plan_obj obj;
	const char *audit_id;
	struct assay_plan_member *members;
	size_t nmembers;
};

struct assay_plan_completion {
	struct assay_plan_obj obj;
	const char *audit_id, *command_id;
	int standard;
	int stage;
	int32_t last_day;
};

struct assay_plan_soa_row {
	const char *control_id;
	bool applicable;
	const char *justification;
};
struct assay_plan_soa {
	struct assay_plan_obj obj;
	const char *audit_id, *soa_version, *command_id;
	int standard;
	int32_t revision;
	struct assay_plan_soa_row *rows; /* NULL for SoAs loaded from the database */
	size_t nrows;
	int32_t applicable_count, excluded_count;
};

struct assay_plan_decision_maker {
	const char *person_id, *audit_id, *command_id;
};
struct assay_plan_cycle {
	struct assay_plan_obj obj;
	const char *cycle_id, *client_id;
	int standard;
	int32_t seq;                 /* 1, 2, ... per client and standard */
	int32_t stage1_completed_on; /* ASSAY_PLAN_NO_DATE until a stage 1 is completed */
	const char **audit_ids;      /* audits in this cycle (in memory only) */
	size_t naudits;
	struct assay_plan_decision_maker *dms;
	size_t ndms;
};
struct assay_plan_cycle_index {
	struct assay_plan_obj obj;
	const char *current; /* cycle id of the newest cycle */
	int32_t count;
};

/* ---- commands ---- */

enum assay_plan_cmd_kind {
	ASSAY_PLAN_REGISTER_CLIENT,
	ASSAY_PLAN_RECORD_AUDITOR,
	ASSAY_PLAN_OPEN_AUDIT,
	ASSAY_PLAN_ASSIGN_TEAM_MEMBER,
	ASSAY_PLAN_SUBMIT_SOA,
	ASSAY_PLAN_COMPLETE_STAGE,
	ASSAY_PLAN_RECORD_DECISION_MAKER,
	ASSAY_PLAN_NCMD_KINDS
};
/* "org.assay.v1.RegisterClient", ... */
extern const char *const assay_plan_cmd_names[ASSAY_PLAN_NCMD_KINDS];

struct assay_plan_head {
	const char *command_id, *tenant_id, *issued_by;
	int64_t issued_at; /* ms since the epoch */
};
struct assay_plan_assign {
	const char *audit_id, *person_id;
	int role;
	const int *standards; /* -1 for a symbol this build does not know */
	size_t nstandards;
};
struct assay_plan_submit_soa {
	const char *audit_id;
	int standard;
	const char *soa_version;
	const struct assay_plan_soa_row *rows;
	size_t nrows;
};
struct assay_plan_complete {
	const char *audit_id;
	int stage;
	int32_t last_day;
	const int *standards;
	size_t nstandards;
};
struct assay_plan_record_dm {
	const char *audit_id;
	int standard;
	const char *person_id;
};
struct assay_plan_cmd {
	int kind;
	struct assay_plan_head head;
	union {
		struct assay_plan_client client; /* revision ignored */
		struct assay_plan_person person; /* revision ignored */
		struct assay_plan_audit audit;   /* cycle ids may be NULL; site_ids may be empty */
		struct assay_plan_assign assign;
		struct assay_plan_submit_soa soa;
		struct assay_plan_complete complete;
		struct assay_plan_record_dm dm;
	} u;
};

/* ---- applying ---- */

struct assay_plan_catalog_ops {
	/* The Annex A control ids of standard in catalog order (*ids borrowed, valid while the
	 * catalog lives); returns their count, 0 when the catalog has none. */
	size_t (*annex_a)(void *arg, int standard, const char *const **ids);
	/* Whether the edition may be used for audits on the day of at_ms (E19). */
	bool (*edition_valid)(void *arg, int standard, int64_t at_ms);
	void *arg;
};

struct assay_plan_rules {
	struct assay_plan_time_config time;
	int conflict_months; /* [24] E10, R1.38 */
	struct assay_plan_catalog_ops catalog;
};

/* assay_plan_time_config_default, 24 months; catalog left empty. */
void assay_plan_rules_default(struct assay_plan_rules *r);

enum assay_plan_status {
	ASSAY_PLAN_APPLIED,
	ASSAY_PLAN_REFUSED,
	ASSAY_PLAN_IGNORED /* command id seen before, or a re-sent identical OpenAudit */
};

struct assay_plan_reason {
	int code;                            /* enum assay_plan_refusal */
	char subject[ASSAY_PLAN_ID_MAX + 1]; /* "" when the reason is not about one thing */
	char message[256];
};

/* What one command did. A plain struct: init, then release. */
struct assay_plan_result {
	int status;
	struct assay_plan_reason *reasons; /* owned; REFUSED: at least one */
	size_t nreasons, reasons_cap;
	/* APPLIED: what the event describes (owned by the state; valid until the batch that
	 * replaces them commits) */
	const struct assay_plan_client *client;
	const struct assay_plan_person *person;
	const struct assay_plan_audit *audit;
	const struct assay_plan_member *member;
	const struct assay_plan_soa *soa;
	const char *cycle_id; /* RecordDecisionMaker: the cycle decided */
};
void assay_plan_result_init(struct assay_plan_result *res);
void assay_plan_result_release(struct assay_plan_result *res);

/*
 * Applies cmd to st (inside the caller's batch: assay_plan_state_begin). Sets res->status:
 * APPLIED (state changed, entities in res), REFUSED (nothing changed but the command id being
 * remembered; every broken rule in res->reasons) or IGNORED (nothing changed). Returns 0 or
 * ASSAY_ERR_FATAL (out of memory) with the reason.
 */
int assay_plan_apply(struct assay_plan_state *st, const struct assay_plan_rules *r,
                     const struct assay_plan_cmd *cmd, struct assay_plan_result *res, char *errstr,
                     size_t errstr_size);

/* ---- helpers (pure, exported for tests) ---- */

/* A new entity of size bytes (zeroed, its first member struct assay_plan_obj) in its own
 * arena, or NULL when out of memory. Free it with assay_plan_arena_destroy(e->obj.arena) or
 * hand it to assay_plan_state_put. */
void *assay_plan_entity_new(size_t size);

/* "YYYY-MM-DD" of day into out. */
void assay_plan_date_format(int32_t day, char out[16]);

/* Day (days since 1970-01-01) of ms since the epoch, rounding down. */
int32_t assay_plan_day_of_ms(int64_t ms);
/* day plus months (negative: minus), the day of month clamped to the target month's end. */
int32_t assay_plan_add_months(int32_t day, int months);
/*
 * Whether a relation is a conflict of interest for work on ref_day (E10, R1.38): it has not
 * ended, or it ended less than `months` months before ref_day (ended_on >= ref_day - months).
 */
bool assay_plan_relation_conflicts(const struct assay_plan_relation *rel, int32_t ref_day,
                                   int months);
/* Whether person holds a competence for standard that covers role on every day of
 * [from, to] (AUDITOR is covered by AUDITOR or LEAD_AUDITOR; others by themselves). */
bool assay_plan_competent(const struct assay_plan_person *person, int standard, int role,
                          int32_t from, int32_t to);

#endif
