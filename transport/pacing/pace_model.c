/* SPDX-License-Identifier: MIT */
/*
 * Pacing model, shared by the streaming engine (transport/stream: one per
 * transfer, samples per chunk) and the dpdk provider (one per connection,
 * samples per ACK). BBR's skeleton: the bottleneck rate is the max
 * delivery-rate sample of the last 10 rounds (or, with bw_slot_rtts, of
 * the last 10 slots of path time; samples from pace_rate.c), min RTT the
 * min of the last 10 s; pace at gain x btlbw and keep in flight <= cwnd_gain x
 * BDP. Startup doubles per round (gain 2.89; 1.5 on the stream's long path,
 * below) until three rounds grow < 25 %,
 * drain empties the queue it built, probe_bw cycles 1.25, 0.75, 1 x 6.
 * On top, Swift's delay target: when a sample's RTT exceeds min RTT by more
 * than the target, a factor (at most once per RTT, by up to half, in
 * proportion to the excess) scales the window down to one BDP and the rate
 * down to 0.8x; below the target it grows back by 1/8 per round. While the
 * factor holds us back the bandwidth filter does not decay: samples taken
 * below our own limit say nothing about the path (else rate and estimate
 * spiral down together, seen at 40 ms in the VM).
 *
 * With a path probe (pace_model_on_probe: ping / pong on a connection that
 * carries no data) the delay target uses the probe's queueing delay
 * instead: chunk RTTs hold serialisation at the paced rate (tens of ms for
 * a 1 MiB chunk at 200 Mbit/s) and cannot see a 1 ms queue; the probe
 * can. Probing gains are then small (1.05 / 0.95: at most 5 % of an RTT
 * of queue) and the cycle runs on the probe's RTT; on the stream's long
 * path a probe-up that raised the estimate without a queue is followed
 * by a larger one, and one that meets a queue ends at once. The factor still
 * scales the rate by no more than 0.8: the probe answers from user space,
 * and under load (qemu TCG) its noise must not be able to starve the
 * transfer (seen: startup cut short and 10 Mbit/s of 100). On the stream's
 * long path, the rate that began the last queue caps probe-ups and the
 * cruise, and rises step by step while no queue shows (learn_queue_rate).
 */
#include "pace_model.h"

#include <string.h>

/* The rate that began the last queue (learn_queue_rate) is looked for
 * within 30 ms either side of the probe's lag. The cruise stays 4 % below
 * it: the sender's own unevenness (connections in loss recovery, then
 * catching up) reaches the link as bursts above the rate paced. In the
 * VM at 50 Mbit/s, 9 alternating pairs against 2 %: time over 2 ms of
 * queue 6.9 % against 10.1 on lossy, 1.3 against 3.9 on east-west, for
 * the same goodput on lossy (45.6) and 0.6 Mbit/s less on east-west.
 * Without a queue for 1 s, it rises by 1 %, then 2, 4, ...
 * (BBRv2's probe-up: a link that grew is found in a few cycles); above
 * 1.25 x the estimate it no longer bounds anything and is dropped. */
#define QUEUE_RATE_SPAN_NS 30000000ull
#define QUEUE_RATE_CRUISE 0.96
#define QUEUE_RATE_STEP 0.01
#define QUEUE_RATE_MAX 1.25
#define QUEUE_RATE_HOLD_NS 1000000000ull
/* Learned from a queue that began at the cruise, the rate goes no lower
 * than 0.95 x the estimate. Such queues are the path's jitter as often as
 * ours: down to the 0.85 floor below, they took the learned rate from 49
 * to 42 Mbit/s in 3 s on east-west in the VM (link 47.8), the cruise 4 %
 * under each in turn, and held goodput there. 4 alternating triples, 50
 * Mbit/s: east-west 45.3 against 44.1 Mbit/s, time over 2 ms of queue 2.0
 * against 1.0 %; lossy 45.7 against 45.5, 5.9 against 7.2 %. Not learning
 * from them at all: 45.3 and 45.8 Mbit/s, but lossy's queue over 2 ms 13 %
 * of the time (its cruise-time queues are its own bursts). */
#define QUEUE_RATE_CRUISE_FLOOR 0.95

static const double probe_gains[8] = {1.25, 0.75, 1, 1, 1, 1, 1, 1};
static const double probe_gains_gentle[8] = {1.05, 0.95, 1, 1, 1, 1, 1, 1};

/* Below this path RTT (LAN, loopback) the probe's "queue" is CPU
 * scheduling noise of a few hundred us to ms, as large as the target:
 * there the delay target stays off and BBR's model runs alone. */
#define PROBE_MIN_PATH_NS 2000000ull

static int probe_active(const struct pace_model *cc)
{
	return cc->probe_samples && cc->probe_min_ns >= PROBE_MIN_PATH_NS;
}

int pace_model_long_path(const struct pace_model *cc)
{
	return probe_active(cc);
}
#define STARTUP_GAIN 2.885
/* Startup on the stream's long path, when the samples cover the last
 * two path RTTs (recent_samples) and a queue ends it (HyStart's delay
 * exit): the estimate is the link's when the queue shows, and the gain
 * then overshoots it for the time the probe takes to see the queue. In
 * the VM at 40 ms (with the min of 2 probe samples, below): 2.0 against
 * 2.885, ping peak 65-126 ms against 114-154, goodput within 0.4 Mbit/s
 * of 36. 1.5 against 2.0, with the exit below and a 768 KiB first
 * window (6 alternating pairs, 50 Mbit/s): the transfer's queue p99 8.3
 * against 22.0 ms on east-west, 12.7 against 20.1 on lossy, its max 24-26
 * against 41-42, goodput 45.1 / 45.7 against 45.1 / 45.6 Mbit/s. */
#define STARTUP_GAIN_LONG 1.5
/* ... and the queue that ends it is HyStart's delay threshold, the path
 * RTT / 8 within 4-16 ms, not the delay target: on east-west the target
 * (1 ms + 2 x the jitter estimate, which is still climbing) is what
 * netem's +-2 ms reads as, and startup left at 20-30 Mbit/s of 48 in
 * one run in five (with 1.5 and a 512 KiB first window, in the VM). */
#define STARTUP_EXIT_MIN_NS 4000000ull
#define STARTUP_EXIT_MAX_NS 16000000ull

static uint64_t startup_exit_queue(const struct pace_model *cc)
{
	uint64_t q = cc->probe_min_ns / 8;
	if (q < STARTUP_EXIT_MIN_NS)
		return STARTUP_EXIT_MIN_NS;
	return q > STARTUP_EXIT_MAX_NS ? STARTUP_EXIT_MAX_NS : q;
}

void pace_model_init(struct pace_model *cc, uint64_t rate_cap,
		     uint64_t qdelay_ns, uint64_t min_cwnd, uint64_t init_cwnd)
{
	memset(cc, 0, sizeof(*cc));
	cc->rate_cap = rate_cap;
	cc->qdelay_target_ns = qdelay_ns;
	cc->min_cwnd = min_cwnd;
	cc->cwnd = init_cwnd > min_cwnd ? init_cwnd : min_cwnd;
	cc->init_cwnd = cc->cwnd;
	cc->pacing_gain = STARTUP_GAIN;
	cc->cwnd_gain = STARTUP_GAIN;
	cc->qfactor = 1.0;
	cc->pacing_rate = rate_cap; /* 0 = unpaced until the first sample */
	cc->up_gain = probe_gains_gentle[0];
}

/* The stream's long path: probe_bw's cycle runs on the probe, and a
 * probe-up grows while the link has room (below). */
static int long_path_cycle(const struct pace_model *cc)
{
	return cc->unit_slack && probe_active(cc);
}

/* The wait before the rate that began the last queue rises: 1 s, and at
 * least three path RTTs (one to send the last rise's probe-up, one for the
 * probe to come back, one for its filter). Each rise that meets the link
 * makes a queue: rising after three path RTTs, in the simulation, 7 % of
 * the time was spent above 2 ms of queue; after 1 s, 0.6 %. */
static uint64_t queue_rate_wait(const struct pace_model *cc)
{
	uint64_t wait = 3 * cc->probe_min_ns;
	return wait > QUEUE_RATE_HOLD_NS ? wait : QUEUE_RATE_HOLD_NS;
}

/* Each probe-up, after that long without a queue and since the last rise:
 * the rate that began the last queue rises, by twice the last rise. */
static void raise_queue_rate(struct pace_model *cc, uint64_t now)
{
	uint64_t wait = queue_rate_wait(cc);
	if (!cc->queue_rate || !cc->clear_since ||
	    now - cc->clear_since < wait || now - cc->queue_rate_stamp < wait)
		return;
	cc->queue_rate =
	    (uint64_t)((double)cc->queue_rate * (1.0 + cc->queue_rate_step));
	cc->queue_rate_step *= 2;
	cc->queue_rate_stamp = now;
	if ((double)cc->queue_rate > QUEUE_RATE_MAX * (double)cc->btlbw)
		cc->queue_rate = 0;
}

static void enter_cycle(struct pace_model *cc, uint64_t now, int cycle)
{
	cc->cycle = cycle;
	cc->cycle_stamp = now;
	if (long_path_cycle(cc) && cycle == 0) {
		/* Grown only while probing up raises the estimate: at the
		 * link a probe-up of 5 % moves a 256 KiB chunk by 2.5 ms,
		 * below what the probe resolves, so "no queue seen" alone
		 * grew it to 1.25 there, and that queue showed (probe p90
		 * +4 ms after startup in the VM). */
		if (cc->btlbw < cc->up_bw + cc->up_bw / 50)
			cc->up_gain = probe_gains_gentle[0];
		cc->up_bw = cc->btlbw;
		cc->pacing_gain = cc->up_gain;
		raise_queue_rate(cc, now);
	} else if (probe_active(cc))
		cc->pacing_gain = probe_gains_gentle[cycle];
	else
		cc->pacing_gain = probe_gains[cycle];
}

/* The delay target mostly trims the window (as Swift's cwnd does), and
 * the rate only a little: its factor on the rate, never below 0.8. */
static double rate_factor(const struct pace_model *cc)
{
	return cc->qfactor > 0.8 ? cc->qfactor : 0.8;
}

/* The rate between probe-ups: the estimate times the delay factor, and
 * below the rate that began the last queue. */
static double cruise_rate(const struct pace_model *cc)
{
	double rate = (double)cc->btlbw * rate_factor(cc);
	double top = QUEUE_RATE_CRUISE * (double)cc->queue_rate;
	return cc->queue_rate && rate > top ? top : rate;
}

static void cc_update_outputs(struct pace_model *cc)
{
	double rate = cruise_rate(cc) * cc->pacing_gain;
	/* The stream's long path: probing up (1.05 for one path RTT in 8)
	 * is not scaled, or while the factor holds below 1 / 1.05 nothing
	 * is ever sent above the estimate and one left low (startup's exit
	 * on a noisy probe) stays low: seen in the VM, 31 Mbit/s of 40 with
	 * the factor at its floor and no queue. It goes no higher than the
	 * rate that began the last queue. */
	if (cc->unit_slack && cc->phase == 2 && cc->pacing_gain > 1.0 &&
	    probe_active(cc)) {
		rate = (double)cc->btlbw * cc->pacing_gain;
		if (cc->queue_rate && rate > (double)cc->queue_rate)
			rate = (double)cc->queue_rate;
	}
	if (cc->btlbw == 0)
		rate = (double)cc->rate_cap;
	else if (cc->rate_cap && rate > (double)cc->rate_cap)
		rate = (double)cc->rate_cap;
	cc->pacing_rate = (uint64_t)rate;
	if (cc->btlbw && cc->unit_slack && probe_active(cc)) {
		double bdp = (double)cc->btlbw * (double)cc->probe_min_ns / 1e9;
		double g = cc->cwnd_gain * cc->qfactor;
		cc->cwnd = (uint64_t)(bdp * (g > 1.0 ? g : 1.0)) + cc->unit_slack;
	} else if (cc->btlbw && cc->min_rtt_ns) {
		double bdp = (double)cc->btlbw * (double)cc->min_rtt_ns / 1e9;
		/* ... down to one BDP, which still fills the pipe. */
		double g = cc->cwnd_gain * cc->qfactor;
		uint64_t w = (uint64_t)(bdp * (g > 1.0 ? g : 1.0));
		cc->cwnd = w > cc->min_cwnd ? w : cc->min_cwnd;
	}
}

static void leave_startup(struct pace_model *cc)
{
	cc->phase = 1;
	cc->pacing_gain = 1.0 / STARTUP_GAIN;
	cc->cwnd_gain = 2.0;
}

void pace_model_on_ack(struct pace_model *cc, uint64_t now, uint64_t rtt_ns,
		       uint64_t rate, uint64_t prior_delivered,
		       uint64_t delivered, uint64_t inflight)
{
	int new_round = 0;
	if (prior_delivered >= cc->next_round_delivered) {
		cc->next_round_delivered = delivered;
		cc->round++;
		new_round = 1;
	}
	/* The filter's slots: rounds (BBR), or on a long path with
	 * bw_slot_rtts set, that many path RTTs each. */
	uint64_t slot_ns =
	    cc->bw_slot_rtts > 0 && probe_active(cc)
		? (uint64_t)(cc->bw_slot_rtts * (double)cc->probe_min_ns)
		: 0;
	if (slot_ns ? now - cc->slot_stamp >= slot_ns : new_round) {
		cc->slot++;
		cc->slot_stamp = now;
		/* While we hold ourselves back (delay target), samples at
		 * our own lowered rate say nothing about the path: keep the
		 * estimate (else rate and estimate spiral down together;
		 * rounds of a few us on the dpdk provider's links).
		 *
		 * In path-time slots (the stream), not when the slot's
		 * samples fell short of 0.95x what we sent: then the path
		 * set the rate, and an estimate above it ages out (else a
		 * startup overshoot stays for good once the queue it built
		 * holds the factor down: test_rate_striped). A slot without
		 * a sample (rate 0: none, or an app-limited one below the
		 * estimate) is no evidence either way; and while the whole
		 * window has had none, the estimate stays, as BBR's filter
		 * keeps its max until a new sample comes. */
		int held = cc->qfactor < 1.0;
		int none = 0;
		if (slot_ns) {
			/* ... and not while the probe sees a queue: then the
			 * link is full, and its samples are the path's (else
			 * an estimate 1 / 0.8 above the link, whose 0.8 x
			 * fills it, stays for good: test_rate_striped). */
			held = held && !cc->probe_queued &&
			       (!cc->round_max ||
				(double)cc->round_max >=
				    0.95 * (double)cc->pacing_rate);
			none = now - cc->last_sample_ns > 10 * slot_ns;
		}
		/* On the stream's long path, a slot in which the probe never
		 * saw a queue says the link had room: samples below the
		 * estimate then come from our side (a connection held back
		 * by loss recovery, the sender's CPU), not a slower path.
		 * Keep it (else it decays with every stall, and probe-ups of
		 * 5 % never win it back: 40 -> 31 Mbit/s in 8 s in the
		 * simulation, 26-32 of 40 in the VM on lossy). */
		int room = long_path_cycle(cc) && cc->phase == 2 &&
			   !cc->slot_queued;
		cc->bw_win[cc->slot % 10] =
		    held || none || room ? cc->btlbw : 0;
		cc->round_max = 0;
		cc->slot_queued = 0;
	}
	if (rate && !cc->first_sample_ns)
		cc->first_sample_ns = now;
	if (rate)
		cc->last_sample_ns = now;
	if (rate > cc->round_max)
		cc->round_max = rate;
	if (rtt_ns) {
		if (!cc->min_rtt_ns || rtt_ns <= cc->min_rtt_ns ||
		    now - cc->min_rtt_stamp > 10000000000ull) {
			cc->min_rtt_ns = rtt_ns;
			cc->min_rtt_stamp = now;
		}
		cc->srtt_ns =
		    cc->srtt_ns ? (7 * cc->srtt_ns + rtt_ns) / 8 : rtt_ns;
	}
	uint64_t *slot = &cc->bw_win[cc->slot % 10];
	if (rate > *slot)
		*slot = rate;
	uint64_t bw = 0;
	for (int i = 0; i < 10; i++)
		if (cc->bw_win[i] > bw)
			bw = cc->bw_win[i];
	cc->btlbw = bw;

	/* Swift: queueing delay above the target scales the rate down. */
	if (rtt_ns && cc->qdelay_target_ns && cc->min_rtt_ns &&
	    !probe_active(cc)) {
		/* Our own window floor queues min_cwnd / btlbw by design:
		 * tolerate that much on top of the target, or the two fight
		 * (seen as a rate cap undershot by 20 % on loopback). */
		/* A chunk's RTT holds its serialisation and both sides'
		 * processing: it cannot resolve a queue below ~10 ms. */
		uint64_t tgt = cc->qdelay_target_ns > 10000000ull
				   ? cc->qdelay_target_ns
				   : 10000000ull;
		if (bw)
			tgt += cc->min_cwnd * 1000000000ull / bw;
		uint64_t q = rtt_ns - cc->min_rtt_ns;
		if (q > tgt) {
			if (now - cc->last_decrease_ns >= cc->srtt_ns) {
				double ex = (double)(q - tgt) / (double)rtt_ns;
				double f = 1.0 - 0.8 * ex;
				if (f < 0.5)
					f = 0.5;
				cc->qfactor *= f;
				if (cc->qfactor < 0.25)
					cc->qfactor = 0.25;
				cc->last_decrease_ns = now;
			}
		} else if (new_round && cc->qfactor < 1.0) {
			cc->qfactor += 0.125;
			if (cc->qfactor > 1.0)
				cc->qfactor = 1.0;
		}
	}

	switch (cc->phase) {
	case 0: /* startup */
		cc->pacing_gain = cc->recent_samples && long_path_cycle(cc)
				      ? STARTUP_GAIN_LONG
				      : STARTUP_GAIN;
		if (new_round) {
			if (bw >= cc->full_bw + cc->full_bw / 4) {
				cc->full_bw = bw;
				cc->full_bw_rounds = 0;
			} else if (++cc->full_bw_rounds >= 3) {
				leave_startup(cc);
			}
		}
		break;
	case 1: { /* drain */
		double bdp = (double)bw * (double)cc->min_rtt_ns / 1e9;
		if ((double)inflight <= bdp) {
			cc->phase = 2;
			enter_cycle(cc, now, 0);
		}
		break;
	}
	default: { /* probe_bw: one gain per path RTT (the probe's when
		    * there is one: a chunk's holds its serialisation,
		    * seconds on a slow share, and the cycle would all but
		    * stop), and at least two units' time at the estimate:
		    * with 256 KiB chunks at 40 Mbit/s (52 ms each) a 40 ms
		    * phase of 1.05 changed no whole chunk's pace, and an
		    * estimate left at 31 Mbit/s by startup took 10 s to
		    * climb 3 (seen in the VM) */
		uint64_t phase_ns =
		    probe_active(cc) ? cc->probe_min_ns : cc->min_rtt_ns;
		if (cc->unit && bw &&
		    2 * cc->unit * 1000000000ull / bw > phase_ns)
			phase_ns = 2 * cc->unit * 1000000000ull / bw;
		if (now - cc->cycle_stamp >= phase_ns) {
			int next = (cc->cycle + 1) % 8;
			/* The long path: a probe-up that ran its time without
			 * the probe seeing a queue (one that does is cut short
			 * in pace_model_on_probe) found room. The next comes
			 * after one phase at the estimate (its samples arrive
			 * a chunk's RTT late) and twice as far above it, up to
			 * 1.25: at 5 % a cycle, an estimate left at 0.84 of
			 * the link by startup took 8 s to reach it (seen in
			 * the VM at 40 Mbit/s, 40 ms). */
			if (long_path_cycle(cc) && cc->cycle == 0) {
				double up = 1.0 + 2.0 * (cc->up_gain - 1.0);
				cc->up_gain = up < 1.25 ? up : 1.25;
				next = 7;
			}
			enter_cycle(cc, now, next);
		}
		break;
	}
	}
	cc_update_outputs(cc);
}

/*
 * The stream's long path: the rate that began the last queue. The estimate
 * reads above the link by what a shaper lets through at once over the
 * sample's window (a token bucket: in the VM, tbf's 64 KiB at 50 Mbit/s
 * put it 7 % over, 256 KiB 18 %), so each climb of the factor back to 1
 * after a cut, and each probe-up, overshot the link, and the probe saw the
 * queue a path RTT and its filter later: a 5-20 ms sawtooth. The rate
 * paced around that long before the queue showed bounds the link from
 * above, or nearly. One below 0.85 x the estimate is not taken: that
 * queue was not our rate's (bursts, another flow). At 0.9, an estimate
 * 12 % high (the simulation) learned nothing, and the sawtooth stayed:
 * queue p99 9 ms, against 1.5-2.2 at 0.85.
 */
static void learn_queue_rate(struct pace_model *cc, uint64_t now)
{
	/* The probe filter's lag: the min of the last 4 samples. */
	uint64_t lag = cc->probe_min_ns, span = 0;
	uint64_t n = cc->probe_samples < 16 ? cc->probe_samples : 16;
	if (n >= 4)
		span = now - cc->pace_hist_ns[(cc->probe_samples - 4) % 16];
	lag += span;
	/* The mean paced around then: a probe-up's rate makes a queue
	 * too, and the cruise before or after it may have begun it. The
	 * least of them (as before) was a climbing factor's earliest or a
	 * probe-down's: in the simulation, 3-9 % below the link, and the
	 * link 97 % used (99 % with the mean). */
	uint64_t sum = 0, cnt = 0, top = 0;
	for (uint64_t i = 1; i <= n; i++) {
		uint64_t k = (cc->probe_samples - i) % 16;
		uint64_t age = now - cc->pace_hist_ns[k];
		if (age + QUEUE_RATE_SPAN_NS >= lag &&
		    age <= lag + QUEUE_RATE_SPAN_NS) {
			sum += cc->pace_hist[k];
			cnt++;
			if (cc->pace_hist[k] > top)
				top = cc->pace_hist[k];
		}
	}
	uint64_t rate = cnt ? sum / cnt : 0;
	/* A queue that began while we cruised (nothing paced above the
	 * cruise, nor above what the link delivered) may be the path's
	 * jitter as much as our bursts: it lowers the learned rate no
	 * further than QUEUE_RATE_CRUISE_FLOOR x the estimate. */
	uint64_t low = (uint64_t)(QUEUE_RATE_CRUISE_FLOOR * (double)cc->btlbw);
	int cruising = cc->queue_rate && top <= cc->btlbw &&
		       (double)top <= QUEUE_RATE_CRUISE * 1.001 *
					  (double)cc->queue_rate;
	if (cruising && rate < low) /* never above the rate it had */
		rate = low < cc->queue_rate ? low : cc->queue_rate;
	if ((double)rate >= 0.85 * (double)cc->btlbw)
		cc->queue_rate_pending = rate;
}

void pace_model_on_probe(struct pace_model *cc, uint64_t now, uint64_t rtt_ns)
{
	if (!rtt_ns)
		return;
	/* The path's RTT: the min over the last 5-10 s. Restarting a 10 s
	 * min from the sample at hand, as before, took one 4 ms over the
	 * path for it (seen in the VM: the queue then read as negative,
	 * and the rate was halved). */
	if (!cc->probe_samples ||
	    now - cc->probe_min_stamp >= 5000000000ull) {
		cc->probe_min_prev =
		    cc->probe_samples ? cc->probe_min_cur : rtt_ns;
		cc->probe_min_cur = rtt_ns;
		cc->probe_min_stamp = now;
	} else if (rtt_ns < cc->probe_min_cur) {
		cc->probe_min_cur = rtt_ns;
	}
	cc->probe_min_ns = cc->probe_min_cur < cc->probe_min_prev
			       ? cc->probe_min_cur
			       : cc->probe_min_prev;
	/* A path that jitters by itself (netem's +-2 ms on east-west) moves
	 * every sample: a queue is what stands above the target plus twice
	 * the median change between successive samples (tracked by +-50 us
	 * steps, so the rare late wake-up below does not move it). */
	if (cc->probe_last_ns) {
		double d = (double)rtt_ns - (double)cc->probe_last_ns;
		d = d < 0 ? -d : d;
		cc->probe_jit_ns += d > cc->probe_jit_ns ? 50000 : -50000;
		if (cc->probe_jit_ns < 0)
			cc->probe_jit_ns = 0;
	}
	/* A sample is the path plus, sometimes, a late wake-up of one side
	 * (ms under an emulator): noise only ever adds. The min of the last
	 * four (~40 ms at the default rate) keeps a real queue and drops
	 * the noise. In startup and drain the last two: each sample's wait
	 * is another 10 ms of queue growing at the startup gain, and an
	 * early exit costs little (probing up finds the rest); drain, with
	 * fewer samples, can only end later, and its window must not reach
	 * back to startup's samples from before the queue. */
	cc->probe_win[cc->probe_samples % 4] = rtt_ns;
	cc->pace_hist[cc->probe_samples % 16] = cc->pacing_rate;
	cc->pace_hist_ns[cc->probe_samples % 16] = now;
	cc->probe_samples++;
	cc->probe_last_ns = rtt_ns;
	int nwin = cc->phase < 2 ? 2 : 4;
	for (int i = 0; i < nwin && (uint64_t)i < cc->probe_samples; i++) {
		uint64_t w = cc->probe_win[(cc->probe_samples - 1 - i) % 4];
		if (w < rtt_ns)
			rtt_ns = w;
	}
	if (!cc->qdelay_target_ns || !probe_active(cc))
		return;
	uint64_t q = rtt_ns > cc->probe_min_ns ? rtt_ns - cc->probe_min_ns : 0;
	uint64_t target =
	    cc->qdelay_target_ns + (uint64_t)(2 * cc->probe_jit_ns);
	/* "Once per RTT" is the path's RTT: the chunks' (srtt_ns) holds
	 * their serialisation, hundreds of ms at a low paced rate. */
	uint64_t rtt = rtt_ns;
	/* The stream's long path: startup's queue is drain's to empty
	 * (at 1 / 2.885 of the estimate, in a round); a factor cut for it
	 * here, in startup or in drain, took 37 path RTTs to grow back
	 * (1.5 s at 0.8 x the rate, seen in the VM at 40 ms; from 0.59
	 * after drain, 1 s). */
	int own_queue = cc->unit_slack && cc->phase < 2;
	/* A new queue: after two path RTTs without one (not the tail of
	 * startup's, nor of the one the last cut is draining: learned
	 * there, the rate was well below the link's, in the simulation),
	 * and seen by two samples in a row (not one late ping). */
	if (q > target && cc->queue_rate_pending) {
		cc->queue_rate = cc->queue_rate_pending;
		cc->queue_rate_step = QUEUE_RATE_STEP;
		cc->queue_rate_stamp = now;
	}
	cc->queue_rate_pending = 0;
	if (q > target && cc->clear_since && long_path_cycle(cc) &&
	    cc->phase == 2 && now - cc->clear_since >= 2 * rtt_ns)
		learn_queue_rate(cc, now);
	if (q > target && cc->clear_since)
		cc->queued_since = now;
	if (q > target)
		cc->clear_since = 0;
	else if (!cc->clear_since && cc->phase == 2)
		cc->clear_since = now;
	/* A queue that stays while the factor holds us back is not ours
	 * (another flow's, or the probe's noise held above the target): the
	 * rate paced when it began says nothing of the link. Kept, it held
	 * the rate at 0.8 of the link for 4 s after such a queue went, in
	 * the simulation. */
	if (q > target && cc->queue_rate &&
	    now - cc->queued_since >= queue_rate_wait(cc))
		cc->queue_rate = 0;
	cc->probe_queued = q > target;
	if (q > target)
		cc->slot_queued = 1;
	if (q > target) {
		/* Multiplicative decrease, at most once per RTT, in
		 * proportion to the excess (Swift). */
		if (!own_queue && now - cc->last_decrease_ns >= rtt) {
			/* of the rate paced, where the cruise's cap held it */
			double held = cc->btlbw ? cruise_rate(cc) /
						      (double)cc->btlbw
						: 1.0;
			if (held < cc->qfactor)
				cc->qfactor = held;
			double ex = (double)(q - target) / (double)rtt_ns;
			double f = 1.0 - 0.8 * ex;
			cc->qfactor *= f < 0.5 ? 0.5 : f;
			if (cc->qfactor < 0.25)
				cc->qfactor = 0.25;
			cc->last_decrease_ns = now;
		}
		/* Startup on the stream's long path: a queue (above
		 * startup_exit_queue) means the pacer is above the link,
		 * and leaving at once is all the exit needs (HyStart's
		 * delay exit). Its growth test counts
		 * rounds of the chunks' RTT, seconds each when a chunk takes
		 * 200 ms to serialise (1 MiB at 40 Mbit/s). Not the queue of
		 * the first window, which leaves unpaced: it takes
		 * init_cwnd / btlbw to drain. */
		if (cc->phase == 0 && cc->unit_slack && cc->btlbw &&
		    q > startup_exit_queue(cc) &&
		    now - cc->first_sample_ns >=
			cc->init_cwnd * 1000000000ull / cc->btlbw)
			leave_startup(cc);
		/* A probe-up that meets a queue has found the link: it ends
		 * here (its excess is in flight already), and the next one
		 * starts again at 5 %. */
		if (cc->phase == 2 && cc->cycle == 0 && long_path_cycle(cc)) {
			cc->up_gain = probe_gains_gentle[0];
			enter_cycle(cc, now, 1);
		}
	} else if (cc->phase == 1 && cc->unit_slack) {
		/* Drain on the stream's long path: done when the probe sees
		 * the queue gone. In flight <= one BDP (BBR's test) counts
		 * whole chunks, some held at the receiver: it took 2 s at
		 * 0.35 x the rate in the VM. */
		cc->phase = 2;
		enter_cycle(cc, now, 0);
	}
	if (q <= target && cc->qfactor < 1.0 &&
	    now - cc->last_increase_ns >= cc->probe_min_ns &&
	    now - cc->last_decrease_ns >= rtt) {
		/* Additive increase: 2 % of the rate per base RTT. */
		cc->qfactor += 0.02;
		if (cc->qfactor > 1.0)
			cc->qfactor = 1.0;
		cc->last_increase_ns = now;
	}
	cc_update_outputs(cc);
}
