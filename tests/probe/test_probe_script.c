/*
 * test_probe_script.c - the one-line language (thothctl probe run):
 * scripts compile to objects our loader reads and our verifier accepts,
 * and running them on contexts leaves the maps a C model of the script
 * computes (filters, arithmetic and logic, every aggregation, hist
 * buckets); syntax errors name the column and what was expected; hostile
 * scripts (too long, NUL bytes, deep nesting, huge numbers) get an error,
 * never a crash.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "probe_internal.h"

typedef struct loaded {
	thoth_probe_object_t *obj;
	thoth_probe_maps_t *maps;
	thoth_probe_prog_t *prog;
} loaded_t;

static void load(loaded_t *l, const char *script)
{
	uint8_t *elf;
	size_t len;
	char err[512], msg[4096];
	int r = thoth_probe_script_compile(script, strlen(script), &elf, &len, err, sizeof err);
	if (r)
		fail_msg("%s: %s", script, err);
	r = thoth_probe_object_open(elf, len, &l->obj, msg, sizeof msg);
	free(elf);
	if (r)
		fail_msg("%s: the loader refused the compiled object: %s", script, msg);
	assert_int_equal(thoth_probe_maps_new(l->obj, &l->maps), 0);
	r = thoth_probe_prog_load(l->obj, 0, l->maps, THOTH_PROBE_ENGINE_AUTO, &l->prog, msg,
	                          sizeof msg);
	if (r)
		fail_msg("%s: the verifier refused the compiled program: %s", script, msg);
}

static void unload(loaded_t *l)
{
	thoth_probe_prog_free(l->prog);
	thoth_probe_maps_free(l->maps);
	thoth_probe_object_free(l->obj);
}

static void fire(loaded_t *l, struct thoth_probe_ctx ctx)
{
	uint64_t ret;
	assert_int_equal(thoth_probe_prog_run(l->prog, &ctx, &ret), 0);
}

static size_t map_index(loaded_t *l, const char *name)
{
	for (size_t i = 0; i < thoth_probe_maps_count(l->maps); i++) {
		thoth_probe_map_info_t info;
		thoth_probe_maps_info(l->maps, i, &info);
		if (strcmp(info.name, name) == 0)
			return i;
	}
	fail_msg("no map %s", name);
	return 0;
}

static uint64_t get(loaded_t *l, const char *map, uint64_t key)
{
	uint64_t v = 0;
	if (thoth_probe_map_lookup(l->maps, map_index(l, map), &key, &v))
		return 0;
	return v;
}

static void sum_count_min_max(void **state)
{
	(void)state;
	loaded_t l;
	load(&l, "msg_send /size > 1024/ { @bytes[service_id] = sum(size); @n = count(); "
	         "@lo[service_id] = min(size); @hi[service_id] = max(size) }");
	assert_string_equal(thoth_probe_prog_point(l.prog), "msg_send");
	uint64_t sum[8] = { 0 }, lo[8], hi[8] = { 0 }, n = 0;
	for (int i = 0; i < 8; i++)
		lo[i] = UINT64_MAX;
	for (uint32_t i = 0; i < 5000; i++) {
		uint32_t size = (i * 7919) % 4000, svc = i % 8;
		fire(&l, (struct thoth_probe_ctx){ .size = size, .service_id = svc });
		if (size > 1024) {
			sum[svc] += size;
			n++;
			lo[svc] = size < lo[svc] ? size : lo[svc];
			hi[svc] = size > hi[svc] ? size : hi[svc];
		}
	}
	for (uint64_t s = 0; s < 8; s++) {
		assert_int_equal(get(&l, "bytes", s), sum[s]);
		assert_int_equal(get(&l, "lo", s), lo[s]);
		assert_int_equal(get(&l, "hi", s), hi[s]);
	}
	assert_int_equal(get(&l, "n", 0), n);
	unload(&l);
}

/* Expression semantics against C: + - * / % &, comparisons, && || !, unary -. */
static void expressions_match_c(void **state)
{
	(void)state;
	loaded_t l;
	load(&l, "* /(size / 3) > 100 && pid != 0 || !(method - 7) || arg0 % 0 == arg0 && 0/ "
	         "{ @a[(size % 7) + arg0 * 2 - 1 & 0xff] = count(); @d[1 + -(arg1 / 0)] = sum(arg1) }");
	uint64_t a[256] = { 0 }, d = 0;
	for (uint32_t i = 0; i < 3000; i++) {
		struct thoth_probe_ctx ctx = { .size = (i * 37) % 1000, .pid = i % 3, .method = i % 9,
		                               .arg0 = i % 11, .arg1 = i * 1000003ull };
		fire(&l, ctx);
		uint64_t size = ctx.size, pid = ctx.pid, method = ctx.method, arg0 = ctx.arg0;
		bool pass = ((size / 3 > 100) && pid != 0) || !(method - 7) || false;   /* arg0 % 0 == arg0 (Linux), && 0 */
		if (pass) {
			a[((size % 7) + arg0 * 2 - 1) & 0xff]++;
			d += ctx.arg1;
		}
	}
	for (uint64_t k = 0; k < 256; k++)
		assert_int_equal(get(&l, "a", k), a[k]);
	assert_int_equal(get(&l, "d", 1), d);   /* x / 0 = 0 (Linux) */
	unload(&l);
}

static void hist_buckets(void **state)
{
	(void)state;
	loaded_t l;
	load(&l, "chan_recv { @h[service_id] = hist(size) }");
	uint64_t want[2][34] = { { 0 } };
	static const uint32_t sizes[] = { 0, 1, 2, 3, 4, 7, 8, 1000, 1024, 65535, 65536,
		                              0xffffffffu };
	for (uint32_t svc = 0; svc < 2; svc++)
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			fire(&l, (struct thoth_probe_ctx){ .size = sizes[i], .service_id = svc });
			uint32_t b = sizes[i] ? 64 - (uint32_t)__builtin_clzll(sizes[i]) : 0;
			want[svc][b]++;
		}
	size_t m = map_index(&l, "h");
	for (uint64_t svc = 0; svc < 2; svc++)
		for (uint64_t b = 0; b < 34; b++) {
			uint64_t key[2] = { svc, b }, v = 0;
			thoth_probe_map_lookup(l.maps, m, key, &v);
			assert_int_equal(v, want[svc][b]);
		}
	unload(&l);
}

typedef struct bad {
	const char *script;
	const char *message;   /* the error must contain this */
} bad_t;

static void syntax_errors_name_the_column(void **state)
{
	(void)state;
	static const bad_t bad[] = {
		{ "", "column 1: expected a trace point name" },
		{ "msg_send", "column 9: expected '{', found end of script" },
		{ "msg_send {", "column 11: expected '@'" },
		{ "msg_send { @ = count() }", "column 14: expected a map name after '@'" },
		{ "msg_send { @a = cnt() }", "column 17: expected an aggregation (count, sum, min, max, hist), found 'cnt'" },
		{ "msg_send { @a = count(size) }", "column 23: expected ')' (count() takes no value)" },
		{ "msg_send { @a = sum() }", "sum() needs a value" },
		{ "msg_send { @a[size = count() }", "column 20: expected ']'" },
		{ "msg_send /size > / { @a = count() }", "column 18: expected a number, a field or '('" },
		{ "msg_send /size > 1 { @a = count() }", "expected '/' closing the filter" },
		{ "msg_send { @a = sum(sz) }", "column 21: unknown field 'sz'" },
		{ "msg_send { @a = count() } x", "column 27: expected the end of the script" },
		{ "msg_send { @a = count() @b = count() }", "expected ';' or '}'" },
		{ "msg_send { @a = count(); @a = sum(size) }", "@a is already a count() map, not sum()" },
		{ "msg_send { @a = sum(99999999999999999999) }", "number does not fit in 64 bits" },
		{ "msg_send { @a = sum(12abc) }", "expected an operator after the number" },
		{ "msg_send { @a = sum(0x) }", "expected hexadecimal digits after 0x" },
		{ "msg_send { }", "expected a statement" },
		{ "msg_send { @a = sum(1 + (2 + (3 + (4 + (5 + (6 + (7 + (8 + 9)))))))) }",
		  "expression too deep" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint8_t *elf = (uint8_t *)1;
		size_t len = 1;
		char err[512];
		int r = thoth_probe_script_compile(bad[i].script, strlen(bad[i].script), &elf, &len, err,
		                                   sizeof err);
		if (r != THOTH_E_INVAL || !strstr(err, bad[i].message))
			fail_msg("'%s': got %d '%s', want '%s'", bad[i].script, r, err, bad[i].message);
		assert_null(elf);
		assert_int_equal(len, 0);
	}
}

static void hostile_scripts(void **state)
{
	(void)state;
	uint8_t *elf;
	size_t len;
	char err[512];
	static char big[8192];
	memset(big, 'a', sizeof big - 1);
	assert_int_equal(thoth_probe_script_compile(big, strlen(big), &elf, &len, err, sizeof err),
	                 THOTH_E_LIMIT);
	assert_non_null(strstr(err, "at most 4096"));
	static const char nul[] = "msg_send { @a\0 = count() }";
	assert_int_equal(thoth_probe_script_compile(nul, sizeof nul - 1, &elf, &len, err, sizeof err),
	                 THOTH_E_INVAL);
	assert_non_null(strstr(err, "column 14: NUL byte"));
	/* 3000 nested parentheses / minus signs: an error, not a stack overflow */
	char deep[4000];
	for (char ch = '('; ch; ch = ch == '(' ? '-' : 0) {
		size_t n = (size_t)snprintf(deep, sizeof deep, "msg_send { @a = sum(");
		memset(deep + n, ch, 3000);
		snprintf(deep + n + 3000, sizeof deep - n - 3000, "size) }");
		assert_int_equal(thoth_probe_script_compile(deep, strlen(deep), &elf, &len, err,
		                                            sizeof err), THOTH_E_INVAL);
		assert_non_null(strstr(err, "nested deeper than 64"));
	}
	/* a long, valid script: 1000 terms compile (linear time) and verify */
	char longs[4096];
	size_t n = (size_t)snprintf(longs, sizeof longs, "msg_send { @a = sum(size");
	for (int i = 0; i < 600; i++)
		n += (size_t)snprintf(longs + n, sizeof longs - n, "+%d", i % 10);
	snprintf(longs + n, sizeof longs - n, ") }");
	loaded_t l;
	load(&l, longs);
	fire(&l, (struct thoth_probe_ctx){ .size = 5 });
	assert_int_equal(get(&l, "a", 0), 5 + 60 * 45);
	unload(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sum_count_min_max),
		cmocka_unit_test(expressions_match_c),
		cmocka_unit_test(hist_buckets),
		cmocka_unit_test(syntax_errors_name_the_column),
		cmocka_unit_test(hostile_scripts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
