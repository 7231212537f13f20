/*
 * kv-client - the example client.
 *
 *   kv-client [--runtime-dir DIR] put KEY VALUE | get KEY | forget KEY
 *
 * Find "kv" through thothd's registry, open a channel to the endpoint it
 * names (the handshake checks both sides speak the same Kv schema), call
 * the generated stubs, close.  Results point into the channel until the
 * next call on it.
 */
#define _POSIX_C_SOURCE 200809L         /* clock_gettime, nanosleep under -std=c11 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <thoth/channel.h>
#include <thoth/idl/registry.thoth.h>  /* as installed: copied out of the tree, it builds */
#include <thoth/service.h>

#include "kv.thoth.h"

/* The endpoint of a live "kv" into ADDR.  A service registers in the
 * background after it starts, so a client started with it asks again
 * until a deadline rather than failing at once. */
static int resolve_kv(const char *runtime_dir, char *addr, size_t cap)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		thoth_control_t ctl;
		int r = thoth_control_connect(&ctl, runtime_dir, 1000);
		if (!r) {
			thoth_registry_Registry_resolve_req_t req = {
				.name = thoth_str("kv"), .min_version = thoth_str("1.0.0"),
				.prefer = THOTH_COMMON_LOCALITY_NUMA,
			};
			thoth_registry_Registry_resolve_resp_t resp;
			uint64_t scratch[1024];
			thoth_arena_t arena;
			thoth_arena_init(&arena, scratch, sizeof scratch);
			r = thoth_registry_Registry_resolve(&ctl.client, &req, &resp, &arena);
			if (!r) {
				const thoth_str_t *a = &resp.instance.registration.endpoint.addr;
				r = a->len < cap ? 0 : THOTH_E_NO_SPACE;
				if (!r)
					snprintf(addr, cap, "%.*s", (int)a->len, a->ptr);
			}
			thoth_control_close(&ctl);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!r || r == THOTH_E_NO_SPACE || now.tv_sec - start.tv_sec >= 5)
			return r;
		nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	}
}

int main(int argc, char **argv)
{
	static const char usage[] = "usage: kv-client [--runtime-dir DIR] put KEY VALUE | get KEY | forget KEY\n";
	/* asked for: the usage on stdout, exit 0 (it was the error's exit 2) */
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return 0;
	}
	const char *runtime_dir = NULL;
	if (argc > 2 && !strcmp(argv[1], "--runtime-dir")) {
		runtime_dir = argv[2];
		argc -= 2;
		argv += 2;
	}
	/* put takes two arguments, get and forget one: an extra one is a
	 * mistake said, not a word silently dropped. */
	if (argc < 3 || argc != (!strcmp(argv[1], "put") ? 4 : 3)) {
		fputs(usage, stderr);
		return 2;
	}
	char addr[108];
	int r = resolve_kv(runtime_dir, addr, sizeof addr);
	if (r) {
		fprintf(stderr, "kv-client: cannot find kv through thothd: %s\n",
			r == THOTH_E_REMOTE ? "no live instance" : thoth_strerror(r));
		return 1;
	}
	thoth_chan_config_t cfg = { .iface = &example_kv_Kv_info };
	thoth_chan_t *ch;
	char why[300];
	r = thoth_chan_connect(addr, &cfg, &ch, why, sizeof why);
	if (r) {
		fprintf(stderr, "kv-client: %s: %s\n", thoth_strerror(r), why);
		return 1;
	}
	thoth_client_t *c = thoth_chan_client(ch);
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);

	if (!strcmp(argv[1], "put")) {
		example_kv_Kv_put_req_t req = {
			.key = thoth_str(argv[2]),
			.value = { .ptr = (const uint8_t *)argv[3], .len = (uint32_t)strlen(argv[3]) },
		};
		example_kv_Kv_put_resp_t resp;
		r = example_kv_Kv_put(c, &req, &resp, &arena);
	} else if (!strcmp(argv[1], "get")) {
		example_kv_Kv_get_req_t req = { .key = thoth_str(argv[2]) };
		example_kv_Kv_get_resp_t resp;
		r = example_kv_Kv_get(c, &req, &resp, &arena);
		if (!r)
			printf("%.*s\n", (int)resp.value.len, (const char *)resp.value.ptr);
	} else if (!strcmp(argv[1], "forget")) {
		example_kv_Kv_forget_req_t req = { .key = thoth_str(argv[2]) };
		r = example_kv_Kv_forget(c, &req);
	} else {
		fprintf(stderr, "kv-client: unknown command %s\n", argv[1]);
		r = THOTH_E_INVAL;
	}
	if (r == THOTH_E_REMOTE)
		fprintf(stderr, "kv-client: %s\n", c->remote_message);   /* "NotFound" */
	else if (r)
		fprintf(stderr, "kv-client: %s\n", thoth_strerror(r));
	thoth_chan_close(ch);
	return r ? 1 : 0;
}
