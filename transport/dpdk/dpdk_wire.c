/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <wccl/errors.h>

#include "dpdk_wire.h"

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
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
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

size_t dpdk_wire_encode(const struct dpdk_wire_hdr *h, uint8_t *out)
{
	put16(out, DPDK_WIRE_MAGIC);
	out[2] = DPDK_WIRE_VERSION;
	out[3] = h->type;
	put32(out + 4, h->dst_conn);
	put32(out + 8, h->src_conn);
	put32(out + 12, h->seq);
	put32(out + 16, h->ack);
	put32(out + 20, h->op_done);
	put32(out + 24, h->op_seen);
	out[28] = h->n_sack;
	out[29] = h->n_rej;
	out[30] = h->op;
	out[31] = h->flags;
	put32(out + 32, h->op_seq);
	put32(out + 36, h->imm);
	put64(out + 40, h->key);
	put64(out + 48, h->offset);
	put64(out + 56, h->msg_len);
	put16(out + 64, h->frag_len);
	put16(out + 66, 0);
	put32(out + 68, h->wnd);
	put64(out + 72, h->roff);
	uint8_t *p = out + DPDK_WIRE_HDR_LEN;
	for (unsigned i = 0; i < h->n_sack; i++, p += 8) {
		put32(p, h->sack[i].start);
		put32(p + 4, h->sack[i].end);
	}
	for (unsigned i = 0; i < h->n_rej; i++, p += 8) {
		put32(p, h->rej[i].op_seq);
		put32(p + 4, h->rej[i].err);
	}
	return (size_t)(p - out);
}

int dpdk_wire_decode(const uint8_t *in, size_t avail, struct dpdk_wire_hdr *h)
{
	if (avail < 12 || get16(in) != DPDK_WIRE_MAGIC)
		return WCCL_EPROTO;
	h->version = in[2];
	h->type = in[3];
	h->dst_conn = get32(in + 4);
	h->src_conn = get32(in + 8);
	if (h->version != DPDK_WIRE_VERSION)
		return WCCL_EPROTONOSUPPORT;
	if (avail < DPDK_WIRE_HDR_LEN || !h->type ||
	    h->type >= DPDK_PKT_TYPE_MAX_)
		return WCCL_EPROTO;
	h->seq = get32(in + 12);
	h->ack = get32(in + 16);
	h->op_done = get32(in + 20);
	h->op_seen = get32(in + 24);
	h->n_sack = in[28];
	h->n_rej = in[29];
	h->op = in[30];
	h->flags = in[31];
	h->op_seq = get32(in + 32);
	h->imm = get32(in + 36);
	h->key = get64(in + 40);
	h->offset = get64(in + 48);
	h->msg_len = get64(in + 56);
	h->frag_len = get16(in + 64);
	h->wnd = get32(in + 68);
	h->roff = get64(in + 72);
	if (h->n_sack > DPDK_WIRE_MAX_SACK || h->n_rej > DPDK_WIRE_MAX_REJ)
		return WCCL_EPROTO;
	size_t hs = dpdk_wire_hdr_size(h);
	if (avail < hs || avail - hs < h->frag_len)
		return WCCL_EPROTO;
	const uint8_t *p = in + DPDK_WIRE_HDR_LEN;
	for (unsigned i = 0; i < h->n_sack; i++, p += 8) {
		h->sack[i].start = get32(p);
		h->sack[i].end = get32(p + 4);
		if (!dpdk_seq_lt(h->sack[i].start, h->sack[i].end))
			return WCCL_EPROTO;
	}
	for (unsigned i = 0; i < h->n_rej; i++, p += 8) {
		h->rej[i].op_seq = get32(p);
		h->rej[i].err = get32(p + 4);
		if (!h->rej[i].err || h->rej[i].err > 0xffff)
			return WCCL_EPROTO;
	}
	if (h->type != DPDK_PKT_DATA)
		return h->frag_len || h->op ? WCCL_EPROTO : (int)hs;
	if (h->op < DPDK_OP_SEND || h->op > DPDK_OP_WRITE_IMM ||
	    (h->flags & ~(unsigned)(DPDK_F_FIRST | DPDK_F_LAST)) ||
	    h->frag_len > DPDK_WIRE_MAX_FRAG || h->msg_len > DPDK_WIRE_MAX_MSG)
		return WCCL_EPROTO;
	if (h->offset > h->msg_len || h->msg_len - h->offset < h->frag_len)
		return WCCL_EPROTO;
	if ((h->flags & DPDK_F_LAST) && h->offset + h->frag_len != h->msg_len)
		return WCCL_EPROTO;
	if ((h->flags & DPDK_F_FIRST) && h->offset)
		return WCCL_EPROTO;
	return (int)hs;
}

const char *dpdk_wire_type_name(unsigned type)
{
	static const char *const names[] = {
		[DPDK_PKT_SYN] = "SYN", [DPDK_PKT_SYNACK] = "SYNACK",
		[DPDK_PKT_DATA] = "DATA", [DPDK_PKT_ACK] = "ACK",
		[DPDK_PKT_FIN] = "FIN", [DPDK_PKT_RST] = "RST",
	};
	if (type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "unknown";
}
