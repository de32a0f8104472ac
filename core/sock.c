/* SPDX-License-Identifier: MIT */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <wccl/errors.h>

#include "clock.h"
#include "log.h"
#include "params.h"

static int resolve_until(const char *host, const char *port, int passive,
			 struct sockaddr_storage *ss, socklen_t *len,
			 uint64_t deadline_ns);

int wccl_sock_split(const char *addr, const char *default_port, char *host,
		    size_t hlen, char *port, size_t plen)
{
	if (!addr || !*addr || !hlen || !plen)
		return WCCL_EINVAL;
	const char *h = addr, *colon;
	size_t n;
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || (end[1] && end[1] != ':'))
			return WCCL_EINVAL;
		h = addr + 1;
		n = (size_t)(end - h);
		colon = end[1] ? end + 1 : NULL;
	} else {
		colon = strrchr(addr, ':');
		n = colon ? (size_t)(colon - addr) : strlen(addr);
	}
	if (n == 0 || n >= hlen)
		return WCCL_EINVAL;
	const char *p = colon ? colon + 1 : default_port;
	size_t pn = p ? strlen(p) : 0;
	if (!pn || pn > 5 || pn >= plen || strspn(p, "0123456789") != pn ||
	    atoi(p) > 65535)
		return WCCL_EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	memcpy(port, p, pn + 1);
	return 0;
}

/* wccl_sock_parse, a name's lookup ending at @deadline_ns at the latest */
static int parse_until(const char *addr, uint16_t default_port,
		       struct sockaddr_storage *ss, socklen_t *len,
		       uint64_t deadline_ns)
{
	char host[256], port[16], dflt[8];
	snprintf(dflt, sizeof(dflt), "%u", default_port);
	if (wccl_sock_split(addr, dflt, host, sizeof(host), port,
			    sizeof(port)))
		return WCCL_EINVAL;
	return resolve_until(host, port, 0, ss, len, deadline_ns);
}

/* The lookup's own bound, WCCL_RESOLVE_TIMEOUT_MS from now. */
static uint64_t resolve_deadline(void)
{
	int64_t ms = wccl_param_int(WCCL_PARAM_RESOLVE_TIMEOUT_MS);
	return wccl_deadline_ns(ms > 0 ? ms : 1);
}

int wccl_sock_parse(const char *addr, uint16_t default_port,
		    struct sockaddr_storage *ss, socklen_t *len)
{
	return parse_until(addr, default_port, ss, len, resolve_deadline());
}

/* A lookup getaddrinfo_a could not stop: its request must live until the
 * resolver is done with it. */
struct resolve_req {
	struct gaicb cb;
	struct addrinfo hints;
	char host[256], port[16];
};

static void *reap_lookup(void *arg)
{
	struct resolve_req *r = arg;
	const struct gaicb *list[1] = {&r->cb};
	while (gai_error(&r->cb) == EAI_INPROGRESS)
		gai_suspend(list, 1, NULL);
	if (r->cb.ar_result)
		freeaddrinfo(r->cb.ar_result);
	free(r);
	return NULL;
}

/* Wait for @r until @deadline_ns; 0 when it finished (gai_error() tells
 * how), else WCCL_ETIMEDOUT and @r belongs to the resolver or a reaper. */
static int wait_lookup(struct resolve_req *r, uint64_t deadline_ns)
{
	const struct gaicb *list[1] = {&r->cb};
	while (gai_error(&r->cb) == EAI_INPROGRESS) {
		uint64_t now = wccl_now_ns();
		if (now >= deadline_ns)
			break;
		uint64_t left = deadline_ns - now;
		struct timespec ts = {(time_t)(left / 1000000000u),
				      (long)(left % 1000000000u)};
		gai_suspend(list, 1, &ts);
	}
	if (gai_error(&r->cb) != EAI_INPROGRESS)
		return 0;
	if (gai_cancel(&r->cb) != EAI_NOTCANCELED) {
		/* cancelled, or done in the meantime: ours to free */
		if (r->cb.ar_result)
			freeaddrinfo(r->cb.ar_result);
		free(r);
		return WCCL_ETIMEDOUT;
	}
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, reap_lookup, r))
		WCCL_WARN(WCCL_SUB_INIT, "lookup of '%s' left running: %zu "
			  "bytes kept", r->host, sizeof(*r));
	pthread_attr_destroy(&attr);
	return WCCL_ETIMEDOUT;
}

int wccl_sock_resolve(const char *host, const char *port, int passive,
		      struct sockaddr_storage *ss, socklen_t *len)
{
	return resolve_until(host, port, passive, ss, len,
			     resolve_deadline());
}

static int resolve_until(const char *host, const char *port, int passive,
			 struct sockaddr_storage *ss, socklen_t *len,
			 uint64_t deadline_ns)
{
	struct addrinfo hints = {
	    .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST |
			(passive ? AI_PASSIVE : 0)};
	struct addrinfo *res = NULL;
	/* An address needs no lookup, and never waits. */
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc == EAI_NONAME) {
		/* A name: plain getaddrinfo would wait on a DNS server that
		 * does not answer for as long as resolv.conf says (5 s x
		 * attempts x servers), and nothing can stop it. */
		struct resolve_req *r = calloc(1, sizeof(*r));
		if (!r)
			return WCCL_ENOMEM;
		if (snprintf(r->host, sizeof(r->host), "%s", host) >=
			(int)sizeof(r->host) ||
		    snprintf(r->port, sizeof(r->port), "%s", port) >=
			(int)sizeof(r->port)) {
			free(r);
			return WCCL_EINVAL;
		}
		r->hints = hints;
		r->hints.ai_flags &= ~AI_NUMERICHOST;
		r->cb.ar_name = r->host;
		r->cb.ar_service = r->port;
		r->cb.ar_request = &r->hints;
		struct gaicb *list[1] = {&r->cb};
		rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
		if (rc) {
			free(r);
			WCCL_WARN(WCCL_SUB_INIT, "cannot resolve '%s' port "
				  "'%s': %s", host, port, gai_strerror(rc));
			return WCCL_EINVAL;
		}
		uint64_t t0 = wccl_now_ns();
		if (wait_lookup(r, deadline_ns)) {
			WCCL_WARN(WCCL_SUB_INIT, "cannot resolve '%s': no "
				  "answer from DNS in %llu ms (the caller's "
				  "deadline, or WCCL_RESOLVE_TIMEOUT_MS)",
				  host, (unsigned long long)((wccl_now_ns() -
							      t0) / 1000000));
			return WCCL_ETIMEDOUT;
		}
		rc = gai_error(&r->cb);
		res = r->cb.ar_result;
		free(r);
	}
	if (rc || !res) {
		WCCL_WARN(WCCL_SUB_INIT, "cannot resolve '%s' port '%s': %s",
			  host, port, rc ? gai_strerror(rc) : "no address");
		if (res)
			freeaddrinfo(res);
		return WCCL_EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

void wccl_sock_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%u", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%u", ip, port);
	} else {
		snprintf(buf, len, "(family %d)", sa->sa_family);
	}
}

static int neg_errno(int e)
{
	return e ? -e : WCCL_EIO;
}

int wccl_sock_listen(const char *addr, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc = wccl_sock_parse(addr, 0, &ss, &sl);
	if (rc)
		return rc;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			0);
	if (fd < 0)
		return neg_errno(errno);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, backlog)) {
		rc = neg_errno(errno);
		close(fd);
		return rc;
	}
	return fd;
}

int wccl_sock_local_addr(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl))
		return neg_errno(errno);
	wccl_sock_format((struct sockaddr *)&ss, buf, len);
	return 0;
}

static int remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = wccl_now_ns();
	if (now >= deadline_ns)
		return 0;
	uint64_t ms = (deadline_ns - now + 999999) / 1000000;
	return ms > 1000000 ? 1000000 : (int)ms;
}

/* Wait for @events on @fd; 0 when ready, -WCCL_ETIMEDOUT at the deadline. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int ms = remaining_ms(deadline_ns);
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return neg_errno(errno);
		if (n == 0 && ms == 0)
			return WCCL_ETIMEDOUT;
	}
}

int wccl_sock_connect(const char *addr, uint64_t deadline_ns)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	uint64_t lookup_end = resolve_deadline();
	int rc = parse_until(addr, 0, &ss, &sl,
			     deadline_ns < lookup_end ? deadline_ns
						      : lookup_end);
	if (rc)
		return rc;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			0);
	if (fd < 0)
		return neg_errno(errno);
	if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		rc = neg_errno(errno);
		goto fail;
	}
	rc = wait_fd(fd, POLLOUT, deadline_ns);
	if (rc)
		goto fail;
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		rc = -err;
		goto fail;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return rc;
}

int wccl_sock_send_all(int fd, const void *buf, size_t len,
		       uint64_t deadline_ns)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return errno == EPIPE || errno == ECONNRESET
				       ? WCCL_EPEER_LOST
				       : neg_errno(errno);
		int rc = wait_fd(fd, POLLOUT, deadline_ns);
		if (rc)
			return rc;
	}
	return 0;
}

int wccl_sock_recv_all(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
	char *p = buf;
	while (len) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return WCCL_EPEER_LOST;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return errno == ECONNRESET ? WCCL_EPEER_LOST
						   : neg_errno(errno);
		int rc = wait_fd(fd, POLLIN, deadline_ns);
		if (rc)
			return rc;
	}
	return 0;
}

int wccl_random_bytes(void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno(errno);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
