/*
 * assay-plan: the audit programme service (plan.h) on the shared service main().
 */
#include "plan.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	struct plan_service *svc = plan_service_new();
	struct assay_service_def def;
	int rc;

	if (svc == NULL) {
		fprintf(stderr, "assay-plan: out of memory\n");
		return 1;
	}
	plan_service_def(svc, &def);
	rc = assay_service_main(argc, argv, &def);
	plan_service_destroy(svc);
	return rc;
}
