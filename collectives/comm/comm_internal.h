/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COMM_FUNCS_H
#define WCCL_COMM_FUNCS_H

#include "comm.h"

/* Record the communicator's first failure (code, rank at fault or -1,
 * message naming it), log it at WARN, return @err. */
int comm_fail(struct wccl_comm *c, int err, int rank, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Tell the other ranks that this communicator failed. A failure seen for
 * certain (comm->failure_is_sure) goes out at once; a symptom (a truncated
 * message, a lost peer) first waits briefly for the root to relay another
 * rank's diagnosis, which then becomes ours, so every rank reports the
 * same cause. Idempotent.
 */
void comm_announce_failure(struct wccl_comm *c);

/* The root relayed a failure (code @rc): make it this communicator's
 * error, mark it broken and fail every queued request. */
void comm_take_relayed_error(struct wccl_comm *c, int rc);

/* comm_connect.c */
int comm_open_contexts(struct wccl_comm *c, const char *bind_ip);
int comm_exchange_info(struct wccl_comm *c, const char *region);
int comm_connect_mesh(struct wccl_comm *c);
void comm_close_contexts(struct wccl_comm *c);

/* The registration of wccl_mem allocation @span with context @ctx_index,
 * made on first use and cached; NULL for plain memory (id 0) or if the
 * provider would not register it (then transfers go without an mr). */
struct wccl_mr *comm_mr_for(struct wccl_comm *c, int ctx_index,
			    const struct wccl_mem_span *span);

/* comm_topo.c: link costs per class for the algorithm choice. Loaded
 * before the info exchange, which carries them to every rank, and checked
 * after it: ranks whose figures differ fail with WCCL_EMISMATCH. */
int comm_load_topology(struct wccl_comm *c);
int comm_topo_agree(struct wccl_comm *c);
/* Parse topology file @path into @link (classes it has no line for are
 * left alone) and @declared (a bit per class it has a line for). On error,
 * @err says which line and what is wrong. */
int comm_topo_parse(const char *path, struct wccl_link_cost *link,
		    uint32_t *declared, char *err, size_t errlen);
enum { COMM_LINK_ALPHA = 1, COMM_LINK_BW = 2 };
const char *comm_link_class_name(int k);
/* Ping a few peers of each link class (after the mesh is up) and set each
 * class's latency from the all-gathered round trips, unless a topology
 * file gave them. Collective over the communicator. */
int comm_measure_links(struct wccl_comm *c);
/* Cap each connection to another region at its share of the declared
 * cross-region bandwidth (WCCL_TOPO_FILE), paced by the transport. */
void comm_pace_cross_links(struct wccl_comm *c);
/* coll_ll.c: mailboxes for small allreduces among the ranks of one host;
 * every rank calls it, and all agree whether they are on. */
int comm_ll_setup(struct wccl_comm *c);
/* coll_eager.c: the eager message size all ranks agree on (from the
 * all-gathered infos), the slots (after the mesh is up), and freeing them
 * (after the contexts are closed). */
void comm_eager_agree(struct wccl_comm *c);
int comm_eager_setup(struct wccl_comm *c);
void comm_eager_free(struct wccl_comm *c);
/* comm_connect.c: fail naming the ranks if two advertise one address. */
int comm_check_addresses(struct wccl_comm *c);
void comm_ll_teardown(struct wccl_comm *c);

/* coll_exec.c */
int comm_progress(struct wccl_comm *c);
/* Route one completion to its request (comm_progress does it for what it
 * polls; waits that reap completions themselves call it too). */
void comm_on_completion(struct wccl_comm *c, const struct wccl_completion *wc);
void comm_flush_requests(struct wccl_comm *c, int err);
void comm_free_plans(struct wccl_comm *c);

#endif
