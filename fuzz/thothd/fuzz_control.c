/*
 * fuzz_control.c - arbitrary bytes on thothd's control connection.
 *
 * Each input is what one client sends: it is fed (in two pieces, to
 * exercise partial framing) into an in-process client of a real thothd
 * server and handled by thothd_client_process(), the very function the
 * daemon runs after each read.  A second client watches every change over a
 * socketpair, so watch events are encoded and sent too.  Whatever the bytes,
 * thothd must not crash, leak, or keep the client's registrations (or its
 * service_qos latency bounds) after the client is gone.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "thothd.h"

static thothd_t *d;
static thothd_client_t *watcher;
static int watcher_peer = -1;

static void drain(int fd)
{
	char buf[65536];
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

static void start(void)
{
	thothd_log_set_level(THOTHD_LOG_ERROR);        /* dropped clients are expected here */
	thothd_config_t cfg = { .runtime_dir = "/fuzz", .max_per_client = 8 };
	if (thothd_new(&cfg, NULL, &d))
		abort();
	thothd_locks_t *locks;          /* LockReports: no table under /fuzz/locks */
	if (thothd_locks_new(d, &locks))
		abort();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		abort();
	watcher_peer = sv[1];
	if (thothd_client_open(d, sv[0], 0, 0, &watcher))
		abort();
	thoth_registry_Registry_watch_req_t req = { .prefix = thoth_str("") };
	thoth_msg_header_t meta = { .features = THOTH_REGISTRY_FEATURES_ALL, .request_id = 1 };
	uint64_t buf[64];
	size_t len;
	if (thoth_method_encode(&thoth_registry_Registry_watch_info, false, &req, &meta, buf,
				sizeof buf, &len) ||
	    thothd_client_feed(watcher, buf, len))
		abort();
	thothd_client_process(d, watcher);
	thothd_reap(d);
	drain(watcher_peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!d)
		start();
	thothd_client_t *c;
	if (thothd_client_open(d, -1, 1000, 4242, &c))
		abort();
	size_t half = size / 2;
	if (thothd_client_feed(c, data, half))
		abort();
	thothd_client_process(d, c);
	if (!c->doomed) {
		if (thothd_client_feed(c, data + half, size - half))
			abort();
		thothd_client_process(d, c);
	}
	/* The client hangs up: peer death must take all its registrations. */
	thothd_client_doom(c, "closed (end of input)");
	thothd_reap(d);
	if (thoth_registry_count(d->registry) != 0 || thothd_pm_service_qos_count(d->pm) != 0)
		abort();
	if (watcher->doomed || d->n_clients != 1)
		abort();                /* the watcher must never be hurt by another client */
	drain(watcher_peer);
	return 0;
}
