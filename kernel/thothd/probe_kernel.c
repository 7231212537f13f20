/*
 * probe_kernel.c - kernel probes held by thothd (OBS-2, docs/PROBES.md
 * "Kernel hooks"): an object's tracepoint/, raw_tp/, kprobe/ and uprobe/
 * programs loaded into Linux through libbpf, their links and maps owned by
 * thothd.
 *
 * Why thothd and not the thothctl that asked: a BPF link lives as long as
 * some process holds its fd (or a bpffs pin).  Held by a thothctl, it dies
 * with the command; pinned, it outlives everybody, and a crashed thothctl
 * leaves kernel programs running that nothing lists or detaches.  thothd
 * already owns every other probe: it lists them, detaches them, and when
 * thothd itself dies the kernel closes its fds and the programs go with it.
 * A probe loaded for one `thothctl probe kernel --duration` run is "held"
 * by that connection as well: it is detached when the connection closes,
 * so a thothctl killed mid-run leaves nothing attached.
 *
 * Everything here runs on thothd's loop thread (libbpf's print callback is
 * process-global: one load at a time is what we have).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe_kernel.h"
#include "thoth/error.h"

/* The kernel sections: one list whether or not thothd was built with
 * libbpf (the two builds had a copy each). */
bool thothd_kprobe_section(const char *sec)
{
	static const char *const prefixes[] = { "tracepoint/", "tp/", "raw_tp/", "raw_tracepoint/",
		                                "uprobe", "uretprobe", "kprobe/", "kretprobe/" };
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
		if (strncmp(sec, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

#ifdef THOTH_HAVE_LIBBPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

enum { MAX_LINKS = 64 };

struct thothd_kprobe {
	struct bpf_object *obj;
	struct bpf_link *links[MAX_LINKS];
	struct bpf_program *lprogs[MAX_LINKS];   /* the program of each link */
	char *progs[MAX_LINKS];         /* "SECTION (function)" of each attached program */
	size_t n_links;
	struct bpf_map *maps[64];
	size_t n_maps;
	void *bytes;                    /* the object (libbpf reads it until load) */
};

bool thothd_kprobe_available(void)
{
	return true;
}

/* libbpf's messages (the kernel verifier's log among them), kept for the
 * answer when something fails; debug chatter is dropped. */
static char klog[32768];
static size_t klog_len;

__attribute__((format(printf, 2, 0)))
static int klog_fn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || klog_len >= sizeof klog - 1)
		return 0;
	int n = vsnprintf(klog + klog_len, sizeof klog - klog_len, fmt, ap);
	if (n > 0)
		klog_len += (size_t)n < sizeof klog - klog_len ? (size_t)n
							       : sizeof klog - 1 - klog_len;
	return 0;
}

/* The log's last LEN-1 bytes (the reason is at its end), after PREFIX. */
static void klog_tail(char *out, size_t len, const char *prefix)
{
	size_t p = (size_t)snprintf(out, len, "%s", prefix);
	if (p >= len)
		return;
	size_t room = len - p - 1, from = klog_len > room ? klog_len - room : 0;
	memcpy(out + p, klog + from, klog_len - from);
	out[p + klog_len - from] = '\0';
}

void thothd_kprobe_free(thothd_kprobe_t *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n_links; i++) {
		bpf_link__destroy(k->links[i]);
		free(k->progs[i]);
	}
	bpf_object__close(k->obj);
	free(k->bytes);
	free(k);
}

int thothd_kprobe_load(const void *bytes, size_t len, const char *name, thothd_kprobe_t **out,
		       char *msg, size_t msg_len)
{
	*out = NULL;
	msg[0] = '\0';
	thothd_kprobe_t *k = calloc(1, sizeof *k);
	if (!k || !(k->bytes = malloc(len))) {
		free(k);
		return THOTH_E_NOMEM;
	}
	memcpy(k->bytes, bytes, len);
	klog_len = 0;
	klog[0] = '\0';
	libbpf_print_fn_t old = libbpf_set_print(klog_fn);
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = name);
	int r = 0;
	k->obj = bpf_object__open_mem(k->bytes, len, &oo);
	if (!k->obj) {
		int e = errno;
		char pre[128];
		snprintf(pre, sizeof pre, "libbpf cannot open it (%s): ", strerror(e));
		klog_tail(msg, msg_len, pre);
		r = THOTH_E_INVAL;
		goto out;
	}
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, k->obj)
		if (!thothd_kprobe_section(bpf_program__section_name(prog)))
			bpf_program__set_autoload(prog, false);   /* thoth/: ours, not Linux's */
	if (bpf_object__load(k->obj)) {
		int e = errno;
		/* The kernel verifier's refusals are EACCES too: its log tells them apart. */
		bool verifier = strstr(klog, "PROG LOAD LOG") != NULL;
		if (!verifier && (e == EPERM || e == EACCES)) {
			snprintf(msg, msg_len, "loading into the kernel was not permitted (%s): thothd "
				 "needs root, or CAP_BPF and CAP_PERFMON", strerror(e));
			r = THOTH_E_PERM;
		} else {
			char pre[160];
			snprintf(pre, sizeof pre, "the kernel refused it (%s); libbpf and the kernel "
				 "verifier said:\n", strerror(e));
			klog_tail(msg, msg_len, pre);
			r = THOTH_E_INVAL;
		}
		goto out;
	}
	bpf_object__for_each_program(prog, k->obj) {
		if (!bpf_program__autoload(prog))
			continue;
		struct bpf_link *l = k->n_links < MAX_LINKS ? bpf_program__attach(prog) : NULL;
		if (!l) {
			int e = k->n_links < MAX_LINKS ? errno : E2BIG;
			char pre[512];
			const char *sec = bpf_program__section_name(prog);
			/* libbpf finds a tracepoint's id in tracefs: where nothing
			 * mounted it (no systemd), ENOENT says only "no such file". */
			bool no_tracefs = e == ENOENT && !strncmp(sec, "tracepoint/", 11) &&
					  access("/sys/kernel/tracing/events", F_OK) &&
					  access("/sys/kernel/debug/tracing/events", F_OK);
			snprintf(pre, sizeof pre, "%s (%s): cannot attach (%s)%s; libbpf said:\n",
				 sec, bpf_program__name(prog), strerror(e),
				 no_tracefs ? ": tracefs is not mounted (as root: mount -t tracefs nodev "
					      "/sys/kernel/tracing)" : "");
			klog_tail(msg, msg_len, pre);
			r = e == EPERM ? THOTH_E_PERM : THOTH_E_INVAL;
			goto out;
		}
		k->links[k->n_links] = l;
		k->lprogs[k->n_links] = prog;
		if (asprintf(&k->progs[k->n_links], "%s (%s)", bpf_program__section_name(prog),
			     bpf_program__name(prog)) < 0)
			k->progs[k->n_links] = NULL;
		k->n_links++;
	}
	if (k->n_links == 0) {
		snprintf(msg, msg_len, "the object has no kernel program (sections tracepoint/, "
			 "raw_tp/, kprobe/, uprobe/)");
		r = THOTH_E_INVAL;
		goto out;
	}
	struct bpf_map *m;
	bpf_object__for_each_map(m, k->obj)
		if (!bpf_map__is_internal(m) && k->n_maps < sizeof k->maps / sizeof k->maps[0])
			k->maps[k->n_maps++] = m;
out:
	libbpf_set_print(old);
	if (r) {
		thothd_kprobe_free(k);
		return r;
	}
	*out = k;
	return 0;
}

size_t thothd_kprobe_prog_count(const thothd_kprobe_t *k)
{
	return k->n_links;
}

const char *thothd_kprobe_prog(const thothd_kprobe_t *k, size_t i)
{
	return i < k->n_links && k->progs[i] ? k->progs[i] : "?";
}

uint64_t thothd_kprobe_runs(const thothd_kprobe_t *k)
{
	/* run_cnt counts only while kernel.bpf_stats_enabled is 1 (or a
	 * BPF_ENABLE_STATS fd is held): statistics cost every BPF program on
	 * the machine two clock reads per run, so thothd does not turn them on. */
	uint64_t runs = 0;
	for (size_t i = 0; i < k->n_links; i++) {
		struct bpf_prog_info info;
		memset(&info, 0, sizeof info);
		uint32_t len = sizeof info;
		if (bpf_obj_get_info_by_fd(bpf_program__fd(k->lprogs[i]), &info, &len) == 0)
			runs += info.run_cnt;
	}
	return runs;
}

size_t thothd_kprobe_map_count(const thothd_kprobe_t *k)
{
	return k->n_maps;
}

static const char *map_type_name(unsigned t)
{
	switch (t) {
	case BPF_MAP_TYPE_HASH: return "hash";
	case BPF_MAP_TYPE_ARRAY: return "array";
	case BPF_MAP_TYPE_PERCPU_HASH: return "percpu_hash";
	case BPF_MAP_TYPE_PERCPU_ARRAY: return "percpu_array";
	case BPF_MAP_TYPE_RINGBUF: return "ringbuf";
	default: return "other";
	}
}

void thothd_kprobe_map_info(const thothd_kprobe_t *k, size_t i, thothd_kprobe_map_info_t *info)
{
	const struct bpf_map *m = k->maps[i];
	*info = (thothd_kprobe_map_info_t){
		.name = bpf_map__name(m), .type = map_type_name(bpf_map__type(m)),
		.key_size = bpf_map__key_size(m), .value_size = bpf_map__value_size(m),
		.max_entries = bpf_map__max_entries(m),
	};
}

typedef struct ring_ctx {
	thothd_kprobe_entry_fn fn;
	void *arg;
	size_t n, max;
	bool stopped;
} ring_ctx_t;

static int ring_record(void *arg, void *data, size_t size)
{
	ring_ctx_t *rc = arg;
	if (rc->n >= rc->max || rc->fn(NULL, 0, data, (uint32_t)size, rc->arg)) {
		rc->stopped = true;
		return -1;       /* stop consuming: the rest stays for the next reader */
	}
	rc->n++;
	return 0;
}

int thothd_kprobe_map_read(const thothd_kprobe_t *k, size_t i, size_t max,
			   thothd_kprobe_entry_fn fn, void *arg, bool *truncated)
{
	*truncated = false;
	struct bpf_map *m = k->maps[i];
	int fd = bpf_map__fd(m);
	unsigned type = bpf_map__type(m);
	uint32_t ks = bpf_map__key_size(m), vs = bpf_map__value_size(m);
	if (type == BPF_MAP_TYPE_RINGBUF) {
		ring_ctx_t rc = { .fn = fn, .arg = arg, .max = max };
		struct ring_buffer *rb = ring_buffer__new(fd, ring_record, &rc, NULL);
		if (!rb)
			return thoth_error_io(errno, "ring_buffer__new");
		ring_buffer__consume(rb);
		ring_buffer__free(rb);
		*truncated = rc.stopped;
		return 0;
	}
	if (!ks || !vs || ks > 512 || vs > 65536)
		return 0;    /* map types we do not read (prog arrays, ...): shown empty */
	bool percpu = type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH;
	int ncpu = percpu ? libbpf_num_possible_cpus() : 1;
	if (ncpu < 1)
		ncpu = 1;
	size_t stride = percpu ? (vs + 7u) & ~7u : vs;
	uint8_t *key = calloc(1, ks), *next = calloc(1, ks);
	uint8_t *val = calloc((size_t)ncpu, stride), *sum = calloc(1, stride);
	int r = 0;
	if (!key || !next || !val || !sum) {
		r = THOTH_E_NOMEM;
		goto out;
	}
	bool first = true;
	size_t n = 0;
	/* Bounded: a map changing under us cannot keep us here. */
	for (uint32_t steps = 0; steps <= bpf_map__max_entries(m); steps++) {
		if (bpf_map_get_next_key(fd, first ? NULL : key, next))
			break;
		first = false;
		memcpy(key, next, ks);
		if (bpf_map_lookup_elem(fd, key, val))
			continue;    /* deleted meanwhile */
		const uint8_t *shown = val;
		if (percpu) {
			/* 8-byte values summed over the CPUs; others: CPU 0's */
			if (vs == 8) {
				uint64_t total = 0;
				for (int c = 0; c < ncpu; c++) {
					uint64_t x;
					memcpy(&x, val + (size_t)c * stride, 8);
					total += x;
				}
				memcpy(sum, &total, 8);
				shown = sum;
			}
		}
		if (n >= max || fn(key, ks, shown, vs, arg)) {
			*truncated = true;
			break;
		}
		n++;
	}
out:
	free(key);
	free(next);
	free(val);
	free(sum);
	return r;
}

#else   /* built without libbpf: thothd says so */

bool thothd_kprobe_available(void)
{
	return false;
}

int thothd_kprobe_load(const void *bytes, size_t len, const char *name, thothd_kprobe_t **out,
		       char *msg, size_t msg_len)
{
	(void)bytes;
	(void)len;
	(void)name;
	*out = NULL;
	snprintf(msg, msg_len, "this thothd was built without libbpf (libbpf-dev): no kernel probes");
	return THOTH_E_NO_FEATURE;
}

void thothd_kprobe_free(thothd_kprobe_t *k)
{
	(void)k;
}

size_t thothd_kprobe_prog_count(const thothd_kprobe_t *k)
{
	(void)k;
	return 0;
}

const char *thothd_kprobe_prog(const thothd_kprobe_t *k, size_t i)
{
	(void)k;
	(void)i;
	return "?";
}

uint64_t thothd_kprobe_runs(const thothd_kprobe_t *k)
{
	(void)k;
	return 0;
}

size_t thothd_kprobe_map_count(const thothd_kprobe_t *k)
{
	(void)k;
	return 0;
}

void thothd_kprobe_map_info(const thothd_kprobe_t *k, size_t i, thothd_kprobe_map_info_t *info)
{
	(void)k;
	(void)i;
	memset(info, 0, sizeof *info);
}

int thothd_kprobe_map_read(const thothd_kprobe_t *k, size_t i, size_t max,
			   thothd_kprobe_entry_fn fn, void *arg, bool *truncated)
{
	(void)k;
	(void)i;
	(void)max;
	(void)fn;
	(void)arg;
	*truncated = false;
	return THOTH_E_NO_FEATURE;
}
#endif
