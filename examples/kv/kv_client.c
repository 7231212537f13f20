/*
 * kv-client - the example client.
 *
 *   kv-client SOCKET put KEY VALUE | get KEY | forget KEY
 *
 * Open a channel (the handshake checks both sides speak the same Kv
 * schema), call the generated stubs, close.  Results point into the
 * channel until the next call on it.
 */
#include <stdio.h>
#include <string.h>

#include "kv.thoth.h"
#include "thoth/channel.h"

int main(int argc, char **argv)
{
	if (argc < 4 || (!strcmp(argv[2], "put") && argc != 5)) {
		fprintf(stderr, "usage: kv-client SOCKET put KEY VALUE | get KEY | forget KEY\n");
		return 2;
	}
	thoth_chan_config_t cfg = { .iface = &example_kv_Kv_info };
	thoth_chan_t *ch;
	char why[300];
	int r = thoth_chan_connect(argv[1], &cfg, &ch, why, sizeof why);
	if (r) {
		fprintf(stderr, "kv-client: %s: %s\n", thoth_strerror(r), why);
		return 1;
	}
	thoth_client_t *c = thoth_chan_client(ch);
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);

	if (!strcmp(argv[2], "put")) {
		example_kv_Kv_put_req_t req = {
			.key = thoth_str(argv[3]),
			.value = { .ptr = (const uint8_t *)argv[4], .len = (uint32_t)strlen(argv[4]) },
		};
		example_kv_Kv_put_resp_t resp;
		r = example_kv_Kv_put(c, &req, &resp, &arena);
	} else if (!strcmp(argv[2], "get")) {
		example_kv_Kv_get_req_t req = { .key = thoth_str(argv[3]) };
		example_kv_Kv_get_resp_t resp;
		r = example_kv_Kv_get(c, &req, &resp, &arena);
		if (!r)
			printf("%.*s\n", (int)resp.value.len, (const char *)resp.value.ptr);
	} else if (!strcmp(argv[2], "forget")) {
		example_kv_Kv_forget_req_t req = { .key = thoth_str(argv[3]) };
		r = example_kv_Kv_forget(c, &req);
	} else {
		fprintf(stderr, "kv-client: unknown command %s\n", argv[2]);
		r = THOTH_E_INVAL;
	}
	if (r == THOTH_E_REMOTE)
		fprintf(stderr, "kv-client: %s\n", c->remote_message);   /* "NotFound" */
	else if (r)
		fprintf(stderr, "kv-client: %s\n", thoth_strerror(r));
	thoth_chan_close(ch);
	return r ? 1 : 0;
}
