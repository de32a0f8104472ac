/* SPDX-License-Identifier: MIT */
/*
 * The stream receiver against a hostile or confused peer, on loopback
 * (uring). usage: test_stream_hostile CASE. Each case forks a receiver
 * (wccl_stream_server_run_one in a temporary directory), plays the peer
 * with crafted messages (stream_common.h), then checks what the receiver
 * did: it must not crash or hang, must close a stray connection without
 * failing the transfer in progress, and must name what was wrong.
 * Exit 0 pass, 1 fail, 77 skip (uring unusable here).
 *
 *   ping-first, fin-first, data-first: before HELLO; then a transfer
 *   fin-then-data: a chunk after FIN (the I/O thread read a freed bitmap)
 *   stray-garbage, stray-fin, stray-close: a second connection misbehaves
 *     while a transfer runs; the transfer must complete
 *   rejoin: JOIN on a data connection (it re-posted its receives)
 *   rawtcp: bare TCP connects, more than the receiver has slots
 *   huge-size: HELLO for a file of 2^64 - 4095 bytes
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "include/wccl/errors.h"
#include "include/wccl/transport.h"
#include "transport/stream/crc32c.h"
#include "transport/stream/stream.h"
#include "transport/stream/stream_common.h"

#define NEP 4	   /* client endpoints */
#define NRX 8	   /* receives per endpoint */
#define RXB 8192   /* receive buffer */
#define TXB 70000  /* send slot: header + a chunk */
#define NTX 32
#define CHUNK 4096
#define SID 0x1234ull

static struct wccl_context *ctx;
static struct wccl_cq *cq;
static struct wccl_mr *mr;
static uint8_t *reg;
static struct wccl_endpoint *eps[NEP];
static int txi;
static char addr[256], dir[] = "/tmp/wccl-hostile-XXXXXX";
static pid_t rpid = -1;
static int rpipe = -1;

#define FAIL(...)                                                   \
	do {                                                        \
		fprintf(stderr, "FAIL: " __VA_ARGS__);              \
		fputc('\n', stderr);                                \
		exit(1);                                            \
	} while (0)

/* Completions polled while sending, kept for waitfor (FIFO). */
static struct wccl_completion stash[256];
static int stash_h, stash_t;

static int poll1(struct wccl_completion *wc)
{
	if (stash_h != stash_t) {
		*wc = stash[stash_h++ % 256];
		return 1;
	}
	return wccl_cq_poll(cq, wc, 1);
}

static uint8_t *rx_at(int n, int i)
{
	return reg + ((size_t)n * NRX + (size_t)i) * RXB;
}

/* ---- the receiver, in a child -------------------------------------- */

static void receiver(int fd)
{
	struct wccl_stream_server *srv;
	struct wccl_stream_stats st;
	char a[256], err[1024] = "";
	int rc = wccl_stream_server_open("uring", "127.0.0.1:0", dir, &srv, a,
					 sizeof(a));
	if (rc) {
		dprintf(fd, "open %d\n", rc);
		_exit(77);
	}
	dprintf(fd, "%s\n", a);
	rc = wccl_stream_server_run_one(srv, 5000, &st, err, sizeof(err));
	dprintf(fd, "rc %d %s\n", rc, err);
	wccl_stream_server_close(srv);
	_exit(0);
}

static void start_receiver(void)
{
	int p[2];
	if (!mkdtemp(dir) || pipe(p))
		FAIL("setup: %s", strerror(errno));
	rpid = fork();
	if (rpid < 0)
		FAIL("fork: %s", strerror(errno));
	if (!rpid) {
		close(p[0]);
		receiver(p[1]);
	}
	close(p[1]);
	rpipe = p[0];
	size_t n = 0;
	while (n < sizeof(addr) - 1 && read(rpipe, addr + n, 1) == 1 &&
	       addr[n] != '\n')
		n++;
	addr[n] = 0;
	if (!n || !strncmp(addr, "open ", 5)) {
		printf("SKIP: receiver cannot listen on uring: %s\n", addr);
		exit(77);
	}
}

/* The receiver's verdict: its exit (bounded) and "rc N text". */
static int receiver_result(char *text, size_t len)
{
	int ws;
	uint64_t dl = wccl_deadline_ns(15000);
	while (waitpid(rpid, &ws, WNOHANG) == 0) {
		if (wccl_now_ns() > dl) {
			kill(rpid, SIGKILL);
			waitpid(rpid, &ws, 0);
			FAIL("receiver hung");
		}
		usleep(10000);
	}
	if (WIFSIGNALED(ws))
		FAIL("receiver died of signal %d", WTERMSIG(ws));
	if (WEXITSTATUS(ws))
		FAIL("receiver exited %d (a sanitizer report?)",
		     WEXITSTATUS(ws));
	char buf[1200];
	ssize_t n = read(rpipe, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	int rc;
	if (sscanf(buf, "rc %d", &rc) != 1)
		FAIL("receiver said nothing: '%s'", buf);
	snprintf(text, len, "%s", buf);
	printf("receiver: %s", buf);
	return rc;
}

/* ---- the peer ------------------------------------------------------- */

static int conn(int n)
{
	int rc = wccl_connect(ctx, addr, cq, &eps[n]);
	if (!rc)
		rc = wccl_endpoint_wait_established(eps[n], 5000);
	int ws;
	if (rc && waitpid(rpid, &ws, WNOHANG) == rpid)
		FAIL("connect: the receiver is gone (%s %d)",
		     WIFSIGNALED(ws) ? "signal" : "exit",
		     WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
	if (rc)
		FAIL("connect %s: %s", addr, wccl_strerror(rc));
	for (int i = 0; i < NRX; i++)
		wccl_post_recv(eps[n], rx_at(n, i), RXB, mr,
			       (uint64_t)(n * NRX + i));
	return n;
}

static void sendm(int n, struct smsg *m, const void *p, size_t pl)
{
	uint8_t *b = reg + (size_t)NEP * NRX * RXB + (size_t)(txi++ % NTX) * TXB;
	int rc;
	m->magic = SMSG_MAGIC;
	smsg_put(b, m);
	if (pl)
		memcpy(b + SMSG_LEN, p, pl);
	while ((rc = wccl_post_send(eps[n], b, SMSG_LEN + pl, mr, 1 << 20)) ==
	       WCCL_EAGAIN)
		if (stash_t - stash_h < 256 &&
		    wccl_cq_poll(cq, &stash[stash_t % 256], 1) == 1)
			stash_t++;
	if (rc)
		FAIL("send on %d: %s", n, wccl_strerror(rc));
}

/*
 * Poll up to @ms for a message of @type on endpoint @n (-1: any type).
 * Returns 0 with *@out set, -1 on timeout, -2 if the receiver closed
 * @n. Messages on other endpoints are dropped: one thing at a time.
 */
static int waitfor(int n, int type, int ms, struct smsg *out, char *text,
		   size_t tlen)
{
	struct wccl_completion wc[1];
	uint64_t dl = wccl_deadline_ns(ms);
	while (wccl_now_ns() < dl) {
		int k = poll1(wc);
		for (int i = 0; i < k; i++) {
			int e = wc[i].op == WCCL_OP_RECV
					? (int)(wc[i].cookie / NRX)
					: -1;
			for (int j = 0; e < 0 && j < NEP; j++)
				if (eps[j] == wc[i].ep)
					e = j;
			if (wc[i].status) {
				if (e == n)
					return -2;
				continue;
			}
			if (wc[i].op != WCCL_OP_RECV)
				continue;
			uint8_t *b = rx_at(e, (int)(wc[i].cookie % NRX));
			struct smsg m;
			if (smsg_get(b, wc[i].len, &m))
				FAIL("malformed reply on %d", e);
			if (text && tlen && wc[i].len > SMSG_LEN)
				snprintf(text, tlen, "%.*s",
					 (int)(wc[i].len - SMSG_LEN),
					 (char *)b + SMSG_LEN);
			wccl_post_recv(wc[i].ep, b, RXB, mr, wc[i].cookie);
			if (e == n && (type < 0 || m.type == type)) {
				if (out)
					*out = m;
				return 0;
			}
		}
		if (!k)
			usleep(500);
	}
	return -1;
}

static void hello(int n, uint64_t size, const char *name)
{
	struct smsg h = {.type = SM_HELLO,
			 .sid = SID,
			 .offset = size,
			 .len = CHUNK,
			 .index = (size + CHUNK - 1) / CHUNK,
			 .aux1 = 12345,
			 .aux2 = 2};
	sendm(n, &h, name, strlen(name) + 1);
}

static uint8_t fill(uint64_t idx)
{
	return (uint8_t)('a' + idx);
}

static void data(int n, uint64_t idx)
{
	static uint8_t p[CHUNK];
	memset(p, fill(idx), CHUNK);
	struct smsg d = {.type = SM_DATA,
			 .sid = SID,
			 .index = idx,
			 .offset = idx * CHUNK,
			 .len = CHUNK,
			 .crc = wccl_crc32c(0, p, CHUNK)};
	sendm(n, &d, p, CHUNK);
}

static void ack(int n, uint64_t idx)
{
	struct smsg m;
	if (waitfor(n, SM_ACK, 3000, &m, NULL, 0))
		FAIL("no ack for chunk %llu", (unsigned long long)idx);
	if (m.index != idx)
		FAIL("ack for %llu, not %llu", (unsigned long long)m.index,
		     (unsigned long long)idx);
}

static void fin(int n, uint64_t nchunks)
{
	uint32_t crc = 0;
	uint8_t p[CHUNK];
	for (uint64_t i = 0; i < nchunks; i++) {
		memset(p, fill(i), CHUNK);
		crc = wccl_crc32c(crc, p, CHUNK);
	}
	struct smsg f = {.type = SM_FIN,
			 .sid = SID,
			 .offset = nchunks * CHUNK,
			 .crc = crc};
	sendm(n, &f, NULL, 0);
}

static void fin_ok(int n)
{
	struct smsg m;
	char text[1024] = "";
	if (waitfor(n, SM_FIN_ACK, 5000, &m, text, sizeof(text)))
		FAIL("no fin ack");
	if (m.aux1)
		FAIL("fin ack status %lld: %s", (long long)m.aux1, text);
}

/* HELLO for @nchunks chunks on a new connection @n. */
static void begin(int n, uint64_t nchunks, const char *name)
{
	struct smsg m;
	char text[1024] = "";
	conn(n);
	hello(n, nchunks * CHUNK, name);
	if (waitfor(n, SM_HELLO_ACK, 3000, &m, text, sizeof(text)))
		FAIL("no hello ack");
	if (m.aux1)
		FAIL("hello refused (%lld): %s", (long long)m.aux1, text);
}

static void file_ok(const char *name, uint64_t nchunks)
{
	char path[512];
	uint8_t b[CHUNK];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		FAIL("%s: %s", path, strerror(errno));
	for (uint64_t i = 0; i < nchunks; i++)
		if (fread(b, 1, CHUNK, f) != CHUNK || b[0] != fill(i) ||
		    b[CHUNK - 1] != fill(i))
			FAIL("%s: chunk %llu wrong", path,
			     (unsigned long long)i);
	if (fread(b, 1, 1, f) != 0)
		FAIL("%s: longer than %llu chunks", path,
		     (unsigned long long)nchunks);
	fclose(f);
}

/* A whole transfer of 2 chunks on connection @n, and the receiver's
 * success. */
static void transfer_ok(int n)
{
	char text[1200];
	begin(n, 2, "f.bin");
	data(n, 0);
	data(n, 1);
	ack(n, 0);
	ack(n, 1);
	fin(n, 2);
	fin_ok(n);
	if (receiver_result(text, sizeof(text)))
		FAIL("transfer failed: %s", text);
	file_ok("f.bin", 2);
}

/* @n must be closed by the receiver (not answered) within a second. */
static void closed(int n, const char *what)
{
	int rc = waitfor(n, -1, 2000, NULL, NULL, 0);
	if (rc == 0)
		FAIL("%s was answered", what);
	if (rc != -2)
		FAIL("%s: connection left open", what);
}

/* A message before HELLO: the connection is closed, nothing else. */
static void before_hello(int type)
{
	struct smsg m = {.type = (uint16_t)type, .sid = SID};
	conn(0);
	if (type == SM_DATA)
		data(0, 0);
	else
		sendm(0, &m, NULL, 0);
	closed(0, "a message before hello");
	transfer_ok(1);
}

/* A second connection does @what while a transfer runs. */
static void stray(const char *what)
{
	char text[1200];
	begin(0, 3, "s.bin");
	data(0, 0);
	ack(0, 0);
	conn(1);
	if (!strcmp(what, "garbage")) {
		struct smsg g = {.type = 99, .sid = SID};
		sendm(1, &g, NULL, 0);
		closed(1, "an unknown message type");
	} else if (!strcmp(what, "fin")) {
		struct smsg g = {.type = SM_FIN, .sid = 777};
		sendm(1, &g, NULL, 0);
		closed(1, "a stray fin");
	} else {
		usleep(100000); /* accepted and waiting for hello */
		wccl_endpoint_close(eps[1]);
		eps[1] = NULL;
		usleep(200000);
	}
	data(0, 1);
	data(0, 2);
	ack(0, 1);
	ack(0, 2);
	fin(0, 3);
	fin_ok(0);
	if (receiver_result(text, sizeof(text)))
		FAIL("the stray connection failed the transfer: %s", text);
	file_ok("s.bin", 3);
}

static void raw_tcp(void)
{
	char text[1200];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)atoi(colon + 1))};
	int fds[STREAM_MAX_EPS + 1];
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	begin(0, 3, "r.bin");
	/* more than the receiver's slots, none of which says hello */
	for (int k = 0; k <= STREAM_MAX_EPS; k++) {
		fds[k] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[k] < 0 || connect(fds[k], (void *)&sa, sizeof(sa)))
			FAIL("raw connect: %s", strerror(errno));
	}
	usleep(50000);
	uint64_t t0 = wccl_now_ns();
	data(0, 0);
	ack(0, 0);
	uint64_t ms = (wccl_now_ns() - t0) / 1000000;
	printf("ack %llu ms after %d bare connects\n", (unsigned long long)ms,
	       STREAM_MAX_EPS + 1);
	if (ms > 500)
		FAIL("bare connects held the receiver %llu ms",
		     (unsigned long long)ms);
	/* Past their handshake deadline (1 s here) their slots are free:
	 * the transfer's second stream gets in. */
	usleep(1500000);
	struct smsg j = {.type = SM_JOIN, .sid = SID, .index = 1};
	conn(1);
	sendm(1, &j, NULL, 0);
	if (waitfor(1, SM_JOIN_ACK, 3000, NULL, NULL, 0))
		FAIL("no join ack: bare connects kept the slots");
	data(1, 1);
	ack(1, 1);
	data(0, 2);
	ack(0, 2);
	fin(0, 3);
	fin_ok(0);
	for (int k = 0; k <= STREAM_MAX_EPS; k++)
		close(fds[k]);
	if (receiver_result(text, sizeof(text)))
		FAIL("transfer failed: %s", text);
	file_ok("r.bin", 3);
}

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "";
	char text[1200];
	struct smsg m;
	/* a short session timeout; bare connects time out in 1 s */
	setenv("WCCL_TIMEOUT_MS", "3000", 1);
	setenv("WCCL_CONNECT_TIMEOUT_MS", "1000", 1);
	signal(SIGPIPE, SIG_IGN);
	start_receiver();
	size_t len = (size_t)NEP * NRX * RXB + (size_t)NTX * TXB;
	if (wccl_context_open("uring", &ctx) || wccl_cq_create(ctx, 0, &cq) ||
	    wccl_mem_alloc(len, (void **)&reg) ||
	    wccl_mr_register(ctx, reg, len, WCCL_ACCESS_LOCAL, &mr))
		FAIL("client setup");
	if (!strcmp(c, "ping-first")) {
		before_hello(SM_PING);
	} else if (!strcmp(c, "fin-first")) {
		before_hello(SM_FIN);
	} else if (!strcmp(c, "data-first")) {
		before_hello(SM_DATA);
	} else if (!strcmp(c, "fin-then-data")) {
		begin(0, 2, "f.bin");
		data(0, 0);
		data(0, 1);
		ack(0, 0);
		ack(0, 1);
		fin(0, 2);
		data(0, 0); /* a late duplicate */
		fin_ok(0);
		if (receiver_result(text, sizeof(text)))
			FAIL("transfer failed: %s", text);
		file_ok("f.bin", 2);
	} else if (!strncmp(c, "stray-", 6)) {
		stray(c + 6);
	} else if (!strcmp(c, "rejoin")) {
		begin(0, 3, "j.bin");
		struct smsg j = {.type = SM_JOIN, .sid = SID};
		sendm(0, &j, NULL, 0);
		if (!waitfor(0, SM_JOIN_ACK, 1000, NULL, NULL, 0))
			FAIL("join on a data connection accepted");
		if (!receiver_result(text, sizeof(text)) ||
		    !strstr(text, "on a joined connection"))
			FAIL("receiver did not name the join: %s", text);
	} else if (!strcmp(c, "rawtcp")) {
		raw_tcp();
	} else if (!strcmp(c, "huge-size")) {
		conn(0);
		hello(0, 0ull - CHUNK + 1, "h.bin");
		text[0] = 0;
		if (waitfor(0, -1, 3000, &m, text, sizeof(text)) || !m.aux1)
			FAIL("a 2^64-byte file was not refused");
		printf("refused: %s\n", text);
		if (!strstr(text, "file size") || !strstr(text, "too large"))
			FAIL("the refusal does not say why: %s", text);
		if (!receiver_result(text, sizeof(text)))
			FAIL("receiver took the hello");
	} else {
		FAIL("unknown case '%s'", c);
	}
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
	printf("ok: %s\n", c);
	return 0;
}
