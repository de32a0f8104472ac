/* SPDX-License-Identifier: MIT */
#ifndef WCCL_PACE_MODEL_H
#define WCCL_PACE_MODEL_H

/*
 * Delivery-rate / min-RTT pacing model (BBR-like, with a Swift-style
 * queueing-delay target that scales the rate down), used by the streaming
 * engine (transport/stream) and the dpdk provider (transport/dpdk). Pure:
 * no clock, no allocation, no locks; the caller passes the time and owns
 * the struct. Rates in bytes/s, times in ns, sizes in bytes.
 *
 *   caller                           model
 *   each acked unit (chunk, packet)  pace_model_on_ack(rtt, rate sample,
 *                                      delivered before / after, inflight)
 *   each path RTT sample             pace_model_on_probe(rtt)
 *   before sending                   reads pacing_rate and cwnd
 */
#include <stdint.h>

struct pace_model {
	uint64_t btlbw;	     /* windowed max delivery rate */
	uint64_t bw_win[10]; /* per-slot maxima */
	uint64_t slot, slot_stamp, last_sample_ns;
	/* 0: the filter's slots are rounds (BBR); > 0: on a long path
	 * (pace_model_long_path) each slot lasts this many path RTTs. For
	 * callers whose rounds stretch with their own queue (the stream:
	 * rounds are chunk RTTs, seconds behind a socket buffer), so an
	 * estimate ages out in path time. Set after pace_model_init. */
	double bw_slot_rtts;
	/* 0: the window is cwnd_gain x btlbw x min RTT, never below
	 * min_cwnd. > 0 (the stream), on a long path: cwnd_gain x btlbw x
	 * the probe's path RTT + this many bytes. The stream counts a chunk
	 * in flight from its first byte sent to its ack, so it needs a
	 * chunk per connection (each being sent at that connection's TCP
	 * rate) and one being received on top of the path's BDP. Its
	 * chunks' own RTT is no measure of the path: it holds their
	 * serialisation and the time they waited in socket buffers, which
	 * grows with the window (a feedback loop); and min_cwnd (sized for
	 * the CPU pipeline of a short path) held 80 BDPs in socket buffers
	 * at 40 Mbit/s, 40 ms. Set after pace_model_init. */
	uint64_t unit_slack;
	/* Bytes the sender hands out at once (the stream's chunk; 0: a
	 * packet's worth, as the dpdk provider). A gain of probe_bw's
	 * cycle holds for at least two of them, or the samples, each over
	 * a unit's interval, never see it. Set after pace_model_init. */
	uint64_t unit;
	uint64_t init_cwnd, first_sample_ns;
	uint64_t round; /* round-trip count */
	uint64_t next_round_delivered;
	uint64_t round_max; /* largest rate sample this slot (0: none) */
	uint64_t min_rtt_ns, min_rtt_stamp;
	uint64_t srtt_ns;
	uint64_t full_bw;
	int full_bw_rounds;
	int phase; /* 0 startup, 1 drain, 2 probe_bw */
	int cycle;
	uint64_t cycle_stamp;
	double qfactor; /* Swift scale, 0.25 .. 1 */
	uint64_t last_decrease_ns;
	uint64_t qdelay_target_ns;
	uint64_t rate_cap; /* 0: none */
	uint64_t min_cwnd;
	double pacing_gain, cwnd_gain;
	uint64_t pacing_rate; /* 0: unpaced (no sample yet) */
	uint64_t cwnd;
	/* Path probe: small ping / pong on a connection that carries no
	 * data, so its RTT is the path's (propagation + bottleneck queue),
	 * free of chunk serialisation and socket-buffer waits. Once it has
	 * samples it alone drives the delay target. */
	uint64_t probe_min_ns, probe_last_ns;
	/* probe_min_ns is the min of two 5 s buckets (this one, since
	 * probe_min_stamp, and the one before): it forgets in 5-10 s, and
	 * never jumps to one sample that may carry a queue */
	uint64_t probe_min_cur, probe_min_prev, probe_min_stamp;
	uint64_t probe_win[4]; /* last samples: their min is the signal */
	double probe_jit_ns;   /* median change between samples (path jitter) */
	uint64_t last_increase_ns;
	uint64_t probe_samples;
	int probe_queued; /* the last probe saw a queue above the target */
	int slot_queued;  /* ... and any probe since the filter's slot began */
	/* The stream's long path, probe_bw: the gain of the next probe-up
	 * (1.05, doubling its excess after each one the probe saw no queue
	 * in while the estimate grew, up to 1.25), and the estimate when
	 * the last one started. */
	double up_gain;
	uint64_t up_bw;
	/* The stream's long path: the pacing rate at each of the last
	 * probe samples, and the rate that began the last queue (0: none),
	 * from those a path RTT and the probe's filter before the probe
	 * saw it. Probe-ups go no higher and the cruise stays below it;
	 * without a queue it rises by queue_rate_step, which doubles each
	 * time (see learn_queue_rate). The stamp: learned or last raised. */
	uint64_t pace_hist[16], pace_hist_ns[16];
	uint64_t queue_rate, queue_rate_stamp;
	double queue_rate_step;
	uint64_t queue_rate_pending; /* seen once; twice in a row to learn */
	uint64_t clear_since; /* probe_bw: no queue since (0: a queue) */
	uint64_t queued_since; /* ... and the last queue since */
	/* Set by the caller: its startup samples span only the last path
	 * RTTs (pace_rs.rcv_window_ns), so the estimate holds the link's
	 * rate when startup meets the queue; startup's gain is then 2. */
	int recent_samples;
};

/* Start in startup: @rate_cap (0: none) is also the rate until the first
 * sample; @qdelay_ns the delay target (0: off); the window starts at
 * @init_cwnd and never goes below @min_cwnd. */
void pace_model_init(struct pace_model *cc, uint64_t rate_cap,
		     uint64_t qdelay_ns, uint64_t min_cwnd, uint64_t init_cwnd);
/* One acked unit: @rtt_ns (0: none), @rate sample (bytes/s; 0: none),
 * @prior_delivered the delivered count when the unit left, @delivered the
 * count now, @inflight bytes still out. */
void pace_model_on_ack(struct pace_model *cc, uint64_t now, uint64_t rtt_ns,
		       uint64_t rate, uint64_t prior_delivered,
		       uint64_t delivered, uint64_t inflight);

/* One path-probe RTT sample (see struct pace_model). */
void pace_model_on_probe(struct pace_model *cc, uint64_t now, uint64_t rtt_ns);
/* 1 once probe samples show a path RTT of 2 ms or more: the delay target
 * (and the stream's kernel pacing cap) apply (below, they chase CPU
 * noise). */
int pace_model_long_path(const struct pace_model *cc);

/*
 * Delivery-rate sampler: BBR's rule (draft-cheng-iccrg-delivery-rate-
 * estimation; Linux tcp_rate.c) for units that may be large and striped over
 * several connections (the stream: 1 MiB chunks on N TCP connections).
 *
 *   send unit P   pace_rs_on_send: P notes delivered, the last ack's times
 *                 and the send time of the unit acked last
 *   ack of P      pace_rs_on_ack: rate = bytes delivered since P left
 *                 / max(send interval, ack interval, receiver interval)
 *
 * The send interval (P's send - the send of the unit acked last when P
 * left) keeps acks that arrive bunched from reading as a faster path; the
 * receiver's interval (its arrival stamps, when the caller has them) does
 * the same for acks bunched by the receiver's or the sender's scheduling.
 * A sample over less than @min_interval_ns (the path's min RTT) is dropped,
 * as Linux does. Units acked out of order (striping) make one sample's
 * count wrong by up to a unit per other connection, and a max filter turns
 * that noise into an estimate above the link: with @min_bytes set, a sample
 * reaches back over earlier acks until it spans at least that many bytes.
 * Pure: fixed arrays, no allocation.
 */
#define PACE_RS_HIST 64

struct pace_rs_unit { /* the sampler's note on one unit in flight */
	uint64_t delivered, delivered_ns, rcv_ns, first_sent_ns, sent_ns;
	uint64_t rcv_bytes;
	int app_limited;
};

struct pace_rs_point { /* the state after one ack */
	uint64_t delivered, ack_ns, rcv_ns, sent_ns, rcv_bytes;
};

struct pace_rs {
	uint64_t delivered;	/* bytes acked */
	uint64_t delivered_ns;	/* when the last ack arrived (sender clock) */
	uint64_t rcv_ns;	/* latest receiver stamp (its clock; 0: none) */
	uint64_t rcv_bytes;	/* the receiver's byte count at it (0: none) */
	uint64_t first_sent_ns; /* send time of the newest unit acked */
	uint64_t app_limited;	/* 0, or samples are app-limited until
				 * delivered passes this */
	uint64_t min_bytes;	/* shortest window, bytes (0: BBR's only) */
	uint64_t rcv_window_ns; /* 0, or: with the receiver's byte counts, the
				 * window is the newest that spans this much
				 * of its time (see .c) */
	int ack_only;		/* 1: ack interval alone (see .c) */
	struct pace_rs_point hist[PACE_RS_HIST];
	uint64_t nhist;
};

struct pace_rs_sample {
	uint64_t rate;		  /* bytes/s; 0: no valid sample */
	uint64_t prior_delivered; /* delivered when the unit left */
	uint64_t delivered;	  /* bytes in the window */
	uint64_t interval_ns;
	int app_limited; /* taken while the sender had nothing to send */
};

/* Start with nothing in flight; @min_bytes as in struct pace_rs. */
void pace_rs_init(struct pace_rs *rs, uint64_t min_bytes);
/* Unit @u leaves at @now with @inflight bytes already out. */
void pace_rs_on_send(struct pace_rs *rs, struct pace_rs_unit *u, uint64_t now,
		     uint64_t inflight);
/* The sender has room to send but nothing to send: samples of units sent
 * from now until @inflight more bytes are delivered are app-limited. */
void pace_rs_app_limited(struct pace_rs *rs, uint64_t inflight);
/* @len more bytes delivered, outside a sample: a caller that takes one
 * sample per ack from several units counts the others with this. */
void pace_rs_delivered(struct pace_rs *rs, uint64_t len);
/* Unit @u of @len bytes acked at @now; @rcv_ns the receiver's stamp of its
 * arrival (0: none) and @rcv_bytes the bytes it had received by then over
 * all connections, partial units included (0: none); @min_interval_ns as
 * above. With byte counts at both ends of the window the rate is theirs
 * over the receiver's interval: no unit granularity (a unit held back on
 * one connection, by loss recovery, then completing counts whole in one
 * window though most of its bytes came earlier). Fills @out. */
void pace_rs_on_ack(struct pace_rs *rs, const struct pace_rs_unit *u,
		    uint64_t len, uint64_t now, uint64_t rcv_ns,
		    uint64_t rcv_bytes, uint64_t min_interval_ns,
		    struct pace_rs_sample *out);

#endif
