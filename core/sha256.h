/* SPDX-License-Identifier: MIT */
#ifndef WCCL_SHA256_H
#define WCCL_SHA256_H

/* SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), for the bootstrap's
 * challenge-response. Small and dependency-free; not a hot path. */
#include <stddef.h>
#include <stdint.h>

#define WCCL_SHA256_LEN 32

struct wccl_sha256 {
	uint32_t h[8];
	uint64_t total;
	uint8_t block[64];
	size_t fill;
};

void wccl_sha256_init(struct wccl_sha256 *s);
void wccl_sha256_update(struct wccl_sha256 *s, const void *data, size_t len);
void wccl_sha256_final(struct wccl_sha256 *s, uint8_t out[WCCL_SHA256_LEN]);

void wccl_hmac_sha256(const void *key, size_t key_len, const void *msg,
		      size_t msg_len, uint8_t out[WCCL_SHA256_LEN]);

/* Constant-time comparison: 0 if equal. */
int wccl_ct_memcmp(const void *a, const void *b, size_t len);

#endif
