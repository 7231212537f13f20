/*
 * wire_frame.c - struct frames, out-of-line objects and their verifier
 * (docs/WIRE.md, "Body").
 *
 * The builder appends; it never moves what it wrote, so body offsets stay
 * valid.  The decoder trusts nothing: every offset is checked against the
 * body before it is dereferenced, and every object reached is charged to a
 * traversal budget equal to the body length.
 */
#include "thoth/wire.h"

/* ---- arena ------------------------------------------------------------- */

void *thoth_arena_alloc(thoth_arena_t *a, size_t n)
{
	size_t start = thoth_wire_pad8(a->used);
	if (!a->buf || start > a->cap || n > a->cap - start)
		return NULL;
	a->used = start + n;
	memset(a->buf + start, 0, n);
	return a->buf + start;
}

/* ---- UTF-8 ------------------------------------------------------------- */

int thoth_wire_check_utf8(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		/* ASCII fast path: eight bytes with no high bit and no zero byte. */
		if (len - i >= 8) {
			uint64_t v;
			memcpy(&v, s + i, 8);
			uint64_t zero = (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
			if (((v & 0x8080808080808080ull) | zero) == 0) {
				i += 8;
				continue;
			}
		}
		uint8_t c = s[i];
		if (c == 0)
			return THOTH_E_BAD_NUL;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			n = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return THOTH_E_BAD_UTF8;
		}
		if (len - i < n)
			return THOTH_E_BAD_UTF8;
		for (size_t k = 1; k < n; k++) {
			uint8_t cc = s[i + k];
			if ((cc & 0xc0) != 0x80)
				return THOTH_E_BAD_UTF8;
			cp = (cp << 6) | (cc & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return THOTH_E_BAD_UTF8;
		i += n;
	}
	return 0;
}

/* ---- builder ------------------------------------------------------------ */

void thoth_builder_init(thoth_builder_t *b, void *buf, size_t cap)
{
	b->buf = buf;
	b->cap = cap;
	b->len = THOTH_WIRE_HEADER_SIZE;
	b->err = 0;
	if (!buf || cap < THOTH_WIRE_HEADER_SIZE)
		b->err = THOTH_E_NO_SPACE;
	else if ((uintptr_t)buf & (THOTH_WIRE_ALIGN - 1))
		b->err = THOTH_E_BAD_ALIGN;
	else
		memset(buf, 0, THOTH_WIRE_HEADER_SIZE);
}

int thoth_builder_alloc(thoth_builder_t *b, size_t n, uint32_t *off)
{
	if (b->err)
		return b->err;
	size_t start = thoth_wire_pad8(b->len);
	size_t body_start = start - THOTH_WIRE_HEADER_SIZE;
	if (n > THOTH_WIRE_MAX_BODY || body_start + n > THOTH_WIRE_MAX_BODY)
		return b->err = THOTH_E_TOO_LARGE;
	if (start > b->cap || n > b->cap - start)
		return b->err = THOTH_E_NO_SPACE;
	memset(b->buf + b->len, 0, start - b->len + n);
	b->len = start + n;
	*off = (uint32_t)body_start;
	return 0;
}

int thoth_builder_frame(thoth_builder_t *b, uint32_t fixed_size, uint32_t field_count,
			uint32_t *off)
{
	int r = thoth_builder_alloc(b, 8u + (size_t)fixed_size, off);
	if (r)
		return r;
	uint8_t *p = thoth_builder_at(b, *off);
	thoth_st32(p, fixed_size);
	thoth_st32(p + 4, field_count);
	return 0;
}

int thoth_builder_str(thoth_builder_t *b, uint32_t slot, thoth_str_t s)
{
	if (b->err)
		return b->err;
	if (s.len == 0) {
		thoth_builder_ptr(b, slot, 0, 0);
		return 0;
	}
	if (!s.ptr)
		return b->err = THOTH_E_INVAL;
	int r = thoth_wire_check_utf8((const uint8_t *)s.ptr, s.len);
	if (r)
		return b->err = r;
	uint32_t off;
	r = thoth_builder_alloc(b, (size_t)s.len + 1, &off);
	if (r)
		return r;
	memcpy(thoth_builder_at(b, off), s.ptr, s.len); /* NUL already zeroed */
	thoth_builder_ptr(b, slot, off, s.len);
	return 0;
}

int thoth_builder_bytes(thoth_builder_t *b, uint32_t slot, const thoth_bytes_t *v)
{
	if (b->err)
		return b->err;
	if (v->len == 0) {
		thoth_builder_ptr(b, slot, 0, 0);
		if (v->reserve)
			*v->reserve = NULL;
		return 0;
	}
	if (!v->ptr && !v->reserve)
		return b->err = THOTH_E_INVAL;
	uint32_t off;
	int r = thoth_builder_alloc(b, v->len, &off);
	if (r)
		return r;
	if (v->reserve)
		*v->reserve = thoth_builder_at(b, off);
	else
		memcpy(thoth_builder_at(b, off), v->ptr, v->len);
	thoth_builder_ptr(b, slot, off, v->len);
	return 0;
}

int thoth_builder_list(thoth_builder_t *b, uint32_t slot, const void *items, uint32_t count,
		       uint32_t elem_size, uint32_t *off)
{
	if (b->err)
		return b->err;
	*off = 0;
	if (count == 0) {
		thoth_builder_ptr(b, slot, 0, 0);
		return 0;
	}
	uint64_t size = (uint64_t)count * elem_size;
	if (size > THOTH_WIRE_MAX_BODY)
		return b->err = THOTH_E_TOO_LARGE;
	int r = thoth_builder_alloc(b, (size_t)size, off);
	if (r)
		return r;
	if (items)
		memcpy(thoth_builder_at(b, *off), items, (size_t)size);
	thoth_builder_ptr(b, slot, *off, count);
	return 0;
}

int thoth_builder_finish(thoth_builder_t *b, const thoth_msg_header_t *h, size_t *len)
{
	if (b->err)
		return b->err;
	/* The body is padded to 8 so that concatenated messages stay aligned. */
	size_t end = thoth_wire_pad8(b->len);
	if (end > b->cap)
		return b->err = THOTH_E_NO_SPACE;
	memset(b->buf + b->len, 0, end - b->len);
	b->len = end;
	thoth_msg_header_t hh = *h;
	hh.magic = THOTH_WIRE_MAGIC;
	hh.body_len = (uint32_t)(end - THOTH_WIRE_HEADER_SIZE);
	thoth_wire_header_encode(b->buf, &hh);
	*len = end;
	return 0;
}

/* ---- decoder ------------------------------------------------------------ */

void thoth_decoder_init(thoth_decoder_t *d, const uint8_t *body, uint32_t len, thoth_arena_t *arena)
{
	d->body = body;
	d->len = len;
	d->budget = len;
	d->arena = arena;
	d->aligned = ((uintptr_t)body & (THOTH_WIRE_ALIGN - 1)) == 0;
}

static int charge(thoth_decoder_t *d, uint64_t n)
{
	if (n > d->budget)
		return THOTH_E_ALIASED;
	d->budget -= n;
	return 0;
}

int thoth_decoder_frame(thoth_decoder_t *d, uint32_t off, uint32_t expect_len,
			uint32_t *fixed_size, uint32_t *field_count)
{
	if (off & (THOTH_WIRE_ALIGN - 1))
		return THOTH_E_BAD_ALIGN;
	if (off > d->len || d->len - off < 8)
		return expect_len ? THOTH_E_BAD_LENGTH : THOTH_E_TRUNCATED;
	uint32_t fixed = thoth_le32(d->body + off);
	uint32_t count = thoth_le32(d->body + off + 4);
	if (fixed & (THOTH_WIRE_ALIGN - 1))
		return THOTH_E_BAD_ALIGN;
	if (fixed > d->len - off - 8)
		return expect_len ? THOTH_E_BAD_LENGTH : THOTH_E_TRUNCATED;
	if (expect_len && (uint64_t)expect_len != 8ull + fixed)
		return THOTH_E_BAD_LENGTH;
	int r = charge(d, 8ull + fixed);
	if (r)
		return r;
	*fixed_size = fixed;
	*field_count = count;
	return 0;
}

int thoth_decoder_ptr(thoth_decoder_t *d, uint32_t slot, uint32_t elem_size,
		      uint32_t *off, uint32_t *count)
{
	uint32_t o = thoth_le32(d->body + slot);
	uint32_t n = thoth_le32(d->body + slot + 4);
	if (n == 0) {
		if (o != 0)
			return THOTH_E_BAD_LENGTH;  /* canonical form: empty means {0,0} */
		*off = 0;
		*count = 0;
		return 0;
	}
	uint64_t size = (uint64_t)n * elem_size;
	if (o & (THOTH_WIRE_ALIGN - 1))
		return THOTH_E_BAD_ALIGN;
	if (o > d->len || size > d->len - o)
		return THOTH_E_BAD_LENGTH;
	int r = charge(d, size);
	if (r)
		return r;
	*off = o;
	*count = n;
	return 0;
}

int thoth_decoder_str(thoth_decoder_t *d, uint32_t slot, thoth_str_t *out)
{
	uint32_t off, n;
	int r = thoth_decoder_ptr(d, slot, 1, &off, &n);
	if (r)
		return r;
	if (n == 0) {
		out->ptr = "";
		out->len = 0;
		return 0;
	}
	if ((uint64_t)off + n >= d->len)       /* no room for the terminator */
		return THOTH_E_BAD_NUL;
	if (d->body[off + n] != 0)
		return THOTH_E_BAD_NUL;
	r = thoth_wire_check_utf8(d->body + off, n);
	if (r)
		return r;
	out->ptr = (const char *)d->body + off;
	out->len = n;
	return 0;
}

int thoth_decoder_bytes(thoth_decoder_t *d, uint32_t slot, thoth_bytes_t *out)
{
	uint32_t off, n;
	int r = thoth_decoder_ptr(d, slot, 1, &off, &n);
	if (r)
		return r;
	out->ptr = n ? d->body + off : NULL;
	out->len = n;
	out->reserve = NULL;
	return 0;
}

int thoth_decoder_scalar_list(thoth_decoder_t *d, uint32_t slot, uint32_t elem_size,
			      const void **items, uint32_t *count)
{
	uint32_t off, n;
	int r = thoth_decoder_ptr(d, slot, elem_size, &off, &n);
	if (r)
		return r;
	*count = n;
	if (n == 0) {
		*items = NULL;
		return 0;
	}
	if (d->aligned) {
		*items = d->body + off;
		return 0;
	}
	void *copy = thoth_arena_alloc(d->arena, (size_t)n * elem_size);
	if (!copy)
		return THOTH_E_NO_SPACE;
	memcpy(copy, d->body + off, (size_t)n * elem_size);
	*items = copy;
	return 0;
}
