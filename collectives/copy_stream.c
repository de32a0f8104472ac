/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <string.h>

#include "collectives/copy_stream.h"

#if defined(__x86_64__)
#include <immintrin.h>

void wccl_copy_stream(void *dst, const void *src, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	/* Ordinary stores up to a 16-byte boundary of the destination. */
	size_t head = (16 - ((uintptr_t)d & 15)) & 15;
	if (head > len)
		head = len;
	memcpy(d, s, head);
	d += head;
	s += head;
	len -= head;
	for (; len >= 64; len -= 64, d += 64, s += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)s);
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(s + 32));
		__m128i e = _mm_loadu_si128((const __m128i *)(const void *)(s + 48));
		_mm_stream_si128((__m128i *)(void *)d, a);
		_mm_stream_si128((__m128i *)(void *)(d + 16), b);
		_mm_stream_si128((__m128i *)(void *)(d + 32), c);
		_mm_stream_si128((__m128i *)(void *)(d + 48), e);
	}
	memcpy(d, s, len);
}

void wccl_copy_stream_fence(void)
{
	_mm_sfence();
}
#else
void wccl_copy_stream(void *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
}

void wccl_copy_stream_fence(void)
{
}
#endif
