/*
 * client_squatter.h - a hostile listener for the client-side tests of
 * issue 11 item 4: a process that sits at a socket path (as another uid if
 * asked) and reports, per connection it accepted, how many bytes and file
 * descriptors the client sent before hanging up.
 *
 * Deterministic "nothing arrived": the squatter serves connections one at
 * a time in accept order, and squatter_sentinel() connects last and sends
 * one byte, so every report before the sentinel's (bytes 1) is a
 * connection made by the code under test.
 */
#ifndef THOTH_TEST_CLIENT_SQUATTER_H
#define THOTH_TEST_CLIENT_SQUATTER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct squatter {
	pid_t pid;
	int report_fd;                  /* read end: one squatter_report_t per connection */
	char path[108];
} squatter_t;

typedef struct squatter_report {
	long bytes;
	long fds;
} squatter_report_t;

/* Listen at PATH; the listening socket belongs to UID (the kernel records
 * the uid at listen(), which is what SO_PEERCRED tells a client). */
int squatter_start(squatter_t *s, const char *path, uid_t uid);
/* 1 and a report, 0 when none came within TIMEOUT_MS, -1 on error. */
int squatter_next(squatter_t *s, int timeout_ms, squatter_report_t *out);
/* Connect and send the one-byte sentinel. 0 or -1. */
int squatter_sentinel(squatter_t *s);
/* Collect reports up to and including the sentinel's: how many connections
 * came before it and what they sent in total.  false if the sentinel's
 * report did not come within TIMEOUT_MS. */
bool squatter_drain(squatter_t *s, int timeout_ms, int *conns, long *bytes, long *fds);
void squatter_stop(squatter_t *s);

/* Root can play another uid; everyone else skips the uid cases. */
bool squatter_can_setuid(void);

#endif
