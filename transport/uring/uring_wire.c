/* SPDX-License-Identifier: MIT */
#include <wccl/errors.h>

#include "uring_wire.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void uring_wire_encode(const struct uring_wire_hdr *h,
		       uint8_t out[URING_WIRE_HDR_LEN])
{
	put16(out, URING_WIRE_MAGIC);
	out[2] = URING_WIRE_VERSION;
	out[3] = h->op;
	put32(out + 4, h->imm);
	put64(out + 8, h->seq);
	put64(out + 16, h->len);
	put64(out + 24, h->key);
	put64(out + 32, h->offset);
}

int uring_wire_decode(const uint8_t *in, size_t avail,
		      struct uring_wire_hdr *h)
{
	if (avail < URING_WIRE_HDR_LEN)
		return WCCL_EAGAIN;
	if ((in[0] | (unsigned)in[1] << 8) != URING_WIRE_MAGIC)
		return WCCL_EPROTO;
	h->version = in[2];
	if (h->version != URING_WIRE_VERSION)
		return WCCL_EPROTONOSUPPORT;
	h->op = in[3];
	h->imm = get32(in + 4);
	h->seq = get64(in + 8);
	h->len = get64(in + 16);
	h->key = get64(in + 24);
	h->offset = get64(in + 32);
	switch (h->op) {
	case URING_OP_SEND:
	case URING_OP_WRITE:
	case URING_OP_WRITE_IMM:
		return h->len > URING_WIRE_MAX_MSG ? WCCL_EPROTO : 0;
	case URING_OP_HELLO:
	case URING_OP_ACK:
	case URING_OP_NAK:
		return h->len ? WCCL_EPROTO : 0;
	default:
		return WCCL_EPROTO;
	}
}

const char *uring_wire_op_name(unsigned op)
{
	static const char *const names[] = {
		[URING_OP_HELLO] = "HELLO", [URING_OP_SEND] = "SEND",
		[URING_OP_WRITE] = "WRITE", [URING_OP_WRITE_IMM] = "WRITE_IMM",
		[URING_OP_ACK] = "ACK",     [URING_OP_NAK] = "NAK",
	};
	if (op < sizeof(names) / sizeof(names[0]) && names[op])
		return names[op];
	return "unknown";
}
