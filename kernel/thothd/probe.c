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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "probe.thoth.h"
#include "thoth/probe.h"
#include "thothd.h"
#include "trace_layout.h"

enum { MAX_RECORDS = 256 };

typedef struct probe_rec {
	uint64_t id;
	uint32_t pid;
	char program[160];
	int object_fd;           /* until the target took the command */
	uint64_t attach_seq, detach_seq;
	char state[520];
	int32_t maps_fd;
	uint64_t runs;
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
		free(r);
	}
	free(p);
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
		if (strncmp(r->state, "failed", 6) == 0)
			continue;
		if (r->detach_seq && acked >= r->detach_seq) {
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
	if (mailbox_busy(mb) || d->probes->n + n > MAX_RECORDS) {
		thoth_probe_object_free(obj);
		snprintf(msg, 4096, "pid %u has not taken the previous probe command yet (it takes "
		         "them at its next trace point)", req->pid);
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
		if (r->detach_seq || strncmp(r->state, "running", 7) != 0) {
			call->reason = "that probe is not running";
			return THOTH_PROBE_ERR_NOT_FOUND;
		}
		thoth_trace_probe_mailbox_t *mb = mailbox_of(d, r->pid);
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

const thoth_probe_ProbeControl_handlers_t thothd_probe_handlers = {
	.attach = on_attach,
	.list = on_list,
	.detach = on_detach,
};
