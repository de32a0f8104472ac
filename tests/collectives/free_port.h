/* SPDX-License-Identifier: MIT */
#ifndef WCCL_TEST_FREE_PORT_H
#define WCCL_TEST_FREE_PORT_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sock.h"

/* A loopback port nobody listens on right now (bind to 0, read, close). */
static inline int test_free_port(void)
{
	int fd = wccl_sock_listen("127.0.0.1:0", 1);
	char addr[64];
	wccl_sock_local_addr(fd, addr, sizeof(addr));
	close(fd);
	return atoi(strrchr(addr, ':') + 1);
}

#endif
