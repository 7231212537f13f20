/*
 * test_client_registry_held.c - the registry side of issue 13 section 0: a
 * local registration without a TTL is held by its owner's connection.  It
 * never expires by time and needs no renewal (so nothing is periodic), it
 * ends when the owner drops (peer death) or withdraws, and remote
 * registrations still get a TTL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "registry.h"

#define MS 1000000ull

typedef struct fixture {
	thoth_registry_t *reg;
	thoth_registry_owner_t *owner;
} fixture_t;

static int setup(void **state)
{
	static fixture_t f;
	thoth_registry_config_t cfg = { .seed = 1 };
	if (thoth_registry_new(&cfg, &f.reg) || thoth_registry_owner_new(f.reg, 0, 1, NULL, &f.owner))
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	if (f->owner)
		thoth_registry_owner_drop(f->reg, f->owner);
	thoth_registry_free(f->reg);
	return 0;
}

static uint64_t add(fixture_t *f, thoth_common_Locality_t locality, uint32_t ttl_ms)
{
	thoth_registry_Registration_t r = {
		.name = thoth_str("echo"), .version = thoth_str("1.0.0"),
		.endpoint = { .addr = thoth_str("/run/echo.sock"), .locality = locality, .pid = 1 },
		.ttl_ms = ttl_ms,
	};
	uint64_t lease = 0;
	assert_int_equal(thoth_registry_register(f->reg, f->owner, &r, 0, &lease), 0);
	return lease;
}

static void test_local_registration_without_ttl_never_expires(void **state)
{
	fixture_t *f = *state;
	add(f, THOTH_COMMON_LOCALITY_HOST, 0);
	assert_true(thoth_registry_next_expiry(f->reg) == UINT64_MAX);  /* no timer for thothd */
	assert_int_equal(thoth_registry_expire(f->reg, UINT64_MAX - 1), 0);
	const thoth_registry_Instance_t *in;
	assert_int_equal(thoth_registry_resolve(f->reg, thoth_str("echo"), thoth_str(""),
						THOTH_COMMON_LOCALITY_ANY, 0, 3600000 * MS, &in), 0);
	assert_true(in->expires_at_ns == UINT64_MAX);
	assert_int_equal(in->registration.ttl_ms, 0);
}

static void test_held_registration_renew_is_harmless(void **state)
{
	fixture_t *f = *state;
	uint64_t lease = add(f, THOTH_COMMON_LOCALITY_NUMA, 0);
	uint64_t exp = 0;
	assert_int_equal(thoth_registry_renew(f->reg, f->owner, lease, 5000 * MS, &exp), 0);
	assert_true(exp == UINT64_MAX);
}

static void test_held_registration_ends_with_its_owner(void **state)
{
	fixture_t *f = *state;
	add(f, THOTH_COMMON_LOCALITY_HOST, 0);
	assert_int_equal(thoth_registry_count(f->reg), 1);
	thoth_registry_owner_drop(f->reg, f->owner);    /* the connection closed */
	f->owner = NULL;
	assert_int_equal(thoth_registry_count(f->reg), 0);
}

static void test_held_registration_ends_on_withdraw(void **state)
{
	fixture_t *f = *state;
	uint64_t lease = add(f, THOTH_COMMON_LOCALITY_HOST, 0);
	assert_int_equal(thoth_registry_withdraw(f->reg, f->owner, lease), 0);
	assert_int_equal(thoth_registry_count(f->reg), 0);
}

static void test_remote_registration_keeps_a_ttl(void **state)
{
	fixture_t *f = *state;
	add(f, THOTH_COMMON_LOCALITY_REMOTE, 0);        /* 0: the default TTL (10 s) */
	assert_true(thoth_registry_next_expiry(f->reg) == 10000 * MS);
	assert_int_equal(thoth_registry_expire(f->reg, 10000 * MS), 1);
}

static void test_local_registration_with_explicit_ttl_is_a_watchdog(void **state)
{
	fixture_t *f = *state;
	add(f, THOTH_COMMON_LOCALITY_HOST, 300);
	assert_true(thoth_registry_next_expiry(f->reg) == 300 * MS);
	assert_int_equal(thoth_registry_expire(f->reg, 300 * MS), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_local_registration_without_ttl_never_expires, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_registration_renew_is_harmless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_registration_ends_with_its_owner, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_registration_ends_on_withdraw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_registration_keeps_a_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_registration_with_explicit_ttl_is_a_watchdog,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
