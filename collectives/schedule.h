/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_SCHEDULE_H
#define WCCL_COLLECTIVES_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Collective schedules: pure functions from (nranks, rank, count, ...) to
 * the list of steps THIS rank performs. No I/O, no allocation, no global
 * state; the executor that moves data is built on top of these.
 *
 * Buffer model. Each rank works in place on one buffer of 'count' elements
 * (the input before the collective, the result after it). Offsets and
 * lengths are in elements. Alltoall is the exception: the send block
 * addresses the send buffer and the recv block the receive buffer.
 *
 * Step semantics. A step has at most one send and one receive; they may run
 * concurrently, and the step is complete when both are. The send block and
 * the receive block of one step never overlap (but in recursive doubling,
 * see there), so the order in which the two complete does not matter. Steps run in order. A received block is
 * either copied over the local block (WCCL_RECV_COPY) or reduced into it
 * (WCCL_RECV_REDUCE: local = local OP received).
 *
 * Matching. The k-th send from rank A to rank B pairs with the k-th receive
 * on B from A; lengths always agree. All schedules are deadlock-free even
 * when a send completes only once the peer has posted the matching receive
 * (rendezvous), which the unit tests check by running every rank in one
 * process.
 *
 * Zero-length transfers are never emitted (both sides know the length, so
 * both leave them out); a step with nothing left is dropped. count == 0
 * gives zero steps.
 *
 * Pipelining. With chunk_bytes > 0 each block moves in chunks of at most
 * that size, as more, smaller steps. WCCL_STEP_SEND_NEEDS_PREV_RECV marks a
 * step whose send reads data the previous step receives; steps without it
 * may be started before the previous step has finished reducing, which is
 * how an executor overlaps transfer and reduction.
 *
 * Sizing. Every builder takes caller storage: call it with steps == NULL to
 * learn the number of steps, then again with an array that large. Returns
 * the number of steps (>= 0), WCCL_EINVAL for bad arguments, or
 * WCCL_ENOSPC if max_steps is too small.
 */

enum wccl_recv_action {
	WCCL_RECV_NONE,   /* no receive in this step */
	WCCL_RECV_COPY,   /* received block replaces the local block */
	WCCL_RECV_REDUCE, /* local block = local block OP received block */
};

/* The step's send reads what the previous step received. */
#define WCCL_STEP_SEND_NEEDS_PREV_RECV 0x1u

struct wccl_block {
	uint64_t offset; /* elements from the start of the buffer */
	uint64_t count;  /* elements */
};

struct wccl_step {
	int32_t send_peer; /* rank to send to, or -1 */
	int32_t recv_peer; /* rank to receive from, or -1 */
	struct wccl_block send;
	struct wccl_block recv;
	uint8_t recv_action; /* enum wccl_recv_action */
	uint8_t flags;       /* WCCL_STEP_* */
};

struct wccl_sched_args {
	int nranks;
	int rank;
	uint64_t count;       /* elements; alltoall: elements per peer */
	size_t elem_size;     /* bytes per element, > 0 */
	uint64_t chunk_bytes; /* pipeline chunk size; 0 = whole blocks */
	int root;             /* broadcast and reduce only */
	/* Hierarchical only: region id of every rank (nranks entries, any
	 * non-negative integers). Not kept after the call. */
	const int *region_of;
};

/*
 * The n-way split every schedule uses: block i of 'count' elements has
 * count / n elements, plus one for the first count % n blocks.
 */
struct wccl_block wccl_sched_block(uint64_t count, int nblocks, int i);

/*
 * Ring, ranks in numeric order, each sending to rank + 1 and receiving from
 * rank - 1. The buffer is split into nranks blocks (wccl_sched_block).
 *
 *   reduce-scatter, step s:   rank r sends block (r-s-1), receives block
 *   (r-s-2) and reduces it    (mod n); after n-1 steps r owns block r.
 *
 *        +--> 0 --> 1 --> 2 --> 3 --+
 *        |                          |
 *        +--------------------------+
 *
 *   allgather, step s:        rank r sends block (r-s), receives (r-s-1)
 *                             and copies it; r starts owning block r.
 *
 * reduce_scatter: afterwards rank r's block r holds the reduction; the rest
 * of its buffer is scratch. allgather: rank r contributes its block r and
 * ends with every block. allreduce = reduce_scatter then allgather,
 * 2(n-1) steps (times the chunks per block).
 */
int wccl_sched_ring_reduce_scatter(const struct wccl_sched_args *args,
				   struct wccl_step *steps, size_t max_steps);
int wccl_sched_ring_allgather(const struct wccl_sched_args *args,
			      struct wccl_step *steps, size_t max_steps);
int wccl_sched_ring_allreduce(const struct wccl_sched_args *args,
			      struct wccl_step *steps, size_t max_steps);

/*
 * Pipelined chain from (broadcast) or to (reduce) args->root, in the order
 * root, root+1, ..., root-1 (mod n). The buffer moves in chunks; in step t
 * a middle rank receives chunk t and forwards chunk t-1, so all links are
 * busy at once:
 *
 *   broadcast   root --> r+1 --> r+2 --> ... --> r-1
 *   reduce      root <-- r+1 <-- r+2 <-- ... <-- r-1
 *
 * Reduce leaves the result at the root and partial sums elsewhere.
 */
int wccl_sched_chain_broadcast(const struct wccl_sched_args *args,
			       struct wccl_step *steps, size_t max_steps);
int wccl_sched_chain_reduce(const struct wccl_sched_args *args,
			    struct wccl_step *steps, size_t max_steps);

/*
 * Double binary tree allreduce (tree.h): half the buffer is reduced up
 * tree 0 and broadcast back down it, the other half uses tree 1, so every
 * rank sends about as much as in a single tree while the latency is
 * logarithmic. Reduce steps for all chunks come first, then broadcast.
 */
int wccl_sched_tree_allreduce(const struct wccl_sched_args *args,
			      struct wccl_step *steps, size_t max_steps);

/*
 * Recursive halving-doubling (Rabenseifner) allreduce, any nranks.
 * p = largest power of two <= n, rem = n - p.
 *
 *   fold:    among ranks 0 .. 2*rem-1, each even rank sends its whole
 *            buffer to the odd rank above it and sits out; the p survivors
 *            are renumbered 0 .. p-1.
 *   halve:   for d = p/2, p/4, ..., 1: exchange half of the current window
 *            with (new rank XOR d) and reduce the half kept.
 *            After log2(p) steps new rank i owns block i (of p).
 *   double:  the same steps reversed, copying instead of reducing.
 *   unfold:  each odd rank of the first 2*rem sends the result back.
 *
 *   p = 4:  d=2: 0<->2 1<->3    d=1: 0<->1 2<->3   (then d=1, d=2 again)
 *
 * Each halving and doubling exchange moves in chunk_bytes pieces, so a
 * piece is reduced (and the next level's first piece can go) while the
 * rest of the exchange is still on the wire; the fold and unfold do not
 * chunk.
 */
int wccl_sched_rhd_allreduce(const struct wccl_sched_args *args,
			     struct wccl_step *steps, size_t max_steps);

/*
 * Recursive doubling allreduce, for small buffers: the same fold and
 * unfold, and in between, for d = 1, 2, ..., p/2, the whole buffer is
 * exchanged with (new rank XOR d) and reduced: log2(p) steps instead of
 * 2 log2(p), each moving everything. The one schedule whose send and
 * receive blocks overlap (both the whole buffer): the receive is a REDUCE,
 * which an executor stages and applies once the step's send has read the
 * buffer.
 */
int wccl_sched_rd_allreduce(const struct wccl_sched_args *args,
			    struct wccl_step *steps, size_t max_steps);

/*
 * Region-aware allreduce. Ranks are grouped by args->region_of; within a
 * region members are ordered by rank. k = number of regions, M = the
 * smallest region size. The buffer is split into M shards.
 *
 *   region A (3 ranks)     region B (2 ranks)      M = 2, k = 2
 *     a0  a1  a2              b0  b1
 *      \   /|                  |   |       0. a2 folds into a0 (a2 is
 *       \ / |                  |   |          local index 2 >= M)
 *   1. ring reduce-scatter among a0,a1 | among b0,b1 (shard i -> x_i)
 *   2. ring allreduce of shard 0 among a0,b0 ; of shard 1 among a1,b1
 *      (the only cross-region traffic: M paths in parallel, each
 *       carrying count/M elements)
 *   3. ring allgather among a0,a1 | among b0,b1
 *   4. a0 sends the result back to a2
 *
 * Unequal region sizes: shards follow the smallest region, so shard
 * holders line up across regions; the extra ranks of a bigger region
 * (local index >= M) fold into holder (index mod M) before and get the
 * result back after, over intra-region links only. Cross-region traffic
 * is exactly 2 (k - 1) * count elements in total, 2 (k - 1) / k * count / M
 * sent by each holder. Limits: at most 1024 regions and M <= 1024 (the
 * builder keeps its two ring tables on the stack); WCCL_EINVAL beyond.
 */
int wccl_sched_hier_allreduce(const struct wccl_sched_args *args,
			      struct wccl_step *steps, size_t max_steps);

/*
 * Pairwise-exchange alltoall: in step s rank r sends its block for rank
 * (r+s) and receives the block from rank (r-s) (mod n). Block j of the send
 * buffer (offset j*count) goes to rank j, block j of the receive buffer
 * comes from rank j. Step 0 is the exchange with itself: send_peer ==
 * recv_peer == rank, which the executor performs as a local copy.
 */
int wccl_sched_alltoall(const struct wccl_sched_args *args,
			struct wccl_step *steps, size_t max_steps);

#endif
