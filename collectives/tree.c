/* SPDX-License-Identifier: MIT */
#include "collectives/tree.h"

void wccl_btree(int nranks, int rank, struct wccl_tree_node *node)
{
	int bit;
	for (bit = 1; bit < nranks; bit <<= 1)
		if (bit & rank)
			break;

	node->child[0] = -1;
	node->child[1] = -1;
	if (rank == 0) {
		node->parent = -1;
		/* Root: bit is the first power of two >= nranks; its only
		 * child is the top of the rest of the tree. */
		if (nranks > 1)
			node->child[1] = bit >> 1;
		return;
	}

	int up = (rank ^ bit) | (bit << 1);
	if (up >= nranks)
		up = rank ^ bit;
	node->parent = up;

	int low = bit >> 1;
	if (low == 0)
		return; /* odd rank: a leaf */
	node->child[0] = rank - low;
	/* The right subtree may be cut off by nranks: descend until the
	 * right child exists (or there is none). */
	while (low > 0 && rank + low >= nranks)
		low >>= 1;
	node->child[1] = low > 0 ? rank + low : -1;
}

static int map_rank(int r, int nranks, int shift)
{
	if (r < 0)
		return -1;
	if (shift)
		return (r + 1) % nranks;
	return nranks - 1 - r;
}

void wccl_double_btree(int nranks, int rank, struct wccl_tree_node trees[2])
{
	wccl_btree(nranks, rank, &trees[0]);

	/* Tree 1: build tree 0 for our image under the inverse map, then map
	 * every neighbour forward. Mirror is its own inverse; the inverse of
	 * the shift is r - 1. */
	int shift = nranks % 2;
	int image = shift ? (rank - 1 + nranks) % nranks : nranks - 1 - rank;
	struct wccl_tree_node t;
	wccl_btree(nranks, image, &t);
	trees[1].parent = map_rank(t.parent, nranks, shift);
	trees[1].child[0] = map_rank(t.child[0], nranks, shift);
	trees[1].child[1] = map_rank(t.child[1], nranks, shift);
}
