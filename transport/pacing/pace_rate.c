/* SPDX-License-Identifier: MIT */
/*
 * Delivery-rate sampler (see pace_model.h). One sample per acked unit:
 *
 *   sender  --P0--P1--P2------P3-->        (P3 leaves when P0 is acked)
 *   acks          A0    A1 A2     A3
 *   P3's window: send  [send(P0), send(P3)]   (P0: acked last when P3 left)
 *                ack   [A0, A3]  receiver  [rcv(P0), rcv(P3)]
 *   rate = delivered(A1..A3) / the longest of the three
 *
 * With min_bytes, a window that holds fewer bytes starts at an earlier ack
 * point (kept in a ring) instead: the same three intervals, from there.
 * ack_only (the caller's choice on a short path, where the CPU is the
 * bottleneck and a generous estimate keeps it busy): the ack interval
 * alone, no minimum window. With the receiver's byte counts at both ends
 * (rcv_bytes): those bytes over the receiver's interval instead.
 */
#include "pace_model.h"

#include <string.h>

void pace_rs_init(struct pace_rs *rs, uint64_t min_bytes)
{
	memset(rs, 0, sizeof(*rs));
	rs->min_bytes = min_bytes;
}

void pace_rs_on_send(struct pace_rs *rs, struct pace_rs_unit *u, uint64_t now,
		     uint64_t inflight)
{
	if (!inflight) {
		/* Restart from idle: the silence is no part of a window. */
		rs->first_sent_ns = rs->delivered_ns = now;
		rs->rcv_ns = 0;
		rs->rcv_bytes = 0;
		rs->nhist = 0;
	}
	if (!rs->nhist) {
		/* The first window starts here. */
		rs->hist[0] = (struct pace_rs_point){
		    .delivered = rs->delivered, .ack_ns = now, .sent_ns = now};
		rs->nhist = 1;
	}
	u->delivered = rs->delivered;
	u->delivered_ns = rs->delivered_ns;
	u->rcv_ns = rs->rcv_ns;
	u->rcv_bytes = rs->rcv_bytes;
	u->first_sent_ns = rs->first_sent_ns;
	u->sent_ns = now;
	u->app_limited = rs->app_limited != 0;
}

void pace_rs_app_limited(struct pace_rs *rs, uint64_t inflight)
{
	uint64_t mark = rs->delivered + inflight;
	rs->app_limited = mark ? mark : 1;
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t m = a > b ? a : b;
	return m > c ? m : c;
}

void pace_rs_delivered(struct pace_rs *rs, uint64_t len)
{
	rs->delivered += len;
	if (rs->app_limited && rs->delivered > rs->app_limited)
		rs->app_limited = 0;
}

void pace_rs_on_ack(struct pace_rs *rs, const struct pace_rs_unit *u,
		    uint64_t len, uint64_t now, uint64_t rcv_ns,
		    uint64_t rcv_bytes, uint64_t min_interval_ns,
		    struct pace_rs_sample *out)
{
	pace_rs_delivered(rs, len);
	struct pace_rs_point ref = {.delivered = u->delivered,
				    .ack_ns = u->delivered_ns,
				    .rcv_ns = u->rcv_ns,
				    .sent_ns = u->first_sent_ns,
				    .rcv_bytes = u->rcv_bytes};
	if (!rs->ack_only && rs->delivered - ref.delivered < rs->min_bytes) {
		/* The newest earlier point that makes the window long
		 * enough, else the oldest kept. */
		uint64_t n =
		    rs->nhist < PACE_RS_HIST ? rs->nhist : PACE_RS_HIST;
		const struct pace_rs_point *p = NULL;
		for (uint64_t k = 0; k < n; k++) {
			p = &rs->hist[(rs->nhist - 1 - k) % PACE_RS_HIST];
			if (p->delivered + rs->min_bytes <= rs->delivered)
				break;
		}
		if (p && p->delivered < ref.delivered)
			ref = *p;
	}
	/* A window by the receiver's time (rcv_window_ns): the newest earlier
	 * point at least that far back, bytes or not. Startup's rate grows
	 * by 2.9x a round, and a window of 2n chunks then spans all of it
	 * (0.6 s at 40 Mbit/s): its samples read half the rate reached, and
	 * the estimate left startup at half the link (seen in the VM). */
	if (rs->rcv_window_ns && rcv_ns && rcv_bytes && !rs->ack_only) {
		uint64_t n =
		    rs->nhist < PACE_RS_HIST ? rs->nhist : PACE_RS_HIST;
		for (uint64_t k = 0; k < n; k++) {
			const struct pace_rs_point *p =
			    &rs->hist[(rs->nhist - 1 - k) % PACE_RS_HIST];
			if (p->rcv_ns && p->rcv_bytes &&
			    p->rcv_ns + rs->rcv_window_ns <= rcv_ns) {
				ref = *p;
				break;
			}
		}
	}
	uint64_t ack_el = now - ref.ack_ns;
	uint64_t snd_el =
	    u->sent_ns > ref.sent_ns ? u->sent_ns - ref.sent_ns : 0;
	uint64_t rcv_el =
	    ref.rcv_ns && rcv_ns > ref.rcv_ns ? rcv_ns - ref.rcv_ns : 0;
	uint64_t el = rs->ack_only ? ack_el : max3(ack_el, snd_el, rcv_el);
	/* The receiver's byte counts: its arrival rate over its interval. */
	int by_bytes = !rs->ack_only && rcv_bytes && ref.rcv_bytes &&
		       rcv_bytes > ref.rcv_bytes && rcv_el;

	/* The newest state, for units sent from now on (units acked out of
	 * order do not move the send or receiver time back). */
	rs->delivered_ns = now;
	if (u->sent_ns > rs->first_sent_ns)
		rs->first_sent_ns = u->sent_ns;
	if (rcv_ns > rs->rcv_ns) {
		rs->rcv_ns = rcv_ns;
		rs->rcv_bytes = rcv_bytes;
	}
	rs->hist[rs->nhist % PACE_RS_HIST] =
	    (struct pace_rs_point){.delivered = rs->delivered,
				   .ack_ns = now,
				   .rcv_ns = rs->rcv_ns,
				   .sent_ns = rs->first_sent_ns,
				   .rcv_bytes = rs->rcv_bytes};
	rs->nhist++;

	out->prior_delivered = u->delivered;
	out->delivered = rs->delivered - ref.delivered;
	if (by_bytes) {
		out->delivered = rcv_bytes - ref.rcv_bytes;
		el = rcv_el;
	}
	out->interval_ns = el;
	out->app_limited = u->app_limited;
	out->rate = el && (rs->ack_only || el >= min_interval_ns)
			? out->delivered * 1000000000ull / el
			: 0;
}
