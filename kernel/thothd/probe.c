/*
 * probe.c - thothd's side of live probe attach (OBS-2): ProbeControl on the
 * control socket (idl/probe.tidl, docs/PROBES.md "Live attach").
 *
 * thothd holds every traced process's trace buffer (trace.c).  To attach,
 * it verifies the object (so thothctl gets the verifier's message at
 * once), puts it in a sealed memfd, posts an ATTACH command in the probe
 * mailbox of the target's control page and sets the target's probe bits;
 * the target takes the command at its next trace point (mailbox.c),
 * verifies the object again, attaches, and answers in the mailbox.  No
 * restart, no signal, no extra wake-up of thothd: `list` reads the
 * mailboxes when asked.  One command per target at a time (Busy).
 *
 * Kernel probes (kernel_attach, probe_kernel.c) are records of the same
 * list and id space: thothd holds their links, so `list`, `detach` and
 * the dashboard (thothd_probes_json) see them beside the user probes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "jsonbuf.h"
#include "log.h"
#include "probe_kernel.h"
#include "probe.thoth.h"
#include "thoth/probe.h"
#include "thothd.h"
#include "trace_layout.h"

enum { MAX_RECORDS = 256 };

typedef struct probe_rec {
	uint64_t id;
	uint32_t pid;
	char program[512];       /* kernel probes: every program, comma-separated */
	int object_fd;           /* until the target took the command */
	uint64_t attach_seq, detach_seq;
	char state[520];
	int32_t maps_fd;
	uint64_t runs;
	/* Kernel probes: the loaded object (NULL once detached), its name, and
	 * the connection it dies with (NULL: held until detach). */
	thothd_kprobe_t *kp;
	bool kernel;
	char object[128];
	const thothd_client_t *holder;
	uint32_t holder_pid;
	struct probe_rec *next;
} probe_rec_t;

struct thothd_probes {
	uint64_t next_id;
	probe_rec_t *recs;
	uint32_t n;
};

int thothd_probes_new(thothd_t *d, thothd_probes_t **out)
{
	(void)d;
	thothd_probes_t *p = calloc(1, sizeof *p);
	if (!p)
		return THOTH_E_NOMEM;
	p->next_id = 1;
	*out = p;
	return 0;
}

void thothd_probes_free(thothd_probes_t *p)
{
	if (!p)
		return;
	while (p->recs) {
		probe_rec_t *r = p->recs;
		p->recs = r->next;
		if (r->object_fd >= 0)
			close(r->object_fd);
		thothd_kprobe_free(r->kp);
		free(r);
	}
	free(p);
}

/* Finished records (detached, failed, gone) go, oldest first, to make room
 * for NEED more under MAX_RECORDS: a long-lived thothd keeps taking probes. */
static void prune(thothd_probes_t *p, uint32_t need)
{
	while (p->n + need > MAX_RECORDS) {
		probe_rec_t **victim = NULL;
		for (probe_rec_t **pp = &p->recs; *pp; pp = &(*pp)->next) {
			probe_rec_t *r = *pp;
			bool done = r->kernel ? !r->kp
					      : r->object_fd < 0 && (!strncmp(r->state, "detached", 8) ||
								     !strncmp(r->state, "failed", 6) ||
								     !strncmp(r->state, "withdrawn", 9) ||
								     !strncmp(r->state, "gone", 4));
			if (done)
				victim = pp;    /* the list is newest first: keep the last one */
		}
		if (!victim)
			return;
		probe_rec_t *r = *victim;
		*victim = r->next;
		free(r);
		p->n--;
	}
}

static void kernel_detach(probe_rec_t *r, const char *why)
{
	thothd_kprobe_free(r->kp);
	r->kp = NULL;
	r->holder = NULL;
	snprintf(r->state, sizeof r->state, "detached (%s)", why);
}

void thothd_probes_client_closed(thothd_probes_t *p, const thothd_client_t *c)
{
	for (probe_rec_t *r = p->recs; r; r = r->next)
		if (r->kernel && r->kp && r->holder == c) {
			thothd_info("kernel probe %llu (%s): detached, its thothctl (pid %u) closed "
				    "the connection", (unsigned long long)r->id, r->object, r->holder_pid);
			kernel_detach(r, "the thothctl that held it closed its connection");
		}
}

static thoth_trace_probe_mailbox_t *mailbox_of(thothd_t *d, uint32_t pid)
{
	thoth_trace_reader_t *reader = thothd_tracer_reader(d->tracer, pid);
	if (!reader)
		return NULL;
	char *c = thoth__trace_reader_control_page(reader);
	return c ? (thoth_trace_probe_mailbox_t *)(c + THOTH_TRACE_PROBE_MAILBOX_OFFSET) : NULL;
}

static void set_probe_bits(thothd_t *d, uint32_t pid)
{
	thoth_trace_reader_t *reader = thothd_tracer_reader(d->tracer, pid);
	thoth_trace_control_t *c = reader ? thoth__trace_reader_control_page(reader) : NULL;
	if (c)
		__atomic_fetch_or(&c->enabled,
		                  (uint64_t)THOTH_TRACE_ALL_CATEGORIES << THOTH_TRACE_PROBE_SHIFT,
		                  __ATOMIC_RELAXED);
}

static bool mailbox_busy(thoth_trace_probe_mailbox_t *mb)
{
	return __atomic_load_n(&mb->cmd_seq, __ATOMIC_ACQUIRE) !=
	       __atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE);
}

static uint64_t post(thoth_trace_probe_mailbox_t *mb, uint32_t cmd, int fd, uint32_t len,
                     uint64_t id)
{
	mb->cmd = cmd;
	mb->from_pid = (uint32_t)getpid();
	mb->object_fd = fd;
	mb->object_len = len;
	mb->probe_id = id;
	uint64_t seq = __atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE) + 1;
	__atomic_store_n(&mb->cmd_seq, seq, __ATOMIC_RELEASE);
	return seq;
}

/* What the target reports now, into each record. */
static void refresh(thothd_t *d)
{
	for (probe_rec_t *r = d->probes->recs; r; r = r->next) {
		if (r->kernel) {
			if (r->kp)
				r->runs = thothd_kprobe_runs(r->kp);
			continue;
		}
		thoth_trace_probe_mailbox_t *mb = mailbox_of(d, r->pid);
		if (!mb) {
			if (strncmp(r->state, "gone", 4) != 0)
				snprintf(r->state, sizeof r->state, "gone (process %u exited)", r->pid);
			if (r->object_fd >= 0) {
				close(r->object_fd);
				r->object_fd = -1;
			}
			continue;
		}
		uint64_t acked = __atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE);
		if (acked < r->attach_seq) {
			snprintf(r->state, sizeof r->state,
			         "pending (taken at the process's next trace point)");
			continue;
		}
		if (r->object_fd >= 0) {
			close(r->object_fd);
			r->object_fd = -1;
			if (acked == r->attach_seq && mb->ack_status != 0) {
				char msg[sizeof mb->ack_msg];
				memcpy(msg, mb->ack_msg, sizeof msg);
				msg[sizeof msg - 1] = '\0';
				snprintf(r->state, sizeof r->state, "failed: %s", msg);
				continue;
			}
		}
		if (strncmp(r->state, "failed", 6) == 0 || strncmp(r->state, "withdrawn", 9) == 0)
			continue;
		if (r->detach_seq && acked == r->detach_seq && mb->ack_status != 0) {
			/* refused (no such probe there): it runs on as it was */
			r->detach_seq = 0;
		} else if (r->detach_seq && acked >= r->detach_seq) {
			snprintf(r->state, sizeof r->state, "detached (thothctl probe detach)");
			continue;
		}
		bool found = false;
		for (uint32_t k = 0; k < THOTH_TRACE_PROBE_SLOTS; k++) {
			thoth_trace_probe_slot_t *s = &mb->slots[k];
			uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
			if (state == THOTH_TRACE_PROBE_FREE || s->probe_id != r->id)
				continue;
			found = true;
			r->runs = s->runs;
			r->maps_fd = s->maps_fd;
			if (state == THOTH_TRACE_PROBE_STOPPED) {
				char why[sizeof s->reason];
				memcpy(why, s->reason, sizeof why);
				why[sizeof why - 1] = '\0';
				snprintf(r->state, sizeof r->state, "detached: %s", why);
			} else {
				snprintf(r->state, sizeof r->state, "%s",
				         r->detach_seq ? "detaching" : "running");
			}
		}
		if (!found && !r->detach_seq)
			snprintf(r->state, sizeof r->state, "running");
	}
}

static int sealed_copy(const uint8_t *bytes, uint32_t len)
{
	int fd = memfd_create("thoth-probe-object", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, bytes + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Why pid PID's mailbox takes no command now, into MSG: the command it has
 * not taken, by probe id, and how to withdraw it when that is one of ours
 * (an attach its thothctl gave up on: `probe run` on an idle service). */
static void busy_reason(thothd_t *d, uint32_t pid, char *msg, size_t len)
{
	refresh(d);
	thoth_trace_probe_mailbox_t *mb = mailbox_of(d, pid);
	bool can = mb && (__atomic_load_n(&mb->features, __ATOMIC_RELAXED) &
			  THOTH_TRACE_PROBE_FEAT_WITHDRAW);
	for (probe_rec_t *r = d->probes->recs; r; r = r->next)
		if (!r->kernel && r->pid == pid && !strncmp(r->state, "pending", 7)) {
			if (can)
				snprintf(msg, len, "pid %u has not taken probe %llu yet (taken at its next "
					 "trace point; `thothctl probe detach %llu` withdraws it)",
					 pid, (unsigned long long)r->id, (unsigned long long)r->id);
			else
				snprintf(msg, len, "pid %u has not taken probe %llu yet (taken at its next "
					 "trace point; its libthoth cannot withdraw it)",
					 pid, (unsigned long long)r->id);
			return;
		}
	/* A detach posted just as the process went idle (`probe run` on a
	 * service whose clients stopped): nothing to withdraw, it only waits.
	 * The bare "previous probe command" named neither it nor what to do. */
	uint64_t acked = mb ? __atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE) : UINT64_MAX;
	for (probe_rec_t *r = d->probes->recs; r; r = r->next)
		/* not yet taken: a detach taken keeps its detach_seq (refresh),
		 * and a newer probe detached before named itself here */
		if (!r->kernel && r->pid == pid && r->detach_seq > acked) {
			snprintf(msg, len, "pid %u has not taken the detach of probe %llu yet (taken at its "
				 "next trace point, e.g. its next call; try again after it)",
				 pid, (unsigned long long)r->id);
			return;
		}
	snprintf(msg, len, "pid %u has not taken the previous probe command yet (it takes them "
		 "at its next trace point)", pid);
}

/* Withdraw the attach REC was posted with, which its process has not taken
 * (trace_layout.h: claimed here, acknowledged here).  0; THOTH_E_BUSY when
 * the process is taking it at this moment (a detach moments later finds
 * it attached); THOTH_E_NO_FEATURE when its libthoth predates withdrawal. */
static int withdraw(thothd_t *d, probe_rec_t *rec, thoth_trace_probe_mailbox_t *mb)
{
	if (!(__atomic_load_n(&mb->features, __ATOMIC_RELAXED) & THOTH_TRACE_PROBE_FEAT_WITHDRAW))
		return THOTH_E_NO_FEATURE;
	uint64_t seq = rec->attach_seq;
	if (__atomic_load_n(&mb->cmd_seq, __ATOMIC_ACQUIRE) != seq)
		return THOTH_E_BUSY;
	uint64_t c = __atomic_load_n(&mb->claim_seq, __ATOMIC_ACQUIRE);
	bool won = false;
	while (c < seq && !won)
		won = __atomic_compare_exchange_n(&mb->claim_seq, &c, seq, false, __ATOMIC_ACQ_REL,
						  __ATOMIC_ACQUIRE);
	if (!won)
		return THOTH_E_BUSY;
	mb->ack_status = THOTH_E_CLOSED;
	mb->maps_fd = -1;
	snprintf(mb->ack_msg, sizeof mb->ack_msg, "withdrawn by thothd before it was taken");
	__atomic_store_n(&mb->ack_seq, seq, __ATOMIC_RELEASE);
	/* Every program of that object was posted in the one command. */
	for (probe_rec_t *r = d->probes->recs; r; r = r->next) {
		if (r->kernel || r->pid != rec->pid || r->attach_seq != seq)
			continue;
		if (r->object_fd >= 0) {
			close(r->object_fd);
			r->object_fd = -1;
		}
		snprintf(r->state, sizeof r->state, "withdrawn (pid %u never took it: it reached no "
			 "trace point)", r->pid);
	}
	thothd_info("probe %llu: withdrawn from pid %u, which never took it",
		    (unsigned long long)rec->id, rec->pid);
	return 0;
}

static int on_attach(void *self, const thoth_probe_ProbeControl_attach_req_t *req,
                     thoth_probe_ProbeControl_attach_resp_t *resp, thoth_arena_t *arena)
{
	(void)arena;
	thothd_call_t *call = self;
	thothd_t *d = call->d;
	char *msg = calloc(1, 4096);
	if (!msg)
		return THOTH_E_NOMEM;
	call->scratch = msg;         /* the reason lives until the answer is encoded */
	if (req->service.len) {
		snprintf(msg, 4096, "--service is not supported yet: give the process with --pid");
		call->reason = msg;
		return THOTH_PROBE_ERR_NO_TARGET;
	}
	thoth_probe_object_t *obj = NULL;
	int r = thoth_probe_object_open(req->object.ptr, req->object.len, &obj, msg, 4096);
	if (r) {
		call->reason = msg;
		return THOTH_PROBE_ERR_REJECTED;
	}
	uint32_t n = 0;
	const char *names[THOTH_PROBE_MAX_PROGS];
	for (size_t i = 0; i < thoth_probe_object_prog_count(obj); i++) {
		const char *section, *name;
		thoth_probe_object_prog(obj, i, &section, &name, NULL);
		r = thoth_probe_verify(obj, i, msg, 4096);
		if (r == THOTH_E_NOT_FOUND)
			continue;   /* a kernel section: not ours to attach here */
		if (r) {
			thoth_probe_object_free(obj);
			call->reason = msg;
			return THOTH_PROBE_ERR_REJECTED;
		}
		names[n++] = section;
	}
	if (n == 0) {
		thoth_probe_object_free(obj);
		snprintf(msg, 4096, "the object has no thoth/ program");
		call->reason = msg;
		return THOTH_PROBE_ERR_REJECTED;
	}
	thoth_trace_probe_mailbox_t *mb = mailbox_of(d, req->pid);
	if (!mb) {
		thoth_probe_object_free(obj);
		snprintf(msg, 4096, "no traced process with pid %u (it must be connected to "
		         "thothd with a trace buffer)", req->pid);
		call->reason = msg;
		return THOTH_PROBE_ERR_NO_TARGET;
	}
	/* Read the last ack before posting over it: a refused detach is told
	 * only while it is the last acknowledged command (refresh's
	 * acked == detach_seq); after this attach's OK ack it would be lost
	 * and the probe, still running, shown detached. */
	refresh(d);
	prune(d->probes, n);
	if (mailbox_busy(mb) || d->probes->n + n > MAX_RECORDS) {
		thoth_probe_object_free(obj);
		busy_reason(d, req->pid, msg, 4096);
		call->reason = msg;
		return THOTH_PROBE_ERR_BUSY;
	}
	int fd = sealed_copy(req->object.ptr, req->object.len);
	if (fd < 0) {
		thoth_probe_object_free(obj);
		return thoth_error_io(errno, "memfd for a probe object");
	}
	uint64_t first = d->probes->next_id;
	d->probes->next_id += n;
	uint64_t seq = post(mb, THOTH_TRACE_PROBE_CMD_ATTACH, fd, req->object.len, first);
	set_probe_bits(d, req->pid);
	uint64_t *ids = (uint64_t *)(msg + 2048);   /* scratch: freed after encoding */
	for (uint32_t i = 0; i < n; i++) {
		probe_rec_t *rec = calloc(1, sizeof *rec);
		if (!rec)
			break;
		rec->id = first + i;
		rec->pid = req->pid;
		snprintf(rec->program, sizeof rec->program, "%s", names[i]);
		rec->object_fd = i == 0 ? fd : -1;   /* the first record owns the memfd */
		rec->attach_seq = seq;
		rec->maps_fd = -1;
		snprintf(rec->state, sizeof rec->state, "pending");
		rec->next = d->probes->recs;
		d->probes->recs = rec;
		d->probes->n++;
		ids[i] = rec->id;
	}
	thoth_probe_object_free(obj);
	thothd_info("probe ids %llu..%llu (%u programs) posted to pid %u",
	            (unsigned long long)first, (unsigned long long)(first + n - 1), n, req->pid);
	resp->ids.items = ids;
	resp->ids.count = n;
	return thothd_reserve_response(call, &thoth_probe_ProbeControl_attach_info, resp);
}

static int on_list(void *self, const thoth_probe_ProbeControl_list_req_t *req,
                   thoth_probe_ProbeControl_list_resp_t *resp, thoth_arena_t *arena)
{
	(void)req;
	(void)arena;
	thothd_call_t *call = self;
	thothd_t *d = call->d;
	refresh(d);
	thoth_probe_ProbeInfo_t *infos = calloc(d->probes->n + 1, sizeof *infos);
	if (!infos)
		return THOTH_E_NOMEM;
	call->scratch = infos;
	uint32_t n = 0;
	for (probe_rec_t *r = d->probes->recs; r; r = r->next)
		infos[n++] = (thoth_probe_ProbeInfo_t){
			.id = r->id, .pid = r->pid, .program = thoth_str(r->program),
			.state = thoth_str(r->state), .runs = r->runs, .maps_fd = r->maps_fd,
			.kernel = r->kernel, .object = thoth_str(r->object), .holder_pid = r->holder_pid,
		};
	resp->probes.items = infos;
	resp->probes.count = n;
	return thothd_reserve_response(call, &thoth_probe_ProbeControl_list_info, resp);
}

static int on_detach(void *self, const thoth_probe_ProbeControl_detach_req_t *req,
                     thoth_probe_ProbeControl_detach_resp_t *resp, thoth_arena_t *arena)
{
	(void)resp;
	(void)arena;
	thothd_call_t *call = self;
	thothd_t *d = call->d;
	refresh(d);
	for (probe_rec_t *r = d->probes->recs; r; r = r->next) {
		if (r->id != req->id)
			continue;
		if (r->kernel) {
			if (!r->kp) {
				call->reason = "that kernel probe is not attached";
				return THOTH_PROBE_ERR_NOT_FOUND;
			}
			thothd_info("kernel probe %llu (%s): detached", (unsigned long long)r->id,
				    r->object);
			kernel_detach(r, "thothctl probe detach");
			return 0;
		}
		if (!strncmp(r->state, "withdrawn", 9))
			return 0;       /* with another program of its object: nothing runs */
		thoth_trace_probe_mailbox_t *mb = mailbox_of(d, r->pid);
		if (mb && !strncmp(r->state, "pending", 7)) {
			/* Posted, never taken (an idle process): withdrawn, so that
			 * it neither blocks the next command nor attaches later,
			 * long after whoever asked for it stopped reading it. */
			int w = withdraw(d, r, mb);
			if (w == THOTH_E_NO_FEATURE) {
				/* the wire's error message holds 127 bytes */
				call->reason = "not taken yet, and that process's libthoth cannot withdraw "
					       "it: it attaches at its next trace point (detach it then)";
				return THOTH_PROBE_ERR_BUSY;
			}
			if (w) {
				call->reason = "the process is taking that probe right now: detach it again";
				return THOTH_PROBE_ERR_TAKING;
			}
			return 0;
		}
		if (r->detach_seq || strncmp(r->state, "running", 7) != 0) {
			call->reason = "that probe is not running";
			return THOTH_PROBE_ERR_NOT_FOUND;
		}
		if (!mb)
			return THOTH_PROBE_ERR_NOT_FOUND;
		if (mailbox_busy(mb)) {
			call->reason = "the process has not taken the previous probe command yet";
			return THOTH_PROBE_ERR_BUSY;
		}
		r->detach_seq = post(mb, THOTH_TRACE_PROBE_CMD_DETACH, -1, 0, r->id);
		set_probe_bits(d, r->pid);
		snprintf(r->state, sizeof r->state, "detaching");
		return 0;
	}
	call->reason = "no probe with that id";
	return THOTH_PROBE_ERR_NOT_FOUND;
}

/* ---- kernel probes (probe_kernel.c) ------------------------------------------ */

enum {
	MAX_KERNEL_LIVE = 64,            /* kernel objects attached at once */
	KMSG = 16384,                    /* the refusal log carried back */
	MAX_ANSWER_ENTRIES = 8192,       /* kernel_maps: entries in one answer */
	MAX_ANSWER_BYTES = 1u << 20,     /* ... and their key and value bytes */
};

/* The wire carries UTF-8 strings: anything else in libbpf's log (it
 * quotes the object's own strings) becomes '?'. */
static void ascii_only(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80 || ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t'))
			*s = '?';
}

typedef struct kattach_scratch {
	char msg[KMSG];
	thoth_str_t progs[64];
} kattach_scratch_t;

static int on_kernel_attach(void *self, const thoth_probe_ProbeControl_kernel_attach_req_t *req,
			    thoth_probe_ProbeControl_kernel_attach_resp_t *resp, thoth_arena_t *arena)
{
	(void)arena;
	thothd_call_t *call = self;
	thothd_t *d = call->d;
	kattach_scratch_t *ks = calloc(1, sizeof *ks);
	if (!ks)
		return THOTH_E_NOMEM;
	call->scratch = ks;
	char *msg = ks->msg;
	if (!thothd_kprobe_available()) {
		call->reason = "this thothd was built without libbpf: no kernel probes";
		return THOTH_PROBE_ERR_UNSUPPORTED;
	}
	/* In-process clients (the fuzz target, benchmarks) never load BPF into
	 * the running kernel: a mutated input must not reach it. */
	if (!call->client || call->client->fd < 0) {
		call->reason = "kernel probes need a connected client";
		return THOTH_PROBE_ERR_UNSUPPORTED;
	}
	/* Our own loader first (bounds-checked and fuzzed): a file that is not
	 * a BPF object never reaches libbpf, and it lists the kernel sections. */
	thoth_probe_object_t *obj = NULL;
	int r = thoth_probe_object_open(req->object.ptr, req->object.len, &obj, msg, 128);
	if (r) {
		call->reason = msg;
		return THOTH_PROBE_ERR_REJECTED;
	}
	size_t n_kernel = 0;
	for (size_t i = 0; i < thoth_probe_object_prog_count(obj); i++) {
		const char *sec, *name;
		thoth_probe_object_prog(obj, i, &sec, &name, NULL);
		n_kernel += thothd_kprobe_section(sec);
	}
	thoth_probe_object_free(obj);
	if (!n_kernel) {
		call->reason = "no kernel program (sections tracepoint/, raw_tp/, kprobe/, uprobe/); "
			       "thoth/ programs attach with probe attach";
		return THOTH_PROBE_ERR_REJECTED;
	}
	uint32_t live = 0;
	for (probe_rec_t *r2 = d->probes->recs; r2; r2 = r2->next)
		live += r2->kernel && r2->kp;
	prune(d->probes, 1);
	if (live >= MAX_KERNEL_LIVE || d->probes->n >= MAX_RECORDS) {
		call->reason = "too many probes held (detach some first)";
		return THOTH_PROBE_ERR_REJECTED;
	}
	char name[128];
	snprintf(name, sizeof name, "%.*s", (int)(req->name.len < 127 ? req->name.len : 127),
		 req->name.len ? req->name.ptr : "object");
	for (char *c = name; *c; c++)       /* libbpf wants an identifier-ish name */
		if (*c == '/' || (unsigned char)*c < 0x20)
			*c = '_';
	thothd_kprobe_t *kp = NULL;
	r = thothd_kprobe_load(req->object.ptr, req->object.len, name, &kp, msg, sizeof ks->msg);
	ascii_only(msg);
	if (r == THOTH_E_PERM) {
		call->reason = msg;
		return THOTH_PROBE_ERR_NOT_PERMITTED;
	}
	if (r == THOTH_E_INVAL) {
		/* Refused by libbpf or the kernel verifier: the whole log travels in
		 * the answer (an error's message is too short for it). */
		thothd_info("kernel probe '%s' refused: %.200s", name, msg);
		resp->id = 0;
		resp->refused = thoth_str(msg);
		return thothd_reserve_response(call, &thoth_probe_ProbeControl_kernel_attach_info, resp);
	}
	if (r)
		return r;
	probe_rec_t *rec = calloc(1, sizeof *rec);
	if (!rec) {
		thothd_kprobe_free(kp);
		return THOTH_E_NOMEM;
	}
	rec->id = d->probes->next_id++;
	rec->kernel = true;
	rec->kp = kp;
	rec->object_fd = -1;
	rec->maps_fd = -1;
	snprintf(rec->object, sizeof rec->object, "%s", name);
	size_t np = thothd_kprobe_prog_count(kp), used = 0;
	for (size_t i = 0; i < np && i < 64; i++) {
		const char *pn = thothd_kprobe_prog(kp, i);
		ks->progs[i] = thoth_str(pn);
		int w = snprintf(rec->program + used, sizeof rec->program - used, "%s%s", i ? ", " : "",
				 pn);
		used = w < 0 ? used : used + (size_t)w >= sizeof rec->program ? sizeof rec->program - 1
									      : used + (size_t)w;
	}
	if (req->held && call->client) {
		rec->holder = call->client;
		rec->holder_pid = call->client->pid;
		snprintf(rec->state, sizeof rec->state, "running (held by thothctl pid %u)",
			 rec->holder_pid);
	} else {
		snprintf(rec->state, sizeof rec->state, "running (held by thothd)");
	}
	rec->next = d->probes->recs;
	d->probes->recs = rec;
	d->probes->n++;
	thothd_info("kernel probe %llu (%s): %zu programs attached, %s", (unsigned long long)rec->id,
		    name, np, rec->state);
	resp->id = rec->id;
	resp->programs.items = ks->progs;
	resp->programs.count = (uint32_t)(np < 64 ? np : 64);
	resp->refused = thoth_str("");
	return thothd_reserve_response(call, &thoth_probe_ProbeControl_kernel_attach_info, resp);
}

static probe_rec_t *find_kernel(thothd_t *d, uint64_t id)
{
	for (probe_rec_t *r = d->probes->recs; r; r = r->next)
		if (r->id == id && r->kernel && r->kp)
			return r;
	return NULL;
}

typedef struct kmaps_scratch {
	thoth_probe_KernelMap_t maps[64];
	thoth_probe_KernelEntry_t entries[MAX_ANSWER_ENTRIES];
	uint32_t n_entries;
	uint32_t data_used;
	uint8_t data[MAX_ANSWER_BYTES];
} kmaps_scratch_t;

static int collect_entry(const void *key, uint32_t key_size, const void *value,
			 uint32_t value_size, void *arg)
{
	kmaps_scratch_t *ks = arg;
	if (ks->n_entries >= MAX_ANSWER_ENTRIES ||
	    (size_t)ks->data_used + key_size + value_size > MAX_ANSWER_BYTES)
		return 1;
	uint8_t *k = ks->data + ks->data_used;
	if (key_size)
		memcpy(k, key, key_size);
	uint8_t *v = k + key_size;
	memcpy(v, value, value_size);
	ks->data_used += key_size + value_size;
	ks->entries[ks->n_entries++] = (thoth_probe_KernelEntry_t){
		.key = { .ptr = k, .len = key_size }, .value = { .ptr = v, .len = value_size },
	};
	return 0;
}

static int on_kernel_maps(void *self, const thoth_probe_ProbeControl_kernel_maps_req_t *req,
			  thoth_probe_ProbeControl_kernel_maps_resp_t *resp, thoth_arena_t *arena)
{
	(void)arena;
	thothd_call_t *call = self;
	probe_rec_t *rec = find_kernel(call->d, req->id);
	if (!rec) {
		call->reason = "no attached kernel probe with that id";
		return THOTH_PROBE_ERR_NOT_FOUND;
	}
	kmaps_scratch_t *ks = malloc(sizeof *ks);
	if (!ks)
		return THOTH_E_NOMEM;
	ks->n_entries = ks->data_used = 0;
	call->scratch = ks;
	size_t nm = thothd_kprobe_map_count(rec->kp);
	for (size_t i = 0; i < nm && i < 64; i++) {
		thothd_kprobe_map_info_t mi;
		thothd_kprobe_map_info(rec->kp, i, &mi);
		uint32_t first = ks->n_entries;
		bool truncated = false;
		int r = thothd_kprobe_map_read(rec->kp, i, MAX_ANSWER_ENTRIES, collect_entry, ks,
					       &truncated);
		if (r)
			thothd_warn("kernel probe %llu: map %s: %s", (unsigned long long)rec->id, mi.name,
				    thoth_strerror(r));
		ks->maps[i] = (thoth_probe_KernelMap_t){
			.name = thoth_str(mi.name), .type = thoth_str(mi.type), .key_size = mi.key_size,
			.value_size = mi.value_size, .max_entries = mi.max_entries,
			.entries = { .items = ks->entries + first, .count = ks->n_entries - first },
			.truncated = truncated,
		};
	}
	resp->maps.items = ks->maps;
	resp->maps.count = (uint32_t)(nm < 64 ? nm : 64);
	return thothd_reserve_response(call, &thoth_probe_ProbeControl_kernel_maps_info, resp);
}

/* ---- the dashboard's view (kernel/thothd/http.c: GET /probes.json) ------------------ */

static void jbytes(thothd_jbuf_t *b, const uint8_t *v, uint32_t n)
{
	if (n == 1 || n == 2 || n == 4 || n == 8) {
		uint64_t x = 0;
		memcpy(&x, v, n);
		thothd_jput(b, "%llu", (unsigned long long)x);
		return;
	}
	thothd_jput(b, "\"0x");
	for (uint32_t i = 0; i < n && i < 64; i++)
		thothd_jput(b, "%02x", v[i]);
	thothd_jput(b, "%s\"", n > 64 ? "..." : "");
}

typedef struct jmap_ctx {
	thothd_jbuf_t *b;
	bool first;
} jmap_ctx_t;

static int json_entry(const void *key, uint32_t key_size, const void *value, uint32_t value_size,
		      void *arg)
{
	jmap_ctx_t *jc = arg;
	thothd_jput(jc->b, "%s{\"key\":", jc->first ? "" : ",");
	jbytes(jc->b, key, key_size);
	thothd_jput(jc->b, ",\"value\":");
	jbytes(jc->b, value, value_size);
	thothd_jput(jc->b, "}");
	jc->first = false;
	return 0;
}

int thothd_probes_json(thothd_t *d, char **out, size_t *len)
{
	thothd_jbuf_t b = { .cap = 4096 };
	if (!(b.p = malloc(b.cap)))
		return THOTH_E_NOMEM;
	refresh(d);
	thothd_jput(&b, "{\"probes\":[");
	bool first = true;
	for (probe_rec_t *r = d->probes->recs; r; r = r->next) {
		thothd_jput(&b, "%s{\"id\":%llu,\"kernel\":%s,\"pid\":%u,\"program\":", first ? "" : ",",
		     (unsigned long long)r->id, r->kernel ? "true" : "false", r->pid);
		first = false;
		thothd_jstr(&b, r->program);
		thothd_jput(&b, ",\"state\":");
		thothd_jstr(&b, r->state);
		thothd_jput(&b, ",\"runs\":%llu", (unsigned long long)r->runs);
		if (r->kernel) {
			thothd_jput(&b, ",\"object\":");
			thothd_jstr(&b, r->object);
			thothd_jput(&b, ",\"maps\":[");
			size_t nm = r->kp ? thothd_kprobe_map_count(r->kp) : 0;
			for (size_t i = 0; i < nm; i++) {
				thothd_kprobe_map_info_t mi;
				thothd_kprobe_map_info(r->kp, i, &mi);
				thothd_jput(&b, "%s{\"name\":", i ? "," : "");
				thothd_jstr(&b, mi.name);
				thothd_jput(&b, ",\"type\":\"%s\",\"entries\":[", mi.type);
				bool truncated = false;
				/* A ring buffer is not read here: that would consume the
				 * records `thothctl probe maps` is there to print. */
				if (strcmp(mi.type, "ringbuf") != 0) {
					jmap_ctx_t jc = { .b = &b, .first = true };
					thothd_kprobe_map_read(r->kp, i, 256, json_entry, &jc, &truncated);
				}
				thothd_jput(&b, "],\"truncated\":%s}", truncated ? "true" : "false");
			}
			thothd_jput(&b, "]");
		}
		thothd_jput(&b, "}");
	}
	thothd_jput(&b, "]}\n");
	if (b.failed) {
		free(b.p);
		return THOTH_E_NOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

const thoth_probe_ProbeControl_handlers_t thothd_probe_handlers = {
	.attach = on_attach,
	.list = on_list,
	.detach = on_detach,
	.kernel_attach = on_kernel_attach,
	.kernel_maps = on_kernel_maps,
};
