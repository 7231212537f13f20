/*
 * test_chan_hostile_service.c - the client side of a channel against a
 * hostile service: every reply, descriptor and shared word a service hands
 * a client is hostile (docs/IPC.md, "Hostile peers"; docs/RELIABILITY.md,
 * "Channels").
 *
 * The fake service is a forked child listening on a Unix socket in the
 * test's temporary directory.  It reads the client's Channel.open
 * (idl/channel.tidl) and answers it the way the case says: no descriptor,
 * two, many, a pipe, a socket, a regular file, /dev/zero, memfds unsealed,
 * too short, empty, write-sealed or read-only, a control page with the
 * wrong magic or geometry, indices and lengths past the ring, limits or a
 * version it was not asked for, a refusal with a code a caller would read
 * as "not yet", garbage, a reply cut short and then silence, one longer
 * than the maximum, a socket closed at each step; or a proper channel it
 * then abuses (truncates and punches its memory, writes random words
 * into the control page and the rings while the client calls, sends
 * descriptors with its doorbells).  Each connection is served by its own
 * grandchild, which dies with the listener (PR_SET_PDEATHSIG).
 *
 * Every case opens both ways a client opens: thoth_chan_connect (blocking,
 * poll between the steps) and the non-blocking steps an instance pool runs
 * on its loop (thoth__chan_open_start/_step/_expired, chan_handshake.h),
 * and checks the error code, the reason, the time it took, and that the
 * process has exactly the descriptors it had before.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "chan_handshake.h"
#include "chan_shm.h"
#include "channel.thoth.h"
#include "chantest.thoth.h"
#include "thoth/channel.h"
#include "testutil.h"
#include "tmpdir.h"

/* The handshake timeout every case opens with, and the most a refusal may
 * take: well under it, so that a refusal is never a timeout in disguise,
 * with room for a loaded machine (load 12 on 2 CPUs: a 150 ms bound failed
 * 1 run in 8). */
#define HS_MS 1500

typedef enum {
	F_GOOD,                 /* an honest reply: the channel opens */
	F_NO_FD,
	F_TWO_FDS,              /* the memfd and an eventfd */
	F_THREE_FDS,            /* the memfd and 2 eventfds: one more than the 2 kept */
	F_MANY_FDS,             /* the memfd and 7 more: more than the control buffer takes */
	F_PIPE,
	F_SOCKET,
	F_REGFILE,              /* a file on disk of the right size */
	F_DEVZERO,
	F_TMPFS_FILE,           /* a shmem file that is not a memfd (seals: F_SEAL_SEAL only) */
	F_UNSEALED,
	F_SHORT,                /* sealed, half the size */
	F_EMPTY,                /* sealed, size 0 */
	F_WRITE_SEALED,         /* F_SEAL_WRITE: cannot be mapped writable */
	F_FUTURE_WRITE_SEALED,  /* F_SEAL_FUTURE_WRITE: no new writable mapping either */
	F_READONLY,             /* the memfd reopened O_RDONLY */
	F_BAD_MAGIC,
	F_BAD_GEOMETRY,         /* control page says other slots than the reply */
	F_HUGE_LIMITS,          /* reply limits whose layout would overflow */
	F_SIZE_MISMATCH,        /* shm_size (and the memfd) a page more than the limits */
	F_WRONG_MAJOR,
	F_EXTRA_FEATURES,
	F_REFUSE,               /* status BAD_VERSION, a reason, and a pipe attached */
	F_REFUSE_AGAIN,         /* status THOTH_E_AGAIN: "not yet" to a caller */
	F_REFUSE_POSITIVE,      /* status 7 */
	F_REFUSE_ESCAPES,       /* a refusal whose reason holds terminal escapes and newlines */
	F_GARBAGE,              /* a proper header, a body that does not decode */
	F_TOO_LONG,             /* a header announcing 1 MiB */
	F_TRAILING,             /* bytes after the reply */
	F_HALF_SILENT,          /* half the reply, then silence with the socket open */
	F_SILENT,               /* reads the request, never answers */
	F_CLOSE_AT_ACCEPT,
	F_CLOSE_AFTER_REQUEST,
	F_CLOSE_MID_REPLY,
	F_CLOSE_AFTER_REPLY,    /* an honest reply, then exits */
	F_INLINE_TOO_LONG,      /* response slot 0 published with an inline length of 4000 */
	F_POOL_OUTSIDE,         /* response slot 0: a pool descriptor past the pool */
	F_HEAD_FAR,             /* response head 1000 slots ahead */
	F_TRUNCATE_LATER,       /* after the reply: tries to shrink, then punches the memory */
	F_SCRIBBLE,             /* after the reply: random words into the control page and rings */
	F_DOORBELL_FDS,         /* after the reply: doorbell bytes carrying descriptors */
	F_SCRIBBLE_PAYLOAD,     /* answers every call it can decode, and writes random words into
				 * the pool buffers (payload bytes only, no index or flag) */
	F_HINTS,                /* answers every call honestly, but writes random values into
				 * every word that is only a hint: presence, waiting flags,
				 * moderation profile and deadline, send stamps, bell words */
} fake_mode_t;

/* What the fake's connections report (a shared page). */
typedef struct fake_report {
	_Atomic int truncate_errno;     /* F_TRUNCATE_LATER: ftruncate's errno (0: it succeeded) */
	_Atomic int punched;            /* F_TRUNCATE_LATER: the hole was punched */
	_Atomic uint64_t scribbles;     /* F_SCRIBBLE: words written */
	_Atomic int bells_sent;         /* F_DOORBELL_FDS: messages with descriptors sent */
	_Atomic int bells_stopped;      /* F_DOORBELL_FDS: it saw go and sends no more */
	_Atomic int go;                 /* F_TRUNCATE_LATER: the client has attached, abuse now */
	_Atomic uint64_t answered;      /* F_HINTS: calls answered */
} fake_report_t;

static char dir[256], sock_path[300];
static pid_t fake_pid;
static fake_report_t *rep;



/* ---- the fake service ----------------------------------------------------- */

static int send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} control;
	memset(&control, 0, sizeof control);
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010      /* Linux 5.1 */
#endif

static int make_memfd(size_t size, unsigned seals)
{
	int fd = memfd_create("thoth-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) < 0))
		_exit(20);
	return fd;
}

/* Hold the connection until the client hangs up (or 30 s: never for ever). */
static void hold(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	for (uint64_t end = test_now_ns() + 30000000000ull; test_now_ns() < end;) {
		if (poll(&p, 1, 100) > 0) {
			char b[256];
			ssize_t n = recv(sock, b, sizeof b, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
		}
	}
	_exit(0);
}

/* Has the client hung up?  (Never blocks.) */
static bool hung_up(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	if (poll(&p, 1, 0) <= 0)
		return false;
	char b[256];
	ssize_t n = recv(sock, b, sizeof b, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* A hostile 32-bit word: small, near a ring or index boundary, or random. */
static uint32_t hostile_word(void)
{
	static const uint32_t edges[] = { 0, 1, 2, 255, 256, 257, 4096, 65535, 65536, 0x7fffffff, 0x80000000u,
					  0xfffffffe, 0xffffffff, CHAN_SLOT_INLINE | 1u << 8, CHAN_SLOT_POOL | 1u << 8 };
	uint64_t r = rnd();
	return r & 1 ? edges[(r >> 1) % (sizeof edges / sizeof edges[0])] : (uint32_t)(r >> 32);
}

/* An honest echo of every call on the server's side of BASE, while every
 * word the client reads only as a hint gets random values: the client's
 * calls must keep being answered (or time out), never hang or fault. */
/* Serve every call with a 64-byte echo.  HINTS: random values into every
 * word that is only a hint; else (PAYLOAD) random words into the pool
 * buffers only, so that a request or answer carried there may be spoilt
 * (a request that does not decode is dropped: that call times out). */
static void serve_hostile(int sock, uint8_t *base, const chan_layout_t *lay, bool client_wakeup, bool hints)
{
	chan_end_t e;
	if (chan_end_init(&e, base, lay, CHAN_SERVER))
		_exit(40);
	e.sock = sock;
	e.peer_bell = client_wakeup;
	e.wait = THOTH_CHAN_SLEEP;
	chan_ctl_t *ctl = (chan_ctl_t *)base;
	uint8_t echoed[64] = { 1, 2, 3 };
	for (uint64_t k = 0;; k++) {
		_Atomic uint32_t *hint[] = {
			&ctl->presence[CHAN_SERVER].word, &ctl->presence[CHAN_CLIENT].word,
			&ctl->dir[CHAN_REQ].cons_waiting, &ctl->dir[CHAN_RESP].prod_waiting,
			&ctl->dir[CHAN_REQ].owner_waiting, &ctl->mod[CHAN_REQ].profile,
		};
		if (hints) {
			atomic_store(hint[rnd() % (sizeof hint / sizeof hint[0])], hostile_word());
			atomic_store(&ctl->mod[CHAN_REQ].wake_by,
				     rnd() & 1 ? rnd() : test_now_ns() + (rnd() % 5000000u));
			ctl->stamps[rnd() & 1] = hostile_word();
			ctl->bell[rnd() & 1] = hostile_word();
		} else {
			size_t words = (lay->size - lay->pool_off[0]) / 4;
			for (int i = 0; i < 8; i++)
				atomic_store((_Atomic uint32_t *)(base + lay->pool_off[0] + (rnd() % words) * 4),
					     hostile_word());
			atomic_fetch_add(&rep->scribbles, 8);
		}
		thoth_msg_t m;
		int r = chan_try_recv(&e, &m);
		if (r == 0) {
			thoth_msg_header_t h;
			if (thoth_wire_header_decode(m.data, m.len, &h)) {
				if (hints)
					_exit(41);
				chan_release(&e, &m);   /* spoilt: that call times out */
				continue;
			}
			chan_release(&e, &m);
			thoth_chantest_Test_echo_resp_t rs = { .data = { .ptr = echoed, .len = sizeof echoed } };
			thoth_msg_header_t meta = { .request_id = h.request_id };
			uint8_t *buf;
			size_t len;
			if (chan_try_alloc(&e, 240, &buf) ||
			    thoth_chantest_Test_echo_resp_encode_msg(buf, 240, &meta, &rs, &len))
				_exit(42);
			/* a stamp the client did not ask for, a random one */
			if (chan_try_send_flags(&e, buf, len, 0))
				_exit(43);
			atomic_fetch_add(&rep->answered, 1);
		} else if (r != THOTH_E_AGAIN) {
			_exit(44);
		}
		if (k % 1024 == 0) {
			if (hung_up(sock))
				_exit(0);
			sched_yield();
		}
	}
}

static void serve_one(int sock, fake_mode_t mode)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (mode == F_CLOSE_AT_ACCEPT)
		_exit(0);
	/* The request, whole. */
	uint64_t req_buf[HANDSHAKE_MAX / 8];
	size_t have = 0, need = 0;
	struct timeval tv = { 5, 0 };
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (!need || have < need) {
		ssize_t n = recv(sock, (uint8_t *)req_buf + have, sizeof req_buf - have, 0);
		if (n <= 0)
			_exit(21);
		have += (size_t)n;
		if (thoth__chan_msg_length((uint8_t *)req_buf, have, &need))
			_exit(22);
	}
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_channel_Channel_open_req_t req;
	if (thoth_channel_Channel_open_req_decode_msg((uint8_t *)req_buf, have, &req, &arena))
		_exit(23);
	if (mode == F_CLOSE_AFTER_REQUEST)
		_exit(0);
	if (mode == F_SILENT)
		hold(sock);

	thoth_chan_limits_t lim = { 0 };
	thoth_chan_limits_resolve(&lim, NULL, 0);
	chan_layout_t lay;
	chan_layout_compute(&lim, &lay);
	size_t size = lay.size;
	thoth_channel_Channel_open_resp_t resp = {
		.reason = thoth_str(""), .major = thoth_chantest_Test_info.major,
		.minor = thoth_chantest_Test_info.minor, .shm_size = size,
		.limits = { .slots = lim.slots, .pool_buf_size = lim.pool_buf_size, .pool_bufs = lim.pool_bufs },
	};
	int fds[16], nfds = 0;
	int memfd = -1;
	uint8_t *base = NULL;
	const unsigned seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	switch (mode) {
	case F_NO_FD:
	case F_REFUSE_AGAIN:
	case F_REFUSE_POSITIVE:
	case F_REFUSE_ESCAPES:
		break;
	case F_PIPE:
	case F_REFUSE: {
		int p[2];
		if (pipe2(p, O_CLOEXEC))
			_exit(24);
		fds[nfds++] = p[0];
		break;
	}
	case F_SOCKET: {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			_exit(24);
		fds[nfds++] = sv[0];
		break;
	}
	case F_REGFILE: {
		char p[400];
		snprintf(p, sizeof p, "%s/not-a-memfd", dir);
		int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)size))
			_exit(24);
		fds[nfds++] = fd;
		break;
	}
	case F_DEVZERO:
		fds[nfds++] = open("/dev/zero", O_RDWR | O_CLOEXEC);
		break;
	case F_TMPFS_FILE: {
		int fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0)
			fd = make_memfd(size, 0);       /* no tmpfs at /dev/shm: an unsealed memfd, same verdict */
		else if (ftruncate(fd, (off_t)size))
			_exit(24);
		fds[nfds++] = fd;
		break;
	}
	case F_UNSEALED:
		fds[nfds++] = make_memfd(size, 0);
		break;
	case F_SHORT:
		fds[nfds++] = make_memfd(size / 2, seals);
		break;
	case F_EMPTY:
		fds[nfds++] = make_memfd(0, seals);
		break;
	case F_WRITE_SEALED:
		fds[nfds++] = make_memfd(size, seals | F_SEAL_WRITE);
		break;
	case F_FUTURE_WRITE_SEALED:
		fds[nfds++] = make_memfd(size, seals | F_SEAL_FUTURE_WRITE);
		break;
	case F_READONLY: {
		int fd = make_memfd(size, seals);
		char p[64];
		snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
		fds[nfds++] = open(p, O_RDONLY | O_CLOEXEC);
		close(fd);
		break;
	}
	case F_HUGE_LIMITS:
		resp.limits.slots = 0x80000000u;
		resp.limits.pool_buf_size = 0x80000000u;
		resp.limits.pool_bufs = 0xffffffffu;
		resp.shm_size = UINT64_MAX;
		fds[nfds++] = make_memfd(CHAN_PAGE, seals);
		break;
	case F_SIZE_MISMATCH:
		resp.shm_size = size + CHAN_PAGE;
		fds[nfds++] = make_memfd(size + CHAN_PAGE, seals);
		break;
	default:
		/* A proper channel memory, formatted; the mode may spoil it. */
		memfd = make_memfd(size, seals);
		base = chan_shm_map(memfd, size);
		if (!base)
			_exit(25);
		chan_shm_format(base, &lay);
		fds[nfds++] = memfd;
		break;
	}
	chan_ctl_t *ctl = (chan_ctl_t *)base;
	uint8_t *resp_slot0 = base ? base + lay.ring_off[CHAN_RESP] : NULL;
	switch (mode) {
	case F_TWO_FDS:
		fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		break;
	case F_THREE_FDS:
		fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		break;
	case F_MANY_FDS:
		for (int i = 0; i < 7; i++)
			fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		break;
	case F_BAD_MAGIC:
		ctl->magic = 0xdeadbeef;
		break;
	case F_BAD_GEOMETRY:
		ctl->slots = lim.slots * 2;
		break;
	case F_WRONG_MAJOR:
		resp.major = (uint8_t)(thoth_chantest_Test_info.major + 1);
		break;
	case F_EXTRA_FEATURES:
		resp.features = 1ull << 40;
		break;
	case F_REFUSE:
		resp.status = THOTH_E_BAD_VERSION;
		resp.reason = thoth_str("fake service: you are too old");
		break;
	case F_REFUSE_AGAIN:
		resp.status = THOTH_E_AGAIN;
		resp.reason = thoth_str("fake service: come back later");
		break;
	case F_REFUSE_POSITIVE:
		resp.status = 7;
		resp.reason = thoth_str("fake service: seven");
		break;
	case F_REFUSE_ESCAPES:
		/* valid UTF-8 all through (the decoder's one check): ESC
		 * sequences (colour, clear screen, a window title ended by
		 * BEL), a newline and CR forging a line, DEL, a C1 CSI as
		 * UTF-8, a backslash, and plain non-ASCII text kept */
		resp.status = THOTH_E_PERM;
		resp.reason = thoth_str("\x1b[31mred\x1b[0m\x1b[2J\x1b]0;owned\x07\n"
					"2026-12-02T00:00:00Z thothd: all fine\r\x7f\xc2\x9b" "1m \\ caf\xc3\xa9");
		break;
	case F_INLINE_TOO_LONG:
		((uint32_t *)resp_slot0)[1] = 4000;
		atomic_store((_Atomic uint32_t *)resp_slot0, chan_slot_tag(CHAN_SLOT_INLINE, 0));
		break;
	case F_POOL_OUTSIDE:
		((uint32_t *)resp_slot0)[1] = 64;
		((uint32_t *)resp_slot0)[2] = lim.pool_bufs + 5;
		atomic_store((_Atomic uint32_t *)resp_slot0, chan_slot_tag(CHAN_SLOT_POOL, 0));
		break;
	case F_HEAD_FAR:
		atomic_store(&ctl->dir[CHAN_RESP].head, 1000u);
		break;
	default:
		break;
	}
	for (int i = 0; i < nfds; i++)
		if (fds[i] < 0)
			_exit(26);

	uint64_t out[HANDSHAKE_MAX / 8 + 8];
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t len;
	if (thoth_channel_Channel_open_resp_encode_msg(out, sizeof out, &meta, &resp, &len))
		_exit(27);
	switch (mode) {
	case F_GARBAGE:
		/* Keep the header (its length), make the body nonsense. */
		memset((uint8_t *)out + THOTH_WIRE_HEADER_SIZE, 0xff, len - THOTH_WIRE_HEADER_SIZE);
		break;
	case F_TOO_LONG: {
		/* The header's body length (bytes 36-39) says 1 MiB; 4 KiB follow. */
		uint64_t big[HANDSHAKE_MAX / 8] = { 0 };
		memcpy(big, out, THOTH_WIRE_HEADER_SIZE);
		thoth_st32((uint8_t *)big + 36, 1u << 20);
		if (send_raw(sock, big, sizeof big, fds, nfds))
			_exit(28);
		hold(sock);
		break;
	}
	default:
		break;
	}
	if (mode == F_HALF_SILENT || mode == F_CLOSE_MID_REPLY) {
		if (send_raw(sock, out, len / 2, fds, nfds))
			_exit(28);
		if (mode == F_CLOSE_MID_REPLY)
			_exit(0);
		hold(sock);
	}
	if (mode == F_TRAILING) {
		memcpy((uint8_t *)out + len, "trailer!", 8);
		len += 8;
	}
	if (send_raw(sock, out, len, fds, nfds))
		_exit(28);
	if (mode == F_CLOSE_AFTER_REPLY)
		_exit(0);
	if (mode == F_TRUNCATE_LATER) {
		/* Once the client checked the control page (else it refuses a
		 * zeroed page, rightly), try to cut its mapping short.  The
		 * shrink seal must refuse this. */
		for (uint64_t end = test_now_ns() + 5000000000ull; !atomic_load(&rep->go) && test_now_ns() < end;)
			sched_yield();
		atomic_store(&rep->truncate_errno, ftruncate(memfd, 0) ? errno : 0);
		/* A hole is allowed (no write seal): the pages read as zeros. */
		atomic_store(&rep->punched,
			     fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size) == 0);
		hold(sock);
	}
	if (mode == F_SCRIBBLE) {
		/* Random words into the control page, both rings and both
		 * release rings, as fast as it can, until the client hangs
		 * up; a yield now and then so the client runs too.  From
		 * the moment the client attached (its presence word), else
		 * it refuses a spoilt control page, rightly. */
		for (uint64_t end = test_now_ns() + 5000000000ull;
		     !atomic_load(&ctl->presence[CHAN_CLIENT].word) && test_now_ns() < end;)
			sched_yield();
		size_t rings = lay.pool_off[0];
		for (uint64_t k = 0;; k++) {
			size_t at = (rnd() % (rings / 4)) * 4;
			atomic_store((_Atomic uint32_t *)(base + at), hostile_word());
			if (k % 64 == 0) {
				/* the words the client reads most: indices, flags, presence, moderation */
				chan_dir_t *d = &ctl->dir[rnd() & 1];
				_Atomic uint32_t *w[] = { &d->head, &d->tail, &d->prod_waiting, &d->cons_waiting,
							  &d->rel_head, &d->rel_tail, &d->owner_waiting,
							  &ctl->presence[CHAN_SERVER].word, &ctl->mod[CHAN_REQ].profile,
							  &ctl->closed[CHAN_SERVER] };
				size_t i = rnd() % (sizeof w / sizeof w[0]);
				if (w[i] != &ctl->closed[CHAN_SERVER] || rnd() % 1024 == 0)
					atomic_store(w[i], hostile_word());
				atomic_store(&ctl->mod[CHAN_REQ].wake_by, rnd());
			}
			if (k % 4096 == 0) {
				atomic_store(&rep->scribbles, k + 1);   /* written so far */
				if (hung_up(sock))
					_exit(0);
				sched_yield();
			}
		}
	}
	if (mode == F_HINTS || mode == F_SCRIBBLE_PAYLOAD)
		serve_hostile(sock, base, &lay, req.client_wakeup, mode == F_HINTS);
	if (mode == F_DOORBELL_FDS) {
		/* Every 2 ms, a doorbell byte carrying a pipe end and an
		 * eventfd, until the client says go (stop). */
		for (;;) {
			if (atomic_load(&rep->go)) {
				atomic_store(&rep->bells_stopped, 1);
				hold(sock);
			}
			int p[2];
			if (pipe2(p, O_CLOEXEC))
				_exit(29);
			int two[2] = { p[0], eventfd(0, EFD_CLOEXEC) };
			int r = send_raw(sock, "", 1, two, 2);
			close(p[0]);
			close(p[1]);
			close(two[1]);
			if (r)
				_exit(0);       /* the client hung up */
			atomic_fetch_add(&rep->bells_sent, 1);
			struct timespec ts = { 0, 2000000 };
			nanosleep(&ts, NULL);
			if (hung_up(sock))
				_exit(0);
		}
	}
	hold(sock);
}

static void fake_listener(int lfd, fake_mode_t mode)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGCHLD, SIG_IGN);       /* connections' children reap themselves */
	for (;;) {
		int sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0) {
			if (errno == EINTR)
				continue;
			_exit(30);
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(lfd);
			serve_one(sock, mode);
			_exit(0);
		}
		close(sock);
	}
}

/* Listen on sock_path (backlog BACKLOG); serve every connection as MODE
 * says, or accept none when ACCEPT is false. */
static void fake_start_ex(fake_mode_t mode, int backlog, bool accept)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	unlink(sock_path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, backlog), 0);
	/* fake_stop waited for every connection's child of the last fake
	 * to end: none can write a counter after this. */
	memset(rep, 0, sizeof *rep);
	fake_pid = fork();
	assert_true(fake_pid >= 0);
	if (fake_pid == 0) {
		setpgid(0, 0);          /* a group of its own: its connections' children join it */
		if (accept)
			fake_listener(lfd, mode);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pause();
		_exit(0);
	}
	setpgid(fake_pid, fake_pid);    /* both sides: whichever runs first */
	close(lfd);
}

static void fake_start(fake_mode_t mode)
{
	fake_start_ex(mode, 16, true);
}

static void fake_stop(void)
{
	if (fake_pid > 0) {
		/* The listener and every connection's child (its group, which
		 * they cannot leave), then wait for all of them: this process
		 * is their subreaper, so the orphaned children are ours to
		 * reap.  A child still running would write the shared counters
		 * of the next fake (fake_start_ex clears them). */
		kill(-fake_pid, SIGKILL);
		kill(fake_pid, SIGKILL);
		while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
			;
	}
	fake_pid = 0;
}

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))  /* fake_stop reaps the fake's orphans */
		return -1;
	/* a short folder of the stage's where TMPDIR's would not fit the
	 * socket's path (tmpdir.h) */
	if (!test_sock_template(dir, TEST_SOCK_DIR_CAP("/svc.sock"), "thoth-hostsvc"))
		return -1;
	if (!mkdtemp(dir)) {
		fprintf(stderr, "setup: mkdtemp %s: %s\n", dir, strerror(errno));
		return -1;
	}
	snprintf(sock_path, sizeof sock_path, "%s/svc.sock", dir);
	if (!rep) {
		rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (rep == MAP_FAILED)
			return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_stop();
	char p[400];
	snprintf(p, sizeof p, "%s/not-a-memfd", dir);
	unlink(p);
	unlink(sock_path);
	rmdir(dir);
	return 0;
}

/* ---- the two ways a client opens ------------------------------------------ */

static thoth_chan_config_t config(void)
{
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .handshake_timeout_ms = HS_MS,
				    .timeout_ms = 2000 };
	return cfg;
}

static int open_blocking(const thoth_chan_config_t *cfg, thoth_chan_t **ch, char *why, size_t why_len)
{
	return thoth_chan_connect(sock_path, cfg, ch, why, why_len);
}

/* As an instance pool opens (kernel/ipc/pool.c): start, then a step each
 * time the socket is readable, the deadline the caller's own. */
static int open_nonblocking(const thoth_chan_config_t *cfg, thoth_chan_t **ch, char *why, size_t why_len)
{
	*ch = NULL;
	thoth__chan_opening_t *op;
	int r = thoth__chan_open_start(sock_path, cfg, &op, why, why_len);
	if (r != THOTH_E_AGAIN)
		return r;
	uint64_t end = test_now_ns() + (uint64_t)cfg->handshake_timeout_ms * 1000000u;
	for (;;) {
		r = thoth__chan_open_step(op, ch, why, why_len);
		if (r != THOTH_E_AGAIN)
			break;
		if (test_now_ns() >= end) {
			r = thoth__chan_open_expired(op, cfg->handshake_timeout_ms, why, why_len);
			break;
		}
		struct pollfd p = { .fd = thoth__chan_open_fd(op), .events = POLLIN };
		poll(&p, 1, 10);
	}
	thoth__chan_open_free(op);
	return r;
}

typedef int (*opener_t)(const thoth_chan_config_t *, thoth_chan_t **, char *, size_t);
static const struct {
	const char *name;
	opener_t open;
} openers[] = { { "thoth_chan_connect", open_blocking }, { "non-blocking steps", open_nonblocking } };

/* Open against the fake both ways: each must fail with WANT, its reason
 * containing NEEDLE, within MAX_MS, leaving no descriptor behind. */
static void expect_refused(fake_mode_t mode, int want, const char *needle, unsigned max_ms)
{
	fake_start(mode);
	for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++) {
		int fds0 = test_count_fds();
		thoth_chan_config_t cfg = config();
		thoth_chan_t *ch = (thoth_chan_t *)&cfg;        /* must come back NULL */
		char why[400] = "";
		uint64_t t0 = test_now_ns();
		int r = openers[i].open(&cfg, &ch, why, sizeof why);
		unsigned ms = (unsigned)((test_now_ns() - t0) / 1000000u);
		print_message("  %s: %s (%d ms): %s\n", openers[i].name, thoth_errname(r), ms, why);
		if (r != want)
			fail_msg("%s: expected %s, got %s: %s", openers[i].name, thoth_errname(want),
				 thoth_errname(r), why);
		assert_null(ch);
		if (!strstr(why, needle))
			fail_msg("%s: the reason \"%s\" does not say \"%s\"", openers[i].name, why, needle);
		if (ms > max_ms)
			fail_msg("%s: took %u ms, more than %u", openers[i].name, ms, max_ms);
		assert_int_equal(test_count_fds(), fds0);
	}
	fake_stop();
}

/* Fast: no timeout is waited for (the handshake's is HS_MS). */
#define FAST (HS_MS * 2 / 3)

/* ---- descriptors of the wrong kind or number ------------------------------- */

static void test_no_fd(void **s) { (void)s; expect_refused(F_NO_FD, THOTH_E_PROTOCOL, "sent 0 file descriptors", FAST); }
static void test_two_fds(void **s) { (void)s; expect_refused(F_TWO_FDS, THOTH_E_PROTOCOL, "sent 2 file descriptors", FAST); }
/* The count that arrived, not the 2 the handshake keeps: both were "sent
 * 2" (ops39); past the control buffer's 4 the kernel drops the rest
 * (MSG_CTRUNC), so "more than 4". */
static void test_three_fds(void **s) { (void)s; expect_refused(F_THREE_FDS, THOTH_E_PROTOCOL, "sent 3 file descriptors", FAST); }
static void test_many_fds(void **s) { (void)s; expect_refused(F_MANY_FDS, THOTH_E_PROTOCOL, "sent more than 4 file descriptors", FAST); }
static void test_pipe(void **s) { (void)s; expect_refused(F_PIPE, THOTH_E_PROTOCOL, "not a sealed memfd", FAST); }
static void test_socket(void **s) { (void)s; expect_refused(F_SOCKET, THOTH_E_PROTOCOL, "not a sealed memfd", FAST); }
static void test_regular_file(void **s) { (void)s; expect_refused(F_REGFILE, THOTH_E_PROTOCOL, "not a sealed memfd", FAST); }
static void test_dev_zero(void **s) { (void)s; expect_refused(F_DEVZERO, THOTH_E_PROTOCOL, "not a sealed memfd", FAST); }
static void test_tmpfs_file(void **s) { (void)s; expect_refused(F_TMPFS_FILE, THOTH_E_PROTOCOL, "not a sealed memfd", FAST); }
static void test_unsealed_memfd(void **s) { (void)s; expect_refused(F_UNSEALED, THOTH_E_PROTOCOL, "not a sealed memfd", FAST); }
static void test_short_memfd(void **s) { (void)s; expect_refused(F_SHORT, THOTH_E_PROTOCOL, "not a sealed memfd", FAST); }
static void test_empty_memfd(void **s) { (void)s; expect_refused(F_EMPTY, THOTH_E_PROTOCOL, "not a sealed memfd", FAST); }

/* A memfd the client cannot map writable is the service's fault, named as
 * such: not "out of memory". */
static void test_write_sealed_memfd(void **s) { (void)s; expect_refused(F_WRITE_SEALED, THOTH_E_PROTOCOL, "write seal", FAST); }
static void test_future_write_sealed_memfd(void **s) { (void)s; expect_refused(F_FUTURE_WRITE_SEALED, THOTH_E_PROTOCOL, "write seal", FAST); }
static void test_read_only_memfd(void **s) { (void)s; expect_refused(F_READONLY, THOTH_E_PROTOCOL, "read-only", FAST); }

/* ---- the reply's words and the control page --------------------------------- */

static void test_bad_magic(void **s) { (void)s; expect_refused(F_BAD_MAGIC, THOTH_E_CORRUPT, "magic 0xdeadbeef", FAST); }
static void test_bad_geometry(void **s) { (void)s; expect_refused(F_BAD_GEOMETRY, THOTH_E_CORRUPT, "control page describes", FAST); }
static void test_huge_limits(void **s) { (void)s; expect_refused(F_HUGE_LIMITS, THOTH_E_PROTOCOL, "limits", FAST); }
static void test_size_mismatch(void **s) { (void)s; expect_refused(F_SIZE_MISMATCH, THOTH_E_PROTOCOL, "limits", FAST); }
static void test_wrong_major(void **s) { (void)s; expect_refused(F_WRONG_MAJOR, THOTH_E_PROTOCOL, "version", FAST); }
static void test_extra_features(void **s) { (void)s; expect_refused(F_EXTRA_FEATURES, THOTH_E_PROTOCOL, "features", FAST); }
static void test_refusal_keeps_its_code(void **s) { (void)s; expect_refused(F_REFUSE, THOTH_E_BAD_VERSION, "too old", FAST); }

/* THOTH_E_AGAIN is what an opening step says while it waits: a refusal
 * with that code must not look like "no reply yet" (the caller used to
 * wait out its whole deadline and then say the service never answered). */
static void test_refusal_with_again_is_a_protocol_error(void **s)
{
	(void)s;
	expect_refused(F_REFUSE_AGAIN, THOTH_E_PROTOCOL, "come back later", FAST);
}

/* A refusal's reason reaches the caller's why (and thothctl's terminal)
 * with its control characters escaped: it came through as sent, ESC
 * sequences and newlines included (ops39). */
static void test_refusal_reason_has_its_control_characters_escaped(void **s)
{
	(void)s;
	expect_refused(F_REFUSE_ESCAPES, THOTH_E_PERM,
		       "\\x1b[31mred\\x1b[0m\\x1b[2J\\x1b]0;owned\\x07\\x0a2026-12-02T00:00:00Z thothd: all "
		       "fine\\x0d\\x7f\\xc2\\x9b1m \\\\ caf\xc3\xa9", FAST);
}

static void test_refusal_with_positive_status(void **s) { (void)s; expect_refused(F_REFUSE_POSITIVE, THOTH_E_PROTOCOL, "seven", FAST); }
static void test_garbage_reply(void **s) { (void)s; expect_refused(F_GARBAGE, THOTH_E_PROTOCOL, "does not decode", FAST); }
static void test_reply_longer_than_the_maximum(void **s) { (void)s; expect_refused(F_TOO_LONG, THOTH_E_TOO_LARGE, "handshake reply", FAST); }
static void test_bytes_after_the_reply(void **s) { (void)s; expect_refused(F_TRAILING, THOTH_E_PROTOCOL, "handshake reply", FAST); }

/* ---- silence and hang-ups at each step ---------------------------------------- */

static void test_half_a_reply_then_silence(void **s)
{
	(void)s;
	expect_refused(F_HALF_SILENT, THOTH_E_TIMEDOUT, "did not answer the channel handshake within", HS_MS + 1000);
}

static void test_no_reply(void **s)
{
	(void)s;
	expect_refused(F_SILENT, THOTH_E_TIMEDOUT, "did not answer the channel handshake within", HS_MS + 1000);
}

static void test_close_at_accept(void **s) { (void)s; expect_refused(F_CLOSE_AT_ACCEPT, THOTH_E_PEER_GONE, "closed the connection", FAST); }
static void test_close_after_request(void **s) { (void)s; expect_refused(F_CLOSE_AFTER_REQUEST, THOTH_E_PEER_GONE, "closed the connection", FAST); }
static void test_close_mid_reply(void **s) { (void)s; expect_refused(F_CLOSE_MID_REPLY, THOTH_E_PEER_GONE, "closed the connection", FAST); }

/* A service that listens and never accepts: its backlog fills.  The
 * blocking connect waits for room up to the handshake timeout and then
 * says so by name; the non-blocking opening says BUSY at once. */
static void test_service_that_never_accepts(void **s)
{
	(void)s;
	fake_start_ex(F_GOOD, 0, false);
	int fds0 = test_count_fds();
	int fill[64], nfill = 0;
	while (nfill < 64) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		assert_true(fd >= 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			assert_int_equal(errno, EAGAIN);
			close(fd);
			break;
		}
		fill[nfill++] = fd;
	}
	assert_true(nfill < 64);
	int fds1 = test_count_fds();
	thoth_chan_config_t cfg = config();
	thoth_chan_t *ch = NULL;
	char why[400];
	uint64_t t0 = test_now_ns();
	int r = open_blocking(&cfg, &ch, why, sizeof why);
	unsigned ms = (unsigned)((test_now_ns() - t0) / 1000000u);
	print_message("  thoth_chan_connect: %s (%u ms): %s\n", thoth_errname(r), ms, why);
	assert_int_equal(r, THOTH_E_TIMEDOUT);
	assert_non_null(strstr(why, "full backlog"));
	assert_true(ms >= HS_MS - 50 && ms < HS_MS + 1000);
	assert_int_equal(test_count_fds(), fds1);
	t0 = test_now_ns();
	r = open_nonblocking(&cfg, &ch, why, sizeof why);
	ms = (unsigned)((test_now_ns() - t0) / 1000000u);
	print_message("  non-blocking steps: %s (%u ms): %s\n", thoth_errname(r), ms, why);
	assert_int_equal(r, THOTH_E_BUSY);
	assert_non_null(strstr(why, "full backlog"));
	assert_true(ms < FAST);
	assert_int_equal(test_count_fds(), fds1);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	assert_int_equal(test_count_fds(), fds0);
	fake_stop();
}

/* ---- an open channel the service then abuses ------------------------------------ */

/* One echo call of 64 bytes, or of LEN bytes (a pool buffer beyond the inline size). */
static int echo(thoth_chan_t *ch, size_t len)
{
	static uint8_t data[8192];
	thoth_chantest_Test_echo_req_t rq = { .data = { .ptr = data, .len = len } };
	thoth_chantest_Test_echo_resp_t rs;
	uint64_t ab[64];
	thoth_arena_t a;
	thoth_arena_init(&a, ab, sizeof ab);
	return thoth_chantest_Test_echo(thoth_chan_client(ch), &rq, &rs, &a);
}

/* Open the fake's channel both ways, a fresh fake each (the counters CHECK
 * reads are then its connection's alone); run CHECK on each; the
 * descriptors are back to where they were after each close. */
static void with_open_channel(fake_mode_t mode, const thoth_chan_config_t *cfg0,
			      void (*check)(thoth_chan_t *ch, const char *how))
{
	for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++) {
		fake_start(mode);
		int fds0 = test_count_fds();
		thoth_chan_config_t cfg = cfg0 ? *cfg0 : config();
		thoth_chan_t *ch = NULL;
		char why[400] = "";
		int r = openers[i].open(&cfg, &ch, why, sizeof why);
		if (r)
			fail_msg("%s: %s: %s", openers[i].name, thoth_errname(r), why);
		check(ch, openers[i].name);
		thoth_chan_close(ch);
		assert_int_equal(test_count_fds(), fds0);
		fake_stop();
	}
}

static void first_call_is_corrupt(thoth_chan_t *ch, const char *how)
{
	uint64_t t0 = test_now_ns();
	int r = echo(ch, 64);
	unsigned ms = (unsigned)((test_now_ns() - t0) / 1000000u);
	chan_end_t *e = thoth_chan__end(ch);
	print_message("  %s: %s (%u ms): %s\n", how, thoth_errname(r), ms, e->why);
	assert_int_equal(r, THOTH_E_CORRUPT);
	assert_true(ms < 1000);         /* at once: no timeout (2 s) waited for */
	/* Sticky: the next call says the same at once. */
	assert_int_equal(echo(ch, 64), THOTH_E_CORRUPT);
}

static void test_inline_length_past_the_slot(void **s) { (void)s; with_open_channel(F_INLINE_TOO_LONG, NULL, first_call_is_corrupt); }
static void test_pool_descriptor_past_the_pool(void **s) { (void)s; with_open_channel(F_POOL_OUTSIDE, NULL, first_call_is_corrupt); }
static void test_head_far_ahead(void **s) { (void)s; with_open_channel(F_HEAD_FAR, NULL, first_call_is_corrupt); }

static void first_call_peer_gone(thoth_chan_t *ch, const char *how)
{
	uint64_t t0 = test_now_ns();
	int r = echo(ch, 64);
	unsigned ms = (unsigned)((test_now_ns() - t0) / 1000000u);
	print_message("  %s: %s (%u ms)\n", how, thoth_errname(r), ms);
	assert_int_equal(r, THOTH_E_PEER_GONE);
	assert_true(ms < 1000);         /* the 10 ms re-check, not the 2 s timeout */
}

static void test_service_exits_after_its_reply(void **s) { (void)s; with_open_channel(F_CLOSE_AFTER_REPLY, NULL, first_call_peer_gone); }

/* The shrink seal stops a truncation (which would SIGBUS the client); a
 * punched hole is allowed and reads as zeros: calls time out, nothing
 * faults. */
static void truncated_memory(thoth_chan_t *ch, const char *how)
{
	atomic_store(&rep->go, 1);
	for (uint64_t end = test_now_ns() + 2000000000ull; !atomic_load(&rep->punched) && test_now_ns() < end;) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	assert_int_equal(atomic_load(&rep->truncate_errno), EPERM);
	assert_true(atomic_load(&rep->punched));
	chan_end_t *e = thoth_chan__end(ch);
	volatile uint8_t sum = 0;
	for (size_t off = 0; off < e->lay.size; off += CHAN_PAGE)
		sum += e->base[off];    /* every page still there */
	(void)sum;
	int r = echo(ch, 64);
	print_message("  %s: after a punched hole: %s\n", how, thoth_errname(r));
	assert_true(r == THOTH_E_TIMEDOUT || r == THOTH_E_CORRUPT);
	r = echo(ch, 6000);
	assert_true(r == THOTH_E_TIMEDOUT || r == THOTH_E_CORRUPT);
	atomic_store(&rep->punched, 0);
	atomic_store(&rep->go, 0);
}

/* Calls that are expected to time out: a short timeout. */
static thoth_chan_config_t short_calls(void)
{
	thoth_chan_config_t cfg = config();
	cfg.timeout_ms = 200;
	return cfg;
}

static void test_memory_cannot_be_truncated(void **s)
{
	(void)s;
	thoth_chan_config_t cfg = short_calls();
	with_open_channel(F_TRUNCATE_LATER, &cfg, truncated_memory);
}

/* Random words into every shared index, flag, presence and moderation word
 * while the client calls: each call ends within its timeout (plus slack),
 * with any answer but a crash, and the client carries on until its channel
 * fails. */
static void scribbled(thoth_chan_t *ch, const char *how)
{
	unsigned calls = 0, worst = 0, ok = 0, corrupt = 0, timedout = 0, other = 0;
	for (uint64_t end = test_now_ns() + 700000000ull; test_now_ns() < end; calls++) {
		uint64_t t0 = test_now_ns();
		int r = echo(ch, calls % 3 == 2 ? 6000 : 64);
		unsigned ms = (unsigned)((test_now_ns() - t0) / 1000000u);
		worst = ms > worst ? ms : worst;
		if (ms > 200 + 2000)
			fail_msg("%s: a call took %u ms with a 200 ms timeout", how, ms);
		ok += r == 0;
		corrupt += r == THOTH_E_CORRUPT;
		timedout += r == THOTH_E_TIMEDOUT;
		other += r && r != THOTH_E_CORRUPT && r != THOTH_E_TIMEDOUT;
		if (r == THOTH_E_CORRUPT || r == THOTH_E_PEER_GONE)
			break;          /* sticky: the channel is done */
	}
	print_message("  %s: %u calls (%u ok, %u corrupt, %u timed out, %u other), worst %u ms, %llu words scribbled: %s\n",
		      how, calls, ok, corrupt, timedout, other, worst,
		      (unsigned long long)atomic_load(&rep->scribbles), thoth_chan__end(ch)->why);
	assert_true(atomic_load(&rep->scribbles) > 0);
}

/* Calls run on while a service scribbles only payload bytes (the pool
 * buffers) and answers what it can decode: the channel never fails (no
 * index or flag is touched), and every call is answered or times out
 * within its bound.  The phase F_SCRIBBLE cannot reach: there the first
 * call already fails in most rounds. */
static void payload_scribbled(thoth_chan_t *ch, const char *how)
{
	unsigned calls = 0, worst = 0, ok = 0, timedout = 0;
	for (uint64_t end = test_now_ns() + 700000000ull; test_now_ns() < end; calls++) {
		uint64_t t0 = test_now_ns();
		int r = echo(ch, calls % 3 == 2 ? 6000 : 64);
		unsigned ms = (unsigned)((test_now_ns() - t0) / 1000000u);
		worst = ms > worst ? ms : worst;
		if (ms > 200 + 2000)
			fail_msg("%s: a call took %u ms with a 200 ms timeout", how, ms);
		if (r && r != THOTH_E_TIMEDOUT && r != THOTH_E_PROTOCOL && r != THOTH_E_CORRUPT)
			fail_msg("%s: call %u: %s (%s)", how, calls, thoth_errname(r), thoth_chan__end(ch)->why);
		ok += r == 0;
		timedout += r == THOTH_E_TIMEDOUT;
		if (r == THOTH_E_CORRUPT)
			fail_msg("%s: call %u: the channel failed with only payload bytes scribbled: %s", how, calls,
				 thoth_chan__end(ch)->why);
	}
	print_message("  %s: payload scribbled: %u calls (%u ok, %u timed out), worst %u ms, %llu words\n", how,
		      calls, ok, timedout, worst, (unsigned long long)atomic_load(&rep->scribbles));
	assert_true(atomic_load(&rep->scribbles) > 0);
	assert_true(calls > 3);         /* past the first: at most 700 ms / 200 ms timeouts, else answers */
	assert_true(ok > 0);            /* 64-byte calls ride in their slot, out of the scribbler's reach */
}

static void test_scribbled_memory_spin(void **s)
{
	(void)s;
	thoth_chan_config_t cfg = short_calls();
	for (int round = 0; round < 4; round++)
		with_open_channel(F_SCRIBBLE, &cfg, scribbled);
	with_open_channel(F_SCRIBBLE_PAYLOAD, &cfg, payload_scribbled);
}

static void test_scribbled_memory_sleep_loop_moderated(void **s)
{
	(void)s;
	thoth_chan_config_t cfg = short_calls();
	cfg.wait = THOTH_CHAN_SLEEP;
	cfg.loop_wakeup = true;
	cfg.moderation.policy = THOTH_CHAN_MOD_ADAPTIVE;
	for (int round = 0; round < 4; round++)
		with_open_channel(F_SCRIBBLE, &cfg, scribbled);
	with_open_channel(F_SCRIBBLE_PAYLOAD, &cfg, payload_scribbled);
}

/* Hint words with random values while the service answers honestly: every
 * call is answered (a timeout would mean a lost wake-up), none hangs. */
static void hinted(thoth_chan_t *ch, const char *how)
{
	unsigned calls = 0, worst_us = 0;
	for (uint64_t end = test_now_ns() + 500000000ull; test_now_ns() < end; calls++) {
		uint64_t t0 = test_now_ns();
		int r = echo(ch, calls % 3 == 2 ? 6000 : 64);
		unsigned us = (unsigned)((test_now_ns() - t0) / 1000u);
		worst_us = us > worst_us ? us : worst_us;
		if (r)
			fail_msg("%s: call %u: %s (%s) after %u us", how, calls, thoth_errname(r),
				 thoth_chan__end(ch)->why, us);
	}
	print_message("  %s: %u calls answered, worst %u us\n", how, calls, worst_us);
	assert_true(calls > 10);
}

static void test_hostile_hints_cost_no_call(void **s)
{
	(void)s;
	with_open_channel(F_HINTS, NULL, hinted);
	thoth_chan_config_t cfg = config();
	cfg.wait = THOTH_CHAN_SLEEP;
	cfg.moderation.policy = THOTH_CHAN_MOD_ADAPTIVE;
	with_open_channel(F_HINTS, &cfg, hinted);
	cfg.loop_wakeup = true;
	with_open_channel(F_HINTS, &cfg, hinted);
}

/* Descriptors riding on doorbell bytes are never installed: the client's
 * reads of its socket (arm, drain, liveness peek) pass no control buffer,
 * and the kernel closes what they would have carried. */
static void doorbells_with_fds(thoth_chan_t *ch, const char *how)
{
	int fds0 = test_count_fds();
	for (uint64_t end = test_now_ns() + 2000000000ull; atomic_load(&rep->bells_sent) < 50 && test_now_ns() < end;) {
		int r = thoth_chan_arm(ch);
		assert_true(r == 0 || r == 1);
		struct pollfd p = { .fd = thoth_chan_fd(ch), .events = POLLIN };
		poll(&p, 1, 5);
	}
	assert_true(atomic_load(&rep->bells_sent) >= 50);
	/* Stop the sender, then read everything it sent: a descriptor
	 * still queued in the socket is in no table yet, and would be
	 * installed (or not) only when read. */
	atomic_store(&rep->go, 1);
	for (uint64_t end = test_now_ns() + 2000000000ull; !atomic_load(&rep->bells_stopped) && test_now_ns() < end;)
		sched_yield();
	assert_true(atomic_load(&rep->bells_stopped));
	int unread = -1;
	for (uint64_t end = test_now_ns() + 2000000000ull; test_now_ns() < end;) {
		int r = thoth_chan_arm(ch);
		assert_true(r == 0 || r == 1);
		assert_int_equal(ioctl(thoth_chan_fd(ch), FIONREAD, &unread), 0);
		if (!unread)
			break;
		struct pollfd p = { .fd = thoth_chan_fd(ch), .events = POLLIN };
		poll(&p, 1, 5);
	}
	assert_int_equal(unread, 0);    /* everything read */
	thoth_msg_t m;
	assert_int_equal(thoth_chan_recv(ch, &m, 20), THOTH_E_TIMEDOUT);
	print_message("  %s: %d doorbells with 2 descriptors each, all read; descriptors %d -> %d\n", how,
		      atomic_load(&rep->bells_sent), fds0, test_count_fds());
	assert_int_equal(test_count_fds(), fds0);
	atomic_store(&rep->bells_sent, 0);
	atomic_store(&rep->bells_stopped, 0);
	atomic_store(&rep->go, 0);
}

static void test_descriptors_on_doorbells_are_dropped(void **s)
{
	(void)s;
	thoth_chan_config_t cfg = config();
	cfg.loop_wakeup = true;
	with_open_channel(F_DOORBELL_FDS, &cfg, doorbells_with_fds);
}

/* The honest fake opens: the harness itself is sound. */
static void opens(thoth_chan_t *ch, const char *how)
{
	(void)how;
	assert_non_null(ch);
	assert_int_equal(thoth_chan_error(ch), 0);
}

static void test_honest_fake_opens(void **s) { (void)s; with_open_channel(F_GOOD, NULL, opens); }

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_honest_fake_opens),
		T(test_no_fd),
		T(test_two_fds),
		T(test_three_fds),
		T(test_many_fds),
		T(test_pipe),
		T(test_socket),
		T(test_regular_file),
		T(test_dev_zero),
		T(test_tmpfs_file),
		T(test_unsealed_memfd),
		T(test_short_memfd),
		T(test_empty_memfd),
		T(test_write_sealed_memfd),
		T(test_future_write_sealed_memfd),
		T(test_read_only_memfd),
		T(test_bad_magic),
		T(test_bad_geometry),
		T(test_huge_limits),
		T(test_size_mismatch),
		T(test_wrong_major),
		T(test_extra_features),
		T(test_refusal_keeps_its_code),
		T(test_refusal_with_again_is_a_protocol_error),
		T(test_refusal_with_positive_status),
		T(test_refusal_reason_has_its_control_characters_escaped),
		T(test_garbage_reply),
		T(test_reply_longer_than_the_maximum),
		T(test_bytes_after_the_reply),
		T(test_half_a_reply_then_silence),
		T(test_no_reply),
		T(test_close_at_accept),
		T(test_close_after_request),
		T(test_close_mid_reply),
		T(test_service_that_never_accepts),
		T(test_inline_length_past_the_slot),
		T(test_pool_descriptor_past_the_pool),
		T(test_head_far_ahead),
		T(test_service_exits_after_its_reply),
		T(test_memory_cannot_be_truncated),
		T(test_scribbled_memory_spin),
		T(test_scribbled_memory_sleep_loop_moderated),
		T(test_descriptors_on_doorbells_are_dropped),
		T(test_hostile_hints_cost_no_call),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
