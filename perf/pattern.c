/* SPDX-License-Identifier: MIT */
/*
 * -c data: byte o of iteration i is byte (o % 8) of the little-endian word
 * mix(i, o / 8), so a stale buffer, a shifted copy or a torn message all
 * show up at their first wrong byte.
 */
#include <stdio.h>
#include <string.h>

#include "perf.h"

static inline uint64_t word(uint64_t iter, uint64_t w)
{
	uint64_t x = (iter + 1) * 0x9e3779b97f4a7c15ull ^
		     (w + 1) * 0xd6e8feb86659fd93ull;
	return x ^ (x >> 32);
}

static inline uint64_t to_le(uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap64(v);
#else
	return v;
#endif
}

void perf_pattern_fill(uint8_t *buf, uint64_t len, uint64_t iter)
{
	uint64_t w = 0, v;
	for (; (w + 1) * 8 <= len; w++) {
		v = to_le(word(iter, w));
		memcpy(buf + w * 8, &v, 8);
	}
	if (w * 8 < len) {
		v = to_le(word(iter, w));
		memcpy(buf + w * 8, &v, len - w * 8);
	}
}

int perf_pattern_check(const uint8_t *buf, uint64_t len, uint64_t iter,
		       uint64_t *off, uint8_t *expect, uint8_t *got)
{
	for (uint64_t w = 0; w * 8 < len; w++) {
		uint64_t n = len - w * 8 < 8 ? len - w * 8 : 8;
		uint64_t v = to_le(word(iter, w));
		const uint8_t *want = (const uint8_t *)&v;
		if (memcmp(buf + w * 8, want, n) == 0)
			continue;
		for (uint64_t b = 0; b < n; b++)
			if (buf[w * 8 + b] != want[b]) {
				*off = w * 8 + b;
				*expect = want[b];
				*got = buf[w * 8 + b];
				return 1;
			}
	}
	return 0;
}

int perf_check_msg(struct perf_check *c, const uint8_t *buf, uint64_t want_len,
		   uint64_t got_len, uint64_t iter, const char *from)
{
	uint64_t off;
	uint8_t e, g;
	if (got_len != want_len) {
		off = got_len < want_len ? got_len : want_len;
		e = g = 0;
	} else if (!perf_pattern_check(buf, want_len, iter, &off, &e, &g)) {
		return 0;
	}
	if (!c->errors++) {
		c->bad_iter = iter;
		c->bad_off = off;
		c->expect = e;
		c->got = g;
		fprintf(
		    stderr,
		    "wccl-perf: data check failed on data from %s: "
		    "iteration %llu offset %llu: expected 0x%02x got 0x%02x "
		    "(%llu of %llu bytes)\n",
		    from, (unsigned long long)iter, (unsigned long long)off, e,
		    g, (unsigned long long)got_len,
		    (unsigned long long)want_len);
	}
	return 1;
}
