/*
 * codex/record.h - the on-disk format of codex's journal (docs/CODEX.md).
 *
 * A segment file (seg-NNNNNNNNNNNNNNNN.log) is a 64-byte header followed by
 * records back to back, each 8-aligned:
 *
 *   0  u32 crc     crc32c of bytes [4, CX_REC_HDR + len) of this record
 *   4  u32 len     payload bytes
 *   8  u64 lsn     log sequence number: +1 per record over the whole log
 *  16  u64 seq     sequence number in its stream (1, 2, ...)
 *  24  u64 time    CLOCK_REALTIME ns at append (non-decreasing per stream)
 *  32  u32 stream  stream id (0: the meta stream that names the others)
 *  36  u16 type    CX_REC_DATA or CX_REC_STREAM
 *  38  u16 flags   CX_REC_F_SYNC: appended with durability `sync`
 *  40  payload, then zero padding to the next multiple of 8
 *
 * Everything here is pure: no I/O, so the parser is fuzzed as it is
 * (fuzz/codex) and recovery (store.c) only decides what to do with its
 * verdicts.  All integers little-endian.
 */
#ifndef CODEX_RECORD_H
#define CODEX_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CX_SEG_HDR        64u
#define CX_REC_HDR        40u
#define CX_REC_MAX        (256u << 10)   /* largest payload accepted */
#define CX_SEG_MAGIC      "THCODEX1"
#define CX_SEG_VERSION    1u

enum { CX_REC_DATA = 1, CX_REC_STREAM = 2 };
#define CX_REC_F_SYNC 1u

typedef struct cx_rec {
	uint32_t len;
	uint64_t lsn, seq, time_ns;
	uint32_t stream;
	uint16_t type, flags;
	const uint8_t *payload;         /* points into the parsed buffer */
} cx_rec_t;

typedef struct cx_seg_hdr {
	uint64_t seg_no;
	uint64_t first_lsn;
} cx_seg_hdr_t;

typedef enum cx_verdict {
	CX_OK = 0,
	CX_NEED_MORE = 1,       /* the buffer ends inside the record: torn tail */
	CX_BAD = 2,             /* checksum, length, type or lsn wrong: not a record */
} cx_verdict_t;

uint32_t cx_crc32c(uint32_t crc, const void *buf, size_t len);

/* Bytes a record with LEN payload bytes takes in the file (8-aligned). */
static inline size_t cx_rec_size(size_t len)
{
	return (CX_REC_HDR + len + 7u) & ~(size_t)7u;
}

/* Encode R (payload R->payload, R->len bytes) at OUT, which has room for
 * cx_rec_size(R->len) bytes; padding is zeroed. */
void cx_rec_encode(const cx_rec_t *r, uint8_t *out);

/* Parse the record at BUF (AVAIL bytes available).  EXPECT_LSN (0 = any)
 * must match.  On CX_OK *R points into BUF and *SIZE is cx_rec_size. */
cx_verdict_t cx_rec_parse(const uint8_t *buf, size_t avail, uint64_t expect_lsn, cx_rec_t *r,
			  size_t *size);

void cx_seg_hdr_encode(const cx_seg_hdr_t *h, uint8_t out[CX_SEG_HDR]);
/* CX_OK, CX_NEED_MORE (fewer than 64 bytes) or CX_BAD. */
cx_verdict_t cx_seg_hdr_parse(const uint8_t *buf, size_t avail, cx_seg_hdr_t *h);

/* Stream names: 1..63 bytes of [a-z0-9_.-], starting with a letter. */
bool cx_name_valid(const char *name, size_t len);

/* The payload of a CX_REC_STREAM record: u32 id, u32 budget_ms, name. */
#define CX_STREAM_PAYLOAD_FIXED 8u

static inline uint32_t cx_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t cx_le64(const uint8_t *p)
{
	return (uint64_t)cx_le32(p) | (uint64_t)cx_le32(p + 4) << 32;
}
static inline void cx_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void cx_put64(uint8_t *p, uint64_t v)
{
	cx_put32(p, (uint32_t)v);
	cx_put32(p + 4, (uint32_t)(v >> 32));
}

#endif
