/* SPDX-License-Identifier: MIT */
/* shm provider: ops table, context, CQ and MR objects, probe, describe. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/futex.h>

#include "core/mem.h"
#include "core/params.h"
#include "shm.h"

const uint64_t shm_probe_word = SHM_MAGIC;
/* Tests set this to exercise the no-CMA (streaming) path. */
int shm_cma_disabled;
uint64_t shm_cma_chunk = 4ull << 20;

/* ---- host identity ---------------------------------------------------- */

static char hostid[17];
static pthread_once_t hostid_once = PTHREAD_ONCE_INIT;

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* Same boot, same pid namespace (pids in hellos mean the same thing) and
 * same net namespace (abstract socket names are per net namespace). */
static void hostid_init(void)
{
	uint64_t h = 0xcbf29ce484222325ull;
	char boot[64] = { 0 };
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, boot, sizeof(boot) - 1);
		h = fnv1a(h, boot, n > 0 ? (size_t)n : 0);
		close(fd);
	}
	struct stat st;
	if (stat("/proc/self/ns/pid", &st) == 0)
		h = fnv1a(h, &st.st_ino, sizeof(st.st_ino));
	if (stat("/proc/self/ns/net", &st) == 0)
		h = fnv1a(h, &st.st_ino, sizeof(st.st_ino));
	snprintf(hostid, sizeof(hostid), "%016llx", (unsigned long long)h);
}

const char *shm_hostid(void)
{
	pthread_once(&hostid_once, hostid_init);
	return hostid;
}

/* ---- cross-memory attach ---------------------------------------------- */

int shm_cma_read(pid_t pid, void *dst, uint64_t src, uint64_t len)
{
	uint8_t *d = dst;
	while (len) {
		size_t n = len < shm_cma_chunk ? (size_t)len : (size_t)shm_cma_chunk;
		struct iovec l = { .iov_base = d, .iov_len = n };
		struct iovec r = { .iov_base = (void *)(uintptr_t)src,
				   .iov_len = n };
		ssize_t got = process_vm_readv(pid, &l, 1, &r, 1, 0);
		if (got <= 0) {
			if (got == 0)
				return WCCL_EFAULT;
			return errno == ESRCH ? WCCL_EPEER_LOST : -errno;
		}
		d += got;
		src += (uint64_t)got;
		len -= (uint64_t)got;
	}
	return 0;
}

int shm_cma_probe(pid_t pid, uint64_t probe_addr)
{
	uint64_t v = 0;
	if (shm_cma_disabled || pid <= 0)
		return 0;
	return shm_cma_read(pid, &v, probe_addr, sizeof(v)) == 0 &&
	       v == SHM_MAGIC;
}

/* ---- peer memfd mappings (direct path) --------------------------------- */

/* Map the peer's memfd @rfd (which must still be inode @ino) into @m. */
static uint8_t *shm_map_into(struct shm_ep *ep, struct shm_map *m, int32_t rfd,
			     uint64_t ino, int writable, uint64_t *size)
{
	int fd = (int)syscall(SYS_pidfd_getfd, ep->pidfd, rfd, 0);
	if (fd < 0) {
		if (errno == EPERM || errno == ENOSYS || errno == ESRCH ||
		    errno == EACCES) {
			WCCL_INFO(WCCL_SUB_SHM,
				  "pidfd_getfd on %s: %s; direct copies off",
				  ep->base.peer, wccl_strerror(-errno));
			ep->direct = 0;
		}
		return NULL;
	}
	struct stat st;
	void *p = MAP_FAILED;
	/* The number may have been reused: it must still be that memfd,
	 * and sealed, or its owner could shrink it under our mapping. */
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_ino == ino &&
	    S_ISREG(st.st_mode) && st.st_size > 0 && !shm_memfd_check(fd, 1))
		p = mmap(NULL, (size_t)st.st_size,
			 writable ? PROT_READ | PROT_WRITE : PROT_READ,
			 MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	m->base = p;
	m->size = (uint64_t)st.st_size;
	m->ino = ino;
	m->rfd = rfd;
	m->writable = writable;
	*size = m->size;
	return m->base;
}

static struct shm_map *shm_map_find(struct shm_map *maps, int n, int32_t rfd,
				    uint64_t ino, int writable,
				    struct shm_map **free_slot)
{
	for (int i = 0; i < n; i++) {
		struct shm_map *x = &maps[i];
		if (x->base && x->rfd == rfd && x->ino == ino &&
		    x->writable >= writable)
			return x;
		if (!*free_slot && !x->base)
			*free_slot = x;
	}
	return NULL;
}

uint8_t *shm_map_get(struct shm_ep *ep, int32_t rfd, uint64_t ino,
		     int writable, uint64_t *size)
{
	struct shm_map *m = NULL;
	struct shm_map *x = shm_map_find(ep->maps, SHM_MAPS, rfd, ino,
					 writable, &m);
	if (x) {
		x->used = ++ep->map_clock;
		*size = x->size;
		return x->base;
	}
	if (!ep->direct)
		return NULL;
	if (!m) {
		/* The least recently used: the last ones looked up (a
		 * transient map_remote's in and out) stay. */
		m = &ep->maps[0];
		for (int i = 1; i < SHM_MAPS; i++)
			if (ep->maps[i].used < m->used)
				m = &ep->maps[i];
		munmap(m->base, m->size);
		m->base = NULL;
	}
	m->used = ++ep->map_clock;
	return shm_map_into(ep, m, rfd, ino, writable, size);
}

uint8_t *shm_map_pinned(struct shm_ep *ep, int32_t rfd, uint64_t ino,
			int writable, uint64_t *size)
{
	struct shm_map *m = NULL;
	struct shm_map *x = shm_map_find(ep->pinned, SHM_PINNED, rfd, ino,
					 writable, &m);
	if (x) {
		*size = x->size;
		return x->base;
	}
	if (!ep->direct || !m)
		return NULL;
	return shm_map_into(ep, m, rfd, ino, writable, size);
}

void shm_maps_release(struct shm_ep *ep)
{
	for (int i = 0; i < SHM_MAPS; i++)
		if (ep->maps[i].base)
			munmap(ep->maps[i].base, ep->maps[i].size);
	for (int i = 0; i < SHM_PINNED; i++)
		if (ep->pinned[i].base)
			munmap(ep->pinned[i].base, ep->pinned[i].size);
	memset(ep->maps, 0, sizeof(ep->maps));
	memset(ep->pinned, 0, sizeof(ep->pinned));
}

/* ---- probe / describe / can_connect ----------------------------------- */

static int shm_probe(void)
{
	int fd = memfd_create("wccl-shm-probe", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(fd);
	uint32_t word = 0;
	/* Waiting for a value the word does not hold returns at once. */
	if (syscall(SYS_futex, &word, FUTEX_WAIT, 1, NULL, NULL, 0) == 0 ||
	    errno != EAGAIN)
		return WCCL_ENOSYS;
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* Autobind: the kernel picks an abstract name. */
	int rc = bind(s, (struct sockaddr *)&sa, sizeof(sa_family_t));
	rc = rc < 0 ? -errno : 0;
	close(s);
	return rc;
}

static int shm_can_connect(const char *addr)
{
	const char *id = shm_hostid();
	return strncmp(addr, id, 16) == 0 && addr[16] == ':';
}

static int shm_describe(char *buf, size_t len)
{
	int cma = !shm_cma_disabled &&
		  shm_cma_probe(getpid(), (uint64_t)(uintptr_t)&shm_probe_word);
	/* Yama >= 1 refuses CMA between unrelated processes: say so here,
	 * since the per-connection probe only logs at INFO. */
	char yama[8] = "";
	int fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t r = read(fd, yama, sizeof(yama) - 1);
		yama[r > 0 ? r : 0] = '\0';
		yama[strcspn(yama, "\n")] = '\0';
		close(fd);
	}
	int n = snprintf(buf, len,
			 "host-id %s, ring %llu bytes per direction, inline <= "
			 "%lld bytes, large payloads by %s%s%s%s",
			 shm_hostid(),
			 (unsigned long long)shm_ring_round(
				 (uint64_t)wccl_param_int(
					 WCCL_PARAM_SHM_RING_BYTES)),
			 (long long)wccl_param_int(WCCL_PARAM_SHM_INLINE_MAX),
			 cma ? "CMA (process_vm_readv, one copy)"
			     : "ring streaming (CMA unavailable)",
			 *yama ? " (yama ptrace_scope " : "", yama,
			 *yama ? ": unrelated peers may have to stream)" : "");
	return n < 0 ? WCCL_EINVAL : 0;
}

/* ---- context ---------------------------------------------------------- */

static int shm_context_open(struct wccl_context **out)
{
	struct shm_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return WCCL_ENOMEM;
	c->mrs = calloc(SHM_MR_MAX, sizeof(*c->mrs));
	if (!c->mrs) {
		free(c);
		return WCCL_ENOMEM;
	}
	for (uint32_t i = 0; i < SHM_MR_MAX; i++) {
		c->mrs[i].gen = 1;
		c->mrs[i].next_free = i + 1;
	}
	int rc = shm_doorbell_create(&c->db, &c->db_fd);
	if (!rc && (rc = shm_mrt_map(c->db_fd, 1, &c->mrt))) {
		shm_doorbell_unmap(c->db);
		close(c->db_fd);
	}
	if (rc) {
		free(c->mrs);
		free(c);
		return rc;
	}
	c->pid = getpid();
	int64_t qd = wccl_param_int(WCCL_PARAM_QUEUE_DEPTH);
	c->qdepth = (uint32_t)(qd < 1 ? 1 : qd > (1 << 20) ? (1 << 20) : qd);
	c->ring_bytes =
		shm_ring_round((uint64_t)wccl_param_int(WCCL_PARAM_SHM_RING_BYTES));
	int64_t im = wccl_param_int(WCCL_PARAM_SHM_INLINE_MAX);
	/* An inline message must fit a quarter ring so wraparound works. */
	uint64_t im_cap = c->ring_bytes / 4 - sizeof(struct shm_msg);
	c->inline_max = (uint32_t)(im < 0 ? 0 : (uint64_t)im > im_cap ? im_cap
								    : (uint64_t)im);
	c->cma = !shm_cma_disabled &&
		 shm_cma_probe(c->pid, (uint64_t)(uintptr_t)&shm_probe_word);
	if (!c->cma)
		WCCL_INFO(WCCL_SUB_SHM,
			  "CMA (process_vm_readv) unavailable: large payloads "
			  "stream through the ring (two copies)");
	*out = &c->base;
	return 0;
}

static void shm_context_close(struct wccl_context *base)
{
	struct shm_ctx *c = shm_ctx_of(base);
	shm_mrt_unmap(c->mrt);
	shm_doorbell_unmap(c->db);
	close(c->db_fd);
	free(c->mrs);
	free(c);
}

/* ---- CQ --------------------------------------------------------------- */

static int shm_cq_create(struct wccl_context *ctx, uint32_t depth,
			 struct wccl_cq **out)
{
	(void)ctx;
	uint32_t cap = 16;
	while (cap < depth && cap < (1u << 30))
		cap <<= 1;
	struct shm_cq *cq = calloc(1, sizeof(*cq));
	if (!cq)
		return WCCL_ENOMEM;
	cq->wc = calloc(cap, sizeof(*cq->wc));
	if (!cq->wc) {
		free(cq);
		return WCCL_ENOMEM;
	}
	cq->mask = cap - 1;
	*out = &cq->base;
	return 0;
}

static void shm_cq_destroy(struct wccl_cq *base)
{
	struct shm_cq *cq = shm_cq_of(base);
	free(cq->wc);
	free(cq);
}

/* ---- memory regions --------------------------------------------------- */

static int shm_mr_register(struct wccl_context *ctx, void *addr, size_t len,
			   uint32_t access, struct wccl_mr **out)
{
	struct shm_ctx *c = shm_ctx_of(ctx);
	if (c->mr_free >= SHM_MR_MAX)
		return WCCL_ENOSPC;
	struct shm_mr *mr = calloc(1, sizeof(*mr));
	if (!mr)
		return WCCL_ENOMEM;
	uint32_t slot = c->mr_free;
	struct shm_mr_slot *s = &c->mrs[slot];
	c->mr_free = s->next_free;
	/* The core fills these after we return; lookups need them now. */
	mr->base.addr = addr;
	mr->base.len = len;
	mr->base.access = access;
	mr->base.key = (uint64_t)s->gen << 32 | slot;
	mr->slot = slot;
	mr->mem_fd = -1;
	s->mr = &mr->base;
	/* In wccl_mem memory: publish where, so peers can copy directly. */
	int fd;
	uint64_t off;
	struct stat st;
	if (len && wccl_mem_lookup(addr, len, &fd, &off) == 0 &&
	    fstat(fd, &st) == 0) {
		mr->mem_fd = fd;
		mr->mem_ino = (uint64_t)st.st_ino;
		mr->mem_off = off;
		struct shm_mrt_ent *e = &c->mrt[slot];
		e->access = access;
		e->len = len;
		e->mem_ino = mr->mem_ino;
		e->mem_off = off;
		e->mem_fd = fd;
		atomic_store_explicit(&e->gen, s->gen, memory_order_release);
	}
	*out = &mr->base;
	return 0;
}

static void shm_mr_deregister(struct wccl_mr *base)
{
	struct shm_mr *mr = container_of(base, struct shm_mr, base);
	struct shm_ctx *c = shm_ctx_of(base->ctx);
	struct shm_mr_slot *s = &c->mrs[mr->slot];
	/* Peers validating against the table see the key die first. */
	atomic_store_explicit(&c->mrt[mr->slot].gen, 0, memory_order_seq_cst);
	/* Then no peer's write lands there any more. */
	shm_forget_mr(c, base->key);
	s->mr = NULL;
	s->gen = s->gen + 1 ? s->gen + 1 : 1;
	s->next_free = c->mr_free;
	c->mr_free = mr->slot;
	free(mr);
}

struct wccl_mr *shm_mr_lookup(struct shm_ctx *c, uint64_t key)
{
	uint32_t slot = (uint32_t)key;
	if (slot >= SHM_MR_MAX)
		return NULL;
	struct shm_mr_slot *s = &c->mrs[slot];
	return s->mr && s->gen == (uint32_t)(key >> 32) ? s->mr : NULL;
}

/* ---- the table -------------------------------------------------------- */

const struct wccl_provider wccl_provider_shm = {
	.name = "shm",
	.description = "same host: shared-memory rings, CMA single-copy",
	.priority = 100,
	.caps = WCCL_CAP_SEND_RECV | WCCL_CAP_WRITE | WCCL_CAP_WRITE_IMM |
		WCCL_CAP_ZCOPY_RX | WCCL_CAP_SAME_HOST,
	.ctrl = {
		.accept = shm_accept,
		.can_connect = shm_can_connect,
		.connect = shm_connect,
		.context_close = shm_context_close,
		.context_open = shm_context_open,
		.cq_create = shm_cq_create,
		.cq_destroy = shm_cq_destroy,
		.cq_sleep = shm_cq_sleep,
		.describe = shm_describe,
		.endpoint_close = shm_endpoint_close,
		.established = shm_established,
		.listen = shm_listen,
		.listener_addr = shm_listener_addr,
		.listener_close = shm_listener_close,
		.mr_deregister = shm_mr_deregister,
		.map_remote = shm_map_remote,
		.mr_register = shm_mr_register,
		.probe = shm_probe,
	},
	.fast = {
		.cq_poll = shm_cq_poll,
		.post_recv = shm_post_recv,
		.post_send = shm_post_send,
		.post_write = shm_post_write,
	},
};
