/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/params.h"
#include "itest.h"

#define CONNECT_MS 10000
#define CTL_MS 30000

uint64_t itest_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- messages --------------------------------------------------------- */

static void vmsg(const struct itest_side *s, const char *kind, const char *file,
		 int line, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void vmsg(const struct itest_side *s, const char *kind, const char *file,
		 int line, const char *fmt, va_list ap)
{
	char buf[1024];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (file)
		fprintf(stderr, "[%s %c pid %d] %s:%d: %s%s\n", s->prov,
			s->role, (int)getpid(), file, line, kind, buf);
	else
		fprintf(stderr, "[%s %c pid %d] %s%s\n", s->prov, s->role,
			(int)getpid(), kind, buf);
	fflush(stderr);
}

void itest_fail_exit(const struct itest_side *s, const char *file, int line,
		     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(s, "FAIL: ", file, line, fmt, ap);
	va_end(ap);
	if (s->ep)
		fprintf(stderr, "[%s %c] endpoint peer '%s' last_error '%s'\n",
			s->prov, s->role, wccl_endpoint_peer(s->ep),
			wccl_endpoint_last_error(s->ep));
	fflush(stdout);
	fflush(stderr);
	_exit(1);
}

void itest_note(const struct itest_side *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(s, "note: ", NULL, 0, fmt, ap);
	va_end(ap);
}

const char *itest_op_name(uint32_t op)
{
	switch (op) {
	case WCCL_OP_SEND:
		return "SEND";
	case WCCL_OP_RECV:
		return "RECV";
	case WCCL_OP_WRITE:
		return "WRITE";
	case WCCL_OP_WRITE_IMM:
		return "WRITE_IMM";
	case WCCL_OP_ERROR:
		return "ERROR";
	default:
		return "?";
	}
}

void itest_print_wc(const struct itest_side *s, const char *what,
		    const struct wccl_completion *wc)
{
	fprintf(stderr,
		"[%s %c] %s: op %s(%u) cookie 0x%" PRIx64 " len %" PRIu64
		" status %d (%s) imm 0x%x ep %s\n",
		s->prov, s->role, what, itest_op_name(wc->op), wc->op,
		wc->cookie, wc->len, wc->status, wccl_err_name(wc->status),
		wc->imm, wc->ep == s->ep ? "ours" : "OTHER");
	fflush(stderr);
}

/* ---- completions ------------------------------------------------------ */

int itest_poll_stash(struct itest_side *s)
{
	struct wccl_completion wc[16];
	int total = 0;
	for (;;) {
		int room = ITEST_STASH_MAX - s->stash_n;
		if (room <= 0)
			return total;
		int n = wccl_cq_poll(s->cq, wc, room < 16 ? room : 16);
		ICHECK(s, n >= 0, "wccl_cq_poll: %d (%s)", n, wccl_err_name(n));
		for (int i = 0; i < n; i++) {
			int slot =
			    (s->stash_head + s->stash_n) % ITEST_STASH_MAX;
			s->stash[slot] = wc[i];
			s->stash_n++;
		}
		total += n;
		if (n < 16)
			return total;
	}
}

int itest_next(struct itest_side *s, struct wccl_completion *wc, int timeout_ms)
{
	if (s->stash_n) {
		*wc = s->stash[s->stash_head];
		s->stash_head = (s->stash_head + 1) % ITEST_STASH_MAX;
		s->stash_n--;
		return 0;
	}
	/* Wait in slices so a failed other side (its control socket hung
	 * up) ends this side at once instead of after @timeout_ms. */
	uint64_t deadline = itest_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		uint64_t now = itest_now_ms();
		int left = now >= deadline ? 0 : (int)(deadline - now);
		int n = wccl_cq_wait(s->cq, wc, 1, left < 100 ? left : 100);
		if (n == 1)
			return 0;
		ICHECK(s, n == WCCL_ETIMEDOUT,
		       "wccl_cq_wait(max 1) returned %d (%s)", n,
		       wccl_err_name(n));
		if (itest_now_ms() >= deadline)
			return -1;
		if (s->ctl >= 0 && !s->peer_may_exit) {
			struct pollfd p = {.fd = s->ctl, .events = POLLRDHUP};
			ICHECK(s,
			       poll(&p, 1, 0) <= 0 ||
				   !(p.revents & (POLLHUP | POLLRDHUP)),
			       "the other side exited while this one waited "
			       "for a completion (see its message)");
		}
	}
}

void itest_expect(struct itest_side *s, uint32_t op, uint64_t cookie,
		  int32_t status, uint64_t len, int timeout_ms,
		  const char *what)
{
	struct wccl_completion wc;
	uint64_t t0 = itest_now_ms();
	if (itest_next(s, &wc, timeout_ms))
		itest_fail_exit(s, __FILE__, __LINE__,
				"%s: no completion within %d ms (want %s "
				"cookie 0x%" PRIx64 " status %s)",
				what, timeout_ms, itest_op_name(op), cookie,
				wccl_err_name(status));
	if (wc.op != op || wc.cookie != cookie || wc.status != status ||
	    wc.ep != s->ep || (len != UINT64_MAX && wc.len != len)) {
		itest_print_wc(s, "got", &wc);
		itest_fail_exit(s, __FILE__, __LINE__,
				"%s: want op %s cookie 0x%" PRIx64
				" status %d (%s) len %" PRId64
				" on our ep (after %" PRIu64 " ms)",
				what, itest_op_name(op), cookie, status,
				wccl_err_name(status),
				len == UINT64_MAX ? (int64_t)-1 : (int64_t)len,
				itest_now_ms() - t0);
	}
}

/* ---- control channel -------------------------------------------------- */

void itest_ctl_send(struct itest_side *s, const void *buf, size_t len)
{
	ssize_t n = send(s->ctl, buf, len, MSG_NOSIGNAL);
	ICHECK(s, n == (ssize_t)len, "control send of %zu bytes: %zd (%s)", len,
	       n, strerror(errno));
}

static int ctl_ready(struct itest_side *s, int ms)
{
	struct pollfd p = {.fd = s->ctl, .events = POLLIN};
	int n = poll(&p, 1, ms);
	ICHECK(s, n >= 0 || errno == EINTR, "poll: %s", strerror(errno));
	return n > 0;
}

size_t itest_ctl_recv(struct itest_side *s, void *buf, size_t cap,
		      int timeout_ms, int poll_cq)
{
	uint64_t deadline = itest_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		if (poll_cq && s->cq)
			itest_poll_stash(s);
		if (ctl_ready(s, poll_cq ? 0 : 10)) {
			ssize_t n = recv(s->ctl, buf, cap, 0);
			ICHECK(s, n > 0,
			       "control channel: peer side gone (recv %zd: "
			       "%s)",
			       n, n ? strerror(errno) : "EOF");
			return (size_t)n;
		}
		ICHECK(s, itest_now_ms() < deadline,
		       "no control message from the peer side within %d ms",
		       timeout_ms);
		if (poll_cq)
			usleep(50);
	}
}

int itest_ctl_wait_eof(struct itest_side *s, int timeout_ms)
{
	uint64_t deadline = itest_now_ms() + (uint64_t)timeout_ms;
	char b[64];
	for (;;) {
		if (s->cq)
			itest_poll_stash(s);
		if (ctl_ready(s, 0)) {
			ssize_t n = recv(s->ctl, b, sizeof(b), 0);
			if (n <= 0)
				return 0;
		}
		if (itest_now_ms() >= deadline)
			return -1;
		usleep(50);
	}
}

void itest_barrier(struct itest_side *s)
{
	char b = 'b', got = 0;
	itest_ctl_send(s, &b, 1);
	size_t n = itest_ctl_recv(s, &got, 1, CTL_MS, 1);
	ICHECK(s, n == 1 && got == 'b', "barrier: got %zu bytes '%c'", n, got);
}

/* ---- setup / teardown ------------------------------------------------- */

void itest_open(struct itest_side *s)
{
	ICHECK_OK(s, wccl_context_open(s->prov, &s->ctx));
	ICHECK(s, strcmp(wccl_context_provider(s->ctx), s->prov) == 0,
	       "context provider '%s'", wccl_context_provider(s->ctx));
	ICHECK_OK(s, wccl_cq_create(s->ctx, s->cq_depth, &s->cq));
	if (s->role == 'A') {
		ICHECK_OK(s, wccl_listen(s->ctx, NULL, &s->l));
		ICHECK_OK(s,
			  wccl_listener_addr(s->l, s->addr, sizeof(s->addr)));
		size_t pl = strlen(s->prov);
		ICHECK(s,
		       strncmp(s->addr, s->prov, pl) == 0 && s->addr[pl] == ':',
		       "listener address '%s' does not start with '%s:'",
		       s->addr, s->prov);
	}
}

void itest_connect(struct itest_side *s)
{
	uint64_t deadline = itest_now_ms() + CONNECT_MS;
	if (s->role == 'A') {
		itest_ctl_send(s, s->addr, strlen(s->addr) + 1);
		for (;;) {
			int rc = wccl_accept(s->l, s->cq, &s->ep);
			if (rc == 0)
				break;
			ICHECK(s, rc == WCCL_EAGAIN, "wccl_accept: %d (%s)", rc,
			       wccl_err_name(rc));
			ICHECK(s, itest_now_ms() < deadline,
			       "nobody accepted on %s within %d ms", s->addr,
			       CONNECT_MS);
			itest_poll_stash(s);
			usleep(100);
		}
	} else {
		size_t n =
		    itest_ctl_recv(s, s->addr, sizeof(s->addr), CTL_MS, 0);
		ICHECK(s, n > 1 && s->addr[n - 1] == '\0',
		       "bad address message");
		ICHECK_OK(s, wccl_connect(s->ctx, s->addr, s->cq, &s->ep));
	}
	int rc = wccl_endpoint_wait_established(s->ep, CONNECT_MS);
	ICHECK(s, rc == 0, "wait_established: %d (%s) '%s'", rc,
	       wccl_err_name(rc), wccl_endpoint_last_error(s->ep));
	ICHECK(s, wccl_endpoint_peer(s->ep)[0] != '\0',
	       "wccl_endpoint_peer is empty");
	itest_barrier(s);
	ICHECK(s, s->stash_n == 0, "%d unexpected completions while connecting",
	       s->stash_n);
}

void itest_close(struct itest_side *s, int peer_gone)
{
	if (!peer_gone && s->ctl >= 0)
		itest_barrier(s);
	if (s->stash_n) {
		for (int i = 0; i < s->stash_n; i++)
			itest_print_wc(
			    s, "left over",
			    &s->stash[(s->stash_head + i) % ITEST_STASH_MAX]);
		itest_fail_exit(s, __FILE__, __LINE__,
				"%d unexpected completions", s->stash_n);
	}
	if (s->ep)
		ICHECK_OK(s, wccl_endpoint_close(s->ep));
	s->ep = NULL;
	if (s->l)
		ICHECK_OK(s, wccl_listener_close(s->l));
	s->l = NULL;
	if (s->cq) {
		/* endpoint_close may flush ECANCELED completions only for ops
		 * in flight; a case that left none must see none. */
		struct wccl_completion wc;
		int n = wccl_cq_poll(s->cq, &wc, 1);
		if (n > 0)
			itest_print_wc(s, "after close", &wc);
		ICHECK(s, n == 0, "completion after endpoint_close: %d", n);
		ICHECK_OK(s, wccl_cq_destroy(s->cq));
	}
	s->cq = NULL;
	if (s->ctx)
		ICHECK_OK(s, wccl_context_close(s->ctx));
	s->ctx = NULL;
}

/* ---- data ------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline uint8_t stream_byte(uint64_t seed, size_t i)
{
	return (uint8_t)(mix64(seed * 0x100000001b3ull ^ (i / 8)) >>
			 (8 * (i % 8)));
}

void itest_fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w = mix64(seed * 0x100000001b3ull ^ (i / 8));
		memcpy(p + i, &w, 8); /* little-endian host assumed */
	}
	for (; i < len; i++)
		p[i] = stream_byte(seed, i);
}

long long itest_verify(const void *buf, size_t len, uint64_t seed)
{
	const uint8_t *p = buf;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w = mix64(seed * 0x100000001b3ull ^ (i / 8));
		if (memcmp(p + i, &w, 8) != 0)
			break;
	}
	for (; i < len; i++)
		if (p[i] != stream_byte(seed, i))
			return (long long)i;
	return -1;
}

long long itest_check_byte(const void *buf, size_t len, uint8_t byte)
{
	const uint8_t *p = buf;
	for (size_t i = 0; i < len; i++)
		if (p[i] != byte)
			return (long long)i;
	return -1;
}

void *itest_alloc(struct itest_side *s, size_t len)
{
	void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ICHECK(s, p != MAP_FAILED, "mmap %zu: %s", len, strerror(errno));
	return p;
}

void itest_free(void *p, size_t len)
{
	munmap(p, len ? len : 1);
}

/* ---- supervisor ------------------------------------------------------- */

/* cmocka's runner installs handlers for SIGSEGV & co that longjmp back
 * into the runner; a forked side must never run them. */
static const int crash_signals[] = {SIGSEGV, SIGBUS,  SIGILL,
				    SIGFPE,  SIGABRT, SIGSYS};

/* Write @head and the calling thread's stack to stderr (signal-safe once
 * backtrace() has been called outside a handler, see child_signals). */
static void print_stack(const char *head, size_t len)
{
	void *pc[32];
	int n = backtrace(pc, 32);
	if (write(2, head, len) >= 0)
		backtrace_symbols_fd(pc, n, 2);
}

/* SIGUSR1 from the supervisor before it kills a side that overran the
 * case deadline: where it was stuck, so a rare hang leaves a trace. */
static void stuck_backtrace(int sig)
{
	(void)sig;
	static const char head[] = "---- stuck side's user stack:\n";
	print_stack(head, sizeof(head) - 1);
}

/* A side that crashes prints where, then dies of the signal as before
 * (SA_RESETHAND): a rare crash in CI leaves a trace in the log. */
static void crash_backtrace(int sig)
{
	static const char head[] = "---- crashed side's user stack:\n";
	print_stack(head, sizeof(head) - 1);
	raise(sig);
}

static void child_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = crash_backtrace;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(crash_signals) / sizeof(int); i++)
		sigaction(crash_signals[i], &sa, NULL);
	sa.sa_flags = 0;
	/* backtrace() loads libgcc on first use: not in a signal handler. */
	void *pc[2];
	backtrace(pc, 2);
	sa.sa_handler = stuck_backtrace;
	sigaction(SIGUSR1, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* Print a /proc file of @pid under a label (kernel stack, syscall). */
static void show_proc(pid_t pid, const char *file)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* stat: only "pid (comm) state" matters here. */
	char *st = strrchr(buf, ')');
	if (strcmp(file, "stat") == 0 && st && st - buf + 3 < n) {
		st[3] = '\n';
		n = st - buf + 4;
		buf[n] = '\0';
	}
	fprintf(stderr, "---- %s:\n%s%s", path, buf,
		buf[n - 1] == '\n' ? "" : "\n");
}

/* A side overran its deadline: show where it is, then kill it. */
static void kill_stuck(pid_t pid)
{
	fprintf(stderr, "---- pid %d overran; where it is:\n", (int)pid);
	show_proc(pid, "stat");
	show_proc(pid, "wchan");
	show_proc(pid, "syscall");
	show_proc(pid, "stack");
	if (kill(pid, SIGUSR1) == 0)
		usleep(300000);
	kill(pid, SIGKILL);
}

static pid_t spawn(const char *prov, const struct itest_case *c, char role,
		   itest_side_fn fn, int ctl, int other_ctl)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid != 0)
		return pid;

	child_signals();
	if (other_ctl >= 0)
		close(other_ctl);
	static struct itest_side side; /* big: keep it off the stack */
	struct itest_side *s = &side;
	memset(s, 0, sizeof(*s));
	s->prov = prov;
	s->role = role;
	s->ctl = ctl;
	s->cq_depth = c->cq_depth;
	for (const char *const *e = c->env; e && *e; e++) {
		char kv[256];
		snprintf(kv, sizeof(kv), "%s", *e);
		char *eq = strchr(kv, '=');
		ICHECK(s, eq != NULL, "bad env entry '%s'", *e);
		*eq = '\0';
		setenv(kv, eq + 1, 1);
	}
	/* ITEST_ENV_A / ITEST_ENV_B: "K=V K=V..." for that side only (the
	 * soft-RoCE WAN bed puts the two sides on two RDMA devices). */
	char side_var[] = "ITEST_ENV_?";
	side_var[sizeof(side_var) - 2] = role;
	const char *side_env = getenv(side_var);
	if (side_env && *side_env) {
		char kv[512];
		snprintf(kv, sizeof(kv), "%s", side_env);
		char *save = NULL;
		for (char *t = strtok_r(kv, " ", &save); t;
		     t = strtok_r(NULL, " ", &save)) {
			char *eq = strchr(t, '=');
			ICHECK(s, eq != NULL && eq != t, "bad %s entry '%s'",
			       side_var, t);
			*eq = '\0';
			setenv(t, eq + 1, 1);
		}
	}
	wccl_param_reload();
	if (!c->manual) {
		itest_open(s);
		itest_connect(s);
	}
	int rc = fn(s);
	ICHECK(s, rc == 0, "%s returned %d", c->name, rc);
	if (!c->manual)
		itest_close(s, 0);
	if (ctl >= 0)
		close(ctl);
	fflush(stdout);
	fflush(stderr);
	exit(0); /* not _exit: let LSan check the success path */
}

static const char *describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "status 0x%x", st);
	return buf;
}

int itest_run(const char *prov, const struct itest_case *c)
{
	int sv[2] = {-1, -1};
	if (c->b && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) {
		fprintf(stderr, "socketpair: %s\n", strerror(errno));
		return -1;
	}
	pid_t pid[2] = {-1, -1};
	int st[2] = {0, 0}, done[2] = {0, 0};
	int n = c->b ? 2 : 1;
	pid[0] = spawn(prov, c, c->b ? 'A' : 'S', c->a, sv[0], sv[1]);
	if (c->b)
		pid[1] = spawn(prov, c, 'B', c->b, sv[1], sv[0]);
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	uint64_t deadline = itest_now_ms() + (uint64_t)c->timeout_ms;
	uint64_t grace = 0; /* once one side failed, the other gets 5 s */
	int left = n;
	while (left) {
		for (int i = 0; i < n; i++) {
			if (done[i] || pid[i] < 0)
				continue;
			pid_t r = waitpid(pid[i], &st[i], WNOHANG);
			if (r == pid[i]) {
				done[i] = 1;
				left--;
				int ok = (i == 1 && c->b_dies)
					     ? WIFSIGNALED(st[i]) &&
						   WTERMSIG(st[i]) == SIGKILL
					     : WIFEXITED(st[i]) &&
						   WEXITSTATUS(st[i]) == 0;
				if (!ok && !grace)
					grace = itest_now_ms() + 5000;
			}
		}
		if (!left)
			break;
		uint64_t now = itest_now_ms();
		if (now >= deadline || (grace && now >= grace)) {
			for (int i = 0; i < n; i++)
				if (!done[i]) {
					kill_stuck(pid[i]);
					waitpid(pid[i], &st[i], 0);
				}
			break;
		}
		usleep(2000);
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char buf[96];
		char role = c->b ? (i ? 'B' : 'A') : 'S';
		int want_kill = i == 1 && c->b_dies;
		if (!done[i]) {
			fprintf(stderr,
				"[%s] case %s: side %c (pid %d) still running "
				"after %s; killed it\n",
				prov, c->name, role, (int)pid[i],
				grace ? "the other side failed (5 s grace)"
				      : "the case deadline");
			rc = -1;
			continue;
		}
		int ok = want_kill
			     ? WIFSIGNALED(st[i]) && WTERMSIG(st[i]) == SIGKILL
			     : WIFEXITED(st[i]) && !WEXITSTATUS(st[i]);
		if (!ok) {
			fprintf(stderr, "[%s] case %s: side %c (pid %d) %s%s\n",
				prov, c->name, role, (int)pid[i],
				describe_status(st[i], buf, sizeof(buf)),
				want_kill ? ", expected SIGKILL" : "");
			rc = -1;
		}
	}
	return rc;
}
