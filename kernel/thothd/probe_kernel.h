/*
 * probe_kernel.h - kernel probes held by thothd (probe_kernel.c): an
 * object's kernel sections loaded into Linux through libbpf, their links
 * and maps owned by thothd.  Built without libbpf, available() is false
 * and load() says so.
 */
#ifndef THOTHD_PROBE_KERNEL_H
#define THOTHD_PROBE_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct thothd_kprobe thothd_kprobe_t;

/* Was thothd built with libbpf? */
bool thothd_kprobe_available(void);
/* Is SEC a kernel section (tracepoint/, tp/, raw_tp/, kprobe/, uprobe...)? */
bool thothd_kprobe_section(const char *sec);

/*
 * Open BYTES (an eBPF ELF object, LEN bytes; NAME labels it), load its
 * kernel programs and attach each.  0, or THOTH_E_PERM (not permitted:
 * MSG says what is needed), THOTH_E_INVAL (libbpf or the kernel refused
 * it: MSG ends with their log, the kernel verifier's among it),
 * THOTH_E_NOMEM.  Nothing stays loaded on failure.
 */
int thothd_kprobe_load(const void *bytes, size_t len, const char *name, thothd_kprobe_t **out,
		       char *msg, size_t msg_len);
/* Detach every program and close the object (its maps go with it). */
void thothd_kprobe_free(thothd_kprobe_t *k);

size_t thothd_kprobe_prog_count(const thothd_kprobe_t *k);
/* "SECTION (function)" of attached program I. */
const char *thothd_kprobe_prog(const thothd_kprobe_t *k, size_t i);
/* Runs of all its programs as the kernel counts them (0 unless
 * kernel.bpf_stats_enabled is on). */
uint64_t thothd_kprobe_runs(const thothd_kprobe_t *k);

typedef struct thothd_kprobe_map_info {
	const char *name;
	const char *type;               /* "hash", "array", "percpu_hash", "percpu_array", "ringbuf", "other" */
	uint32_t key_size, value_size, max_entries;
} thothd_kprobe_map_info_t;

size_t thothd_kprobe_map_count(const thothd_kprobe_t *k);
void thothd_kprobe_map_info(const thothd_kprobe_t *k, size_t i, thothd_kprobe_map_info_t *info);

/* One entry (KEY NULL for a ring buffer record); nonzero stops the walk
 * (the map is then reported truncated). */
typedef int (*thothd_kprobe_entry_fn)(const void *key, uint32_t key_size, const void *value,
				      uint32_t value_size, void *arg);
/*
 * Every entry of map I (at most MAX): per-CPU 8-byte values summed over
 * the CPUs, a ring buffer's records consumed.  *TRUNCATED: stopped before
 * the end.
 */
int thothd_kprobe_map_read(const thothd_kprobe_t *k, size_t i, size_t max,
			   thothd_kprobe_entry_fn fn, void *arg, bool *truncated);

#endif
