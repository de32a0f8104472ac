/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COMM_INTERNAL_H
#define WCCL_COMM_INTERNAL_H

/*
 * A communicator: the bootstrap link, one transport context per provider in
 * use, one endpoint per peer (full mesh, made at init), the region layout,
 * and the cache of plans (schedules + scratch) keyed by operation shape.
 */
#include <stddef.h>
#include <stdint.h>

#include <wccl/coll.h>
#include <wccl/comm.h>
#include <wccl/transport.h>

#include "collectives/bootstrap/bootstrap.h"
#include "collectives/cost_model.h"
#include "collectives/schedule.h"
#include "core/mem.h"

#define COMM_MAX_PROVIDERS 4
#define COMM_HOSTNAME_LEN 64
#define COMM_REGION_LEN 32
#define COMM_PLAN_CACHE 16
#define COMM_MAX_REGIONS 64
#define COMM_MAX_HOSTS 4096
#define COMM_MAX_ACCEPT_BATCH 4096 /* ranks below us, at most */

/* What each rank tells the others at init (fixed size, all-gathered). */
/* A rank's link costs as its topology file gave them (comm_topo.c): all
 * ranks must have the same, or they choose different algorithms. */
struct comm_topo_decl {
	uint32_t from_file; /* WCCL_TOPO_FILE was set */
	uint32_t declared;  /* bit per link class with a line in it */
	int32_t error;	    /* the file was bad: why, for every rank */
	uint32_t pad;
	struct wccl_link_cost link[WCCL_LINK_CLASSES];
	char why[160];
};

struct comm_peer_info {
	uint32_t rank;
	uint32_t pid;
	uint64_t host_id;
	char hostname[COMM_HOSTNAME_LEN];
	char region[COMM_REGION_LEN];
	char addrs[COMM_MAX_PROVIDERS][WCCL_ADDR_MAX]; /* "" = none */
	uint32_t cross_streams; /* its WCCL_CROSS_STREAMS */
	uint32_t eager_bytes;   /* its WCCL_EAGER_BYTES */
	/* fresh per init: in the MAC of each hello sent to it */
	uint8_t hello_nonce[16];
	struct comm_topo_decl topo;
};

/* Connections to one cross-region peer, at most; messages of at least
 * COMM_STRIPE_MIN bytes are split evenly across them. A constant, not a
 * tunable: both ends must split alike. */
#define COMM_MAX_STRIPES 8
/* ...plus one for small messages (coll_eager.c) */
#define COMM_MAX_CONNS (COMM_MAX_STRIPES + 1)
/* Allreduces of at most this many bytes among the ranks of one host go
 * through shared mailboxes (coll_ll.c). */
#define COMM_LL_MAX 65536u
/* In a mailbox slot: the signature, the flag, then the data, so a call of
 * up to 8 bytes is one cache line. */
#define COMM_LL_DATA_OFF 56u
/* Allreduces of at least this many bytes among the ranks of one host, on
 * wccl_mem buffers, reduce straight from the peers' buffers
 * (coll_direct.c). */
#define COMM_DIRECT_MIN (256u * 1024u)
#define COMM_STRIPE_MIN (256u * 1024u)

struct comm_peer {
	struct comm_peer_info info;
	struct wccl_endpoint *ep; /* NULL for self; = eps[0] */
	struct wccl_endpoint *eps[COMM_MAX_CONNS];
	int nstripes; /* data endpoints in eps[] (1 unless another region) */
	int nconns;   /* nstripes, + 1: eps[nstripes] is the eager channel */
	int ctx_index;            /* which of comm->ctx */
	int region_id;            /* dense region number */
	int host_index;           /* dense host number */
};

/* A wccl_mem allocation registered with one context, reused by every
 * collective whose buffers lie in it. */
#define COMM_MR_CACHE 8
struct comm_mr_entry {
	uint64_t id; /* wccl_mem allocation id, 0 = empty */
	struct wccl_mr *mr;
	uint64_t last_use;
};

struct comm_ctx {
	uint32_t caps; /* the provider's WCCL_CAP_* */
	struct comm_mr_entry mrs[COMM_MR_CACHE];
	struct wccl_context *ctx;
	struct wccl_cq *cq;
	struct wccl_listener *listener;
	struct wccl_mr *eager_mr; /* the eager slots, registered here */
	int npeers; /* peers reached through it: 0 = nothing to poll */
};

enum coll_kind {
	COLL_ALLREDUCE,
	COLL_BROADCAST,
	COLL_REDUCE,
	COLL_ALLGATHER,
	COLL_REDUCE_SCATTER,
	COLL_ALLTOALL,
	COLL_BARRIER,
	COLL_SEND,
	COLL_RECV,
	COLL_KIND_COUNT
};

/* The shape a plan is cached by, and what every rank checks against its
 * peers' (sent ahead of the data as a signature). */
struct coll_shape {
	uint32_t kind;  /* enum coll_kind */
	uint32_t dtype; /* enum wccl_dtype */
	uint32_t op;    /* enum wccl_redop */
	int32_t root;
	uint64_t count;
};

/* Per-step executor state, reset at the start of each run. */
enum step_flag {
	STEP_RECV_POSTED = 1u << 0,
	STEP_RECV_DONE = 1u << 1,
	STEP_SEND_POSTED = 1u << 2,
	STEP_SEND_DONE = 1u << 3,
	STEP_FINISHED = 1u << 4,
};

struct step_state {
	uint8_t flags; /* *_POSTED: some part posted; *_DONE: all parts done */
	int8_t slot; /* staging slot of a REDUCE receive, or -1 */
	/* A message to a peer with several connections goes in parts, one
	 * per connection: how many are posted, how many still due. */
	uint8_t send_parts, recv_parts, send_left, recv_left;
	uint64_t recv_len; /* bytes that arrived */
	const uint8_t *eager; /* an eager receive's data, in its inbox slot */
};

/*
 * Everything a collective of one shape needs, built once and reused: the
 * schedule, staging for received blocks that get reduced, a working buffer
 * where the caller's buffers cannot be worked on in place, and the
 * executor's per-step state.
 */
struct coll_plan {
	struct coll_shape shape;
	int in_use;
	int algo; /* enum wccl_algo for allreduce, else -1 */
	char why[160];
	uint64_t elems; /* elements the schedule works on */
	size_t elem_size;
	struct wccl_step *steps;
	struct step_state *state;
	int nsteps;
	uint8_t *stage;
	struct wccl_mem_span stage_span;
	size_t stage_slot_bytes;
	int stage_slots;
	uint32_t stage_free; /* bitmap of free slots */
	uint8_t *work;
	size_t work_bytes;
	int *sig_send_peers, *sig_recv_peers;
	/* Eager runs (coll_exec.c): per sig_send peer, its signature rides
	 * in our first data message to it (sent with no message of its
	 * own); per step, that message is the step's send; per sig_recv
	 * peer, its signature may come late (it rides in a message the peer
	 * sends only after receiving), so its absence proves nothing. */
	uint8_t *sig_inline, *step_sig, *sig_late;
	/* allreduce: block boundaries and, per segment between them, whether
	 * an out-of-place run's output holds it yet (coll_lazy.c) */
	int ll; /* small allreduce through the mailboxes: no schedule */
	int direct; /* coll_direct.c first; the schedule if it cannot */
	uint64_t *seg_bound;
	uint8_t *seg_in_out;
	uint32_t nseg;
	int n_sig_send, n_sig_recv;
	uint64_t last_use;
};

#define COMM_MAX_REQUESTS 64
#define COMM_SIG_LEN 48

/* A collective call in flight. Requests run one at a time, in call order. */
struct wccl_request {
	struct wccl_comm *comm;
	struct coll_plan *plan;
	struct coll_shape shape;
	const void *sendbuf;
	void *recvbuf;
	uint8_t *buf;       /* what the schedule's blocks address */
	uint8_t *send_base; /* alltoall sends address this instead */
	/* wccl_mem allocations holding buf / send_base (id 0: plain memory) */
	struct wccl_mem_span buf_span, send_span, in_span;
	int ll_slot; /* mailbox slot of a small allreduce */
	int direct_phase; /* coll_direct.c: 0 = not (or no longer) direct */
	int rendezvous; /* it posted a send or receive outside the eager path */
	const uint8_t *lazy_in; /* out-of-place allreduce input, copied lazily */
	uint64_t seq;
	int next_recv, next_send, next_finish; /* executor cursors */
	int send_low; /* steps below have no send in flight */
	int sends_pending;
	int sigs_pending;
	int next_sig; /* eager signatures sent */
	int started;
	int status;
	int done;
	int in_use;
	struct wccl_request *next;
};

/* Where a rank's direct-call buffers are: registration keys and offsets. */
struct comm_direct_keys {
	uint64_t in_off, out_off; /* of the buffers in their allocations */
	uint8_t in_rk[WCCL_RKEY_PACKED_LEN];
	uint8_t out_rk[WCCL_RKEY_PACKED_LEN];
};

struct wccl_comm {
	int rank, nranks;
	int timeout_ms;
	struct wccl_bootstrap *bs;
	struct wccl_bootstrap_root *root; /* if this process runs it */
	struct comm_ctx ctx[COMM_MAX_PROVIDERS];
	int nctx;
	struct comm_peer *peers;
	int *region_of; /* dense region id per rank */
	int *host_of;   /* dense host id per rank */
	int nregions;
	struct wccl_cost_topology topo;
	int topo_from_file; /* the file's figures win over measurements */
	struct comm_topo_decl topo_decl; /* ours, for the info exchange */
	/* per link class: the topology file has a line for it */
	unsigned char link_declared[WCCL_LINK_CLASSES];
	/* per link class: COMM_LINK_ALPHA / COMM_LINK_BW when measured */
	unsigned char link_measured[WCCL_LINK_CLASSES];
	char region_names[COMM_MAX_REGIONS][COMM_REGION_LEN];
	void *hello; /* connection set-up messages */
	/* the job's bootstrap secret: hellos carry a MAC made with it */
	uint8_t secret[WCCL_BOOTSTRAP_SECRET_LEN];
	struct wccl_endpoint **accepted; /* accepted, not yet named */
	int naccepted; /* slots in accepted[] */

	uint64_t seq; /* collectives issued, for signatures */
	/* small-allreduce mailboxes (coll_ll.c) */
	int ll_on;
	uint8_t *ll_box;            /* ours: two slots */
	struct wccl_mr *ll_mr;
	const uint8_t **ll_peer;    /* every rank's, mapped here */
	const uint8_t **direct_in;  /* per rank: a direct call's buffers */
	uint8_t **direct_out;
	/* per rank: the buffers of the last direct call that mapped them
	 * all (coll_direct.c); direct_kept_bytes 0 when there is none */
	struct comm_direct_keys *direct_kept;
	uint64_t direct_kept_bytes;
	uint64_t direct_done, direct_fallbacks; /* calls, for describe */
	uint64_t ll_calls;
	uint64_t ll_quiet_passes; /* comm_progress: transports polled 1 in 16 */
	uint64_t next_abort_check_ns; /* wccl_wait: the root's news, every 10 ms */
	struct wccl_request reqs[COMM_MAX_REQUESTS];
	struct wccl_request *head, *tail;
	struct coll_plan plans[COMM_PLAN_CACHE];
	uint64_t plan_clock;

	/* Small messages and signatures go ahead without a receive being
	 * posted for them: into slots always posted on a connection of their
	 * own (coll_eager.c). */
	struct comm_eager *eager; /* NULL: off */
	size_t eager_max; /* largest eager payload, agreed at init; 0: off */
	uint64_t eager_sends_out; /* posted, not completed: a call waits */
	int eager_local; /* every eager connection completes sends itself */
	/* Signatures: one outgoing and one incoming slot per peer. */
	uint8_t *sig;
	uint8_t *sig_got; /* per peer: its signature arrived this call */

	int async_error;
	int async_rank;
	char async_msg[256];
	int aborted;
	int broken; /* after a failed collective the streams are out of step */
	int abort_sent;
	int oversubscribed; /* more ranks on this host than online CPUs */
	int failure_is_sure;
};

#endif
