/*
 * The runtime's own settings table: every assay service loads it (into a struct
 * assay_core_config) next to its own table. docs/configuration.md is generated from it; after
 * changing an entry, regenerate the document (see tests/unit/test_config_doc.c).
 */
#include "assay_config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CORE(field) offsetof(struct assay_core_config, field)

const struct assay_setting assay_core_settings[] = {
        {"instance.id", "ASSAY_INSTANCE_ID", ASSAY_SETTING_STRING, "", 0, 0, CORE(instance_id),
         "name of this instance in logs, metrics and transactional ids; empty means the hostname"},
        {"group.id", "ASSAY_GROUP_ID", ASSAY_SETTING_STRING, "", 0, 0, CORE(group_id),
         "consumer group of the service's instances (also keys its stored offsets); empty "
         "means the service name"},
        {"brokers", "ASSAY_KAFKA_BROKERS", ASSAY_SETTING_STRING, "127.0.0.1:19092", 0, 0,
         CORE(brokers), "Kafka bootstrap servers, comma-separated host:port"},
        {"pg.url", "ASSAY_PG_URL", ASSAY_SETTING_STRING, "postgresql://assay@127.0.0.1:15432/assay",
         0, 0, CORE(pg_url), "PostgreSQL connection URI or libpq keyword/value string"},
        {"schema.registry", "ASSAY_SCHEMA_REGISTRY", ASSAY_SETTING_STRING, "builtin", 0, 0,
         CORE(schema_registry),
         "schema registry: \"builtin\" (the assay_schemas table in PostgreSQL); an HTTP "
         "Confluent-compatible backend is not implemented yet"},
        {"batch.max.messages", "ASSAY_BATCH_MAX_MESSAGES", ASSAY_SETTING_INT, "1000", 1, 100000,
         CORE(batch_max_messages), "largest number of messages handled in one batch"},
        {"batch.max.ms", "ASSAY_BATCH_MAX_MS", ASSAY_SETTING_INT, "50", 1, 60000,
         CORE(batch_max_ms), "longest time in milliseconds spent filling one batch"},
        {"relay.interval.ms", "ASSAY_RELAY_INTERVAL_MS", ASSAY_SETTING_INT, "100", 1, 60000,
         CORE(relay_interval_ms),
         "longest time in milliseconds applied events wait before the outbox relay publishes "
         "them in one Kafka transaction"},
        {"relay.unready.ms", "ASSAY_RELAY_UNREADY_MS", ASSAY_SETTING_INT, "30000", 1000, 3600000,
         CORE(relay_unready_ms),
         "once the relay has failed to publish, or applied events have waited to be published, "
         "this many milliseconds, /readyz answers 503 and /healthz says why"},
        {"relay.max.events", "ASSAY_RELAY_MAX_EVENTS", ASSAY_SETTING_INT, "5000", 1, 1000000,
         CORE(relay_max_events),
         "events that make the relay publish before relay.interval.ms; twice this many queued "
         "make the loop wait for the relay"},
        {"deadletter.topic", "ASSAY_DEADLETTER_TOPIC", ASSAY_SETTING_STRING, "assay.deadletter", 0,
         0, CORE(deadletter_topic),
         "topic that receives undecodable and rule-breaking messages with their original bytes"},
        {"message.max.bytes", "ASSAY_MESSAGE_MAX_BYTES", ASSAY_SETTING_INT, "1048576", 1024,
         104857600, CORE(message_max_bytes),
         "largest message value in bytes accepted for decoding; larger ones are dead-lettered"},
        {"transaction.timeout.ms", "ASSAY_TRANSACTION_TIMEOUT_MS", ASSAY_SETTING_INT, "30000", 1000,
         900000, CORE(transaction_timeout_ms),
         "Kafka producer transaction timeout in milliseconds"},
        {"retry.backoff.ms", "ASSAY_RETRY_BACKOFF_MS", ASSAY_SETTING_INT, "100", 1, 60000,
         CORE(retry_backoff_ms),
         "first wait in milliseconds before retrying after a transient failure"},
        {"retry.backoff.max.ms", "ASSAY_RETRY_BACKOFF_MAX_MS", ASSAY_SETTING_INT, "5000", 1, 600000,
         CORE(retry_backoff_max_ms),
         "longest wait in milliseconds between retries (the backoff doubles up to this); at least "
         "retry.backoff.ms"},
        {"metrics.address", "ASSAY_METRICS_ADDRESS", ASSAY_SETTING_STRING, "127.0.0.1", 0, 0,
         CORE(metrics_address),
         "numeric IP address the /metrics, /healthz and /readyz endpoint binds to"},
        {"metrics.port", "ASSAY_METRICS_PORT", ASSAY_SETTING_INT, "0", 0, 65535, CORE(metrics_port),
         "TCP port of the /metrics, /healthz and /readyz endpoint; 0 disables it. Each service "
         "replaces the default with its own port: assay-plan 9101, assay-intake 9102, "
         "assay-mapper 9103, assay-risk 9104 (`--config-doc` shows the service's)"},
        {"log.level", "ASSAY_LOG_LEVEL", ASSAY_SETTING_STRING, "info", 0, 0, CORE(log_level),
         "lowest level logged: debug, info, warn or error"},
        {"session.timeout.ms", "ASSAY_SESSION_TIMEOUT_MS", ASSAY_SETTING_INT, "15000", 1000,
         1800000, CORE(session_timeout_ms),
         "consumer group session timeout in milliseconds: how long the partitions of an "
         "instance that stopped or died wait before another instance takes them (a restart "
         "with the same instance.id takes them back at once); within the broker's "
         "group.min/max.session.timeout.ms"},
        {"shutdown.timeout.ms", "ASSAY_SHUTDOWN_TIMEOUT_MS", ASSAY_SETTING_INT, "10000", 0, 3600000,
         CORE(shutdown_timeout_ms),
         "longest time in milliseconds to finish the batch and flush after SIGTERM"},
        {.description = "Core settings (every service)"},
};

void assay_core_config_defaults(struct assay_core_config *core)
{
	memset(core, 0, sizeof(*core));
	for (const struct assay_setting *s = assay_core_settings; s->name != NULL; s++) {
		char *field = (char *)core + s->offset;

		if (s->type == ASSAY_SETTING_INT) {
			long long v = strtoll(s->default_value, NULL, 10);

			memcpy(field, &v, sizeof(v));
		} else if (s->type == ASSAY_SETTING_STRING) {
			/* the struct's strings are char * for the loaded case; these are read-only
			 */
			char *v = (char *)(uintptr_t)s->default_value;

			memcpy(field, &v, sizeof(v));
		}
	}
}
