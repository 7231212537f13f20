/*
 * fuzz_rtable_reader - the client's reader of thothd's shared resolve
 * table (kernel/ipc/rtable_shm.c) on hostile memory: a valid table with a
 * few instances, then the input written over it (byte 0 even: over the
 * entries only, geometry intact; odd: over everything, header included),
 * then the checks a client makes (rt_view_init), lookups of fixed names
 * and of a name taken from the input (full lookups and a name handle's
 * kept answers), a list by a prefix of that name, and thothd's status
 * block.  The reader must answer with an
 * error or a bounded, NUL-terminated address: never crash, overrun or loop.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtable_shm.h"
#include "thoth/error.h"

enum { BUCKETS = 64 };

static uint8_t *pristine;
static size_t table_size;

static void build_pristine(void)
{
	rt_writer_t w;
	if (rt_writer_init(&w, BUCKETS, NULL, 0))
		abort();
	static const char *names[] = { "echo", "echo", "kv", "a" };
	for (unsigned i = 0; i < 4; i++) {
		rt_instance_t in = { .name = names[i], .name_len = strlen(names[i]), .addr = "/run/x.sock",
				     .addr_len = 11, .major = 1, .lease = i + 1, .expires_at_ns = UINT64_MAX };
		rt_writer_add(&w, &in);
	}
	table_size = w.size;
	pristine = aligned_alloc(4096, table_size);
	if (!pristine)
		abort();
	memcpy(pristine, w.base, table_size);
	rt_writer_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pristine)
		build_pristine();
	static uint8_t *buf;
	if (!buf && !(buf = aligned_alloc(4096, table_size)))
		abort();
	memcpy(buf, pristine, table_size);
	if (size) {
		size_t at = data[0] & 1 ? 0 : RT_HEADER_SIZE;
		size_t n = size - 1 < table_size - at ? size - 1 : table_size - at;
		memcpy(buf + at, data + 1, n);
	}
	rt_view_t v;
	char why[128];
	if (rt_view_init(&v, buf, table_size, why, sizeof why))
		return 0;
	char name[RT_NAME_MAX + 1] = "echo";
	if (size > 2) {
		size_t n = data[1] % (RT_NAME_MAX + 1);
		n = n < size - 2 ? n : size - 2;
		memcpy(name, data + 2, n);
		name[n] = 0;
	}
	const char *keys[] = { "echo", "kv", "a", name };
	for (unsigned i = 0; i < 4; i++) {
		rt_key_t k;
		if (rt_key_init(&k, keys[i], i == 1 ? "1.0.0" : NULL))
			continue;
		for (uint16_t node = 0; node < 3; node++) {
			rt_result_t r;
			int got = rt_lookup(&v, &k, node ? 9999 : 0, &r, NULL);
			if (got == 0 && (strlen(r.addr) == 0 || strlen(r.addr) > RT_ADDR_MAX))
				abort();        /* an answer is always a bounded, non-empty string */
		}
		/* A name handle's kept answers: the same checks, all of them. */
		static rt_name_t nm;
		rt_name_init(&nm, &k);
		int at = rt_name_refresh(&nm, &v, 0);
		if (at >= 0 && ((uint32_t)at >= nm.n || nm.n > RT_NAME_ANSWERS))
			abort();
		for (uint32_t a = 0; at >= 0 && a < nm.n; a++)
			if (strlen(nm.ans[a].addr) == 0 || strlen(nm.ans[a].addr) > RT_ADDR_MAX)
				abort();
		if (at >= 0 && nm.min_deadline == UINT64_MAX && rt_name_pick(&nm, &v, 0) < 0)
			abort();        /* nothing changed the table since */
	}
	/* A list of everything: bounded, checked strings. */
	static rt_listed_t all[64];
	size_t total = 0;
	int n = rt_list(&v, name, strlen(name) % 4, all, 64, &total, NULL);
	if (n > 64)
		abort();
	for (int i = 0; i < n; i++)
		if (strlen(all[i].name) > RT_NAME_MAX || !all[i].addr[0] || strlen(all[i].addr) > RT_ADDR_MAX)
			abort();
	/* thothd's status block (in the header): NUL-terminated strings. */
	rt_status_t st;
	if (rt_status_read(&v, &st) == 0 &&
	    (strlen(st.version) >= sizeof st.version || strlen(st.runtime_dir) >= sizeof st.runtime_dir ||
	     strlen(st.dashboard_url) >= sizeof st.dashboard_url))
		abort();
	(void)rt_generation(&v);
	return 0;
}
