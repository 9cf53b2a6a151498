/*
 * UUID strings: random ones for commands a tool issues, name-based ones for events whose id
 * must not change when the same input is processed again.
 */
#include "assay_uuid.h"
#include "assay_err.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <sys/random.h>

struct assay_uuid_maker {
	EVP_MD *sha256;
	EVP_MD_CTX *ctx;
};

static void format_uuid(unsigned char b[16], unsigned version, char out[ASSAY_UUID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	b[6] = (unsigned char)((b[6] & 0x0f) | (version << 4));
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 9562 variant */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 0x0f];
	}
	*p = '\0';
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

struct assay_uuid_maker *assay_uuid_maker_new(void)
{
	struct assay_uuid_maker *maker = calloc(1, sizeof(*maker));

	if (maker == NULL)
		return NULL;
	maker->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	maker->ctx = EVP_MD_CTX_new();
	if (maker->sha256 == NULL || maker->ctx == NULL) {
		assay_uuid_maker_destroy(maker);
		return NULL;
	}
	return maker;
}

void assay_uuid_maker_destroy(struct assay_uuid_maker *maker)
{
	if (maker == NULL)
		return;
	EVP_MD_CTX_free(maker->ctx);
	EVP_MD_free(maker->sha256);
	free(maker);
}

void assay_uuid_make(struct assay_uuid_maker *maker, const void *name, size_t len,
                     char out[ASSAY_UUID_LEN])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	if (EVP_DigestInit_ex(maker->ctx, maker->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(maker->ctx, name, len) != 1 ||
	    EVP_DigestFinal_ex(maker->ctx, digest, NULL) != 1) {
		assay_uuid_from_name(name, len, out); /* the slow path gives the same id */
		return;
	}
	format_uuid(digest, 8, out);
}
