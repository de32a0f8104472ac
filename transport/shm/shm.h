/* SPDX-License-Identifier: MIT */
#ifndef WCCL_SHM_H
#define WCCL_SHM_H

/*
 * Same-host provider. Each endpoint shares one memfd segment with its peer
 * holding two SPSC rings (one per direction). Small payloads travel inline
 * in the ring; larger ones stay in the initiator's memory and the TARGET
 * copies them once with process_vm_readv (CMA), then acknowledges through
 * the reverse ring. So data moves when the target makes progress: a target
 * must poll or wait on its CQ. Without CMA permission, large payloads are
 * streamed through the ring in chunks instead (two copies).
 *
 *   A                         segment (memfd)                          B
 *   post_write -> [hdr: key, off, src, len] --ring A->B-->  validate, CMA
 *   WRITE done <---------------- ack ring B->A -- [ACK seq]  copy, ACK
 *
 * Direct path: memory from wccl_mem_alloc is a memfd per allocation. A
 * context publishes its regions in a table (after the doorbell page of the
 * same memfd; peers map it read-only): slot = key's index, with the key's
 * generation, access, length and where the region sits in which memfd.
 * An initiator whose target region is in wccl_mem validates the write
 * against that table (key, bounds, access: before a byte lands), takes the
 * target's memfd once with pidfd_getfd (the same ptrace permission as CMA),
 * maps it, and copies with one memcpy; the WRITE message then carries
 * SHM_F_DIRECT and the target re-validates, raises WRITE_IMM and ACKs as
 * usual. A large SEND from wccl_mem is copied by the receiver straight
 * from its mapping of the sender's memfd. Mappings are cached per peer.
 *
 *   A  post_write: table[key] ok? -> memcpy into mapped B -> [hdr DIRECT]
 *      WRITE done <----------------------------------------- [ACK seq]
 *
 * A context's doorbell (a memfd page with a futex word) lets a peer wake
 * it from cq_sleep; the connection's unix socket stays open only so that
 * its hangup tells us the peer is gone.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/log.h"
#include "shm_ring.h"
#include "transport/provider.h"

#define SHM_MAGIC 0x77636c73686d3031ull /* "wclshm01" */
#define SHM_VERSION 3 /* 3: the copy lines after the rings */
#define SHM_MR_MAX 4096u
#define SHM_ACK_RING (64u * 1024) /* per direction; overflow waits in ackq */
#define SHM_LIVE_NS (10ull * 1000 * 1000) /* liveness check period */
#define SHM_MAPS 8 /* peer memfd mappings cached per endpoint */
#define SHM_PINNED 4 /* mappings handed out by map_remote: never evicted */
/* How long a deregistration waits for a peer's direct copy into it: a
 * slice at most, unless the peer is stopped. */
#define SHM_COPY_WAIT_MS 5000
/* A direct copy checks the region is still there this often. */
#define SHM_COPY_SLICE (1u << 20)
/* After traffic, keep polling this long in cq_sleep before the futex: a
 * futex wake-up costs more than a round trip, so a peer that is talking
 * to us should find us awake. */
#define SHM_ACTIVE_NS (200ull * 1000)
#define SHM_YIELD_NS (20ull * 1000) /* yield this often while polling */

/* ---- doorbell (shm_doorbell.c) ---------------------------------------- */

struct shm_doorbell {
	_Atomic uint32_t seq;      /* futex word: bumped to wake a sleeper */
	_Atomic uint32_t sleeping; /* owner is in (or entering) futex wait */
};

int shm_doorbell_create(struct shm_doorbell **db, int *fd);
/* A memfd of @len bytes that can never shrink or grow (sealed): a peer
 * that maps it cannot be made to fault by a later ftruncate. The fd, or
 * a negative errno. */
int shm_memfd_sealed(const char *name, size_t len);
/* Is the peer's memfd @fd at least @len bytes and sealed against
 * shrinking? 0 if so, else WCCL_EPROTO (or a negative errno). */
int shm_memfd_check(int fd, uint64_t len);
int shm_doorbell_map(int fd, struct shm_doorbell **db);
void shm_doorbell_unmap(struct shm_doorbell *db);
/* Producer side, after committing to a ring read by @db's owner. */
static inline void shm_doorbell_ring(struct shm_doorbell *db);
/* Owner side: sleep until rung or @timeout_ms; @has_work re-checks. */
int shm_doorbell_wait(struct shm_doorbell *db, int timeout_ms,
		      int (*has_work)(void *), void *arg);
void shm_doorbell_wake(struct shm_doorbell *db);

/* ---- published region table (shm_doorbell.c) --------------------------- */

/* One per mr slot, written by the owner only (a seqlock on @gen). */
struct shm_mrt_ent {
	_Atomic uint32_t gen; /* the live key's generation; 0: none/changing */
	uint32_t access;
	uint64_t len;
	uint64_t mem_ino; /* inode of the wccl_mem memfd holding it */
	uint64_t mem_off; /* offset of the region's start in that memfd */
	int32_t mem_fd;   /* the memfd's number in the owner */
	uint32_t resv;
	uint64_t resv2;
};

#define SHM_MRT_BYTES ((size_t)SHM_MR_MAX * sizeof(struct shm_mrt_ent))

/*
 * After an endpoint's rings, one line per side: the key of the peer's
 * region that side is copying into directly right now (0: none), and
 * whether that side has closed the endpoint. The writer sets the key,
 * then checks the peer's table and closed flag, copies in slices
 * (checking the table again before each), and clears the key. An owner
 * that deregisters kills the key in its table, then waits while the line
 * holds it; one that closes the endpoint sets closed, then waits for the
 * line to clear. Either the writer sees the change or the owner sees the
 * copy, so none lands after wccl_mr_deregister returns.
 */
struct shm_copy_line {
	_Alignas(64) _Atomic uint64_t key;
	_Atomic uint32_t closed;
};
/* Map a doorbell memfd's table: writable for its owner, else read-only. */
int shm_mrt_map(int fd, int owner, struct shm_mrt_ent **mrt);
void shm_mrt_unmap(struct shm_mrt_ent *mrt);

static inline void shm_doorbell_ring(struct shm_doorbell *db)
{
	/* Pairs with the sleeper's fence: either it sees our ring update or
	 * we see its sleeping flag. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&db->sleeping, memory_order_relaxed))
		shm_doorbell_wake(db);
}

/* ---- objects ---------------------------------------------------------- */

struct shm_ep;

struct shm_mr_slot {
	struct wccl_mr *mr; /* NULL when free */
	uint32_t gen;       /* bumped on deregister so stale keys fail */
	uint32_t next_free;
};

struct shm_ctx {
	struct wccl_context base;
	struct shm_doorbell *db;
	struct shm_mrt_ent *mrt; /* our published region table */
	uint64_t work, work_seen; /* messages consumed; as of last sleep */
	uint64_t active_until;    /* cq_sleep polls until then */
	int db_fd;
	pid_t pid;
	struct shm_ep *eps; /* every endpoint, for progress and sleep */
	int n_eps;
	int n_pending; /* endpoints still handshaking */
	struct shm_mr_slot *mrs;
	uint32_t mr_free;
	uint32_t qdepth;
	uint32_t inline_max;
	uint64_t ring_bytes;
	int cma; /* SHM_CMA tunable and the self-probe both allow it */
	uint64_t next_live_ns;
	uint32_t idle;
};

struct shm_cq {
	struct wccl_cq base;
	struct wccl_completion *wc;
	uint32_t mask;
	uint64_t head, tail;
};

struct shm_mr {
	struct wccl_mr base;
	uint32_t slot;
	int32_t mem_fd; /* -1: not in wccl_mem memory */
	uint64_t mem_ino, mem_off;
};

/* A peer's memfd mapped here. */
struct shm_map {
	uint8_t *base; /* NULL: free */
	uint64_t size, ino;
	int32_t rfd; /* its number in the peer */
	int writable;
	uint64_t used; /* ep->map_clock at the last lookup: LRU */
};

struct shm_listener {
	struct wccl_listener base;
	int fd;
	char name[64];
};

enum shm_ep_state {
	SHM_EP_CONNECTING, /* sent hello, waiting for the reply */
	SHM_EP_ACCEPTING,  /* waiting for the connector's hello */
	SHM_EP_UP,
	SHM_EP_FAILED,
};

/* An operation we initiated, waiting for the peer's ACK. */
struct shm_tx {
	uint64_t cookie;
	const uint8_t *buf;
	uint64_t len;
	uint64_t key, offset;
	uint64_t sent; /* streamed bytes so far */
	uint64_t mem_ino, mem_off; /* SEND from wccl_mem: where, for the peer */
	int32_t mem_fd;            /* -1: not in wccl_mem */
	uint32_t imm;
	uint8_t type;  /* SHM_MSG_SEND or SHM_MSG_WRITE */
	uint8_t flags;
	uint8_t done;
	uint8_t started; /* header is in the ring */
	int32_t status;
};

struct shm_rx {
	uint64_t cookie;
	uint8_t *buf;
	uint64_t len;
};

/* A peer's SEND that arrived before a receive was posted. */
struct shm_unexp {
	struct shm_msg hdr;
	uint8_t *payload; /* inline bytes, in uq_buf */
};

struct shm_ack {
	uint32_t seq;
	int32_t status;
};

/* The streamed (no-CMA) payload now arriving, if any. */
struct shm_stream {
	int active;
	int discard; /* rejected: drop the fragments */
	uint8_t type, flags;
	uint32_t seq, imm;
	int32_t status;
	uint8_t *dest;
	uint64_t len, got, cookie;
	uint64_t key; /* a WRITE's region */
};

struct shm_ep {
	struct wccl_endpoint base;
	struct shm_ep *next, *prev;
	struct shm_ctx *ctx;
	int state;
	int err;
	int sock;
	uint64_t deadline_ns;
	void *seg;
	size_t seg_len;
	struct shm_doorbell *peer_db;
	struct shm_ring tx, rx;   /* data: requests and payloads */
	struct shm_ring atx, arx; /* ACKs only */
	pid_t peer_pid;
	int peer_reads_me; /* -1 unknown yet, 0 stream, 1 CMA */
	int i_read_peer;
	uint32_t inline_max; /* agreed: min of both sides */
	uint32_t frag_max;
	int rung;            /* pushed since the last doorbell */

	uint32_t qd;         /* our outstanding limit per direction */
	uint32_t tx_mask;
	struct shm_tx *txq;
	uint64_t tx_head, tx_push, tx_tail;

	struct shm_rx *rxq;
	uint32_t rx_mask;
	uint64_t rx_head, rx_tail;

	struct shm_unexp *uq; /* sized by the peer's depth */
	uint8_t *uq_buf;
	uint32_t uq_mask;
	uint64_t uq_head, uq_tail;

	struct shm_ack *ackq;
	uint64_t ack_head, ack_tail;

	struct shm_stream st;
	/* CMA bytes copied of a message being pulled, one count for the
	 * ring's oldest message and one for the oldest unexpected SEND:
	 * both can be part-way at once. */
	uint64_t pull_off, uq_pull_off;
	/* Our copy of the ring's oldest message's header, kept while it is
	 * pulled in slices (the peer's ring copy may change meanwhile). */
	struct shm_msg rx_hdr;

	/* direct path */
	int direct;                    /* 1: we may map the peer's memfds */
	int pidfd;                     /* the peer process, -1 if none */
	struct shm_mrt_ent *peer_mrt;  /* its region table, read-only */
	struct shm_copy_line *my_copy;   /* in the segment: ours to set */
	struct shm_copy_line *peer_copy; /* and the peer's */
	struct shm_map maps[SHM_MAPS];
	struct shm_map pinned[SHM_PINNED];
	uint64_t map_clock;            /* lookups of maps[], for the LRU */
};

static inline struct shm_ctx *shm_ctx_of(struct wccl_context *c)
{
	return container_of(c, struct shm_ctx, base);
}
static inline struct shm_ep *shm_ep_of(struct wccl_endpoint *e)
{
	return container_of(e, struct shm_ep, base);
}
static inline struct shm_cq *shm_cq_of(struct wccl_cq *c)
{
	return container_of(c, struct shm_cq, base);
}

/* ---- provider (shm_provider.c) ---------------------------------------- */

/* "<16 hex digits>" naming this host, pid and net namespace. */
const char *shm_hostid(void);
/* Read @len bytes at @src in @pid into @dst with CMA, chunked. Returns 0,
 * -WCCL_EPEER_LOST (process gone), -WCCL_EPERM or another negative code. */
int shm_cma_read(pid_t pid, void *dst, uint64_t src, uint64_t len);
/* Nonzero if we may read @pid's memory at @probe_addr (holding magic). */
int shm_cma_probe(pid_t pid, uint64_t probe_addr);
extern const uint64_t shm_probe_word;
/* Bytes per process_vm_readv call; tests may change it. */
extern uint64_t shm_cma_chunk;
/* Nonzero: never use CMA (tests of the streaming path). */
extern int shm_cma_disabled;

/* ---- connections (shm_conn.c) ----------------------------------------- */

int shm_listen(struct wccl_context *ctx, const char *bind_addr,
	       struct wccl_listener **l);
int shm_listener_addr(const struct wccl_listener *l, char *buf, size_t len);
void shm_listener_close(struct wccl_listener *l);
int shm_accept(struct wccl_listener *l, struct wccl_cq *cq,
	       struct wccl_endpoint **ep);
int shm_connect(struct wccl_context *ctx, const char *addr,
		struct wccl_cq *cq, struct wccl_endpoint **ep);
int shm_established(struct wccl_endpoint *ep);
void shm_endpoint_close(struct wccl_endpoint *ep);
/* Drive a handshake one step; called from progress too. */
int shm_handshake(struct shm_ep *ep);
/* Nonzero if the peer's socket shows hangup. */
int shm_peer_hung_up(struct shm_ep *ep);
/* Whether the peer process has exited (its pidfd says so). */
int shm_peer_exited(struct shm_ep *ep);
/* A peer's copy into our memory that has to land before we go on: wait
 * while its copy line holds @key (0: any key), within SHM_COPY_WAIT_MS. */
void shm_wait_copy(struct shm_ep *ep, uint64_t key);

/* ---- data path (shm_data.c) ------------------------------------------- */

int shm_post_send(struct wccl_endpoint *ep, const void *buf, size_t len,
		  struct wccl_mr *mr, uint64_t cookie);
int shm_post_recv(struct wccl_endpoint *ep, void *buf, size_t len,
		  struct wccl_mr *mr, uint64_t cookie);
int shm_post_write(struct wccl_endpoint *ep, const void *buf, size_t len,
		   struct wccl_mr *mr, const struct wccl_rkey *rk,
		   uint64_t offset, uint32_t imm, uint32_t flags,
		   uint64_t cookie);
int shm_cq_poll(struct wccl_cq *cq, struct wccl_completion *wc, int max);
/* The region of @key is going, its table entry already dead: a WRITE
 * streaming into it is dropped from here on, and fails at both ends; a
 * peer's direct copy into it that checked the entry before is waited for. */
void shm_forget_mr(struct shm_ctx *c, uint64_t key);
int shm_cq_sleep(struct wccl_cq *cq, int timeout_ms);
/* Allocate the per-endpoint op arrays once the peer's limits are known. */
int shm_ep_queues_alloc(struct shm_ep *ep, uint32_t peer_qd);
void shm_ep_queues_free(struct shm_ep *ep);
/* Fail the endpoint: every op in flight completes with @err. */
void shm_ep_abort(struct shm_ep *ep, int err);
/* Map (or find the cached mapping of) the peer's memfd number @rfd with
 * inode @ino. NULL if that cannot be done; *@size is its length. */
/* The peer's region @key mapped here (in the pinned set if @pinned), if
 * live, allowing @access and at least @need bytes long; NULL otherwise
 * (shm_data.c). */
uint8_t *shm_peer_region(struct shm_ep *ep, uint64_t key, uint32_t access,
			 uint64_t need, int pinned);
int shm_map_remote(struct wccl_endpoint *ep, const struct wccl_rkey *rk,
		   unsigned flags, void **addr);
/* A mapping for map_remote: kept until the endpoint closes. */
uint8_t *shm_map_pinned(struct shm_ep *ep, int32_t rfd, uint64_t ino,
			int writable, uint64_t *size);
uint8_t *shm_map_get(struct shm_ep *ep, int32_t rfd, uint64_t ino,
		     int writable, uint64_t *size);
void shm_maps_release(struct shm_ep *ep);
/* Look up a registered region by key. */
struct wccl_mr *shm_mr_lookup(struct shm_ctx *ctx, uint64_t key);

#endif
