/* SPDX-License-Identifier: MIT */
/*
 * --local: fork the server, read its address from a pipe, run the client
 * here, then reap the server within the timeout. The fork happens before
 * this process opens any wccl object.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "perf.h"

/* Read the NUL-terminated address; "" if the server died first. */
static int read_addr(int fd, char *addr, size_t len, int timeout_ms)
{
	size_t got = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (got < len) {
		int n = poll(&p, 1, timeout_ms);
		if (n == 0) {
			fprintf(stderr,
				"wccl-perf: the local server gave no "
				"address within %d ms\n",
				timeout_ms);
			return WCCL_ETIMEDOUT;
		}
		if (n < 0)
			return WCCL_EIO;
		ssize_t r = read(fd, addr + got, len - got);
		if (r <= 0)
			return WCCL_EIO; /* it printed why */
		got += (size_t)r;
		if (memchr(addr, '\0', got))
			return 0;
	}
	return WCCL_EINVAL;
}

/* Wait for @pid up to @timeout_ms, then kill it. Returns its exit code. */
static int reap(pid_t pid, int timeout_ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, timeout_ms) == 0) {
			fprintf(stderr,
				"wccl-perf: the local server did not "
				"finish within %d ms; killing it\n",
				timeout_ms);
			kill(pid, SIGKILL);
		}
		close(fd);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return 1;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

int perf_local_run(const struct perf_opts *o)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC))
		return WCCL_EIO;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return WCCL_ENOMEM;
	}
	if (pid == 0) {
		close(fds[0]);
		int rc = perf_server_run(o, fds[1]);
		fflush(NULL);
		_exit(rc ? 1 : 0);
	}
	close(fds[1]);
	char addr[WCCL_ADDR_MAX];
	int rc = read_addr(fds[0], addr, sizeof(addr), o->timeout_ms);
	close(fds[0]);
	if (!rc) {
		struct perf_opts c = *o;
		c.host = addr;
		c.local = false;
		rc = perf_client_run(&c);
	}
	/* A failed client gives the server a moment to say its part. */
	int st = reap(pid, rc ? 1000 : o->timeout_ms);
	if (!rc && st) {
		fprintf(stderr,
			"wccl-perf: the local server failed (status "
			"%d)\n",
			st);
		rc = WCCL_EIO;
	}
	return rc;
}
