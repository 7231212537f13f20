/*
 * fed_view.h - what Daemon.status and the dashboard show of the federation
 * (SCALE-3, docs/OPERATIONS.md "Federation").  thothd_core and thothd_http
 * know no federation.c: main() sets thothd_t's federation_view to
 * thothd_federation_view when thothd runs with --etcd.
 */
#ifndef THOTHD_FED_VIEW_H
#define THOTHD_FED_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct thothd_fed_view {
	const char *etcd;               /* the endpoint URL (valid until the next loop turn) */
	const char *host_id;            /* this host's id in etcd */
	bool etcd_up;                   /* the last lease call was answered */
	bool lease_alive;
	bool watching;
	uint64_t etcd_down_since_ns;    /* CLOCK_MONOTONIC since etcd stopped answering; 0: it answers */
	uint64_t left_out;              /* other hosts' keys not taken (bad values, refused) */
	uint32_t ttl_s, local, remote;
	uint32_t hosts_total;           /* other hosts with instances here */
} thothd_fed_view_t;

/* One other host with instances here.  ID valid until the next loop turn. */
typedef struct thothd_fed_host {
	const char *id;
	uint32_t instances;
	uint64_t last_seen_ns;          /* CLOCK_MONOTONIC: its last key applied */
} thothd_fed_host_t;

/* Fill VIEW and up to MAX of HOSTS (by id); the number of hosts written. */
typedef size_t (*thothd_fed_view_fn)(void *arg, thothd_fed_view_t *view, thothd_fed_host_t *hosts, size_t max);

#endif
