/*
 * test_shard.c - SCALE-4's routing tables as properties over 10^6 keys:
 * removing one of N members moves at most 1/N + 1% of the keys, adding one
 * at most 1/(N+1) + 1%; bounded loads keep every member within 1.25x the
 * average under Zipf(1.1) keys where plain hashing does not; replicas are
 * chosen node first, then host; bad tables are refused with a reason.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "thoth/error.h"
#include "thoth/shard.h"

#define KEYS 1000000u

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static thoth_shard_table_t *make(thoth_shard_algo_t algo, const uint64_t *ids, size_t n)
{
	thoth_shard_config_t cfg = { .algo = algo };
	thoth_shard_table_t *t = NULL;
	char why[160];
	int e = thoth_shard_table_new(&cfg, ids, n, &t, why, sizeof why);
	if (e)
		fail_msg("table %s n=%zu: %s", thoth_shard_algo_name(algo), n, why);
	return t;
}

/* Fraction of KEYS sequential keys whose member changed from A to B, where
 * A's member index ia corresponds to B's index map[ia] (or moved if -1). */
static double moved(const thoth_shard_table_t *a, const uint64_t *ids_a, const thoth_shard_table_t *b,
		    const uint64_t *ids_b)
{
	uint32_t changed = 0;
	for (uint32_t k = 0; k < KEYS; k++) {
		uint64_t key = (uint64_t)k * 7919u + 1;    /* plain integers: the mixing is the table's job */
		uint32_t x = thoth_shard_lookup(a, key), y = thoth_shard_lookup(b, key);
		uint64_t ia = ids_a ? ids_a[x] : x, ib = ids_b ? ids_b[y] : y;
		changed += ia != ib;
	}
	return (double)changed / KEYS;
}

static void check_remove_and_add(thoth_shard_algo_t algo, size_t n)
{
	uint64_t *ids = malloc((n + 1) * sizeof *ids), *less = malloc(n * sizeof *less);
	assert_non_null(ids);
	assert_non_null(less);
	for (size_t i = 0; i <= n; i++)
		ids[i] = algo == THOTH_SHARD_JUMP ? i : rnd();
	/* Removal: jump hash can only lose its last shard; the others lose a
	 * member from the middle. */
	size_t gone = algo == THOTH_SHARD_JUMP ? n - 1 : n / 3;
	for (size_t i = 0, j = 0; i < n; i++)
		if (i != gone)
			less[j++] = ids[i];
	thoth_shard_table_t *full = make(algo, ids, n), *minus = make(algo, less, n - 1),
			    *plus = make(algo, ids, n + 1);
	double rm = moved(full, ids, minus, less), add = moved(full, ids, plus, ids);
	fprintf(stderr, "# %-10s N=%-3zu remove one: %.4f moved (bound %.4f); add one: %.4f (bound %.4f)\n",
		thoth_shard_algo_name(algo), n, rm, 1.0 / n + 0.01, add, 1.0 / (n + 1) + 0.01);
	assert_true(rm <= 1.0 / (double)n + 0.01);
	assert_true(add <= 1.0 / (double)(n + 1) + 0.01);
	/* And the share moved is not trivially zero: the removed member's keys
	 * had to go somewhere. */
	assert_true(rm >= 0.5 / (double)n);
	thoth_shard_table_free(full);
	thoth_shard_table_free(minus);
	thoth_shard_table_free(plus);
	free(ids);
	free(less);
}

static void test_removing_or_adding_one_member_moves_about_its_share_maglev(void **state)
{
	(void)state;
	check_remove_and_add(THOTH_SHARD_MAGLEV, 5);
	check_remove_and_add(THOTH_SHARD_MAGLEV, 16);
	check_remove_and_add(THOTH_SHARD_MAGLEV, 100);
}

static void test_removing_or_adding_one_member_moves_about_its_share_jump(void **state)
{
	(void)state;
	check_remove_and_add(THOTH_SHARD_JUMP, 5);
	check_remove_and_add(THOTH_SHARD_JUMP, 16);
	check_remove_and_add(THOTH_SHARD_JUMP, 100);
}

static void test_removing_or_adding_one_member_moves_about_its_share_rendezvous(void **state)
{
	(void)state;
	check_remove_and_add(THOTH_SHARD_RENDEZVOUS, 5);
	check_remove_and_add(THOTH_SHARD_RENDEZVOUS, 16);
}

/* Contrast for the above: modulo hashing moves almost everything. */
static void test_modulo_hashing_would_move_most_keys(void **state)
{
	(void)state;
	uint32_t changed = 0;
	for (uint32_t k = 0; k < KEYS; k++)
		changed += (k * 2654435761u) % 16 != (k * 2654435761u) % 15;
	assert_true((double)changed / KEYS > 0.5);
}

static void test_maglev_spreads_uniform_keys_evenly(void **state)
{
	(void)state;
	uint64_t ids[16];
	for (int i = 0; i < 16; i++)
		ids[i] = rnd();
	thoth_shard_table_t *t = make(THOTH_SHARD_MAGLEV, ids, 16);
	assert_true(thoth_shard_table_size(t) > 100 * 16);
	uint32_t count[16] = { 0 };
	for (uint32_t k = 0; k < KEYS; k++)
		count[thoth_shard_lookup(t, k)]++;
	uint32_t max = 0;
	for (int i = 0; i < 16; i++)
		max = count[i] > max ? count[i] : max;
	double ratio = (double)max / (KEYS / 16.0);
	fprintf(stderr, "# maglev N=16 M=%u uniform keys: max/avg %.4f\n", thoth_shard_table_size(t), ratio);
	assert_true(ratio < 1.03);
	thoth_shard_table_free(t);
}

/* Zipf(S) over K keys by inversion of the tabulated distribution. */
typedef struct zipf {
	double *cdf;
	uint32_t k;
} zipf_t;

static void zipf_init(zipf_t *z, uint32_t k, double s)
{
	z->k = k;
	z->cdf = malloc(k * sizeof *z->cdf);
	assert_non_null(z->cdf);
	double sum = 0;
	for (uint32_t i = 0; i < k; i++)
		z->cdf[i] = (sum += pow((double)(i + 1), -s));
	for (uint32_t i = 0; i < k; i++)
		z->cdf[i] /= sum;
}

static uint32_t zipf_draw(const zipf_t *z)
{
	double u = (double)(rnd() >> 11) * 0x1p-53;
	uint32_t lo = 0, hi = z->k - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (z->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void check_zipf(thoth_shard_algo_t algo, size_t n, const zipf_t *z)
{
	uint64_t ids[64];
	for (size_t i = 0; i < n; i++)
		ids[i] = algo == THOTH_SHARD_JUMP ? i : rnd();
	thoth_shard_table_t *t = make(algo, ids, n);
	uint64_t plain[64] = { 0 };
	uint32_t away = 0;
	for (uint32_t r = 0; r < KEYS; r++) {
		uint64_t key = zipf_draw(z) + 1;
		uint32_t home = thoth_shard_lookup(t, key);
		plain[home]++;
		away += thoth_shard_acquire(t, key) != home;
	}
	uint64_t max_b = 0, max_p = 0, sum = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t l = thoth_shard_load(t, i);
		sum += l;
		max_b = l > max_b ? l : max_b;
		max_p = plain[i] > max_p ? plain[i] : max_p;
	}
	assert_int_equal(sum, KEYS);
	double avg = (double)KEYS / (double)n;
	fprintf(stderr, "# %-10s N=%-2zu Zipf(1.1): bounded max/avg %.3f (%.1f%% sent away from home), "
		"plain hashing max/avg %.3f\n", thoth_shard_algo_name(algo), n, (double)max_b / avg,
		100.0 * away / KEYS, (double)max_p / avg);
	assert_true((double)max_b <= 1.25 * avg + 1);
	assert_true((double)max_p > 1.25 * avg);      /* what bounded loads is for */
	/* Releasing everything brings every counter back to 0. */
	for (uint32_t i = 0; i < n; i++)
		while (thoth_shard_load(t, i))
			thoth_shard_release(t, i);
	thoth_shard_release(t, 0);                      /* one too many: ignored */
	assert_int_equal(thoth_shard_load(t, 0), 0);
	thoth_shard_table_free(t);
}

static void test_bounded_loads_hold_zipf_skew_where_plain_hashing_fails(void **state)
{
	(void)state;
	zipf_t z;
	zipf_init(&z, 100000, 1.1);
	check_zipf(THOTH_SHARD_MAGLEV, 16, &z);
	check_zipf(THOTH_SHARD_JUMP, 16, &z);
	check_zipf(THOTH_SHARD_RENDEZVOUS, 8, &z);
	free(z.cdf);
}

/* Bounded loads leaves uniform keys at home: affinity is kept when there
 * is no skew to correct. */
static void test_bounded_loads_keep_uniform_keys_at_home(void **state)
{
	(void)state;
	uint64_t ids[16];
	for (int i = 0; i < 16; i++)
		ids[i] = rnd();
	thoth_shard_table_t *t = make(THOTH_SHARD_MAGLEV, ids, 16);
	uint32_t away = 0;
	for (uint32_t k = 0; k < 200000; k++) {
		uint64_t key = rnd();
		away += thoth_shard_acquire(t, key) != thoth_shard_lookup(t, key);
	}
	fprintf(stderr, "# uniform keys sent away from home: %.3f%%\n", 100.0 * away / 200000);
	assert_true(away < 200000 / 100);
	thoth_shard_table_free(t);
}

static void expect_refused(thoth_shard_algo_t algo, const uint64_t *ids, size_t n, uint32_t m,
			   double balance, const char *needle)
{
	thoth_shard_config_t cfg = { .algo = algo, .table_size = m, .balance = balance };
	thoth_shard_table_t *t = (thoth_shard_table_t *)&cfg;   /* must be reset to NULL */
	char why[200];
	assert_int_equal(thoth_shard_table_new(&cfg, ids, n, &t, why, sizeof why), THOTH_E_INVAL);
	assert_null(t);
	if (!strstr(why, needle))
		fail_msg("reason '%s' does not name '%s'", why, needle);
}

static void test_bad_tables_are_refused_with_the_reason(void **state)
{
	(void)state;
	uint64_t ids[4] = { 10, 20, 30, 20 };
	expect_refused(THOTH_SHARD_MAGLEV, ids, 0, 0, 0, "N = 0");
	expect_refused(THOTH_SHARD_MAGLEV, ids, THOTH_SHARD_MAX_MAGLEV + 1, 0, 0, "at most");
	expect_refused(THOTH_SHARD_RENDEZVOUS, ids, 100000, 0, 0, "at most");
	expect_refused(THOTH_SHARD_JUMP, NULL, (size_t)1 << 40, 0, 0, "at most");
	expect_refused(THOTH_SHARD_MAGLEV, ids, 4, 0, 0, "id 20 appears twice");
	expect_refused(THOTH_SHARD_RENDEZVOUS, ids, 4, 0, 0, "appears twice");
	expect_refused(THOTH_SHARD_MAGLEV, ids, 3, 301, 0, "not a prime > 100 N");  /* too small */
	expect_refused(THOTH_SHARD_MAGLEV, ids, 3, 1000, 0, "not a prime");          /* not prime */
	expect_refused(THOTH_SHARD_MAGLEV, ids, 3, 0, NAN, "balance");
	expect_refused(THOTH_SHARD_MAGLEV, ids, 3, 0, 1e9, "balance");
	expect_refused(THOTH_SHARD_JUMP, ids, 3, 0, 0, "numbered 0..N-1");
	expect_refused((thoth_shard_algo_t)42, ids, 3, 0, 0, "unknown shard algorithm");
	expect_refused(THOTH_SHARD_MAGLEV, NULL, 3, 0, 0, "no member ids");
	/* A good explicit table size is accepted; one member works. */
	thoth_shard_config_t cfg = { .algo = THOTH_SHARD_MAGLEV, .table_size = 307 };
	thoth_shard_table_t *t = NULL;
	assert_int_equal(thoth_shard_table_new(&cfg, ids, 3, &t, NULL, 0), 0);
	assert_int_equal(thoth_shard_table_size(t), 307);
	thoth_shard_table_free(t);
	cfg.table_size = 0;
	assert_int_equal(thoth_shard_table_new(&cfg, ids, 1, &t, NULL, 0), 0);
	assert_int_equal(thoth_shard_lookup(t, 12345), 0);
	assert_int_equal(thoth_shard_acquire(t, 12345), 0);
	thoth_shard_release(t, 7);                      /* out of range: ignored */
	thoth_shard_table_free(t);
	assert_int_equal(thoth_shard_algo_from_name("maglev"), THOTH_SHARD_MAGLEV);
	assert_int_equal(thoth_shard_algo_from_name("banana"), THOTH_SHARD_NONE);
}

static void test_replicas_prefer_node_then_host_and_stay_stable_per_key(void **state)
{
	(void)state;
	thoth_shard_replica_t r[4] = {
		{ .id = 1, .distance = THOTH_SHARD_REMOTE, .usable = true },
		{ .id = 2, .distance = THOTH_SHARD_SAME_HOST, .usable = true },
		{ .id = 3, .distance = THOTH_SHARD_SAME_NODE, .usable = true },
		{ .id = 4, .distance = THOTH_SHARD_SAME_HOST, .usable = true },
	};
	assert_int_equal(thoth_shard_pick_replica(r, 4, 99), 2);
	r[2].usable = false;                            /* the local one is ejected */
	int counts[4] = { 0 };
	for (uint64_t k = 0; k < 10000; k++) {
		int a = thoth_shard_pick_replica(r, 4, k);
		assert_true(a == 1 || a == 3);
		assert_int_equal(thoth_shard_pick_replica(r, 4, k), a);   /* stable */
		counts[a]++;
	}
	assert_true(counts[1] > 4000 && counts[3] > 4000);     /* keys spread over equals */
	r[1].usable = r[3].usable = false;
	assert_int_equal(thoth_shard_pick_replica(r, 4, 5), 0); /* remote only when nothing nearer */
	r[0].usable = false;
	assert_int_equal(thoth_shard_pick_replica(r, 4, 5), -1);
	assert_int_equal(thoth_shard_pick_replica(NULL, 0, 5), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_removing_or_adding_one_member_moves_about_its_share_maglev),
		cmocka_unit_test(test_removing_or_adding_one_member_moves_about_its_share_jump),
		cmocka_unit_test(test_removing_or_adding_one_member_moves_about_its_share_rendezvous),
		cmocka_unit_test(test_modulo_hashing_would_move_most_keys),
		cmocka_unit_test(test_maglev_spreads_uniform_keys_evenly),
		cmocka_unit_test(test_bounded_loads_hold_zipf_skew_where_plain_hashing_fails),
		cmocka_unit_test(test_bounded_loads_keep_uniform_keys_at_home),
		cmocka_unit_test(test_bad_tables_are_refused_with_the_reason),
		cmocka_unit_test(test_replicas_prefer_node_then_host_and_stay_stable_per_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
