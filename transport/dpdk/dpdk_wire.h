/* SPDX-License-Identifier: MIT */
#ifndef WCCL_DPDK_WIRE_H
#define WCCL_DPDK_WIRE_H

/*
 * The dpdk provider's wire header: the UDP payload of every packet, little-
 * endian, 80 bytes fixed, then n_sack SACK blocks and n_rej rejections
 * (8 bytes each), then frag_len payload bytes (DATA only).
 *
 *   0 magic u16  2 version u8  3 type u8   4 dst_conn u32  8 src_conn u32
 *  12 seq u32    16 ack u32   20 op_done u32  24 op_seen u32
 *  28 n_sack u8  29 n_rej u8  30 op u8  31 flags u8  32 op_seq u32
 *  36 imm u32    40 key u64   48 offset u64  56 msg_len u64
 *  64 frag_len u16  66 reserved u16  68 wnd u32  72 roff u64
 *
 * offset is the fragment's place in the message; roff is where a WRITE's
 * message starts in the target region (key names it).
 *
 * seq numbers packets per connection and direction; ack is cumulative (the
 * next packet seq the sender of this header has not processed); SACK
 * blocks [start, end) say which later packets it holds. op_done counts the
 * peer's operations fully applied here; every rejection (op_seq, positive
 * wccl code) among them at or above the peer's op_seen rides along, so any
 * one header tells the peer the fate of all ops below op_done.
 * The first 12 bytes keep their meaning in every version.
 */
#include <stddef.h>
#include <stdint.h>

#define DPDK_WIRE_MAGIC 0x4457u /* "WD" on the wire */
#define DPDK_WIRE_VERSION 1u
#define DPDK_WIRE_HDR_LEN 80u
#define DPDK_WIRE_MAX_SACK 4u
#define DPDK_WIRE_MAX_REJ 4u
#define DPDK_WIRE_MAX_HDR (DPDK_WIRE_HDR_LEN + 8u * (DPDK_WIRE_MAX_SACK + DPDK_WIRE_MAX_REJ))
#define DPDK_WIRE_MAX_MSG (1ull << 30)
#define DPDK_WIRE_MAX_FRAG 9000u

enum dpdk_wire_type {
	DPDK_PKT_SYN = 1, /* key = sender's window, offset = its max frag */
	DPDK_PKT_SYNACK,
	DPDK_PKT_DATA,
	DPDK_PKT_ACK,
	DPDK_PKT_FIN,
	DPDK_PKT_RST, /* version mismatch or unknown connection */
	DPDK_PKT_TYPE_MAX_,
};

enum dpdk_wire_op { DPDK_OP_SEND = 1, DPDK_OP_WRITE, DPDK_OP_WRITE_IMM };

enum dpdk_wire_flags { DPDK_F_FIRST = 1u << 0, DPDK_F_LAST = 1u << 1 };

struct dpdk_sack {
	uint32_t start, end;
};

struct dpdk_rej {
	uint32_t op_seq, err;
};

struct dpdk_wire_hdr {
	uint8_t version, type, n_sack, n_rej, op, flags;
	uint16_t frag_len;
	uint32_t dst_conn, src_conn, seq, ack, op_done, op_seen, op_seq, imm;
	uint32_t wnd;
	uint64_t key, offset, msg_len, roff;
	struct dpdk_sack sack[DPDK_WIRE_MAX_SACK];
	struct dpdk_rej rej[DPDK_WIRE_MAX_REJ];
};

/* Header bytes @h takes on the wire (fixed part + blocks). */
static inline size_t dpdk_wire_hdr_size(const struct dpdk_wire_hdr *h)
{
	return DPDK_WIRE_HDR_LEN + 8u * ((size_t)h->n_sack + h->n_rej);
}

/* Encode @h (magic and version filled in) into @out, which has room for
 * dpdk_wire_hdr_size(h) bytes. Returns that size. */
size_t dpdk_wire_encode(const struct dpdk_wire_hdr *h, uint8_t *out);

/*
 * Decode a UDP payload of @avail bytes. Returns the header size (payload
 * starts there, frag_len bytes of it) or a negative code: -WCCL_EPROTO for
 * anything malformed (short, bad magic/type/op/counts, frag_len past the
 * packet, fragment outside its message, message > 1 GiB), or
 * -WCCL_EPROTONOSUPPORT for another wire version (then only version, type,
 * dst_conn and src_conn are set). Never reads past @avail.
 */
int dpdk_wire_decode(const uint8_t *in, size_t avail, struct dpdk_wire_hdr *h);

const char *dpdk_wire_type_name(unsigned type);

/*
 * The default IPv4 address of a process (host order): 10.0.0.0/8 plus the
 * pid's low 24 bits, so distinct pids on one host get distinct addresses
 * (pid_max is at most 2^22). An earlier scheme mapped pids ending in 0x00
 * to .1, giving two consecutive pids the same address: the lower rank
 * then connected to itself (dpdk-coll's rare set-up timeout).
 */
static inline uint32_t dpdk_auto_ip(uint32_t pid)
{
	return (10u << 24) | (pid & 0xffffffu);
}

/* Sequence-space comparisons (mod 2^32). */
static inline int dpdk_seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

#endif
