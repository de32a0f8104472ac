/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <wccl/errors.h>

#include "dpdk_wire.h"
#include "core/le.h"

size_t dpdk_wire_encode(const struct dpdk_wire_hdr *h, uint8_t *out)
{
	le_put16(out, DPDK_WIRE_MAGIC);
	out[2] = DPDK_WIRE_VERSION;
	out[3] = h->type;
	le_put32(out + 4, h->dst_conn);
	le_put32(out + 8, h->src_conn);
	le_put32(out + 12, h->seq);
	le_put32(out + 16, h->ack);
	le_put32(out + 20, h->op_done);
	le_put32(out + 24, h->op_seen);
	out[28] = h->n_sack;
	out[29] = h->n_rej;
	out[30] = h->op;
	out[31] = h->flags;
	le_put32(out + 32, h->op_seq);
	le_put32(out + 36, h->imm);
	le_put64(out + 40, h->key);
	le_put64(out + 48, h->offset);
	le_put64(out + 56, h->msg_len);
	le_put16(out + 64, h->frag_len);
	le_put16(out + 66, 0);
	le_put32(out + 68, h->wnd);
	le_put64(out + 72, h->roff);
	uint8_t *p = out + DPDK_WIRE_HDR_LEN;
	for (unsigned i = 0; i < h->n_sack; i++, p += 8) {
		le_put32(p, h->sack[i].start);
		le_put32(p + 4, h->sack[i].end);
	}
	for (unsigned i = 0; i < h->n_rej; i++, p += 8) {
		le_put32(p, h->rej[i].op_seq);
		le_put32(p + 4, h->rej[i].err);
	}
	return (size_t)(p - out);
}

int dpdk_wire_decode(const uint8_t *in, size_t avail, struct dpdk_wire_hdr *h)
{
	if (avail < 12 || le_get16(in) != DPDK_WIRE_MAGIC)
		return WCCL_EPROTO;
	h->version = in[2];
	h->type = in[3];
	h->dst_conn = le_get32(in + 4);
	h->src_conn = le_get32(in + 8);
	if (h->version != DPDK_WIRE_VERSION)
		return WCCL_EPROTONOSUPPORT;
	if (avail < DPDK_WIRE_HDR_LEN || !h->type ||
	    h->type >= DPDK_PKT_TYPE_MAX_)
		return WCCL_EPROTO;
	h->seq = le_get32(in + 12);
	h->ack = le_get32(in + 16);
	h->op_done = le_get32(in + 20);
	h->op_seen = le_get32(in + 24);
	h->n_sack = in[28];
	h->n_rej = in[29];
	h->op = in[30];
	h->flags = in[31];
	h->op_seq = le_get32(in + 32);
	h->imm = le_get32(in + 36);
	h->key = le_get64(in + 40);
	h->offset = le_get64(in + 48);
	h->msg_len = le_get64(in + 56);
	h->frag_len = le_get16(in + 64);
	h->wnd = le_get32(in + 68);
	h->roff = le_get64(in + 72);
	if (h->n_sack > DPDK_WIRE_MAX_SACK || h->n_rej > DPDK_WIRE_MAX_REJ)
		return WCCL_EPROTO;
	size_t hs = dpdk_wire_hdr_size(h);
	if (avail < hs || avail - hs < h->frag_len)
		return WCCL_EPROTO;
	const uint8_t *p = in + DPDK_WIRE_HDR_LEN;
	for (unsigned i = 0; i < h->n_sack; i++, p += 8) {
		h->sack[i].start = le_get32(p);
		h->sack[i].end = le_get32(p + 4);
		if (!dpdk_seq_lt(h->sack[i].start, h->sack[i].end))
			return WCCL_EPROTO;
	}
	for (unsigned i = 0; i < h->n_rej; i++, p += 8) {
		h->rej[i].op_seq = le_get32(p);
		h->rej[i].err = le_get32(p + 4);
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
