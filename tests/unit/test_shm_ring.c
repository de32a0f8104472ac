/* SPDX-License-Identifier: MIT */
/* The shm provider's SPSC message ring, in one process. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "transport/shm/shm_ring.h"

#define RING (64u * 1024)

struct pair {
	void *mem;
	struct shm_ring tx, rx;
};

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	p->mem = aligned_alloc(64, shm_ring_footprint(RING));
	memset(p->mem, 0x5a, shm_ring_footprint(RING)); /* no zero-luck */
	shm_ring_init(p->mem);
	shm_ring_attach(&p->tx, p->mem, RING);
	shm_ring_attach(&p->rx, p->mem, RING);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;
	free(p->mem);
	free(p);
	return 0;
}

static uint8_t pat(uint32_t seq, uint64_t i)
{
	return (uint8_t)(seq * 31 + i * 7);
}

/* Send message @seq with @len payload bytes; 0 if the ring is full. */
static int put(struct shm_ring *r, uint32_t seq, uint64_t len)
{
	uint32_t bytes = shm_msg_bytes(len);
	struct shm_msg *m = shm_ring_reserve(r, bytes);
	if (!m)
		return 0;
	m->size = bytes;
	m->type = SHM_MSG_SEND;
	m->seq = seq;
	m->len = len;
	uint8_t *d = (uint8_t *)(m + 1);
	for (uint64_t i = 0; i < len; i++)
		d[i] = pat(seq, i);
	shm_ring_commit(r, bytes);
	return 1;
}

/* Take one message; returns its seq or -1 if empty. Checks the payload. */
static int64_t get(struct shm_ring *r)
{
	int bad = 0;
	struct shm_msg h;
	const struct shm_msg *at = shm_ring_peek(r, &h, &bad);
	assert_int_equal(bad, 0);
	if (!at)
		return -1;
	const struct shm_msg *m = &h;
	assert_int_equal(m->type, SHM_MSG_SEND);
	const uint8_t *d = (const uint8_t *)(at + 1);
	for (uint64_t i = 0; i < m->len; i++)
		if (d[i] != pat(m->seq, i))
			fail_msg("payload byte %llu of message %u differs",
				 (unsigned long long)i, m->seq);
	int64_t seq = m->seq;
	shm_ring_release(r, m);
	return seq;
}

static void ring_round_trips_one_message(void **state)
{
	struct pair *p = *state;
	assert_int_equal(get(&p->rx), -1);
	assert_false(shm_ring_readable(&p->rx));
	assert_true(put(&p->tx, 7, 100));
	assert_true(shm_ring_readable(&p->rx));
	assert_int_equal(get(&p->rx), 7);
	assert_int_equal(get(&p->rx), -1);
}

static void ring_wraps_with_padding(void **state)
{
	struct pair *p = *state;
	/* 4160-byte messages do not divide 64 KiB: every lap ends in a PAD. */
	uint32_t seq = 0;
	for (int lap = 0; lap < 100; lap++) {
		for (int i = 0; i < 5; i++)
			assert_true(put(&p->tx, seq + (uint32_t)i, 4096));
		for (int i = 0; i < 5; i++)
			assert_int_equal(get(&p->rx), seq + (uint32_t)i);
		seq += 5;
	}
	assert_true(p->tx.pos > 5 * RING);
	assert_int_equal(p->tx.pos, p->rx.pos);
}

static void ring_full_refuses_then_recovers(void **state)
{
	struct pair *p = *state;
	uint32_t n = 0;
	while (put(&p->tx, n, 0))
		n++;
	assert_int_equal(n, RING / SHM_LINE); /* every line used, none lost */
	assert_false(put(&p->tx, n, 0));
	assert_int_equal(get(&p->rx), 0);
	assert_true(put(&p->tx, n, 0));
	/* A big message needs contiguous room: after one line is freed at
	 * the start it still does not fit. */
	assert_false(put(&p->tx, n + 1, 4096));
	for (uint32_t i = 1; i <= n; i++)
		assert_int_equal(get(&p->rx), i);
	assert_int_equal(get(&p->rx), -1);
}

static void ring_carries_many_mixed_messages(void **state)
{
	struct pair *p = *state;
	uint32_t sent = 0, got = 0;
	uint64_t lcg = 1;
	while (got < 200000) {
		lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
		int burst = (int)(lcg >> 60);
		for (int i = 0; i < burst; i++) {
			uint64_t len = (lcg >> 33) % 4097;
			if (!put(&p->tx, sent, len))
				break;
			sent++;
		}
		int take = (int)((lcg >> 56) & 15);
		for (int i = 0; i < take; i++) {
			int64_t s = get(&p->rx);
			if (s < 0)
				break;
			assert_int_equal(s, got);
			got++;
		}
	}
}

static void ring_flags_malformed_size(void **state)
{
	struct pair *p = *state;
	assert_true(put(&p->tx, 1, 10));
	struct shm_msg *m = (struct shm_msg *)p->tx.data;
	m->size = 65; /* not a multiple of a line */
	int bad = 0;
	struct shm_msg h;
	assert_null(shm_ring_peek(&p->rx, &h, &bad));
	assert_int_equal(bad, 1);
	m->size = RING * 2; /* past what was produced */
	bad = 0;
	assert_null(shm_ring_peek(&p->rx, &h, &bad));
	assert_int_equal(bad, 1);
}

#define THREAD_MSGS 1000000u

static void *producer(void *arg)
{
	struct pair *p = arg;
	for (uint32_t i = 0; i < THREAD_MSGS;) {
		if (put(&p->tx, i, i % 61))
			i++;
	}
	return NULL;
}

static void ring_two_threads(void **state)
{
	struct pair *p = *state;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, producer, p), 0);
	for (uint32_t i = 0; i < THREAD_MSGS;) {
		int64_t s = get(&p->rx);
		if (s < 0)
			continue;
		assert_int_equal(s, i);
		i++;
	}
	pthread_join(t, NULL);
	assert_int_equal(get(&p->rx), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ring_round_trips_one_message,
						setup, teardown),
		cmocka_unit_test_setup_teardown(ring_wraps_with_padding, setup,
						teardown),
		cmocka_unit_test_setup_teardown(ring_full_refuses_then_recovers,
						setup, teardown),
		cmocka_unit_test_setup_teardown(ring_carries_many_mixed_messages,
						setup, teardown),
		cmocka_unit_test_setup_teardown(ring_flags_malformed_size, setup,
						teardown),
		cmocka_unit_test_setup_teardown(ring_two_threads, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
