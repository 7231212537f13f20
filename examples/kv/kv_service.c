/*
 * kv-service - the example service: a key-value store on a channel,
 * registered with thothd so that clients find it by name.
 *
 *   kv-service [--runtime-dir DIR] [--max-bytes N]
 *
 * Everything a service needs: implement the generated handlers, serve them
 * on a channel socket, register that socket with thothd as "kv", run the
 * loop.  Requests arrive through shared memory; strings and bytes in a
 * request point into the channel (no copy), so a handler that keeps them
 * must copy them, as put() does.  What clients put is bounded in total
 * (--max-bytes, default 64 MiB): each entry costs its key, its value and
 * ENTRY_COST for its record and three allocations (16 M empty entries cost
 * ~1 GiB, not 0); a put past it is refused with the declared error Full,
 * and the store keeps what it had.  find() is a linear scan: this is an
 * example, not a store for many keys.
 * SIGINT/SIGTERM stop it; thothd drops the registration when the process
 * goes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv.thoth.h"
#include "thoth/channel.h"
#include "thoth/log.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/trace.h"

typedef struct entry {
	struct entry *next;
	char *key;
	uint32_t klen;
	uint8_t *value;
	uint32_t len;
} entry_t;

/* What an entry costs besides its key and value bytes: the record and
 * malloc's overhead (about 16 bytes) for each of its three allocations. */
#define ENTRY_COST (sizeof(entry_t) + 3 * 16)

static entry_t *table;
static uint64_t held, max_bytes = 64u << 20;    /* what the entries cost, and the bound */

/* Keys are compared by length and bytes: a key may hold a NUL (it is a
 * thoth string, pointer + length), which strndup() and strlen() cut. */
static entry_t *find(thoth_str_t key)
{
	for (entry_t *e = table; e; e = e->next)
		if (e->klen == key.len && !memcmp(e->key, key.ptr, key.len))
			return e;
	return NULL;
}

static int on_put(void *self, const example_kv_Kv_put_req_t *req, example_kv_Kv_put_resp_t *resp,
		  thoth_arena_t *arena)
{
	(void)self;     /* the store is this file's: no per-server state */
	(void)resp;     /* put() answers nothing but its status */
	(void)arena;
	entry_t *e = find(req->key);
	/* every client's puts together: refused, not grown, past the bound */
	uint64_t after = held - (e ? e->len : 0) + (e ? 0 : req->key.len + ENTRY_COST) + req->value.len;
	if (after > max_bytes)
		return EXAMPLE_KV_ERR_FULL;
	uint8_t *copy = malloc(req->value.len ? req->value.len : 1);
	if (!copy)
		return THOTH_E_NOMEM;
	memcpy(copy, req->value.ptr, req->value.len);
	if (!e) {
		e = calloc(1, sizeof *e);
		if (!e || !(e->key = malloc(req->key.len ? req->key.len : 1))) {
			free(e);
			free(copy);
			return THOTH_E_NOMEM;
		}
		memcpy(e->key, req->key.ptr, req->key.len);
		e->klen = req->key.len;
		e->next = table;
		table = e;
	}
	free(e->value);
	e->value = copy;
	e->len = req->value.len;
	held = after;
	return 0;
}

static int on_get(void *self, const example_kv_Kv_get_req_t *req, example_kv_Kv_get_resp_t *resp,
		  thoth_arena_t *arena)
{
	(void)self;
	(void)arena;    /* the answer points at the stored value: nothing to build */
	entry_t *e = find(req->key);
	if (!e)
		return EXAMPLE_KV_ERR_NOT_FOUND;     /* the client sees THOTH_E_REMOTE + "NotFound" */
	resp->value.ptr = e->value;             /* encoded into the response slot/buffer */
	resp->value.len = e->len;
	return 0;
}

static void on_forget(void *self, const example_kv_Kv_forget_req_t *req)
{
	(void)self;
	entry_t *e = find(req->key);
	if (!e)
		return;
	entry_t **p = &table;
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	held -= e->klen + e->len + ENTRY_COST;
	free(e->key);
	free(e->value);
	free(e);
}

#ifndef KV_SERVICE_NO_MAIN   /* test_kv_handlers includes this file for its handlers */
static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	(void)info;     /* which signal: either stops us */
	(void)arg;
	thoth_loop_stop(loop);
}

static void on_state(void *arg, thoth_service_state_t state, int err, const char *why)
{
	(void)arg;
	(void)err;      /* WHY says it in words */
	static const char *const names[] = { "connecting to thothd", "registered", "refused" };
	fprintf(stderr, "kv-service: %s%s%s\n", names[state], *why ? ": " : "", why);
}

int main(int argc, char **argv)
{
	static const char usage[] = "usage: kv-service [--runtime-dir DIR] [--max-bytes N]\n";
	/* asked for: the usage on stdout, exit 0 (it was the error's exit 2) */
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return 0;
	}
	const char *runtime_arg = NULL;
	for (int i = 1; i < argc; i += 2) {
		char *end = NULL;
		if (i + 1 < argc && strcmp(argv[i], "--runtime-dir") == 0) {
			runtime_arg = argv[i + 1];
		} else if (i + 1 < argc && strcmp(argv[i], "--max-bytes") == 0) {
			errno = 0;
			max_bytes = strtoull(argv[i + 1], &end, 10);
			if (errno || end == argv[i + 1] || *end || argv[i + 1][0] == '-') {
				fprintf(stderr, "kv-service: --max-bytes: '%s' is not a number of bytes\n",
					argv[i + 1]);
				return 2;
			}
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	/* our channel socket lives in the runtime dir, next to thothd's */
	char dir[4096], sock[108];
	if (thoth_runtime_dir(runtime_arg, dir, sizeof dir) ||
	    snprintf(sock, sizeof sock, "%s/kv-%d.sock", dir, (int)getpid()) >= (int)sizeof sock) {
		fprintf(stderr, "kv-service: runtime dir path too long\n");
		return 1;
	}
	/* a trace buffer, every category off until `thothctl trace start` */
	thoth_trace_init_process("kv");
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGINT, on_stop, NULL);

	static const example_kv_Kv_handlers_t handlers = { .put = on_put, .get = on_get, .forget = on_forget };
	thoth_chan_server_config_t scfg = {
		.path = sock,
		.iface = &example_kv_Kv_info,
		.invoke = example_kv_Kv_invoke,
		.handlers = &handlers,
	};
	thoth_log_set_handler(thoth_log_stderr, NULL, THOTH_LOG_WARN);   /* libthoth never prints */
	thoth_chan_server_t *srv;
	char why[300];
	int r = thoth_chan_server_new(loop, &scfg, &srv, why, sizeof why);
	if (r) {
		fprintf(stderr, "kv-service: %s\n", why);
		return 1;
	}
	const thoth_interface_info_t *ifaces[] = { &example_kv_Kv_info };
	thoth_service_config_t cfg = {
		.runtime_dir = runtime_arg, .name = "kv", .version = "1.1.0", .endpoint = sock,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .interfaces = ifaces, .n_interfaces = 1,
		.on_state = on_state,
	};
	thoth_service_t *svc;
	r = thoth_service_register(loop, &cfg, &svc, why, sizeof why);
	if (r) {
		fprintf(stderr, "kv-service: cannot register: %s: %s\n", thoth_strerror(r), why);
		thoth_chan_server_free(srv);
		return 1;
	}
	thoth_loop_run(loop);                   /* until SIGINT or SIGTERM */
	thoth_service_withdraw(svc);
	thoth_chan_server_free(srv);            /* closes every channel, removes the socket */
	thoth_loop_free(loop);
	return 0;
}
#endif
