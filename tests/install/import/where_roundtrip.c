/*
 * where-roundtrip - a program built from a user's schema that imports the
 * installed thoth.common (tests/install/import/where.tidl.in): its
 * generated header includes "common.thoth.h", which the install puts in
 * include/thoth/idl, and its code calls thoth_common_Endpoint's encoder
 * and decoder in libthoth.  Encodes a response, decodes it, compares.
 */
#include <stdio.h>
#include <string.h>

#include "where.thoth.h"

int main(void)
{
	user_where_Where_locate_resp_t in = {
		.ep = { .addr = thoth_str("/run/where.sock"), .numa_node = 3 },
	}, out;
	thoth_msg_header_t meta = { 0 };
	uint8_t buf[512];
	uint64_t scratch[64];
	thoth_arena_t arena;
	size_t len;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = user_where_Where_locate_resp_encode_msg(buf, sizeof buf, &meta, &in, &len);
	if (!r)
		r = user_where_Where_locate_resp_decode_msg(buf, len, &out, &arena);
	if (r) {
		fprintf(stderr, "where-roundtrip: %s\n", thoth_strerror(r));
		return 1;
	}
	if (out.ep.numa_node != 3 || out.ep.addr.len != strlen("/run/where.sock") ||
	    memcmp(out.ep.addr.ptr, "/run/where.sock", out.ep.addr.len)) {
		fprintf(stderr, "where-roundtrip: the endpoint came back changed\n");
		return 1;
	}
	printf("where-roundtrip: ok\n");
	return 0;
}
