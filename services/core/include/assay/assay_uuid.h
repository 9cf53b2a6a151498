/*
 * Event and command ids as UUID strings (36 characters plus NUL).
 */
#ifndef ASSAY_UUID_H
#define ASSAY_UUID_H

#include <stddef.h>

#define ASSAY_UUID_LEN 37

/* A random (version 4) UUID from the kernel's CSPRNG. Returns 0 or ASSAY_ERR_RETRY. */
int assay_uuid_random(char out[ASSAY_UUID_LEN]);

/* A name-based UUID (version 8, SHA-256 of name): the same name always gives the same id,
 * so an event re-derived after a crash keeps its id. */
void assay_uuid_from_name(const void *name, size_t len, char out[ASSAY_UUID_LEN]);

/*
 * The same ids, several times faster for hot paths: the maker keeps its SHA-256 context
 * between calls (OpenSSL 3 looks the digest up on every one-shot call). A maker belongs to
 * one thread at a time. new returns NULL when OpenSSL or memory fails.
 */
struct assay_uuid_maker;
struct assay_uuid_maker *assay_uuid_maker_new(void);
void assay_uuid_maker_destroy(struct assay_uuid_maker *maker);
void assay_uuid_make(struct assay_uuid_maker *maker, const void *name, size_t len,
                     char out[ASSAY_UUID_LEN]);

#endif
