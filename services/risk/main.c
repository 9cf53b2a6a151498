/*
 * assay-risk: coverage and residual risk per control, standard and audit (risk.h).
 *
 *	assay-risk [-c FILE] [--config-doc]
 */
#include "risk.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	static struct risk_config cfg;
	struct assay_service_def def;
	struct risk *r;
	int rc;

	r = risk_new(&cfg);
	if (r == NULL) {
		fprintf(stderr, "assay-risk: out of memory\n");
		return 1;
	}
	risk_service_def(r, &cfg, &def);
	rc = assay_service_main(argc, argv, &def);
	risk_destroy(r);
	return rc;
}
