/* rpc_full_way.h - thoth_server_dispatch the full way (rpc_full_way.c). */
#ifndef THOTH_TEST_RPC_FULL_WAY_H
#define THOTH_TEST_RPC_FULL_WAY_H

#include "thoth/rpc.h"

int thoth_full_server_dispatch(const thoth_interface_info_t *iface, thoth_invoke_fn invoke,
			       const void *handlers, void *self,
			       const uint8_t *msg, size_t len, thoth_server_io_t *io);

#endif
