/*
 * Configuration from settings tables.
 *
 * Each module describes its settings in ONE table of struct assay_setting (name, ASSAY_*
 * environment variable, type, default, range, description, offset into the module's config
 * struct). A service adds the core table and its own table(s), each with the struct it fills,
 * then loads once: defaults, then an optional key=value file, then the environment, later
 * sources overriding earlier ones. Every problem found is reported at once. The same tables
 * generate docs/configuration.md (assay_config_write_markdown).
 *
 * librdkafka properties pass through untouched: "kafka.<property>=<value>" lines in the file
 * and ASSAY_KAFKA_PROPERTIES="linger.ms=5,compression.type=lz4" in the environment (which
 * wins for a property set in both); read them back with assay_config_kafka_count/_get.
 *
 * A struct assay_config is used by one thread; after a successful load the filled structs
 * are read-only and may be shared.
 */
#ifndef ASSAY_CONFIG_H
#define ASSAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum assay_setting_type { ASSAY_SETTING_STRING, ASSAY_SETTING_INT, ASSAY_SETTING_BOOL };

/*
 * One setting. A table is an array of these ending with an entry whose name is NULL; that
 * terminating entry may carry a description, used as the table's section title in the
 * generated documentation ("Core settings (every service)").
 */
struct assay_setting {
	const char *name; /* "batch.max.messages": key in the file */
	const char *env;  /* "ASSAY_BATCH_MAX_MESSAGES": environment variable */
	enum assay_setting_type type;
	/* text, parsed like any input; NULL = no default: the setting is required */
	const char *default_value;
	/* inclusive range for INT (use LLONG_MIN/LLONG_MAX for none); ignored otherwise */
	long long min, max;
	/* offsetof into the target struct: char * for STRING (owned by the config), long long
	 * for INT, bool for BOOL */
	size_t offset;
	const char *description; /* one line, no trailing period */
};

/* The runtime's own settings, filled by assay_core_settings (assay_settings.c). Strings are
 * owned by the struct assay_config that loaded them and live until it is destroyed. */
struct assay_core_config {
	char *instance_id; /* never empty after load: "" resolves to the hostname */
	char *group_id;    /* "" = the service name */
	char *brokers;
	char *pg_url;
	char *schema_registry;
	long long batch_max_messages;
	long long batch_max_ms;
	long long relay_interval_ms;
	long long relay_max_events;
	char *deadletter_topic;
	long long message_max_bytes;
	long long transaction_timeout_ms;
	long long retry_backoff_ms;
	long long retry_backoff_max_ms;
	char *metrics_address;
	long long metrics_port; /* 0 = no HTTP endpoint */
	char *log_level;        /* validated by assay_log_level_parse */
	long long shutdown_timeout_ms;
	long long session_timeout_ms;
	long long relay_unready_ms;
};

extern const struct assay_setting assay_core_settings[];

/*
 * The core table's defaults in *core without loading anything: integers parsed from the table,
 * strings pointing into the table (static: never freed or written; instance.id stays "").
 * For tests and tools that build a loop configuration without a configuration source.
 */
void assay_core_config_defaults(struct assay_core_config *core);

struct assay_config;

/* Returns an empty configuration, or NULL when out of memory. */
struct assay_config *assay_config_new(void);

/* Frees the configuration and every string it put into the target structs. NULL is a
 * no-op. */
void assay_config_destroy(struct assay_config *cfg);

/*
 * Registers table (not copied: it must outlive cfg, normally a static const array) filling
 * target (not owned; must outlive the load). Returns 0, or ASSAY_ERR_FATAL for a programming
 * error: NULL argument, a name or environment variable already registered, a malformed entry
 * (missing name/env/description, INT with min > max), after assay_config_load, or out of
 * memory.
 */
int assay_config_add(struct assay_config *cfg, const struct assay_setting *table, void *target);

/*
 * Replaces the default of a registered setting (value copied; NULL makes it required), e.g. a
 * service's own metrics port. File and environment still override it. Returns 0, or
 * ASSAY_ERR_FATAL with the reason in errstr: unknown name, value that does not parse or is out
 * of range, out of memory.
 */
int assay_config_set_default(struct assay_config *cfg, const char *name, const char *value,
                             char *errstr, size_t errstr_size);

/*
 * Loads and validates every registered setting into its target, once per cfg.
 * file (may be NULL: no file) holds "key = value" lines; blank lines and lines whose first
 * non-blank character is '#' are ignored; whitespace around key and value is trimmed; "kafka."
 * keys are librdkafka properties; any other key must be a registered setting name.
 * envp (may be NULL: empty environment; pass `environ` for the process's) is a NULL-terminated
 * "NAME=value" array; a registered variable that is set, even to "", overrides the file.
 * ASSAY_* variables that are not registered are ignored.
 * The core table's instance.id, when empty, becomes the hostname; its log.level must parse.
 * Returns 0, or ASSAY_ERR_FATAL with every problem found, "; "-separated, in errstr (unreadable
 * file, unknown key with its line, bad integer, out of range, bad boolean, missing required
 * setting, malformed kafka property). After a failure the targets may be partly filled; their
 * strings are still owned by cfg.
 */
int assay_config_load(struct assay_config *cfg, const char *file, char *const *envp, char *errstr,
                      size_t errstr_size);

/* Number of librdkafka properties collected by the load (0 for NULL cfg). */
size_t assay_config_kafka_count(const struct assay_config *cfg);

/* The i-th property (i < count) as key (without "kafka.") and value, both owned by cfg.
 * Properties come in first-seen order; a later source replaces a value in place. */
void assay_config_kafka_get(const struct assay_config *cfg, size_t i, const char **key,
                            const char **value);

/*
 * Writes the Markdown reference for the given tables (core first, then each service's, in
 * the order given; ntables may be 0), followed by the file format, precedence and the kafka.
 * passthrough. Output depends only on the tables, so it can be compared with the committed
 * docs/configuration.md. Returns 0, or ASSAY_ERR_FATAL on a write error or NULL out.
 */
int assay_config_write_markdown(FILE *out, const struct assay_setting *const *tables,
                                size_t ntables);

#endif
