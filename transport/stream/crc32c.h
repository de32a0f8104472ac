/* SPDX-License-Identifier: MIT */
#ifndef WCCL_STREAM_CRC32C_H
#define WCCL_STREAM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * CRC32C (Castagnoli, reflected 0x82F63B78), as iSCSI and ext4 use it.
 * wccl_crc32c(0, "123456789", 9) == 0xE3069283. Chain calls by passing the
 * previous result as @crc. The SSE4.2 crc32 instruction (three streams
 * at once on large buffers) is used when the CPU has it and it is the
 * faster (timed once at run time), else an 8-slice table.
 */
uint32_t wccl_crc32c(uint32_t crc, const void *buf, size_t len);

/* CRC32C of A||B from crc(A), crc(B) and B's length: O(log len2), no data.
 * Lets a sender checksum the whole file from its chunks' CRCs. */
uint32_t wccl_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

/* The two implementations, for tests. hw returns the sw result when the
 * CPU lacks SSE4.2; wccl_crc32c_have_hw() says which. */
uint32_t wccl_crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t wccl_crc32c_hw(uint32_t crc, const void *buf, size_t len);
int wccl_crc32c_have_hw(void);
/* 1 if wccl_crc32c() uses the instruction: it has it and, timed once on
 * 64 KiB at first use, it beat the table (it may not under emulation). */
int wccl_crc32c_uses_hw(void);

#endif
