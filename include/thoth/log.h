/*
 * thoth/log.h - where libthoth's own diagnostics go: nowhere, unless the
 * program says so.
 *
 * A library never prints: libthoth writes nothing to stderr (or anywhere)
 * by itself.  What it has to say (a service lost thothd and reconnects, a
 * channel server refused a client) goes to the handler the program
 * installs here, filtered by level.  With no handler (the default) every
 * message is dropped.  The same things are also reported through return
 * codes and the callbacks of each API (why strings, on_state, a channel
 * server's log): the handler is for programs that want one place to log.
 *
 *   thoth_log_set_handler(thoth_log_stderr, NULL, THOTH_LOG_INFO);
 *
 * Set it once at start-up, before starting threads; the handler may be
 * called from any thread that calls into libthoth and must not call back
 * into it.
 */
#ifndef THOTH_LOG_H
#define THOTH_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum thoth_log_level {
	THOTH_LOG_ERROR = 0,            /* something failed and will not recover by itself */
	THOTH_LOG_WARN = 1,             /* something failed; libthoth recovers (reconnects, retries) */
	THOTH_LOG_INFO = 2,             /* state changes worth a line: registered, reconnected */
	THOTH_LOG_DEBUG = 3,            /* everything else */
} thoth_log_level_t;

/* COMPONENT: "service", "resolver", "channel", ...; MESSAGE: one line, no
 * newline, at most 511 bytes: a longer one is cut and ends with "...".
 * Both valid during the call only. */
typedef void (*thoth_log_fn)(void *arg, thoth_log_level_t level, const char *component,
			     const char *message);

/* Send messages of LEVEL or more severe (numerically <=) to FN(ARG).
 * FN NULL: drop everything (the default). */
void thoth_log_set_handler(thoth_log_fn fn, void *arg, thoth_log_level_t max_level);

/* A ready-made handler for programs: "thoth COMPONENT: MESSAGE" on stderr. */
void thoth_log_stderr(void *arg, thoth_log_level_t level, const char *component,
		      const char *message);

#ifdef __cplusplus
}
#endif
#endif
