/* SPDX-License-Identifier: MIT */
#ifndef WCCL_SOCK_H
#define WCCL_SOCK_H

/*
 * Plain TCP helpers for control paths (bootstrap, tools): every call that
 * can block takes an absolute deadline (core/clock.h nanoseconds) and
 * returns 0 or a negative wccl code; none touches errno for the caller.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Split "host:port", "[v6]:port" or "host" (then @default_port; NULL:
 * a port is required) into @host and @port (digits, at most 65535).
 * Returns 0 or WCCL_EINVAL (empty or too long a part, a bad port). */
int wccl_sock_split(const char *addr, const char *default_port, char *host,
		    size_t hlen, char *port, size_t plen);

/* Parse "host:port", "[v6]:port" or "host" (port = @default_port) into
 * @ss. Resolves names with wccl_sock_resolve. Returns 0, WCCL_EINVAL or
 * WCCL_ETIMEDOUT. */
int wccl_sock_parse(const char *addr, uint16_t default_port,
		    struct sockaddr_storage *ss, socklen_t *len);

/* @host (an address or a name) and numeric @port into @ss, for a stream
 * socket (@passive: for bind). A name's lookup is bounded by
 * WCCL_RESOLVE_TIMEOUT_MS. Returns 0, WCCL_EINVAL (unknown, logged),
 * WCCL_ETIMEDOUT (no answer, logged) or WCCL_ENOMEM. */
int wccl_sock_resolve(const char *host, const char *port, int passive,
		      struct sockaddr_storage *ss, socklen_t *len);

/* "ip:port" (or "[v6]:port") of @sa into @buf. */
void wccl_sock_format(const struct sockaddr *sa, char *buf, size_t len);

/* Listening TCP socket on @addr ("ip:port"; port 0 picks one), backlog
 * @backlog, close-on-exec, non-blocking. Returns the fd or a negative code. */
int wccl_sock_listen(const char *addr, int backlog);

/* The bound address of @fd as "ip:port"; with @public_host non-NULL the
 * host part is replaced by it (for 0.0.0.0 listeners). */
int wccl_sock_local_addr(int fd, char *buf, size_t len);

/* Connect to @addr by @deadline_ns (a name's lookup included, and no
 * longer than WCCL_RESOLVE_TIMEOUT_MS). Returns a connected blocking fd, or
 * -WCCL_ECONNREFUSED, -WCCL_ETIMEDOUT, -WCCL_EHOSTUNREACH, ... */
int wccl_sock_connect(const char *addr, uint64_t deadline_ns);

/* Send / receive exactly @len bytes by @deadline_ns. A closed peer gives
 * -WCCL_EPEER_LOST. */
int wccl_sock_send_all(int fd, const void *buf, size_t len,
		       uint64_t deadline_ns);
int wccl_sock_recv_all(int fd, void *buf, size_t len, uint64_t deadline_ns);

/* Fill @buf with @len bytes from the kernel's CSPRNG. */
int wccl_random_bytes(void *buf, size_t len);

#endif
