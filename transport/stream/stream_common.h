/* SPDX-License-Identifier: MIT */
#ifndef WCCL_STREAM_COMMON_H
#define WCCL_STREAM_COMMON_H

/* Wire format and helpers shared by stream_send.c and stream_recv.c. */
#include <stdint.h>
#include <string.h>

#include "include/wccl/transport.h"
#include "transport/provider.h"

#define SMSG_MAGIC 0x54534357u /* "WCST" */
#define SMSG_LEN 64
#define STREAM_CTRL_MAX 1024 /* text / name payload of control messages */
#define STREAM_CTRL_BUF 1152 /* SMSG_LEN + STREAM_CTRL_MAX, rounded */
#define STREAM_MAX_EPS 16
/* Receives the receiver keeps posted on the path probe's connection (it
 * says how many in JOIN_ACK's aux2): pings every 10 ms on a 150 ms path
 * without one waiting for another's credit. */
#define STREAM_PROBE_RX 16
#define STREAM_MAX_CHUNK (64u << 20)
#define STREAM_RX_PER_EP 6 /* data receives posted per endpoint: while
			     * some wait for the I/O thread, others fill */

enum smsg_type {
	SM_HELLO = 1, /* index nchunks, offset size, len chunk, aux1 mtime,
			 aux2 max streams; flags bit0 resume; payload name */
	SM_HELLO_ACK, /* aux1 status; index verified; payload bitmap / text */
	SM_JOIN,      /* index ep number; flags bit1: path probe, no data */
	SM_JOIN_ACK,  /* aux1 status */
	SM_DATA,      /* index, offset, len, crc, send_ts; payload */
	SM_ACK,	      /* index, send_ts echo, aux1 receiver time */
	SM_NAK,	      /* as ACK: crc mismatch, send again */
	SM_FIN,	      /* offset size, crc whole file */
	SM_FIN_ACK,   /* aux1 status; payload text */
	SM_ERROR,     /* aux1 code; payload text */
	SM_PING,      /* send_ts */
	SM_PONG,      /* send_ts echo */
};

struct smsg {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint64_t sid;
	uint64_t index;
	uint64_t offset;
	uint32_t len;
	uint32_t crc;
	uint64_t send_ts;
	uint64_t aux1;
	uint64_t aux2;
};
_Static_assert(sizeof(struct smsg) == SMSG_LEN, "stream header is 64 bytes");
/* The wire is little-endian; so are the hosts wccl builds for. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian");

static inline void smsg_put(void *buf, const struct smsg *m)
{
	memcpy(buf, m, SMSG_LEN);
}

static inline int smsg_get(const void *buf, uint64_t len, struct smsg *m)
{
	if (len < SMSG_LEN)
		return -1;
	memcpy(m, buf, SMSG_LEN);
	return m->magic == SMSG_MAGIC ? 0 : -1;
}

/*
 * wccl_cq_wait without its busy-poll phase: poll once, else sleep in the
 * provider for up to @ms, then poll again. The engine works at millisecond
 * granularity; spinning (every empty uring poll is a sched_yield) cost
 * ~10k syscalls/s on loopback at 40 Mbit/s and, under qemu TCG where a
 * syscall is dear, most of the guest's CPU. Returns what cq_poll returns,
 * or -WCCL_ETIMEDOUT.
 */
static inline int stream_cq_wait(struct wccl_cq *cq,
				 struct wccl_completion *wc, int max, int ms)
{
	int n = wccl_cq_poll(cq, wc, max);
	if (n || ms <= 0)
		return n;
	int rc = cq->ctx->prov->ctrl.cq_sleep(cq, ms);
	if (rc)
		return rc;
	n = wccl_cq_poll(cq, wc, max);
	return n ? n : WCCL_ETIMEDOUT;
}

/* Cookies: kind | endpoint | index. */
#define CK(kind, ep, idx) \
	(((uint64_t)(kind) << 56) | ((uint64_t)(ep) << 48) | (uint64_t)(idx))
#define CK_KIND(c) ((int)((c) >> 56))
#define CK_EP(c) ((int)(((c) >> 48) & 0xff))
#define CK_IDX(c) ((c)&0xffffffffffffull)

enum { K_RX = 1, K_TX_DATA, K_TX_CTRL, K_RX_FIRST, K_TX_REJECT };

#endif
