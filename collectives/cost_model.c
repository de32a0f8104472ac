/* SPDX-License-Identifier: MIT */
/*
 * Closed forms for the schedules in schedule.h (n ranks, S bytes, k
 * regions, M = smallest region, p = largest power of two <= n, D = tree
 * depth, 'worst' = slowest link class among all ranks, 'region' = slowest
 * class inside one region):
 *
 *   ring  2 (n-1) (a_worst + S/n / b_worst)
 *   rhd   2 log2(p) a_worst + 2 (p-1)/p S / b_worst
 *         + (n != p) 2 (a_worst + S / b_worst)            fold + unfold
 *   rd    log2(p) (a_worst + S / b_worst) + the same fold + unfold
 *
 * plus the reductions each rank computes, g per byte (COST_REDUCE_GBS):
 * ring and rhd (n-1)/n S (+ S for the fold), tree S, hier about S, rd
 * log2(p) S (+ S): recursive doubling reduces everything at every step,
 * which is what keeps it to small buffers.
 *   tree  chunks of C = min(S/2, 1 MiB) per tree; each chunk costs an
 *         inner node 3 steps per tree up and 3 down, plus the pipeline
 *         fill of D steps each way:
 *         (12 S/(2C) + 2 D) (a_worst + C / b_worst)
 *   hier  2 (M-1) (a_region + S/M / b_region)             intra ring
 *         + 2 (k-1) (a_cross + S/(M k) / b_cross)         shard rings
 *         + (extras) 2 (a_region + S / b_region)          fold + unfold
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include <wccl/errors.h>

#include "collectives/cost_model.h"

static const char *const algo_names[WCCL_ALGO_COUNT] = {
	[WCCL_ALGO_RING] = "ring",
	[WCCL_ALGO_TREE] = "tree",
	[WCCL_ALGO_RHD] = "rhd",
	[WCCL_ALGO_HIER] = "hier",
	[WCCL_ALGO_RD] = "rd",
};

const char *wccl_algo_name(enum wccl_algo algo)
{
	if ((unsigned)algo >= WCCL_ALGO_COUNT)
		return "invalid";
	return algo_names[algo];
}

static int host(const struct wccl_cost_topology *t, int r)
{
	return t->host_of ? t->host_of[r] : r;
}

static enum wccl_link_class link_class(const struct wccl_cost_topology *t,
				       int a, int b)
{
	if (t->region_of[a] != t->region_of[b])
		return WCCL_LINK_CROSS;
	return host(t, a) == host(t, b) ? WCCL_LINK_HOST : WCCL_LINK_REGION;
}

struct shape {
	enum wccl_link_class worst, intra;
	int nregions, min_size;
	bool extras; /* some region is bigger than min_size */
};

static void analyse(const struct wccl_cost_topology *t, struct shape *s)
{
	s->worst = s->intra = WCCL_LINK_HOST;
	for (int a = 0; a < t->nranks; a++)
		for (int b = a + 1; b < t->nranks; b++) {
			enum wccl_link_class c = link_class(t, a, b);
			if (c > s->worst)
				s->worst = c;
			if (c != WCCL_LINK_CROSS && c > s->intra)
				s->intra = c;
		}
	s->nregions = 0;
	s->min_size = t->nranks;
	int max_size = 0;
	for (int a = 0; a < t->nranks; a++) {
		bool first = true;
		int m = 0;
		for (int b = 0; b < t->nranks; b++) {
			if (t->region_of[b] != t->region_of[a])
				continue;
			first = first && b >= a;
			m++;
		}
		if (!first)
			continue;
		s->nregions++;
		s->min_size = m < s->min_size ? m : s->min_size;
		max_size = m > max_size ? m : max_size;
	}
	s->extras = max_size > s->min_size;
}

/* Reduction speed of one core, GB/s of input (fp32 sum streams three
 * buffers at memory bandwidth; a conservative figure). */
#define COST_REDUCE_GBS 8.0

static double reduce_us(double bytes)
{
	return bytes / (COST_REDUCE_GBS * 1e3);
}

static double msg_us(const struct wccl_link_cost *l, double bytes)
{
	return l->alpha_us + bytes / (l->gbytes_per_s * 1e3);
}

double wccl_cost_allreduce_us(const struct wccl_cost_topology *t,
			      enum wccl_algo algo, uint64_t bytes)
{
	if (!t || t->nranks < 1 || !t->region_of ||
	    (unsigned)algo >= WCCL_ALGO_COUNT)
		return -1.0;
	for (int c = 0; c < WCCL_LINK_CLASSES; c++)
		if (t->link[c].gbytes_per_s <= 0 || t->link[c].alpha_us < 0)
			return -1.0;
	int n = t->nranks;
	if (n == 1)
		return 0.0;
	struct shape s;
	analyse(t, &s);
	const struct wccl_link_cost *worst = &t->link[s.worst];
	const struct wccl_link_cost *intra = &t->link[s.intra];
	double S = (double)bytes;

	switch (algo) {
	case WCCL_ALGO_RING:
		return 2.0 * (n - 1) * msg_us(worst, S / n) +
		       reduce_us(S * (n - 1) / n);
	case WCCL_ALGO_RHD:
	case WCCL_ALGO_RD: {
		int p = 1, lg = 0;
		while (p * 2 <= n) {
			p *= 2;
			lg++;
		}
		double us = algo == WCCL_ALGO_RD
				    ? lg * (msg_us(worst, S) + reduce_us(S))
				    : 2.0 * lg * worst->alpha_us +
					      2.0 * (p - 1) / p * S /
						      (worst->gbytes_per_s * 1e3) +
					      reduce_us(S * (p - 1) / p);
		if (n != p)
			us += 2.0 * msg_us(worst, S) + reduce_us(S);
		return us;
	}
	case WCCL_ALGO_TREE: {
		int depth = 0;
		while ((1 << depth) < n)
			depth++;
		double chunk = fmin(S / 2, 1 << 20);
		double chunks = chunk > 0 ? ceil(S / 2 / chunk) : 1;
		return (12.0 * chunks + 2.0 * depth) * msg_us(worst, chunk) +
		       reduce_us(S);
	}
	case WCCL_ALGO_HIER: {
		int M = s.min_size, k = s.nregions;
		double us = 2.0 * (M - 1) * msg_us(intra, S / M) +
			    2.0 * (k - 1) *
				    msg_us(&t->link[k > 1 ? WCCL_LINK_CROSS
							  : s.intra],
					   S / M / k);
		if (s.extras)
			us += 2.0 * msg_us(intra, S) + reduce_us(S);
		return us + reduce_us(S);
	}
	default:
		return -1.0;
	}
}

int wccl_cost_choose_allreduce(const struct wccl_cost_topology *t,
			       uint64_t bytes, char *reason, size_t reason_len)
{
	double us[WCCL_ALGO_COUNT];
	int best = 0;
	for (int a = 0; a < WCCL_ALGO_COUNT; a++) {
		us[a] = wccl_cost_allreduce_us(t, a, bytes);
		if (us[a] < 0)
			return WCCL_EINVAL;
		if (us[a] < us[best])
			best = a;
	}
	if (reason && reason_len) {
		int len = snprintf(reason, reason_len, "%s: %.3f ms predicted vs",
				   algo_names[best], us[best] / 1e3);
		const char *sep = " ";
		for (int a = 0; a < WCCL_ALGO_COUNT; a++) {
			if (a == best || len < 0 || (size_t)len >= reason_len)
				continue;
			len += snprintf(reason + len, reason_len - len,
					"%s%s %.3f ms", sep, algo_names[a],
					us[a] / 1e3);
			sep = ", ";
		}
	}
	return best;
}
