/*
 * test_registry.c - the registry core (kernel/thothd/registry.h), one
 * behaviour per test, with an injected clock (plain numbers of ns).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry.h"

#define MS 1000000ull

typedef struct recorded {
	uint64_t watch_id;
	void *watcher_user;
	thoth_registry_ChangeKind_t kind;
	char name[64];
	uint64_t lease;
} recorded_t;

typedef struct fixture {
	thoth_registry_t *reg;
	thoth_registry_owner_t *alice, *bob;
	recorded_t events[64];
	size_t n_events;
} fixture_t;

static void record(void *arg, const thoth_registry_event_t *ev)
{
	fixture_t *f = arg;
	if (f->n_events == 64)
		return;
	recorded_t *r = &f->events[f->n_events++];
	r->watch_id = ev->watch_id;
	r->watcher_user = ev->watcher_user;
	r->kind = ev->kind;
	r->lease = ev->instance->lease;
	snprintf(r->name, sizeof r->name, "%s", ev->instance->registration.name.ptr);
}

static int setup_with(void **state, uint32_t max_per_owner)
{
	fixture_t *f = calloc(1, sizeof *f);
	thoth_registry_config_t cfg = {
		.max_per_owner = max_per_owner,
		.seed = 42,
		.on_event = record,
		.event_arg = f,
	};
	assert_int_equal(thoth_registry_new(&cfg, &f->reg), 0);
	assert_int_equal(thoth_registry_owner_new(f->reg, 1000, 11, "alice", &f->alice), 0);
	assert_int_equal(thoth_registry_owner_new(f->reg, 1000, 22, "bob", &f->bob), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, 0);
}

static int setup_limit_3(void **state)
{
	return setup_with(state, 3);
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	thoth_registry_owner_drop(f->reg, f->alice);
	thoth_registry_owner_drop(f->reg, f->bob);
	thoth_registry_free(f->reg);
	free(f);
	return 0;
}

static thoth_registry_Registration_t reg_of(const char *name, const char *version, uint16_t numa,
					    thoth_common_Locality_t locality, uint32_t ttl_ms)
{
	thoth_registry_Registration_t r = {
		.name = thoth_str(name),
		.version = thoth_str(version),
		.endpoint = { .addr = thoth_str("/run/x.sock"), .numa_node = numa,
			      .locality = locality, .instance_id = numa, .pid = 1 },
		.ttl_ms = ttl_ms,
	};
	return r;
}

static uint64_t add(fixture_t *f, thoth_registry_owner_t *o, const char *name, const char *version,
		    uint16_t numa, thoth_common_Locality_t locality, uint32_t ttl_ms, uint64_t now)
{
	thoth_registry_Registration_t r = reg_of(name, version, numa, locality, ttl_ms);
	uint64_t lease = 0;
	assert_int_equal(thoth_registry_register(f->reg, o, &r, now, &lease), 0);
	assert_true(lease != 0);
	return lease;
}

static int resolve(fixture_t *f, const char *name, const char *min, thoth_common_Locality_t prefer,
		   uint16_t numa, uint64_t now, uint64_t *lease)
{
	const thoth_registry_Instance_t *inst = NULL;
	int r = thoth_registry_resolve(f->reg, thoth_str(name), thoth_str(min), prefer, numa, now,
				       &inst);
	if (!r && lease)
		*lease = inst->lease;
	return r;
}

#define LOCAL THOTH_COMMON_LOCALITY_HOST
#define REMOTE THOTH_COMMON_LOCALITY_REMOTE
#define NUMA THOTH_COMMON_LOCALITY_NUMA
#define ANY THOTH_COMMON_LOCALITY_ANY

/* ---- resolve ---------------------------------------------------------------- */

static void test_resolve_finds_registered_instance(void **state)
{
	fixture_t *f = *state;
	uint64_t lease = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	uint64_t got = 0;
	assert_int_equal(resolve(f, "echo", "", ANY, 0, 1, &got), 0);
	assert_true(got == lease);
}

static void test_resolve_unknown_name_is_not_found(void **state)
{
	fixture_t *f = *state;
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	assert_int_equal(resolve(f, "codex", "", ANY, 0, 1, NULL), THOTH_REGISTRY_ERR_NOT_FOUND);
}

static void test_resolve_skips_expired_lease(void **state)
{
	fixture_t *f = *state;
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 100, 0);
	assert_int_equal(resolve(f, "echo", "", ANY, 0, 99 * MS, NULL), 0);
	/* The expiry timer has not run yet (slack): resolve must still refuse. */
	assert_int_equal(resolve(f, "echo", "", ANY, 0, 100 * MS, NULL),
			 THOTH_REGISTRY_ERR_NOT_FOUND);
	assert_int_equal(thoth_registry_count(f->reg), 1);
}

static void test_resolve_prefers_same_numa_node(void **state)
{
	fixture_t *f = *state;
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	uint64_t on1 = add(f, f->alice, "echo", "1.0.0", 1, LOCAL, 1000, 0);
	add(f, f->alice, "echo", "1.0.0", 1, REMOTE, 1000, 0);
	for (int i = 0; i < 5; i++) {
		uint64_t got = 0;
		assert_int_equal(resolve(f, "echo", "", NUMA, 1, 1, &got), 0);
		assert_true(got == on1);
	}
}

static void test_resolve_prefers_same_host_over_remote(void **state)
{
	fixture_t *f = *state;
	add(f, f->alice, "echo", "1.0.0", 3, REMOTE, 1000, 0);
	uint64_t local = add(f, f->alice, "echo", "1.0.0", 2, LOCAL, 1000, 0);
	for (int i = 0; i < 4; i++) {
		uint64_t got = 0;
		assert_int_equal(resolve(f, "echo", "", NUMA, 3, 1, &got), 0);
		assert_true(got == local);
	}
}

static void test_resolve_round_robins_among_equals(void **state)
{
	fixture_t *f = *state;
	uint64_t a = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	uint64_t b = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	add(f, f->alice, "echo", "1.0.0", 1, LOCAL, 1000, 0);   /* farther: never picked */
	int seen_a = 0, seen_b = 0;
	for (int i = 0; i < 10; i++) {
		uint64_t got = 0;
		assert_int_equal(resolve(f, "echo", "", NUMA, 0, 1, &got), 0);
		seen_a += got == a;
		seen_b += got == b;
	}
	assert_int_equal(seen_a, 5);
	assert_int_equal(seen_b, 5);
}

static void test_semver_min_version(void **state)
{
	fixture_t *f = *state;
	add(f, f->alice, "echo", "1.2.9", 0, LOCAL, 1000, 0);
	uint64_t newer = add(f, f->alice, "echo", "1.10.0", 0, LOCAL, 1000, 0);
	add(f, f->alice, "echo", "2.0.0", 0, LOCAL, 1000, 0);
	for (int i = 0; i < 3; i++) {
		uint64_t got = 0;
		assert_int_equal(resolve(f, "echo", "1.3.0", ANY, 0, 1, &got), 0);
		assert_true(got == newer);      /* 1.2.9 too old, 2.0.0 incompatible major */
	}
	assert_int_equal(resolve(f, "echo", "1.10.1", ANY, 0, 1, NULL), THOTH_REGISTRY_ERR_NOT_FOUND);
	assert_int_equal(resolve(f, "echo", "1.x", ANY, 0, 1, NULL), THOTH_REGISTRY_ERR_BAD_VERSION);
}

static void test_semver_parse_is_strict(void **state)
{
	(void)state;
	thoth_semver_t v;
	assert_int_equal(thoth_semver_parse(thoth_str("1.2.3"), &v), 0);
	assert_int_equal(v.major, 1);
	assert_int_equal(v.minor, 2);
	assert_int_equal(v.patch, 3);
	assert_int_equal(thoth_semver_parse(thoth_str("0.0.0"), &v), 0);
	assert_int_equal(thoth_semver_parse(thoth_str("4294967295.0.0"), &v), 0);
	const char *bad[] = { "", "1", "1.2", "1.2.3.4", "01.2.3", "1.2.3-rc1", "a.b.c",
			      "1..3", "1.2.", " 1.2.3", "4294967296.0.0" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(thoth_semver_parse(thoth_str(bad[i]), &v), THOTH_E_INVAL);
}

/* ---- register: validation, limits, contract ------------------------------------- */

static void test_bad_names_are_refused(void **state)
{
	fixture_t *f = *state;
	char long_name[130];
	memset(long_name, 'a', 129);
	long_name[129] = 0;
	const char *bad[] = { "", "Echo", "1echo", "_echo", "echo service", "echo/x", "échо",
			      long_name };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		thoth_registry_Registration_t r = reg_of(bad[i], "1.0.0", 0, LOCAL, 1000);
		uint64_t lease = 0;
		assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease),
				 THOTH_REGISTRY_ERR_BAD_NAME);
		assert_true(thoth_registry_refusal(f->reg)[0] != 0);
	}
	long_name[128] = 0;     /* exactly 128 is fine */
	add(f, f->alice, long_name, "1.0.0", 0, LOCAL, 1000, 0);
	add(f, f->alice, "a.b-c_9", "1.0.0", 0, LOCAL, 1000, 0);
	assert_int_equal(thoth_registry_count(f->reg), 2);
}

static void test_bad_version_is_refused(void **state)
{
	fixture_t *f = *state;
	thoth_registry_Registration_t r = reg_of("echo", "1.0", 0, LOCAL, 1000);
	uint64_t lease;
	assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease),
			 THOTH_REGISTRY_ERR_BAD_VERSION);
	assert_int_equal(thoth_registry_count(f->reg), 0);
}

/* An endpoint address with a control byte was taken and shown as it was:
 * a newline forged a whole line of `thothctl services` (an instance that
 * is not there), an escape drove the reader's terminal. */
static void test_endpoint_with_control_bytes_is_refused(void **state)
{
	fixture_t *f = *state;
	static const char *const bad[] = {
		"/run/x.sock\necho  1.0.0  /run/fake.sock", "/run/\x1b[2Jx.sock", "/run/x\x7f.sock",
		"/run/x\t.sock",
	};
	uint64_t lease;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		thoth_registry_Registration_t r = reg_of("echo", "1.0.0", 0, LOCAL, 1000);
		r.endpoint.addr = thoth_str(bad[i]);
		assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease),
				 THOTH_REGISTRY_ERR_CONTRACT_REFUSED);
		assert_non_null(strstr(thoth_registry_refusal(f->reg), "control byte"));
	}
	assert_int_equal(thoth_registry_count(f->reg), 0);
	/* Spaces and UTF-8 are a path's business. */
	thoth_registry_Registration_t r = reg_of("echo", "1.0.0", 0, LOCAL, 1000);
	r.endpoint.addr = thoth_str("/run/my service \xc3\xa9.sock");
	assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease), 0);
}

static void test_per_client_limit(void **state)
{
	fixture_t *f = *state;
	for (int i = 0; i < 3; i++)
		add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	thoth_registry_Registration_t r = reg_of("echo", "1.0.0", 0, LOCAL, 1000);
	uint64_t lease;
	assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease),
			 THOTH_REGISTRY_ERR_TOO_MANY);
	/* The limit is per owner: bob is unaffected. */
	add(f, f->bob, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	assert_int_equal(thoth_registry_owner_registrations(f->alice), 3);
}

static thoth_common_InterfaceClaim_t claim_of(const char *package, const char *iface, uint8_t minor,
					     uint64_t hash)
{
	char q[128];
	snprintf(q, sizeof q, "%s.%s", package, iface);
	thoth_common_InterfaceClaim_t c = {
		.package = thoth_str(package), .interface = thoth_str(iface),
		.interface_id = thoth_wire_fnv1a32(q), .major = 1, .minor = minor,
		.schema_hash = hash,
	};
	return c;
}

static void test_contract_mismatch_with_live_instance_is_refused(void **state)
{
	fixture_t *f = *state;
	thoth_common_InterfaceClaim_t c1 = claim_of("thoth.echo", "Echo", 0, 0x1111);
	thoth_registry_Registration_t r = reg_of("echo", "1.0.0", 0, LOCAL, 1000);
	r.claims = (thoth_common_InterfaceClaim_list_t){ &c1, 1 };
	uint64_t lease;
	assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease), 0);
	/* Same version 1.0, different schema: changed without a version bump. */
	thoth_common_InterfaceClaim_t c2 = claim_of("thoth.echo", "Echo", 0, 0x2222);
	r.claims = (thoth_common_InterfaceClaim_list_t){ &c2, 1 };
	assert_int_equal(thoth_registry_register(f->reg, f->bob, &r, 0, &lease),
			 THOTH_REGISTRY_ERR_CONTRACT_REFUSED);
	assert_non_null(strstr(thoth_registry_refusal(f->reg), "schema"));
	/* A newer minor with its own hash is compatible. */
	thoth_common_InterfaceClaim_t c3 = claim_of("thoth.echo", "Echo", 1, 0x3333);
	r.claims = (thoth_common_InterfaceClaim_list_t){ &c3, 1 };
	assert_int_equal(thoth_registry_register(f->reg, f->bob, &r, 0, &lease), 0);
}

/* Another host's instances (federation, docs/FEDERATION.md) are held to
 * their own host's rules, not this one's: an instance of "echo" that a peer
 * mirrors with another major (a rolling upgrade, or a peer that lies) must
 * not lock this host's own "echo" out of its registry, and this host's
 * instances must not keep a peer's out either.  The old code compared every
 * claim with every live instance's, remote ones included: the local
 * registration was refused ("conflicts with live instance"). */
static void test_remote_instances_neither_block_nor_are_blocked_by_local_claims(void **state)
{
	fixture_t *f = *state;
	thoth_registry_owner_t *peer;
	assert_int_equal(thoth_registry_owner_new(f->reg, 1000, 0, "peer", &peer), 0);
	thoth_registry_owner_set_federated(peer);
	thoth_common_InterfaceClaim_t v2 = claim_of("thoth.echo", "Echo", 0, 0x2222);
	v2.major = 2;
	thoth_registry_Registration_t r = reg_of("echo", "2.0.0", 0, REMOTE, 0);
	r.endpoint.addr = thoth_str("tcp:10.0.0.9:7001");
	r.claims = (thoth_common_InterfaceClaim_list_t){ &v2, 1 };
	uint64_t remote_lease, lease;
	assert_int_equal(thoth_registry_register(f->reg, peer, &r, 0, &remote_lease), 0);
	/* This host's echo 1.x registers beside it... */
	thoth_common_InterfaceClaim_t v1 = claim_of("thoth.echo", "Echo", 0, 0x1111);
	thoth_registry_Registration_t l = reg_of("echo", "1.0.0", 0, LOCAL, 1000);
	l.claims = (thoth_common_InterfaceClaim_list_t){ &v1, 1 };
	assert_int_equal(thoth_registry_register(f->reg, f->alice, &l, 0, &lease), 0);
	/* ...and is what a local caller is given. */
	uint64_t got;
	assert_int_equal(resolve(f, "echo", "", LOCAL, 0, 1, &got), 0);
	assert_true(got == lease);
	/* With no preference too (ANY ranked them equal and the round robin
	 * handed out the 2.x every other call): the conflicting remote is last. */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(resolve(f, "echo", "", ANY, 0, 1, &got), 0);
		assert_true(got == lease);
	}
	/* A caller that asks for 2.x still gets the remote one. */
	assert_int_equal(resolve(f, "echo", "2.0.0", ANY, 0, 1, &got), 0);
	assert_true(got == remote_lease);
	/* A second peer instance of 2.x (another host's) is not refused for
	 * the local 1.x either. */
	r.endpoint.addr = thoth_str("tcp:10.0.0.10:7001");
	assert_int_equal(thoth_registry_register(f->reg, peer, &r, 0, &got), 0);
	/* Between local instances the rule holds as before. */
	thoth_common_InterfaceClaim_t bad = claim_of("thoth.echo", "Echo", 0, 0x3333);
	l.claims = (thoth_common_InterfaceClaim_list_t){ &bad, 1 };
	assert_int_equal(thoth_registry_register(f->reg, f->alice, &l, 0, &got),
			 THOTH_REGISTRY_ERR_CONTRACT_REFUSED);
	thoth_registry_owner_drop(f->reg, peer);
}

/* rank_of's conflict test answers from a per-call index of the live local
 * claims (O(instances)); the original walk over the group per candidate
 * (O(local x remote), 326 ms per resolve at 5000 + 5000) is kept as
 * rank_by_walk.  Two registries fed the same random history -- local and
 * remote instances of two names, two interfaces, majors 1-2, minors 0-2,
 * matching or other schema hashes, leases that end, withdrawals -- must
 * give the same resolve answer (the round robin included) for every
 * preference, node, minimum version and time, and the same conflict count. */
static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

static void random_claim(uint64_t *s, thoth_common_InterfaceClaim_t *c, bool remote)
{
	*c = claim_of(rnd(s) % 2 ? "thoth.echo" : "thoth.kv", rnd(s) % 2 ? "Echo" : "Kv",
		      (uint8_t)(rnd(s) % 3), 0);
	c->major = (uint8_t)(rnd(s) % (remote ? 2 : 8) ? 1 : 2);
	c->schema_hash = rnd(s) % (remote ? 3 : 6) ? 0x100u + c->minor : 0x900u + rnd(s) % 2;
}

static void test_conflict_index_matches_the_walk(void **state)
{
	(void)state;
	enum { OWNERS = 6, ROUNDS = 40, ADDS = 24 };
	thoth_registry_t *regs[2];
	thoth_registry_owner_t *owners[2][OWNERS + 1];
	for (int w = 0; w < 2; w++) {
		thoth_registry_config_t cfg = { .seed = 7, .rank_by_walk = w == 1, .register_by_walk = w == 1 };
		assert_int_equal(thoth_registry_new(&cfg, &regs[w]), 0);
		for (int o = 0; o <= OWNERS; o++)
			assert_int_equal(thoth_registry_owner_new(regs[w], 1000, (uint32_t)(100 + o), NULL,
								  &owners[w][o]), 0);
		thoth_registry_owner_set_federated(owners[w][OWNERS]);
	}
	uint64_t s = 12345, now = 0, leases[2][ROUNDS * ADDS];
	size_t n_leases = 0, conflicts_seen = 0, resolves = 0, remote_first = 0, refusals = 0;
	for (int round = 0; round < ROUNDS; round++) {
		for (int a = 0; a < ADDS; a++) {
			bool remote = rnd(&s) % 2;
			int o = remote ? OWNERS : (int)(rnd(&s) % OWNERS);
			char addr[64], version[32];
			snprintf(addr, sizeof addr, remote ? "tcp:10.0.0.1:%zu" : "/run/x-%zu.sock",
				 n_leases);
			thoth_common_InterfaceClaim_t claims[3];
			uint32_t n_claims = (uint32_t)(rnd(&s) % 4);
			for (uint32_t i = 0; i < n_claims; i++)
				random_claim(&s, &claims[i], remote);
			snprintf(version, sizeof version, "%u.%u.0", n_claims ? claims[0].major : 1u,
				 (unsigned)(rnd(&s) % 3));
			thoth_registry_Registration_t r =
				reg_of(rnd(&s) % 4 ? "echo" : "kv", version, (uint16_t)(rnd(&s) % 2),
				       remote ? REMOTE : LOCAL, remote ? 0 : (uint32_t)(50 + rnd(&s) % 400));
			r.endpoint.addr = thoth_str(addr);
			r.claims = (thoth_common_InterfaceClaim_list_t){ claims, n_claims };
			int rc[2];
			for (int w = 0; w < 2; w++)
				rc[w] = thoth_registry_register(regs[w], owners[w][o], &r, now,
								&leases[w][n_leases]);
			assert_int_equal(rc[0], rc[1]);
			if (!rc[0])
				n_leases++;
			else    /* register's claim index refuses in the walk's words */
				assert_string_equal(thoth_registry_refusal(regs[0]), thoth_registry_refusal(regs[1]));
			refusals += rc[0] == THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
		}
		/* Withdraw a few (a stale lease answers the same on both). */
		for (int k = 0; k < 3 && n_leases; k++) {
			size_t i = (size_t)rnd(&s) % n_leases;
			for (int w = 0; w < 2; w++)
				for (int o = 0; o <= OWNERS; o++)
					(void)thoth_registry_withdraw(regs[w], owners[w][o], leases[w][i]);
		}
		for (int q = 0; q < 30; q++) {
			static const thoth_common_Locality_t prefs[] = { ANY, LOCAL, NUMA, REMOTE };
			static const char *const mins[] = { "", "1.0.0", "1.1.0", "2.0.0" };
			const char *name = rnd(&s) % 4 ? "echo" : "kv";
			thoth_common_Locality_t prefer = prefs[rnd(&s) % 4];
			const char *min = mins[rnd(&s) % 4];
			uint16_t node = (uint16_t)(rnd(&s) % 2);
			uint64_t at = now + (rnd(&s) % 500) * MS;
			const thoth_registry_Instance_t *got[2] = { NULL, NULL };
			int rc[2];
			for (int w = 0; w < 2; w++)
				rc[w] = thoth_registry_resolve(regs[w], thoth_str(name), thoth_str(min), prefer,
							       node, at, &got[w]);
			assert_int_equal(rc[0], rc[1]);
			if (rc[0])
				continue;
			resolves++;
			assert_string_equal(got[0]->registration.endpoint.addr.ptr,
					    got[1]->registration.endpoint.addr.ptr);
			remote_first += got[0]->registration.endpoint.locality == REMOTE;
			size_t c0 = thoth_registry_remote_conflicts(regs[0], at);
			assert_int_equal(c0, thoth_registry_remote_conflicts(regs[1], at));
			conflicts_seen += c0 > 0;
		}
		now += 40 * MS;
	}
	/* The history exercised what it is meant to. */
	assert_true(n_leases > ROUNDS * ADDS / 3);
	assert_true(resolves > 300);
	assert_true(conflicts_seen > 50);
	assert_true(remote_first > 20);
	assert_true(refusals > 20);
	for (int w = 0; w < 2; w++) {
		for (int o = 0; o <= OWNERS; o++)
			thoth_registry_owner_drop(regs[w], owners[w][o]);
		thoth_registry_free(regs[w]);
	}
}

/* A new local registration's claims are checked against the name's local
 * instances through the registry's index of their claims (O(its claims),
 * was a walk over the instances: O(n^2) for n registrations of one name).
 * Every refusal of the rule -- another major; the same major.minor with
 * another schema; a conflict in a registration's second claim -- is still
 * made, in the walk's words (a registry with register_by_walk side by
 * side); a compatible minor and other names are not refused; and once the
 * conflicting instances are gone, withdrawn or dropped with their owner,
 * their claims no longer count (the name kept alive meanwhile by an
 * instance claiming another interface, so the counts are the same group's). */
static void test_claim_index_refuses_what_the_walk_refuses(void **state)
{
	(void)state;
	thoth_registry_t *regs[2];
	thoth_registry_owner_t *alice[2], *bob[2], *keeper[2];
	for (int w = 0; w < 2; w++) {
		thoth_registry_config_t cfg = { .seed = 9, .register_by_walk = w == 1 };
		assert_int_equal(thoth_registry_new(&cfg, &regs[w]), 0);
		assert_int_equal(thoth_registry_owner_new(regs[w], 1000, 11, NULL, &alice[w]), 0);
		assert_int_equal(thoth_registry_owner_new(regs[w], 1000, 22, NULL, &bob[w]), 0);
		assert_int_equal(thoth_registry_owner_new(regs[w], 1000, 33, NULL, &keeper[w]), 0);
	}
	thoth_common_InterfaceClaim_t v1 = claim_of("thoth.echo", "Echo", 0, 0x1111);
	thoth_common_InterfaceClaim_t v1_other_schema = claim_of("thoth.echo", "Echo", 0, 0x2222);
	thoth_common_InterfaceClaim_t v1_1 = claim_of("thoth.echo", "Echo", 1, 0x3333);
	thoth_common_InterfaceClaim_t v2 = claim_of("thoth.echo", "Echo", 0, 0x4444);
	v2.major = 2;
	thoth_common_InterfaceClaim_t kv = claim_of("thoth.kv", "Kv", 0, 0x5555);
	thoth_common_InterfaceClaim_t kv_then_v2[2] = { kv, v2 };
	const struct {
		thoth_registry_owner_t **owner;
		const char *name;
		const thoth_common_InterfaceClaim_t *claims;
		uint32_t n;
		int want;
		const char *said;
	} steps[] = {
		{ keeper, "echo", &kv, 1, 0, NULL },
		{ alice, "echo", &v1, 1, 0, NULL },
		{ alice, "echo", &v1, 1, 0, NULL },     /* the same claim twice: counted twice */
		{ bob, "echo", &v2, 1, THOTH_REGISTRY_ERR_CONTRACT_REFUSED, "major versions differ" },
		{ bob, "echo", &v1_other_schema, 1, THOTH_REGISTRY_ERR_CONTRACT_REFUSED, "schema hashes differ" },
		{ bob, "echo", kv_then_v2, 2, THOTH_REGISTRY_ERR_CONTRACT_REFUSED, "major versions differ" },
		{ bob, "echo", &v1_1, 1, 0, NULL },
		{ bob, "echo-two", &v2, 1, 0, NULL },   /* another name: its own claims */
	};
	uint64_t lease[2];
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		thoth_registry_Registration_t r = reg_of(steps[i].name, "1.0.0", 0, LOCAL, 0);
		r.claims = (thoth_common_InterfaceClaim_list_t){ (thoth_common_InterfaceClaim_t *)steps[i].claims,
								 steps[i].n };
		for (int w = 0; w < 2; w++)
			assert_int_equal(thoth_registry_register(regs[w], steps[i].owner[w], &r, 0, &lease[w]),
					 steps[i].want);
		assert_string_equal(thoth_registry_refusal(regs[0]), thoth_registry_refusal(regs[1]));
		if (steps[i].said) {
			print_message("step %zu refused: %s\n", i, thoth_registry_refusal(regs[0]));
			assert_non_null(strstr(thoth_registry_refusal(regs[0]), "conflicts with live instance"));
			assert_non_null(strstr(thoth_registry_refusal(regs[0]), steps[i].said));
		}
	}
	/* Gone: alice's two 1.0 and bob's 1.1 (owners dropped, and a
	 * withdrawal below).  2.0 and the other schema are accepted; a count
	 * left behind would not refuse them (only a refusal walks, and the
	 * walk finds nobody) but would send every such registration down the
	 * walk again: the keys counted say whether any is left. */
	for (int w = 0; w < 2; w++) {
		thoth_registry_owner_drop(regs[w], alice[w]);
		assert_int_equal(thoth_registry_owner_new(regs[w], 1000, 11, NULL, &alice[w]), 0);
		thoth_registry_owner_drop(regs[w], bob[w]);
		assert_int_equal(thoth_registry_owner_new(regs[w], 1000, 22, NULL, &bob[w]), 0);
	}
	thoth_registry_Registration_t r = reg_of("echo", "2.0.0", 0, LOCAL, 0);
	r.claims = (thoth_common_InterfaceClaim_list_t){ &v2, 1 };
	for (int w = 0; w < 2; w++) {
		assert_int_equal(thoth_registry_register(regs[w], alice[w], &r, 0, &lease[w]), 0);
		assert_int_equal(thoth_registry_withdraw(regs[w], alice[w], lease[w]), 0);
	}
	r.claims = (thoth_common_InterfaceClaim_list_t){ &v1_other_schema, 1 };
	for (int w = 0; w < 2; w++)
		assert_int_equal(thoth_registry_register(regs[w], bob[w], &r, 0, &lease[w]), 0);
	thoth_registry_memory_t m;
	thoth_registry_memory(regs[0], &m);
	assert_int_equal(m.local_claims_keys, 8);       /* bob's and keeper's claims, four keys each */
	for (int w = 0; w < 2; w++) {
		thoth_registry_owner_drop(regs[w], alice[w]);
		thoth_registry_owner_drop(regs[w], bob[w]);
		thoth_registry_owner_drop(regs[w], keeper[w]);
		thoth_registry_memory(regs[w], &m);
		assert_int_equal(m.local_claims_keys, 0);
		thoth_registry_free(regs[w]);
	}
}

/* The registry's claim memory follows its need.  Resolve's per-call index
 * (the scratch) for 5000 local instances of a name and one remote is ~1.5
 * MiB; it used to stay so for good once the name shrank.  It is cut once
 * SCRATCH_WINDOW (64) calls in a row needed under a quarter of it -- but not
 * while resolves of the large name come among those of a small one (no
 * reallocation back and forth: counted, scratch_shrinks); register's index
 * of local claims halves as its keys go. */
static void test_claim_memory_shrinks_when_far_above_need(void **state)
{
	(void)state;
	enum { N = 5000, KEEP = 10 };
	thoth_registry_config_t cfg = { .seed = 3, .max_per_owner = N + 10 };
	thoth_registry_t *reg;
	thoth_registry_owner_t *many, *few, *peer;
	assert_int_equal(thoth_registry_new(&cfg, &reg), 0);
	assert_int_equal(thoth_registry_owner_new(reg, 1000, 1, NULL, &many), 0);
	assert_int_equal(thoth_registry_owner_new(reg, 1000, 2, NULL, &few), 0);
	assert_int_equal(thoth_registry_owner_new(reg, 1000, 3, NULL, &peer), 0);
	thoth_registry_owner_set_federated(peer);
	thoth_common_InterfaceClaim_t c = claim_of("thoth.echo", "Echo", 0, 0x1111);
	uint64_t lease;
	for (uint32_t i = 0; i < N; i++) {
		thoth_common_InterfaceClaim_t mine = c;
		mine.minor = (uint8_t)(i % 200);        /* many keys, all compatible */
		mine.schema_hash = 0x1000u + mine.minor;
		thoth_registry_Registration_t r = reg_of(i < N - KEEP ? "big" : "small", "1.0.0", 0, LOCAL, 0);
		r.claims = (thoth_common_InterfaceClaim_list_t){ &mine, 1 };
		assert_int_equal(thoth_registry_register(reg, i < N - KEEP ? many : few, &r, 0, &lease), 0);
	}
	for (int k = 0; k < 2; k++) {           /* another host's instance of each */
		thoth_registry_Registration_t r = reg_of(k ? "small" : "big", "1.0.0", 0, REMOTE, 0);
		r.claims = (thoth_common_InterfaceClaim_list_t){ &c, 1 };
		assert_int_equal(thoth_registry_register(reg, peer, &r, 0, &lease), 0);
	}
	const thoth_registry_Instance_t *got;
	assert_int_equal(thoth_registry_resolve(reg, thoth_str("big"), thoth_str(""), ANY, 0, 1, &got), 0);
	thoth_registry_memory_t m0, m;
	thoth_registry_memory(reg, &m0);
	print_message("after a resolve of %d local instances: scratch %zu bytes, local claims %zu bytes "
		      "(%zu keys)\n", (int)(N - KEEP), m0.scratch_bytes, m0.local_claims_bytes, m0.local_claims_keys);
	assert_true(m0.scratch_bytes >= 1u << 20);
	/* The large name still resolved now and then: kept. */
	for (int i = 0; i < 400; i++)
		assert_int_equal(thoth_registry_resolve(reg, thoth_str(i % 50 ? "small" : "big"), thoth_str(""),
							ANY, 0, 1, &got), 0);
	thoth_registry_memory(reg, &m);
	assert_int_equal(m.scratch_shrinks, 0);
	assert_int_equal(m.scratch_bytes, m0.scratch_bytes);
	/* The large name's local instances go: both indexes shrink. */
	thoth_registry_owner_drop(reg, many);
	for (int i = 0; i < 128; i++)          /* two windows: the first may hold a resolve of "big" */
		assert_int_equal(thoth_registry_resolve(reg, thoth_str("small"), thoth_str(""), ANY, 0, 1, &got), 0);
	thoth_registry_memory(reg, &m);
	print_message("after the large name's local instances went and 128 resolves: scratch %zu bytes "
		      "(%zu cuts), local claims %zu bytes (%zu keys, %zu cuts)\n", m.scratch_bytes,
		      m.scratch_shrinks, m.local_claims_bytes, m.local_claims_keys, m.local_claims_shrinks);
	assert_int_equal(m.scratch_shrinks, 1);
	assert_true(m.scratch_bytes <= 8192);
	assert_int_equal(m.local_claims_keys, 2 + 2 * KEEP);    /* one id, one major, 10 minors and hashes */
	assert_true(m.local_claims_shrinks >= 1);
	assert_true(m.local_claims_bytes <= 8192);
	thoth_registry_owner_drop(reg, few);
	thoth_registry_owner_drop(reg, peer);
	thoth_registry_free(reg);
}

static void test_claim_with_wrong_interface_id_is_refused(void **state)
{
	fixture_t *f = *state;
	thoth_common_InterfaceClaim_t c = claim_of("thoth.echo", "Echo", 0, 0x1111);
	c.interface_id ^= 1;
	thoth_registry_Registration_t r = reg_of("echo", "1.0.0", 0, LOCAL, 1000);
	r.claims = (thoth_common_InterfaceClaim_list_t){ &c, 1 };
	uint64_t lease;
	assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease),
			 THOTH_REGISTRY_ERR_CONTRACT_REFUSED);
	assert_non_null(strstr(thoth_registry_refusal(f->reg), "interface id"));
}

/* Claim names are shown by thothctl, the dashboard and /metrics: only names
 * a schema can hold are taken (a quote or a stray byte is refused, with the
 * interface id computed right so that only the name check can refuse it). */
static void test_claim_names_must_be_schema_names(void **state)
{
	fixture_t *f = *state;
	static const char *const bad_packages[] = {
		"thoth.\"x\"", "thoth.\xff", "thoth..echo", ".thoth", "thoth.", "thoth echo", "1thoth",
		"thoth.\n", "th\xc3\xa9",
	};
	static const char *const bad_ifaces[] = { "Echo\"", "Ec.ho", "\xff", "9Echo", "Echo\x7f" };
	thoth_registry_Registration_t r = reg_of("echo", "1.0.0", 0, LOCAL, 1000);
	uint64_t lease;
	for (size_t i = 0; i < sizeof bad_packages / sizeof bad_packages[0]; i++) {
		thoth_common_InterfaceClaim_t c = claim_of(bad_packages[i], "Echo", 0, 0x1111);
		r.claims = (thoth_common_InterfaceClaim_list_t){ &c, 1 };
		assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease),
				 THOTH_REGISTRY_ERR_CONTRACT_REFUSED);
		assert_non_null(strstr(thoth_registry_refusal(f->reg), "names as in a schema"));
	}
	for (size_t i = 0; i < sizeof bad_ifaces / sizeof bad_ifaces[0]; i++) {
		thoth_common_InterfaceClaim_t c = claim_of("thoth.echo", bad_ifaces[i], 0, 0x1111);
		r.claims = (thoth_common_InterfaceClaim_list_t){ &c, 1 };
		assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease),
				 THOTH_REGISTRY_ERR_CONTRACT_REFUSED);
	}
	thoth_common_InterfaceClaim_t ok = claim_of("my_pkg.v2.x", "_Echo9", 0, 0x1111);
	r.claims = (thoth_common_InterfaceClaim_list_t){ &ok, 1 };
	assert_int_equal(thoth_registry_register(f->reg, f->alice, &r, 0, &lease), 0);
}

static void test_claim_against_known_schema_is_checked(void **state)
{
	fixture_t *f = *state;
	const thoth_interface_info_t *known[] = { &thoth_registry_Registry_info };
	thoth_registry_config_t cfg = { .known_interfaces = known, .n_known_interfaces = 1 };
	thoth_registry_t *reg;
	thoth_registry_owner_t *o;
	assert_int_equal(thoth_registry_new(&cfg, &reg), 0);
	assert_int_equal(thoth_registry_owner_new(reg, 0, 0, NULL, &o), 0);
	thoth_common_InterfaceClaim_t c = claim_of("thoth.registry", "Registry",
						   THOTH_REGISTRY_VERSION_MINOR, 0xbad);
	thoth_registry_Registration_t r = reg_of("registry.mirror", "1.0.0", 0, LOCAL, 1000);
	r.claims = (thoth_common_InterfaceClaim_list_t){ &c, 1 };
	uint64_t lease;
	assert_int_equal(thoth_registry_register(reg, o, &r, 0, &lease),
			 THOTH_REGISTRY_ERR_CONTRACT_REFUSED);
	c.schema_hash = THOTH_REGISTRY_SCHEMA_HASH;
	assert_int_equal(thoth_registry_register(reg, o, &r, 0, &lease), 0);
	thoth_registry_owner_drop(reg, o);
	thoth_registry_free(reg);
	(void)f;
}

/* ---- ownership, leases -------------------------------------------------------------- */

static void test_renew_by_other_owner_is_refused(void **state)
{
	fixture_t *f = *state;
	uint64_t lease = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 100, 0);
	uint64_t exp;
	assert_int_equal(thoth_registry_renew(f->reg, f->bob, lease, 10 * MS, &exp),
			 THOTH_REGISTRY_ERR_NOT_OWNER);
	assert_int_equal(thoth_registry_withdraw(f->reg, f->bob, lease), THOTH_REGISTRY_ERR_NOT_OWNER);
	assert_int_equal(thoth_registry_count(f->reg), 1);
	assert_true(thoth_registry_next_expiry(f->reg) == 100 * MS); /* not extended */
}

static void test_renew_extends_the_lease(void **state)
{
	fixture_t *f = *state;
	uint64_t lease = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 100, 0);
	uint64_t exp = 0;
	assert_int_equal(thoth_registry_renew(f->reg, f->alice, lease, 90 * MS, &exp), 0);
	assert_true(exp == 190 * MS);
	assert_true(thoth_registry_next_expiry(f->reg) == 190 * MS);
	assert_int_equal(thoth_registry_expire(f->reg, 150 * MS), 0);
	assert_int_equal(resolve(f, "echo", "", ANY, 0, 150 * MS, NULL), 0);
}

static void test_renew_after_lease_end_is_expired(void **state)
{
	fixture_t *f = *state;
	uint64_t lease = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 100, 0);
	uint64_t exp;
	assert_int_equal(thoth_registry_renew(f->reg, f->alice, lease, 100 * MS, &exp),
			 THOTH_REGISTRY_ERR_EXPIRED);
	assert_int_equal(thoth_registry_count(f->reg), 0);
	assert_int_equal(thoth_registry_renew(f->reg, f->alice, 12345, 0, &exp),
			 THOTH_REGISTRY_ERR_EXPIRED);
}

static void test_withdraw_removes_instance(void **state)
{
	fixture_t *f = *state;
	uint64_t lease = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	assert_int_equal(thoth_registry_withdraw(f->reg, f->alice, lease), 0);
	assert_int_equal(resolve(f, "echo", "", ANY, 0, 1, NULL), THOTH_REGISTRY_ERR_NOT_FOUND);
	assert_int_equal(thoth_registry_withdraw(f->reg, f->alice, lease), THOTH_REGISTRY_ERR_NOT_FOUND);
}

static void test_expire_removes_in_deadline_order(void **state)
{
	fixture_t *f = *state;
	add(f, f->alice, "a", "1.0.0", 0, LOCAL, 300, 0);
	add(f, f->alice, "b", "1.0.0", 0, LOCAL, 100, 0);
	add(f, f->alice, "c", "1.0.0", 0, LOCAL, 200, 0);
	assert_true(thoth_registry_next_expiry(f->reg) == 100 * MS);
	assert_int_equal(thoth_registry_expire(f->reg, 99 * MS), 0);
	assert_int_equal(thoth_registry_expire(f->reg, 200 * MS), 2);
	assert_true(thoth_registry_next_expiry(f->reg) == 300 * MS);
	assert_int_equal(resolve(f, "a", "", ANY, 0, 200 * MS, NULL), 0);
	assert_int_equal(thoth_registry_expire(f->reg, 300 * MS), 1);
	assert_true(thoth_registry_next_expiry(f->reg) == UINT64_MAX);
}

static void test_peer_death_removes_its_registrations(void **state)
{
	fixture_t *f = *state;
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 10000, 0);
	add(f, f->alice, "codex", "1.0.0", 0, LOCAL, 10000, 0);
	uint64_t bobs = add(f, f->bob, "echo", "1.0.0", 0, LOCAL, 10000, 0);
	thoth_registry_owner_drop(f->reg, f->alice);
	f->alice = NULL;
	assert_int_equal(thoth_registry_count(f->reg), 1);
	assert_int_equal(resolve(f, "codex", "", ANY, 0, 1, NULL), THOTH_REGISTRY_ERR_NOT_FOUND);
	uint64_t got = 0;
	assert_int_equal(resolve(f, "echo", "", ANY, 0, 1, &got), 0);
	assert_true(got == bobs);
}

/* ---- list and watch ------------------------------------------------------------------ */

static void test_list_by_prefix_and_locality_is_sorted(void **state)
{
	fixture_t *f = *state;
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	add(f, f->alice, "codex.store", "1.0.0", 0, LOCAL, 1000, 1);
	add(f, f->alice, "codex.index", "1.0.0", 0, REMOTE, 1000, 2);
	add(f, f->alice, "codex", "1.0.0", 0, LOCAL, 100, 0);   /* expired at the time of listing */
	const thoth_registry_Instance_t **v;
	size_t n;
	assert_int_equal(thoth_registry_list(f->reg, thoth_str("codex"), ANY, 500 * MS, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0]->registration.name.ptr, "codex.index");
	assert_string_equal(v[1]->registration.name.ptr, "codex.store");
	free(v);
	assert_int_equal(thoth_registry_list(f->reg, thoth_str(""), LOCAL, 500 * MS, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0]->registration.name.ptr, "codex.store");
	assert_string_equal(v[1]->registration.name.ptr, "echo");
	free(v);
}

static void test_list_page_walks_every_instance_once(void **state)
{
	fixture_t *f = *state;
	const thoth_registry_Instance_t **v;
	size_t n;
	bool more;
	/* Nothing registered: an empty page, nothing more. */
	assert_int_equal(thoth_registry_list_page(f->reg, thoth_str(""), ANY, 0, thoth_str(""), 0, 0,
						  2, &v, &n, &more), 0);
	assert_int_equal(n, 0);
	assert_false(more);
	assert_null(v);
	const char *names[] = { "e", "a", "c", "b", "d" };
	for (int i = 0; i < 5; i++)
		add(f, f->alice, names[i], "1.0.0", 0, LOCAL, 10000, (uint64_t)i);
	char after[8] = "";
	uint64_t at = 0, lease = 0;
	char seen[8] = "";
	int pages = 0;
	do {
		assert_int_equal(thoth_registry_list_page(f->reg, thoth_str(""), ANY, 100, thoth_str(after),
							  at, lease, 2, &v, &n, &more), 0);
		assert_true(n <= 2);
		for (size_t i = 0; i < n; i++)
			strncat(seen, v[i]->registration.name.ptr, 1);
		if (n) {
			snprintf(after, sizeof after, "%s", v[n - 1]->registration.name.ptr);
			at = v[n - 1]->registered_at_ns;
			lease = v[n - 1]->lease;
		}
		free(v);
		pages++;
	} while (more);
	assert_string_equal(seen, "abcde");
	assert_int_equal(pages, 3);
}

static void test_live_name_is_refused_to_another_uid_or_executable(void **state)
{
	fixture_t *f = *state;
	thoth_registry_owner_t *mallory;
	assert_int_equal(thoth_registry_owner_new(f->reg, 2000, 33, "mallory", &mallory), 0);
	thoth_registry_owner_set_exe(f->alice, 1, 100);
	thoth_registry_owner_set_exe(f->bob, 1, 100);   /* same uid, same executable */
	thoth_registry_owner_set_exe(mallory, 1, 100);
	uint64_t lease = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	add(f, f->bob, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	thoth_registry_Registration_t r = reg_of("echo", "1.0.0", 0, LOCAL, 1000);
	uint64_t l;
	assert_int_equal(thoth_registry_register(f->reg, mallory, &r, 0, &l),
			 THOTH_REGISTRY_ERR_NOT_OWNER);
	assert_non_null(strstr(thoth_registry_refusal(f->reg), "another uid"));
	/* Same uid, another executable. */
	thoth_registry_owner_t *other;
	assert_int_equal(thoth_registry_owner_new(f->reg, 1000, 44, "other", &other), 0);
	thoth_registry_owner_set_exe(other, 1, 200);
	assert_int_equal(thoth_registry_register(f->reg, other, &r, 0, &l),
			 THOTH_REGISTRY_ERR_NOT_OWNER);
	assert_non_null(strstr(thoth_registry_refusal(f->reg), "another executable"));
	/* Free once every instance is gone. */
	assert_int_equal(thoth_registry_withdraw(f->reg, f->alice, lease), 0);
	thoth_registry_owner_drop(f->reg, f->bob);
	f->bob = NULL;
	assert_int_equal(thoth_registry_register(f->reg, mallory, &r, 0, &l), 0);
	thoth_registry_owner_drop(f->reg, mallory);
	thoth_registry_owner_drop(f->reg, other);
}

/* The name's holder is compared with one local instance the registry keeps
 * at hand (it walked the name's instances per registration up to the first
 * local one: past every other host's instance before it).  Here 200 other
 * hosts' instances come first; the one kept is withdrawn, and the rule still
 * holds against another uid, naming the first local instance's pid, until
 * the last local instance goes. */
static void test_name_holder_is_kept_past_other_hosts_instances(void **state)
{
	fixture_t *f = *state;
	thoth_registry_owner_t *peer, *mallory;
	assert_int_equal(thoth_registry_owner_new(f->reg, 1000, 5, "peer", &peer), 0);
	thoth_registry_owner_set_federated(peer);
	assert_int_equal(thoth_registry_owner_new(f->reg, 2000, 33, "mallory", &mallory), 0);
	for (int i = 0; i < 200; i++)
		add(f, peer, "echo", "1.0.0", 0, REMOTE, 0, 0);
	uint64_t first = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 0, 0);
	add(f, f->bob, "echo", "1.0.0", 0, LOCAL, 0, 0);
	thoth_registry_Registration_t r = reg_of("echo", "1.0.0", 0, LOCAL, 0);
	uint64_t l;
	assert_int_equal(thoth_registry_register(f->reg, mallory, &r, 0, &l), THOTH_REGISTRY_ERR_NOT_OWNER);
	assert_non_null(strstr(thoth_registry_refusal(f->reg), "another uid (pid 11)"));
	assert_int_equal(thoth_registry_withdraw(f->reg, f->alice, first), 0);
	assert_int_equal(thoth_registry_register(f->reg, mallory, &r, 0, &l), THOTH_REGISTRY_ERR_NOT_OWNER);
	assert_non_null(strstr(thoth_registry_refusal(f->reg), "another uid (pid 22)"));
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 0, 0);      /* same uid: welcome */
	thoth_registry_owner_drop(f->reg, f->bob);
	f->bob = NULL;
	thoth_registry_owner_drop(f->reg, f->alice);
	f->alice = NULL;
	assert_int_equal(thoth_registry_register(f->reg, mallory, &r, 0, &l), 0);   /* free again */
	thoth_registry_owner_drop(f->reg, mallory);
	thoth_registry_owner_drop(f->reg, peer);
}

static void test_watch_sees_add_remove_expire(void **state)
{
	fixture_t *f = *state;
	uint64_t w;
	assert_int_equal(thoth_registry_watch(f->reg, f->bob, thoth_str("ec"), &w), 0);
	uint64_t l1 = add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	add(f, f->alice, "codex", "1.0.0", 0, LOCAL, 1000, 0);  /* not matching the prefix */
	uint64_t l2 = add(f, f->alice, "echo", "1.0.0", 1, LOCAL, 100, 0);
	assert_int_equal(thoth_registry_withdraw(f->reg, f->alice, l1), 0);
	assert_int_equal(thoth_registry_expire(f->reg, 100 * MS), 1);
	assert_int_equal(f->n_events, 4);
	const thoth_registry_ChangeKind_t kinds[] = {
		THOTH_REGISTRY_CHANGE_KIND_ADDED, THOTH_REGISTRY_CHANGE_KIND_ADDED,
		THOTH_REGISTRY_CHANGE_KIND_REMOVED, THOTH_REGISTRY_CHANGE_KIND_EXPIRED,
	};
	const uint64_t leases[] = { l1, l2, l1, l2 };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(f->events[i].kind, kinds[i]);
		assert_true(f->events[i].lease == leases[i]);
		assert_true(f->events[i].watch_id == w);
		assert_ptr_equal(f->events[i].watcher_user, "bob");
		assert_string_equal(f->events[i].name, "echo");
	}
	assert_int_equal(thoth_registry_unwatch(f->reg, f->bob, w), 0);
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 200 * MS);
	assert_int_equal(f->n_events, 4);
}

static void test_unwatch_of_another_owners_watch_is_not_found(void **state)
{
	fixture_t *f = *state;
	uint64_t w;
	assert_int_equal(thoth_registry_watch(f->reg, f->bob, thoth_str(""), &w), 0);
	assert_int_equal(thoth_registry_unwatch(f->reg, f->alice, w), THOTH_REGISTRY_ERR_NOT_FOUND);
	assert_int_equal(thoth_registry_watch_count(f->reg), 1);
}

static void test_peer_death_tells_other_watchers(void **state)
{
	fixture_t *f = *state;
	uint64_t w_alice, w_bob;
	assert_int_equal(thoth_registry_watch(f->reg, f->alice, thoth_str(""), &w_alice), 0);
	assert_int_equal(thoth_registry_watch(f->reg, f->bob, thoth_str(""), &w_bob), 0);
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	f->n_events = 0;
	thoth_registry_owner_drop(f->reg, f->alice);
	f->alice = NULL;
	/* Only bob hears of it: the dying owner's own watch went first. */
	assert_int_equal(f->n_events, 1);
	assert_true(f->events[0].watch_id == w_bob);
	assert_int_equal(f->events[0].kind, THOTH_REGISTRY_CHANGE_KIND_REMOVED);
	assert_int_equal(thoth_registry_watch_count(f->reg), 1);
}

static void test_empty_prefix_may_be_a_null_view(void **state)
{
	/* Found by fuzz_thothd_control (UBSan: memcmp with NULL): a decoded
	 * empty string may be { NULL, 0 }. */
	fixture_t *f = *state;
	thoth_str_t none = { NULL, 0 };
	uint64_t w;
	assert_int_equal(thoth_registry_watch(f->reg, f->bob, none, &w), 0);
	add(f, f->alice, "echo", "1.0.0", 0, LOCAL, 1000, 0);
	assert_int_equal(f->n_events, 1);
	const thoth_registry_Instance_t **v;
	size_t n;
	assert_int_equal(thoth_registry_list(f->reg, none, ANY, 1, &v, &n), 0);
	assert_int_equal(n, 1);
	free(v);
}

/* ---- scale ------------------------------------------------------------------------------ */

static void test_hundred_thousand_registrations(void **state)
{
	(void)state;
	thoth_registry_config_t cfg = { .max_per_owner = 200000, .seed = 7 };
	thoth_registry_t *reg;
	thoth_registry_owner_t *o;
	assert_int_equal(thoth_registry_new(&cfg, &reg), 0);
	assert_int_equal(thoth_registry_owner_new(reg, 0, 0, NULL, &o), 0);
	enum { N = 100000 };
	char name[32];
	for (uint32_t i = 0; i < N; i++) {
		snprintf(name, sizeof name, "svc%u", i);
		thoth_registry_Registration_t r = reg_of(name, "1.0.0", 0, LOCAL, 1000 + i % 5000);
		uint64_t lease;
		assert_int_equal(thoth_registry_register(reg, o, &r, 0, &lease), 0);
	}
	assert_int_equal(thoth_registry_count(reg), N);
	const thoth_registry_Instance_t *inst;
	assert_int_equal(thoth_registry_resolve(reg, thoth_str("svc99999"), thoth_str(""), ANY, 0, 1,
						&inst), 0);
	assert_string_equal(inst->registration.name.ptr, "svc99999");
	/* Half the leases end by 3.5 s; expiry removes exactly those. */
	size_t expired = thoth_registry_expire(reg, 3499 * MS);
	size_t expect = 0;
	for (uint32_t i = 0; i < N; i++)
		expect += 1000 + i % 5000 <= 3499;
	assert_int_equal(expired, expect);
	assert_true(thoth_registry_next_expiry(reg) == 3500 * MS);
	thoth_registry_owner_drop(reg, o);
	assert_int_equal(thoth_registry_count(reg), 0);
	thoth_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resolve_finds_registered_instance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_unknown_name_is_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_skips_expired_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_prefers_same_numa_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_prefers_same_host_over_remote, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_round_robins_among_equals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_semver_min_version, setup, teardown),
		cmocka_unit_test(test_semver_parse_is_strict),
		cmocka_unit_test_setup_teardown(test_bad_names_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_version_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endpoint_with_control_bytes_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_per_client_limit, setup_limit_3, teardown),
		cmocka_unit_test_setup_teardown(test_contract_mismatch_with_live_instance_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_instances_neither_block_nor_are_blocked_by_local_claims,
						setup, teardown),
		cmocka_unit_test(test_conflict_index_matches_the_walk),
		cmocka_unit_test(test_claim_index_refuses_what_the_walk_refuses),
		cmocka_unit_test(test_claim_memory_shrinks_when_far_above_need),
		cmocka_unit_test_setup_teardown(test_claim_with_wrong_interface_id_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_names_must_be_schema_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_against_known_schema_is_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_by_other_owner_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_extends_the_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_after_lease_end_is_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_withdraw_removes_instance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_removes_in_deadline_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_death_removes_its_registrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_by_prefix_and_locality_is_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_page_walks_every_instance_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_name_is_refused_to_another_uid_or_executable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_holder_is_kept_past_other_hosts_instances, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_sees_add_remove_expire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwatch_of_another_owners_watch_is_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_death_tells_other_watchers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_prefix_may_be_a_null_view, setup, teardown),
		cmocka_unit_test(test_hundred_thousand_registrations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
