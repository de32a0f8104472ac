/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLL_EXEC_H
#define WCCL_COLL_EXEC_H

#include "comm.h"

/* coll_buffers.c: set r->buf / r->send_base and copy inputs where the
 * schedule works on a copy; after the run, copy results out and finish
 * averages. Return 0 or a negative code. */
int coll_prepare_buffers(struct wccl_request *r);
int coll_finish_buffers(struct wccl_request *r);

/* Text naming who @r still waits for; returns that rank or -1, and
 * *@never_called = 1 when that rank has not even started the call. */
int coll_waiting_on(struct wccl_request *r, char *buf, size_t len,
		    int *never_called);

/* Fail @r (and the communicator), telling the other ranks. */
void coll_request_fail(struct wccl_request *r, int err);

#endif
