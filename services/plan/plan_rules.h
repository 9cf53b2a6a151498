/*
 * assay-plan's rules: the audit commands as plain structs, the entities they create, and
 * plan_apply(), which checks a command against the state and either changes the state
 * (applied) or changes nothing and lists EVERY rule it breaks (refused). Sources of the rules:
 * domain-rules §1-§2 and E1, E10-E17, E19, E20 (cited at each check in plan_rules.c).
 *
 * Pure: no I/O; the clock and the control catalog come in through struct plan_rules.
 * Strings in commands are borrowed; entities own theirs (in their arena).
 */
#ifndef PLAN_RULES_H
#define PLAN_RULES_H

#include "plan_state.h"
#include "plan_time.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A calendar date (days since 1970-01-01) that is not set. */
#define PLAN_NO_DATE INT32_MIN

/* Avro enums (same order) */
enum plan_role {
	PLAN_AUDITOR,
	PLAN_LEAD_AUDITOR,
	PLAN_TECHNICAL_EXPERT,
	PLAN_DECISION_MAKER,
	PLAN_NROLES
};
enum plan_relation_kind {
	PLAN_CONSULTANCY,
	PLAN_EMPLOYMENT,
	PLAN_DECLARED_RELATIONSHIP,
	PLAN_NRELATION_KINDS
};
#define PLAN_NAI_ROLES 3 /* AiRole: PROVIDER, PRODUCER, USER (bit i = symbol i) */
#define PLAN_NAI_TIERS 5 /* AiActTier: PROHIBITED ... NOT_ASSESSED */

extern const char *const plan_role_names[PLAN_NROLES];
extern const char *const plan_relation_kind_names[PLAN_NRELATION_KINDS];
extern const char *const plan_ai_role_names[PLAN_NAI_ROLES];
extern const char *const plan_ai_tier_names[PLAN_NAI_TIERS];
extern const char *const plan_integration_names[PLAN_INTEGRATION_ELEMENTS];
/* The symbol's index in names (n entries), or -1. */
int plan_enum_parse(const char *const *names, int n, const char *name);

/* Avro enum AuditRefusalCode */
enum plan_refusal {
	PLAN_WRONG_TENANT,
	PLAN_UNKNOWN_CLIENT,
	PLAN_UNKNOWN_AUDIT,
	PLAN_UNKNOWN_PERSON,
	PLAN_ID_CONFLICT,
	PLAN_AUDIT_CLOSED,
	PLAN_APPLICATION_INCOMPLETE,
	PLAN_INVALID_VALUE,
	PLAN_INVALID_DATES,
	PLAN_NO_STANDARD,
	PLAN_STANDARD_NOT_CURRENT,
	PLAN_STANDARD_NOT_IN_AUDIT,
	PLAN_UNKNOWN_CYCLE,
	PLAN_STAGE1_NOT_COMPLETED,
	PLAN_STAGE_ALREADY_COMPLETED,
	PLAN_NO_COMPETENT_MEMBER,
	PLAN_NOT_COMPETENT,
	PLAN_CONFLICT_OF_INTEREST,
	PLAN_DECISION_MAKER_ON_TEAM,
	PLAN_TEAM_MEMBER_AS_DECISION_MAKER,
	PLAN_SOA_MISSING_CONTROL,
	PLAN_SOA_UNKNOWN_CONTROL,
	PLAN_SOA_DUPLICATE_CONTROL,
	PLAN_MISSING_JUSTIFICATION,
	PLAN_NREFUSALS
};
extern const char *const plan_refusal_names[PLAN_NREFUSALS];

/* ---- entities (also the payload of the commands that create them) ---- */

struct plan_site {
	const char *site_id, *name, *country; /* country may be NULL */
	int32_t persons;
	bool central_function;
};
struct plan_group {
	const char *group_id, *description;
	int32_t persons;
	const char *justification;
};
struct plan_ai_system {
	const char *ai_system_id, *name;
	unsigned roles;               /* bit per AiRole */
	int tier;                     /* AiActTier index */
	const char *intended_purpose; /* may be NULL */
};

struct plan_client {
	struct plan_obj obj;
	const char *client_id, *tenant_id, *legal_name, *command_id;
	int32_t revision; /* 1, 2, ... (entity only) */
	int32_t persons;
	struct plan_site *sites;
	size_t nsites;
	struct plan_group *groups;
	size_t ngroups;
	struct plan_ai_system *ai_systems;
	size_t nai_systems;
};

struct plan_competence {
	int standard, role;
	const char *technical_area;      /* may be NULL */
	int32_t valid_from, valid_until; /* PLAN_NO_DATE: open */
};
struct plan_relation {
	const char *client_id;
	int kind;
	int32_t started_on, ended_on; /* ended_on PLAN_NO_DATE: ongoing */
};
struct plan_person {
	struct plan_obj obj;
	const char *person_id, *tenant_id, *name, *command_id;
	int32_t revision;
	struct plan_competence *competences;
	size_t ncompetences;
	struct plan_relation *relations;
	size_t nrelations;
};

struct plan_scope {
	int standard;
	const char *cycle_id; /* in a command may be NULL; in an entity always set */
	const char *scope_statement;
};
struct plan_audit {
	struct plan_obj obj;
	const char *audit_id, *tenant_id, *client_id, *command_id;
	int audit_type;
	struct plan_scope *scopes;
	size_t nscopes;
	int32_t planned_start, planned_end;
	const char **site_ids;
	size_t nsite_ids;
	bool integration[PLAN_INTEGRATION_ELEMENTS];
	struct plan_adjustment *adjustments;
	size_t nadjustments;
	/* set when opened by this process; NULL/0 for audits loaded from the database */
	const struct plan_ai_system *ai_systems;
	size_t nai_systems;
	const struct plan_time *time;
};

struct plan_member {
	const char *person_id;
	int role;
	unsigned standards; /* bit per enum plan_standard */
};
struct plan_roster {
	struct plan_obj obj;
	const char *audit_id;
	struct plan_member *members;
	size_t nmembers;
};

struct plan_completion {
	struct plan_obj obj;
	const char *audit_id, *command_id;
	int standard;
	int stage;
	int32_t last_day;
};

struct plan_soa_row {
	const char *control_id;
	bool applicable;
	const char *justification;
};
struct plan_soa {
	struct plan_obj obj;
	const char *audit_id, *soa_version, *command_id;
	int standard;
	int32_t revision;
	struct plan_soa_row *rows; /* NULL for SoAs loaded from the database */
	size_t nrows;
	int32_t applicable_count, excluded_count;
};

struct plan_decision_maker {
	const char *person_id, *audit_id, *command_id;
};
struct plan_cycle {
	struct plan_obj obj;
	const char *cycle_id, *client_id;
	int standard;
	int32_t seq;                 /* 1, 2, ... per client and standard */
	int32_t stage1_completed_on; /* PLAN_NO_DATE until a stage 1 is completed */
	const char **audit_ids;      /* audits in this cycle (in memory only) */
	size_t naudits;
	struct plan_decision_maker *dms;
	size_t ndms;
};
struct plan_cycle_index {
	struct plan_obj obj;
	const char *current; /* cycle id of the newest cycle */
	int32_t count;
};

/* ---- commands ---- */

enum plan_cmd_kind {
	PLAN_REGISTER_CLIENT,
	PLAN_RECORD_AUDITOR,
	PLAN_OPEN_AUDIT,
	PLAN_ASSIGN_TEAM_MEMBER,
	PLAN_SUBMIT_SOA,
	PLAN_COMPLETE_STAGE,
	PLAN_RECORD_DECISION_MAKER,
	PLAN_NCMD_KINDS
};
/* "org.assay.v1.RegisterClient", ... */
extern const char *const plan_cmd_names[PLAN_NCMD_KINDS];

struct plan_head {
	const char *command_id, *tenant_id, *issued_by;
	int64_t issued_at; /* ms since the epoch */
};
struct plan_assign {
	const char *audit_id, *person_id;
	int role;
	const int *standards; /* -1 for a symbol this build does not know */
	size_t nstandards;
};
struct plan_submit_soa {
	const char *audit_id;
	int standard;
	const char *soa_version;
	const struct plan_soa_row *rows;
	size_t nrows;
};
struct plan_complete {
	const char *audit_id;
	int stage;
	int32_t last_day;
	const int *standards;
	size_t nstandards;
};
struct plan_record_dm {
	const char *audit_id;
	int standard;
	const char *person_id;
};
struct plan_cmd {
	int kind;
	struct plan_head head;
	union {
		struct plan_client client; /* revision ignored */
		struct plan_person person; /* revision ignored */
		struct plan_audit audit;   /* cycle ids may be NULL; site_ids may be empty */
		struct plan_assign assign;
		struct plan_submit_soa soa;
		struct plan_complete complete;
		struct plan_record_dm dm;
	} u;
};

/* ---- applying ---- */

struct plan_catalog_ops {
	/* The Annex A control ids of standard in catalog order (*ids borrowed, valid while the
	 * catalog lives); returns their count, 0 when the catalog has none. */
	size_t (*annex_a)(void *arg, int standard, const char *const **ids);
	/* Whether the edition may be used for audits on the day of at_ms (E19). */
	bool (*edition_valid)(void *arg, int standard, int64_t at_ms);
	void *arg;
};

struct plan_rules {
	struct plan_time_config time;
	int conflict_months; /* [24] E10, R1.38 */
	struct plan_catalog_ops catalog;
};

/* plan_time_config_default, 24 months; catalog left empty. */
void plan_rules_default(struct plan_rules *r);

enum plan_status {
	PLAN_APPLIED,
	PLAN_REFUSED,
	PLAN_IGNORED /* command id seen before, or a re-sent identical OpenAudit */
};

struct plan_reason {
	int code;                      /* enum plan_refusal */
	char subject[PLAN_ID_MAX + 1]; /* "" when the reason is not about one thing */
	char message[256];
};

/* What one command did. A plain struct: init, then release. */
struct plan_result {
	int status;
	struct plan_reason *reasons; /* owned; REFUSED: at least one */
	size_t nreasons, reasons_cap;
	/* APPLIED: what the event describes (owned by the state; valid until the batch that
	 * replaces them commits) */
	const struct plan_client *client;
	const struct plan_person *person;
	const struct plan_audit *audit;
	const struct plan_member *member;
	const struct plan_soa *soa;
	const char *cycle_id; /* RecordDecisionMaker: the cycle decided */
};
void plan_result_init(struct plan_result *res);
void plan_result_release(struct plan_result *res);

/*
 * Applies cmd to st (inside the caller's batch: plan_state_begin). Sets res->status:
 * APPLIED (state changed, entities in res), REFUSED (nothing changed but the command id being
 * remembered; every broken rule in res->reasons) or IGNORED (nothing changed). Returns 0 or
 * ASSAY_ERR_FATAL (out of memory) with the reason.
 */
int plan_apply(struct plan_state *st, const struct plan_rules *r, const struct plan_cmd *cmd,
               struct plan_result *res, char *errstr, size_t errstr_size);

/* ---- helpers (pure, exported for tests) ---- */

/* A new entity of size bytes (zeroed, its first member struct plan_obj) in its own
 * arena, or NULL when out of memory. Free it with plan_arena_destroy(e->obj.arena) or
 * hand it to plan_state_put. */
void *plan_entity_new(size_t size);

/* "YYYY-MM-DD" of day into out. */
void plan_date_format(int32_t day, char out[16]);

/* Day (days since 1970-01-01) of ms since the epoch, rounding down. */
int32_t plan_day_of_ms(int64_t ms);
/* day plus months (negative: minus), the day of month clamped to the target month's end. */
int32_t plan_add_months(int32_t day, int months);
/*
 * Whether a relation is a conflict of interest for work on ref_day (E10, R1.38): it has not
 * ended, or it ended less than `months` months before ref_day (ended_on >= ref_day - months).
 */
bool plan_relation_conflicts(const struct plan_relation *rel, int32_t ref_day, int months);
/* Whether person holds a competence for standard that covers role on every day of
 * [from, to] (AUDITOR is covered by AUDITOR or LEAD_AUDITOR; others by themselves). */
bool plan_competent(const struct plan_person *person, int standard, int role, int32_t from,
                    int32_t to);

#endif
