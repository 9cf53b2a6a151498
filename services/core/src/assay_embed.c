/*
 * Lookup in the embedded file tables (the tables themselves are generated).
 */
#include "assay_embed.h"

#include <string.h>

const struct assay_embedded *assay_embedded_find(const struct assay_embedded *files,
                                                 const char *name)
{
	for (; files->name != NULL; files++)
		if (strcmp(files->name, name) == 0)
			return files;
	return NULL;
}
