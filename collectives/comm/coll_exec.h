/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLL_EXEC_H
#define WCCL_COLL_EXEC_H

#include "comm.h"

/* coll_buffers.c: set r->buf / r->send_base and copy inputs where the
 * schedule works on a copy; after the run, copy results out and finish
 * averages. Return 0 or a negative code. */
int coll_prepare_buffers(struct wccl_request *r);
int coll_finish_buffers(struct wccl_request *r);

/* Text naming who @r still waits for; returns that rank or -1. */
int coll_waiting_on(struct wccl_request *r, char *buf, size_t len);

#endif
