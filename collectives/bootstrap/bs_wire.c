/* SPDX-License-Identifier: MIT */
#include "bs_wire.h"

#include <string.h>
#include <sys/uio.h>

#include <wccl/errors.h>

#include "bootstrap.h"
#include "core/sock.h"
#include "core/le.h"

void bs_hdr_encode(const struct bs_hdr *h, uint8_t out[BS_HDR_LEN])
{
	le_put32(out, h->magic);
	out[4] = (uint8_t)h->version;
	out[5] = (uint8_t)(h->version >> 8);
	out[6] = (uint8_t)h->type;
	out[7] = (uint8_t)(h->type >> 8);
	le_put32(out + 8, h->rank);
	le_put32(out + 12, h->nranks);
	le_put32(out + 16, h->round);
	le_put32(out + 20, (uint32_t)h->status);
	le_put32(out + 24, (uint32_t)h->len);
	le_put32(out + 28, (uint32_t)(h->len >> 32));
}

int bs_hdr_decode(const uint8_t in[BS_HDR_LEN], uint64_t max_len,
		  struct bs_hdr *h)
{
	h->magic = le_get32(in);
	h->version = (uint16_t)(in[4] | in[5] << 8);
	h->type = (uint16_t)(in[6] | in[7] << 8);
	h->rank = le_get32(in + 8);
	h->nranks = le_get32(in + 12);
	h->round = le_get32(in + 16);
	h->status = (int32_t)le_get32(in + 20);
	h->len = (uint64_t)le_get32(in + 24) | (uint64_t)le_get32(in + 28) << 32;
	if (h->magic != BS_MAGIC)
		return WCCL_EPROTO;
	if (h->version != BS_VERSION)
		return WCCL_EPROTONOSUPPORT;
	if (h->type == 0 || h->type >= BS_TYPE_MAX_)
		return WCCL_EPROTO;
	if (h->len > max_len)
		return WCCL_EMSGSIZE;
	return 0;
}

void bs_root_mac(const uint8_t *secret, const uint8_t nonce[BS_NONCE_LEN],
		 uint8_t out[WCCL_SHA256_LEN])
{
	uint8_t msg[4 + BS_NONCE_LEN];
	memcpy(msg, "root", 4);
	memcpy(msg + 4, nonce, BS_NONCE_LEN);
	wccl_hmac_sha256(secret, WCCL_BOOTSTRAP_SECRET_LEN, msg, sizeof(msg),
			 out);
}

void bs_rank_mac(const uint8_t *secret, const uint8_t nonce[BS_NONCE_LEN],
		 uint32_t rank, uint32_t nranks, uint8_t out[WCCL_SHA256_LEN])
{
	uint8_t msg[4 + BS_NONCE_LEN + 8];
	memcpy(msg, "rank", 4);
	memcpy(msg + 4, nonce, BS_NONCE_LEN);
	le_put32(msg + 4 + BS_NONCE_LEN, rank);
	le_put32(msg + 8 + BS_NONCE_LEN, nranks);
	wccl_hmac_sha256(secret, WCCL_BOOTSTRAP_SECRET_LEN, msg, sizeof(msg),
			 out);
}

int bs_send(int fd, uint16_t type, uint32_t rank, uint32_t nranks,
	    uint32_t round, int32_t status, const void *payload, size_t len,
	    uint64_t deadline_ns)
{
	struct bs_hdr h = { .magic = BS_MAGIC,
			    .version = BS_VERSION,
			    .type = type,
			    .rank = rank,
			    .nranks = nranks,
			    .round = round,
			    .status = status,
			    .len = len };
	uint8_t raw[BS_HDR_LEN];
	bs_hdr_encode(&h, raw);
	int rc = wccl_sock_send_all(fd, raw, sizeof(raw), deadline_ns);
	if (rc == 0 && len)
		rc = wccl_sock_send_all(fd, payload, len, deadline_ns);
	return rc;
}
