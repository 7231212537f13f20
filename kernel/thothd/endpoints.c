/*
 * endpoints.c - the endpoint socket a dead service leaves behind is removed
 * by thothd, which sees the service's control connection close.
 *
 * A service binds a Unix socket in the runtime dir and registers its path
 * as its endpoint; killed (SIGKILL, a crash) it cannot unlink it, and the
 * runtime dir fills with dead `echo-PID.sock` files.  When a connection
 * holding registrations closes, thothd waits for its process to exit (a
 * pidfd: no timer, no polling, and a process that merely reconnects keeps
 * its socket) and then removes each registered endpoint path that:
 *   - lies directly in thothd's own runtime dir (no other directory is ever
 *     touched: the name is looked up and removed relative to the dir's fd,
 *     without following links),
 *   - is a socket (lstat: not a symlink, not a regular file),
 *   - is owned by the dead process's uid,
 *   - is not the endpoint of any live registration (a new instance that
 *     took over the path keeps it).
 * At most MAX_WATCHES exits are awaited at once (each holds a pidfd); past
 * that the check runs at once and skips a process still alive.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "runtime.h"
#include "thothd.h"

enum { MAX_WATCHES = 64, MAX_PATHS = 8 };

typedef struct endpoint_watch {
	thothd_t *d;
	int pidfd;
	uint32_t uid, pid;
	thoth_source_t *source;
	uint32_t n_names;
	char names[MAX_PATHS][108];     /* file names inside the runtime dir */
	struct endpoint_watch *prev, *next;
} endpoint_watch_t;

struct thothd_endpoints {
	thothd_t *d;
	endpoint_watch_t *watches;
	uint32_t n_watches;
	uint64_t removed;               /* sockets removed (tests, status) */
};

int thothd_endpoints_new(thothd_t *d, thothd_endpoints_t **out)
{
	thothd_endpoints_t *e = calloc(1, sizeof *e);
	if (!e)
		return THOTH_E_NOMEM;
	e->d = d;
	*out = e;
	return 0;
}

static void watch_free(thothd_endpoints_t *e, endpoint_watch_t *w)
{
	if (w->source)
		thoth_loop_remove_fd(e->d->loop, w->source);
	if (w->pidfd >= 0)
		close(w->pidfd);
	if (w->prev)
		w->prev->next = w->next;
	else
		e->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	e->n_watches--;
	free(w);
}

void thothd_endpoints_free(thothd_endpoints_t *e)
{
	if (!e)
		return;
	while (e->watches)
		watch_free(e, e->watches);
	free(e);
}

uint64_t thothd_endpoints_removed(const thothd_endpoints_t *e)
{
	return e ? e->removed : 0;
}

/* The file name of ADDR if it lies directly in the runtime dir, else NULL. */
static const char *name_in_runtime_dir(const thothd_t *d, thoth_str_t addr, char *buf, size_t cap)
{
	const char *dir = d->cfg.runtime_dir;
	size_t dl = strlen(dir);
	if (!dl || !addr.ptr || addr.len <= dl + 1 || addr.len >= cap)
		return NULL;
	memcpy(buf, addr.ptr, addr.len);
	buf[addr.len] = 0;
	if (strlen(buf) != addr.len || memcmp(buf, dir, dl) != 0 || buf[dl] != '/')
		return NULL;
	const char *name = buf + dl + 1;
	if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    strcmp(name, THOTHD_SOCKET_NAME) == 0)
		return NULL;
	return name;
}

/* EXCEPT: the dead owner while its registrations are still in the
 * registry (it is closing right now), else NULL. */
static void remove_names(thothd_endpoints_t *e, uint32_t uid, uint32_t pid,
			 char (*names)[108], uint32_t n, const thoth_registry_owner_t *except)
{
	thothd_t *d = e->d;
	int dirfd = open(d->cfg.runtime_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return;
	size_t dl = strlen(d->cfg.runtime_dir);
	for (uint32_t i = 0; i < n; i++) {
		char path[4096 + 110];
		int len = snprintf(path, sizeof path, "%s/%s", d->cfg.runtime_dir, names[i]);
		if (len < 0 || (size_t)len >= sizeof path || (size_t)len <= dl)
			continue;
		if (thoth_registry_endpoint_in_use(d->registry,
						   (thoth_str_t){ path, (uint32_t)len }, except))
			continue;
		struct stat st;
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;       /* already gone (the service unlinked it) */
		if (!S_ISSOCK(st.st_mode) || st.st_uid != uid) {
			thothd_info("left %s of dead pid %u in place: %s", path, pid,
				    !S_ISSOCK(st.st_mode) ? "not a socket" : "owned by another uid");
			continue;
		}
		if (unlinkat(dirfd, names[i], 0) == 0) {
			e->removed++;
			thothd_info("removed %s: its service (pid %u) died without removing it",
				    path, pid);
		}
	}
	close(dirfd);
}

static void owner_exited(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events,
			 void *arg)
{
	endpoint_watch_t *w = arg;
	thothd_endpoints_t *e = w->d->endpoints;
	remove_names(e, w->uid, w->pid, w->names, w->n_names, NULL);
	watch_free(e, w);
}

typedef struct collect {
	const thothd_t *d;
	endpoint_watch_t *w;
} collect_t;

static void collect_endpoint(void *arg, const thoth_registry_Instance_t *inst)
{
	collect_t *c = arg;
	char buf[108];
	const char *name = name_in_runtime_dir(c->d, inst->registration.endpoint.addr, buf,
					       sizeof buf);
	if (!name || c->w->n_names == MAX_PATHS)
		return;
	for (uint32_t i = 0; i < c->w->n_names; i++)
		if (strcmp(c->w->names[i], name) == 0)
			return;
	snprintf(c->w->names[c->w->n_names++], sizeof c->w->names[0], "%s", name);
}

static bool process_gone(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

void thothd_endpoints_owner_closed(thothd_endpoints_t *e, const thothd_client_t *c)
{
	if (!e || !thoth_registry_owner_registrations(c->owner) || !c->pid)
		return;
	endpoint_watch_t *w = calloc(1, sizeof *w);
	if (!w)
		return;
	w->d = e->d;
	w->pidfd = -1;
	w->uid = c->uid;
	w->pid = c->pid;
	collect_t col = { .d = e->d, .w = w };
	thoth_registry_owner_foreach(c->owner, collect_endpoint, &col);
	if (!w->n_names) {
		free(w);
		return;
	}
	/* The pid is SO_PEERCRED's, taken when it connected; it exits (or has
	 * exited) as its connection closes. */
	w->pidfd = (int)syscall(SYS_pidfd_open, (pid_t)c->pid, 0);
	bool gone = w->pidfd < 0 ? errno == ESRCH : process_gone(w->pidfd);
	if (gone || w->pidfd < 0 || !e->d->loop || e->n_watches >= MAX_WATCHES) {
		if (gone)
			remove_names(e, w->uid, w->pid, w->names, w->n_names, c->owner);
		if (w->pidfd >= 0)
			close(w->pidfd);
		free(w);
		return;
	}
	w->next = e->watches;
	if (e->watches)
		e->watches->prev = w;
	e->watches = w;
	e->n_watches++;
	if (thoth_loop_add_fd(e->d->loop, w->pidfd, THOTH_LOOP_READ, owner_exited, w, &w->source)) {
		w->source = NULL;
		watch_free(e, w);
	}
}
