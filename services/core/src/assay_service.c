/*
 * The shared main() of the assay services: configuration, logging, metrics endpoint,
 * registry and codec, migrations, topics, then the batch loop until a stop signal.
 */
#include "assay_service.h"
#include "assay_embed.h"
#include "assay_err.h"
#include "assay_http.h"
#include "assay_kafka.h"
#include "assay_migrate.h"
#include "assay_pg.h"
#include "assay_registry.h"

#include <getopt.h>
#include <malloc.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The one piece of process-wide mutable state: set by SIGTERM/SIGINT. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

const struct assay_setting assay_service_settings[] = {
        {"topics.create", "ASSAY_TOPICS_CREATE", ASSAY_SETTING_BOOL, "true", 0, 0,
         offsetof(struct assay_service_config, topics_create),
         "create the service's topics at start when they are missing"},
        {"topics.partitions", "ASSAY_TOPICS_PARTITIONS", ASSAY_SETTING_INT, "8", 1, 10000,
         offsetof(struct assay_service_config, topics_partitions),
         "partitions of topics the service creates"},
        {"topics.replication", "ASSAY_TOPICS_REPLICATION", ASSAY_SETTING_INT, "1", 1, 32,
         offsetof(struct assay_service_config, topics_replication),
         "replication factor of topics the service creates"},
        {.description = "Service settings (every service)"},
};

static void usage(FILE *out, const struct assay_service_def *def)
{
	fprintf(out,
	        "usage: %s [-c FILE] [--config-doc]\n"
	        "%s\n"
	        "  -c, --config FILE  read settings from FILE (key = value lines)\n"
	        "      --config-doc   print the settings as Markdown and exit\n"
	        "Settings come from defaults, then FILE, then ASSAY_* environment variables.\n",
	        def->name, def->description ? def->description : "");
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* After a transient failure: logs it, sleeps the backoff and doubles it (up to max).
 * Returns false when a stop was requested, so the caller gives up. */
static bool retry_wait(struct assay_log *log, const char *what, const char *errstr, int *wait_ms,
                       long long max_ms)
{
	if (stop_requested)
		return false;
	assay_log_warn(log, "dependency unavailable, retrying", ASSAY_LF_STR("what", what),
	               ASSAY_LF_STR("error", errstr), ASSAY_LF_INT("backoff_ms", *wait_ms));
	sleep_ms(*wait_ms);
	*wait_ms = *wait_ms * 2 > max_ms ? (int)max_ms : *wait_ms * 2;
	return !stop_requested;
}

/* (Re)connects when needed, then applies the embedded migrations. */
static int connect_and_migrate(const char *url, PGconn **conn, char *errstr, size_t errstr_size)
{
	int err;

	if (*conn != NULL && PQstatus(*conn) != CONNECTION_OK) {
		PQfinish(*conn);
		*conn = NULL;
	}
	if (*conn == NULL && (err = assay_pg_connect(url, conn, errstr, errstr_size)) != 0)
		return err;
	return assay_migrate(*conn, assay_embedded_migrations, errstr, errstr_size);
}

static int ensure_topics(const struct assay_service_def *def, const struct assay_core_config *core,
                         const struct assay_service_config *sc, const char *deadletter,
                         char *errstr, size_t errstr_size)
{
	const char *topics[64];
	size_t n = 0;

	for (size_t i = 0; i < def->nconsumes && n < 63; i++)
		topics[n++] = def->consumes[i];
	for (size_t i = 0; i < def->nproduces && n < 63; i++)
		topics[n++] = def->produces[i];
	topics[n++] = deadletter;
	return assay_kafka_ensure_topics(core->brokers, topics, n, (int)sc->topics_partitions,
	                                 (int)sc->topics_replication, NULL, 30000, errstr,
	                                 errstr_size);
}

/* --config-doc: the settings as Markdown, with this service's own metrics.port default. */
static int write_config_doc(const struct assay_service_def *def)
{
	const struct assay_setting *tables[3] = {NULL, assay_service_settings, def->settings};
	struct assay_setting *core;
	char port[16];
	size_t n = 0;

	while (assay_core_settings[n].name != NULL)
		n++;
	core = calloc(n + 1, sizeof(*core));
	if (core == NULL)
		return 1;
	memcpy(core, assay_core_settings, (n + 1) * sizeof(*core));
	snprintf(port, sizeof(port), "%d", def->metrics_port);
	for (size_t i = 0; i < n; i++)
		if (strcmp(core[i].name, "metrics.port") == 0)
			core[i].default_value = port;
	tables[0] = core;
	assay_config_write_markdown(stdout, tables, def->settings ? 3 : 2);
	free(core);
	return 0;
}

int assay_service_main(int argc, char **argv, const struct assay_service_def *def)
{
	static const struct option options[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"config-doc", no_argument, NULL, 'D'},
	        {"help", no_argument, NULL, 'h'},
	        {0, 0, 0, 0},
	};
	struct assay_core_config core;
	struct assay_service_config sc;
	struct assay_config *cfg = NULL;
	struct assay_log *log = NULL;
	struct assay_metrics *metrics = NULL;
	struct assay_http *http = NULL;
	struct assay_registry *reg = NULL;
	struct assay_codec *codec = NULL;
	struct assay_loop *loop = NULL;
	struct assay_handler handler;
	PGconn *conn = NULL;
	const char **props = NULL;
	const char *file = NULL;
	enum assay_log_level level = ASSAY_LOG_INFO;
	char errstr[1024] = "", port[16];
	bool doc = false, initialized = false;
	int opt, rc = 2, err, wait;

	memset(&core, 0, sizeof(core));
	memset(&sc, 0, sizeof(sc));
	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 'D':
			doc = true;
			break;
		case 'h':
			usage(stdout, def);
			return 0;
		default:
			usage(stderr, def);
			return 2;
		}
	}
	if (doc)
		return write_config_doc(def);

	/* the handler's context, and the configuration it reads */
	handler = def->handler;
	if (def->create) {
		handler.ctx = def->create(def->settings_target);
		if (handler.ctx == NULL) {
			fprintf(stderr, "%s: out of memory\n", def->name);
			return 1;
		}
	}
	cfg = assay_config_new();
	if (cfg == NULL) {
		fprintf(stderr, "%s: out of memory\n", def->name);
		rc = 1;
		goto out;
	}
	snprintf(port, sizeof(port), "%d", def->metrics_port);
	if (assay_config_add(cfg, assay_core_settings, &core) ||
	    assay_config_add(cfg, assay_service_settings, &sc) ||
	    (def->settings && assay_config_add(cfg, def->settings, def->settings_target)) ||
	    assay_config_set_default(cfg, "metrics.port", port, errstr, sizeof(errstr)) ||
	    assay_config_load(cfg, file, environ, errstr, sizeof(errstr))) {
		fprintf(stderr, "%s: configuration: %s\n", def->name, errstr);
		goto out;
	}
	assay_log_level_parse(core.log_level, &level);
	log = assay_log_new(def->name, level, STDERR_FILENO);
	rc = 1;

	/* two malloc arenas, not one per thread: the loop, the relay and librdkafka's threads
	 * would otherwise each keep free memory of their own (intake measured ~30 MB) */
	mallopt(M_ARENA_MAX, 2);
	/* blocks of 256 KB and more (a growing hash set, fetch responses, query results) come
	 * from mmap and go back when freed; glibc's default threshold rises with the largest
	 * block freed, and those blocks then stay in the heap (intake at 1M events: 85 -> 80 MB) */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);

	/* signals: finish the batch, leave the group, exit 0 */
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
	}

	/* metrics and health */
	metrics = assay_metrics_new(def->name);
	if (metrics == NULL)
		goto out;
	if (core.metrics_port > 0) {
		http = assay_http_start(core.metrics_address, (int)core.metrics_port, metrics,
		                        errstr, sizeof(errstr));
		if (http == NULL) {
			assay_log_error(log, "metrics endpoint failed",
			                ASSAY_LF_STR("error", errstr));
			goto out;
		}
		assay_log_info(log, "metrics endpoint listening",
		               ASSAY_LF_STR("address", core.metrics_address),
		               ASSAY_LF_INT("port", assay_http_port(http)));
	}

	/* database: connect, migrate */
	wait = (int)core.retry_backoff_ms;
	while ((err = connect_and_migrate(core.pg_url, &conn, errstr, sizeof(errstr))) ==
	               ASSAY_ERR_RETRY &&
	       retry_wait(log, "database", errstr, &wait, core.retry_backoff_max_ms))
		;
	if (err) {
		if (stop_requested)
			rc = 0;
		else
			assay_log_error(log, "database setup failed",
			                ASSAY_LF_STR("error", errstr));
		goto out;
	}

	/* schemas */
	if (strcmp(core.schema_registry, "builtin") != 0) {
		assay_log_error(log, "unsupported schema registry",
		                ASSAY_LF_STR("schema_registry", core.schema_registry));
		goto out;
	}
	reg = assay_registry_pg_new(core.pg_url, errstr, sizeof(errstr));
	codec = reg ? assay_codec_new(reg, (size_t)core.message_max_bytes, errstr, sizeof(errstr))
	            : NULL;
	if (codec == NULL) {
		assay_log_error(log, "codec setup failed", ASSAY_LF_STR("error", errstr));
		goto out;
	}
	wait = (int)core.retry_backoff_ms;
	while ((err = assay_codec_register_embedded(codec, errstr, sizeof(errstr))) ==
	               ASSAY_ERR_RETRY &&
	       retry_wait(log, "schema registry", errstr, &wait, core.retry_backoff_max_ms))
		;
	if (err) {
		if (stop_requested)
			rc = 0;
		else
			assay_log_error(log, "schema registration failed",
			                ASSAY_LF_STR("error", errstr));
		goto out;
	}

	/* topics */
	if (sc.topics_create) {
		wait = (int)core.retry_backoff_ms;
		while ((err = ensure_topics(def, &core, &sc, core.deadletter_topic, errstr,
		                            sizeof(errstr))) == ASSAY_ERR_RETRY &&
		       retry_wait(log, "kafka", errstr, &wait, core.retry_backoff_max_ms))
			;
		if (err) {
			assay_log_error(log, "topic creation failed",
			                ASSAY_LF_STR("error", errstr));
			goto out;
		}
	}

	/* the service's own start-up state */
	if (def->init) {
		struct assay_service_env env = {&core, log, metrics, codec, conn};

		wait = (int)core.retry_backoff_ms;
		while ((err = def->init(handler.ctx, &env, errstr, sizeof(errstr))) ==
		               ASSAY_ERR_RETRY &&
		       retry_wait(log, "service state", errstr, &wait, core.retry_backoff_max_ms))
			;
		if (err) {
			assay_log_error(log, "service init failed", ASSAY_LF_STR("error", errstr));
			goto out;
		}
		initialized = true;
	}
	PQfinish(conn);
	conn = NULL;

	/* the loop */
	{
		size_t nprops = assay_config_kafka_count(cfg);
		struct assay_loop_config lc;

		assay_loop_config_init(&lc, &core);
		lc.service = def->name;
		lc.topics = def->consumes;
		lc.ntopics = def->nconsumes;
		lc.produces = def->produces;
		lc.nproduces = def->nproduces;
		lc.log = log;
		lc.metrics = metrics;
		lc.codec = codec;
		lc.stop = &stop_requested;

		props = calloc(nprops * 2 + 1, sizeof(*props));
		if (props == NULL)
			goto out;
		for (size_t i = 0; i < nprops; i++)
			assay_config_kafka_get(cfg, i, &props[2 * i], &props[2 * i + 1]);
		lc.kafka_props = props;
		lc.nkafka_props = nprops;
		loop = assay_loop_new(&lc, &handler, errstr, sizeof(errstr));
		if (loop == NULL) {
			assay_log_error(log, "loop setup failed", ASSAY_LF_STR("error", errstr));
			goto out;
		}
		if (assay_loop_run(loop, errstr, sizeof(errstr)) == 0)
			rc = 0;
		else
			assay_log_error(log, "service stopped on a fatal error",
			                ASSAY_LF_STR("error", errstr));
	}
out:
	assay_loop_destroy(loop);
	if (initialized && def->fini)
		def->fini(handler.ctx);
	if (def->create && def->destroy)
		def->destroy(handler.ctx);
	free(props);
	if (conn)
		PQfinish(conn);
	assay_codec_destroy(codec);
	assay_registry_destroy(reg);
	if (http)
		assay_http_stop(http);
	assay_metrics_destroy(metrics);
	if (log)
		assay_log_info(log, "exit", ASSAY_LF_INT("code", rc));
	assay_log_destroy(log);
	assay_config_destroy(cfg);
	return rc;
}
