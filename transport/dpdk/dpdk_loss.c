/* SPDX-License-Identifier: MIT */
/*
 * Which packets are lost: the retransmission timer (RFC 6298) and the
 * rules fast_retx and check_rto (dpdk_proto.c) resend by. Plain state,
 * no frames: tests/dpdk/test_dpdk_loss.c runs it without an EAL.
 *
 * A packet is lost when it is below sack_high (the highest SACKed, or
 * what a timeout found lost), not SACKed, and older than ~1.25 srtt. A
 * resent one needs more: a packet sent after it has arrived (RACK, RFC
 * 8985), else its ACK may only be slower than the age.
 *
 * A timeout resends at most DPDK_RTO_RETX_MAX packets at once (SACKed
 * ones skipped). If the peer's ACK then stops exactly where those end and
 * SACKs nothing above, it has nothing beyond them: the rest of what was
 * out is lost too (a lost tail, nothing after it to SACK) and goes as
 * the rule above finds it, paced; N packets cost one timeout, not N / 16.
 * An ACK beyond them says the originals were there, the peer slow rather
 * than the path lossy (a peer on a shared core, a delay spike): the rest
 * is left alone, not sent twice.
 *
 * Before the timer, a tail loss probe (RFC 8985): when no packet has been
 * sent, new or again, and no ACK has brought news for 2 srtt (+ 20 us for
 * the peer's loop), the last packet out that is not SACKed is sent again,
 * once. Its SACK makes every hole below it a loss by the first rule, and
 * its arrival a resend sent before it (RACK): a lost tail, or a lost
 * resend of the last hole, goes within about three round trips instead
 * of after WCCL_DPDK_RTO_MIN_US (2 ms, a hundred round trips on a short
 * path). If the probe is lost too, the timer.
 */
#include "dpdk.h"

/* RFC 6298: rto = srtt + max(G, 4 rttvar), G = 100 us, within bounds. */
void dpdk_rto_update(struct dpdk_ep *ep)
{
	struct dpdk_ctx *ctx = ep->ctx;
	if (!ep->srtt)
		return;
	uint64_t var = 4 * ep->rttvar > 100000 ? 4 * ep->rttvar : 100000;
	uint64_t rto = ep->srtt + var;
	if (rto < ctx->rto_min_ns)
		rto = ctx->rto_min_ns;
	if (rto > ctx->rto_max_ns)
		rto = ctx->rto_max_ns;
	ep->rto = rto;
}

void dpdk_rtt_sample(struct dpdk_ep *ep, uint64_t r)
{
	if (!ep->srtt) {
		ep->srtt = r;
		ep->rttvar = r / 2;
	} else {
		uint64_t d = ep->srtt > r ? ep->srtt - r : r - ep->srtt;
		ep->rttvar = (3 * ep->rttvar + d) / 4;
		ep->srtt = (7 * ep->srtt + r) / 8;
	}
	dpdk_rto_update(ep);
}

void dpdk_loss_delivered(struct dpdk_ep *ep, const struct dpdk_pkt *pk)
{
	if (pk->sent_ns > ep->rack_ns)
		ep->rack_ns = pk->sent_ns;
}

bool dpdk_pkt_lost(const struct dpdk_ep *ep, uint32_t seq)
{
	const struct dpdk_pkt *pk = &ep->pkts[seq & ep->wmask];
	if (!ep->srtt || !dpdk_seq_lt(seq, ep->sack_high) || pk->sacked)
		return false;
	uint64_t age = ep->srtt + ep->srtt / 4 + 20000;
	if (ep->ctx->now < pk->sent_ns + age)
		return false;
	return !pk->retx || ep->rack_ns > pk->sent_ns;
}

void dpdk_loss_on_rto(struct dpdk_ep *ep, uint32_t resent_end)
{
	ep->tlp_out = true; /* the timer's resends probe now */
	ep->rto_end = resent_end;
	ep->rto_high = ep->snd_nxt;
	ep->rto_verdict = dpdk_seq_lt(resent_end, ep->snd_nxt);
}

bool dpdk_tlp_pick(const struct dpdk_ep *ep, uint32_t *seq)
{
	for (uint32_t s = ep->snd_nxt; s != ep->snd_una;) {
		s--;
		if (!ep->pkts[s & ep->wmask].sacked) {
			*seq = s;
			return true;
		}
	}
	return false;
}

void dpdk_loss_on_probe(struct dpdk_ep *ep)
{
	ep->tlp_out = true;
}

static uint64_t pto(const struct dpdk_ep *ep)
{
	return 2 * ep->srtt + 20000;
}

void dpdk_loss_on_send(struct dpdk_ep *ep)
{
	ep->tlp_deadline = ep->ctx->now + pto(ep);
}

bool dpdk_tlp_due(const struct dpdk_ep *ep)
{
	return ep->srtt && !ep->tlp_out && ep->snd_una != ep->snd_nxt &&
	       ep->ctx->now >= ep->tlp_deadline &&
	       ep->tlp_deadline < ep->rto_deadline;
}

void dpdk_loss_on_ack(struct dpdk_ep *ep, bool news)
{
	if (news) {
		ep->tlp_out = false;
		ep->tlp_deadline = ep->ctx->now + pto(ep);
	}
	if (!ep->rto_verdict || dpdk_seq_lt(ep->snd_una, ep->rto_end))
		return;
	ep->rto_verdict = false;
	/* Stopped at rto_end, and no SACK above it. */
	if (ep->snd_una == ep->rto_end && ep->sack_high == ep->rto_end)
		ep->sack_high = ep->rto_high;
}
