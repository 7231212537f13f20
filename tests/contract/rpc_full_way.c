/*
 * rpc_full_way.c - kernel/ipc/rpc.c built a second time, every public
 * function renamed thoth_full_*, with the dispatcher's plain-request test
 * switched off (THOTH_RPC_FULL_WAY_ONLY): every request takes the full
 * header decode and the checks after it.  test_dispatch_fast compares
 * thoth_server_dispatch against it, as test_encode_fast compares thothc's
 * straight-line encoder against the builder.
 */
#define THOTH_RPC_FULL_WAY_ONLY 1
#define thoth_interface_method thoth_full_interface_method
#define thoth_wire_encode_error thoth_full_wire_encode_error
#define thoth_wire_decode_error thoth_full_wire_decode_error
#define thoth_method_size thoth_full_method_size
#define thoth_method_encode thoth_full_method_encode
#define thoth_method_decode thoth_full_method_decode
#define thoth_client_init thoth_full_client_init
#define thoth_client_release thoth_full_client_release
#define thoth_client_begin thoth_full_client_begin
#define thoth_client_abort thoth_full_client_abort
#define thoth_client_commit thoth_full_client_commit
#define thoth_client_call thoth_full_client_call
#define thoth_server_dispatch thoth_full_server_dispatch
#define thoth__server_dispatch_table thoth_full__server_dispatch_table
#define thoth__server_fail thoth_full__server_fail
#define thoth_rpc_oneways_dropped thoth_full_rpc_oneways_dropped
#define thoth__rpc_oneway_log_reset thoth_full__rpc_oneway_log_reset
#define thoth__rpc_oneway_mirror thoth_full__rpc_oneway_mirror
#define thoth__why_text thoth_full__why_text
#define thoth__why_text_cut thoth_full__why_text_cut
#define thoth__utf8_whole thoth_full__utf8_whole
#define thoth__escaped_whole thoth_full__escaped_whole
#include "../../kernel/ipc/rpc.c"
#include "../../kernel/ipc/why_text.c"
