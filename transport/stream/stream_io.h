/* SPDX-License-Identifier: MIT */
#ifndef WCCL_STREAM_IO_H
#define WCCL_STREAM_IO_H

/*
 * The hand-off between a stream's network thread and its I/O thread (file
 * reads or writes and CRC32C), so disk and checksum work overlaps the
 * network:
 *
 *   network thread --- ring "to_io" (slot / job ids) ---> I/O thread
 *                  <-- ring "from_io" -------------------
 *
 * Single-producer single-consumer rings of 32-bit ids, sized at plan time
 * (a power of two >= the number of ids, so a push never fails); no locks,
 * no allocation. An idle I/O thread sleeps on a futex with a timeout and
 * is woken only when it said it sleeps. The network thread never sleeps
 * on the I/O thread: it polls from_io and bounds its CQ waits instead.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct stream_ring {
	uint32_t *id;
	uint32_t mask;
	_Alignas(64) uint32_t tail; /* written by the producer */
	_Alignas(64) uint32_t head; /* written by the consumer */
};

/* Capacity: the next power of two >= @n. Returns 0 or -ENOMEM. */
static inline int stream_ring_init(struct stream_ring *r, uint32_t n)
{
	uint32_t c = 1;
	while (c < n)
		c <<= 1;
	r->id = calloc(c, sizeof(uint32_t));
	r->mask = c - 1;
	r->head = r->tail = 0;
	return r->id ? 0 : -ENOMEM;
}

static inline void stream_ring_fini(struct stream_ring *r)
{
	free(r->id);
	r->id = NULL;
}

/* 0, or -1 when full (cannot happen when sized for every id). */
static inline int stream_ring_push(struct stream_ring *r, uint32_t v)
{
	uint32_t t = r->tail;
	if (t - __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) > r->mask)
		return -1;
	r->id[t & r->mask] = v;
	__atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
	return 0;
}

/* 0 and *@v, or -1 when empty. */
static inline int stream_ring_pop(struct stream_ring *r, uint32_t *v)
{
	uint32_t h = r->head;
	if (h == __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE))
		return -1;
	*v = r->id[h & r->mask];
	__atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
	return 0;
}

/* Entries in the ring now, as one side sees it (the other may be
 * changing it). */
static inline uint32_t stream_ring_count(struct stream_ring *r)
{
	return __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
}

static inline int stream_ring_empty(struct stream_ring *r)
{
	return __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) ==
	       __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

/* A doorbell for the I/O thread. */
struct stream_waker {
	uint32_t seq;
	uint32_t sleeping;
};

static inline uint32_t stream_waker_seen(struct stream_waker *w)
{
	return __atomic_load_n(&w->seq, __ATOMIC_SEQ_CST);
}

/* Sleep until kicked after @seen was read, at most @ms. */
static inline void stream_waker_wait(struct stream_waker *w, uint32_t seen,
				     int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (long)(ms % 1000) * 1000000L};
	__atomic_store_n(&w->sleeping, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&w->seq, __ATOMIC_SEQ_CST) == seen)
		syscall(SYS_futex, &w->seq, FUTEX_WAIT_PRIVATE, seen, &ts,
			NULL, 0);
	__atomic_store_n(&w->sleeping, 0, __ATOMIC_SEQ_CST);
}

/* After pushing work: a syscall only when the I/O thread sleeps. */
static inline void stream_waker_kick(struct stream_waker *w)
{
	__atomic_fetch_add(&w->seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&w->sleeping, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &w->seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
			0);
}

/* Join the I/O thread within @ms. 0 if it ended; -1 if it did not (a
 * system call that never returns, a hung filesystem): then it is detached,
 * and the caller must leave it everything it may still touch. */
static inline int stream_io_join(pthread_t t, int ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	if (!pthread_timedjoin_np(t, NULL, &dl))
		return 0;
	pthread_detach(t);
	return -1;
}

#endif
