/* SPDX-License-Identifier: MIT */
#include <wccl/errors.h>

#include "uring_wire.h"
#include "core/le.h"

void uring_wire_encode(const struct uring_wire_hdr *h,
		       uint8_t out[URING_WIRE_HDR_LEN])
{
	le_put16(out, URING_WIRE_MAGIC);
	out[2] = URING_WIRE_VERSION;
	out[3] = h->op;
	le_put32(out + 4, h->imm);
	le_put64(out + 8, h->seq);
	le_put64(out + 16, h->len);
	le_put64(out + 24, h->key);
	le_put64(out + 32, h->offset);
}

void uring_wire_set_offset(uint8_t out[URING_WIRE_HDR_LEN], uint64_t offset)
{
	le_put64(out + 32, offset);
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
	h->imm = le_get32(in + 4);
	h->seq = le_get64(in + 8);
	h->len = le_get64(in + 16);
	h->key = le_get64(in + 24);
	h->offset = le_get64(in + 32);
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
