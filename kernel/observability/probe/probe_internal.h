/*
 * probe_internal.h - the probe runtime's private types: a parsed object,
 * verified programs, map instances.  Not installed.  docs/PROBES.md.
 */
#ifndef THOTH_PROBE_INTERNAL_H
#define THOTH_PROBE_INTERNAL_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <stdint.h>

#include "thoth/probe.h"

#define PROBE_NAME_MAX 64
#define PROBE_STACK 512
#define PROBE_CTX_SIZE ((int64_t)sizeof(struct thoth_probe_ctx))
#define PROBE_PSEUDO_MAP 1       /* ld_imm64 src: imm = map index (after relocation) */
#define PROBE_RUN_BUDGET 1000000u /* instructions one interpreted run may execute */

typedef struct bpf_insn probe_insn_t;

typedef struct probe_map_def {
	char name[PROBE_NAME_MAX];
	uint32_t type, key_size, value_size, max_entries, flags;
	uint32_t offset;         /* in .maps (relocations name it so) */
} probe_map_def_t;

typedef struct probe_line {
	uint32_t insn;           /* instruction index in its program */
	uint32_t line;
	uint32_t col;
	const char *file;        /* into the object's string copy */
} probe_line_t;

enum { PROBE_KIND_THOTH, PROBE_KIND_KERNEL };

typedef struct probe_prog_def {
	char section[128];
	char name[PROBE_NAME_MAX];
	char point[PROBE_NAME_MAX];   /* after "thoth/" ("*" = all) */
	int kind;
	probe_insn_t *insns;
	uint32_t n_insns;
	probe_line_t *lines;          /* sorted by insn */
	uint32_t n_lines;
	uint32_t shndx;
} probe_prog_def_t;

struct thoth_probe_object {
	probe_prog_def_t progs[THOTH_PROBE_MAX_PROGS];
	uint32_t n_progs;
	probe_map_def_t maps[THOTH_PROBE_MAX_MAPS];
	uint32_t n_maps;
	char license[128];
	char *strings;                /* BTF string section copy (line info file names) */
	uint8_t *image;               /* the ELF bytes (kernel loader reuses them) */
	size_t image_len;
};

/* ---- verifier ------------------------------------------------------------ */

/* What a verified program needs at run time, per ld_imm64 map reference. */
/* CTX_READ (may be NULL) gets a mask of the context bytes the program may
 * read: the runtime skips computing fields nobody reads (ts_ns, cpu). */
int probe_verify_prog(const thoth_probe_object_t *obj, const probe_prog_def_t *p, char *msg,
                      size_t msg_len, uint64_t *ctx_read);
/* Source location of insn I ("file.c:12"), or "" without line info. */
void probe_line_of(const probe_prog_def_t *p, uint32_t insn, char *buf, size_t len);

/* ---- maps ---------------------------------------------------------------- */

typedef struct probe_map {
	uint32_t type, key_size, value_size, max_entries;
	uint32_t value_stride;      /* value_size rounded up to 8 */
	uint32_t n_buckets;         /* hash: power of two */
	uint32_t entry_size;        /* hash: 8 + key (rounded to 8) + value stride */
	uint8_t *base;              /* this map's bytes in the region */
	uint64_t bytes;
	struct probe_map_hdr *hdr;  /* shared header (counters only are read back) */
	char name[PROBE_NAME_MAX];
	/* Writers of one process serialise hash/ringbuf updates on this
	 * private lock: nothing in shared memory can wedge it. */
	int lock;
	uint32_t *free_list;        /* hash: free entry indexes (private truth) */
	uint32_t n_free;
	uint64_t rb_head;           /* ringbuf: producer position (private truth) */
} probe_map_t;

struct thoth_probe_maps {
	probe_map_t maps[THOTH_PROBE_MAX_MAPS];
	uint32_t n_maps;
	void *region;
	size_t region_size;
	int fd;
	bool readonly;
};

/* Helpers called by the interpreter and the JIT. */
void *probe_map_lookup(probe_map_t *m, const void *key);
/* The same by map type (the JIT calls these where it knows the map), and
 * the first value of an ARRAY map (the JIT inlines its lookup). */
void *probe_map_lookup_percpu(probe_map_t *m, const void *key);
void *probe_map_lookup_hash(probe_map_t *m, const void *key);
uint8_t *probe_map_values(const probe_map_t *m);
int64_t probe_map_update(probe_map_t *m, const void *key, const void *value, uint64_t flags);
int64_t probe_map_delete(probe_map_t *m, const void *key);
int64_t probe_ringbuf_output(probe_map_t *m, const void *data, uint64_t size, uint64_t flags);
uint32_t probe_thread_slot(void);   /* this thread's PERCPU slot, or UINT32_MAX */

/* ---- programs ------------------------------------------------------------ */

/* JIT'd code: r0 on return; *status = 1 when a loop ran out of budget. */
typedef uint64_t (*probe_jit_fn_t)(const void *ctx, uint32_t *status);
struct probe_jit;

struct thoth_probe_prog {
	probe_insn_t *insns;        /* map references resolved to probe_map_t* in imm pairs */
	uint32_t n_insns;
	thoth_probe_maps_t *maps;
	char point[PROBE_NAME_MAX];
	char name[PROBE_NAME_MAX];
	unsigned engine;            /* what runs: INTERP or JIT (never AUTO) */
	uint64_t ctx_read;          /* context bytes it may read (verifier) */
	probe_jit_fn_t jit_fn;      /* engine JIT: the code */
	struct probe_jit *jit;
	size_t jit_size;            /* bytes of machine code */
};

int probe_interp_run(const thoth_probe_prog_t *prog, const void *ctx, uint64_t *ret);
uint64_t probe_helper_call(int32_t id, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                           uint64_t r5);
/* The C function behind helper ID, called by JIT'd code with BPF r1-r5 as
 * its five arguments (NULL for a helper the verifier refuses). */
typedef uint64_t (*probe_helper_fn_t)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
probe_helper_fn_t probe_helper_fn(int32_t id);

/* jit.c: compile a loaded (relocated) program; 0 or a THOTH_E_* with MSG. */
int probe_jit_compile(thoth_probe_prog_t *prog, char *msg, size_t msg_len);
void probe_jit_free(thoth_probe_prog_t *prog);
bool probe_jit_available(void);

#endif
