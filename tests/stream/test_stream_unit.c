/* SPDX-License-Identifier: MIT */
/* Pure pieces of the streaming engine: CRC32C (both implementations),
 * the pacing model, pipe sizing and the resume journal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "transport/stream/crc32c.h"
#include "transport/stream/stream.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn f)
{
	uint8_t buf[64];
	assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(f(0, "", 0), 0);
	memset(buf, 0, 32); /* RFC 3720 B.4 */
	assert_int_equal(f(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, 32);
	assert_int_equal(f(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(f(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(f(0, buf, 32), 0x113FDB5Cu);
	/* Combining chunk CRCs equals one pass. */
	assert_int_equal(
	    wccl_crc32c_combine(f(0, "12345", 5), f(0, "6789", 4), 4),
	    0xE3069283u);
	assert_int_equal(wccl_crc32c_combine(f(0, "123456789", 9), 0, 0),
			 0xE3069283u);
	/* Chaining equals one pass. */
	assert_int_equal(f(f(0, "12345", 5), "6789", 4), 0xE3069283u);
}

static void test_crc_sw(void **state)
{
	(void)state;
	check_vectors(wccl_crc32c_sw);
}

static void test_crc_hw(void **state)
{
	(void)state;
	if (!wccl_crc32c_have_hw())
		skip();
	check_vectors(wccl_crc32c_hw);
}

static void test_crc_agree(void **state)
{
	(void)state;
	size_t n = 1 << 20;
	uint8_t *b = malloc(n + 16);
	assert_non_null(b);
	for (size_t i = 0; i < n + 16; i++)
		b[i] = (uint8_t)(i * 2654435761u >> 13);
	/* every alignment and tail length */
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 40; len++)
			assert_int_equal(wccl_crc32c_sw(7, b + off, len),
					 wccl_crc32c_hw(7, b + off, len));
	assert_int_equal(wccl_crc32c_sw(0, b + 3, n), wccl_crc32c(0, b + 3, n));
	/* whole = combine of uneven pieces */
	uint32_t whole = wccl_crc32c(0, b, n), acc = 0;
	for (size_t o = 0, piece = 1; o < n;
	     o += piece, piece = piece * 3 + 7) {
		size_t len = piece < n - o ? piece : n - o;
		acc = wccl_crc32c_combine(acc, wccl_crc32c(0, b + o, len), len);
	}
	assert_int_equal(acc, whole);
	/* one flipped bit is always caught */
	uint32_t c = wccl_crc32c(0, b, n);
	b[n / 2] ^= 0x10;
	assert_int_not_equal(c, wccl_crc32c(0, b, n));
	free(b);
}

/* A fixed 100 MB/s, 40 ms pipe: the model must find the rate and keep
 * the window near 2 x BDP; queueing delay above the target slows it. */
static void test_cc_converges(void **state)
{
	(void)state;
	struct pace_model cc;
	uint64_t chunk = 1 << 20, rate = 100000000, rtt = 40000000;
	pace_model_init(&cc, 0, 5000000, 2 * chunk, 4 * chunk);
	assert_int_equal(cc.pacing_rate, 0); /* unpaced until a sample */
	uint64_t now = 1000000000, delivered = 0;
	for (int i = 0; i < 2000; i++) {
		uint64_t prior = delivered;
		delivered += chunk;
		now += chunk * 1000000000ull / rate;
		pace_model_on_ack(&cc, now, rtt, rate,
				  prior > 4 * chunk ? prior - 4 * chunk : 0,
				  delivered, 2 * chunk);
	}
	assert_int_equal(cc.phase, 2);
	assert_true(cc.btlbw == rate);
	assert_true(cc.pacing_rate >= rate * 3 / 4 &&
		    cc.pacing_rate <= rate * 5 / 4);
	double bdp = (double)rate * 0.04;
	assert_true(cc.cwnd >= (uint64_t)bdp && cc.cwnd <= (uint64_t)(3 * bdp));
	/* 50 ms of queue, over the target (chunk RTTs: at least 10 ms, plus
	 * the window floor's own 21 ms): the rate must drop. */
	uint64_t before = cc.pacing_rate;
	for (int i = 0; i < 50; i++) {
		now += 50000000;
		delivered += chunk;
		pace_model_on_ack(&cc, now, rtt + 50000000, rate,
				  delivered - chunk, delivered, 4 * chunk);
	}
	assert_true(cc.pacing_rate < before * 3 / 4);
	assert_true(cc.qfactor >= 0.25);
}

/* The path probe drives the delay target on a long path: a queue above
 * the target scales the rate down, an empty one lets it back up; on a
 * short path (loopback) its samples change nothing. */
static void test_cc_probe(void **state)
{
	(void)state;
	struct pace_model cc;
	uint64_t chunk = 1 << 20, rate = 25000000, rtt = 40000000;
	pace_model_init(&cc, 0, 1000000, 2 * chunk, 4 * chunk);
	uint64_t now = 1000000000, delivered = 0;
	for (int i = 0; i < 400; i++) {
		uint64_t prior = delivered;
		delivered += chunk;
		now += chunk * 1000000000ull / rate;
		pace_model_on_ack(&cc, now, rtt + 40000000, rate,
				  prior > 4 * chunk ? prior - 4 * chunk : 0,
				  delivered, chunk);
		pace_model_on_probe(&cc, now, rtt);
	}
	assert_true(pace_model_long_path(&cc));
	assert_int_equal(cc.phase, 2);
	uint64_t calm = cc.pacing_rate;
	assert_true(calm >= rate * 9 / 10 && calm <= rate * 11 / 10);
	/* 5 ms of queue over a 1 ms target, for a second: down, to the
	 * factor's floor (0.8 of the rate). */
	for (int i = 0; i < 100; i++) {
		now += 10000000;
		pace_model_on_probe(&cc, now, rtt + 5000000);
	}
	assert_true(cc.pacing_rate < calm * 85 / 100); /* floor 0.8 */
	/* Empty again: back up within a few seconds. */
	for (int i = 0; i < 500; i++) {
		now += 10000000;
		pace_model_on_probe(&cc, now, rtt);
	}
	assert_true(cc.qfactor > 0.99);

	/* A path that jitters by itself (+-2 ms per direction, no queue)
	 * must not be read as a queue for long. */
	uint32_t x = 12345;
	for (int i = 0; i < 1000; i++) {
		now += 10000000;
		x = x * 1103515245u + 12345u;
		uint64_t j1 = (x >> 8) % 4000000, j2 = (x >> 4) % 4000000;
		pace_model_on_probe(&cc, now, rtt - 4000000 + j1 + j2);
	}
	assert_true(cc.qfactor > 0.8);

	struct pace_model lo;
	pace_model_init(&lo, 0, 1000000, 2 * chunk, 4 * chunk);
	pace_model_on_ack(&lo, 1000, 100000, rate, 0, chunk, 0);
	for (int i = 0; i < 100; i++)
		pace_model_on_probe(&lo, 2000 + (uint64_t)i * 1000000,
				    50000 + (i & 1) * 3000000);
	assert_false(pace_model_long_path(&lo));
	assert_true(lo.qfactor == 1.0);
}

static void test_cc_cap(void **state)
{
	(void)state;
	struct pace_model cc;
	pace_model_init(&cc, 1000000, 0, 1 << 21, 1 << 22);
	assert_int_equal(cc.pacing_rate, 1000000);
	pace_model_on_ack(&cc, 10, 1000000, 50000000, 0, 1 << 20, 0);
	assert_int_equal(cc.pacing_rate, 1000000);
}

static void test_size_pipe(void **state)
{
	(void)state;
	int n, d;
	stream_size_pipe(50000, 125000000, 1 << 20, 64, &n, &d); /* loopback */
	assert_int_equal(n, 1);
	assert_true(d >= 2 && d <= 8);
	stream_size_pipe(40000000, 125000000, 1 << 20, 64, &n,
			 &d); /* 40 ms, 1G */
	assert_true(n >= 4 && n <= 8);
	assert_true(d >= 2 * n && d >= 9);
	stream_size_pipe(150000000, 1250000000, 1 << 20, 64, &n, &d);
	assert_int_equal(n, 8);
	assert_int_equal(d, 64);
}

static void test_journal(void **state)
{
	(void)state;
	char path[] = "/tmp/wccl-journal-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct stream_journal j;
	int resumed;
	assert_int_equal(
	    stream_journal_open(&j, path, 10 << 20, 1234, 1 << 20, 1, &resumed),
	    0);
	assert_int_equal(resumed, 0);
	assert_int_equal(j.nchunks, 10);
	stream_journal_set(&j, 0);
	stream_journal_set(&j, 7);
	stream_journal_set(&j, 7);
	assert_int_equal(j.verified, 2);
	assert_int_equal(stream_journal_flush(&j), 0);
	stream_journal_close(&j);
	/* same source: bits come back */
	assert_int_equal(
	    stream_journal_open(&j, path, 10 << 20, 1234, 1 << 20, 1, &resumed),
	    0);
	assert_int_equal(resumed, 1);
	assert_int_equal(j.verified, 2);
	assert_true(stream_journal_has(&j, 7) && !stream_journal_has(&j, 6));
	stream_journal_close(&j);
	/* changed mtime: start over */
	assert_int_equal(
	    stream_journal_open(&j, path, 10 << 20, 1235, 1 << 20, 1, &resumed),
	    0);
	assert_int_equal(resumed, 0);
	assert_int_equal(j.verified, 0);
	stream_journal_close(&j);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc_sw),
	    cmocka_unit_test(test_crc_hw),
	    cmocka_unit_test(test_crc_agree),
	    cmocka_unit_test(test_cc_converges),
	    cmocka_unit_test(test_cc_cap),
	    cmocka_unit_test(test_cc_probe),
	    cmocka_unit_test(test_size_pipe),
	    cmocka_unit_test(test_journal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
