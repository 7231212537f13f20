/*
 * test_probe_run.c - running verified programs: the interpreter's
 * semantics, every map type, every helper, the maps seen from another
 * mapping of the region, and programs attached to this process's trace
 * points (counts exact while programs are attached and detached under
 * load; an over-budget program is detached with a reason).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "thoth/log.h"
#include "thoth/trace.h"
#include "probe_internal.h"
#include "probe_test_util.h"

static uint64_t run_raw(const probe_insn_t *insns, size_t n)
{
	thoth_probe_object_t *o = raw_object(insns, n);
	thoth_probe_maps_t *maps;
	assert_int_equal(thoth_probe_maps_new(o, &maps), 0);
	thoth_probe_prog_t *prog;
	char msg[2048];
	int r = thoth_probe_prog_load(o, 0, maps, THOTH_PROBE_ENGINE_INTERP, &prog, msg, sizeof msg);
	if (r)
		fail_msg("load: %s", msg);
	struct thoth_probe_ctx ctx = { .arg0 = 42 };
	uint64_t ret = 0;
	assert_int_equal(thoth_probe_prog_run(prog, &ctx, &ret), 0);
	thoth_probe_prog_free(prog);
	thoth_probe_maps_free(maps);
	thoth_probe_object_free(o);
	return ret;
}
#define RUN(...) ({ probe_insn_t p_[] = { __VA_ARGS__ }; run_raw(p_, sizeof p_ / sizeof p_[0]); })

static void interpreter_semantics(void **state)
{
	(void)state;
	/* Linux division: x / 0 = 0, x % 0 = x */
	assert_int_equal(RUN(MOV64_IMM(0, 7), MOV64_IMM(2, 0), ALU64_REG(BPF_DIV, 0, 2), EXIT()), 0);
	assert_int_equal(RUN(MOV64_IMM(0, 7), MOV64_IMM(2, 0), ALU64_REG(BPF_MOD, 0, 2), EXIT()), 7);
	assert_int_equal(RUN(MOV64_IMM(0, 7), MOV64_IMM(2, 2), ALU64_REG(BPF_DIV, 0, 2), EXIT()), 3);
	/* 32-bit ALU zero-extends */
	assert_int_equal(RUN(MOV64_IMM(0, -1), I(BPF_ALU | BPF_ADD | BPF_K, 0, 0, 0, 2), EXIT()), 1);
	/* signed and unsigned compares */
	assert_int_equal(RUN(MOV64_IMM(0, -5), JMP_IMM(BPF_JSGT, 0, 0, 1), MOV64_IMM(0, 9), EXIT()), 9);
	assert_int_equal(RUN(MOV64_IMM(0, -5), JMP_IMM(BPF_JGT, 0, 0, 1), MOV64_IMM(0, 9), EXIT()),
	                 (uint64_t)-5);
	/* byte swap */
	assert_int_equal(RUN(MOV64_IMM(0, 0x1234), I(BPF_ALU | BPF_END | BPF_TO_BE, 0, 0, 0, 16),
	                     EXIT()), 0x3412);
	/* atomic fetch-add on the stack */
	assert_int_equal(RUN(ST_IMM(BPF_DW, 10, -8, 5), MOV64_IMM(1, 3),
	                     I(BPF_STX | BPF_ATOMIC | BPF_DW, 10, 1, -8, BPF_ADD | BPF_FETCH),
	                     LDX(BPF_DW, 0, 10, -8), ALU64_REG(BPF_ADD, 0, 1), EXIT()), 13);
	/* ld_imm64 and the context */
	assert_int_equal(RUN(I(BPF_LD | BPF_IMM | BPF_DW, 0, 0, 0, 1), I(0, 0, 0, 0, 2), EXIT()),
	                 (2ull << 32) | 1);
	assert_int_equal(RUN(LDX(BPF_DW, 0, 1, 32), EXIT()), 42);
	/* a bounded loop */
	assert_int_equal(RUN(MOV64_IMM(0, 0), ALU64_IMM(BPF_ADD, 0, 1), JMP_IMM(BPF_JLT, 0, 100, -2),
	                     EXIT()), 100);
}

/* ---- corpus programs against their maps -------------------------------------- */

typedef struct loaded {
	thoth_probe_object_t *obj;
	thoth_probe_maps_t *maps;
	thoth_probe_prog_t *prog[4];
} loaded_t;

static void load(loaded_t *l, const char *name)
{
	char path[512], err[2048];
	snprintf(path, sizeof path, "%s/%s.o", PROBE_CORPUS_OBJ, name);
	memset(l, 0, sizeof *l);
	if (thoth_probe_object_open_file(path, &l->obj, err, sizeof err))
		fail_msg("%s: %s", path, err);
	assert_int_equal(thoth_probe_maps_new(l->obj, &l->maps), 0);
	for (size_t i = 0; i < thoth_probe_object_prog_count(l->obj); i++)
		if (thoth_probe_prog_load(l->obj, i, l->maps, THOTH_PROBE_ENGINE_INTERP, &l->prog[i],
		                          err, sizeof err))
			fail_msg("%s: %s", name, err);
}

static void unload(loaded_t *l)
{
	for (int i = 0; i < 4; i++)
		thoth_probe_prog_free(l->prog[i]);
	thoth_probe_maps_free(l->maps);
	thoth_probe_object_free(l->obj);
}

static uint64_t fire(thoth_probe_prog_t *p, struct thoth_probe_ctx ctx)
{
	uint64_t ret;
	assert_int_equal(thoth_probe_prog_run(p, &ctx, &ret), 0);
	return ret;
}

static void array_map(void **state)
{
	(void)state;
	loaded_t l;
	load(&l, "a01_count");
	for (int i = 0; i < 1000; i++)
		fire(l.prog[0], (struct thoth_probe_ctx){ .size = 1 });
	uint32_t k = 0;
	uint64_t v = 0;
	assert_int_equal(thoth_probe_map_lookup(l.maps, 0, &k, &v), 0);
	assert_int_equal(v, 1000);
	k = 1;   /* max_entries 1 */
	assert_int_equal(thoth_probe_map_lookup(l.maps, 0, &k, &v), THOTH_E_NOT_FOUND);
	/* another mapping of the region (what thothctl does) sees the same */
	thoth_probe_maps_t *view;
	assert_int_equal(thoth_probe_maps_open(thoth_probe_maps_fd(l.maps), &view), 0);
	thoth_probe_map_info_t info;
	assert_int_equal(thoth_probe_maps_info(view, 0, &info), 0);
	assert_string_equal(info.name, "counts");
	assert_int_equal(info.type, BPF_MAP_TYPE_ARRAY);
	k = 0;
	assert_int_equal(thoth_probe_map_lookup(view, 0, &k, &v), 0);
	assert_int_equal(v, 1000);
	thoth_probe_maps_free(view);
	unload(&l);
}

static void hash_map(void **state)
{
	(void)state;
	loaded_t l;
	load(&l, "a02_hash_sum");
	/* sizes <= 1024 filtered out; the rest summed per service */
	uint64_t want[8] = { 0 };
	for (uint32_t i = 0; i < 4000; i++) {
		uint32_t size = (i * 37) % 3000, svc = i % 8;
		fire(l.prog[0], (struct thoth_probe_ctx){ .size = size, .service_id = svc });
		if (size > 1024)
			want[svc] += size;
	}
	for (uint32_t svc = 0; svc < 8; svc++) {
		uint64_t v = 0;
		assert_int_equal(thoth_probe_map_lookup(l.maps, 0, &svc, &v), 0);
		assert_int_equal(v, want[svc]);
	}
	/* full: max_entries 1024 */
	for (uint32_t k = 100; k < 100 + 1016; k++) {
		uint64_t one = 1;
		assert_int_equal(thoth_probe_map_update(l.maps, 0, &k, &one, BPF_NOEXIST), 0);
	}
	uint32_t k = 5000;
	uint64_t one = 1;
	assert_int_equal(thoth_probe_map_update(l.maps, 0, &k, &one, BPF_ANY), THOTH_E_LIMIT);
	k = 3;
	assert_int_equal(thoth_probe_map_update(l.maps, 0, &k, &one, BPF_NOEXIST), THOTH_E_EXISTS);
	unload(&l);

	/* delete: insert on send, delete on receive */
	load(&l, "a07_delete");
	fire(l.prog[0], (struct thoth_probe_ctx){ .trace_id = 77, .ts_ns = 5 });
	uint64_t key = 77, v;
	assert_int_equal(thoth_probe_map_lookup(l.maps, 0, &key, &v), 0);
	assert_int_equal(v, 5);
	fire(l.prog[1], (struct thoth_probe_ctx){ .trace_id = 77 });
	assert_int_equal(thoth_probe_map_lookup(l.maps, 0, &key, &v), THOTH_E_NOT_FOUND);
	unload(&l);
}

static thoth_probe_prog_t *percpu_prog;

static void *percpu_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5000; i++) {
		uint64_t ret;
		struct thoth_probe_ctx ctx = { .cpu = 1 };
		thoth_probe_prog_run(percpu_prog, &ctx, &ret);
	}
	return NULL;
}

static int sum_entry(const void *key, const void *value, void *ctx)
{
	uint32_t k;
	uint64_t v;
	memcpy(&k, key, 4);
	memcpy(&v, value, 8);
	if (k == 1)
		*(uint64_t *)ctx += v;
	return 0;
}

static void percpu_array_is_per_thread(void **state)
{
	(void)state;
	loaded_t l;
	load(&l, "a04_percpu");
	percpu_prog = l.prog[0];
	/* plain `*v += 1` (no atomics): exact only because each thread has its slot */
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, percpu_thread, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	uint64_t total = 0;
	assert_int_equal(thoth_probe_maps_foreach(l.maps, 0, sum_entry, &total), 0);
	assert_int_equal(total, 20000);
	unload(&l);
}

typedef struct rec { uint64_t ts; uint32_t service, size; } rec_t;
typedef struct recs { rec_t r[64]; int n; } recs_t;

static int take_record(const void *key, const void *value, void *ctx)
{
	uint32_t len;
	memcpy(&len, key, 4);
	assert_int_equal(len, sizeof(rec_t));
	recs_t *rs = ctx;
	if (rs->n < 64)
		memcpy(&rs->r[rs->n], value, sizeof(rec_t));
	rs->n++;
	return 0;
}

static void ringbuf_map(void **state)
{
	(void)state;
	loaded_t l;
	load(&l, "a05_ringbuf");
	for (uint32_t i = 0; i < 10; i++)
		fire(l.prog[0], (struct thoth_probe_ctx){ .ts_ns = i, .service_id = 100 + i,
		                                          .size = i * 10 });
	thoth_probe_maps_t *view;
	assert_int_equal(thoth_probe_maps_open(thoth_probe_maps_fd(l.maps), &view), 0);
	recs_t rs = { .n = 0 };
	assert_int_equal(thoth_probe_maps_foreach(view, 0, take_record, &rs), 0);
	assert_int_equal(rs.n, 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(rs.r[i].ts, (uint64_t)i);
		assert_int_equal(rs.r[i].service, 100u + i);
		assert_int_equal(rs.r[i].size, i * 10u);
	}
	/* consumed: a second read sees nothing; a full ring drops and counts */
	rs.n = 0;
	assert_int_equal(thoth_probe_maps_foreach(view, 0, take_record, &rs), 0);
	assert_int_equal(rs.n, 0);
	for (int i = 0; i < 1000; i++)
		fire(l.prog[0], (struct thoth_probe_ctx){ .ts_ns = 1 });
	thoth_probe_map_info_t info;
	assert_int_equal(thoth_probe_maps_info(view, 0, &info), 0);
	assert_true(info.lost > 0);
	assert_int_equal(thoth_probe_maps_foreach(view, 0, take_record, &rs), 0);
	assert_int_equal((uint64_t)rs.n + info.lost, 1000);   /* every record read or counted */
	thoth_probe_maps_free(view);
	unload(&l);
}

static char logged[256];

static void capture_log(void *arg, thoth_log_level_t level, const char *component,
                        const char *message)
{
	(void)arg;
	(void)level;
	if (strcmp(component, "probe") == 0)
		snprintf(logged, sizeof logged, "%s", message);
}

typedef struct out { uint64_t t, cpu, pid_tgid, printed; } out_t;

static void every_helper(void **state)
{
	(void)state;
	loaded_t l;
	load(&l, "a06_helpers");
	thoth_log_set_handler(capture_log, NULL, THOTH_LOG_DEBUG);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t before = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	assert_int_equal(fire(l.prog[0], (struct thoth_probe_ctx){ .arg0 = 4242 }), 1);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t after = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	thoth_log_set_handler(NULL, NULL, THOTH_LOG_ERROR);
	uint32_t k = 0;
	out_t o;
	assert_int_equal(thoth_probe_map_lookup(l.maps, 0, &k, &o), 0);
	assert_true(o.t >= before && o.t <= after);                          /* 5 */
	assert_true(o.cpu < 4096);                                           /* 8 */
	assert_int_equal(o.pid_tgid, (uint64_t)getpid() << 32 | (uint32_t)gettid()); /* 14 */
	assert_string_equal(logged, "probe saw 4242");                      /* 6 */
	assert_int_equal(o.printed, strlen("probe saw 4242"));
	unload(&l);
}

/* ---- attached to trace points ---------------------------------------------------- */

static volatile int stop_firing;
static uint64_t fired_total;
static uint64_t progress;     /* events fired so far, in 256s */

static void *fire_msg_send(void *arg)
{
	uint64_t n = 0, limit = (uint64_t)(uintptr_t)arg;
	while (!__atomic_load_n(&stop_firing, __ATOMIC_RELAXED) && (!limit || n < limit)) {
		THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, 7, 1, 2, (uint32_t)n, 100,
		                THOTH_TRACE_INLINE, 0);
		if ((++n & 255) == 0)
			__atomic_fetch_add(&progress, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&fired_total, n, __ATOMIC_RELAXED);
	return NULL;
}

static uint64_t counter_value(loaded_t *l)
{
	uint32_t k = 0;
	uint64_t v = 0;
	assert_int_equal(thoth_probe_map_lookup(l->maps, 0, &k, &v), 0);
	return v;
}

static void attached_probe_sees_every_event(void **state)
{
	(void)state;
	thoth_trace_config_t cfg = { .ring_count = 8, .ring_records = 1024, .enabled = 0,
	                             .process_name = "probe-test" };
	assert_int_equal(thoth_trace_init(&cfg), 0);
	loaded_t counter, other;
	load(&counter, "a01_count");
	load(&other, "a02_hash_sum");
	uint64_t id;
	/* before attach: nothing runs */
	fire_msg_send((void *)(uintptr_t)100);
	assert_int_equal(counter_value(&counter), 0);
	assert_int_equal(thoth_probe_attach(counter.prog[0], &id), 0);
	/* tracing (IPC) is off: the probe runs anyway */
	fired_total = 0;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, fire_msg_send,
		                                (void *)(uintptr_t)20000), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(counter_value(&counter), 80000);
	/* another program comes and goes 50 times while 4 threads fire: the
	 * first one misses nothing around the swaps */
	fired_total = 0;
	stop_firing = 0;
	uint64_t base = counter_value(&counter);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, fire_msg_send, NULL), 0);
	while (__atomic_load_n(&progress, __ATOMIC_RELAXED) < 40)
		sched_yield();     /* every swap below happens while threads fire */
	for (int i = 0; i < 50; i++) {
		uint64_t id2;
		assert_int_equal(thoth_probe_attach(other.prog[0], &id2), 0);
		assert_int_equal(thoth_probe_detach(id2), 0);
	}
	uint64_t seen = __atomic_load_n(&progress, __ATOMIC_RELAXED);
	while (__atomic_load_n(&progress, __ATOMIC_RELAXED) < seen + 40)
		sched_yield();
	__atomic_store_n(&stop_firing, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	__atomic_store_n(&stop_firing, 0, __ATOMIC_RELAXED);
	assert_true(fired_total > 40 * 256);
	thoth_probe_stats_t st;
	assert_int_equal(thoth_probe_stats(id, &st), 0);
	assert_int_equal(counter_value(&counter) - base, fired_total);
	assert_int_equal(st.runs, 80000 + fired_total);
	assert_int_equal(st.detached, 0);
	/* detached: runs no more */
	assert_int_equal(thoth_probe_detach(id), 0);
	assert_int_equal(thoth_probe_detach(id), THOTH_E_NOT_FOUND);
	uint64_t after = counter_value(&counter);
	fired_total = 0;
	fire_msg_send((void *)(uintptr_t)100);
	assert_int_equal(fired_total, 100);
	assert_int_equal(counter_value(&counter), after);
	/* the category bits were never touched by the probe bits */
	thoth_trace_set_enabled(THOTH_TRACE_MASK(IPC));
	assert_int_equal(thoth_probe_attach(counter.prog[0], &id), 0);
	thoth_trace_set_enabled(0);    /* a collector's stop keeps the probe */
	fire_msg_send((void *)(uintptr_t)10);
	assert_int_equal(counter_value(&counter), after + 10);
	assert_int_equal(thoth_probe_detach(id), 0);
	unload(&other);
	unload(&counter);
	thoth_trace_shutdown();
}

static void over_budget_probe_is_detached(void **state)
{
	(void)state;
	thoth_trace_config_t cfg = { .ring_count = 4, .ring_records = 256,
	                             .process_name = "probe-budget" };
	assert_int_equal(thoth_trace_init(&cfg), 0);
	/* 60000 iterations a run: verified (bounded), but ~0.1-1 ms a run */
	probe_insn_t slow[] = { MOV64_IMM(0, 0), ALU64_IMM(BPF_ADD, 0, 1),
		                JMP_IMM(BPF_JLT, 0, 60000, -2), EXIT() };
	thoth_probe_object_t *o = raw_object(slow, 4);
	strcpy(o->progs[0].point, "slow_point");
	thoth_probe_maps_t *maps;
	assert_int_equal(thoth_probe_maps_new(o, &maps), 0);
	thoth_probe_prog_t *prog;
	char msg[1024];
	assert_int_equal(thoth_probe_prog_load(o, 0, maps, THOTH_PROBE_ENGINE_INTERP, &prog, msg,
	                                       sizeof msg), 0);
	uint64_t id;
	assert_int_equal(thoth_probe_attach(prog, &id), 0);
	thoth_probe_stats_t st = { 0 };
	for (int i = 0; i < 200 && !st.detached; i++) {
		THOTH_TRACE(USER, slow_point, i, 0);
		assert_int_equal(thoth_probe_stats(id, &st), 0);
	}
	assert_int_equal(st.detached, 1);
	assert_non_null(strstr(st.reason, "over budget: median run"));
	uint64_t runs = st.runs;
	THOTH_TRACE(USER, slow_point, 0, 0);
	assert_int_equal(thoth_probe_stats(id, &st), 0);
	assert_int_equal(st.runs, runs);     /* no longer runs */
	assert_int_equal(thoth_probe_detach(id), 0);
	thoth_probe_prog_free(prog);
	thoth_probe_maps_free(maps);
	thoth_probe_object_free(o);
	thoth_trace_shutdown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(interpreter_semantics),
		cmocka_unit_test(array_map),
		cmocka_unit_test(hash_map),
		cmocka_unit_test(percpu_array_is_per_thread),
		cmocka_unit_test(ringbuf_map),
		cmocka_unit_test(every_helper),
		cmocka_unit_test(attached_probe_sees_every_event),
		cmocka_unit_test(over_budget_probe_is_detached),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
