/* SPDX-License-Identifier: MIT */
#ifndef WCCL_URING_WIRE_H
#define WCCL_URING_WIRE_H

/*
 * The uring provider's wire header: 40 bytes, little-endian, before every
 * message on the TCP stream. A payload of @len bytes follows SEND, WRITE
 * and WRITE_IMM; the others stand alone.
 *
 *   0  magic u16   4  imm u32    8 seq u64   16 len u64
 *   2  version u8                            24 key u64
 *   3  op u8                                 32 offset u64
 *
 * ACK(seq): every op up to seq was applied at the target.
 * SEND: offset = receives its sender has posted so far (credits, as in
 * every control header); imm & URING_SEND_NOACK: its sender completed it
 * locally and wants no ACK (nor a NAK) for it.
 * NAK(seq, imm = positive wccl error code): op seq failed, those before
 * it were applied.
 */
#include <stddef.h>
#include <stdint.h>

#define URING_WIRE_MAGIC 0x5743u /* "CW" on the wire */
/* 2: receive credits in control headers; 3: and in SEND headers
 * (offset), and SENDs that want no ACK */
#define URING_WIRE_VERSION 3u
#define URING_WIRE_HDR_LEN 40u
#define URING_WIRE_MAX_MSG (1ull << 30)
#define URING_SEND_NOACK 1u

enum uring_wire_op {
	URING_OP_HELLO = 1,
	URING_OP_SEND,
	URING_OP_WRITE,
	URING_OP_WRITE_IMM,
	URING_OP_ACK,
	URING_OP_NAK,
};

struct uring_wire_hdr {
	uint8_t op;
	uint8_t version;
	uint32_t imm;
	uint64_t seq;
	uint64_t len;
	uint64_t key;
	uint64_t offset;
};

/* Encode @h (magic and version are filled in) into @out. */
void uring_wire_encode(const struct uring_wire_hdr *h,
		       uint8_t out[URING_WIRE_HDR_LEN]);

/*
 * Decode the header at @in (@avail bytes readable). Returns 0,
 * -WCCL_EAGAIN if fewer than 40 bytes are there, -WCCL_EPROTO for a bad
 * magic, op or length (a payload on ACK/NAK/HELLO, or > 1 GiB), or
 * -WCCL_EPROTONOSUPPORT for a wccl peer of another wire version (h->version
 * then says which). Never reads past @avail.
 */
int uring_wire_decode(const uint8_t *in, size_t avail,
		      struct uring_wire_hdr *h);

/* Rewrite the offset field of the encoded header @out (a SEND's credits,
 * current when it goes on the wire). */
void uring_wire_set_offset(uint8_t out[URING_WIRE_HDR_LEN], uint64_t offset);

/* "SEND", "WRITE", ... for messages. */
const char *uring_wire_op_name(unsigned op);

#endif
