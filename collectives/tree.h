/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_TREE_H
#define WCCL_COLLECTIVES_TREE_H

/*
 * Tree shapes for the tree collectives: pure functions of (nranks, rank),
 * as NCCL's src/graph/trees.cc.
 *
 * Binary tree (tree 0). Rank r's level is its lowest set bit; its parent
 * clears that bit and sets the next one up (or only clears it if that
 * would leave the range); its children are r - bit/2 and r + bit/2. Rank 0
 * is the root and has one child, the largest power of two below n.
 *
 *   n = 12
 *   0---------------8
 *            ______/ \
 *           4         \
 *         /   \        \
 *       2       6       10
 *      / \     / \     /  \
 *     1   3   5   7   9   11
 *
 * Double binary tree. Tree 1 is tree 0 mirrored (r -> n-1-r) when n is
 * even, or shifted by one (r -> r+1 mod n) when n is odd. Either way the
 * leaves of one tree (the odd ranks of tree 0) are the inner nodes of the
 * other, so every rank does inner-node work in at most one of the two.
 *
 *   n = 12, mirror                    n = 13, shift
 *   3----------------11               1---------------9
 *   / \______                                  ______/ \______
 *  /         7                                5               0
 *  1       /   \                            /   \            /
 *   \     5     9                          3       7       11
 *    0   / \   / \                        / \     / \     /  \
 *       4   6 8   10                     2   4   6   8  10   12
 */

struct wccl_tree_node {
	int parent;   /* -1 at the root */
	int child[2]; /* -1 where absent; child[0] < rank < child[1] in tree 0 */
};

/* The binary tree above. nranks >= 1, 0 <= rank < nranks. */
void wccl_btree(int nranks, int rank, struct wccl_tree_node *node);

/* Both trees of the double binary tree: trees[0] and trees[1]. */
void wccl_double_btree(int nranks, int rank, struct wccl_tree_node trees[2]);

#endif
