/*
 * What every assay service's main() does, once: load the configuration, set up logging,
 * metrics and the HTTP endpoint, connect the schema registry and codec, migrate the
 * database, make sure the service's topics exist, run the batch loop until SIGTERM or
 * SIGINT, and tear everything down in reverse order.
 *
 *	int main(int argc, char **argv)
 *	{
 *		return assay_service_main(argc, argv, &intake_service);
 *	}
 */
#ifndef ASSAY_SERVICE_H
#define ASSAY_SERVICE_H

#include "assay_config.h"
#include "assay_loop.h"

#include <libpq-fe.h>

/* What the running service hands to its init hook. */
struct assay_service_env {
	const struct assay_core_config *core;
	struct assay_log *log;
	struct assay_metrics *metrics;
	struct assay_codec *codec;
	PGconn *conn; /* migrated; for loading state at start; closed after init */
};

struct assay_service_def {
	const char *name;            /* "assay-intake": group id, log svc, produced_by */
	const char *description;     /* one line for --help */
	const char *const *consumes; /* topics the loop consumes */
	size_t nconsumes;
	const char *const *produces; /* topics it publishes to (created at start if missing) */
	size_t nproduces;
	int metrics_port;                     /* default of metrics.port for this service */
	const struct assay_setting *settings; /* the service's own table, or NULL */
	void *settings_target;
	struct assay_handler handler;
	/* Creates the handler's context from settings_target (not loaded yet: read it in init)
	 * before anything else runs; handler.ctx is then ignored. May be NULL (handler.ctx is
	 * used as it is). Returns NULL when memory runs out. */
	void *(*create)(void *settings_target);
	/* Frees what create made, after fini; may be NULL. */
	void (*destroy)(void *ctx);
	/* Called after migration, before the loop starts; may be NULL. Returns 0 or a failure
	 * class with the reason in errstr. */
	int (*init)(void *ctx, const struct assay_service_env *env, char *errstr,
	            size_t errstr_size);
	/* Called after the loop ended; may be NULL. */
	void (*fini)(void *ctx);
};

/* The service settings every service has beyond the core table (topic creation). */
struct assay_service_config {
	bool topics_create;
	long long topics_partitions;
	long long topics_replication;
};
extern const struct assay_setting assay_service_settings[];

/*
 * Parses `[-c FILE] [--help] [--config-doc]`, runs the service and returns the process exit
 * code: 0 after a clean stop, 1 on a fatal error (logged), 2 on bad usage or configuration.
 */
int assay_service_main(int argc, char **argv, const struct assay_service_def *def);

#endif
