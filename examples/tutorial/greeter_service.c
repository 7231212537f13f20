/*
 * greeter-service - the tutorial's service (docs/TUTORIAL.md): answers
 * Greeter.hello on a shared-memory channel and registers with thothd as
 * "greeter", so that clients find it by name.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <thoth/channel.h>
#include <thoth/log.h>
#include <thoth/loop.h>
#include <thoth/service.h>
#include <thoth/trace.h>

#include "greeter.thoth.h"

/* A handler: the request's strings point into the channel; the answer is
 * built in ARENA, which lives until the response is sent. */
static int on_hello(void *self, const tutorial_greeter_Greeter_hello_req_t *req,
		    tutorial_greeter_Greeter_hello_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;     /* the server's state: the greeter keeps none */
	size_t len = strlen("hello, ") + req->name.len;
	char *text = thoth_arena_alloc(arena, len + 1);
	if (!text)
		return THOTH_E_NO_SPACE;
	snprintf(text, len + 1, "hello, %.*s", (int)req->name.len, req->name.ptr);
	THOTH_TRACE(USER, greeted, req->name.len, 0);   /* our own trace point */
	resp->greeting = (thoth_str_t){ text, len };
	return 0;
}

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	(void)info;     /* which signal, and who sent it: either stops us */
	(void)arg;
	thoth_loop_stop(loop);
}

/* thothd's answer to the registration: a refusal (the name is another
 * program's, a bad version, ...) is final, so the service stops. */
static int status;
static void on_state(void *loop, thoth_service_state_t state, int err, const char *why)
{
	(void)err;      /* the library's log (set in main) says why already */
	(void)why;
	if (state == THOTH_SERVICE_REGISTERED)
		fprintf(stderr, "greeter-service: registered\n");
	if (state == THOTH_SERVICE_REFUSED) {
		status = 1;
		thoth_loop_stop(loop);
	}
}

int main(void)
{
	char dir[4096], sock[108];
	if (thoth_runtime_dir(NULL, dir, sizeof dir) ||
	    snprintf(sock, sizeof sock, "%s/greeter-%d.sock", dir, (int)getpid()) >= (int)sizeof sock) {
		fprintf(stderr, "greeter-service: runtime dir path too long for a socket\n");
		return 1;
	}
	thoth_trace_init_process("greeter");    /* off until `thothctl trace start` */
	/* the library says why it cannot register ("nothing listens at
	 * .../thothd.sock; retrying", "refused by thothd: ...") */
	thoth_log_set_handler(thoth_log_stderr, NULL, THOTH_LOG_WARN);

	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGINT, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);

	/* 1. serve the generated handler table on a channel socket */
	static const tutorial_greeter_Greeter_handlers_t handlers = { .hello = on_hello };
	thoth_chan_server_config_t scfg = {
		.path = sock, .iface = &tutorial_greeter_Greeter_info,
		.invoke = tutorial_greeter_Greeter_invoke, .handlers = &handlers,
	};
	thoth_chan_server_t *srv;
	char why[300];
	if (thoth_chan_server_new(loop, &scfg, &srv, why, sizeof why)) {
		fprintf(stderr, "greeter-service: %s\n", why);
		return 1;
	}

	/* 2. tell thothd where to find it */
	const thoth_interface_info_t *ifaces[] = { &tutorial_greeter_Greeter_info };
	thoth_service_config_t cfg = {
		.name = "greeter", .version = "1.0.0", .endpoint = sock,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .interfaces = ifaces, .n_interfaces = 1,
		.on_state = on_state, .arg = loop,
	};
	thoth_service_t *svc;
	if (thoth_service_register(loop, &cfg, &svc, why, sizeof why)) {
		fprintf(stderr, "greeter-service: %s\n", why);
		return 1;
	}

	/* 3. run until SIGINT/SIGTERM, or a refusal */
	thoth_loop_run(loop);
	thoth_service_withdraw(svc);
	thoth_chan_server_free(srv);
	thoth_loop_free(loop);
	return status;
}
