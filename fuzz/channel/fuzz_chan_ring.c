/*
 * fuzz_chan_ring - both sides of a channel on one mapping while the input
 * also scribbles over the shared memory (the hostile peer).  The input is a
 * program: each op byte picks legitimate traffic (send inline / send pool /
 * receive / release) on either side, or a write of arbitrary bytes at an
 * arbitrary offset of the mapping, or of an arbitrary value into one of the
 * ring indices.  Whatever happens, a side may only answer with an error:
 * every message it hands out must lie inside the mapping (checked here by
 * reading all of it), and nothing may crash or hang.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chan_shm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static chan_layout_t lay;
static uint8_t *base;

static void setup_once(void)
{
	if (base)
		return;
	thoth_chan_limits_t lim = { 8, 4096, 4 };
	if (chan_layout_compute(&lim, &lay))
		abort();
	int fd = memfd_create("fuzz-chan", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)lay.size) < 0)
		abort();
	base = chan_shm_map(fd, lay.size);   /* a guard page follows: overruns crash */
	close(fd);
	if (!base)
		abort();
}

typedef struct input {
	const uint8_t *p;
	size_t n;
} input_t;

static uint32_t take(input_t *in, unsigned bytes)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint32_t)*in->p << (8 * i);
	return v;
}

static volatile uint8_t sink;

/* Read every byte a side handed out: ASan/the guard page catch any overrun. */
static void consume(const chan_end_t *e, const thoth_msg_t *m)
{
	bool in_map = m->data >= base && m->data + m->len <= base + lay.size;
	bool in_copy = m->data == e->rx_copy && m->len <= sizeof e->rx_copy;  /* inline: copied out */
	if (!in_map && !in_copy)
		abort();
	uint8_t x = 0;
	for (size_t i = 0; i < m->len; i++)
		x ^= m->data[i];
	sink = x;
	thoth_msg_header_t h;
	(void)thoth_wire_header_decode(m->data, m->len, &h);
}

static void send_one(chan_end_t *e, size_t len)
{
	uint8_t *buf;
	if (chan_try_alloc(e, len, &buf))
		return;
	memset(buf, 0x5a, len);
	if (chan_try_send(e, buf, len))
		chan_discard(e, buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	memset(base, 0, lay.size);
	chan_shm_format(base, &lay);
	chan_end_t ends[2];
	if (chan_end_init(&ends[0], base, &lay, CHAN_CLIENT) ||
	    chan_end_init(&ends[1], base, &lay, CHAN_SERVER))
		abort();
	thoth_msg_t held[2][4];
	unsigned nheld[2] = { 0, 0 };
	input_t in = { data, size };
	for (unsigned steps = 0; in.n && steps < 4096; steps++) {
		uint32_t op = take(&in, 1);
		int s = op & 1;
		chan_end_t *e = &ends[s];
		switch ((op >> 1) % 8) {
		case 0:
			send_one(e, THOTH_WIRE_HEADER_SIZE + 8 * (take(&in, 1) % 26));
			break;
		case 1:
			send_one(e, 256 + take(&in, 2) % (4 * 4096));
			break;
		case 2: {
			thoth_msg_t m;
			if (!chan_try_recv(e, &m)) {
				consume(e, &m);
				if (nheld[s] < 4)
					held[s][nheld[s]++] = m;
				else
					chan_release(e, &m);
			}
			break;
		}
		case 3:
			while (nheld[s])
				chan_release(e, &held[s][--nheld[s]]);
			break;
		case 4: {       /* scribble: bytes at an offset */
			uint32_t off = take(&in, 4) % (uint32_t)lay.size;
			uint32_t n = take(&in, 1) % 16;
			for (uint32_t i = 0; i < n && off + i < lay.size; i++)
				base[off + i] = (uint8_t)take(&in, 1);
			break;
		}
		case 5: {       /* scribble: an index or flag of the control page */
			chan_ctl_t *c = (chan_ctl_t *)base;
			chan_dir_t *d = &c->dir[take(&in, 1) & 1];
			_Atomic uint32_t *f[] = { &d->head, &d->tail, &d->rel_head, &d->rel_tail,
						  &d->prod_waiting, &d->cons_waiting, &d->owner_waiting };
			atomic_store(f[take(&in, 1) % 7], take(&in, 4));
			break;
		}
		case 6:
			for (enum chan_cond cond = CHAN_WAIT_RECV; cond <= CHAN_WAIT_POOL; cond++)
				(void)chan_ready(e, cond, 5000);
			break;
		case 7: {
			uint8_t *buf;
			if (!chan_try_alloc(e, 4096 + take(&in, 2) % 8192, &buf))
				chan_discard(e, buf);
			break;
		}
		}
	}
	/* Messages read in place are never looked at again after release. */
	for (int s = 0; s < 2; s++)
		while (nheld[s])
			chan_release(&ends[s], &held[s][--nheld[s]]);
	chan_end_fini(&ends[0]);
	chan_end_fini(&ends[1]);
	return 0;
}
