/* SPDX-License-Identifier: MIT */
#ifndef WCCL_COLLECTIVES_COPY_STREAM_H
#define WCCL_COLLECTIVES_COPY_STREAM_H

#include <stddef.h>

/*
 * memcpy with non-temporal stores (x86-64; plain memcpy elsewhere): for
 * data written once and not read again soon, in buffers larger than the
 * last-level cache. Ordinary stores read each destination line before
 * writing it, doubling the memory traffic of a copy out of cache. The
 * stores are weakly ordered: call wccl_copy_stream_fence() before
 * publishing the data (a release store of a flag is not enough).
 */
void wccl_copy_stream(void *dst, const void *src, size_t len);
void wccl_copy_stream_fence(void);

#endif
