/* SPDX-License-Identifier: MIT */
#ifndef WCCL_PERF_H
#define WCCL_PERF_H

/*
 * wccl-perf: one harness, thin mains per test (bw, lat, demo).
 *
 *   main.c     pick the mode; demo.c runs bw + lat on every provider
 *   opts.c     command line -> struct perf_opts
 *   run.c      a client run over every size, or one server session
 *   proto.c    control messages (fixed 128-byte blocks over wccl)
 *   session.c  context, listen/connect, buffers, the HELLO/READY/BYE
 *              control exchange (over wccl itself, see proto.c)
 *   bw.c       bandwidth: client keeps -t ops in flight, server sinks
 *   lat.c      ping-pong latency (send/recv or write_imm)
 *   lat_poll.c lat --op write-poll: plain writes, the peer polls memory
 *   pattern.c  -c data: content depends on iteration and offset
 *   report.c   perftest-shaped tables and --json lines
 *   local.c    --local: fork the server, pass its address through a pipe
 *
 * Nothing here calls exit() (the forked --local server _exits from its own
 * top level); every function returns 0 or a negative wccl code after
 * printing one line that says what failed and with which peer. Runs
 * allocate nothing on the data path: buffers, the slot table and the
 * peak-window samples are sized at setup.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wccl/wccl.h>

#define PERF_DEFAULT_PORT 18515
#define PERF_MAX_CONNS 64
#define PERF_MAX_SIZES 32
#define PERF_MSG_LEN 128
#define PERF_STASH 256
#define PERF_WINDOWS 4096  /* bw peak: completion-time samples */
#define PERF_MAX_OPS 16384 /* -t x -q */
#define PERF_MAX_SLOT_BYTES (256ull << 20) /* -c buffers per side */

enum perf_test { PERF_BW = 1, PERF_LAT };
/* WRITE_POLL (lat only): a plain write whose last byte the peer polls in
 * its own memory, as ib_write_lat does; no completion at the target. */
enum perf_op { PERF_OP_WRITE = 1, PERF_OP_SEND, PERF_OP_WRITE_POLL };

/* coll.c: the nccl-tests-shaped collectives benchmark (argv[0] names it). */
int perf_coll_main(int argc, char **argv);

struct perf_bw_result;
struct perf_lat_result;

/* Where results go besides the table (the demo collects them). */
struct perf_sink {
	void (*bw)(void *arg, const char *prov, const struct perf_bw_result *r);
	void (*lat)(void *arg, const char *prov,
		    const struct perf_lat_result *r);
	void *arg;
};

struct perf_opts {
	enum perf_test test;
	enum perf_op op;      /* 0 until parsed: the test's default */
	const char *host;     /* NULL: be the server */
	const char *provider; /* NULL: auto */
	const char *bind;     /* server bind host */
	unsigned port;
	bool port_set;
	uint64_t sizes[PERF_MAX_SIZES];
	int n_sizes;
	uint64_t iters;
	unsigned duration_ms; /* 0: iteration mode */
	unsigned conns;
	unsigned tx_depth;
	unsigned warmup;
	bool check;
	bool json;
	bool local;
	bool quiet; /* no table header (demo prints its own) */
	int timeout_ms;
	int accept_timeout_ms;
	const struct perf_sink *sink; /* NULL: print only */
};

struct perf_bw_result {
	uint64_t bytes; /* message size */
	uint64_t iters;
	double seconds;
	double peak_mibps; /* MB/sec with MB = 2^20 bytes, as perftest */
	double avg_mibps;
	double mpps;
};

struct perf_lat_result {
	uint64_t bytes;
	uint64_t iters;
	/* half round trip, microseconds */
	double min, max, typical, avg, stdev, p99, p999;
};

/* -c bookkeeping: how many messages were bad, and the first one. */
struct perf_check {
	uint64_t errors; /* bad messages */
	uint64_t bad_iter, bad_off;
	uint8_t expect, got;
};

/* What the client and the server agreed on (from HELLO). */
struct perf_params {
	enum perf_test test;
	enum perf_op op;
	uint64_t max_size;
	unsigned conns;
	unsigned depth;
	bool check;
};

struct perf_session {
	const struct perf_opts *o;
	bool server;
	struct perf_params p;
	struct wccl_context *ctx;
	struct wccl_cq *cq;
	struct wccl_listener *lis;
	struct wccl_endpoint *ctrl;
	struct wccl_endpoint *data[PERF_MAX_CONNS];
	unsigned n_data;
	char peer[WCCL_ADDR_MAX];

	/* data buffer: slots * max_size bytes, registered once */
	uint8_t *buf;
	size_t buf_len;
	bool buf_shm; /* buf is from wccl_mem_alloc (shm maps it directly) */
	unsigned slots;
	struct wccl_mr *mr;
	struct wccl_rkey peer_rk; /* where our writes go */

	/* control + credit messages, registered once */
	uint8_t *cbuf;
	size_t cbuf_len;
	struct wccl_mr *cmr;
	bool ctrl_rx_full; /* a control message waits in ctrl_msg */
	uint8_t ctrl_msg[PERF_MSG_LEN];
	unsigned ctrl_tx_pending;
	bool bye_sent; /* client: data endpoints may now fail (peer closing) */
	/* data completions that arrived while a control wait ran */
	struct wccl_completion stash[PERF_STASH];
	unsigned n_stash;

	/* bw state, sized at setup so runs allocate nothing */
	uint8_t *pending;		   /* events still due per op slot */
	bool recvs_posted;		   /* receive/credit buffers posted */
	uint64_t rx_count[PERF_MAX_CONNS]; /* server: messages per ep */
	uint64_t credit_sent[PERF_MAX_CONNS]; /* server: credits per ep */
	uint64_t lat_seq; /* lat server: pings served this session */
	/* write-poll: writes posted this session (picks the source slot) and
	 * those whose completion has not been reaped yet */
	uint64_t poll_posted;
	unsigned poll_busy;
	struct perf_window {
		uint64_t
		    t[PERF_WINDOWS]; /* time of every @every-th completion */
		unsigned n;
		uint64_t every;
	} window;
	/* -c found bad data: the session still ends cleanly (BYE), then the
	 * run fails with this code */
	int check_rc;
	struct perf_check lat_check; /* lat client: pongs */
};

/* Cookies carry a kind in the top byte, a value below. */
enum perf_kind {
	PERF_K_CTRL_RX = 1,
	PERF_K_CTRL_TX,
	PERF_K_DATA,
	PERF_K_CREDIT_RX,
	PERF_K_CREDIT_TX,
};
#define PERF_COOKIE(kind, v) (((uint64_t)(kind) << 56) | (uint64_t)(v))
#define PERF_KIND(c) ((unsigned)((c) >> 56))
#define PERF_VAL(c) ((c) & ((1ull << 56) - 1))

/* ---- control messages (proto.c) --------------------------------------- */

enum perf_msg_type {
	PERF_MSG_HELLO = 1, /* client -> server: perf_params (+ client rkey) */
	PERF_MSG_READY,	    /* server -> client: server rkey */
	PERF_MSG_RUN,	    /* client -> server: size, iterations */
	PERF_MSG_GO,	    /* server -> client: receives are posted */
	PERF_MSG_DONE,	    /* client -> server: total operations sent */
	PERF_MSG_RESULT,    /* server -> client: status, check mismatch */
	PERF_MSG_BYE,	    /* either way: end of session */
	PERF_MSG_ERROR,	    /* server -> client: setup failed */
};

struct perf_msg {
	uint32_t type;
	int32_t status;
	uint64_t size;
	uint64_t count;		    /* iterations (RUN, DONE) */
	uint64_t bad_iter, bad_off; /* RESULT: first check mismatch */
	uint32_t expect, got;	    /* RESULT: bytes at the mismatch */
	uint64_t errors;	    /* RESULT: mismatching messages */
	struct perf_params p;	    /* HELLO */
	struct wccl_rkey rk;	    /* HELLO (lat write), READY */
};

/* Post a control message; the previous one must have left first, so this
 * may wait for it. perf_ctrl_flush() waits until this one has left too. */
int perf_msg_send(struct perf_session *s, const struct perf_msg *m);
int perf_ctrl_flush(struct perf_session *s);
/* Wait for the next control message of @type (0: any; others are an
 * error). */
int perf_msg_recv(struct perf_session *s, uint32_t type, struct perf_msg *m);
int perf_ctrl_post_recv(struct perf_session *s);
/* Handle a completion of kind CTRL_RX/CTRL_TX; 0, or a negative code. */
int perf_ctrl_event(struct perf_session *s, const struct wccl_completion *wc);
/* Take a stashed control message if one arrived; 1 if so. */
int perf_ctrl_take(struct perf_session *s, struct perf_msg *m);

/* wccl_cq_wait with the run's timeout; prints what timed out or failed.
 * perf_wait_data() first hands out completions stashed by control waits. */
int perf_wait(struct perf_session *s, struct wccl_completion *wc, int max,
	      const char *what);
int perf_wait_data(struct perf_session *s, struct wccl_completion *wc, int max,
		   const char *what);
/* Print "wccl-perf: <what>: <why>", naming the peer. Returns @err. */
int perf_fail(struct perf_session *s, struct wccl_endpoint *ep, int err,
	      const char *what);

/* ---- session (session.c) ---------------------------------------------- */

int perf_client_open(struct perf_session *s, const struct perf_opts *o);
/* Listen; if @addr_fd >= 0 write the address there, else print it. */
int perf_server_open(struct perf_session *s, const struct perf_opts *o,
		     int addr_fd);
/* Both sides: say BYE, close everything; returns the first error. */
int perf_session_close(struct perf_session *s, int rc);
uint8_t *perf_slot(struct perf_session *s, unsigned slot);
unsigned perf_ep_index(const struct perf_session *s,
		       const struct wccl_endpoint *ep);

/* ---- tests ------------------------------------------------------------- */

int perf_bw_client(struct perf_session *s, uint64_t size,
		   struct perf_bw_result *r);
int perf_lat_client(struct perf_session *s, uint64_t size,
		    struct perf_lat_result *r);
/* Serve RUN requests until BYE. */
int perf_serve(struct perf_session *s);
int perf_bw_serve(struct perf_session *s, const struct perf_msg *run);
int perf_lat_serve(struct perf_session *s, const struct perf_msg *run);
/* lat --op write-poll (lat_poll.c). Before RUN (client) or GO (server):
 * clear the bytes this side polls, so no earlier run's byte reads as new. */
void perf_lat_poll_arm(struct perf_session *s, uint64_t size);
/* Client: round @k; *@rtt in ns. Checks round k - 1's pong with -c. */
int perf_lat_poll_round(struct perf_session *s, uint64_t size, uint64_t k,
			uint64_t *rtt);
/* Wait until every write this side posted has completed. */
int perf_lat_poll_drain(struct perf_session *s);
/* Client, after RESULT: check the last pong (round @k - 1) with -c. */
void perf_lat_poll_end(struct perf_session *s, uint64_t size, uint64_t k);
int perf_lat_poll_serve(struct perf_session *s, const struct perf_msg *run);
/* After the data phase: DONE -> RESULT; prints a check failure. */
int perf_client_finish(struct perf_session *s, uint64_t count);

/* Run every size in @o as the client, printing each result. */
int perf_client_run(const struct perf_opts *o);
int perf_server_run(const struct perf_opts *o, int addr_fd);
/* --local: fork a server, run the client here. */
int perf_local_run(const struct perf_opts *o);

/* ---- data check (pattern.c) ------------------------------------------- */

/* Check a received message of @got_len bytes (@want_len expected) against
 * iteration @iter; the first mismatch is recorded and printed, naming
 * @from. Returns 0 if good. */
int perf_check_msg(struct perf_check *c, const uint8_t *buf, uint64_t want_len,
		   uint64_t got_len, uint64_t iter, const char *from);

void perf_pattern_fill(uint8_t *buf, uint64_t len, uint64_t iter);
/* 0 if @buf holds iteration @iter's pattern, else 1 with the first
 * mismatch's offset and bytes. */
int perf_pattern_check(const uint8_t *buf, uint64_t len, uint64_t iter,
		       uint64_t *off, uint8_t *expect, uint8_t *got);

/* ---- options and output (opts.c, report.c) ---------------------------- */

/* 0, 1 for "help printed", or -WCCL_EINVAL after printing why. */
int perf_opts_parse(struct perf_opts *o, enum perf_test test, int argc,
		    char **argv);
void perf_usage(void);
void perf_opts_default(struct perf_opts *o, enum perf_test test);
const char *perf_op_name(enum perf_op op);

void perf_report_bw_header(const struct perf_opts *o,
			   const struct perf_session *s);
void perf_report_bw(const struct perf_opts *o, const struct perf_session *s,
		    const struct perf_bw_result *r);
void perf_report_lat_header(const struct perf_opts *o,
			    const struct perf_session *s);
void perf_report_lat(const struct perf_opts *o, const struct perf_session *s,
		     const struct perf_lat_result *r);
/* Sort @ns (round trips, ns) and fill @r (half round trips, us). */
void perf_lat_stats(uint64_t *ns, uint64_t n, struct perf_lat_result *r);

int perf_demo_main(int argc, char **argv);

#endif
