/*
 * codex/record.c - record and segment-header framing, crc32c.
 */
#include "record.h"

#include <string.h>

/* crc32c (Castagnoli, reflected 0x82F63B78): SSE4.2's crc32 instruction when
 * the CPU has it (every x86-64 since 2008), else slicing by 8 tables. */
static uint32_t crc_tab[8][256];
static int crc_ready;           /* 0 unknown, 1 tables, 2 hardware */

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
	int mode = 1;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		mode = 2;
#endif
	__atomic_store_n(&crc_ready, mode, __ATOMIC_RELEASE);
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint32_t lo = c ^ cx_le32(p), hi = cx_le32(p + 4);
		c = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
		    crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
		    crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
	uint64_t c64 = c;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t cx_crc32c(uint32_t crc, const void *buf, size_t len)
{
	int mode = __atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE);
	if (!mode) {
		crc_init();     /* idempotent: racing threads compute the same tables */
		mode = __atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE);
	}
	uint32_t c = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (mode == 2)
		return ~crc_hw(c, buf, len);
#endif
	return ~crc_sw(c, buf, len);
}

void cx_rec_encode(const cx_rec_t *r, uint8_t *out)
{
	size_t size = cx_rec_size(r->len);
	cx_put32(out + 4, r->len);
	cx_put64(out + 8, r->lsn);
	cx_put64(out + 16, r->seq);
	cx_put64(out + 24, r->time_ns);
	cx_put32(out + 32, r->stream);
	out[36] = (uint8_t)r->type;
	out[37] = (uint8_t)(r->type >> 8);
	out[38] = (uint8_t)r->flags;
	out[39] = (uint8_t)(r->flags >> 8);
	if (r->len)
		memcpy(out + CX_REC_HDR, r->payload, r->len);
	memset(out + CX_REC_HDR + r->len, 0, size - CX_REC_HDR - r->len);
	cx_put32(out, cx_crc32c(0, out + 4, CX_REC_HDR - 4 + r->len));
}

cx_verdict_t cx_rec_parse(const uint8_t *buf, size_t avail, uint64_t expect_lsn, cx_rec_t *r,
			  size_t *size)
{
	if (avail < CX_REC_HDR)
		return CX_NEED_MORE;
	uint32_t len = cx_le32(buf + 4);
	/* A length beyond the limit is garbage, not a long record to wait for:
	 * a torn or zeroed header must never make recovery read past the end. */
	if (len > CX_REC_MAX)
		return CX_BAD;
	size_t need = cx_rec_size(len);
	if (avail < need)
		return CX_NEED_MORE;
	if (cx_crc32c(0, buf + 4, CX_REC_HDR - 4 + len) != cx_le32(buf))
		return CX_BAD;
	r->len = len;
	r->lsn = cx_le64(buf + 8);
	r->seq = cx_le64(buf + 16);
	r->time_ns = cx_le64(buf + 24);
	r->stream = cx_le32(buf + 32);
	r->type = (uint16_t)(buf[36] | buf[37] << 8);
	r->flags = (uint16_t)(buf[38] | buf[39] << 8);
	r->payload = buf + CX_REC_HDR;
	if ((r->type != CX_REC_DATA && r->type != CX_REC_STREAM) || r->flags & ~CX_REC_F_SYNC ||
	    r->lsn == 0 || r->seq == 0 || (expect_lsn && r->lsn != expect_lsn))
		return CX_BAD;
	if (r->type == CX_REC_STREAM && (r->stream != 0 || len < CX_STREAM_PAYLOAD_FIXED + 1))
		return CX_BAD;
	if (r->type == CX_REC_DATA && r->stream == 0)
		return CX_BAD;
	*size = need;
	return CX_OK;
}

void cx_seg_hdr_encode(const cx_seg_hdr_t *h, uint8_t out[CX_SEG_HDR])
{
	memset(out, 0, CX_SEG_HDR);
	memcpy(out, CX_SEG_MAGIC, 8);
	cx_put32(out + 8, CX_SEG_VERSION);
	cx_put64(out + 16, h->seg_no);
	cx_put64(out + 24, h->first_lsn);
	cx_put32(out + 60, cx_crc32c(0, out, 60));
}

cx_verdict_t cx_seg_hdr_parse(const uint8_t *buf, size_t avail, cx_seg_hdr_t *h)
{
	if (avail < CX_SEG_HDR)
		return CX_NEED_MORE;
	if (memcmp(buf, CX_SEG_MAGIC, 8) || cx_le32(buf + 8) != CX_SEG_VERSION ||
	    cx_crc32c(0, buf, 60) != cx_le32(buf + 60))
		return CX_BAD;
	h->seg_no = cx_le64(buf + 16);
	h->first_lsn = cx_le64(buf + 24);
	return h->first_lsn ? CX_OK : CX_BAD;
}

bool cx_name_valid(const char *name, size_t len)
{
	if (len < 1 || len > 63 || !(name[0] >= 'a' && name[0] <= 'z'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}
