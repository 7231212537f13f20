/*
 * mailbox.c - the traced process's side of live attach (docs/PROBES.md
 * "Live attach"): thothd posts a command in the probe mailbox of our trace
 * buffer's control page and sets the probe bits; the first trace point hit
 * afterwards takes the command here.
 *
 * Attach: open the object thothd put in a sealed memfd (/proc/PID/fd/N of
 * thothd), parse and verify it here again (we trust nothing we share),
 * instantiate its maps in our own memfd and attach every thoth/ program.
 * The maps fd number goes back in the acknowledgement so thothd and
 * thothctl can map them (/proc/OUR_PID/fd/N).  Detach: by thothd's id.
 *
 * One thread takes a command (a trylock); the others go on with their
 * events, so probes already attached miss nothing while one installs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../trace_internal.h"
#include "probe_internal.h"
#include "probe_runtime.h"
#include "pidpin.h"

typedef struct installed {
	thoth_probe_object_t *obj;
	thoth_probe_maps_t *maps;
	uint32_t n;
	thoth_probe_prog_t *prog[THOTH_PROBE_MAX_PROGS];
	uint64_t local_id[THOTH_PROBE_MAX_PROGS];   /* thoth_probe_attach's */
	uint64_t remote_id[THOTH_PROBE_MAX_PROGS];  /* thothd's; 0 = detached */
	struct installed *next;
} installed_t;

static pthread_mutex_t mb_lock = PTHREAD_MUTEX_INITIALIZER;
/* Private truth: the last command taken (probe_fire compares the
 * mailbox's cmd_seq with it on every probed event). */
uint64_t thoth__probe_taken_seq;
#define taken_seq thoth__probe_taken_seq
static installed_t *installed;

static thoth_trace_probe_mailbox_t *mailbox(void)
{
	thoth_trace_control_t *c = thoth_trace_buffer.control;
	return c ? (thoth_trace_probe_mailbox_t *)((char *)c + THOTH_TRACE_PROBE_MAILBOX_OFFSET)
	         : NULL;
}

static void ack(thoth_trace_probe_mailbox_t *mb, uint64_t seq, int status, int maps_fd,
                const char *msg)
{
	mb->ack_status = status;
	mb->maps_fd = maps_fd;
	snprintf(mb->ack_msg, sizeof mb->ack_msg, "%s", msg ? msg : "");
	__atomic_store_n(&mb->ack_seq, seq, __ATOMIC_RELEASE);
}

static void free_installed(installed_t *in)
{
	for (uint32_t i = 0; i < in->n; i++)
		thoth_probe_prog_free(in->prog[i]);
	thoth_probe_maps_free(in->maps);
	thoth_probe_object_free(in->obj);
	free(in);
}

/* The slots thothd lists: one per running program. */
static void refresh_slots(thoth_trace_probe_mailbox_t *mb)
{
	uint32_t k = 0;
	for (installed_t *in = installed; in; in = in->next)
		for (uint32_t i = 0; i < in->n && k < THOTH_TRACE_PROBE_SLOTS; i++) {
			if (!in->remote_id[i])
				continue;
			thoth_trace_probe_slot_t *s = &mb->slots[k++];
			thoth_probe_stats_t st;
			if (thoth_probe_stats(in->local_id[i], &st))
				continue;
			s->probe_id = in->remote_id[i];
			s->runs = st.runs;
			s->maps_fd = thoth_probe_maps_fd(in->maps);
			snprintf(s->reason, sizeof s->reason, "%.95s", st.reason);
			__atomic_store_n(&s->state, st.detached ? THOTH_TRACE_PROBE_STOPPED
			                                        : THOTH_TRACE_PROBE_RUNNING,
			                 __ATOMIC_RELEASE);
		}
	for (; k < THOTH_TRACE_PROBE_SLOTS; k++)
		__atomic_store_n(&mb->slots[k].state, THOTH_TRACE_PROBE_FREE, __ATOMIC_RELEASE);
}

static int fetch_object(uint32_t from_pid, int32_t fd, uint32_t len, uint8_t **out, char *msg,
                        size_t msg_len)
{
	if (fd < 0 || from_pid == 0 || len == 0 || len > THOTH_PROBE_MAX_OBJECT) {
		snprintf(msg, msg_len, "attach command with fd %d of pid %u, %u bytes: invalid", fd,
		         from_pid, len);
		return THOTH_E_INVAL;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/%u/fd/%d", from_pid, fd);
	/* FROM_PID (thothd) pinned from before the open until the bytes are
	 * read (pidpin.h): one that exited meanwhile may have left its number
	 * to another process, whose descriptor FD would be loaded as the
	 * object.  No pidfds here: unpinned, as before. */
	int pidfd = thoth__pid_pin(from_pid);
	if (pidfd < 0 && errno != ENOSYS) {
		int e = errno;
		snprintf(msg, msg_len, "cannot pin pid %u to read the object at %s: %s", from_pid, path,
		         e == ESRCH ? "it has exited" : strerror(e));
		return e == ESRCH ? THOTH_E_INVAL : thoth_error_io(e, "pidfd_open %u", from_pid);
	}
	int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0) {
		int e = errno;
		snprintf(msg, msg_len, "cannot open the object at %s: %s", path, strerror(e));
		if (pidfd >= 0)
			close(pidfd);
		return thoth_error_io(e, "open %s", path);
	}
	uint8_t *buf = malloc(len);
	int r = 0;
	size_t got = 0;
	while (buf && got < len) {
		ssize_t n = pread(f, buf + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (!buf) {
		r = THOTH_E_NOMEM;
	} else if (got != len) {
		snprintf(msg, msg_len, "the object at %s has %zu of %u bytes", path, got, len);
		r = THOTH_E_INVAL;
		free(buf);
		buf = NULL;
	}
	close(f);
	if (!thoth__pid_lived_through(from_pid, pidfd) && !r) {
		snprintf(msg, msg_len, "pid %u exited while the object at %s was read (its pid may name "
		         "another process now)", from_pid, path);
		r = THOTH_E_INVAL;
		free(buf);
		buf = NULL;
	}
	if (pidfd >= 0)
		close(pidfd);
	*out = buf;
	return r;
}

static void do_attach(thoth_trace_probe_mailbox_t *mb, uint64_t seq, uint32_t from_pid,
                      int32_t fd, uint32_t len, uint64_t first_id)
{
	char msg[464] = "";
	uint8_t *bytes = NULL;
	int r = fetch_object(from_pid, fd, len, &bytes, msg, sizeof msg);
	if (r) {
		ack(mb, seq, r, -1, msg);
		return;
	}
	installed_t *in = calloc(1, sizeof *in);
	if (!in) {
		free(bytes);
		ack(mb, seq, THOTH_E_NOMEM, -1, "out of memory");
		return;
	}
	r = thoth_probe_object_open(bytes, len, &in->obj, msg, sizeof msg);
	free(bytes);
	if (!r)
		r = thoth_probe_maps_new(in->obj, &in->maps);
	for (uint32_t i = 0; !r && i < in->obj->n_progs; i++) {
		if (in->obj->progs[i].kind != PROBE_KIND_THOTH)
			continue;
		r = thoth_probe_prog_load(in->obj, i, in->maps, THOTH_PROBE_ENGINE_AUTO,
		                          &in->prog[in->n], msg, sizeof msg);
		if (!r)
			in->n++;
	}
	for (uint32_t i = 0; !r && i < in->n; i++) {
		r = thoth_probe_attach(in->prog[i], &in->local_id[i]);
		if (!r)
			in->remote_id[i] = first_id + i;
		else
			snprintf(msg, sizeof msg, "attach: %s", thoth_strerror(r));
	}
	if (r) {
		for (uint32_t i = 0; i < in->n; i++)
			if (in->remote_id[i])
				thoth_probe_detach(in->local_id[i]);
		free_installed(in);
		ack(mb, seq, r, -1, msg);
		return;
	}
	in->next = installed;
	installed = in;
	refresh_slots(mb);
	ack(mb, seq, 0, thoth_probe_maps_fd(in->maps), "");
}

static void do_detach(thoth_trace_probe_mailbox_t *mb, uint64_t seq, uint64_t id)
{
	for (installed_t **pp = &installed; *pp; pp = &(*pp)->next) {
		installed_t *in = *pp;
		for (uint32_t i = 0; i < in->n; i++) {
			if (in->remote_id[i] != id)
				continue;
			thoth_probe_detach(in->local_id[i]);
			in->remote_id[i] = 0;
			bool any = false;
			for (uint32_t k = 0; k < in->n; k++)
				any = any || in->remote_id[k];
			if (!any) {
				*pp = in->next;
				free_installed(in);
			}
			refresh_slots(mb);
			ack(mb, seq, 0, -1, "");
			return;
		}
	}
	ack(mb, seq, THOTH_E_NOT_FOUND, -1, "no such probe in this process");
}

/* Command SEQ ours to act on, unless thothd withdrew it first (claimed it
 * and acknowledged it itself: trace_layout.h).  Exactly one side wins. */
static bool claim(thoth_trace_probe_mailbox_t *mb, uint64_t seq)
{
	uint64_t c = __atomic_load_n(&mb->claim_seq, __ATOMIC_ACQUIRE);
	while (c < seq)
		if (__atomic_compare_exchange_n(&mb->claim_seq, &c, seq, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return true;
	return false;
}

void thoth__probe_poll(void)
{
	thoth_trace_probe_mailbox_t *mb = mailbox();
	/* A forked child shares its parent's buffer, mailbox and all: the
	 * commands are the creator's (thothd addresses them by its pid, an
	 * ATTACH's maps fd is read in its fd table), so only it takes them.
	 * The child still marks the command seen in its private taken_seq:
	 * else every trace point of it would come here (a getpid() syscall)
	 * for as long as the probe bits are on; so it polls once a command. */
	if (!mb)
		return;
	uint64_t seq = __atomic_load_n(&mb->cmd_seq, __ATOMIC_ACQUIRE);
	if (thoth_trace_buffer.pid != (uint32_t)getpid()) {
		__atomic_store_n(&taken_seq, seq, __ATOMIC_RELAXED);
		return;
	}
	if (pthread_mutex_trylock(&mb_lock))
		return;     /* another thread takes it */
	if (seq != taken_seq) {
		/* Copy the command out before acting: the fields are shared. */
		uint32_t cmd = mb->cmd, from = mb->from_pid, len = mb->object_len;
		int32_t fd = mb->object_fd;
		uint64_t id = mb->probe_id;
		__atomic_store_n(&taken_seq, seq, __ATOMIC_RELAXED);
		/* Claimed after the copy: a command thothd withdrew may have been
		 * replaced by its next one while we copied; then the claim fails
		 * and the copy is dropped (the next poll takes the new one). */
		if (!claim(mb, seq)) {
			/* withdrawn: thothd claimed it and acknowledged it */
		} else if (cmd == THOTH_TRACE_PROBE_CMD_ATTACH)
			do_attach(mb, seq, from, fd, len, id);
		else if (cmd == THOTH_TRACE_PROBE_CMD_DETACH)
			do_detach(mb, seq, id);
		else
			ack(mb, seq, THOTH_E_INVAL, -1, "unknown command");
	} else {
		refresh_slots(mb);
	}
	/* Nothing attached and nothing waiting: the probe bits off again (every
	 * trace point would otherwise come here); a command posted meanwhile
	 * sets them back. */
	if (!thoth__probe_any()) {
		thoth__probe_bits(false);
		if (__atomic_load_n(&mb->cmd_seq, __ATOMIC_ACQUIRE) != taken_seq)
			thoth__probe_bits(true);
	}
	pthread_mutex_unlock(&mb_lock);
}
