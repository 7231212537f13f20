/*
 * kv-service - the example service: a key-value store on a channel.
 *
 *   kv-service SOCKET
 *
 * Everything a service needs: implement the generated handlers, name them
 * in a config, call thoth_serve().  Requests arrive through shared memory;
 * strings and bytes in a request point into the channel (no copy), so a
 * handler that keeps them must copy them, as put() does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.thoth.h"
#include "thoth/channel.h"
#include "thoth/log.h"

typedef struct entry {
	struct entry *next;
	char *key;
	uint8_t *value;
	uint32_t len;
} entry_t;

static entry_t *table;

static entry_t *find(thoth_str_t key)
{
	for (entry_t *e = table; e; e = e->next)
		if (strlen(e->key) == key.len && !memcmp(e->key, key.ptr, key.len))
			return e;
	return NULL;
}

static int on_put(void *self, const example_kv_Kv_put_req_t *req, example_kv_Kv_put_resp_t *resp,
		  thoth_arena_t *arena)
{
	entry_t *e = find(req->key);
	if (!e) {
		e = calloc(1, sizeof *e);
		if (!e || !(e->key = strndup(req->key.ptr, req->key.len)))
			return THOTH_E_NOMEM;
		e->next = table;
		table = e;
	}
	uint8_t *copy = malloc(req->value.len ? req->value.len : 1);
	if (!copy)
		return THOTH_E_NOMEM;
	memcpy(copy, req->value.ptr, req->value.len);
	free(e->value);
	e->value = copy;
	e->len = req->value.len;
	return 0;
}

static int on_get(void *self, const example_kv_Kv_get_req_t *req, example_kv_Kv_get_resp_t *resp,
		  thoth_arena_t *arena)
{
	entry_t *e = find(req->key);
	if (!e)
		return EXAMPLE_KV_ERR_NOT_FOUND;     /* the client sees THOTH_E_REMOTE + "NotFound" */
	resp->value.ptr = e->value;             /* encoded into the response slot/buffer */
	resp->value.len = e->len;
	return 0;
}

static void on_forget(void *self, const example_kv_Kv_forget_req_t *req)
{
	entry_t *e = find(req->key);
	if (!e)
		return;
	entry_t **p = &table;
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	free(e->key);
	free(e->value);
	free(e);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: kv-service SOCKET\n");
		return 2;
	}
	static const example_kv_Kv_handlers_t handlers = { .put = on_put, .get = on_get, .forget = on_forget };
	thoth_chan_server_config_t cfg = {
		.path = argv[1],
		.iface = &example_kv_Kv_info,
		.invoke = example_kv_Kv_invoke,
		.handlers = &handlers,
	};
	thoth_log_set_handler(thoth_log_stderr, NULL, THOTH_LOG_WARN);   /* libthoth never prints */
	return thoth_serve(&cfg) ? 1 : 0;      /* until SIGINT or SIGTERM */
}
