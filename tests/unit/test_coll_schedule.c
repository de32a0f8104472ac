/* SPDX-License-Identifier: MIT */
/*
 * Schedules (collectives/sched_*.c, tree.c), checked by running every
 * rank's schedule in one process on real buffers. A send is delivered only
 * to the peer's current step, and only if that step receives from the
 * sender (rendezvous), so a schedule that could deadlock with unbuffered
 * sends stalls here and fails. Matching by current step is FIFO per
 * (sender, receiver), as the contract in schedule.h says. A step's send
 * carries its block as it was when the step began (an executor reads it
 * before the step's own receive may land there: only recursive doubling's
 * REDUCE receives overlap their sends, and they are staged).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <wccl/errors.h>

#include "collectives/reduce.h"
#include "collectives/schedule.h"
#include "collectives/tree.h"

#define MAX_RANKS 16

typedef int (*builder_fn)(const struct wccl_sched_args *, struct wccl_step *,
			  size_t);

struct sim {
	int n;
	bool separate_out;	/* alltoall: send and receive buffers differ */
	const int *region_of;	/* to count cross-region traffic, or NULL */
	uint32_t *buf[MAX_RANKS];
	uint32_t *out[MAX_RANKS];
	uint32_t *snap[MAX_RANKS]; /* the current step's send block */
	bool snapped[MAX_RANKS];
	struct wccl_step *steps[MAX_RANKS];
	int nsteps[MAX_RANKS];
	int pc[MAX_RANKS];
	bool sent[MAX_RANKS], received[MAX_RANKS];
	uint64_t cross_elems;
};

/* Set by the recursive doubling test: its send and receive blocks overlap
 * (the whole buffer, the receive reduced). */
static bool overlap_ok;

static uint32_t value(int rank, uint64_t i)
{
	uint64_t x = (uint64_t)rank * 0x9e3779b97f4a7c15ull + i * 0xff51afd7ed558ccdull;
	return (uint32_t)(x ^ (x >> 29));
}

static void build_all(struct sim *s, builder_fn build,
		      struct wccl_sched_args args)
{
	for (int r = 0; r < s->n; r++) {
		args.rank = r;
		int need = build(&args, NULL, 0);
		assert_true(need >= 0);
		s->steps[r] = calloc((size_t)need + 1, sizeof(struct wccl_step));
		assert_non_null(s->steps[r]);
		if (need > 0)
			assert_int_equal(build(&args, s->steps[r], need - 1),
					 WCCL_ENOSPC);
		assert_int_equal(build(&args, s->steps[r], need), need);
		s->nsteps[r] = need;
		s->pc[r] = 0;
	}
}

static bool overlap(struct wccl_block a, struct wccl_block b)
{
	return a.offset < b.offset + b.count && b.offset < a.offset + a.count;
}

static void deliver(struct sim *s, int from, const struct wccl_step *ss,
		    int to, const struct wccl_step *rs)
{
	assert_int_equal(ss->send.count, rs->recv.count);
	const uint32_t *src = s->snap[from];
	uint32_t *dst = (s->separate_out ? s->out[to] : s->buf[to]) +
			rs->recv.offset;
	if (rs->recv_action == WCCL_RECV_REDUCE)
		assert_int_equal(wccl_reduce_local(dst, dst, src, rs->recv.count,
					     WCCL_UINT32, WCCL_SUM), 0);
	else
		memmove(dst, src, rs->recv.count * sizeof(uint32_t));
	if (s->region_of && s->region_of[from] != s->region_of[to])
		s->cross_elems += ss->send.count;
}

static void run(struct sim *s)
{
	for (;;) {
		bool progress = false, done = true;
		/* Every step begun reads its send block before anything
		 * is delivered. */
		for (int p = 0; p < s->n; p++) {
			if (s->pc[p] >= s->nsteps[p] || s->snapped[p])
				continue;
			const struct wccl_step *st = &s->steps[p][s->pc[p]];
			if (st->send_peer >= 0)
				memcpy(s->snap[p], s->buf[p] + st->send.offset,
				       st->send.count * sizeof(uint32_t));
			s->snapped[p] = true;
		}
		for (int p = 0; p < s->n; p++) {
			if (s->pc[p] >= s->nsteps[p])
				continue;
			done = false;
			const struct wccl_step *st = &s->steps[p][s->pc[p]];
			assert_true(st->send_peer >= 0 || st->recv_peer >= 0);
			if (!s->separate_out && !overlap_ok &&
			    st->send_peer >= 0 && st->recv_peer >= 0)
				assert_false(overlap(st->send, st->recv));
			int q = st->send_peer;
			if (q >= 0 && !s->sent[p] && s->pc[q] < s->nsteps[q]) {
				const struct wccl_step *rs =
					&s->steps[q][s->pc[q]];
				if (rs->recv_peer == p && !s->received[q]) {
					deliver(s, p, st, q, rs);
					s->sent[p] = s->received[q] = true;
					progress = true;
				}
			}
		}
		for (int p = 0; p < s->n; p++) {
			if (s->pc[p] >= s->nsteps[p])
				continue;
			const struct wccl_step *st = &s->steps[p][s->pc[p]];
			if ((st->send_peer < 0 || s->sent[p]) &&
			    (st->recv_peer < 0 || s->received[p])) {
				s->pc[p]++;
				s->sent[p] = s->received[p] = s->snapped[p] = false;
				progress = true;
			}
		}
		if (done)
			return;
		if (!progress)
			fail_msg("deadlock: no step can complete");
	}
}

static void sim_free(struct sim *s)
{
	for (int r = 0; r < s->n; r++) {
		free(s->steps[r]);
		free(s->buf[r]);
		free(s->out[r]);
		free(s->snap[r]);
		s->buf[r] = s->out[r] = s->snap[r] = NULL;
	}
}

static const int rank_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 13, 16};
static const uint64_t elem_counts[] = {0, 1, 7, 4099, (1 << 20) + 1};
#define NRANK_COUNTS (sizeof(rank_counts) / sizeof(rank_counts[0]))
#define NELEM_COUNTS (sizeof(elem_counts) / sizeof(elem_counts[0]))

/* Which block of wccl_sched_block's n-way split holds element i. */
static int owner_of(uint64_t count, int n, uint64_t i)
{
	uint64_t base = count / n, extra = count % n;
	if (i < extra * (base + 1))
		return (int)(i / (base + 1));
	return (int)(extra + (i - extra * (base + 1)) / base);
}

enum check { CHECK_ALLREDUCE, CHECK_REDUCE_SCATTER, CHECK_ALLGATHER,
	     CHECK_BROADCAST, CHECK_REDUCE };

/* Run one collective for n ranks and count elements; verify the result. */
static uint64_t check_one(builder_fn build, enum check what, int n,
			  uint64_t count, uint64_t chunk_bytes, int root,
			  const int *region_of)
{
	struct sim s = {.n = n, .region_of = region_of};
	struct wccl_sched_args args = {
		.nranks = n, .count = count, .elem_size = 4,
		.chunk_bytes = chunk_bytes, .root = root,
		.region_of = region_of,
	};
	for (int r = 0; r < n; r++) {
		s.buf[r] = malloc((count + 1) * sizeof(uint32_t));
		s.snap[r] = malloc((count + 1) * sizeof(uint32_t));
		assert_non_null(s.buf[r]);
		assert_non_null(s.snap[r]);
		struct wccl_block mine = wccl_sched_block(count, n, r);
		for (uint64_t i = 0; i < count; i++) {
			bool owner = i >= mine.offset &&
				     i < mine.offset + mine.count;
			bool has_input = what == CHECK_ALLGATHER ? owner
					 : what == CHECK_BROADCAST ? r == root
								   : true;
			s.buf[r][i] = has_input ? value(r, i) : 0xdeadbeef;
		}
	}
	build_all(&s, build, args);
	run(&s);
	for (uint64_t i = 0; i < count; i++) {
		uint32_t sum = 0;
		for (int r = 0; r < n; r++)
			sum += value(r, i);
		int o = owner_of(count, n, i);
		for (int r = 0; r < n; r++) {
			bool owner = o == r;
			switch (what) {
			case CHECK_ALLREDUCE:
				assert_int_equal(s.buf[r][i], sum);
				break;
			case CHECK_REDUCE_SCATTER:
				if (owner)
					assert_int_equal(s.buf[r][i], sum);
				break;
			case CHECK_ALLGATHER:
				assert_int_equal(s.buf[r][i], value(o, i));
				break;
			case CHECK_BROADCAST:
				assert_int_equal(s.buf[r][i], value(root, i));
				break;
			case CHECK_REDUCE:
				if (r == root)
					assert_int_equal(s.buf[r][i], sum);
				break;
			}
		}
	}
	uint64_t cross = s.cross_elems;
	sim_free(&s);
	return cross;
}

/* Chunked variants skip the 1M-element count (except the ring allreduce
 * sweep) to keep the suite inside its timeout under the sanitizers. */
static void sweep(builder_fn build, enum check what, uint64_t chunk_bytes)
{
	size_t ncounts = chunk_bytes && build != wccl_sched_ring_allreduce
				 ? NELEM_COUNTS - 1
				 : NELEM_COUNTS;
	for (size_t a = 0; a < NRANK_COUNTS; a++)
		for (size_t b = 0; b < ncounts; b++)
			check_one(build, what, rank_counts[a], elem_counts[b],
				  chunk_bytes, rank_counts[a] / 2, NULL);
}

static void ring_allreduce(void **state)
{
	(void)state;
	sweep(wccl_sched_ring_allreduce, CHECK_ALLREDUCE, 0);
	sweep(wccl_sched_ring_allreduce, CHECK_ALLREDUCE, 64 << 10);
	check_one(wccl_sched_ring_allreduce, CHECK_ALLREDUCE, 5, 4099, 4, 0,
		  NULL); /* one element per chunk */
}

static void ring_reduce_scatter_and_allgather(void **state)
{
	(void)state;
	sweep(wccl_sched_ring_reduce_scatter, CHECK_REDUCE_SCATTER, 0);
	sweep(wccl_sched_ring_allgather, CHECK_ALLGATHER, 0);
	sweep(wccl_sched_ring_allgather, CHECK_ALLGATHER, 4096);
}

static void chain_broadcast_and_reduce(void **state)
{
	(void)state;
	sweep(wccl_sched_chain_broadcast, CHECK_BROADCAST, 0);
	sweep(wccl_sched_chain_broadcast, CHECK_BROADCAST, 64 << 10);
	sweep(wccl_sched_chain_reduce, CHECK_REDUCE, 64 << 10);
	for (int root = 0; root < 7; root++)
		check_one(wccl_sched_chain_reduce, CHECK_REDUCE, 7, 4099, 1024,
			  root, NULL);
}

static void tree_allreduce(void **state)
{
	(void)state;
	sweep(wccl_sched_tree_allreduce, CHECK_ALLREDUCE, 0);
	sweep(wccl_sched_tree_allreduce, CHECK_ALLREDUCE, 128 << 10);
}

static void rhd_allreduce(void **state)
{
	(void)state;
	sweep(wccl_sched_rhd_allreduce, CHECK_ALLREDUCE, 0);
}

static void rd_allreduce(void **state)
{
	(void)state;
	overlap_ok = true;
	sweep(wccl_sched_rd_allreduce, CHECK_ALLREDUCE, 0);
	overlap_ok = false;
	/* log2(p) exchanges, + fold and unfold beyond a power of two */
	struct wccl_sched_args a = { .nranks = 2, .count = 5, .elem_size = 4 };
	assert_int_equal(wccl_sched_rd_allreduce(&a, NULL, 0), 1);
	a.nranks = 8;
	assert_int_equal(wccl_sched_rd_allreduce(&a, NULL, 0), 3);
	a.nranks = 5;
	a.rank = 1; /* folds rank 0 in, gives it the result back */
	assert_int_equal(wccl_sched_rd_allreduce(&a, NULL, 0), 4);
}

/* Each holder ring of k regions moves every element of its shard 2 (k-1)
 * times across a region boundary, and the shards tile the buffer. */
static void hier_allreduce_unequal_regions(void **state)
{
	(void)state;
	static const struct {
		int n, k;
		int region_of[MAX_RANKS];
	} layouts[] = {
		{5, 2, {0, 0, 0, 1, 1}},
		{7, 2, {4, 4, 4, 4, 4, 9, 9}}, /* two extras on one holder */
		{7, 3, {0, 1, 0, 1, 1, 2, 2}}, /* interleaved, sizes 2,3,2 */
		{8, 3, {2, 2, 2, 0, 0, 1, 1, 1}},
		{13, 3, {0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}},
		{16, 2, {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}},
		{4, 1, {3, 3, 3, 3}},
		{3, 3, {0, 1, 2}},
	};
	for (size_t l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
		for (size_t b = 0; b < NELEM_COUNTS; b++) {
			uint64_t count = elem_counts[b];
			int k = layouts[l].k;
			uint64_t want = 2 * (uint64_t)(k - 1) * count;
			for (uint64_t chunk = 0; chunk <= 8192; chunk += 8192) {
				if (chunk && count > 4099)
					continue;
				uint64_t cross = check_one(
					wccl_sched_hier_allreduce,
					CHECK_ALLREDUCE, layouts[l].n, count,
					chunk, 0, layouts[l].region_of);
				assert_int_equal(cross, want);
			}
		}
	}
	/* The flat ring on the interleaved 16-rank layout crosses regions on
	 * every hop: 2 (n-1) count elements, 15x what hier sends. */
	assert_int_equal(check_one(wccl_sched_ring_allreduce, CHECK_ALLREDUCE,
				   16, 4096, 0, 0, layouts[5].region_of),
			 2 * 15 * 4096);
}

static void alltoall_pairwise(void **state)
{
	(void)state;
	for (size_t a = 0; a < NRANK_COUNTS; a++) {
		for (uint64_t count = 0; count <= 100; count += 33) {
			int n = rank_counts[a];
			struct sim s = {.n = n, .separate_out = true};
			struct wccl_sched_args args = {.nranks = n,
						       .count = count,
						       .elem_size = 4};
			for (int r = 0; r < n; r++) {
				s.buf[r] = malloc((n * count + 1) * 4);
				s.snap[r] = malloc((n * count + 1) * 4);
				s.out[r] = calloc(n * count + 1, 4);
				for (uint64_t i = 0; i < n * count; i++)
					s.buf[r][i] = value(r, i);
			}
			build_all(&s, wccl_sched_alltoall, args);
			run(&s);
			for (int r = 0; r < n; r++)
				for (int from = 0; from < n; from++)
					for (uint64_t i = 0; i < count; i++)
						assert_int_equal(
							s.out[r][from * count + i],
							value(from, r * count + i));
			sim_free(&s);
		}
	}
}

static void double_btree_is_two_valid_trees(void **state)
{
	(void)state;
	for (int n = 1; n <= 64; n++) {
		int inner_in_both = 0;
		for (int t = 0; t < 2; t++) {
			int roots = 0;
			for (int r = 0; r < n; r++) {
				struct wccl_tree_node tr[2], other[2];
				wccl_double_btree(n, r, tr);
				const struct wccl_tree_node *me = &tr[t];
				if (me->parent < 0) {
					roots++;
				} else {
					wccl_double_btree(n, me->parent, other);
					assert_true(other[t].child[0] == r ||
						    other[t].child[1] == r);
				}
				for (int c = 0; c < 2; c++) {
					if (me->child[c] < 0)
						continue;
					assert_true(me->child[c] < n);
					wccl_double_btree(n, me->child[c], other);
					assert_int_equal(other[t].parent, r);
				}
				/* Walking up reaches the root in <= log2 n + 1. */
				int x = r, hops = 0;
				while (x >= 0 && hops <= 8) {
					wccl_double_btree(n, x, other);
					x = other[t].parent;
					hops++;
				}
				assert_true(x < 0);
				if (t == 0 && (tr[0].child[0] >= 0 ||
					       tr[0].child[1] >= 0) &&
				    (tr[1].child[0] >= 0 || tr[1].child[1] >= 0))
					inner_in_both++;
			}
			assert_int_equal(roots, 1);
		}
		/* Mirror (even n) makes every rank an inner node in at most
		 * one tree; the shift (odd n) leaves at most one exception. */
		assert_true(inner_in_both <= (n % 2 ? 1 : 0));
	}
	struct wccl_tree_node t[2];
	wccl_double_btree(12, 8, t); /* the diagram in tree.h */
	assert_int_equal(t[0].parent, 0);
	assert_int_equal(t[0].child[0], 4);
	assert_int_equal(t[0].child[1], 10);
}

static void bad_arguments(void **state)
{
	(void)state;
	struct wccl_sched_args args = {.nranks = 4, .rank = 4, .count = 8,
				       .elem_size = 4};
	assert_int_equal(wccl_sched_ring_allreduce(&args, NULL, 0),
			 WCCL_EINVAL);
	args.rank = 0;
	args.elem_size = 0;
	assert_int_equal(wccl_sched_tree_allreduce(&args, NULL, 0),
			 WCCL_EINVAL);
	args.elem_size = 4;
	assert_int_equal(wccl_sched_hier_allreduce(&args, NULL, 0),
			 WCCL_EINVAL); /* no region_of */
	args.root = 9;
	assert_int_equal(wccl_sched_chain_broadcast(&args, NULL, 0),
			 WCCL_EINVAL);
	args.count = 0;
	args.root = 0;
	assert_int_equal(wccl_sched_ring_allreduce(&args, NULL, 0), 0);
}

/* Chunked ring steps can be overlapped: only the first chunk of each
 * block forwards data received in the step just before. */
static void chunked_steps_mark_dependencies(void **state)
{
	(void)state;
	struct wccl_sched_args args = {.nranks = 4, .rank = 1, .count = 4096,
				       .elem_size = 4, .chunk_bytes = 1024};
	struct wccl_step steps[64];
	int n = wccl_sched_ring_allreduce(&args, steps, 64);
	assert_int_equal(n, 2 * 3 * 4); /* 1024-element blocks, 4 chunks */
	for (int i = 0; i < n; i++)
		assert_int_equal(steps[i].flags, 0);
	args.chunk_bytes = 0;
	n = wccl_sched_ring_allreduce(&args, steps, 64);
	assert_int_equal(n, 6);
	assert_int_equal(steps[0].flags, 0);
	for (int i = 1; i < n; i++)
		assert_int_equal(steps[i].flags, WCCL_STEP_SEND_NEEDS_PREV_RECV);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_allreduce),
		cmocka_unit_test(ring_reduce_scatter_and_allgather),
		cmocka_unit_test(chain_broadcast_and_reduce),
		cmocka_unit_test(tree_allreduce),
		cmocka_unit_test(rhd_allreduce),
		cmocka_unit_test(rd_allreduce),
		cmocka_unit_test(hier_allreduce_unequal_regions),
		cmocka_unit_test(alltoall_pairwise),
		cmocka_unit_test(double_btree_is_two_valid_trees),
		cmocka_unit_test(bad_arguments),
		cmocka_unit_test(chunked_steps_mark_dependencies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
