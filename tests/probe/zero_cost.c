/*
 * zero_cost.c - what test_probe_zero_cost runs under callgrind: the same
 * loop of disabled trace points compiled twice, once with THOTH_TRACE as it
 * is (the enabled test covers the category bit and its probe bit) and once
 * with the enabled test as it was before probes existed (one bit).  Nothing
 * attached, categories off: the two must execute the same number of
 * instructions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "thoth/trace.h"

/* Called by name from callgrind (--toggle-collect), so not static. */
uint64_t loop_with_probe_hook(uint64_t n);
uint64_t loop_before_probes(uint64_t n);

/* The pre-OBS-2 enabled test, verbatim. */
#define IS_ON_BEFORE_PROBES(cat)                                               \
	__builtin_expect((__atomic_load_n(__atomic_load_n(                     \
	                          &thoth_trace_enabled_word, __ATOMIC_RELAXED), \
	                          __ATOMIC_RELAXED) >>                          \
	                  THOTH_TRACE_CAT_##cat) & 1u, 0)

#define TRACE_BEFORE_PROBES(cat, name, a0, a1)                                 \
	do {                                                                   \
		uint64_t thoth_tr_a0_ = (uint64_t)(a0);                        \
		uint64_t thoth_tr_a1_ = (uint64_t)(a1);                        \
		STAP_PROBE2(thoth, name, thoth_tr_a0_, thoth_tr_a1_);          \
		if (IS_ON_BEFORE_PROBES(cat)) {                                \
			static uint32_t thoth_tr_id_;                          \
			thoth_trace_fields_t thoth_tr_f_ = {                   \
				.arg0 = thoth_tr_a0_, .arg1 = thoth_tr_a1_ };  \
			thoth_trace_emit(THOTH_TRACE_CAT_##cat, &thoth_tr_id_, \
			                 #name, &thoth_tr_f_);                 \
		}                                                              \
	} while (0)

__attribute__((noinline)) uint64_t loop_with_probe_hook(uint64_t n)
{
	uint64_t s = 0;
	for (uint64_t i = 0; i < n; i++) {
		THOTH_TRACE(USER, zc_point, i, s);
		s += i;
	}
	return s;
}

__attribute__((noinline)) uint64_t loop_before_probes(uint64_t n)
{
	uint64_t s = 0;
	for (uint64_t i = 0; i < n; i++) {
		TRACE_BEFORE_PROBES(USER, zc_point, i, s);
		s += i;
	}
	return s;
}

int main(void)
{
	thoth_trace_config_t cfg = { .ring_count = 2, .ring_records = 64, .process_name = "zc" };
	if (thoth_trace_init(&cfg) != 0)
		return 1;
	uint64_t a = loop_with_probe_hook(100000);
	uint64_t b = loop_before_probes(100000);
	printf("%llu %llu\n", (unsigned long long)a, (unsigned long long)b);
	thoth_trace_shutdown();
	return a == b ? 0 : 1;
}
