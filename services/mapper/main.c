/*
 * assay-mapper: links accepted evidence to ISO 27001 / ISO 42001 controls (mapper.h).
 *
 *	assay-mapper [-c FILE]              run the service
 *	assay-mapper --export-oscal FILE    write the crosswalk as an OSCAL mapping collection
 *	                                    ("-" = stdout) and exit
 */
#include "mapper.h"

#include <string.h>

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--export-oscal") == 0)
		return mapper_export_oscal(argc == 3 ? argv[2] : NULL);
	return assay_service_main(argc, argv, &mapper_service);
}
