/*
 * Files built into the binary: the Avro schemas of schemas/ and the migrations of sql/.
 * Generated at build time by services/core/embed.cmake; each array ends with a zeroed entry.
 */
#ifndef ASSAY_EMBED_H
#define ASSAY_EMBED_H

#include <stddef.h>

struct assay_embedded {
	const char *name; /* file name without folder, e.g. "evidence_submitted.avsc" */
	const char *data; /* contents, NUL-terminated */
	size_t size;      /* bytes, without the NUL */
};

/* the .avsc files of schemas/, sorted by name */
extern const struct assay_embedded assay_embedded_schemas[];
extern const size_t assay_embedded_schemas_count;

/* the .sql files of sql/, sorted by name (so NNN_ prefixes give the order) */
extern const struct assay_embedded assay_embedded_migrations[];
extern const size_t assay_embedded_migrations_count;

/* The entry named name in files, or NULL. */
const struct assay_embedded *assay_embedded_find(const struct assay_embedded *files,
                                                 const char *name);

#endif
