/*
 * etcd_proc.h - a real etcd for the federation test and benchmark: on
 * 127.0.0.1 only, on ports the kernel picked, its data dir in a harness's
 * temp dir (tests/thothd/harness.h), killed with the harness.
 */
#ifndef THOTH_TESTS_FEDERATION_ETCD_PROC_H
#define THOTH_TESTS_FEDERATION_ETCD_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0,
 * then closed), or 0. */
uint16_t etcd_free_port(void);

/* For harness_wait_until: ARG is the client port (uint16_t *); true once
 * etcd's GET /health there says "health":"true". */
bool etcd_answers(void *arg);

/* Does PID hold the socket that listens on 127.0.0.1:PORT?  The ports
 * are the kernel's pick of a moment before (etcd_free_port): another
 * process may bind one first, and then etcd_answers may be its etcd (of
 * another test run) while ours exited on "address already in use". */
bool etcd_listens(pid_t pid, uint16_t port);

typedef struct etcd_proc {
	pid_t pid;
	uint16_t client_port;
} etcd_proc_t;

/* For harness_wait_until: ARG an etcd_proc_t *; etcd_answers on its client
 * port and etcd_listens: the etcd answering there is the one started. */
bool etcd_ready(void *arg);

/* ETCD started under H as one member serving CLIENT_PORT (peers on
 * PEER_PORT), its data in H's dir/etcd-data: kept across restarts on the
 * same ports.  Returns harness_spawn's pid; the caller waits for
 * etcd_answers. */
pid_t etcd_spawn(harness_t *h, const char *etcd, uint16_t client_port, uint16_t peer_port);

#endif
