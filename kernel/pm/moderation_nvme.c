/*
 * moderation_nvme.c - the NVMe interrupt coalescing loop
 * (moderation_nvme.h): feature 0x08 through an admin backend (the real
 * ioctl or a recording fake), counters from sysfs / procfs under the
 * fixture root, a wake-up on the first request issued without a timer, and
 * the same policy code as the channels and the NIC loop.  Counter files
 * are parsed as untrusted text: a fixture, another kernel's format or a
 * fuzzer may put anything there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "moderation_busy.h"
#include "moderation_nvme.h"
#include "thoth/error.h"

/* ---- encoding ------------------------------------------------------------------ */

uint32_t thoth_nvme_coalesce_encode(thoth_mod_profile_t p)
{
	p = thoth_mod_clamp(p);
	if (!thoth_mod_profile_defers(p) || p.max_us < 100)
		return 0;                        /* 100 us is the unit: less cannot be asked for */
	uint32_t thr = p.max_msgs - 1 > 255 ? 255 : p.max_msgs - 1;
	uint32_t time = p.max_us / 100 > 255 ? 255 : p.max_us / 100;
	return thr | time << 8;
}

thoth_mod_profile_t thoth_nvme_coalesce_decode(uint32_t dw)
{
	uint32_t thr = dw & 0xff, time = dw >> 8 & 0xff;
	if (!time)
		return (thoth_mod_profile_t){ 1, 0 };
	return (thoth_mod_profile_t){ thr + 1, time * 100 };
}

/* ---- admin commands --------------------------------------------------------------- */

static int ioctl_submit(void *arg, const char *dev, struct nvme_admin_cmd *cmd)
{
	(void)arg;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = ioctl(fd, NVME_IOCTL_ADMIN_CMD, cmd);
	int e = errno;
	close(fd);
	return r < 0 ? -e : r;
}

thoth_nvme_admin_t thoth_nvme_admin_ioctl(void)
{
	return (thoth_nvme_admin_t){ ioctl_submit, NULL };
}

void thoth_nvme_fake_init(thoth_nvme_fake_t *f, uint32_t feature08)
{
	memset(f, 0, sizeof *f);
	f->feature08 = feature08 & 0xffff;
}

/* NVMe status as the Linux ioctl returns it: DNR | SCT << 8 | SC. */
enum { ST_DNR = 0x4000, ST_INVALID_OPCODE = 0x01, ST_INVALID_FIELD = 0x02,
       ST_FEAT_NOT_SAVEABLE = 0x10d, ST_FEAT_NOT_CHANGEABLE = 0x10e, ST_FEAT_NOT_PER_NS = 0x10f };

static int fake_submit(void *arg, const char *dev, struct nvme_admin_cmd *cmd)
{
	thoth_nvme_fake_t *f = arg;
	f->log[f->n % THOTH_NVME_FAKE_LOG] = *cmd;
	f->n++;
	snprintf(f->last_dev, sizeof f->last_dev, "%s", dev ? dev : "");
	if (f->fail_errno)
		return -f->fail_errno;
	uint32_t fid = cmd->cdw10 & 0xff;
	if (cmd->opcode != THOTH_NVME_ADMIN_GET_FEATURES && cmd->opcode != THOTH_NVME_ADMIN_SET_FEATURES)
		return ST_DNR | ST_INVALID_OPCODE;
	if (fid != THOTH_NVME_FID_IRQ_COALESCE)
		return ST_DNR | ST_INVALID_FIELD;  /* the fake knows only feature 0x08 */
	if (f->reject_status)
		return f->reject_status;
	if (cmd->opcode == THOTH_NVME_ADMIN_GET_FEATURES) {
		cmd->result = f->feature08;
		return 0;
	}
	if (f->set_status)
		return f->set_status;
	if (!f->ignore_sets)
		f->feature08 = cmd->cdw11 & 0xffff;
	return 0;
}

thoth_nvme_admin_t thoth_nvme_fake_admin(thoth_nvme_fake_t *f)
{
	return (thoth_nvme_admin_t){ fake_submit, f };
}

static const char *status_name(int st)
{
	switch (st & 0x7ff) {
	case ST_INVALID_OPCODE: return "Invalid Command Opcode";
	case ST_INVALID_FIELD: return "Invalid Field in Command";
	case 0x04: return "Data Transfer Error";
	case 0x06: return "Internal Error";
	case 0x07: return "Command Abort Requested";
	case ST_FEAT_NOT_SAVEABLE: return "Feature Identifier Not Saveable";
	case ST_FEAT_NOT_CHANGEABLE: return "Feature Not Changeable";
	case ST_FEAT_NOT_PER_NS: return "Feature Not Namespace Specific";
	}
	return "status not known here";
}

int thoth_nvme_admin_error(int rc, const char *dev, uint8_t opcode, char *why, size_t why_len)
{
	const char *what = opcode == THOTH_NVME_ADMIN_SET_FEATURES ? "Set Features 0x08"
			   : opcode == THOTH_NVME_ADMIN_GET_FEATURES ? "Get Features 0x08" : "admin command";
	if (rc == 0)
		return 0;
	if (rc < 0) {
		int e = -rc;
		switch (e) {
		case ENOTTY:
			return thoth__pm_fail(why, why_len, THOTH_E_NOT_FOUND,
				    "%s is not an NVMe controller: the admin ioctl answered ENOTTY (%s)", dev, what);
		case ENOENT:
		case ENODEV:
		case ENXIO:
			return thoth__pm_fail(why, why_len, THOTH_E_NOT_FOUND, "%s: no such NVMe controller (%s)", dev, strerror(e));
		case EPERM:
		case EACCES:
			return thoth__pm_fail(why, why_len, THOTH_E_PERM,
				    "%s: %s refused (%s): NVMe admin passthrough needs CAP_SYS_ADMIN", dev, what,
				    strerror(e));
		case ETIMEDOUT:
		case EINTR:
			return thoth__pm_fail(why, why_len, THOTH_E_TIMEDOUT, "%s: %s did not complete (%s)", dev, what, strerror(e));
		default:
			return thoth__pm_fail(why, why_len, THOTH_E_IO, "%s: %s: %s", dev, what, strerror(e));
		}
	}
	int sct = rc >> 8 & 7, sc = rc & 0xff, key = rc & 0x7ff;
	if (key == ST_INVALID_OPCODE || key == ST_INVALID_FIELD || key == ST_FEAT_NOT_SAVEABLE ||
	    key == ST_FEAT_NOT_CHANGEABLE || key == ST_FEAT_NOT_PER_NS)
		return thoth__pm_fail(why, why_len, THOTH_E_NO_FEATURE,
			    "%s: the controller rejects feature 0x08 (interrupt coalescing): %s answered %s "
			    "(status 0x%x: SCT %d, SC 0x%02x)", dev, what, status_name(rc), rc, sct, sc);
	return thoth__pm_fail(why, why_len, THOTH_E_IO, "%s: %s failed: NVMe %s (status 0x%x: SCT %d, SC 0x%02x%s)", dev, what,
		    status_name(rc), rc, sct, sc, rc & ST_DNR ? ", do not retry" : "");
}

int thoth_nvme_feature08_get(const thoth_nvme_admin_t *a, const char *dev, uint32_t *dw, char *why, size_t why_len)
{
	struct nvme_admin_cmd cmd = { .opcode = THOTH_NVME_ADMIN_GET_FEATURES, .cdw10 = THOTH_NVME_FID_IRQ_COALESCE,
				      .timeout_ms = 1000 };
	int r = thoth_nvme_admin_error(a->submit(a->arg, dev, &cmd), dev, cmd.opcode, why, why_len);
	if (!r)
		*dw = cmd.result & 0xffff;
	return r;
}

int thoth_nvme_feature08_set(const thoth_nvme_admin_t *a, const char *dev, uint32_t dw, char *why, size_t why_len)
{
	/* cdw10 bit 31 (SV) stays 0: the setting does not outlive a reset. */
	struct nvme_admin_cmd cmd = { .opcode = THOTH_NVME_ADMIN_SET_FEATURES, .cdw10 = THOTH_NVME_FID_IRQ_COALESCE,
				      .cdw11 = dw & 0xffff, .timeout_ms = 1000 };
	return thoth_nvme_admin_error(a->submit(a->arg, dev, &cmd), dev, cmd.opcode, why, why_len);
}

int thoth_nvme_coalesce_get(const char *path, uint32_t *dw, char *why, size_t why_len)
{
	thoth_nvme_admin_t a = thoth_nvme_admin_ioctl();
	return thoth_nvme_feature08_get(&a, path, dw, why, why_len);
}

int thoth_nvme_coalesce_set(const char *path, uint32_t dw, char *why, size_t why_len)
{
	thoth_nvme_admin_t a = thoth_nvme_admin_ioctl();
	return thoth_nvme_feature08_set(&a, path, dw, why, why_len);
}

int thoth_nvme_find(char *path, size_t len)
{
	for (int i = 0; i < 32; i++) {
		char p[32];
		struct stat st;
		snprintf(p, sizeof p, "/dev/nvme%d", i);
		if (stat(p, &st) == 0 && S_ISCHR(st.st_mode)) {
			snprintf(path, len, "%s", p);
			return 0;
		}
	}
	return THOTH_E_NOT_FOUND;
}

/* ---- counter text ------------------------------------------------------------------- */

int thoth_nvme_ctrl_name_check(const char *ctrl)
{
	if (!ctrl || strncmp(ctrl, "nvme", 4))
		return THOTH_E_INVAL;
	size_t d = strspn(ctrl + 4, "0123456789");
	return d >= 1 && d <= 4 && !ctrl[4 + d] ? 0 : THOTH_E_INVAL;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* A decimal u64 token [p, e): false for anything else or an overflow. */
static bool parse_u64(const char *p, const char *e, uint64_t *out)
{
	if (p == e || e - p > 20)
		return false;
	uint64_t v = 0;
	for (; p < e; p++) {
		if (*p < '0' || *p > '9')
			return false;
		uint64_t d = (uint64_t)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

int thoth_nvme_parse_blockstat(const char *text, size_t len, uint64_t *ios, uint64_t *sectors, uint64_t *inflight,
			       char *why, size_t why_len)
{
	uint64_t f[17];
	unsigned n = 0;
	const char *p = text, *end = text + len;
	for (;;) {
		while (p < end && is_space(*p))
			p++;
		if (p == end)
			break;
		const char *t = p;
		while (p < end && !is_space(*p))
			p++;
		if (n == 17)
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "block stat: more than 17 fields");
		if (!parse_u64(t, p, &f[n]))
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL,
				    "block stat: field %u (\"%.*s\") is not an unsigned decimal number", n + 1,
				    (int)(p - t > 24 ? 24 : p - t), t);
		n++;
	}
	if (n != 11 && n != 15 && n != 17)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "block stat: %u fields, expected 11, 15 or 17", n);
	/* reads 0, read sectors 2, writes 4, write sectors 6, discards 11,
	 * discard sectors 13, flushes 15.  A sum that wraps is as good as
	 * the kernel's own counters that wrap: the loop only takes gaps. */
	*ios = f[0] + f[4] + (n >= 15 ? f[11] : 0) + (n == 17 ? f[15] : 0);
	*sectors = f[2] + f[6] + (n >= 15 ? f[13] : 0);
	/* in_flight (field 9): started, not completed.  blk-mq counts a
	 * request from its allocation, so one still in the scheduler's queue
	 * counts too; the loop only asks whether it is 0. */
	if (inflight)
		*inflight = f[8];
	return 0;
}

/* The next line [*p, eol) of [*p, end); false at the end. */
static bool next_line(const char **p, const char *end, const char **ls, const char **le)
{
	if (*p >= end)
		return false;
	*ls = *p;
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	*le = nl ? nl : end;
	*p = nl ? nl + 1 : end;
	return true;
}

static bool next_token(const char **p, const char *end, const char **ts, const char **te)
{
	while (*p < end && is_space(**p))
		(*p)++;
	if (*p == end)
		return false;
	*ts = *p;
	while (*p < end && !is_space(**p))
		(*p)++;
	*te = *p;
	return true;
}

/* NAME [s, e) is CTRL "q" N with N >= 1. */
static bool io_queue_name(const char *s, const char *e, const char *ctrl)
{
	size_t cl = strlen(ctrl);
	if ((size_t)(e - s) < cl + 2 || memcmp(s, ctrl, cl) || s[cl] != 'q')
		return false;
	uint64_t q;
	return parse_u64(s + cl + 1, e, &q) && q >= 1;
}

int thoth_nvme_parse_interrupts(const char *text, size_t len, const char *ctrl, uint64_t *irqs, uint32_t *queues,
				char *why, size_t why_len)
{
	*irqs = 0;
	*queues = 0;
	if (thoth_nvme_ctrl_name_check(ctrl))
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "controller name: nvme followed by 1 to 4 digits");
	const char *p = text, *end = text + len, *ls, *le, *ts, *te;
	unsigned ncpu = 0;
	/* The header: one "CPU<n>" per column. */
	while (next_line(&p, end, &ls, &le)) {
		const char *q = ls;
		while (next_token(&q, le, &ts, &te)) {
			uint64_t c;
			if (te - ts < 4 || memcmp(ts, "CPU", 3) || !parse_u64(ts + 3, te, &c))
				return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL,
					    "interrupts: the header names \"%.*s\" where CPU<n> columns were expected",
					    (int)(te - ts > 24 ? 24 : te - ts), ts);
			ncpu++;
		}
		if (ncpu)
			break;
	}
	if (!ncpu)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "interrupts: no CPU header line");
	while (next_line(&p, end, &ls, &le)) {
		/* The name is the last word of the line. */
		const char *ne = le;
		while (ne > ls && is_space(ne[-1]))
			ne--;
		const char *ns = ne;
		while (ns > ls && !is_space(ns[-1]))
			ns--;
		if (!io_queue_name(ns, ne, ctrl))
			continue;
		const char *q = ls;
		if (!next_token(&q, le, &ts, &te) || te[-1] != ':')
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "interrupts: the line of %.*s does not start with \"N:\"",
				    (int)(ne - ns > 24 ? 24 : ne - ns), ns);
		uint64_t sum = 0;
		for (unsigned c = 0; c < ncpu; c++) {
			uint64_t v;
			if (!next_token(&q, le, &ts, &te) || te > ns || !parse_u64(ts, te, &v))
				return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL,
					    "interrupts: the line of %.*s has fewer than %u per-CPU counts",
					    (int)(ne - ns > 24 ? 24 : ne - ns), ns, ncpu);
			sum = sum + v < sum ? UINT64_MAX : sum + v;
		}
		*irqs = *irqs + sum < *irqs ? UINT64_MAX : *irqs + sum;
		++*queues;
	}
	return 0;
}

/* ---- reading the files ------------------------------------------------------------------ */

enum { STAT_MAX = 1024, IRQ_FILE_MAX = 16 << 20 };

/* The whole of PATH (under the root) into a malloc'd buffer. */
static int slurp(const char *path, size_t max, char **out, size_t *len, char *why, size_t why_len)
{
	char full[768];
	*out = NULL;
	if (thoth_pm_path(full, sizeof full, path))
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "%s: path too long", path);
	int fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return thoth__pm_fail(why, why_len, errno == ENOENT ? THOTH_E_NOT_FOUND : errno == EACCES ? THOTH_E_PERM : THOTH_E_IO,
			    "%s: %s", full, strerror(errno));
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	for (;;) {
		if (!b) {
			close(fd);
			return thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory reading %s", full);
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0) {
			int e = errno;
			close(fd);
			free(b);
			return thoth__pm_fail(why, why_len, THOTH_E_IO, "reading %s: %s", full, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			if (cap >= max) {
				close(fd);
				free(b);
				return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "%s is larger than %zu bytes", full, max);
			}
			char *nb = realloc(b, cap * 2);
			if (!nb)
				free(b);
			b = nb;
			cap *= 2;
		}
	}
	close(fd);
	*out = b;
	*len = n;
	return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

int thoth_nvme_namespaces(const char *ctrl, char (*names)[32], uint32_t *devs, uint32_t max, uint32_t *n, char *why,
			  size_t why_len)
{
	*n = 0;
	if (thoth_nvme_ctrl_name_check(ctrl))
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "controller name \"%s\": nvme followed by 1 to 4 digits",
			    ctrl ? ctrl : "");
	char dir[600];
	if (thoth_pm_path(dir, sizeof dir, "/sys/block"))
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "the sysfs root is too long");
	DIR *d = opendir(dir);
	if (!d)
		return thoth__pm_fail(why, why_len, THOTH_E_NOT_FOUND, "%s: %s", dir, strerror(errno));
	size_t cl = strlen(ctrl);
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *s = e->d_name;
		if (strncmp(s, ctrl, cl) || s[cl] != 'n')
			continue;
		size_t dl = strspn(s + cl + 1, "0123456789");
		if (dl < 1 || dl > 4 || s[cl + 1 + dl])
			continue;          /* nvme0n1p1 (a partition), nvme0c0n1 (a path) */
		if (*n == max) {
			closedir(d);
			return thoth__pm_fail(why, why_len, THOTH_E_LIMIT, "%s has more than %u namespaces", ctrl, max);
		}
		memcpy(names[*n], s, strlen(s) + 1);   /* at most 4 + 4 + 1 + 4 bytes: checked above */
		++*n;
	}
	closedir(d);
	if (!*n)
		return thoth__pm_fail(why, why_len, THOTH_E_NOT_FOUND, "no namespace of %s under %s (%sn<K>)", ctrl, dir, ctrl);
	qsort(names, *n, 32, cmp_name);
	for (uint32_t i = 0; devs && i < *n; i++) {
		char path[128], *text;
		size_t len;
		snprintf(path, sizeof path, "/sys/block/%s/dev", names[i]);
		int r = slurp(path, 64, &text, &len, why, why_len);
		if (r)
			return r;
		unsigned maj, min;
		char tail;
		char line[64];
		snprintf(line, sizeof line, "%.*s", (int)(len < 63 ? len : 63), text);
		free(text);
		int k = sscanf(line, "%u:%u%c", &maj, &min, &tail);
		if (k < 2 || (k == 3 && tail != '\n') || maj >= 4096 || min >= (1u << 20))
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "%s: \"%.20s\" is not MAJOR:MINOR", path, line);
		devs[i] = maj << 20 | min;
	}
	return 0;
}

int thoth_nvme_read_counters(const char *ctrl, thoth_nvme_counters_t *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof *out);
	char names[THOTH_NVME_MAX_NS][32];
	uint32_t n;
	int r = thoth_nvme_namespaces(ctrl, names, NULL, THOTH_NVME_MAX_NS, &n, why, why_len);
	if (r)
		return r;
	for (uint32_t i = 0; i < n; i++) {
		char path[128], *text;
		size_t len;
		snprintf(path, sizeof path, "/sys/block/%s/stat", names[i]);
		r = slurp(path, STAT_MAX, &text, &len, why, why_len);
		if (r)
			return r;
		uint64_t ios, sectors, inflight;
		char pwhy[160];
		r = thoth_nvme_parse_blockstat(text, len, &ios, &sectors, &inflight, pwhy, sizeof pwhy);
		free(text);
		if (r)
			return thoth__pm_fail(why, why_len, r, "%s: %s", path, pwhy);
		out->ios += ios;
		out->sectors += sectors;
		out->inflight = out->inflight + inflight < out->inflight ? UINT64_MAX : out->inflight + inflight;
	}
	out->namespaces = n;
	char *text;
	size_t len;
	r = slurp("/proc/interrupts", IRQ_FILE_MAX, &text, &len, why, why_len);
	if (r == THOTH_E_NOT_FOUND)
		return 0;                /* no interrupt lines: the loop counts samples instead */
	if (r)
		return r;
	char pwhy[160];
	r = thoth_nvme_parse_interrupts(text, len, ctrl, &out->irqs, &out->queues, pwhy, sizeof pwhy);
	free(text);
	if (r)
		return thoth__pm_fail(why, why_len, r, "/proc/interrupts: %s", pwhy);
	return 0;
}

/* ---- the real wake-up: block_rq_issue through perf --------------------------------------- */

/*
 * Why the issue and not the completion (docs/PM.md "Why block_rq_issue"):
 * block_rq_complete fires in interrupt context, on the CPU that takes the
 * disk's interrupt.  On this VM's kernel (6.18), a perf sample of a
 * tracepoint hit in interrupt context is counted (the event's count grows)
 * but not written when the interrupt came into that CPU's idle task: no
 * record, no PERF_RECORD_LOST, no PERF_RECORD_THROTTLE, so the event never
 * becomes readable.  Measured: irq_handler_entry on the disk's interrupt
 * CPU with PERF_SAMPLE_TID wrote 82 of 167 counted samples, every one
 * interrupting a task, none the idle task; write + fdatasync rounds with
 * that CPU idle otherwise woke nothing in 158 of 200, with it kept busy in
 * 0 of 200.  An idle loop is the case of an idle machine, so it slept
 * through I/O for seconds.  block_rq_issue fires when the driver is handed
 * the request, in the submitter's (or a kworker's) task context: it missed
 * none in the same runs.  It is also earlier: the loop wakes as I/O starts.
 */
#define WAKE_TRACEPOINT "block_rq_issue"

struct thoth_nvme_perf_wake {
	uint32_t n;
	int *fds;
	void **rings;
	size_t ring_len;
	bool lost_known;     /* read() gives { count, lost } (PERF_FORMAT_LOST, Linux 6.0) */
	uint64_t lost_armed; /* the lost samples at the last arm: RESET zeroes only the count */
	bool tallied;        /* a tally was asked for: arms read LOST for its baseline */
};

static int tracepoint_id(uint64_t *id, char *why, size_t why_len)
{
	static const char *const paths[] = { "/sys/kernel/tracing/events/block/" WAKE_TRACEPOINT "/id",
					     "/sys/kernel/debug/tracing/events/block/" WAKE_TRACEPOINT "/id" };
	const char *denied = NULL;
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
		FILE *f = fopen(paths[i], "re");
		if (!f) {
			if ((errno == EACCES || errno == EPERM) && !denied)
				denied = paths[i];
			continue;
		}
		unsigned long long v;
		int k = fscanf(f, "%llu", &v);
		fclose(f);
		if (k == 1) {
			*id = v;
			return 0;
		}
	}
	/* tracefs is there but closed to us (mode 0700 is the default):
	 * a permission problem, not a missing interface. */
	if (denied)
		return thoth__pm_fail(why, why_len, THOTH_E_PERM,
			    "%s: permission denied: the " WAKE_TRACEPOINT " wake-up needs root "
			    "(tracefs is readable by root only, and per-CPU events need CAP_PERFMON)",
			    denied);
	return thoth__pm_fail(why, why_len, THOTH_E_NOT_FOUND,
		    "the " WAKE_TRACEPOINT " tracepoint is not visible (no tracefs at /sys/kernel/tracing): "
		    "an idle loop could not wake on I/O without a timer");
}

void thoth_nvme_perf_wake_close(thoth_nvme_perf_wake_t *w)
{
	if (!w)
		return;
	for (uint32_t i = 0; i < w->n; i++) {
		if (w->rings[i] && w->rings[i] != MAP_FAILED)
			munmap(w->rings[i], w->ring_len);
		close(w->fds[i]);
	}
	free(w->fds);
	free(w->rings);
	free(w);
}

int thoth_nvme_perf_wake_open(const uint32_t *devs, uint32_t ndevs, thoth_nvme_perf_wake_t **out, char *why,
			      size_t why_len)
{
	*out = NULL;
	if (!ndevs || ndevs > THOTH_NVME_MAX_NS)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "1 to %d devices to wake on", THOTH_NVME_MAX_NS);
	uint64_t id = 0;
	int r = tracepoint_id(&id, why, why_len);
	if (r)
		return r;
	char filter[THOTH_NVME_MAX_NS * 24];
	size_t fl = 0;
	for (uint32_t i = 0; i < ndevs; i++)
		fl += (size_t)snprintf(filter + fl, sizeof filter - fl, "%sdev == %u", i ? " || " : "", devs[i]);
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > 4096)
		ncpu = 4096;
	thoth_nvme_perf_wake_t *w = calloc(1, sizeof *w);
	if (!w || !(w->fds = calloc((size_t)ncpu, sizeof *w->fds)) || !(w->rings = calloc((size_t)ncpu, sizeof(void *)))) {
		thoth_nvme_perf_wake_close(w);
		return thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory");
	}
	/* One metadata page and one data page: records are only doorbells. */
	w->ring_len = 2 * (size_t)sysconf(_SC_PAGESIZE);
	/* The samples a full ring dropped are counted apart (PERF_FORMAT_LOST):
	 * the tally tells a ring that filled up (other processes' I/O on the
	 * same disk: it rang, and a waiter woke) from a count that never rang.
	 * A kernel before 6.0 refuses the format (EINVAL): then without it,
	 * decided on the first CPU that opens at all, so every fd reads the
	 * same size (an EINVAL later is an offline CPU, and one that refuses
	 * both ways says nothing of the format). */
	struct perf_event_attr a = { .type = PERF_TYPE_TRACEPOINT, .size = sizeof a, .config = id,
				     .sample_period = 1, .wakeup_events = 1, .disabled = 1,
				     .read_format = PERF_FORMAT_LOST };
	w->lost_known = true;
	for (long cpu = 0; cpu < ncpu; cpu++) {
		int fd = (int)syscall(SYS_perf_event_open, &a, -1, (int)cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0 && errno == EINVAL && w->lost_known && !w->n) {
			a.read_format = 0;
			w->lost_known = false;
			fd = (int)syscall(SYS_perf_event_open, &a, -1, (int)cpu, -1, PERF_FLAG_FD_CLOEXEC);
			if (fd < 0) {
				int e = errno;
				a.read_format = PERF_FORMAT_LOST;
				w->lost_known = true;
				errno = e;
			}
		}
		if (fd < 0) {
			int e = errno;
			if (e == ENODEV || e == EINVAL)
				continue;            /* an offline CPU */
			thoth_nvme_perf_wake_close(w);
			return thoth__pm_fail(why, why_len, e == EACCES || e == EPERM ? THOTH_E_PERM : THOTH_E_IO,
				    "perf_event_open(" WAKE_TRACEPOINT ", cpu %ld): %s%s", cpu, strerror(e),
				    e == EACCES || e == EPERM ? " (needs CAP_PERFMON or kernel.perf_event_paranoid <= -1)" : "");
		}
		w->fds[w->n] = fd;
		w->rings[w->n] = MAP_FAILED;
		w->n++;
		if (ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter)) {
			int e = errno;
			thoth_nvme_perf_wake_close(w);
			return thoth__pm_fail(why, why_len, THOTH_E_IO, "perf filter \"%s\": %s", filter, strerror(e));
		}
		w->rings[w->n - 1] = mmap(NULL, w->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (w->rings[w->n - 1] == MAP_FAILED) {
			int e = errno;
			thoth_nvme_perf_wake_close(w);
			return thoth__pm_fail(why, why_len, THOTH_E_IO, "mapping the perf ring: %s", strerror(e));
		}
	}
	if (!w->n) {
		thoth_nvme_perf_wake_close(w);
		return thoth__pm_fail(why, why_len, THOTH_E_NOT_FOUND, "no CPU accepted a " WAKE_TRACEPOINT " event");
	}
	*out = w;
	return 0;
}

int thoth_nvme_perf_wake_arm(thoth_nvme_perf_wake_t *w, bool on)
{
	if (on)
		w->lost_armed = 0;
	for (uint32_t i = 0; i < w->n; i++) {
		if (on) {
			/* Free the ring: what was written while armed before is
			 * old news (the counters say what happened since); and
			 * zero the count, which thoth_nvme_perf_wake_tally
			 * compares with the doorbells written. */
			struct perf_event_mmap_page *mp = w->rings[i];
			uint64_t head = __atomic_load_n(&mp->data_head, __ATOMIC_ACQUIRE);
			__atomic_store_n(&mp->data_tail, head, __ATOMIC_RELEASE);
			if (ioctl(w->fds[i], PERF_EVENT_IOC_RESET, 0))
				return THOTH_E_IO;
			/* The baseline costs a read per CPU per arm, for the
			 * tally alone: the idle loop never asks for one.  Until
			 * the first tally none is needed (nothing is lost while
			 * disabled, and the fds open disabled): every arm
			 * before it is one round for the tally. */
			uint64_t v[2];
			if (w->lost_known && w->tallied) {
				if (read(w->fds[i], v, sizeof v) != (ssize_t)sizeof v)
					return THOTH_E_IO;
				w->lost_armed += v[1];
			}
		}
		if (ioctl(w->fds[i], on ? PERF_EVENT_IOC_ENABLE : PERF_EVENT_IOC_DISABLE, 0))
			return THOTH_E_IO;
	}
	return 0;
}

int thoth_nvme_perf_wake_tally(thoth_nvme_perf_wake_t *w, uint64_t *counted, uint64_t *written,
			       uint64_t *lost)
{
	*counted = *written = *lost = 0;
	w->tallied = true;
	size_t page = w->ring_len / 2;
	/* Counts first: a doorbell is written after its count, so one read
	 * after the counts holds at least as many as they say, unless the
	 * kernel dropped some (a full ring: LOST says how many). */
	for (uint32_t i = 0; i < w->n; i++) {
		uint64_t v[2] = { 0, 0 };
		ssize_t want = (ssize_t)(w->lost_known ? sizeof v : sizeof v[0]);
		if (read(w->fds[i], v, (size_t)want) != want)
			return THOTH_E_IO;
		*counted += v[0];
		*lost += v[1];
	}
	*lost -= *lost >= w->lost_armed ? w->lost_armed : *lost;
	for (uint32_t i = 0; i < w->n; i++) {
		const struct perf_event_mmap_page *mp = w->rings[i];
		const unsigned char *data = (const unsigned char *)mp + page;
		uint64_t head = __atomic_load_n(&mp->data_head, __ATOMIC_ACQUIRE), t = mp->data_tail;
		while (t < head) {
			struct perf_event_header h;
			size_t off = (size_t)(t % page);
			if (off + sizeof h > page)
				return THOTH_E_PROTOCOL;   /* records here are 8-byte headers: never split */
			memcpy(&h, data + off, sizeof h);
			if (h.size < sizeof h)
				return THOTH_E_PROTOCOL;
			if (h.type == PERF_RECORD_SAMPLE)
				(*written)++;
			t += h.size;
		}
	}
	return 0;
}

uint32_t thoth_nvme_perf_wake_fds(const thoth_nvme_perf_wake_t *w, const int **fds)
{
	*fds = w->fds;
	return w->n;
}

/* ---- the loop ----------------------------------------------------------------------------- */

enum { DIM_EVENTS_PER_SAMPLE = 64 };

/* Backed off (requests in flight, none completing for stall_us): the
 * counters are re-read after 2 sample periods, then twice as long each
 * time, up to this.  A device that never completes them costs a wake-up a
 * second, not a hundred; new I/O still wakes the loop at once (the wake-up
 * is armed), and a completion is seen within a second. */
#define BACKOFF_MAX_NS 1000000000ull
#define STALL_DEFAULT_US 100000u

struct thoth_nvmemod {
	thoth_loop_t *loop;
	thoth_nvmemod_config_t cfg;
	char ctrl[16], dev[128];
	char ns[THOTH_NVME_MAX_NS][32];
	uint32_t devs[THOTH_NVME_MAX_NS], nns;
	thoth_nvme_perf_wake_t *perf;
	int ino;                      /* WAKE_FILES: the inotify descriptor */
	int wds[THOTH_NVME_MAX_NS];
	thoth_source_t *srcs[4096 + 1];
	uint32_t nsrcs;
	thoth_timer_t *timer;         /* armed only while busy or backed off */
	uint64_t sample_ns, stall_ns;
	uint64_t progress_ns;         /* the wake-up, or the last sample with a completion */
	uint64_t backoff_ns;          /* backed off: the timer's interval now */
	thoth_mod_t pol;
	thoth_nvme_counters_t last;
	uint64_t last_ns, ticks;
	uint32_t applied;
	bool have_applied;
	int refusal;                  /* the THOTH_E_* of the refusal that disabled it */
	thoth_nvmemod_stats_t st;
};

static void inotify_drain(int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (read(fd, buf, sizeof buf) > 0)
		;
}

static int wake_arm(thoth_nvmemod_t *m, bool on)
{
	if (m->perf)
		return thoth_nvme_perf_wake_arm(m->perf, on);
	/* Files: watches only while idle, so a busy loop is not woken by
	 * every rewrite of a stat file. */
	for (uint32_t i = 0; i < m->nns; i++) {
		if (on) {
			char rel[128], full[768];
			snprintf(rel, sizeof rel, "/sys/block/%s", m->ns[i]);
			if (thoth_pm_path(full, sizeof full, rel))
				return THOTH_E_INVAL;
			m->wds[i] = inotify_add_watch(m->ino, full, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
			if (m->wds[i] < 0)
				return THOTH_E_IO;
		} else if (m->wds[i] >= 0) {
			inotify_rm_watch(m->ino, m->wds[i]);
			m->wds[i] = -1;
		}
	}
	if (on)
		inotify_drain(m->ino);
	return 0;
}

/* Send the policy's profile when its encoding changed (or FORCE), read it
 * back.  A refusal disables the loop: nothing else can be driven. */
static void disable(thoth_nvmemod_t *m);

static void apply(thoth_nvmemod_t *m, bool force)
{
	thoth_nvmemod_change_t c = { .time_ns = thoth_clock_now(), .rate = m->st.rate, .irq_rate = m->st.irq_rate };
	c.profile = thoth_mod_profile(&m->pol);
	m->st.profile = c.profile;
	c.asked = thoth_nvme_coalesce_encode(c.profile);
	if (m->st.disabled || (!force && m->have_applied && c.asked == m->applied))
		return;
	m->st.applies++;
	c.err = thoth_nvme_feature08_set(&m->cfg.admin, m->dev, c.asked, c.why, sizeof c.why);
	if (c.err) {
		m->st.refusals++;
		m->refusal = c.err;
		snprintf(m->st.why, sizeof m->st.why, "%s", c.why);
		if (m->cfg.on_change)
			m->cfg.on_change(m->cfg.arg, &c);
		disable(m);
		return;
	}
	m->applied = c.asked;
	m->have_applied = true;
	char rwhy[200];
	if (!thoth_nvme_feature08_get(&m->cfg.admin, m->dev, &c.readback, rwhy, sizeof rwhy)) {
		c.read_ok = true;
		m->st.device = c.readback;
		if (c.readback != c.asked) {
			m->st.mismatches++;
			snprintf(c.why, sizeof c.why, "%s: Set Features 0x08 = 0x%04x accepted, but it reads back 0x%04x",
				 m->dev, c.asked, c.readback);
		}
	} else {
		snprintf(c.why, sizeof c.why, "reading back: %.180s", rwhy);
	}
	if (m->cfg.on_change)
		m->cfg.on_change(m->cfg.arg, &c);
}

static void go_idle(thoth_nvmemod_t *m);
static void go_busy(thoth_nvmemod_t *m);

static uint64_t events_of(const thoth_nvmemod_t *m, const thoth_nvme_counters_t *c)
{
	/* Interrupts are DIM's events; without interrupt lines each sample
	 * stands for DIM's 64 (as on NICs). */
	return c->queues ? c->irqs : m->ticks * DIM_EVENTS_PER_SAMPLE;
}

static void back_off(thoth_nvmemod_t *m, uint64_t t_ns);
static void sleep_armed(thoth_nvmemod_t *m, uint64_t inflight);
static void on_recheck(thoth_nvmemod_t *m, uint64_t t_ns, const thoth_nvme_counters_t *now);

static void on_sample(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	(void)t;
	thoth_nvmemod_t *m = arg;
	thoth_nvme_counters_t now;
	if (thoth_nvme_read_counters(m->ctrl, &now, NULL, 0)) {
		go_idle(m);              /* the files went away: wait for the next completion */
		return;
	}
	uint64_t t_ns = thoth_clock_now();
	m->st.counters = now;
	if (m->st.stalled) {
		on_recheck(m, t_ns, &now);
		return;
	}
	m->st.samples++;
	bool quiet = now.ios <= m->last.ios;     /* no completion (or the counters restarted) */
	if (quiet && now.inflight && now.ios == m->last.ios) {
		/* Started and not completed: a slow request (a drive leaving a
		 * deep power state), or one issued while busy.  Going idle now
		 * would sleep through its completion, which rings nothing.
		 * Keep sampling, without a sample for the policy (the next one
		 * measures the whole window), until stall_us have passed. */
		m->st.waits++;
		if (t_ns - m->progress_ns >= m->stall_ns) {
			back_off(m, t_ns);
			return;
		}
		thoth_timer_rearm(loop, m->timer, t_ns + m->sample_ns, m->sample_ns / 8);
		return;
	}
	uint64_t dio = quiet ? 0 : now.ios - m->last.ios, dt = t_ns - m->last_ns;
	uint64_t dirq = now.queues && now.irqs >= m->last.irqs ? now.irqs - m->last.irqs : 0;
	m->last = now;
	m->last_ns = t_ns;
	if (quiet) {
		go_idle(m);
		return;
	}
	m->progress_ns = t_ns;
	m->st.rate = dt ? dio * 1000000000u / dt : 0;
	m->st.irq_rate = dt ? dirq * 1000000000u / dt : 0;
	m->ticks++;
	thoth_mod_sample_t s = { t_ns, events_of(m, &now), now.ios, now.sectors * 512u };
	thoth_mod_update(&m->pol, &s);
	apply(m, false);
	if (m->st.disabled)
		return;
	thoth_timer_rearm(loop, m->timer, t_ns + m->sample_ns, m->sample_ns / 8);
}

static void end_back_off(thoth_nvmemod_t *m)
{
	m->st.stalled = false;
	m->st.backoff_us = 0;
	m->backoff_ns = 0;
}

/* stall_us without a completion while requests are in flight: a device
 * that holds them (a hung command waits for the driver's timeout, 30 s on
 * Linux's nvme) must not keep the loop sampling.  Sleep as when idle (the
 * unmoderated setting, the wake-up armed: new I/O wakes it at once), plus
 * a timer that re-reads the counters at a growing interval, because a
 * completion rings nothing. */
static void back_off(thoth_nvmemod_t *m, uint64_t t_ns)
{
	m->st.busy = false;
	m->st.stalled = true;
	m->st.stalls++;
	m->st.rate = m->st.irq_rate = 0;
	thoth_mod_init(&m->pol, &m->cfg.policy);
	apply(m, false);
	if (m->st.disabled)
		return;
	m->backoff_ns = 2 * m->sample_ns < BACKOFF_MAX_NS ? 2 * m->sample_ns : BACKOFF_MAX_NS;
	m->st.backoff_us = (uint32_t)(m->backoff_ns / 1000u);
	thoth_timer_rearm(m->loop, m->timer, t_ns + m->backoff_ns, m->backoff_ns / 8);
	/* The requests of the last read stay in flight: only a change is news. */
	sleep_armed(m, m->st.counters.inflight);
}

/* The back-off timer: something completed -> busy again; nothing in
 * flight any more -> idle (no timer); else wait twice as long. */
static void on_recheck(thoth_nvmemod_t *m, uint64_t t_ns, const thoth_nvme_counters_t *now)
{
	m->st.rechecks++;
	if (now->ios != m->last.ios) {
		go_busy(m);
		return;
	}
	if (!now->inflight) {
		go_idle(m);
		return;
	}
	m->backoff_ns = 2 * m->backoff_ns < BACKOFF_MAX_NS ? 2 * m->backoff_ns : BACKOFF_MAX_NS;
	m->st.backoff_us = (uint32_t)(m->backoff_ns / 1000u);
	thoth_timer_rearm(m->loop, m->timer, t_ns + m->backoff_ns, m->backoff_ns / 8);
}

static void go_busy(thoth_nvmemod_t *m)
{
	wake_arm(m, false);
	end_back_off(m);
	m->st.busy = true;
	m->st.wakes++;
	uint64_t t_ns = thoth_clock_now();
	m->st.woke_ns = t_ns;
	m->progress_ns = t_ns;
	thoth_nvme_counters_t now;
	if (!thoth_nvme_read_counters(m->ctrl, &now, NULL, 0))
		m->last = now;
	m->last_ns = t_ns;
	m->ticks = 0;
	thoth_mod_sample_t s = { t_ns, events_of(m, &m->last), m->last.ios, m->last.sectors * 512u };
	thoth__mod_busy_begin(&m->pol, &m->cfg.policy, &s, m->loop, &m->timer, m->sample_ns, on_sample, m);
}

static void on_wake(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)src;
	(void)events;
	thoth_nvmemod_t *m = arg;
	if (m->ino >= 0 && fd == m->ino)
		inotify_drain(fd);
	/* A perf event reports readiness once per wake-up (perf_poll clears
	 * it), so one that rang just before it was disabled lands here while
	 * busy and is simply dropped. */
	if (!m->st.busy && !m->st.disabled)
		go_busy(m);
}

static void go_idle(thoth_nvmemod_t *m)
{
	if (m->timer) {
		thoth_timer_cancel(m->loop, m->timer);
		m->timer = NULL;
	}
	m->st.busy = false;
	m->st.idles++;
	end_back_off(m);
	m->st.rate = m->st.irq_rate = 0;
	/* The I/O stopped: back to the policy's start (unmoderated for ours),
	 * so the first completion after the pause does not wait. */
	thoth_mod_init(&m->pol, &m->cfg.policy);
	apply(m, false);
	if (m->st.disabled)
		return;
	sleep_armed(m, 0);
}

/* Going to sleep (idle, or backed off with INFLIGHT requests held by the
 * device): arm the wake-up, then read the counters once more.
 * Completions since the last read rang no bell, nor did requests issued
 * before the wake-up was armed (neither perf nor inotify records what
 * happened before it): a completion, or a count in flight other than
 * INFLIGHT, means I/O moved in that gap, and the loop is busy at once
 * instead of at the next recheck (backed off: 2 sample periods later) or
 * never (idle). */
static void sleep_armed(thoth_nvmemod_t *m, uint64_t inflight)
{
	wake_arm(m, true);
	thoth_nvme_counters_t now;
	if (!thoth_nvme_read_counters(m->ctrl, &now, NULL, 0) && (now.ios != m->last.ios || now.inflight != inflight))
		go_busy(m);
}

static void disable(thoth_nvmemod_t *m)
{
	m->st.disabled = true;
	m->st.busy = false;
	end_back_off(m);
	if (m->timer) {
		thoth_timer_cancel(m->loop, m->timer);
		m->timer = NULL;
	}
	wake_arm(m, false);
}

static void release(thoth_nvmemod_t *m)
{
	if (m->timer)
		thoth_timer_cancel(m->loop, m->timer);
	for (uint32_t i = 0; i < m->nsrcs; i++)
		thoth_loop_remove_fd(m->loop, m->srcs[i]);
	thoth_nvme_perf_wake_close(m->perf);
	if (m->ino >= 0)
		close(m->ino);
	free(m);
}

int thoth_nvmemod_start(thoth_loop_t *loop, const thoth_nvmemod_config_t *cfg, thoth_nvmemod_t **out, char *why,
			size_t why_len)
{
	*out = NULL;
	if (!loop || !cfg)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "a loop and a configuration are needed");
	if (thoth_nvme_ctrl_name_check(cfg->ctrl))
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "controller \"%s\": nvme followed by 1 to 4 digits (nvme0)",
			    cfg->ctrl ? cfg->ctrl : "");
	uint32_t sample_us = cfg->sample_us ? cfg->sample_us : 10000;
	if (sample_us < 1000 || sample_us > 1000000)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "sample period %u us: 1000 to 1000000", sample_us);
	/* unset: 100 ms, or one sample period where that is longer */
	uint32_t stall_us = cfg->stall_us ? cfg->stall_us
					  : sample_us > STALL_DEFAULT_US ? sample_us : STALL_DEFAULT_US;
	if (stall_us < sample_us || stall_us > 10000000)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "stall time %u us: one sample period (%u us) to 10 s",
			    stall_us, sample_us);
	if (cfg->wake != THOTH_NVMEMOD_WAKE_PERF && cfg->wake != THOTH_NVMEMOD_WAKE_FILES)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "wake-up %d: perf or files", (int)cfg->wake);
	if (cfg->dev_path && (!*cfg->dev_path || strlen(cfg->dev_path) >= 128))
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "device path: 1 to 127 bytes");
	thoth_nvmemod_t *m = calloc(1, sizeof *m);
	if (!m)
		return thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory");
	m->loop = loop;
	m->cfg = *cfg;
	m->ino = -1;
	for (int i = 0; i < THOTH_NVME_MAX_NS; i++)
		m->wds[i] = -1;
	snprintf(m->ctrl, sizeof m->ctrl, "%s", cfg->ctrl);
	m->cfg.ctrl = m->ctrl;
	if (cfg->dev_path)
		snprintf(m->dev, sizeof m->dev, "%s", cfg->dev_path);
	else
		snprintf(m->dev, sizeof m->dev, "/dev/%s", m->ctrl);
	m->cfg.dev_path = m->dev;
	if (!m->cfg.admin.submit)
		m->cfg.admin = thoth_nvme_admin_ioctl();
	m->sample_ns = (uint64_t)sample_us * 1000u;
	m->stall_ns = (uint64_t)stall_us * 1000u;
	int r = thoth_mod_init(&m->pol, &cfg->policy);
	if (r) {
		thoth__pm_fail(why, why_len, r, "bad moderation policy (kind %d)", (int)cfg->policy.kind);
		goto out;
	}
	r = thoth_nvme_namespaces(m->ctrl, m->ns, m->devs, THOTH_NVME_MAX_NS, &m->nns, why, why_len);
	if (r)
		goto out;
	r = thoth_nvme_read_counters(m->ctrl, &m->last, why, why_len);
	if (r)
		goto out;
	m->st.counters = m->last;
	r = thoth_nvme_feature08_get(&m->cfg.admin, m->dev, &m->st.original, why, why_len);
	if (r)
		goto out;
	m->st.device = m->st.original;
	if (cfg->wake == THOTH_NVMEMOD_WAKE_PERF) {
		r = thoth_nvme_perf_wake_open(m->devs, m->nns, &m->perf, why, why_len);
		if (r)
			goto out;
		const int *fds;
		uint32_t n = thoth_nvme_perf_wake_fds(m->perf, &fds);
		for (uint32_t i = 0; i < n && !r; i++)
			if (!(r = thoth_loop_add_fd(loop, fds[i], THOTH_LOOP_READ, on_wake, m, &m->srcs[m->nsrcs])))
				m->nsrcs++;
	} else {
		m->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		r = m->ino < 0 ? THOTH_E_IO : thoth_loop_add_fd(loop, m->ino, THOTH_LOOP_READ, on_wake, m, &m->srcs[0]);
		if (!r)
			m->nsrcs = 1;
	}
	if (r) {
		thoth__pm_fail(why, why_len, r, "watching for I/O: %s", strerror(errno));
		goto out;
	}
	/* A known state: the policy's start profile, whatever was set before. */
	apply(m, true);
	if (m->st.disabled) {
		r = thoth__pm_fail(why, why_len, m->refusal, "%s", m->st.why);
		goto out;
	}
	go_idle(m);
	m->st.idles = 0;
	*out = m;
	return 0;
out:
	release(m);
	return r;
}

void thoth_nvmemod_stop(thoth_nvmemod_t *m)
{
	if (!m)
		return;
	if (m->timer) {
		thoth_timer_cancel(m->loop, m->timer);
		m->timer = NULL;
	}
	if (!m->st.disabled && (!m->have_applied || m->applied != m->st.original))
		thoth_nvme_feature08_set(&m->cfg.admin, m->dev, m->st.original, NULL, 0);
	release(m);
}

void thoth_nvmemod_stats(const thoth_nvmemod_t *m, thoth_nvmemod_stats_t *out)
{
	*out = m->st;
}
