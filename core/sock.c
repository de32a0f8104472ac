/* SPDX-License-Identifier: MIT */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <wccl/errors.h>

#include "clock.h"

int wccl_sock_parse(const char *addr, uint16_t default_port,
		    struct sockaddr_storage *ss, socklen_t *len)
{
	if (!addr || !*addr)
		return WCCL_EINVAL;
	char host[256], port[16];
	const char *colon;
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || (size_t)(end - addr - 1) >= sizeof(host))
			return WCCL_EINVAL;
		memcpy(host, addr + 1, (size_t)(end - addr - 1));
		host[end - addr - 1] = '\0';
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon)
			return WCCL_EINVAL;
	} else {
		colon = strrchr(addr, ':');
		size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
		if (n == 0 || n >= sizeof(host))
			return WCCL_EINVAL;
		memcpy(host, addr, n);
		host[n] = '\0';
	}
	if (colon) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end || p < 0 || p > 65535)
			return WCCL_EINVAL;
		snprintf(port, sizeof(port), "%ld", p);
	} else {
		snprintf(port, sizeof(port), "%u", default_port);
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
		return WCCL_EINVAL;
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
	int rc = wccl_sock_parse(addr, 0, &ss, &sl);
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
