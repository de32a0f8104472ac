/* SPDX-License-Identifier: MIT */
#ifndef WCCL_SHM_RING_H
#define WCCL_SHM_RING_H

/*
 * Single-producer single-consumer byte ring in shared memory, carrying
 * variable-size messages: a 64-byte header plus optional inline payload,
 * each rounded up to a cache line. A message that would straddle the end
 * is preceded by a PAD message filling the tail end, so every message is
 * contiguous.
 *
 *   shared: [ head line ][ tail line ][ data (power of two bytes) ...... ]
 *   head = bytes produced (producer writes, release), tail = bytes consumed
 *   (consumer writes, release); both only grow.
 *
 * Each side keeps a private view (struct shm_ring) with its own position
 * and a cached copy of the other side's index, so the common case touches
 * one shared line per message.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SHM_LINE 64u

enum shm_msg_type {
	SHM_MSG_PAD = 1, /* filler up to the end of the ring */
	SHM_MSG_SEND,    /* two-sided message */
	SHM_MSG_WRITE,   /* one-sided write */
	SHM_MSG_FRAG,    /* a chunk of a streamed SEND/WRITE payload */
	SHM_MSG_ACK,     /* target done with op seq; status 0 or error */
	SHM_MSG_CMA,     /* control: status = 1 if the sender can read us */
};

enum shm_msg_flags {
	SHM_F_INLINE = 1u << 0, /* payload follows the header */
	SHM_F_IMM = 1u << 1,    /* write with immediate */
	SHM_F_STREAM = 1u << 2, /* payload follows as FRAG messages */
	SHM_F_DIRECT = 1u << 3, /* WRITE: already copied into our mapping of
				 * the target; SEND: payload is in wccl_mem
				 * (key = memfd inode, resv2 = its fd number,
				 * resv3 = offset in it) */
};

struct shm_msg {
	uint32_t size; /* bytes in the ring, header included, multiple of 64 */
	uint8_t type;  /* enum shm_msg_type */
	uint8_t flags; /* enum shm_msg_flags */
	uint16_t resv;
	uint32_t seq;  /* initiator's op sequence number */
	int32_t status;
	uint64_t len;  /* SEND/WRITE: payload bytes; FRAG: bytes in this chunk */
	uint64_t key;  /* WRITE: target's mr key */
	uint64_t offset; /* WRITE: offset in region; FRAG: offset in payload */
	uint64_t src;  /* initiator's address of the payload (for CMA) */
	uint32_t imm;
	uint32_t resv2;
	uint64_t resv3;
};

_Static_assert(sizeof(struct shm_msg) == SHM_LINE, "header is one line");

struct shm_ring_shared {
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) uint8_t data[];
};

struct shm_ring {
	struct shm_ring_shared *sh;
	uint8_t *data;
	uint64_t size;   /* power of two */
	uint64_t mask;
	uint64_t pos;    /* producer: next head; consumer: next tail */
	uint64_t cached; /* producer: last tail seen; consumer: last head seen */
};

/* Bytes of shared memory a ring with @data_bytes of data needs. */
static inline size_t shm_ring_footprint(uint64_t data_bytes)
{
	return sizeof(struct shm_ring_shared) + data_bytes;
}

/* The largest ring (data bytes) a peer may ask for. */
#define SHM_RING_MAX (1ull << 40)

/* Round a requested size to what a ring uses: a power of two >= 64 KiB. */
uint64_t shm_ring_round(uint64_t bytes);

/* Zero the shared indices of a fresh ring at @mem. */
void shm_ring_init(void *mem);

/* Attach a private producer or consumer view to the ring at @mem. */
void shm_ring_attach(struct shm_ring *r, void *mem, uint64_t data_bytes);

/* Bytes a message with @payload inline bytes occupies in the ring. */
static inline uint32_t shm_msg_bytes(uint64_t payload)
{
	return (uint32_t)((sizeof(struct shm_msg) + payload + SHM_LINE - 1) &
			  ~(uint64_t)(SHM_LINE - 1));
}

/*
 * Producer: room for a message of @bytes (from shm_msg_bytes)? Returns
 * where to write it or NULL if the ring is full right now. Nothing is
 * visible to the consumer until shm_ring_commit().
 */
static inline struct shm_msg *shm_ring_reserve(struct shm_ring *r,
					       uint32_t bytes)
{
	uint64_t off = r->pos & r->mask;
	uint64_t to_end = r->size - off;
	uint64_t need = bytes <= to_end ? bytes : to_end + bytes;
	if (r->pos + need - r->cached > r->size) {
		r->cached = atomic_load_explicit(&r->sh->tail,
						 memory_order_acquire);
		if (r->pos + need - r->cached > r->size)
			return NULL;
	}
	if (need != bytes) {
		struct shm_msg *pad = (struct shm_msg *)(r->data + off);
		pad->size = (uint32_t)to_end;
		pad->type = SHM_MSG_PAD;
		r->pos += to_end;
		off = 0;
	}
	return (struct shm_msg *)(r->data + off);
}

/* Producer: publish the message just written (its size field set). */
static inline void shm_ring_commit(struct shm_ring *r, uint32_t bytes)
{
	r->pos += bytes;
	atomic_store_explicit(&r->sh->head, r->pos, memory_order_release);
}

/*
 * Consumer: the oldest message, or NULL if none. Its header is copied to
 * @h first, and only the copy is checked and used: the peer can rewrite
 * its ring at any time, and a field read twice could pass the check and
 * then be something else. A message whose size is malformed (a corrupt
 * or hostile peer) is reported through *@bad. The inline payload follows
 * the returned header in the ring.
 */
static inline const struct shm_msg *shm_ring_peek(struct shm_ring *r,
						  struct shm_msg *h, int *bad)
{
	for (;;) {
		if (r->pos == r->cached) {
			r->cached = atomic_load_explicit(&r->sh->head,
							 memory_order_acquire);
			if (r->pos == r->cached)
				return NULL;
		}
		uint64_t off = r->pos & r->mask;
		const struct shm_msg *m =
			(const struct shm_msg *)(r->data + off);
		memcpy(h, m, sizeof(*h));
		uint32_t sz = h->size;
		if (sz < SHM_LINE || sz % SHM_LINE || sz > r->size - off ||
		    sz > r->cached - r->pos) {
			*bad = 1;
			return NULL;
		}
		if (h->type != SHM_MSG_PAD)
			return m;
		r->pos += sz;
		atomic_store_explicit(&r->sh->tail, r->pos,
				      memory_order_release);
	}
}

/* Consumer: done with the message whose header shm_ring_peek() copied
 * to @h. */
static inline void shm_ring_release(struct shm_ring *r, const struct shm_msg *h)
{
	r->pos += h->size;
	atomic_store_explicit(&r->sh->tail, r->pos, memory_order_release);
}

/* Consumer: anything to read? (for the sleep path) */
static inline int shm_ring_readable(const struct shm_ring *r)
{
	return atomic_load_explicit(&r->sh->head, memory_order_acquire) !=
	       r->pos;
}

#endif
