/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "core/sock.h"
#include "crc32c.h"
#include "stream.h"
#include "stream_common.h"
#include "stream_icmp.h"
#include "stream_io.h"
#include "transport/provider.h"
#include "transport/registry.h"

#define RTT_SAMPLES 65536
/* Shortest rate-sample window, in chunks per striped connection. */
#define SAMPLE_CHUNKS_PER_STREAM 2
#define SAMPLE_PATH_RTTS 4 /* probe_bw's rate window on a long path */
/* A long path's first window, unpaced: 4 x 256 KiB chunks before the
 * chunks were 128 KiB; a 15-chunk window of 3.75 MiB built a 66 ms
 * queue at 100 Mbit/s in the VM. 1 MiB over 8-15 cold connections built
 * 13-53 ms at 50 Mbit/s (slow start's third round sends about twice what
 * the path carries in a round trip); 768 KiB, with startup's gain at
 * 1.5 (pace_model.c), 5-30 ms. 512 KiB left startup's first estimate at
 * 18-21 Mbit/s and took 0.2 s more to reach the link. */
#define FIRST_WINDOW_BYTES (768u << 10)
/* Control send buffers per connection: as many as the pings the probe
 * may have in flight (a send's buffer stays busy until its completion,
 * about a round trip: with 4, the probe sampled 23 times a second at
 * 150 ms instead of 100). */
#define CTRL_TX_PER_EP STREAM_PROBE_RX

/* A chunk buffer. Between hand-offs it belongs to one thread: the I/O
 * thread fills idx, len, crc and the payload; the network thread sends it
 * and gives it back (to be refilled, or re-read for a resend) once it is
 * both acknowledged and off the send queue. */
struct snd_slot {
	uint8_t *buf; /* SMSG_LEN header + chunk */
	uint64_t idx;
	uint64_t send_ts;
	struct pace_rs_unit rs;
	uint32_t len, crc;
	int tx_busy, inflight, ep;
	int release;	  /* acked: give back once tx_busy clears */
	uint32_t give_as; /* 0 refill, IO_RESEND read the same chunk again */
};

#define IO_RESEND 0x80000000u

struct snd {
	struct wccl_context *ctx;
	struct wccl_cq *cq;
	struct wccl_endpoint *eps[STREAM_MAX_EPS];
	int ep_ready[STREAM_MAX_EPS];
	int ep_inflight[STREAM_MAX_EPS];
	/* chunk buffers sent and not given back yet (see pick_ep) */
	int ep_slots[STREAM_MAX_EPS];
	int pick_from; /* where pick_ep's scan starts */
	int nep, nstreams;
	/* control region: per-ep receive buffers and control sends */
	uint8_t *creg;
	size_t creg_len;
	struct wccl_mr *cmr;
	int nrx;
	uint8_t *first_rx; /* ep0's first receive: HELLO_ACK + bitmap */
	size_t first_rx_len;
	int ctrl_busy[STREAM_MAX_EPS][CTRL_TX_PER_EP];
	/* chunk slots */
	uint8_t *sreg;
	size_t sreg_len;
	struct wccl_mr *smr;
	struct snd_slot *slots;
	int depth;
	/* source */
	int fd;
	uint64_t size;
	int64_t mtime_ns;
	uint32_t chunk;
	uint64_t nchunks;
	uint8_t *have; /* receiver's verified bitmap */
	uint64_t to_send, acked;
	uint8_t *scratch;
	/* I/O thread: reads chunks ahead, CRCs them, folds the file CRC */
	pthread_t io;
	int io_started, io_stop;
	/* The I/O thread did not end when asked (a hung disk): everything it
	 * may touch, this struct included, is left to it. */
	int io_stuck;
	int io_stall_ms; /* test hook */
	int fin_wait_ms; /* test hook */
	uint64_t io_beat; /* the I/O thread's last read done (its clock) */
	struct stream_waker io_wake;
	struct stream_ring to_io, from_io; /* slot ids (| IO_RESEND) */
	uint64_t next_idx;		   /* I/O thread's */
	uint32_t file_crc;		   /* I/O thread's until io_done */
	uint64_t io_skipped;		   /* bytes folded, not sent */
	int io_done;			   /* every chunk read once */
	int io_err;			   /* 0, or why the I/O thread quit */
	char io_errbuf[512];
	int held;    /* slot popped but not posted (queue full), or -1 */
	int starved; /* the window had room but no chunk was ready */
	int chunk_auto; /* the chunk size is ours to pick (no --chunk) */
	int pacer_wait; /* the last send waited for the pacer */
	int pacer_late; /* this send is the one the pacer held back */
	uint64_t set_pace_bps[STREAM_MAX_EPS]; /* kernel pacing cap now set */
	int kernel_pacing;     /* 1 on, 0 off, -1 unsupported */
	uint64_t kernel_pct;   /* each busy connection's cap, % of its share */
	int kernel_lend; /* lend a window-bound connection's share, or 0 */
	uint64_t sid;
	/* model */
	struct pace_model cc;
	struct pace_rs rs; /* delivery-rate sampler */
	uint64_t inflight_bytes, next_send_ns;
	/* the last chunk's pacing: from when, how long (see snd_pace_due) */
	uint64_t pace_from_ns, pace_len;
	uint64_t hold_ns;    /* receiver's hold time per chunk (EWMA) */
	uint64_t slack_base; /* (streams + 1) chunks */
	/* path probe: a connection that carries pings only */
	int probe_ep, probe_ready, probe_joined;
	int fin_sent; /* the receiver may close all but connection 0 now */
	/* Pings in flight, at most the receives the receiver keeps posted
	 * on the probe connection (JOIN_ACK's aux2; 1 from a receiver that
	 * does not say): one more would wait a round trip for its credit,
	 * and a queue of them measured 4 x the path (160 ms at 40 ms). */
	int probe_out, probe_credits;
	uint64_t probe_sent_ns;
	int kernel_rtt; /* 1: the delay target reads TCP's own RTT */
	int notsent_attr; /* 0: the provider cannot say what is unsent */
	uint64_t probe_next_ns, probe_interval_ns;
	uint32_t *prtt;
	uint64_t nprtt;
	/* the ICMP echo probe (stream_icmp.h), next to the TCP ping */
	struct stream_icmp icmp;
	int icmp_on;
	uint64_t icmp_next_ns;
	uint64_t icmp_last_ns; /* its last reply (0: none yet) */
	uint32_t *irtt;
	uint64_t nirtt;
	uint32_t *rtt;
	uint64_t nrtt;
	double jitter_ns;
	int64_t last_transit;
	int have_transit;
	/* handshake state */
	int hello_done, fin_done, pongs;
	uint64_t ping_min;
	int32_t fin_status;
	struct wccl_stream_stats st;
	uint64_t t0, last_progress_ns, last_report_ns;
	/* WCCL_DEBUG=TRACE: what held the sender back, per trace interval */
	struct {
		uint64_t at_ns, every_ns, delivered, wire;
		unsigned pacer, cwnd, noep, starved, eagain;
		unsigned paces, busy, lending; /* kernel cap passes */
	} tr;
	int64_t corrupt_idx;
	int corrupted;
	uint64_t drop_after;
	char *err;
	size_t errlen;
	const char *addr;
};

_Static_assert(STREAM_MAX_STREAMS == STREAM_MAX_EPS - 1,
	       "one endpoint beyond the data streams, for the path probe");

static int snd_fail(struct snd *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int snd_fail(struct snd *s, int rc, const char *fmt, ...)
{
	if (s->err && !s->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->err, s->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static uint8_t *ctrl_rx_buf(struct snd *s, int ep, int i)
{
	return s->creg + ((size_t)ep * s->nrx + (size_t)i) * STREAM_CTRL_BUF;
}

static uint8_t *ctrl_tx_buf(struct snd *s, int ep, int i)
{
	size_t base = (size_t)STREAM_MAX_EPS * s->nrx * STREAM_CTRL_BUF;
	return s->creg + base +
	       ((size_t)ep * CTRL_TX_PER_EP + (size_t)i) * STREAM_CTRL_BUF;
}

static int snd_ctrl(struct snd *s, int ep, const struct smsg *m,
		    const void *payload, size_t plen)
{
	for (int i = 0; i < CTRL_TX_PER_EP; i++) {
		if (s->ctrl_busy[ep][i])
			continue;
		uint8_t *b = ctrl_tx_buf(s, ep, i);
		smsg_put(b, m);
		if (plen)
			memcpy(b + SMSG_LEN, payload, plen);
		int rc = wccl_post_send(s->eps[ep], b, SMSG_LEN + plen, s->cmr,
					CK(K_TX_CTRL, ep, i));
		if (rc)
			return rc;
		s->ctrl_busy[ep][i] = 1;
		return 0;
	}
	return WCCL_EAGAIN;
}

static int snd_post_rx(struct snd *s, int ep, int i)
{
	return wccl_post_recv(s->eps[ep], ctrl_rx_buf(s, ep, i),
			      STREAM_CTRL_BUF, s->cmr, CK(K_RX, ep, i));
}

/* Open connection @ep; snd_connect_finish waits for it. Connections are
 * opened together and then waited for, so their handshakes overlap (16 in
 * turn took ~2.5 s before the first byte in the TCG guest). */
static int snd_connect_start(struct snd *s, int ep)
{
	int rc = wccl_connect(s->ctx, s->addr, s->cq, &s->eps[ep]);
	if (rc)
		return snd_fail(s, rc, "connect to receiver %s: %s", s->addr,
				wccl_strerror(rc));
	if (s->nep < ep + 1)
		s->nep = ep + 1;
	return 0;
}

static int snd_connect_finish(struct snd *s, int ep, int timeout_ms)
{
	int rc = wccl_endpoint_wait_established(s->eps[ep], timeout_ms);
	if (rc)
		return snd_fail(s, rc,
				"connect to receiver %s (connection %d): %s",
				s->addr, ep,
				wccl_endpoint_last_error(s->eps[ep])[0]
				    ? wccl_endpoint_last_error(s->eps[ep])
				    : wccl_strerror(rc));
	for (int i = 0; i < s->nrx; i++) {
		if (ep == 0 && i == 0) {
			rc = wccl_post_recv(s->eps[0], s->first_rx,
					    s->first_rx_len, s->cmr,
					    CK(K_RX_FIRST, 0, 0));
		} else {
			rc = snd_post_rx(s, ep, i);
		}
		if (rc)
			return snd_fail(s, rc, "post receive: %s",
					wccl_strerror(rc));
	}
	return 0;
}

static int snd_pump(struct snd *s, int wait_ms);

/* Wait for the JOIN_ACKs of data connections 1..n-1 (and of the probe). */
static int snd_wait_joined(struct snd *s, int n, int timeout_ms)
{
	uint64_t dl = wccl_deadline_ns(timeout_ms);
	for (;;) {
		int missing = -1;
		for (int i = 1; i < n && missing < 0; i++)
			if (!s->ep_ready[i])
				missing = i;
		if (missing < 0 && s->probe_ep > 0 && !s->probe_joined)
			missing = s->probe_ep;
		if (missing < 0)
			return 0;
		if (wccl_now_ns() > dl)
			return snd_fail(s, WCCL_ETIMEDOUT,
					"receiver %s did not accept connection "
					"%d in %d ms",
					s->addr, missing, timeout_ms);
		int rc = snd_pump(s, 10);
		if (rc)
			return rc;
	}
}

static int snd_connect(struct snd *s, int ep, int timeout_ms)
{
	int rc = snd_connect_start(s, ep);
	return rc ? rc : snd_connect_finish(s, ep, timeout_ms);
}

static void snd_rtt_sample(struct snd *s, uint64_t rtt)
{
	uint32_t us = (uint32_t)(rtt / 1000);
	if (s->nrtt < RTT_SAMPLES) {
		s->rtt[s->nrtt] = us;
	} else { /* reservoir */
		uint64_t r =
		    ((uint64_t)rand() << 31 | (uint64_t)rand()) % (s->nrtt + 1);
		if (r < RTT_SAMPLES)
			s->rtt[r] = us;
	}
	s->nrtt++;
}

/* I/O thread. On failure the reason goes to s->io_errbuf. */
static int read_chunk(struct snd *s, uint64_t idx, uint8_t *dst, uint32_t *len)
{
	uint64_t off = idx * s->chunk;
	uint32_t n =
	    (uint32_t)(s->size - off < s->chunk ? s->size - off : s->chunk);
	uint32_t got = 0;
	while (got < n) {
		ssize_t r =
		    pread(s->fd, dst + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int rc = r < 0 ? -errno : WCCL_EIO;
			snprintf(s->io_errbuf, sizeof(s->io_errbuf),
				 "reading source at offset %llu: %s",
				 (unsigned long long)(off + got),
				 r < 0 ? strerror(-rc)
				       : "file shrank while sending");
			return rc;
		}
		got += (uint32_t)r;
	}
	*len = n;
	return 0;
}

/* When the next chunk may leave: the last one's start plus its time at
 * the pacing rate as it is now, not as it was when that chunk left. In
 * startup the first samples come one per ack, the first ones low: a 128
 * KiB chunk sent at 10 Mbit/s set the next send 100 ms away, and the
 * rate raised to 84 a few ms later waited for it (seen: nothing sent for
 * 60 ms of the first 300 at 100 Mbit/s, 40 ms). */
static void snd_pace_due(struct snd *s)
{
	if (s->cc.pacing_rate && s->pace_len)
		s->next_send_ns = s->pace_from_ns +
				  s->pace_len * 1000000000ull /
				      s->cc.pacing_rate;
}

static int slot_send(struct snd *s, struct snd_slot *sl, int ep, uint64_t now)
{
	struct smsg m = {.magic = SMSG_MAGIC,
			 .type = SM_DATA,
			 .sid = s->sid,
			 .index = sl->idx,
			 .offset = sl->idx * s->chunk,
			 .len = sl->len,
			 .crc = sl->crc,
			 .send_ts = now};
	smsg_put(sl->buf, &m);
	int rc = wccl_post_send(s->eps[ep], sl->buf, SMSG_LEN + sl->len, s->smr,
				CK(K_TX_DATA, ep, sl - s->slots));
	if (rc)
		return rc;
	pace_rs_on_send(&s->rs, &sl->rs, now, s->inflight_bytes);
	sl->ep = ep;
	sl->tx_busy = 1;
	sl->inflight = 1;
	sl->release = 0;
	sl->send_ts = now;
	s->ep_inflight[ep]++;
	s->ep_slots[ep]++;
	s->inflight_bytes += sl->len;
	s->st.bytes_wire += sl->len;
	if (s->cc.pacing_rate) {
		/* A late wake-up for the pacer (the loop sleeps in whole ms,
		 * longer under an emulator) is made up on the next chunk, if
		 * it was late by less than a chunk's time: else each one is
		 * lost and the rate falls a few % below the pacing rate. Not
		 * after the window or an empty queue held us: no burst. */
		uint64_t t = (uint64_t)sl->len * 1000000000ull /
			     s->cc.pacing_rate;
		uint64_t from = s->next_send_ns > now ? s->next_send_ns : now;
		if (s->pacer_late && s->next_send_ns + t >= now)
			from = s->next_send_ns;
		s->pace_from_ns = from;
		s->pace_len = sl->len;
		snd_pace_due(s);
	}
	return 0;
}

/* The connection for the next chunk: the one holding the fewest chunk
 * buffers, those acked but not yet released by its send queue included,
 * and among equals the next in turn. A zero-copy send's buffer comes back
 * when the kernel lets go of its pages, and on Linux 6.1 (the VM) a
 * connection that kept sending got them back late, in bulk: picking by
 * chunks in flight, lowest index first, kept connection 0 busiest, up to
 * 12 of its buffers sat acked but held for 2 s, and once the I/O thread
 * had none left to fill the sender stalled 100-150 ms, every 1.5 s. */
static int pick_ep(struct snd *s)
{
	int best = stream_pick_conn(s->nep, s->ep_ready, s->ep_slots,
				    s->pick_from);
	if (best >= 0)
		s->pick_from = (best + 1) % s->nep;
	return best;
}

/* ---- I/O thread --------------------------------------------------- */

/* Fold chunks the receiver already verified into the whole-file CRC (the
 * file is checksummed in order, so only a verified prefix of what is left
 * can be folded now). */
static int snd_io_fold(struct snd *s)
{
	while (s->next_idx < s->nchunks && s->have &&
	       stream_journal_has(&(struct stream_journal){.bitmap = s->have},
				  s->next_idx)) {
		uint32_t len;
		int rc = read_chunk(s, s->next_idx, s->scratch, &len);
		if (rc)
			return rc;
		s->file_crc = wccl_crc32c(s->file_crc, s->scratch, len);
		__atomic_store_n(&s->io_skipped, s->io_skipped + len,
				 __ATOMIC_RELAXED);
		s->next_idx++;
	}
	if (s->next_idx >= s->nchunks)
		__atomic_store_n(&s->io_done, 1, __ATOMIC_RELEASE);
	return 0;
}

/* Next chunk into @sl: read, CRC, fold. 1 filled, 0 none left. */
static int snd_io_fill(struct snd *s, struct snd_slot *sl)
{
	if (s->next_idx >= s->nchunks)
		return 0;
	sl->idx = s->next_idx;
	int rc = read_chunk(s, sl->idx, sl->buf + SMSG_LEN, &sl->len);
	if (rc)
		return rc;
	sl->crc = wccl_crc32c(0, sl->buf + SMSG_LEN, sl->len);
	/* One pass over the data: the whole-file CRC is combined from the
	 * chunks' CRCs. */
	s->file_crc = wccl_crc32c_combine(s->file_crc, sl->crc, sl->len);
	if ((int64_t)sl->idx == s->corrupt_idx && !s->corrupted) {
		sl->buf[SMSG_LEN + sl->len / 2] ^= 0x10;
		s->corrupted = 1;
		WCCL_INFO(WCCL_SUB_TRANSPORT,
			  "stream test hook: corrupted chunk %llu",
			  (unsigned long long)sl->idx);
	}
	s->next_idx++;
	return 1;
}

/* One piece of I/O work. 1 done, 0 nothing to do, or a negative code. */
static int snd_io_step(struct snd *s)
{
	uint32_t v;
	int rc = snd_io_fold(s);
	if (rc)
		return rc;
	if (stream_ring_pop(&s->to_io, &v))
		return 0;
	if (s->io_stall_ms) { /* test hook: a read that hangs */
		usleep((useconds_t)s->io_stall_ms * 1000u);
		s->io_stall_ms = 0;
	}
	struct snd_slot *sl = &s->slots[v & ~IO_RESEND];
	if (v & IO_RESEND) {
		/* Re-read: the copy in memory may be what went bad. */
		uint32_t len;
		rc = read_chunk(s, sl->idx, sl->buf + SMSG_LEN, &len);
	} else {
		rc = snd_io_fill(s, sl);
		if (rc == 0)
			return 1; /* nothing left: the slot rests */
		rc = rc < 0 ? rc : 0;
	}
	if (rc)
		return rc;
	__atomic_store_n(&s->io_beat, wccl_now_ns(), __ATOMIC_RELAXED);
	stream_ring_push(&s->from_io, v & ~IO_RESEND);
	return 1;
}

static void *snd_io_main(void *arg)
{
	struct snd *s = arg;
	int rc = 0;
	while (!__atomic_load_n(&s->io_stop, __ATOMIC_ACQUIRE)) {
		uint32_t seen = stream_waker_seen(&s->io_wake);
		rc = snd_io_step(s);
		if (rc < 0)
			break;
		if (rc == 0)
			stream_waker_wait(&s->io_wake, seen, 50);
	}
	if (rc < 0)
		__atomic_store_n(&s->io_err, rc, __ATOMIC_RELEASE);
	return NULL;
}

/* Without an I/O thread (WCCL_STREAM_IO_THREAD=0) the network thread
 * does the reads itself, here, when it has nothing else to do. */
static void snd_io_inline(struct snd *s)
{
	int rc;
	if (s->io_started || __atomic_load_n(&s->io_err, __ATOMIC_RELAXED))
		return;
	while ((rc = snd_io_step(s)) > 0)
		;
	if (rc < 0)
		__atomic_store_n(&s->io_err, rc, __ATOMIC_RELEASE);
}

static int snd_io_check(struct snd *s)
{
	int rc = __atomic_load_n(&s->io_err, __ATOMIC_ACQUIRE);
	return rc ? snd_fail(s, rc, "%s", s->io_errbuf) : 0;
}

/* Back to the I/O thread, once acked and off the send queue. */
static void snd_give_back(struct snd *s, struct snd_slot *sl)
{
	s->ep_slots[sl->ep]--;
	sl->release = 0;
	stream_ring_push(&s->to_io, (uint32_t)(sl - s->slots) | sl->give_as);
	stream_waker_kick(&s->io_wake);
}

static void snd_io_stop(struct snd *s)
{
	if (!s->io_started)
		return;
	__atomic_store_n(&s->io_stop, 1, __ATOMIC_RELEASE);
	stream_waker_kick(&s->io_wake);
	if (stream_io_join(s->io, 2000)) {
		s->io_stuck = 1;
		WCCL_WARN(WCCL_SUB_TRANSPORT,
			  "stream to %s: the I/O thread is stuck in the kernel "
			  "(a hung disk?); left behind with its memory",
			  s->addr);
	}
	s->io_started = 0;
}

/* Each connection's cap, bytes/s (0 = none), from its unsent bytes and
 * its window's rate (stream_pace_caps). A busy connection whose window
 * cannot carry its share, one cut by a loss, lends what it cannot use to
 * the others while the probe sees no queue: the headroom goes where it
 * can be used. (A flat 140 % instead of 110 % gained 6-11 Mbit/s of 100
 * in the VM, lossy and east-west, for 6-10 ms of probe p99.) */
static void snd_pace_caps(struct snd *s, uint64_t base, uint64_t pct,
			  uint64_t *cap)
{
	uint64_t nb[STREAM_MAX_EPS] = {0}, cwr[STREAM_MAX_EPS] = {0};
	if (!base) { /* uncapped: no TCP_INFO reads on a short path */
		memset(cap, 0, sizeof(*cap) * (size_t)s->nep);
		return;
	}
	for (int i = 0; s->notsent_attr && i < s->nep; i++) {
		if (!s->ep_ready[i] || !s->ep_inflight[i])
			continue;
		if (wccl_endpoint_get_attr(
			s->eps[i], WCCL_EP_ATTR_NOTSENT_BYTES, &nb[i])) {
			s->notsent_attr = 0; /* the whole rate each */
			memset(nb, 0, sizeof(nb));
			break;
		}
		if (nb[i] && s->kernel_lend &&
		    wccl_endpoint_get_attr(s->eps[i], WCCL_EP_ATTR_CWND_RATE,
					   &cwr[i]))
			s->kernel_lend = 0;
	}
	if (!s->kernel_lend)
		memset(cwr, 0, sizeof(cwr));
	int busy;
	int lent = stream_pace_caps(s->nep, nb, cwr, base, pct, cap, &busy);
	s->tr.paces++;
	s->tr.busy += (unsigned)busy;
	s->tr.lending += (unsigned)lent;
}

/* The kernel paces each connection at 1.1 x (WCCL_STREAM_KERNEL_PACING_PCT)
 * its share of the model's rate: the rate over the connections that
 * still have unsent bytes
 * (TCP_INFO's notsent). A chunk leaves as a paced stream, not a line-rate
 * burst, and two chunks draining at once share the rate instead of
 * doubling it (each at 1.25 x the whole rate, they kept 10-30 ms spikes
 * of queue on the path: seen in the VM at 40 Mbit/s). Not a share of all
 * connections, nor of those with a chunk in flight: most of those wait
 * for their ack with nothing to send, and a chunk going alone then ran at
 * one share (27 Mbit/s of 100 for 8 s, and the cap fed back into the rate
 * samples). Changes under 1/16 are not worth a syscall. */
static void snd_kernel_pace(struct snd *s)
{
	uint64_t cap[STREAM_MAX_EPS];
	if (s->kernel_pacing <= 0 || !s->nstreams)
		return;
	/* While the probe sees a queue, no connection may go above its
	 * share: the headroom that lets one catch up after a loss would
	 * only add to the queue. In the VM (lossy, 40 Mbit/s), against 1.25
	 * always: steady ping p99 46.8 against 52.0 ms, whole-run 50.7
	 * against 65.6, for 33.7 against 34.9 Mbit/s. On a short path the
	 * cap only feeds back into the estimate (the CPU is the bottleneck
	 * there, and it is noisy). Nor may they, all together, go above
	 * the rate that began the last queue (stream_pace_headroom). */
	uint64_t pct = s->cc.probe_queued ? 100 : s->kernel_pct;
	uint64_t base = pace_model_long_path(&s->cc) ? s->cc.pacing_rate : 0;
	pct = stream_pace_headroom(pct, base, s->cc.queue_rate);
	snd_pace_caps(s, base, pct, cap);
	for (int i = 0; i < s->nep; i++) {
		uint64_t r = cap[i], was = s->set_pace_bps[i];
		uint64_t d = r > was ? r - was : was - r;
		if (!s->ep_ready[i])
			continue; /* the probe, or not joined yet */
		if (d <= was / 16 && (r != 0) == (was != 0))
			continue;
		int rc = wccl_endpoint_set_attr(
		    s->eps[i], WCCL_EP_ATTR_MAX_PACING_RATE, r);
		if (rc) {
			WCCL_INFO(WCCL_SUB_TRANSPORT,
				  "stream: no kernel pacing on %s (%s): the "
				  "engine's pacer alone",
				  wccl_endpoint_peer(s->eps[i]),
				  wccl_strerror(rc));
			s->kernel_pacing = -1;
			return;
		}
		s->set_pace_bps[i] = r;
	}
}

/* The delay signal from the kernel: each busy connection's smoothed RTT,
 * measured by TCP per segment, so neither chunk serialisation nor either
 * side's scheduling is in it (the ping probe has the receiver's). */
static void snd_kernel_rtt(struct snd *s, uint64_t now)
{
	for (int i = 0; i < s->nep; i++) {
		uint64_t us;
		if (!s->ep_ready[i] || !s->ep_inflight[i])
			continue;
		int rc = wccl_endpoint_get_attr(s->eps[i],
						WCCL_EP_ATTR_SRTT_US, &us);
		if (rc) {
			s->kernel_rtt = 0;
			WCCL_INFO(WCCL_SUB_TRANSPORT,
				  "stream: no kernel RTT on %s (%s): delay "
				  "target from the ping probe",
				  wccl_endpoint_peer(s->eps[i]),
				  wccl_strerror(rc));
			return;
		}
		if (us)
			pace_model_on_probe(&s->cc, now, us * 1000);
	}
}

/* The ICMP probe drives the delay target while it answers: a reply in
 * the last 500 ms (a lost echo or two is no reason to switch). */
static int snd_icmp_alive(const struct snd *s, uint64_t now)
{
	return s->icmp_on && s->icmp_last_ns &&
	       now - s->icmp_last_ns < 500000000ull;
}

/* On a long path, open the ICMP probe to the receiver's host; where the
 * host allows no ICMP socket the TCP ping carries on alone. */
static void snd_icmp_open(struct snd *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *peer = wccl_endpoint_peer(s->eps[0]);
	if (!wccl_param_int(WCCL_PARAM_STREAM_PROBE_ICMP) || !peer)
		return;
	if (wccl_sock_parse(wccl_addr_detail(peer), 0, &ss, &len)) {
		WCCL_INFO(WCCL_SUB_TRANSPORT,
			  "stream: no ICMP probe: %s is not an IP peer", peer);
		return;
	}
	int rc = stream_icmp_open(&s->icmp, (struct sockaddr *)&ss, len);
	if (rc) {
		WCCL_INFO(WCCL_SUB_TRANSPORT,
			  "stream: no ICMP probe to %s (%s): the TCP ping "
			  "drives the delay target",
			  peer, strerror(-rc));
		return;
	}
	s->icmp_on = 1;
	WCCL_INFO(WCCL_SUB_TRANSPORT, "stream: ICMP probe to %s (%s socket)",
		  peer, s->icmp.raw ? "raw" : "datagram");
}

/* Replies waiting on the ICMP probe: samples for the model and stats. */
static void snd_icmp_poll(struct snd *s, uint64_t now)
{
	uint64_t r;
	int rc;
	while ((rc = stream_icmp_recv(&s->icmp, &r)) == 1) {
		s->icmp_last_ns = now;
		if (!s->kernel_rtt)
			pace_model_on_probe(&s->cc, now, r);
		if (s->nirtt < RTT_SAMPLES)
			s->irtt[s->nirtt] = (uint32_t)(r / 1000);
		s->nirtt++;
	}
	if (rc < 0 && rc != -EINTR) {
		/* ECONNREFUSED and the like: an ICMP error for an earlier
		 * echo; the next ones may still get through. */
		WCCL_TRACE(WCCL_SUB_TRANSPORT, "stream: ICMP probe: %s",
			   strerror(-rc));
	}
}

/* Wall-clock seconds: the trace lines up with other tools' stamps
 * (ping -D in perf/stream/guest-bench.sh). */
static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* WCCL_DEBUG=TRACE, every WCCL_STREAM_TRACE_MS: the model and what held
 * the sender back (counts of send attempts stopped by the pacer, the
 * window, no free connection, no chunk ready, a full send queue). */
static void snd_trace(struct snd *s, uint64_t now)
{
	if (now - s->tr.at_ns < s->tr.every_ns)
		return;
	double dt = (double)(now - s->tr.at_ns) / 1e9;
	/* Where the chunk buffers are: on the wire (sent, not acked), acked
	 * but still on a send queue, ready to send, with the I/O thread. */
	int flight = 0, queued = 0;
	for (int i = 0; i < s->depth; i++) {
		flight += s->slots[i].inflight;
		queued += !s->slots[i].inflight && s->slots[i].tx_busy;
	}
	int ready = (int)stream_ring_count(&s->from_io) + (s->held >= 0);
	uint64_t kcap = 0; /* the kernel's caps, all connections */
	for (int i = 0; i < s->nep; i++)
		kcap += s->set_pace_bps[i];
	WCCL_TRACE(WCCL_SUB_TRANSPORT,
		   "stream trace t=%.2f wall=%.3f good=%.1f wire=%.1f btlbw=%.1f "
		   "pace=%.1f learned=%.1f kernel=%.1f Mbit/s cwnd=%llu "
		   "inflight=%llu phase=%d gain=%.2f q=%.2f hold=%.1f "
		   "probe=%.1f/%.1f jit=%.1f ms "
		   "stops pacer=%u cwnd=%u noep=%u starved=%u eagain=%u "
		   "busy=%.1f lending=%.1f slots flight=%d queued=%d "
		   "ready=%d io=%d",
		   (double)(now - s->t0) / 1e9, wall_s(),
		   (double)(s->st.bytes_delivered - s->tr.delivered) * 8 / dt /
		       1e6,
		   (double)(s->st.bytes_wire - s->tr.wire) * 8 / dt / 1e6,
		   (double)s->cc.btlbw * 8 / 1e6,
		   (double)s->cc.pacing_rate * 8 / 1e6,
		   (double)s->cc.queue_rate * 8 / 1e6, (double)kcap * 8 / 1e6,
		   (unsigned long long)s->cc.cwnd,
		   (unsigned long long)s->inflight_bytes, s->cc.phase,
		   s->cc.pacing_gain, s->cc.qfactor, (double)s->hold_ns / 1e6,
		   (double)s->cc.probe_last_ns / 1e6,
		   (double)s->cc.probe_min_ns / 1e6,
		   s->cc.probe_jit_ns / 1e6, s->tr.pacer, s->tr.cwnd,
		   s->tr.noep, s->tr.starved, s->tr.eagain,
		   s->tr.paces ? (double)s->tr.busy / s->tr.paces : 0.0,
		   s->tr.paces ? (double)s->tr.lending / s->tr.paces : 0.0,
		   flight, queued, ready, s->depth - flight - queued - ready);
	s->tr.at_ns = now;
	s->tr.delivered = s->st.bytes_delivered;
	s->tr.wire = s->st.bytes_wire;
	s->tr.pacer = s->tr.cwnd = s->tr.noep = s->tr.starved = 0;
	s->tr.eagain = 0;
	s->tr.paces = s->tr.busy = s->tr.lending = 0;
}

/* Send as many ready chunks as pacing and the window allow. Returns 1 if
 * something was sent, 0 if not, or a negative code. */
static int snd_try_send(struct snd *s, uint64_t now)
{
	int sent = 0;
	s->starved = 0;
	snd_pace_due(s);
	for (;;) {
		if (s->cc.pacing_rate && now < s->next_send_ns) {
			s->pacer_wait = 1;
			s->tr.pacer++;
			return sent;
		}
		/* Waiting for the pacer and woken more than half a chunk
		 * late: this thread, not the path, set the rate (a busy
		 * CPU; under TCG tens of ms): app-limited, as when the
		 * I/O thread has nothing ready. */
		if (s->pacer_wait && s->cc.pacing_rate &&
		    now - s->next_send_ns >
			(uint64_t)s->chunk * 500000000ull / s->cc.pacing_rate)
			pace_rs_app_limited(&s->rs, s->inflight_bytes);
		s->pacer_late = s->pacer_wait;
		s->pacer_wait = 0;
		if (s->inflight_bytes &&
		    s->inflight_bytes + s->chunk > s->cc.cwnd) {
			s->tr.cwnd++;
			return sent;
		}
		int ep = pick_ep(s);
		if (ep < 0) {
			s->tr.noep++;
			return sent;
		}
		int si = s->held;
		if (si < 0) {
			uint32_t v;
			if (stream_ring_pop(&s->from_io, &v)) {
				s->starved = s->acked < s->to_send;
				/* Room, nothing to send: what is acked
				 * meanwhile says nothing of the path. */
				if (s->starved) {
					pace_rs_app_limited(&s->rs,
							    s->inflight_bytes);
					s->tr.starved++;
				}
				return sent;
			}
			si = (int)v;
		}
		struct snd_slot *sl = &s->slots[si];
		int rc = slot_send(s, sl, ep, now);
		if (rc == WCCL_EAGAIN) {
			/* Queue full: keep the slot for the next round. */
			s->held = si;
			s->tr.eagain++;
			return sent;
		}
		if (rc)
			return snd_fail(s, rc, "send to receiver %s: %s",
					wccl_endpoint_peer(s->eps[ep]),
					wccl_strerror(rc));
		s->held = -1;
		sent = 1;
	}
}

static void snd_on_ack(struct snd *s, const struct smsg *m, int nak,
		       uint64_t now)
{
	struct snd_slot *sl = NULL;
	for (int i = 0; i < s->depth; i++)
		if (s->slots[i].inflight && s->slots[i].idx == m->index) {
			sl = &s->slots[i];
			break;
		}
	if (!sl)
		return; /* duplicate */
	/* The network's share of the round trip: the receiver says how
	 * long it held the chunk (CRC, write, queueing behind its I/O
	 * thread), as QUIC's ack delay; that time is no queue on the path. */
	uint64_t rtt = now - m->send_ts;
	if (m->aux2 < rtt)
		rtt -= m->aux2;
	/* ... but the chunk counts in flight while it is held: the window
	 * carries the bytes the receiver holds on top of the path's. */
	uint64_t hold = m->aux2 < 1000000000ull ? m->aux2 : 1000000000ull;
	s->hold_ns = s->hold_ns ? (7 * s->hold_ns + hold) / 8 : hold;
	s->cc.unit_slack =
	    s->slack_base + s->cc.btlbw * s->hold_ns / 1000000000ull;
	sl->inflight = 0;
	s->ep_inflight[sl->ep]--;
	s->inflight_bytes -= sl->len;
	sl->release = 1;
	if (nak) {
		s->st.crc_errors++;
		s->st.retransmits++;
		sl->give_as = IO_RESEND;
		if (!sl->tx_busy)
			snd_give_back(s, sl);
		WCCL_WARN(WCCL_SUB_TRANSPORT,
			  "stream: receiver %s rejected chunk %llu (crc), "
			  "sending it again",
			  wccl_endpoint_peer(s->eps[sl->ep]),
			  (unsigned long long)m->index);
		return;
	}
	sl->give_as = 0;
	/* BBR's delivery rate (transport/pacing/pace_rate.c), with the
	 * receiver's arrival stamp as a third interval: acks that arrive
	 * bunched (the receiver's I/O thread answers in bursts, either side
	 * waits for a CPU under an emulator) must not read as a faster path;
	 * and with the receiver's byte count (ACK offset: TCP's, partial
	 * chunks included), the bytes it received over its own interval.
	 * On a short path the CPU is the bottleneck and a generous estimate
	 * (pacing above it) is what keeps it busy: the ack interval alone. */
	s->rs.ack_only = !pace_model_long_path(&s->cc);
	/* A long path: the rate at the receiver (its byte counts, partial
	 * chunks included, so chunks finishing out of order across the
	 * connections do not skew it) over its last two path RTTs in
	 * startup and drain, so that the estimate holds the link's rate
	 * when startup meets the queue, and over four in probe_bw. A window
	 * of 2 chunks per connection instead (7.5 MB with 15 x 256 KiB, 1.5
	 * s at 40 Mbit/s) lagged each probe-up by more than a cycle, so an
	 * estimate that startup left low climbed 5 % a cycle: east-west at
	 * 100 Mbit/s in the VM 36.0 / 37.8 / 77.9 Mbit/s against 85.9 /
	 * 84.2 / 75.6 with four RTTs; lossy 78.9 against 84.3 (means of
	 * 2); at 40 Mbit/s the same goodput and ~4 ms more steady p99. */
	s->rs.rcv_window_ns =
	    s->rs.ack_only ? 0
	    : s->cc.phase < 2 ? 2 * s->cc.probe_min_ns
			      : SAMPLE_PATH_RTTS * s->cc.probe_min_ns;
	s->cc.recent_samples = s->rs.rcv_window_ns && m->aux1 && m->offset;
	struct pace_rs_sample rs;
	pace_rs_on_ack(&s->rs, &sl->rs, sl->len, now, m->aux1, m->offset,
		       s->rs.ack_only ? 0 : s->ping_min, &rs);
	/* A sample taken while the I/O thread lagged counts only if it
	 * raises the estimate (BBR's app-limited rule). */
	uint64_t rate = rs.rate;
	if (rs.app_limited && rate <= s->cc.btlbw)
		rate = 0;
	pace_model_on_ack(&s->cc, now, rtt, rate, rs.prior_delivered,
			  s->rs.delivered, s->inflight_bytes);
	snd_rtt_sample(s, rtt);
	int64_t transit = (int64_t)(m->aux1 - m->send_ts);
	if (s->have_transit) {
		int64_t d = transit - s->last_transit;
		if (d < 0)
			d = -d;
		s->jitter_ns += ((double)d - s->jitter_ns) / 16.0;
	}
	s->last_transit = transit;
	s->have_transit = 1;
	s->st.bytes_delivered += sl->len;
	s->st.chunks++;
	s->acked++;
	s->last_progress_ns = now;
	/* Last: from here on the I/O thread may refill the slot. */
	if (!sl->tx_busy)
		snd_give_back(s, sl);
}

static int snd_handle(struct snd *s, const struct wccl_completion *wc,
		      uint64_t now)
{
	int kind = CK_KIND(wc->cookie), ep = CK_EP(wc->cookie);
	uint64_t idx = CK_IDX(wc->cookie);
	if (wc->status) {
		if (s->fin_sent && ep != 0)
			return 0; /* the receiver hanging up after the verdict */
		const char *le =
		    ep < s->nep ? wccl_endpoint_last_error(s->eps[ep]) : "";
		return snd_fail(s, wc->status, "receiver %s: %s", s->addr,
				le[0] ? le : wccl_strerror(wc->status));
	}
	if (kind == K_TX_DATA) {
		struct snd_slot *sl = &s->slots[idx];
		sl->tx_busy = 0;
		if (sl->release)
			snd_give_back(s, sl);
		return 0;
	}
	if (kind == K_TX_CTRL) {
		s->ctrl_busy[ep][idx] = 0;
		return 0;
	}
	const uint8_t *b =
	    kind == K_RX_FIRST ? s->first_rx : ctrl_rx_buf(s, ep, (int)idx);
	struct smsg m;
	if (smsg_get(b, wc->len, &m))
		return snd_fail(s, WCCL_EPROTO,
				"receiver %s: malformed message", s->addr);
	int rc = 0;
	switch (m.type) {
	case SM_HELLO_ACK:
		if ((int64_t)m.aux1 != 0) {
			/* The text names the receiver and the cause. */
			size_t tl = wc->len - SMSG_LEN;
			return snd_fail(s, (int)(int64_t)m.aux1, "%.*s",
					(int)tl, (const char *)b + SMSG_LEN);
		}
		if (m.len && m.len != s->chunk) {
			/* Resuming: the receiver's journal sets the size. */
			if (!s->chunk_auto || m.len < STREAM_AUTO_CHUNK_MIN ||
			    m.len > STREAM_MAX_CHUNK)
				return snd_fail(s, WCCL_EPROTO,
						"receiver %s: chunk size %u, "
						"not the %u asked for",
						s->addr, m.len, s->chunk);
			uint8_t *sc = realloc(s->scratch, m.len);
			if (!sc)
				return WCCL_ENOMEM;
			s->scratch = sc;
			WCCL_INFO(WCCL_SUB_TRANSPORT,
				  "stream to %s: resuming with the receiver's "
				  "%u-byte chunks (picked %u)",
				  s->addr, m.len, s->chunk);
			s->chunk = m.len;
			s->nchunks = (s->size + s->chunk - 1) / s->chunk;
			s->to_send = s->nchunks;
		}
		if (m.index > s->nchunks)
			return snd_fail(s, WCCL_EPROTO,
					"receiver %s: %llu chunks verified of "
					"%llu",
					s->addr, (unsigned long long)m.index,
					(unsigned long long)s->nchunks);
		if (m.index) {
			size_t bm = (s->nchunks + 7) / 8;
			if (wc->len < SMSG_LEN + bm)
				return snd_fail(s, WCCL_EPROTO,
						"receiver %s: short bitmap",
						s->addr);
			s->have = malloc(bm ? bm : 1);
			if (!s->have)
				return WCCL_ENOMEM;
			memcpy(s->have, b + SMSG_LEN, bm);
			s->to_send = s->nchunks - m.index;
		}
		s->hello_done = 1;
		s->ep_ready[0] = 1;
		break;
	case SM_JOIN_ACK:
		if (ep == s->probe_ep && s->probe_ep > 0) {
			s->probe_joined = 1;
			if ((int64_t)m.aux1)
				WCCL_INFO(WCCL_SUB_TRANSPORT,
					  "stream: receiver %s has no path "
					  "probe; delay target from chunk RTTs",
					  s->addr);
			else
				s->probe_ready = 1;
			s->probe_credits =
			    m.aux2 ? (int)(m.aux2 < STREAM_PROBE_RX
					       ? m.aux2
					       : STREAM_PROBE_RX)
				   : 1;
			if ((int64_t)m.aux1)
				return 0; /* turned away: no receive to post */
			break;
		}
		if ((int64_t)m.aux1)
			return snd_fail(s, (int)(int64_t)m.aux1,
					"receiver %s refused stream %d",
					s->addr, ep);
		s->ep_ready[ep] = 1;
		break;
	case SM_PONG: {
		uint64_t r = now - m.send_ts;
		if (ep == s->probe_ep && s->probe_ep > 0) {
			if (s->probe_out > 0)
				s->probe_out--;
			if (!s->kernel_rtt && !snd_icmp_alive(s, now))
				pace_model_on_probe(&s->cc, now, r);
			if (s->nprtt < RTT_SAMPLES)
				s->prtt[s->nprtt++] = (uint32_t)(r / 1000);
			break;
		}
		if (!s->ping_min || r < s->ping_min)
			s->ping_min = r;
		s->pongs++;
		break;
	}
	case SM_ACK:
	case SM_NAK:
		snd_on_ack(s, &m, m.type == SM_NAK, now);
		break;
	case SM_FIN_ACK:
		s->fin_done = 1;
		s->fin_status = (int32_t)(int64_t)m.aux1;
		if (s->fin_status) {
			size_t tl = wc->len - SMSG_LEN;
			snd_fail(s, s->fin_status, "%.*s", (int)tl,
				 (const char *)b + SMSG_LEN);
		}
		/* The last word: the receiver closes after it, so no receive
		 * is posted again (it would fail on the closed connection). */
		return 0;
	case SM_ERROR: {
		size_t tl = wc->len - SMSG_LEN;
		return snd_fail(s,
				(int)(int64_t)m.aux1 ? (int)(int64_t)m.aux1
						     : WCCL_EREMOTE,
				"%.*s", (int)tl, (const char *)b + SMSG_LEN);
	}
	default:
		return snd_fail(s, WCCL_EPROTO,
				"receiver %s: unexpected message type %u",
				s->addr, m.type);
	}
	if (kind == K_RX)
		rc = snd_post_rx(s, ep, (int)idx);
	else
		rc = snd_post_rx(s, 0, 0);
	if (rc && s->fin_sent && ep != 0)
		return 0; /* the verdict comes on connection 0 */
	if (rc)
		return snd_fail(s, rc, "post receive: %s", wccl_strerror(rc));
	return 0;
}

/* One round of progress: wait up to @wait_ms for completions and handle
 * them. Returns 0 or a negative code. */
static int snd_pump(struct snd *s, int wait_ms)
{
	struct wccl_completion wc[32];
	int n = wait_ms > 0 ? stream_cq_wait(s->cq, wc, 32, wait_ms)
			    : wccl_cq_poll(s->cq, wc, 32);
	if (n == WCCL_ETIMEDOUT)
		return 0;
	if (n < 0)
		return snd_fail(s, n, "completion queue: %s", wccl_strerror(n));
	uint64_t now = wccl_now_ns();
	/* Past the verdict, what follows is the receiver hanging up. */
	for (int i = 0; i < n && !s->fin_done; i++) {
		int rc = snd_handle(s, &wc[i], now);
		if (rc)
			return rc;
	}
	return 0;
}

static void snd_fill_stats(struct snd *s, uint64_t now)
{
	struct wccl_stream_stats *st = &s->st;
	st->file_bytes = s->size;
	st->seconds = (double)(now - s->t0) / 1e9;
	st->goodput_bps =
	    st->seconds > 0 ? (double)st->bytes_delivered * 8 / st->seconds : 0;
	st->jitter_us = s->jitter_ns / 1000;
	st->pacing_bps = (double)s->cc.pacing_rate * 8;
	st->btlbw_bps = (double)s->cc.btlbw * 8;
	st->cwnd_bytes = s->cc.cwnd;
	st->nstreams = s->nstreams;
	st->depth = s->depth;
	st->chunk_bytes = s->chunk;
	st->bytes_skipped = __atomic_load_n(&s->io_skipped, __ATOMIC_RELAXED);
	if (__atomic_load_n(&s->io_done, __ATOMIC_ACQUIRE))
		st->file_crc = s->file_crc;
	st->rtt_min_us = (double)s->cc.min_rtt_ns / 1000;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Min, p50 and p99 of @n probe samples (us; at most RTT_SAMPLES kept). */
static void probe_percentiles(uint32_t *v, uint64_t n, double *min,
			      double *p50, double *p99)
{
	if (n > RTT_SAMPLES)
		n = RTT_SAMPLES;
	if (!n)
		return;
	qsort(v, n, sizeof(uint32_t), cmp_u32);
	*min = v[0];
	*p50 = v[(n - 1) * 50 / 100];
	*p99 = v[(n - 1) * 99 / 100];
}

static void snd_percentiles(struct snd *s)
{
	uint64_t n = s->nrtt < RTT_SAMPLES ? s->nrtt : RTT_SAMPLES;
	if (!n)
		return;
	qsort(s->rtt, n, sizeof(uint32_t), cmp_u32);
	s->st.rtt_min_us = s->rtt[0]; /* of the run, not the model's window */
	s->st.rtt_p50_us = s->rtt[(n - 1) * 50 / 100];
	s->st.rtt_p99_us = s->rtt[(n - 1) * 99 / 100];
	s->st.rtt_p999_us = s->rtt[(n - 1) * 999 / 1000];
	s->st.probe_samples = s->nprtt;
	probe_percentiles(s->prtt, s->nprtt, &s->st.probe_min_us,
			  &s->st.probe_p50_us, &s->st.probe_p99_us);
	s->st.icmp_samples = s->nirtt;
	probe_percentiles(s->irtt, s->nirtt, &s->st.icmp_min_us,
			  &s->st.icmp_p50_us, &s->st.icmp_p99_us);
}

/* Returns 1 if @s must not be freed (a stuck I/O thread holds it). */
static int snd_cleanup(struct snd *s)
{
	snd_io_stop(s);
	if (s->io_stuck) {
		/* It holds the slots, their registered memory, the file:
		 * close the connections only, leave the rest. */
		for (int i = 0; i < s->nep; i++)
			if (s->eps[i])
				wccl_endpoint_close(s->eps[i]);
		return 1;
	}
	for (int i = 0; i < s->nep; i++)
		if (s->eps[i])
			wccl_endpoint_close(s->eps[i]);
	if (s->smr)
		wccl_mr_deregister(s->smr);
	if (s->cmr)
		wccl_mr_deregister(s->cmr);
	if (s->cq)
		wccl_cq_destroy(s->cq);
	if (s->ctx)
		wccl_context_close(s->ctx);
	if (s->sreg)
		wccl_mem_free(s->sreg);
	if (s->creg)
		wccl_mem_free(s->creg);
	free(s->slots);
	free(s->have);
	free(s->rtt);
	free(s->prtt);
	free(s->irtt);
	stream_icmp_close(&s->icmp);
	free(s->scratch);
	stream_ring_fini(&s->to_io);
	stream_ring_fini(&s->from_io);
	if (s->fd >= 0)
		close(s->fd);
	return 0;
}

static int snd_run(struct snd *s, const char *path,
		   const struct wccl_stream_opts *o)
{
	int timeout = o->timeout_ms >= 0
			  ? o->timeout_ms
			  : (int)wccl_param_int(WCCL_PARAM_TIMEOUT_MS);
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0)
		return snd_fail(s, -errno, "%s: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(s->fd, &sb) || !S_ISREG(sb.st_mode))
		return snd_fail(s, WCCL_EINVAL, "%s: not a regular file", path);
	s->size = (uint64_t)sb.st_size;
	s->mtime_ns =
	    (int64_t)sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec;
	s->chunk =
	    o->chunk_bytes
		? o->chunk_bytes
		: (uint32_t)wccl_param_int(WCCL_PARAM_STREAM_CHUNK_BYTES);
	/* Neither --chunk nor WCCL_STREAM_CHUNK_BYTES: chosen from the path
	 * once ep0 is up (stream_pick_chunk), at most the default. */
	int chunk_auto =
	    !o->chunk_bytes && !getenv("WCCL_STREAM_CHUNK_BYTES");
	s->chunk_auto = chunk_auto;
	if (s->chunk < 4096 || s->chunk > STREAM_MAX_CHUNK)
		return snd_fail(s, WCCL_EINVAL,
				"chunk size %u out of range (4 KiB .. 64 MiB)",
				s->chunk);
	s->nchunks = (s->size + s->chunk - 1) / s->chunk;
	s->to_send = s->nchunks;
	/* What HELLO asks the receiver to hold buffers for: the user's
	 * count, else 8 on a short path and all a long one may use (set
	 * once ep0's RTT is known, below). */
	int max_streams = o->nstreams > 0 ? o->nstreams : 8;
	if (max_streams > STREAM_MAX_EPS)
		return snd_fail(s, WCCL_EINVAL, "at most %d streams",
				STREAM_MAX_EPS);
	int max_depth = (int)wccl_param_int(WCCL_PARAM_STREAM_MAX_INFLIGHT);
	if (max_depth < 2)
		max_depth = 2;
	s->corrupt_idx = wccl_param_int(WCCL_PARAM_STREAM_TEST_CORRUPT);
	s->drop_after =
	    (uint64_t)wccl_param_int(WCCL_PARAM_STREAM_TEST_DROP_AFTER);
	s->rtt = malloc(RTT_SAMPLES * sizeof(uint32_t));
	s->prtt = malloc(RTT_SAMPLES * sizeof(uint32_t));
	s->irtt = malloc(RTT_SAMPLES * sizeof(uint32_t));
	if (!s->rtt || !s->prtt || !s->irtt)
		return WCCL_ENOMEM;
	if (wccl_random_bytes(&s->sid, sizeof(s->sid)))
		s->sid = wccl_now_ns() ^ ((uint64_t)getpid() << 32);

	const char *prov = o->provider;
	if (!prov)
		prov = !strncmp(s->addr, "shm:", 4) ? "shm" : "uring";
	int rc = wccl_context_open(prov, &s->ctx);
	if (rc)
		return snd_fail(s, rc, "provider %s: %s", prov,
				wccl_strerror(rc));
	rc = wccl_cq_create(s->ctx, 0, &s->cq);
	if (rc)
		return snd_fail(s, rc, "cq: %s", wccl_strerror(rc));

	/* Control region: receives sized for a full window of ACKs. */
	s->nrx = max_depth + 8;
	/* HELLO_ACK's bitmap: sized for the smallest chunk auto can pick. */
	uint64_t max_chunks =
	    chunk_auto && s->chunk > STREAM_AUTO_CHUNK_MIN
		? (s->size + STREAM_AUTO_CHUNK_MIN - 1) / STREAM_AUTO_CHUNK_MIN
		: s->nchunks;
	s->first_rx_len = SMSG_LEN + STREAM_CTRL_MAX + (max_chunks + 7) / 8;
	s->creg_len = (size_t)STREAM_MAX_EPS * (s->nrx + CTRL_TX_PER_EP) *
			  STREAM_CTRL_BUF +
		      s->first_rx_len;
	rc = wccl_mem_alloc(s->creg_len, (void **)&s->creg);
	if (rc)
		return snd_fail(s, rc, "control buffers: %s",
				wccl_strerror(rc));
	s->first_rx = s->creg + (size_t)STREAM_MAX_EPS *
				    (s->nrx + CTRL_TX_PER_EP) * STREAM_CTRL_BUF;
	rc = wccl_mr_register(s->ctx, s->creg, s->creg_len, WCCL_ACCESS_LOCAL,
			      &s->cmr);
	if (rc)
		return snd_fail(s, rc, "register: %s", wccl_strerror(rc));

	rc = snd_connect(s, 0, timeout);
	if (rc)
		return rc;
	uint64_t plan =
	    (uint64_t)wccl_param_int(WCCL_PARAM_STREAM_TARGET_MBPS) * 125000ull;
	uint64_t target = o->rate_bps ? o->rate_bps / 8 : plan;
	/* The chunk and the streams' buffers go out in the HELLO, before
	 * the pings: the RTT is TCP's of the handshakes (uring: TCP_INFO's
	 * min RTT). Without it the defaults: the connect time (two
	 * handshakes plus the waits' polling, ms on a busy host) picked
	 * another chunk size on loopback from one run to the next, and a
	 * resume needs the same size (tests: xfer-resume). */
	uint64_t us = 0;
	if (wccl_endpoint_get_attr(s->eps[0], WCCL_EP_ATTR_MIN_RTT_US, &us) ||
	    us >= UINT32_MAX)
		us = 0;
	if (!o->nstreams && us * 1000 >= STREAM_LONG_PATH_NS)
		max_streams = STREAM_MAX_STREAMS;
	if (chunk_auto) {
		if (us)
			s->chunk = stream_pick_chunk(us * 1000, target, s->chunk);
		s->nchunks = (s->size + s->chunk - 1) / s->chunk;
		s->to_send = s->nchunks;
		WCCL_INFO(WCCL_SUB_TRANSPORT,
			  "stream to %s: tcp rtt %.3f ms -> %u-byte chunks",
			  s->addr, (double)us / 1e3, s->chunk);
	}
	s->scratch = malloc(s->chunk);
	if (!s->scratch)
		return WCCL_ENOMEM;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t nl = strlen(base);
	if (nl + 1 > STREAM_CTRL_MAX)
		return snd_fail(s, WCCL_EINVAL, "file name too long");
	struct smsg h = {.magic = SMSG_MAGIC,
			 .type = SM_HELLO,
			 .flags = (uint16_t)((o->resume ? STREAM_HELLO_RESUME
						       : 0) |
					     (chunk_auto
						  ? STREAM_HELLO_CHUNK_AUTO
						  : 0)),
			 .sid = s->sid,
			 .index = s->nchunks,
			 .offset = s->size,
			 .len = s->chunk,
			 .aux1 = (uint64_t)s->mtime_ns,
			 .aux2 = (uint64_t)max_streams};
	rc = snd_ctrl(s, 0, &h, base, nl + 1);
	if (rc)
		return snd_fail(s, rc, "send hello: %s", wccl_strerror(rc));
	uint64_t dl = wccl_deadline_ns(timeout);
	while (!s->hello_done) {
		if ((rc = snd_pump(s, 50)))
			return rc;
		if (wccl_now_ns() > dl)
			return snd_fail(s, WCCL_ETIMEDOUT,
					"receiver %s did not answer in %d ms",
					s->addr, timeout);
	}
	/* Three pings for the path's RTT, then size the pipe. */
	for (int i = 0; i < 3; i++) {
		struct smsg p = {.magic = SMSG_MAGIC,
				 .type = SM_PING,
				 .sid = s->sid,
				 .send_ts = wccl_now_ns()};
		while ((rc = snd_ctrl(s, 0, &p, NULL, 0)) == WCCL_EAGAIN)
			if ((rc = snd_pump(s, 10)))
				return rc;
		if (rc)
			return snd_fail(s, rc, "ping: %s", wccl_strerror(rc));
		while (s->pongs <= i) {
			if ((rc = snd_pump(s, 50)))
				return rc;
			if (wccl_now_ns() > dl)
				return snd_fail(s, WCCL_ETIMEDOUT,
						"receiver %s: no pong",
						s->addr);
		}
	}
	int n, depth;
	stream_size_pipe(s->ping_min, target, s->chunk, max_depth, &n, &depth);
	if (o->rate_bps && target < plan) {
		/* A cap sizes the buffers, not the connections: one TCP
		 * connection at 0.1 % loss and 40 ms carries 11-16 Mbit/s,
		 * and --rate 30M on the one its BDP asked for got 11 (seen
		 * in the VM). Connections as for the planned rate. */
		int n_plan, d_plan;
		stream_size_pipe(s->ping_min, plan, s->chunk, max_depth,
				 &n_plan, &d_plan);
		if (n_plan > n)
			n = n_plan;
		if (depth < 2 * n)
			depth = 2 * n < max_depth ? 2 * n : max_depth;
	}
	if (o->nstreams > 0) {
		n = o->nstreams;
		if (depth < 2 * n)
			depth = 2 * n < max_depth ? 2 * n : max_depth;
	}
	if (n > max_streams)
		n = max_streams; /* what the HELLO announced */
	s->nstreams = n;
	s->depth = depth;
	WCCL_INFO(
	    WCCL_SUB_TRANSPORT,
	    "stream to %s: rtt %.3f ms, target %.0f Mbit/s -> %d streams, "
	    "%d x %u-byte chunks in flight",
	    s->addr, (double)s->ping_min / 1e6, (double)target * 8 / 1e6, n,
	    depth, s->chunk);
	s->sreg_len = (size_t)depth * (SMSG_LEN + s->chunk);
	rc = wccl_mem_alloc(s->sreg_len, (void **)&s->sreg);
	if (rc)
		return snd_fail(s, rc, "chunk buffers: %s", wccl_strerror(rc));
	rc = wccl_mr_register(s->ctx, s->sreg, s->sreg_len, WCCL_ACCESS_LOCAL,
			      &s->smr);
	if (rc)
		return snd_fail(s, rc, "register: %s", wccl_strerror(rc));
	s->slots = calloc((size_t)depth, sizeof(*s->slots));
	if (!s->slots)
		return WCCL_ENOMEM;
	for (int i = 0; i < depth; i++)
		s->slots[i].buf = s->sreg + (size_t)i * (SMSG_LEN + s->chunk);
	/* The I/O thread starts reading while the other streams connect. */
	if (stream_ring_init(&s->to_io, (uint32_t)depth + 1) ||
	    stream_ring_init(&s->from_io, (uint32_t)depth + 1))
		return WCCL_ENOMEM;
	for (int i = 0; i < depth; i++)
		stream_ring_push(&s->to_io, (uint32_t)i);
	s->held = -1;
	s->io_stall_ms = (int)wccl_param_int(WCCL_PARAM_STREAM_TEST_IO_STALL_MS);
	s->fin_wait_ms = (int)wccl_param_int(WCCL_PARAM_STREAM_TEST_FIN_WAIT_MS);
	s->io_beat = wccl_now_ns();
	if (wccl_param_int(WCCL_PARAM_STREAM_IO_THREAD)) {
		rc = pthread_create(&s->io, NULL, snd_io_main, s);
		if (rc)
			return snd_fail(s, -rc, "I/O thread: %s",
					strerror(rc));
		s->io_started = 1;
	}
	/* The data connections and the path probe (one more connection,
	 * pings only), opened together. */
	s->probe_interval_ns =
	    (uint64_t)wccl_param_int(WCCL_PARAM_STREAM_PROBE_MS) * 1000000ull;
	int with_probe = s->probe_interval_ns && n < STREAM_MAX_EPS;
	int last = with_probe ? n : n - 1;
	if (with_probe)
		s->probe_ep = n;
	uint64_t cdl = wccl_deadline_ns(timeout);
	/* Test hook: the probe's connection up (so accepted) before the
	 * data connections open; the receiver must not give buffers by
	 * accept order. */
	if (with_probe && wccl_param_int(WCCL_PARAM_STREAM_TEST_PROBE_FIRST) &&
	    ((rc = snd_connect_start(s, n)) ||
	     (rc = wccl_endpoint_wait_established(s->eps[n], timeout))))
		return rc;
	for (int i = 1; i <= last; i++)
		if (!s->eps[i] && (rc = snd_connect_start(s, i)))
			return rc;
	for (int i = 1; i <= last; i++) {
		uint64_t t = wccl_now_ns();
		int left = cdl > t ? (int)((cdl - t) / 1000000) + 1 : 1;
		if ((rc = snd_connect_finish(s, i, left)))
			return rc;
		struct smsg j = {.magic = SMSG_MAGIC,
				 .type = SM_JOIN,
				 .flags = (uint16_t)(i == n ? 2 : 0),
				 .sid = s->sid,
				 .index = (uint64_t)i};
		if ((rc = snd_ctrl(s, i, &j, NULL, 0)))
			return snd_fail(s, rc, "join: %s", wccl_strerror(rc));
	}
	/* Every connection joined before the first chunk: else the first
	 * window all goes to the one that is (the first), and a megabyte
	 * through one cold TCP connection took 7 RTTs in slow start where
	 * four connections take 5 (seen in the VM: first ack at 290 ms,
	 * startup's first estimate 7 Mbit/s of 100). */
	rc = snd_wait_joined(s, n, timeout);
	if (rc)
		return rc;
	uint64_t qd =
	    (uint64_t)wccl_param_int(WCCL_PARAM_STREAM_QDELAY_US) * 1000;
	/* Floor and initial window: two chunks per stream and four more (a
	 * chunk's RTT holds its own processing and the hand-offs to the I/O
	 * threads, so BDP alone would leave the stages idle); startup grows
	 * it. */
	uint64_t min_cwnd =
	    (uint64_t)(2 * n + 4 < depth ? 2 * n + 4 : depth) * s->chunk;
	/* On a long path the model's window is 2 BDPs of the path (the
	 * probe's RTT) + a chunk per connection + 1 (unit_slack), and the
	 * first window, which leaves unpaced, FIRST_WINDOW_BYTES: the floor
	 * above held 16 MiB in socket buffers at 40 Mbit/s, 80 BDPs, and
	 * made a round (a chunk's RTT) seconds long, so startup never
	 * ended. */
	int long_path = s->ping_min >= STREAM_LONG_PATH_NS;
	if (long_path && s->probe_interval_ns)
		snd_icmp_open(s);
	/* The first window in bytes (1 MiB), so smaller chunks spread it
	 * over more cold connections instead of shrinking it. */
	int init = 2 * n;
	if (long_path) {
		init = (int)(FIRST_WINDOW_BYTES / s->chunk);
		init = init < 4 ? 4 : init;
	}
	uint64_t init_cwnd = (uint64_t)(init < depth ? init : depth) * s->chunk;
	/* ... and the floor must not raise that first window (the model's
	 * window on a long path has no floor): it did, to 2 chunks per
	 * stream + 4, 4 MiB unpaced into a 40 Mbit/s link with 100 ms of
	 * buffer; the drops stalled the first 2-4 s of lossy in the VM. */
	if (long_path)
		min_cwnd = init_cwnd;
	pace_model_init(&s->cc, o->rate_bps / 8, qd, min_cwnd, init_cwnd);
	s->slack_base = (uint64_t)(n + 1) * s->chunk;
	s->cc.unit_slack = s->slack_base;
	s->cc.unit = s->chunk;
	/* Chunks on n connections finish out of order, and a sample's count
	 * is off by up to a chunk per other connection; the max filter turns
	 * that into an estimate above the link. A window of 2n chunks keeps
	 * it within -10..+6 % in test_rate_striped (per-chunk ack-interval
	 * samples: +32..+37 %; tests/stream/test_stream_unit.c). On a long
	 * path with the receiver's byte counts the window is in path RTTs
	 * instead (snd_on_ack). */
	pace_rs_init(&s->rs, (uint64_t)SAMPLE_CHUNKS_PER_STREAM * n * s->chunk);
	/* Rounds are chunk RTTs here, seconds when the socket buffers hold
	 * a few chunks: the estimate ages out in path RTTs instead. */
	s->cc.bw_slot_rtts = 2.5;

	s->kernel_pacing =
	    (int)wccl_param_int(WCCL_PARAM_STREAM_KERNEL_PACING) ? 1 : 0;
	int64_t pct = wccl_param_int(WCCL_PARAM_STREAM_KERNEL_PACING_PCT);
	s->kernel_pct = (uint64_t)(pct < 100 ? 100 : pct > 400 ? 400 : pct);
	s->kernel_lend =
	    (int)wccl_param_int(WCCL_PARAM_STREAM_KERNEL_PACING_LEND) ? 1 : 0;
	s->kernel_rtt = (int)wccl_param_int(WCCL_PARAM_STREAM_KERNEL_RTT) ? 1 : 0;
	s->notsent_attr = 1;
	s->t0 = s->last_progress_ns = s->last_report_ns = wccl_now_ns();
	s->tr.at_ns = s->t0;
	int64_t trace_ms = wccl_param_int(WCCL_PARAM_STREAM_TRACE_MS);
	trace_ms = trace_ms < 10 ? 10 : trace_ms > 10000 ? 10000 : trace_ms;
	s->tr.every_ns = (uint64_t)trace_ms * 1000000ull;
	while (s->acked < s->to_send) {
		uint64_t now = wccl_now_ns();
		snd_io_inline(s);
		if ((rc = snd_io_check(s)))
			return rc;
		rc = snd_try_send(s, now);
		if (rc < 0)
			return rc;
		int wait = 20;
		if (s->cc.pacing_rate && s->next_send_ns > now) {
			uint64_t w = (s->next_send_ns - now) / 1000000;
			wait = w < 1 ? 1 : (w > 20 ? 20 : (int)w);
		} else if (rc > 0) {
			wait = 0;
		} else if (s->starved) {
			wait = 1; /* the I/O thread has the next chunk soon */
		}
		if (s->probe_interval_ns) {
			if (now >= s->probe_next_ns && s->kernel_rtt)
				snd_kernel_rtt(s, now);
		}
		if (s->probe_ready || (s->kernel_rtt && s->probe_interval_ns)) {
			/* The next ping while the receiver has a receive for
			 * it (after a second without a pong, the samples are
			 * lost, not the credits). */
			if (s->probe_out &&
			    now - s->probe_sent_ns > 1000000000ull)
				s->probe_out = 0;
			int due = now >= s->probe_next_ns;
			int ping = due && s->probe_ready &&
				   s->probe_out < s->probe_credits;
			if (ping) {
				struct smsg p = {.magic = SMSG_MAGIC,
						 .type = SM_PING,
						 .sid = s->sid,
						 .send_ts = now};
				/* A full queue skips one ping. */
				rc = snd_ctrl(s, s->probe_ep, &p, NULL, 0);
				if (rc && rc != WCCL_EAGAIN)
					return snd_fail(s, rc, "probe: %s",
							wccl_strerror(rc));
				if (rc == 0) {
					s->probe_out++;
					s->probe_sent_ns = now;
				}
			}
			if (due && (ping || !s->probe_ready || s->kernel_rtt))
				s->probe_next_ns = now + s->probe_interval_ns;
			/* Out of credits: a pong's arrival wakes the pump. */
			if (s->probe_next_ns > now ||
			    s->probe_out < s->probe_credits) {
				uint64_t w = s->probe_next_ns > now
						 ? (s->probe_next_ns - now) /
						       1000000
						 : 0;
				if (wait > (int)w)
					wait = w < 1 ? 1 : (int)w; /* no spinning */
			}
		}
		if (s->icmp_on) {
			/* Its own clock: the TCP ping may wait for a credit. */
			if (now >= s->icmp_next_ns) {
				rc = stream_icmp_send(&s->icmp);
				if (rc && rc != -EAGAIN)
					WCCL_TRACE(WCCL_SUB_TRANSPORT,
						   "stream: ICMP probe: %s",
						   strerror(-rc));
				s->icmp_next_ns = now + s->probe_interval_ns;
			}
			uint64_t w = s->icmp_next_ns > now
					 ? (s->icmp_next_ns - now) / 1000000
					 : 0;
			if (wait > (int)w)
				wait = w < 1 ? 1 : (int)w;
		}
		if ((rc = snd_pump(s, wait)))
			return rc;
		if (s->icmp_on)
			snd_icmp_poll(s, wccl_now_ns());
		snd_kernel_pace(s);
		now = wccl_now_ns();
		if (wccl_log_enabled(WCCL_LOG_TRACE, WCCL_SUB_TRANSPORT))
			snd_trace(s, now);
		if (s->drop_after && s->st.chunks >= s->drop_after) {
			for (int i = 0; i < s->nep; i++) {
				wccl_endpoint_close(s->eps[i]);
				s->eps[i] = NULL;
			}
			return snd_fail(s, WCCL_ECONNABORTED,
					"test hook: dropped the connection "
					"after %llu chunks",
					(unsigned long long)s->st.chunks);
		}
		if (now - s->last_progress_ns > (uint64_t)timeout * 1000000ull) {
			/* Our disk, if it has had work and done none. */
			uint64_t beat = __atomic_load_n(&s->io_beat,
							__ATOMIC_RELAXED);
			if (!stream_ring_empty(&s->to_io) && now > beat &&
			    now - beat > (uint64_t)timeout * 1000000ull)
				return snd_fail(s, WCCL_ETIMEDOUT,
						"reading %s: the disk made no "
						"progress for %d ms",
						path, timeout);
			return snd_fail(s, WCCL_ETIMEDOUT,
					"receiver %s: no progress for %d ms",
					s->addr, timeout);
		}
		if (o->progress && now - s->last_report_ns > 250000000ull) {
			s->last_report_ns = now;
			snd_fill_stats(s, now);
			o->progress(&s->st, o->arg);
		}
	}
	/* The source must not have changed under us. */
	if (fstat(s->fd, &sb) == 0 &&
	    ((int64_t)sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec !=
		 s->mtime_ns ||
	     (uint64_t)sb.st_size != s->size))
		return snd_fail(s, WCCL_EIO, "%s changed while being sent",
				path);
	/* Every chunk is acked, so the I/O thread has read each one; it may
	 * still be folding a verified tail into the file CRC. */
	dl = wccl_deadline_ns(timeout + (int64_t)(s->size >> 20));
	while (!__atomic_load_n(&s->io_done, __ATOMIC_ACQUIRE)) {
		snd_io_inline(s);
		if ((rc = snd_io_check(s)))
			return rc;
		if (wccl_now_ns() > dl)
			return snd_fail(s, WCCL_ETIMEDOUT,
					"reading %s: no end in sight", path);
		usleep(1000);
	}
	snd_io_stop(s);
	struct smsg f = {.magic = SMSG_MAGIC,
			 .type = SM_FIN,
			 .sid = s->sid,
			 .offset = s->size,
			 .crc = s->file_crc};
	while ((rc = snd_ctrl(s, 0, &f, NULL, 0)) == WCCL_EAGAIN)
		if ((rc = snd_pump(s, 10)))
			return rc;
	if (rc)
		return snd_fail(s, rc, "fin: %s", wccl_strerror(rc));
	s->fin_sent = 1;
	/* test hook: the provider runs (the verdict queues up in the CQ)
	 * until the receiver's close has failed connection 0 too */
	for (uint64_t hd = wccl_deadline_ns(s->fin_wait_ms);
	     s->fin_wait_ms && wccl_now_ns() < hd;) {
		int e = wccl_endpoint_established(s->eps[0]);
		if (e && e != WCCL_EAGAIN)
			break;
		usleep(1000);
	}
	/* The receiver re-reads the whole file: allow for that. */
	dl = wccl_deadline_ns(timeout + (int64_t)(s->size >> 20));
	while (!s->fin_done) {
		if ((rc = snd_pump(s, 50)))
			return rc;
		if (wccl_now_ns() > dl)
			return snd_fail(s, WCCL_ETIMEDOUT,
					"receiver %s: no final verdict",
					s->addr);
	}
	if (s->fin_status)
		return s->fin_status;
	snd_fill_stats(s, wccl_now_ns());
	s->st.done = 1;
	return 0;
}

/* Worth starting over: the receiver turned us away as busy, or the
 * connection went before it answered our HELLO. That is the normal case
 * right after a dropped transfer, whose session the receiver may still
 * be ending when the sender comes back to resume. */
static int snd_retryable(const struct snd *s, int rc)
{
	return !s->hello_done &&
	       (rc == WCCL_EBUSY || rc == WCCL_EPEER_LOST ||
		rc == WCCL_ECONNRESET);
}

int wccl_stream_send_file(const char *path, const char *addr,
			  const struct wccl_stream_opts *o,
			  struct wccl_stream_stats *st, char *err,
			  size_t errlen)
{
	struct wccl_stream_opts def = {.timeout_ms = -1};
	if (!o)
		o = &def;
	int timeout = o->timeout_ms >= 0
			      ? o->timeout_ms
			      : (int)wccl_param_int(WCCL_PARAM_TIMEOUT_MS);
	uint64_t dl = wccl_deadline_ns(timeout);
	for (int wait_ms = 50;; wait_ms = wait_ms < 500 ? 2 * wait_ms : 1000) {
		struct snd *s = calloc(1, sizeof(*s));
		if (!s)
			return WCCL_ENOMEM;
		s->fd = -1;
		s->icmp.fd = -1;
		s->err = err;
		s->errlen = errlen;
		if (err && errlen)
			err[0] = 0;
		s->addr = addr;
		int rc = snd_run(s, path, o);
		if (snd_retryable(s, rc) &&
		    wccl_now_ns() + (uint64_t)wait_ms * 1000000ull < dl) {
			WCCL_INFO(WCCL_SUB_TRANSPORT,
				  "stream to %s: %s; again in %d ms", addr,
				  err && errlen ? err : wccl_strerror(rc),
				  wait_ms);
			if (!snd_cleanup(s))
				free(s);
			usleep((useconds_t)wait_ms * 1000u);
			continue;
		}
		if (rc && err && errlen && !err[0])
			snprintf(err, errlen, "%s", wccl_strerror(rc));
		snd_fill_stats(s, wccl_now_ns());
		snd_percentiles(s);
		if (rc == 0)
			s->st.done = 1;
		if (o->progress)
			o->progress(&s->st, o->arg);
		if (st)
			*st = s->st;
		if (!snd_cleanup(s))
			free(s);
		return rc;
	}
}
