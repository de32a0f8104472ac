/* SPDX-License-Identifier: MIT */
/* Which packets the dpdk sender counts lost (dpdk_loss.c) on a made-up
 * clock: SACK holes, a resent packet lost again, what a timeout's ACK
 * says about the rest of a window (a lost tail, or a slow peer), and
 * when a tail loss probe goes. No
 * EAL: a context and a connection as plain structs; the tests do what
 * dpdk_proto.c does when it sends, resends and takes an ACK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dpdk_rig.h"

#define MS 1000000ull
#define US 1000ull
#define WINDOW 1024u
#define SRTT (100 * US)
#define AGE (SRTT + SRTT / 4 + 20 * US) /* dpdk_pkt_lost's */

static struct rig rig_new(void)
{
	struct rig r = rig_alloc();
	r.ep->pkts = calloc(WINDOW, sizeof(*r.ep->pkts));
	assert_non_null(r.ep->pkts);
	r.ep->wmask = WINDOW - 1;
	r.ctx->rto_min_ns = 2 * MS;
	r.ctx->rto_max_ns = 1000 * MS;
	/* Sequence numbers start near the wrap, as they may. */
	r.ep->snd_una = r.ep->snd_nxt = r.ep->sack_high = UINT32_MAX - 50;
	dpdk_rtt_sample(r.ep, SRTT);
	return r;
}

static struct dpdk_pkt *pkt(struct rig *r, uint32_t seq)
{
	return &r->ep->pkts[seq & r->ep->wmask];
}

/* @n new packets leave now. */
static void send_new(struct rig *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (r->ep->snd_una == r->ep->snd_nxt)
			r->ep->rto_deadline = r->ctx->now + r->ep->rto;
		struct dpdk_pkt *pk = pkt(r, r->ep->snd_nxt);
		memset(pk, 0, sizeof(*pk));
		pk->sent_ns = r->ctx->now;
		dpdk_loss_on_send(r->ep);
		r->ep->snd_nxt++;
	}
}

/* Packets @from .. @to - 1 are resent now. */
static void resend(struct rig *r, uint32_t from, uint32_t to)
{
	for (uint32_t s = from; s != to; s++) {
		pkt(r, s)->retx = 1;
		pkt(r, s)->sent_ns = r->ctx->now;
	}
}

/* The timer fires: it resends up to DPDK_RTO_RETX_MAX from snd_una. */
static uint32_t rto(struct rig *r)
{
	uint32_t end = r->ep->snd_una;
	for (uint32_t n = 0; n < DPDK_RTO_RETX_MAX && end != r->ep->snd_nxt;
	     n++)
		end++;
	resend(r, r->ep->snd_una, end);
	dpdk_loss_on_rto(r->ep, end);
	return end;
}

/* An ACK: cumulative up to @una, and SACK of [@s, @e) (s == e: none). */
static void ack(struct rig *r, uint32_t una, uint32_t s, uint32_t e)
{
	struct dpdk_ep *ep = r->ep;
	bool news = false;
	for (; ep->snd_una != una; ep->snd_una++) {
		if (!pkt(r, ep->snd_una)->sacked) {
			dpdk_loss_delivered(ep, pkt(r, ep->snd_una));
			news = true;
		}
		ep->rto_deadline = r->ctx->now + ep->rto;
	}
	if (dpdk_seq_lt(ep->sack_high, ep->snd_una))
		ep->sack_high = ep->snd_una;
	for (; s != e; s++) {
		if (!pkt(r, s)->sacked) {
			dpdk_loss_delivered(ep, pkt(r, s));
			news = true;
		}
		pkt(r, s)->sacked = 1;
		if (dpdk_seq_lt(ep->sack_high, s + 1))
			ep->sack_high = s + 1;
	}
	dpdk_loss_on_ack(ep, news);
}

/* How many of [@from, @to) are lost now. */
static uint32_t lost(struct rig *r, uint32_t from, uint32_t to)
{
	uint32_t n = 0;
	for (uint32_t s = from; s != to; s++)
		n += dpdk_pkt_lost(r->ep, s);
	return n;
}

/* A hole below a SACK is lost once older than ~1.25 srtt, not before. */
static void sack_hole_lost_once_old(void **state)
{
	(void)state;
	struct rig r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 10);
	r.ctx->now += SRTT;
	ack(&r, a, a + 3, a + 10); /* 0..2 missing */
	assert_int_equal(lost(&r, a, a + 10), 0);
	r.ctx->now += AGE - SRTT;
	assert_int_equal(lost(&r, a, a + 10), 3);
	rig_free(&r);
}

/* A resent packet is not lost again just for being old: only once a
 * packet sent after it has arrived. */
static void resent_lost_again_only_after_later_arrives(void **state)
{
	(void)state;
	struct rig r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 10);
	r.ctx->now += AGE;
	ack(&r, a, a + 5, a + 10);
	assert_int_equal(lost(&r, a, a + 10), 5);
	resend(&r, a, a + 5);
	r.ctx->now += 10 * AGE; /* their ACK is slow */
	assert_int_equal(lost(&r, a, a + 10), 0);
	send_new(&r, 1); /* leaves after the resends ... */
	r.ctx->now += SRTT;
	ack(&r, a, a + 10, a + 11); /* ... and arrives: they are lost */
	assert_int_equal(lost(&r, a, a + 10), 5);
	rig_free(&r);
}

/* 200 packets out, none arrive, nothing to SACK: the timer resends 16;
 * the ACK stops where they end, so the other 184 are lost at once. */
static void lost_tail_costs_one_timeout(void **state)
{
	(void)state;
	struct rig r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 200);
	r.ctx->now += 3 * MS;
	assert_int_equal(lost(&r, a, a + 200), 0); /* no evidence yet */
	uint32_t end = rto(&r);
	assert_int_equal(end - a, DPDK_RTO_RETX_MAX);
	r.ctx->now += SRTT;
	ack(&r, a + 5, a, a); /* part of the resends: no verdict yet */
	assert_int_equal(lost(&r, a + 5, a + 200), 0);
	ack(&r, end, a, a);
	assert_int_equal(lost(&r, end, a + 200), 200 - DPDK_RTO_RETX_MAX);
	rig_free(&r);
}

/* The peer was slow, not the path lossy: the ACK after the timeout goes
 * beyond its resends (the originals arrived), and the rest of the
 * window is left alone, not sent twice. */
static void slow_peer_is_not_a_lost_tail(void **state)
{
	(void)state;
	struct rig r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 200);
	r.ctx->now += 3 * MS;
	rto(&r);
	r.ctx->now += SRTT;
	ack(&r, a + 40, a, a);
	r.ctx->now += 10 * AGE;
	assert_int_equal(lost(&r, a + 40, a + 200), 0);
	assert_false(r.ep->rto_verdict);
	rig_free(&r);
}

/* A window the timer resends whole leaves nothing to judge. */
static void short_window_resent_whole(void **state)
{
	(void)state;
	struct rig r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 12);
	r.ctx->now += 3 * MS;
	assert_int_equal(rto(&r) - a, 12);
	assert_false(r.ep->rto_verdict);
	rig_free(&r);
}

/* 200 packets out, none arrive: 2 srtt + 20 us after the last left, the
 * last goes again (once); its SACK makes the other 199 lost, long before
 * the timer (2 ms). */
static void tail_probe_draws_a_sack(void **state)
{
	(void)state;
	struct rig r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 100);
	r.ctx->now += 10 * US;
	send_new(&r, 100); /* new data: the probe waits for the last */
	r.ctx->now += 2 * SRTT + 19 * US;
	assert_false(dpdk_tlp_due(r.ep));
	r.ctx->now += 2 * US;
	assert_true(dpdk_tlp_due(r.ep));
	assert_true(r.ctx->now < r.ep->rto_deadline);
	uint32_t s = 0;
	assert_true(dpdk_tlp_pick(r.ep, &s));
	assert_int_equal(s, a + 199);
	resend(&r, s, s + 1); /* the probe */
	dpdk_loss_on_probe(r.ep);
	r.ctx->now += 50 * US;
	assert_false(dpdk_tlp_due(r.ep)); /* once */
	ack(&r, a, a + 199, a + 200);
	assert_int_equal(lost(&r, a, a + 200), 199);
	rig_free(&r);
}

/* The last hole was resent and that resend lost too, everything above
 * it SACKed: no packet sent later can arrive to say so (RACK), so the
 * probe takes the last packet not SACKed, the hole itself. */
static void probe_finds_a_lost_resend(void **state)
{
	(void)state;
	struct rig r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 10);
	r.ctx->now += AGE;
	ack(&r, a, a + 1, a + 10);
	assert_int_equal(lost(&r, a, a + 10), 1);
	resend(&r, a, a + 1);
	dpdk_loss_on_send(r.ep);
	r.ctx->now += 2 * SRTT + 19 * US;
	assert_false(dpdk_tlp_due(r.ep)); /* the resend re-armed it */
	r.ctx->now += 2 * US;
	assert_int_equal(lost(&r, a, a + 10), 0);
	assert_true(dpdk_tlp_due(r.ep));
	uint32_t s = 0;
	assert_true(dpdk_tlp_pick(r.ep, &s));
	assert_int_equal(s, a);
	rig_free(&r);
}

/* After a timeout, an ACK that stops where the resends end but SACKs
 * something above says the peer has packets beyond them: no verdict,
 * the SACK rule has the holes below it. */
static void sack_above_the_resends_is_no_verdict(void **state)
{
	(void)state;
	struct rig r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 200);
	r.ctx->now += 3 * MS;
	uint32_t end = rto(&r);
	r.ctx->now += SRTT;
	ack(&r, end, a + 100, a + 101);
	assert_false(r.ep->rto_verdict);
	assert_int_equal(lost(&r, end, a + 200), 100 - DPDK_RTO_RETX_MAX);
	rig_free(&r);
}

/* No probe on a path whose timer comes first (RFC 8985: PTO <= RTO):
 * at 40 ms, 2 srtt is 80 ms and the timer srtt + 4 rttvar. Nor after a
 * timeout, whose resends probe already, until an ACK brings news. */
static void no_probe_after_the_timer(void **state)
{
	(void)state;
	struct rig r = rig_new();
	r.ep->srtt = 0;
	for (int i = 0; i < 100; i++)
		dpdk_rtt_sample(r.ep, 40 * MS);
	send_new(&r, 50);
	for (int i = 0; i < 100; i++, r.ctx->now += MS)
		assert_false(dpdk_tlp_due(r.ep));
	rig_free(&r);

	r = rig_new();
	uint32_t a = r.ep->snd_una;
	send_new(&r, 50);
	r.ctx->now += 3 * MS;
	rto(&r);
	r.ctx->now += MS;
	assert_false(dpdk_tlp_due(r.ep));
	ack(&r, a + 1, a, a);
	r.ctx->now += MS;
	assert_true(dpdk_tlp_due(r.ep));
	rig_free(&r);
}

/* RFC 6298 with the floor: a 100 us path times out at WCCL_DPDK_RTO_MIN,
 * a 40 ms one at srtt + 4 rttvar. */
static void timer_follows_rtt(void **state)
{
	(void)state;
	struct rig r = rig_new();
	assert_true(r.ep->rto == r.ctx->rto_min_ns);
	r.ep->srtt = 0;
	dpdk_rtt_sample(r.ep, 40 * MS);
	assert_true(r.ep->srtt == 40 * MS && r.ep->rttvar == 20 * MS);
	assert_true(r.ep->rto == 120 * MS);
	for (int i = 0; i < 100; i++)
		dpdk_rtt_sample(r.ep, 40 * MS);
	assert_true(r.ep->rto < 41 * MS && r.ep->rto > 40 * MS);
	rig_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sack_hole_lost_once_old),
		cmocka_unit_test(resent_lost_again_only_after_later_arrives),
		cmocka_unit_test(lost_tail_costs_one_timeout),
		cmocka_unit_test(slow_peer_is_not_a_lost_tail),
		cmocka_unit_test(short_window_resent_whole),
		cmocka_unit_test(tail_probe_draws_a_sack),
		cmocka_unit_test(probe_finds_a_lost_resend),
		cmocka_unit_test(sack_above_the_resends_is_no_verdict),
		cmocka_unit_test(no_probe_after_the_timer),
		cmocka_unit_test(timer_follows_rtt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
