/* SPDX-License-Identifier: MIT */
/*
 * Context doorbell: one shared page with a futex word. Peers map it and
 * wake the owner only when it has said it is sleeping, so a busy receiver
 * costs senders one fence and one load per batch. The same memfd carries
 * the owner's published region table after the doorbell page.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

#define SHM_DB_BYTES 4096

int shm_memfd_sealed(const char *name, size_t len)
{
	int f = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (f < 0)
		return -errno;
	if (ftruncate(f, (off_t)len) < 0 ||
	    fcntl(f, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
		    0) {
		int rc = -errno;
		close(f);
		return rc;
	}
	return f;
}

int shm_memfd_check(int fd, uint64_t len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	int seals = fcntl(fd, F_GET_SEALS);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < len || seals < 0 ||
	    !(seals & F_SEAL_SHRINK))
		return WCCL_EPROTO;
	return 0;
}

int shm_doorbell_map(int fd, struct shm_doorbell **db)
{
	int rc = shm_memfd_check(fd, SHM_DB_BYTES);
	if (rc)
		return rc;
	void *p = mmap(NULL, SHM_DB_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*db = p;
	return 0;
}

int shm_doorbell_create(struct shm_doorbell **db, int *fd)
{
	int f = shm_memfd_sealed("wccl-shm-doorbell",
				 SHM_DB_BYTES + SHM_MRT_BYTES);
	if (f < 0)
		return f;
	int rc = shm_doorbell_map(f, db);
	if (rc) {
		close(f);
		return rc;
	}
	*fd = f;
	return 0;
}

int shm_mrt_map(int fd, int owner, struct shm_mrt_ent **mrt)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < SHM_DB_BYTES + SHM_MRT_BYTES)
		return WCCL_EPROTO;
	void *p = mmap(NULL, SHM_MRT_BYTES,
		       owner ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
		       fd, SHM_DB_BYTES);
	if (p == MAP_FAILED)
		return -errno;
	*mrt = p;
	return 0;
}

void shm_mrt_unmap(struct shm_mrt_ent *mrt)
{
	if (mrt)
		munmap(mrt, SHM_MRT_BYTES);
}

void shm_doorbell_unmap(struct shm_doorbell *db)
{
	if (db)
		munmap(db, SHM_DB_BYTES);
}

void shm_doorbell_wake(struct shm_doorbell *db)
{
	atomic_fetch_add_explicit(&db->seq, 1, memory_order_seq_cst);
	/* Not FUTEX_PRIVATE: the word is shared between processes. */
	syscall(SYS_futex, &db->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

int shm_doorbell_wait(struct shm_doorbell *db, int timeout_ms,
		      int (*has_work)(void *), void *arg)
{
	atomic_store_explicit(&db->sleeping, 1, memory_order_seq_cst);
	/* Pairs with shm_doorbell_ring's fence: the ring loads in has_work
	 * (acquire only) must not move above the flag store. */
	atomic_thread_fence(memory_order_seq_cst);
	uint32_t v = atomic_load_explicit(&db->seq, memory_order_seq_cst);
	if (!has_work(arg)) {
		struct timespec ts = { .tv_sec = timeout_ms / 1000,
				       .tv_nsec = (timeout_ms % 1000) *
						  1000000L };
		syscall(SYS_futex, &db->seq, FUTEX_WAIT, v, &ts, NULL, 0);
	}
	atomic_store_explicit(&db->sleeping, 0, memory_order_relaxed);
	return 0;
}
