/*
 * SHA-256 of a buffer as lowercase hex, for content hashes that travel in events and rows.
 */
#include "assay_sha256.h"

#include <openssl/evp.h>
#include <string.h>

void assay_sha256_hex(const void *p, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(p ? p : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		memset(out, '0', 64);
		out[64] = '\0';
		return;
	}
	for (unsigned int k = 0; k < mdlen; k++) {
		out[2 * k] = hex[md[k] >> 4];
		out[2 * k + 1] = hex[md[k] & 15];
	}
	out[64] = '\0';
}
