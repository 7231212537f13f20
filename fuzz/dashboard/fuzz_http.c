/*
 * fuzz_http.c - arbitrary bytes sent by one client to thothd's dashboard.
 *
 * A real thothd core (in-process, on its own thoth_loop) serves the
 * dashboard on 127.0.0.1, any port, with a token so both the refused and
 * the accepted paths run.  Each input is written on a fresh TCP connection,
 * whose write side is then shut; the loop runs until thothd has answered and
 * closed, or for a bounded number of iterations (an event stream does not
 * end by itself), then the client closes.  Whatever the bytes - request
 * lines, percent escapes (%00 stays literal), query arguments, headers -
 * thothd must not crash, leak or stop answering: the next input gets a
 * fresh connection to the same server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

static thoth_loop_t *loop;
static thothd_t *d;
static thothd_http_t *http;
static uint16_t port;

static void start(void)
{
	thothd_log_set_level(THOTHD_LOG_ERROR);
	thothd_config_t cfg = { .runtime_dir = "/fuzz" };
	thothd_http_config_t hc = { .port = 0, .token = "fuzz-token", .timeout_s = 1 };
	char why[256];
	if (thoth_loop_new(&loop) || thothd_new(&cfg, loop, &d) ||
	    thothd_http_start(d, &hc, &http, why, sizeof why))
		abort();
	const char *colon = strrchr(d->dashboard_url, ':');
	port = (uint16_t)atoi(colon + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loop)
		start();
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (c < 0)
		abort();
	connect(c, (struct sockaddr *)&sin, sizeof sin);        /* EINPROGRESS: loopback */
	size_t off = 0;
	bool eof = false;
	for (int i = 0; i < 200 && !eof; i++) {
		if (off < size) {
			ssize_t n = send(c, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				off += (size_t)n;
			if (off == size)
				shutdown(c, SHUT_WR);
		} else if (i == 0) {
			shutdown(c, SHUT_WR);
		}
		thoth_loop_run_once(loop, false);
		char buf[65536];
		ssize_t n;
		while ((n = recv(c, buf, sizeof buf, MSG_DONTWAIT)) > 0)
			;
		if (n == 0)
			eof = true;
		else if (!eof)
			poll(&(struct pollfd){ .fd = c, .events = POLLIN }, 1, 1);
	}
	close(c);
	/* Let thothd see the close (an unfinished event stream ends here). */
	for (int i = 0; i < 5; i++)
		thoth_loop_run_once(loop, false);
	return 0;
}
