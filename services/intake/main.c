/*
 * assay-intake: the shared service main() over the intake handler (intake.h).
 */
#include "intake.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	static struct intake_config cfg;
	struct assay_service_def def;
	struct intake *in;
	int rc;

	in = intake_new(&cfg);
	if (in == NULL) {
		fprintf(stderr, "assay-intake: out of memory\n");
		return 1;
	}
	intake_service_def(in, &cfg, &def);
	rc = assay_service_main(argc, argv, &def);
	intake_destroy(in);
	return rc;
}
