/*
 * Configuration: core defaults, file and environment precedence, kafka.* passthrough from
 * both, service tables with required strings and booleans, overridden defaults, and
 * validation that reports every problem at once (with file line numbers).
 */
#include "assay_test.h"
#include "assay_config.h"
#include "assay_err.h"
#include "assay_loop.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct svc_config {
	char *table_name;
	long long workers;
	bool dry_run;
	char *label;
};

static const struct assay_setting svc_settings[] = {
        {"svc.table", "ASSAY_SVC_TABLE", ASSAY_SETTING_STRING, NULL, 0, 0,
         offsetof(struct svc_config, table_name), "table to write (required)"},
        {"svc.workers", "ASSAY_SVC_WORKERS", ASSAY_SETTING_INT, "2", 1, 8,
         offsetof(struct svc_config, workers), "worker count"},
        {"svc.dry.run", "ASSAY_SVC_DRY_RUN", ASSAY_SETTING_BOOL, "false", 0, 0,
         offsetof(struct svc_config, dry_run), "do not write"},
        {"svc.label", "ASSAY_SVC_LABEL", ASSAY_SETTING_STRING, "", 0, 0,
         offsetof(struct svc_config, label), "free text, may be empty"},
        {.description = "Test service"},
};

/* Writes text to a fresh temporary file; path returned in buf. */
static void write_file(char *buf, size_t size, const char *text)
{
	FILE *fp;
	int fd;

	snprintf(buf, size, "/tmp/assay_test_config_XXXXXX");
	fd = mkstemp(buf);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void test_core_defaults(void **state)
{
	struct assay_config *cfg = assay_config_new();
	struct assay_core_config core;
	char host[256] = "", err[512];

	(void)state;
	memset(&core, 0, sizeof(core));
	assert_int_equal(assay_config_add(cfg, assay_core_settings, &core), 0);
	assert_int_equal(assay_config_load(cfg, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(core.instance_id, host);
	assert_string_equal(core.brokers, "127.0.0.1:19092");
	assert_string_equal(core.pg_url, "postgresql://assay@127.0.0.1:15432/assay");
	assert_string_equal(core.schema_registry, "builtin");
	assert_int_equal(core.batch_max_messages, 1000);
	assert_int_equal(core.batch_max_ms, 50);
	assert_int_equal(core.message_max_bytes, 1048576);
	assert_int_equal(core.transaction_timeout_ms, 30000);
	assert_int_equal(core.retry_backoff_ms, 100);
	assert_int_equal(core.retry_backoff_max_ms, 5000);
	assert_string_equal(core.metrics_address, "127.0.0.1");
	assert_int_equal(core.metrics_port, 0);
	assert_string_equal(core.log_level, "info");
	assert_int_equal(core.shutdown_timeout_ms, 10000);
	assert_int_equal(assay_config_kafka_count(cfg), 0);
	/* once only */
	assert_int_equal(assay_config_load(cfg, NULL, NULL, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "already loaded"));
	assay_config_destroy(cfg);
	assay_config_destroy(NULL);
}

static void test_file_then_environment(void **state)
{
	struct assay_config *cfg = assay_config_new();
	struct assay_core_config core;
	struct svc_config svc;
	char path[64], err[512];
	const char *key, *value;
	char *envp[] = {
	        "PATH=/usr/bin",
	        "ASSAY_BATCH_MAX_MS=7",
	        "ASSAY_SVC_DRY_RUN=YES",
	        "ASSAY_SVC_LABEL=",
	        "ASSAY_NOT_A_SETTING=whatever",
	        "ASSAY_KAFKA_PROPERTIES= linger.ms = 9 ,, compression.type=lz4",
	        "NOEQUALS",
	        NULL,
	};

	(void)state;
	memset(&core, 0, sizeof(core));
	memset(&svc, 0, sizeof(svc));
	write_file(path, sizeof(path),
	           "# assay test\n"
	           "\n"
	           "   batch.max.messages =  500  \n"
	           "batch.max.ms=5\n"
	           "instance.id = node-a\r\n"
	           "svc.table = readings\n"
	           "svc.label = from file\n"
	           "svc.workers = 3\n"
	           "svc.workers = 4\n"
	           "kafka.linger.ms = 1\n"
	           "kafka.acks=all\n"
	           "  # indented comment\n"
	           "pg.url = host=/tmp dbname=x\n");
	assert_int_equal(assay_config_add(cfg, assay_core_settings, &core), 0);
	assert_int_equal(assay_config_add(cfg, svc_settings, &svc), 0);
	assert_int_equal(assay_config_load(cfg, path, envp, err, sizeof(err)), 0);
	assert_int_equal(core.batch_max_messages, 500); /* file over default */
	assert_int_equal(core.batch_max_ms, 7);         /* environment over file */
	assert_string_equal(core.instance_id, "node-a");
	assert_string_equal(core.pg_url, "host=/tmp dbname=x");
	assert_string_equal(svc.table_name, "readings");
	assert_int_equal(svc.workers, 4); /* last line wins */
	assert_true(svc.dry_run);
	assert_string_equal(svc.label, ""); /* set but empty still overrides */
	assert_int_equal(assay_config_kafka_count(cfg), 3);
	assay_config_kafka_get(cfg, 0, &key, &value);
	assert_string_equal(key, "linger.ms");
	assert_string_equal(value, "9"); /* environment replaced it in place */
	assay_config_kafka_get(cfg, 1, &key, &value);
	assert_string_equal(key, "acks");
	assert_string_equal(value, "all");
	assay_config_kafka_get(cfg, 2, &key, &value);
	assert_string_equal(key, "compression.type");
	assert_string_equal(value, "lz4");
	assay_config_kafka_get(cfg, 3, &key, &value);
	assert_null(key);
	unlink(path);
	assay_config_destroy(cfg);
}

static void test_every_problem_reported(void **state)
{
	struct assay_config *cfg = assay_config_new();
	struct assay_core_config core;
	struct svc_config svc;
	char path[64], err[2048];
	char *envp[] = {
	        "ASSAY_METRICS_PORT=65536",
	        "ASSAY_SVC_DRY_RUN=maybe",
	        "ASSAY_LOG_LEVEL=loud",
	        "ASSAY_KAFKA_PROPERTIES=linger.ms=5,oops,=x",
	        NULL,
	};

	(void)state;
	memset(&core, 0, sizeof(core));
	memset(&svc, 0, sizeof(svc));
	write_file(path, sizeof(path),
	           "batch.max.messages = 12abc\n"
	           "\n"
	           "bach.max.ms = 5\n"
	           "no equals sign here\n"
	           "batch.max.ms = 0\n"
	           "retry.backoff.ms = 6000\n"
	           "retry.backoff.max.ms = 5000\n"
	           "message.max.bytes = 99999999999999999999999\n"
	           "kafka. = 1\n");
	assert_int_equal(assay_config_add(cfg, assay_core_settings, &core), 0);
	assert_int_equal(assay_config_add(cfg, svc_settings, &svc), 0);
	assert_int_equal(assay_config_load(cfg, path, envp, err, sizeof(err)), ASSAY_ERR_FATAL);
	print_message("errstr: %s\n", err);
	assert_non_null(strstr(err, ":3: unknown setting \"bach.max.ms\""));
	assert_non_null(strstr(err, ":4: expected key=value"));
	assert_non_null(strstr(err, ":9: empty kafka property name"));
	assert_non_null(strstr(err, "batch.max.messages: \"12abc\" is not an integer (from "));
	assert_non_null(strstr(err, "batch.max.ms: 0 is out of range 1..60000 (from "));
	assert_non_null(strstr(err, "message.max.bytes: \"99999999999999999999999\" is not an "
	                            "integer"));
	assert_non_null(strstr(err, "metrics.port: 65536 is out of range 0..65535 (from "
	                            "ASSAY_METRICS_PORT)"));
	assert_non_null(strstr(err, "svc.dry.run: \"maybe\" is not a boolean"));
	assert_non_null(strstr(err, "svc.table: missing required setting"));
	assert_non_null(strstr(err, "log.level: \"loud\" is not a level"));
	assert_non_null(strstr(err, "retry.backoff.max.ms: 5000 is below retry.backoff.ms 6000"));
	assert_non_null(
	        strstr(err, "ASSAY_KAFKA_PROPERTIES: expected property=value, got \"oops\""));
	assert_non_null(strstr(err, "got \"=x\""));
	unlink(path);
	assay_config_destroy(cfg);
}

static void test_integer_and_boolean_syntax(void **state)
{
	static const char *const bad_ints[] = {"", " 5", "5 ", "0x10", "1e3", "+", "-", "3.0"};
	static const char *const good_bools[] = {"true", "1", "yes", "on", "TRUE", "On"};
	static const char *const false_bools[] = {"false", "0", "no", "off", "False"};
	char env_int[64], env_bool[64], err[512];
	char *envp[3] = {env_int, env_bool, NULL};
	struct svc_config svc;
	struct assay_config *cfg;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_ints) / sizeof(bad_ints[0]); i++) {
		cfg = assay_config_new();
		snprintf(env_int, sizeof(env_int), "ASSAY_SVC_WORKERS=%s", bad_ints[i]);
		snprintf(env_bool, sizeof(env_bool), "ASSAY_SVC_TABLE=t");
		assert_int_equal(assay_config_add(cfg, svc_settings, &svc), 0);
		assert_int_equal(assay_config_load(cfg, NULL, envp, err, sizeof(err)),
		                 ASSAY_ERR_FATAL);
		assert_non_null(strstr(err, "is not an integer"));
		assay_config_destroy(cfg);
	}
	for (i = 0; i < sizeof(good_bools) / sizeof(good_bools[0]); i++) {
		cfg = assay_config_new();
		snprintf(env_int, sizeof(env_int), "ASSAY_SVC_WORKERS=+8");
		snprintf(env_bool, sizeof(env_bool), "ASSAY_SVC_DRY_RUN=%s", good_bools[i]);
		assert_int_equal(assay_config_add(cfg, svc_settings, &svc), 0);
		assert_int_equal(assay_config_set_default(cfg, "svc.table", "t", err, sizeof(err)),
		                 0);
		svc.dry_run = false;
		assert_int_equal(assay_config_load(cfg, NULL, envp, err, sizeof(err)), 0);
		assert_true(svc.dry_run);
		assert_int_equal(svc.workers, 8);
		assay_config_destroy(cfg);
	}
	for (i = 0; i < sizeof(false_bools) / sizeof(false_bools[0]); i++) {
		cfg = assay_config_new();
		snprintf(env_int, sizeof(env_int), "ASSAY_SVC_TABLE=t");
		snprintf(env_bool, sizeof(env_bool), "ASSAY_SVC_DRY_RUN=%s", false_bools[i]);
		assert_int_equal(assay_config_add(cfg, svc_settings, &svc), 0);
		svc.dry_run = true;
		assert_int_equal(assay_config_load(cfg, NULL, envp, err, sizeof(err)), 0);
		assert_false(svc.dry_run);
		assay_config_destroy(cfg);
	}
}

static void test_set_default(void **state)
{
	struct assay_config *cfg = assay_config_new();
	struct assay_core_config core;
	char path[64], err[512];

	(void)state;
	memset(&core, 0, sizeof(core));
	assert_int_equal(assay_config_add(cfg, assay_core_settings, &core), 0);
	assert_int_equal(assay_config_set_default(cfg, "metrics.port", "9101", err, sizeof(err)),
	                 0);
	assert_int_equal(assay_config_set_default(cfg, "batch.max.ms", "250", err, sizeof(err)), 0);
	assert_int_equal(assay_config_set_default(cfg, "metrics.port", "70000", err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "metrics.port: 70000 is out of range 0..65535"));
	assert_int_equal(assay_config_set_default(cfg, "no.such", "1", err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "unknown setting \"no.such\""));
	write_file(path, sizeof(path), "batch.max.ms = 300\n");
	assert_int_equal(assay_config_load(cfg, path, NULL, err, sizeof(err)), 0);
	assert_int_equal(core.metrics_port, 9101); /* the service's default */
	assert_int_equal(core.batch_max_ms, 300);  /* the file still wins over it */
	unlink(path);
	assay_config_destroy(cfg);
}

static void test_add_rejects_programming_errors(void **state)
{
	static const struct assay_setting dup_env[] = {
	        {"other.name", "ASSAY_KAFKA_BROKERS", ASSAY_SETTING_STRING, "", 0, 0, 0, "clash"},
	        {0},
	};
	static const struct assay_setting bad_range[] = {
	        {"x.y", "ASSAY_X_Y", ASSAY_SETTING_INT, "1", 5, 1, 0, "min above max"},
	        {0},
	};
	static const struct assay_setting kafka_name[] = {
	        {"kafka.x", "ASSAY_KAFKA_X", ASSAY_SETTING_STRING, "", 0, 0, 0, "reserved prefix"},
	        {0},
	};
	struct assay_core_config core, core2;
	struct svc_config svc;
	struct assay_config *cfg = assay_config_new();
	char err[128];

	(void)state;
	assert_int_equal(assay_config_add(cfg, assay_core_settings, &core), 0);
	assert_int_equal(assay_config_add(cfg, assay_core_settings, &core2), ASSAY_ERR_FATAL);
	assert_int_equal(assay_config_add(cfg, dup_env, &svc), ASSAY_ERR_FATAL);
	assert_int_equal(assay_config_add(cfg, bad_range, &svc), ASSAY_ERR_FATAL);
	assert_int_equal(assay_config_add(cfg, kafka_name, &svc), ASSAY_ERR_FATAL);
	assert_int_equal(assay_config_add(cfg, NULL, &svc), ASSAY_ERR_FATAL);
	assert_int_equal(assay_config_add(NULL, svc_settings, &svc), ASSAY_ERR_FATAL);
	assert_int_equal(assay_config_load(cfg, "/nonexistent/assay.conf", NULL, err, sizeof(err)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(err, "cannot open config file /nonexistent/assay.conf"));
	assert_int_equal(assay_config_add(cfg, svc_settings, &svc), ASSAY_ERR_FATAL); /* loaded */
	assay_config_destroy(cfg);
}

static void test_errstr_truncation_is_safe(void **state)
{
	struct assay_config *cfg = assay_config_new();
	struct svc_config svc;
	char err[16];
	char *envp[] = {"ASSAY_SVC_WORKERS=99", "ASSAY_SVC_DRY_RUN=x", NULL};

	(void)state;
	assert_int_equal(assay_config_add(cfg, svc_settings, &svc), 0);
	assert_int_equal(assay_config_load(cfg, NULL, envp, err, sizeof(err)), ASSAY_ERR_FATAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assay_config_destroy(cfg);
}

/* The loop's configuration comes from the table: loaded values, or its defaults unloaded. */
static void test_loop_config_from_table(void **state)
{
	struct assay_config *cfg = assay_config_new();
	struct assay_core_config core, defaults;
	struct assay_loop_config lc;
	char *env[] = {"ASSAY_BATCH_MAX_MESSAGES=7", "ASSAY_SHUTDOWN_TIMEOUT_MS=0", NULL};
	char errstr[256];

	(void)state;
	assay_core_config_defaults(&defaults);
	assert_int_equal(defaults.batch_max_messages, 1000);
	assert_int_equal(defaults.batch_max_ms, 50);
	assert_string_equal(defaults.deadletter_topic, "assay.deadletter");
	assay_loop_config_init(&lc, NULL);
	assert_int_equal(lc.batch_max_messages, 1000);
	assert_int_equal(lc.relay_max_events, 5000);
	assert_int_equal(lc.shutdown_timeout_ms, 10000);
	assert_string_equal(lc.deadletter_topic, "assay.deadletter");
	assert_null(lc.service);

	assert_non_null(cfg);
	assert_int_equal(assay_config_add(cfg, assay_core_settings, &core), 0);
	assert_int_equal(assay_config_load(cfg, NULL, env, errstr, sizeof(errstr)), 0);
	assay_loop_config_init(&lc, &core);
	assert_int_equal(lc.batch_max_messages, 7);
	assert_int_equal(lc.shutdown_timeout_ms, 0); /* 0 means no flush wait, not a default */
	assert_int_equal(lc.transaction_timeout_ms, 30000);
	assay_config_destroy(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_core_defaults),
	        cmocka_unit_test(test_file_then_environment),
	        cmocka_unit_test(test_every_problem_reported),
	        cmocka_unit_test(test_integer_and_boolean_syntax),
	        cmocka_unit_test(test_set_default),
	        cmocka_unit_test(test_add_rejects_programming_errors),
	        cmocka_unit_test(test_errstr_truncation_is_safe),
	        cmocka_unit_test(test_loop_config_from_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
