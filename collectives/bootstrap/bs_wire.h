/* SPDX-License-Identifier: MIT */
#ifndef WCCL_BS_WIRE_H
#define WCCL_BS_WIRE_H

/* Bootstrap frames: a 32-byte little-endian header, then @len bytes. */
#include <stddef.h>
#include <stdint.h>

#include "core/sha256.h"

#define BS_MAGIC 0x53424357u /* "WCBS" */
#define BS_VERSION 1
#define BS_HDR_LEN 32
#define BS_NONCE_LEN 32
/* Largest frame the root accepts before a rank is authenticated, and after. */
#define BS_MAX_HANDSHAKE_PAYLOAD 64
#define BS_MAX_PAYLOAD (64u << 20)

enum bs_type {
	BS_HELLO = 1, /* rank -> root: nonce */
	BS_CHALLENGE, /* root -> rank: nonce + root's mac */
	BS_PROOF,     /* rank -> root: rank's mac */
	BS_WELCOME,   /* root -> rank: joined */
	BS_REJECT,    /* root -> rank: text reason, then close */
	BS_GATHER,    /* rank -> root: round, blob */
	BS_RESULT,    /* root -> rank: round, all blobs */
	BS_ABORT,     /* either way: text reason; the job is over */
	BS_BYE,       /* rank -> root: leaving normally */
	BS_TYPE_MAX_,
};

/* ABORT from a rank: hdr.round = the rank it blames + 1, 0 = itself, or
 * this: it does not know (its all-gather timed out), the root is to name
 * the ranks that never entered the round. */
#define BS_BLAME_UNKNOWN 0xffffffffu
/* Or this: no rank is to blame (a failure nobody can pin on a rank). */
#define BS_BLAME_NOBODY 0xfffffffeu

struct bs_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t rank;
	uint32_t nranks;
	uint32_t round;
	int32_t status; /* REJECT/ABORT: the wccl code */
	uint64_t len;
};

void bs_hdr_encode(const struct bs_hdr *h, uint8_t out[BS_HDR_LEN]);

/* Decode and validate (magic, version, type, len <= @max_len).
 * Returns 0 or -WCCL_EPROTO / -WCCL_EPROTONOSUPPORT / -WCCL_EMSGSIZE. */
int bs_hdr_decode(const uint8_t in[BS_HDR_LEN], uint64_t max_len,
		  struct bs_hdr *h);

/* The two proofs of the handshake. */
void bs_root_mac(const uint8_t *secret, const uint8_t nonce[BS_NONCE_LEN],
		 uint8_t out[WCCL_SHA256_LEN]);
void bs_rank_mac(const uint8_t *secret, const uint8_t nonce[BS_NONCE_LEN],
		 uint32_t rank, uint32_t nranks, uint8_t out[WCCL_SHA256_LEN]);

/* Send one frame (header + payload) by @deadline_ns. */
int bs_send(int fd, uint16_t type, uint32_t rank, uint32_t nranks,
	    uint32_t round, int32_t status, const void *payload, size_t len,
	    uint64_t deadline_ns);

#endif
