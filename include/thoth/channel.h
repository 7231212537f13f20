/*
 * thoth/channel.h - calls between processes through shared memory
 * (IPC-2 zero-copy payloads, IPC-3 inline fast path).
 *
 * A channel joins one client to one service.  It is opened over the
 * service's Unix socket (a handshake: interface, schema version and hash,
 * feature bits, limits), after which the service hands the client a memfd
 * holding:
 *
 *   - a request ring and a response ring of 256-byte slots: a message of up
 *     to THOTH_CHAN_INLINE_MAX bytes is built in a private buffer and
 *     copied into the next slot when it is sent;
 *   - a payload pool per direction: a larger message is built in place in
 *     pool buffers owned by its sender and passed by descriptor; the
 *     receiver reads it where it lies and gives it back when done.
 *
 * No call goes through a socket or thothd once the channel is open.  Each
 * ring direction has a futex word; a waiting side spins for a bounded,
 * adaptive time (THOTH_CHAN_SPIN) or not at all (THOTH_CHAN_SLEEP) and then
 * sleeps; a sender makes the wake-up system call only when its peer said it
 * may be asleep.  A service waits on its event loop instead of a futex: its
 * wake-ups arrive as doorbell bytes on the channel's own socket, sent with
 * MSG_DONTWAIT on the sender's own end (no descriptor a peer could block is
 * ever shared).  The layout and the memory-ordering
 * argument are in docs/IPC.md.
 *
 * Everything the peer can write is treated as untrusted input: indices are
 * copied once and checked, descriptors are bounds-checked against the
 * mapping, inline messages are copied out of the slot before they are
 * decoded, releases are checked against what was lent.  A violation closes
 * the channel with THOTH_E_CORRUPT; a dead peer gives THOTH_E_PEER_GONE.
 */
#ifndef THOTH_CHANNEL_H
#define THOTH_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thoth/loop.h"
#include "thoth/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define THOTH_CHAN_SLOT_SIZE   256u  /* bytes per ring slot */
#define THOTH_CHAN_SLOT_HEADER 8u    /* descriptor at the front of a slot */
/* An inline message lies at SLOT_HEADER; the slot's last 8 bytes hold its
 * trace stamp (docs/IPC.md, "Layout"). */
#define THOTH_CHAN_INLINE_MAX  240u

/* Geometry of a channel.  0 in a field means "the default". */
typedef struct thoth_chan_limits {
	uint32_t slots;           /* ring slots per direction: power of two, 2..65536 (256) */
	uint32_t pool_buf_size;   /* pool buffer bytes: power of two, 4 KiB..64 MiB (64 KiB) */
	uint32_t pool_bufs;       /* pool buffers per direction: 0..65536 (512) */
} thoth_chan_limits_t;

#define THOTH_CHAN_DEFAULT_SLOTS    256u
#define THOTH_CHAN_DEFAULT_BUF_SIZE (64u << 10)
#define THOTH_CHAN_DEFAULT_BUFS     512u       /* 32 MiB per direction, backed lazily */
#define THOTH_CHAN_MAX_SHM          (2ull << 30)

/* Fill the 0 fields of L with defaults and check the result.  0 or
 * THOTH_E_INVAL with a reason ("slots = 100: not a power of two"). */
int thoth_chan_limits_resolve(thoth_chan_limits_t *l, char *why, size_t why_len);

/* Largest message (header included) a channel with limits L can carry. */
size_t thoth_chan_max_message(const thoth_chan_limits_t *l);

typedef enum thoth_chan_wait {
	THOTH_CHAN_SPIN = 0,      /* spin (bounded, adaptive), then sleep */
	THOTH_CHAN_SLEEP = 1,     /* sleep at once */
} thoth_chan_wait_t;

#define THOTH_CHAN_DEFAULT_SPIN_NS 50000u   /* upper bound of the adaptive spin */

/*
 * Interrupt moderation (PM-3, docs/PM.md "Interrupt moderation"): how this
 * side, as the consumer of what it receives, lets its peer defer the
 * wake-up (doorbell or futex wake) for a message.  The consumer publishes
 * a profile {N messages, T us} in the channel's memory; while it sleeps
 * with a moderated profile it wakes by itself T us after going to sleep,
 * and the producer rings only when N messages are waiting, a message is
 * urgent (THOTH_CHAN_URGENT), or the consumer is late.  A producer never
 * defers beyond THOTH_CHAN_MOD_MAX_US whatever the peer wrote, and always
 * rings what it owes before it waits itself.  NONE (the default) = one
 * wake-up per message, as before.
 */
typedef enum thoth_chan_moderation {
	THOTH_CHAN_MOD_NONE = 0,
	THOTH_CHAN_MOD_FIXED = 1,     /* always {fixed_msgs, fixed_us} */
	THOTH_CHAN_MOD_DIM = 2,       /* a port of Linux's net_dim (lib/dim) */
	THOTH_CHAN_MOD_ADAPTIVE = 3,  /* ThothOS's: profile computed from the measured rate */
} thoth_chan_moderation_t;

#define THOTH_CHAN_MOD_MAX_MSGS 256u
#define THOTH_CHAN_MOD_MAX_US   1000u

typedef struct thoth_chan_moderation_cfg {
	thoth_chan_moderation_t policy;
	uint32_t fixed_msgs, fixed_us;   /* FIXED: <= 256 messages, <= 1000 us; ADAPTIVE: fixed_us =
					  * the latency budget, 10..1000 us (0: 256) */
} thoth_chan_moderation_cfg_t;

/* thoth_chan_send_flags: wake the consumer now whatever its moderation. */
#define THOTH_CHAN_URGENT 1u

typedef struct thoth_chan_stats {
	uint64_t sent_inline, sent_pool;    /* messages sent in a slot / by descriptor */
	uint64_t received;
	uint64_t spin_hits;                 /* waits that ended while spinning */
	uint64_t spin_misses;               /* spins that used their whole budget in vain */
	uint64_t spin_skips;                /* spins not started or cut short: the peer was on
					     * our CPU or asleep (docs/IPC.md, "Presence") */
	uint64_t sleeps;                    /* waits that went to sleep (futex or loop) */
	uint64_t wakes;                     /* wake-up system calls made for the peer */
	uint64_t pool_in_use;               /* own pool buffers lent out now */
	/* Moderation (PM-3).  As producer: */
	uint64_t bells_deferred;            /* wake-ups not made because the consumer's profile allowed it */
	uint64_t urgent;                    /* messages sent with THOTH_CHAN_URGENT */
	/* As consumer: */
	uint64_t mod_wakeups;               /* wake-ups from a sleep on the receive ring */
	uint64_t mod_timer_wakeups;         /* ... of which by our own moderation timer */
	uint64_t mod_empty_wakeups;         /* ... timer wake-ups that found nothing */
	uint32_t mod_msgs, mod_us;          /* the profile published now ({1, 0}: none) */
} thoth_chan_stats_t;

/* ---- client ----------------------------------------------------------------- */

typedef struct thoth_chan thoth_chan_t;

typedef struct thoth_chan_config {
	const thoth_interface_info_t *iface;  /* what the client was compiled with */
	uint64_t features;                    /* bits the client offers */
	thoth_chan_limits_t limits;           /* asked of the service; 0 = its default */
	thoth_chan_wait_t wait;
	uint32_t spin_ns;                     /* 0 = THOTH_CHAN_DEFAULT_SPIN_NS */
	/* A call through thoth_chan_client (a generated stub: its buffer, its
	 * send, its reply) waits at most this long in all, from its first wait,
	 * not this long per stage (docs/IPC.md "Timeouts"): 0 = wait forever */
	int timeout_ms;
	int handshake_timeout_ms;             /* the whole opening (connect, reply): 0 = 2000 */
	bool loop_wakeup;                     /* wake-ups on the channel's socket: thoth_chan_fd */
	thoth_chan_moderation_cfg_t moderation;  /* of the responses we receive (PM-3) */
} thoth_chan_config_t;

/*
 * Open a channel to the service listening at PATH.  Returns 0, or
 * THOTH_E_NOT_RUNNING (nobody listens there), THOTH_E_CONTRACT /
 * THOTH_E_BAD_VERSION (the schemas do not match: WHY says which side has
 * what), THOTH_E_INVAL (bad limits: WHY says which), THOTH_E_TIMEDOUT,
 * THOTH_E_PROTOCOL / THOTH_E_CORRUPT (the service answered nonsense),
 * THOTH_E_IO, THOTH_E_NOMEM.
 */
int thoth_chan_connect(const char *path, const thoth_chan_config_t *cfg, thoth_chan_t **out,
		       char *why, size_t why_len);

/* Close (tells the service) and free everything, fds and mapping included. */
void thoth_chan_close(thoth_chan_t *ch);

/* The client generated stubs take: thoth_echo_Echo_echo(thoth_chan_client(ch), ...). */
thoth_client_t *thoth_chan_client(thoth_chan_t *ch);

uint64_t thoth_chan_features(const thoth_chan_t *ch);       /* negotiated */
void thoth_chan_limits(const thoth_chan_t *ch, thoth_chan_limits_t *out);
void thoth_chan_stats(const thoth_chan_t *ch, thoth_chan_stats_t *out);
/* The first error that closed the channel (0 while it works). */
int thoth_chan_error(const thoth_chan_t *ch);

/*
 * Message-level access, for many calls in flight on one channel.
 * timeout_ms: 0 never blocks (THOTH_E_AGAIN), > 0 waits at most that long
 * (THOTH_E_TIMEDOUT), < 0 waits until it can (peer death still ends it).
 *
 * thoth_chan_alloc: a buffer for a LEN-byte message: the channel end's
 *   private buffer for the next ring slot when LEN <= THOTH_CHAN_INLINE_MAX
 *   (one may be pending at a time; the send copies it into the slot), else
 *   pool buffers.  Build the message with thoth_builder or a
 *   generated *_encode_msg, then thoth_chan_send it (or thoth_chan_discard).
 * thoth_chan_send: publish a message built in a buffer from thoth_chan_alloc.
 * thoth_chan_recv: the next message from the service (a response, in the
 *   order the service answers).  Valid until thoth_chan_release or the
 *   next thoth_chan_recv.  A pool message is read in place.
 */
int thoth_chan_alloc(thoth_chan_t *ch, size_t len, uint8_t **buf, int timeout_ms);
int thoth_chan_send(thoth_chan_t *ch, uint8_t *buf, size_t len, int timeout_ms);
void thoth_chan_discard(thoth_chan_t *ch, uint8_t *buf);
int thoth_chan_recv(thoth_chan_t *ch, thoth_msg_t *msg, int timeout_ms);
void thoth_chan_release(thoth_chan_t *ch, thoth_msg_t *msg);
/* thoth_chan_send with FLAGS (THOTH_CHAN_URGENT: ring the service now even
 * if its moderation profile would let us wait).  Calls made through
 * thoth_chan_client are urgent: their caller waits for the answer. */
int thoth_chan_send_flags(thoth_chan_t *ch, uint8_t *buf, size_t len, int timeout_ms, unsigned flags);
/* Ring the service now if a wake-up was deferred by moderation (a producer
 * about to go idle; every blocking wait of the channel does it itself). */
void thoth_chan_flush(thoth_chan_t *ch);

/*
 * Receiving on an event loop (config loop_wakeup): the service wakes the
 * client with a doorbell byte on the channel's socket instead of a futex.
 * Watch thoth_chan_fd() (our end of that socket) for
 * READ; when it fires, call thoth_chan_arm(), then take what is there with
 * thoth_chan_recv(..., 0) until THOTH_E_AGAIN; call thoth_chan_arm() again
 * before going back to the loop: it returns 1 when something arrived in the
 * meantime (receive again, do not sleep), 0 when the fd will fire, or an
 * error (the channel is closed: PEER_GONE, CORRUPT).  Blocking calls on
 * such a channel still work (they wait on the same socket).
 */
int thoth_chan_fd(const thoth_chan_t *ch);      /* -1 without loop_wakeup */
int thoth_chan_arm(thoth_chan_t *ch);

/* ---- service -------------------------------------------------------------- */

typedef struct thoth_chan_server thoth_chan_server_t;

typedef void (*thoth_chan_log_fn)(void *arg, const char *message);

/* Who may open a channel: checked on the connecting process's credentials
 * (SO_PEERCRED, and SO_PEERGROUPS for GROUP) before anything else of its
 * handshake is looked at.  The socket file's mode says the same to the
 * file system (docs/IPC.md, "Who may connect"). */
typedef enum thoth_chan_peers {
	THOTH_CHAN_PEERS_SAME_UID = 0,        /* processes of the service's own uid (socket 0600) */
	THOTH_CHAN_PEERS_GROUP = 1,           /* ... and members of cfg.group (socket 0660, that group) */
	THOTH_CHAN_PEERS_ANY = 2,             /* every local user (socket 0666) */
} thoth_chan_peers_t;

typedef struct thoth_chan_server_config {
	const char *path;                     /* Unix socket to listen on (replaced if stale) */
	const thoth_interface_info_t *iface;  /* the interface served */
	thoth_invoke_fn invoke;               /* generated <iface>_invoke */
	const void *handlers;                 /* generated <iface>_handlers_t */
	void *self;                           /* passed to every handler */
	uint64_t features;                    /* bits the service offers */
	thoth_chan_limits_t limits;           /* for clients that ask 0; 0 = defaults */
	thoth_chan_wait_t wait;
	uint32_t spin_ns;                     /* 0 = THOTH_CHAN_DEFAULT_SPIN_NS */
	uint32_t max_clients;                 /* open channels: 0 = 1024 */
	thoth_chan_log_fn log;                /* why a client was refused or dropped (rate-limited) */
	void *log_arg;
	thoth_chan_peers_t peers;             /* who may connect: same uid by default */
	uint32_t group;                       /* the gid THOTH_CHAN_PEERS_GROUP admits */
	uint32_t socket_mode;                 /* permission bits of the socket file; 0 = from peers */
	uint32_t handshake_timeout_ms;        /* a connection must finish its handshake by then: 0 = 1000 */
	uint32_t max_pending;                 /* handshakes in progress at once: 0 = 64 (the oldest is dropped) */
	thoth_chan_moderation_cfg_t moderation;  /* of the requests each channel receives (PM-3) */
	/* Ask every client to stamp each request with the CLOCK_MONOTONIC
	 * time it published it (one clock read per request, on the client;
	 * clients that predate it send none): a handler or a shim reads it
	 * with thoth_chan_server_sent() (thoth/caller.h).  A governed service
	 * (kernel/pm/governed.h) sets it, so its requests are due their QoS
	 * after their send.  docs/IPC.md "Send stamps". */
	bool send_stamps;
} thoth_chan_server_config_t;

typedef struct thoth_chan_server_stats {
	uint32_t clients;                     /* channels open now */
	uint64_t accepted, refused;           /* handshakes */
	uint64_t calls;                       /* requests dispatched */
	uint64_t peer_gone;                   /* channels ended by the client's death or close */
	uint64_t corrupt;                     /* channels closed for bad shared memory */
	uint64_t handshake_dropped;           /* connections closed: handshake too slow, or too many pending */
	uint64_t shed;                        /* connections accepted and closed at the fd limit */
	uint64_t turns;                       /* times a channel was served (calls / turns = batch) */
	uint64_t log_suppressed;              /* log lines dropped by the rate limit */
	uint64_t mod_wakeups;                 /* channel wake-ups from sleep: doorbell or moderation timer */
	uint64_t mod_timer_wakeups;           /* ... of which by the moderation timer (PM-3) */
	uint64_t placement_moves;             /* serving thread moved to follow its client (SCHED-4) */
	uint64_t handed_over;                 /* thoth_serve_per_cpu: connections routed to another CPU's loop */
} thoth_chan_server_stats_t;

/* Listen at cfg->path and serve on LOOP.  0, THOTH_E_INVAL (reason in
 * WHY), THOTH_E_IO (cannot listen: WHY says why), THOTH_E_NOMEM. */
int thoth_chan_server_new(thoth_loop_t *loop, const thoth_chan_server_config_t *cfg,
			  thoth_chan_server_t **out, char *why, size_t why_len);
/* Close every channel and the socket (the socket file is removed). */
void thoth_chan_server_free(thoth_chan_server_t *srv);
/* Counters of SRV; any thread may read them while SRV serves. */
void thoth_chan_server_stats(const thoth_chan_server_t *srv, thoth_chan_server_stats_t *out);

/* A whole service in one call: a loop, SIGINT/SIGTERM to stop, serve CFG.
 * Returns 0 after a signal, or the error that prevented serving.  Without
 * cfg->log, what the server reports goes to the thoth/log.h handler (none
 * by default: install thoth_log_stderr to see it); no signal disposition
 * is changed (sockets are written with MSG_NOSIGNAL). */
int thoth_serve(const thoth_chan_server_config_t *cfg);

/* thoth_serve, thread per CPU (SCHED-4): one loop per CPU the caller may
 * run on, each on a new thread pinned to its CPU before it allocates (so
 * its memory is on its NUMA node); the calling thread waits until the
 * service stops, with SIGTERM and SIGINT blocked (either stops it).  The
 * listening thread (the first CPU's) hands every new connection to the loop on the client's
 * CPU (the one it last ran on), or the nearest CPU number, and that loop
 * serves the channel for its whole life.  Handlers run on several threads
 * at once: they must be thread-safe.  Limits (max_clients, max_pending)
 * hold per thread.  With one allowed CPU it is thoth_serve. */
int thoth_serve_per_cpu(const thoth_chan_server_config_t *cfg);

/* The counters of the service thoth_serve or thoth_serve_per_cpu runs in
 * this process, from any thread while it runs: a per-CPU service's workers
 * folded on read (each worker thread writes only its own; nothing is lost
 * when threads move between CPUs).  0, or THOTH_E_NOT_RUNNING (OUT zeroed)
 * when none runs. */
int thoth_serve_stats(thoth_chan_server_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
