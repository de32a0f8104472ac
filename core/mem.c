/* SPDX-License-Identifier: MIT */
/*
 * Shareable memory: each allocation is its own memfd, mapped MAP_SHARED,
 * so a same-host provider can map it into a peer. A small locked list of
 * live allocations answers wccl_mem_lookup (control path only).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/mem.h"
#include "wccl/transport.h"

struct wccl_mem_block {
	struct wccl_mem_block *next;
	uint8_t *base;
	size_t len; /* mapped bytes, page multiple */
	int fd;
	uint64_t id; /* never reused, unlike addresses and fd numbers */
};

static uint64_t next_id = 1;
/* Bumped by every wccl_mem_free, read without the lock by registration
 * caches (wccl_mem_frees) to learn that something may be gone. */
static _Atomic uint64_t mem_frees;

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wccl_mem_block *mem_blocks;

int wccl_mem_alloc(size_t len, void **ptr)
{
	if (!ptr || !len)
		return WCCL_EINVAL;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	if (len > SIZE_MAX - pg)
		return WCCL_ENOMEM;
	size_t rounded = (len + pg - 1) & ~(pg - 1);
	struct wccl_mem_block *b = malloc(sizeof(*b));
	if (!b)
		return WCCL_ENOMEM;
	/* Sealed at its size: peers map it (shm), and one that shrank
	 * under their mapping would fault them. */
	int fd = memfd_create("wccl-mem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		int rc = -errno;
		free(b);
		return rc;
	}
	if (ftruncate(fd, (off_t)rounded) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
		    0) {
		int rc = -errno;
		close(fd);
		free(b);
		return rc == WCCL_EINVAL || rc == -EFBIG ? WCCL_ENOMEM : rc;
	}
	void *p = mmap(NULL, rounded, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       0);
	if (p == MAP_FAILED) {
		close(fd);
		free(b);
		return WCCL_ENOMEM;
	}
	b->base = p;
	b->len = rounded;
	b->fd = fd;
	pthread_mutex_lock(&mem_lock);
	b->id = next_id++;
	b->next = mem_blocks;
	mem_blocks = b;
	pthread_mutex_unlock(&mem_lock);
	*ptr = p;
	return 0;
}

int wccl_mem_free(void *ptr)
{
	if (!ptr)
		return 0;
	pthread_mutex_lock(&mem_lock);
	struct wccl_mem_block **pp = &mem_blocks;
	while (*pp && (*pp)->base != ptr)
		pp = &(*pp)->next;
	struct wccl_mem_block *b = *pp;
	if (b)
		*pp = b->next;
	pthread_mutex_unlock(&mem_lock);
	if (!b)
		return WCCL_EINVAL;
	atomic_fetch_add_explicit(&mem_frees, 1, memory_order_release);
	munmap(b->base, b->len);
	close(b->fd);
	free(b);
	return 0;
}

int wccl_mem_lookup(const void *addr, size_t len, int *fd, uint64_t *offset)
{
	uintptr_t a = (uintptr_t)addr;
	int rc = WCCL_ENOENT;
	pthread_mutex_lock(&mem_lock);
	for (struct wccl_mem_block *b = mem_blocks; b; b = b->next) {
		uintptr_t base = (uintptr_t)b->base;
		if (a >= base && a - base <= b->len && len <= b->len - (a - base)) {
			*fd = b->fd;
			*offset = a - base;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&mem_lock);
	return rc;
}

int wccl_mem_find(const void *addr, size_t len, struct wccl_mem_span *span)
{
	uintptr_t a = (uintptr_t)addr;
	int rc = WCCL_ENOENT;
	pthread_mutex_lock(&mem_lock);
	for (struct wccl_mem_block *b = mem_blocks; b; b = b->next) {
		uintptr_t base = (uintptr_t)b->base;
		if (a >= base && a - base <= b->len &&
		    len <= b->len - (a - base)) {
			span->base = b->base;
			span->len = b->len;
			span->id = b->id;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&mem_lock);
	return rc;
}

uint64_t wccl_mem_frees(void)
{
	return atomic_load_explicit(&mem_frees, memory_order_acquire);
}
