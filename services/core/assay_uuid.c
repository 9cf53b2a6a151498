/*
 * UUID strings: random ones for commands a tool issues, name-based ones for events whose id
 * must not change when the same input is processed again.
 */
#include "assay_uuid.h"
#include "assay_err.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <sys/random.h>

static void format_uuid(unsigned char b[16], unsigned version, char out[ASSAY_UUID_LEN])
{
	b[6] = (unsigned char)((b[6] & 0x0f) | (version << 4));
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 9562 variant */
	snprintf(out, ASSAY_UUID_LEN,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
}

int assay_uuid_random(char out[ASSAY_UUID_LEN])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return ASSAY_ERR_RETRY;
	format_uuid(b, 4, out);
	return 0;
}

void assay_uuid_from_name(const void *name, size_t len, char out[ASSAY_UUID_LEN])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256(name, len, digest);
	format_uuid(digest, 8, out);
}
