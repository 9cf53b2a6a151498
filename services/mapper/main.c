/*
 * assay-mapper: links accepted evidence to ISO 27001 / ISO 42001 controls (mapper.h).
 *
 *	assay-mapper [-c FILE]              run the service
 *	assay-mapper --export-oscal FILE    write the crosswalk as an OSCAL mapping collection
 *	                                    ("-" = stdout) and exit
 */
#include "mapper.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	static struct assay_mapper_config cfg;
	struct assay_service_def def;
	struct assay_mapper *m;
	int rc;

	if (argc >= 2 && strcmp(argv[1], "--export-oscal") == 0) {
		if (argc != 3) {
			fprintf(stderr, "usage: assay-mapper --export-oscal FILE\n");
			return 2;
		}
		return assay_mapper_export_oscal(argv[2]);
	}
	m = assay_mapper_new(&cfg);
	if (m == NULL) {
		fprintf(stderr, "assay-mapper: out of memory\n");
		return 1;
	}
	assay_mapper_service_def(m, &cfg, &def);
	rc = assay_service_main(argc, argv, &def);
	assay_mapper_destroy(m);
	return rc;
}
