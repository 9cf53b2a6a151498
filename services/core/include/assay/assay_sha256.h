/*
 * SHA-256 of a buffer as 64 lowercase hex digits (libcrypto's EVP one-shot digest).
 */
#ifndef ASSAY_SHA256_H
#define ASSAY_SHA256_H

#include <stddef.h>

#define ASSAY_SHA256_HEX_LEN 65 /* 64 digits and the NUL */

/* Writes the hex digest of len bytes at p (p may be NULL when len is 0) into out. Thread-safe. */
void assay_sha256_hex(const void *p, size_t len, char out[ASSAY_SHA256_HEX_LEN]);

#endif
