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
	uint64_t bw_win[10]; /* per-round maxima */
	uint64_t round;	     /* round-trip count */
	uint64_t next_round_delivered;
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
	uint64_t probe_min_ns, probe_min_stamp, probe_last_ns;
	uint64_t probe_win[4]; /* last samples: their min is the signal */
	double probe_jit_ns; /* median change between samples (path jitter) */
	uint64_t last_increase_ns;
	uint64_t probe_samples;
};

/* Start in startup: @rate_cap (0: none) is also the rate until the first
 * sample; @qdelay_ns the delay target (0: off); the window starts at
 * @init_cwnd and never goes below @min_cwnd. */
void pace_model_init(struct pace_model *cc, uint64_t rate_cap,
		     uint64_t qdelay_ns, uint64_t min_cwnd, uint64_t init_cwnd);
/* One acked unit: @rtt_ns (0: none), @rate sample (bytes/s),
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

#endif
