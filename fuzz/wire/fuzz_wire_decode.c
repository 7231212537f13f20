/*
 * fuzz_wire_decode.c - arbitrary bytes as a received message.
 *
 * Every system interface's server dispatch gets the bytes (as a peer's
 * request would arrive), and every method's request and response decoder
 * gets them too.  The property: each call returns 0 or a THOTH_E_* code;
 * ASan/UBSan see no out-of-bounds access, no undefined behaviour, no leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry.thoth.h"
#include "timer.thoth.h"
#include "trace.thoth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int reg_register(void *self, const thoth_registry_Registry_register_req_t *req,
			thoth_registry_Registry_register_resp_t *resp, thoth_arena_t *arena)
{
	resp->lease = req->reg.ttl_ms;
	return 0;
}

static int reg_list(void *self, const thoth_registry_Registry_list_req_t *req,
		    thoth_registry_Registry_list_resp_t *resp, thoth_arena_t *arena)
{
	return req->prefix.len ? 0 : THOTH_REGISTRY_ERR_NOT_FOUND;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const thoth_interface_info_t *const ifaces[] = {
		&thoth_registry_Registry_info, &thoth_registry_RegistryEvents_info,
		&thoth_timer_Timer_info, &thoth_timer_TimerEvents_info,
		&thoth_trace_TraceControl_info,
	};
	static uint64_t arena_mem[1 << 14], out[1 << 14], value[1 << 10];
	if (size > (1u << 20))
		return 0;
	/* Decoders require an 8-aligned message, as transports provide. */
	uint64_t *msg = malloc(size + 8);
	if (!msg)
		return 0;
	memcpy(msg, data, size);

	for (size_t i = 0; i < sizeof ifaces / sizeof ifaces[0]; i++) {
		for (size_t k = 0; k < ifaces[i]->n_methods; k++) {
			const thoth_method_info_t *m = ifaces[i]->methods[k];
			for (int resp = 0; resp < 2; resp++) {
				if (resp && m->oneway)
					continue;
				thoth_arena_t a;
				thoth_arena_init(&a, arena_mem, sizeof arena_mem);
				int r = thoth_method_decode(m, resp, (uint8_t *)msg, size, value, &a);
				if (r > 0)
					abort();
			}
		}
	}

	/* The registry server's dispatch with handlers that accept everything. */
	thoth_registry_Registry_handlers_t h;
	memset(&h, 0, sizeof h);
	h.register_ = reg_register;
	h.list = reg_list;
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	thoth_server_io_t io = { .out = (uint8_t *)out, .cap = sizeof out, .arena = &a,
				 .features = ~0ull };
	int r = thoth_registry_Registry_dispatch(&h, NULL, (uint8_t *)msg, size, &io);
	if (r > 0 || io.out_len > io.cap)
		abort();
	free(msg);
	return 0;
}
