/*
 * assay-plan: the audit programme service (plan.h) on the shared service main(). The
 * descriptor below is the service at a glance: its topics (read through the loaded
 * settings), metrics port, settings table and handler hooks, over one static context.
 */
#include "plan.h"

/* The settings are loaded into it before plan_init creates the running service in it. */
static struct plan_context plan;

static const struct assay_service_def plan_service = {
        .name = "assay-plan",
        .description = "audit programme: clients, auditors, audits, teams, SoAs, audit time",
        /* the loaded topic names: read through the settings when the service starts */
        .consumes = (const char *const *)&plan.settings.topic_commands,
        .nconsumes = 1,
        .produces = (const char *const *)&plan.settings.topic_events,
        .nproduces = 1,
        .metrics_port = 9101,
        .settings = plan_settings,
        .settings_target = &plan.settings,
        .handler =
                {
                        .stage = "plan",
                        /* false: plan_handle decodes with the generated contracts */
                        .decode = false,
                        .handle = plan_handle,
                        .write = plan_write,
                        .committed = plan_committed,
                        .rolled_back = plan_rolled_back,
                        .assigned = plan_assigned,
                        .ctx = &plan,
                },
        .init = plan_init,
        .fini = plan_fini,
};

int main(int argc, char **argv)
{
	return assay_service_main(argc, argv, &plan_service);
}
