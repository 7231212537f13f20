/*
 * tcp_addr.c - "tcp:HOST:PORT" addresses, the cluster token file, and the
 * two socket set-ups (listen, a non-blocking connect) the TCP transport
 * needs (include/thoth/tcp.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "thoth/error.h"
#include "thoth/service.h"
#include "thoth/tcp.h"
#include "tcp_internal.h"

bool thoth_tcp_is_addr(const char *addr)
{
	return addr && strncmp(addr, THOTH_TCP_PREFIX, strlen(THOTH_TCP_PREFIX)) == 0;
}

int thoth_tcp_addr_parse(const char *addr, bool allow_port0, thoth_tcp_addr_t *out, char *why,
			 size_t why_len)
{
	memset(out, 0, sizeof *out);
	if (!thoth_tcp_is_addr(addr)) {
		thoth__tcp_why(why, why_len, "address \"%.80s\" does not start with \"tcp:\"", addr ? addr : "");
		return THOTH_E_INVAL;
	}
	const char *host = addr + strlen(THOTH_TCP_PREFIX);
	const char *host_end, *colon;
	if (*host == '[') {                     /* [IPv6]:PORT */
		host++;
		host_end = strchr(host, ']');
		if (!host_end || host_end[1] != ':') {
			thoth__tcp_why(why, why_len, "address \"%.80s\": an IPv6 host is written [ADDR]:PORT", addr);
			return THOTH_E_INVAL;
		}
		colon = host_end + 1;
	} else {
		colon = strrchr(host, ':');
		if (!colon) {
			thoth__tcp_why(why, why_len, "address \"%.80s\" has no :PORT", addr);
			return THOTH_E_INVAL;
		}
		host_end = colon;
		if (memchr(host, ':', (size_t)(host_end - host))) {
			thoth__tcp_why(why, why_len, "address \"%.80s\": write an IPv6 host in brackets", addr);
			return THOTH_E_INVAL;
		}
	}
	size_t hlen = (size_t)(host_end - host);
	if (!hlen || hlen >= sizeof out->host) {
		thoth__tcp_why(why, why_len, "address \"%.80s\": the host is empty or longer than %zu bytes",
			       addr, sizeof out->host - 1);
		return THOTH_E_INVAL;
	}
	for (size_t i = 0; i < hlen; i++) {
		unsigned char ch = (unsigned char)host[i];
		if (ch <= ' ' || ch >= 127 || ch == '/' || ch == '[' || ch == ']') {
			thoth__tcp_why(why, why_len, "address \"%.80s\": the host holds byte %#x", addr, ch);
			return THOTH_E_INVAL;
		}
	}
	const char *p = colon + 1;
	unsigned long port = 0;
	size_t digits = 0;
	for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
		port = port * 10 + (unsigned long)(*p - '0');
	if (!digits || *p || port > 65535 || (digits > 1 && colon[1] == '0') || (!port && !allow_port0)) {
		thoth__tcp_why(why, why_len, "address \"%.80s\": the port must be a number 1..65535%s", addr,
			       allow_port0 ? " (or 0: any)" : "");
		return THOTH_E_INVAL;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = 0;
	out->port = (uint16_t)port;
	return 0;
}

int thoth_tcp_token_path(const char *explicit_runtime_dir, char *out, size_t cap)
{
	const char *env = getenv("THOTH_TCP_TOKEN_FILE");
	if (env && *env)
		return snprintf(out, cap, "%s", env) < (int)cap ? 0 : THOTH_E_NO_SPACE;
	char dir[4096];
	int r = thoth_runtime_dir(explicit_runtime_dir, dir, sizeof dir);
	if (r)
		return r;
	return snprintf(out, cap, "%s/%s", dir, THOTH_TCP_TOKEN_FILE) < (int)cap ? 0 : THOTH_E_NO_SPACE;
}

int thoth_tcp_token_load(const char *path, uint8_t *token, size_t *len, char *why, size_t why_len)
{
	*len = 0;
	/* O_NOFOLLOW|O_NONBLOCK: a symlink or a FIFO planted at the path is
	 * refused instead of followed or waited on. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		thoth__tcp_why(why, why_len, "token file %s: %s", path, strerror(e));
		return e == ENOENT ? THOTH_E_NOT_FOUND : e == ELOOP || e == EACCES ? THOTH_E_PERM : THOTH_E_IO;
	}
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0) {
		thoth__tcp_why(why, why_len, "token file %s: %s", path, strerror(errno));
		r = THOTH_E_IO;
	} else if (!S_ISREG(st.st_mode)) {
		thoth__tcp_why(why, why_len, "token file %s is not a regular file", path);
		r = THOTH_E_PERM;
	} else if (st.st_uid != geteuid()) {
		thoth__tcp_why(why, why_len, "token file %s is owned by uid %u, not by us (uid %u)", path,
			       (unsigned)st.st_uid, (unsigned)geteuid());
		r = THOTH_E_PERM;
	} else if (st.st_mode & 077) {
		thoth__tcp_why(why, why_len, "token file %s has mode %03o: group/other must have no access "
			       "(chmod 600)", path, (unsigned)(st.st_mode & 0777));
		r = THOTH_E_PERM;
	}
	uint8_t buf[THOTH_TCP_TOKEN_MAX + 2];
	ssize_t n = 0;
	if (!r) {
		n = read(fd, buf, sizeof buf);
		if (n < 0) {
			thoth__tcp_why(why, why_len, "token file %s: %s", path, strerror(errno));
			r = THOTH_E_IO;
		}
	}
	close(fd);
	if (r)
		return r;
	size_t got = (size_t)n;
	if (got && buf[got - 1] == '\n')
		got--;
	if (got < THOTH_TCP_TOKEN_MIN || got > THOTH_TCP_TOKEN_MAX) {
		thoth__tcp_why(why, why_len, "token file %s holds %s%zu bytes: a token is %u..%u bytes", path,
			       got > THOTH_TCP_TOKEN_MAX ? "more than " : "", got > THOTH_TCP_TOKEN_MAX ?
			       (size_t)THOTH_TCP_TOKEN_MAX : got, THOTH_TCP_TOKEN_MIN, THOTH_TCP_TOKEN_MAX);
		memset(buf, 0, sizeof buf);
		return THOTH_E_INVAL;
	}
	memcpy(token, buf, got);
	memset(buf, 0, sizeof buf);
	*len = got;
	return 0;
}

int thoth__tcp_token_from(const uint8_t *token, size_t token_len, const char *token_file,
			  uint8_t *out, size_t *out_len, char *why, size_t why_len)
{
	if (token) {
		if (token_len < THOTH_TCP_TOKEN_MIN || token_len > THOTH_TCP_TOKEN_MAX) {
			thoth__tcp_why(why, why_len, "the token is %zu bytes: a token is %u..%u bytes", token_len,
				       THOTH_TCP_TOKEN_MIN, THOTH_TCP_TOKEN_MAX);
			return THOTH_E_INVAL;
		}
		memcpy(out, token, token_len);
		*out_len = token_len;
		return 0;
	}
	char path[4096];
	if (token_file)
		snprintf(path, sizeof path, "%s", token_file);
	else if (thoth_tcp_token_path(NULL, path, sizeof path)) {
		thoth__tcp_why(why, why_len, "the token file's path is too long");
		return THOTH_E_INVAL;
	}
	return thoth_tcp_token_load(path, out, out_len, why, why_len);
}

bool thoth__tcp_token_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
	/* Constant time in the contents: every byte position up to the maximum
	 * length is compared whatever matched before, so the time taken says
	 * nothing about how long a prefix of a guess was right. */
	volatile uint8_t diff = (uint8_t)(a_len != b_len);
	for (size_t i = 0; i < THOTH_TCP_TOKEN_MAX; i++) {
		uint8_t x = i < a_len ? a[i] : 0;
		uint8_t y = i < b_len ? b[i] : 0;
		diff |= (uint8_t)(x ^ y);
	}
	return diff == 0;
}

/* getaddrinfo for A (numeric service: no service-name lookup), FLAGS added
 * to the hints; G_OUT (when not NULL) gets getaddrinfo's own code. */
static int resolve(const thoth_tcp_addr_t *a, int flags, struct addrinfo **res, int *g_out, char *why,
		   size_t why_len)
{
	char port[8];
	snprintf(port, sizeof port, "%u", (unsigned)a->port);
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | flags,
	};
	int g = getaddrinfo(a->host, port, &hints, res);
	if (g_out)
		*g_out = g;
	if (g) {
		thoth__tcp_why(why, why_len, "cannot resolve host %s: %s", a->host, gai_strerror(g));
		return THOTH_E_INVAL;
	}
	return 0;
}

/*
 * A host name looked up off the caller's thread.  getaddrinfo has no
 * non-blocking form that fits a loop (docs/SCALE.md says why not
 * getaddrinfo_a), so each lookup gets a detached thread of its own, at
 * most THOTH__TCP_LOOKUPS_MAX at once in the process: one slow name then
 * delays no other name's lookup.  The thread and the dial share the
 * record; whichever lets go last frees it (and closes the eventfd, so the
 * thread never writes into an fd number the dial's side may have reused).
 */
struct thoth__tcp_lookup {
	atomic_int refs;
	atomic_bool done;               /* set (release) once gai/res are final */
	int efd;                        /* eventfd: readable when done */
	int gai;                        /* getaddrinfo's code */
	struct addrinfo *res;
	thoth_tcp_addr_t a;
};

static atomic_uint lookups_running;

/* A forked child has none of its parent's lookup threads: it starts with
 * every slot free (a record its parent's dial held is then never freed in
 * the child: one small leak per lookup under way at the fork). */
static void lookups_after_fork(void)
{
	atomic_store_explicit(&lookups_running, 0, memory_order_relaxed);
}

static pthread_once_t lookups_once = PTHREAD_ONCE_INIT;

static void lookups_init(void)
{
	pthread_atfork(NULL, NULL, lookups_after_fork);
}

static void lookup_release(thoth__tcp_lookup_t *lk)
{
	if (atomic_fetch_sub_explicit(&lk->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (lk->res)
		freeaddrinfo(lk->res);
	close(lk->efd);
	free(lk);
}

static void *lookup_thread(void *arg)
{
	thoth__tcp_lookup_t *lk = arg;
	/* No flags: the numeric attempt was made and failed already. */
	resolve(&lk->a, 0, &lk->res, &lk->gai, NULL, 0);
	atomic_store_explicit(&lk->done, true, memory_order_release);
	uint64_t one = 1;
	ssize_t n = write(lk->efd, &one, sizeof one);  /* an eventfd at 0 takes it */
	(void)n;
	atomic_fetch_sub_explicit(&lookups_running, 1, memory_order_relaxed);
	lookup_release(lk);
	return NULL;
}

static int dial_next(thoth__tcp_dial_t *d, char *why, size_t why_len);

/*
 * CALLER_WAITS: the caller blocks until the opening is done anyway
 * (thoth_tcp_connect): with every lookup slot taken it looks the name up
 * on its own thread, as before there were slots, rather than failing a
 * connect that used to wait.  A pool's loop must never block: it gets
 * THOTH_E_LIMIT, naming the limit (not THOTH_E_BUSY, which means a server
 * at its connection limit), and retries with its backoff.
 */
static int lookup_start(thoth__tcp_dial_t *d, bool caller_waits, char *why, size_t why_len)
{
	pthread_once(&lookups_once, lookups_init);
	if (atomic_fetch_add_explicit(&lookups_running, 1, memory_order_relaxed) >= THOTH__TCP_LOOKUPS_MAX) {
		atomic_fetch_sub_explicit(&lookups_running, 1, memory_order_relaxed);
		if (caller_waits) {
			int g = 0;
			int r = resolve(&d->a, 0, &d->res, &g, NULL, 0);
			if (r) {
				thoth__tcp_why(why, why_len, "connect tcp:%s:%u: cannot resolve host %s: %s",
					       d->a.host, (unsigned)d->a.port, d->a.host, gai_strerror(g));
				return r;
			}
			d->ai = d->res;
			return dial_next(d, why, why_len);
		}
		thoth__tcp_why(why, why_len, "connect tcp:%s:%u: cannot resolve host %s now: this process has "
			       "%u host name lookups under way already (its limit; a lookup abandoned at its "
			       "deadline holds its slot until the resolver gives up)", d->a.host,
			       (unsigned)d->a.port, d->a.host, THOTH__TCP_LOOKUPS_MAX);
		return THOTH_E_LIMIT;
	}
	int r = THOTH_E_NOMEM;
	thoth__tcp_lookup_t *lk = calloc(1, sizeof *lk);
	if (!lk)
		goto fail;
	lk->a = d->a;
	lk->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (lk->efd < 0) {
		r = THOTH_E_IO;
		free(lk);
		goto fail;
	}
	atomic_init(&lk->refs, 2);
	atomic_init(&lk->done, false);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 512u << 10);   /* getaddrinfo's NSS modules, under sanitizers too */
	/* Every signal blocked in the thread: the process's signals stay with
	 * the threads that asked for them (a loop's signalfd among them). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	int e = pthread_create(&t, &attr, lookup_thread, lk);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (e) {
		close(lk->efd);
		free(lk);
		r = THOTH_E_NOMEM;
		goto fail;
	}
	d->lookup = lk;
	d->fd = lk->efd;
	return THOTH_E_AGAIN;
fail:
	atomic_fetch_sub_explicit(&lookups_running, 1, memory_order_relaxed);
	thoth__tcp_why(why, why_len, "connect tcp:%s:%u: cannot resolve host %s: cannot start its lookup: %s",
		       d->a.host, (unsigned)d->a.port, d->a.host, thoth_strerror(r));
	return r;
}

/* The lookup's outcome once it is done: THOTH_E_AGAIN until then; 0 with
 * d->res/d->ai set, or its error naming the host. */
static int lookup_finish(thoth__tcp_dial_t *d, char *why, size_t why_len)
{
	thoth__tcp_lookup_t *lk = d->lookup;
	if (!atomic_load_explicit(&lk->done, memory_order_acquire))
		return THOTH_E_AGAIN;
	int r = 0;
	if (lk->gai) {
		thoth__tcp_why(why, why_len, "connect tcp:%s:%u: cannot resolve host %s: %s", d->a.host,
			       (unsigned)d->a.port, d->a.host, gai_strerror(lk->gai));
		r = THOTH_E_INVAL;
	} else if (!lk->res) {
		thoth__tcp_why(why, why_len, "connect tcp:%s:%u: cannot resolve host %s: it has no address",
			       d->a.host, (unsigned)d->a.port, d->a.host);
		r = THOTH_E_INVAL;
	}
	d->res = d->ai = lk->res;
	lk->res = NULL;
	d->lookup = NULL;
	d->fd = -1;
	lookup_release(lk);
	return r;
}

/*
 * The listen address's host, resolved for thoth__tcp_listen: a numeric
 * address at once; a host name on a lookup thread (as a dial's), waited
 * for here at most THOTH__TCP_LISTEN_LOOKUP_MS.  thoth_tcp_server_new is
 * called once at a service's start, before its loop serves anything, so
 * it may wait, but not for as long as a resolver takes to give up (30 s
 * and more with unreachable name servers): past the bound it fails by
 * name, and the abandoned lookup holds its slot until its thread ends.
 */
static int listen_resolve(const thoth_tcp_addr_t *a, struct addrinfo **res, char *why, size_t why_len)
{
	int g = 0;
	int r = resolve(a, AI_PASSIVE | AI_NUMERICHOST, res, &g, why, why_len);
	if (!r || g != EAI_NONAME)
		return r;
	thoth__tcp_dial_t d;
	memset(&d, 0, sizeof d);
	d.fd = -1;
	d.a = *a;
	r = lookup_start(&d, false, NULL, 0);
	if (r == THOTH_E_LIMIT)
		return thoth__tcp_why(why, why_len, "listen tcp:%s:%u: cannot resolve host %s now: this process "
				      "has %u host name lookups under way already (its limit)", a->host,
				      (unsigned)a->port, a->host, THOTH__TCP_LOOKUPS_MAX), THOTH_E_LIMIT;
	if (r != THOTH_E_AGAIN) {
		thoth__tcp_why(why, why_len, "listen tcp:%s:%u: cannot resolve host %s: cannot start its lookup: %s",
			       a->host, (unsigned)a->port, a->host, thoth_strerror(r));
		return r;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t left = THOTH__TCP_LISTEN_LOOKUP_MS - ((int64_t)(now.tv_sec - t0.tv_sec) * 1000 +
							   (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (atomic_load_explicit(&d.lookup->done, memory_order_acquire))
			break;
		if (left <= 0) {
			thoth__tcp_dial_free(&d);       /* its thread finishes and frees it */
			thoth__tcp_why(why, why_len, "listen tcp:%s:%u: cannot resolve host %s within %u ms",
				       a->host, (unsigned)a->port, a->host, THOTH__TCP_LISTEN_LOOKUP_MS);
			return THOTH_E_TIMEDOUT;
		}
		struct pollfd p = { .fd = d.fd, .events = POLLIN };
		(void)poll(&p, 1, (int)left);   /* EINTR: looked at again */
	}
	g = d.lookup->gai;
	r = lookup_finish(&d, NULL, 0);
	if (r) {
		thoth__tcp_dial_free(&d);
		thoth__tcp_why(why, why_len, "listen tcp:%s:%u: cannot resolve host %s: %s", a->host,
			       (unsigned)a->port, a->host, g ? gai_strerror(g) : "it has no address");
		return r;
	}
	*res = d.res;
	return 0;
}

int thoth__tcp_listen(const thoth_tcp_addr_t *a, int *fd_out, char *why, size_t why_len)
{
	struct addrinfo *res;
	int r = listen_resolve(a, &res, why, why_len);
	if (r)
		return r;
	int fd = -1, e = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			e = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		thoth__tcp_why(why, why_len, "listen tcp:%s:%u: %s", a->host, (unsigned)a->port, strerror(e));
		return THOTH_E_IO;
	}
	*fd_out = fd;
	return 0;
}

int thoth__tcp_local_addr(int fd, char *out, size_t cap, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return THOTH_E_IO;
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
			NI_NUMERICHOST | NI_NUMERICSERV))
		return THOTH_E_IO;
	*port = (uint16_t)atoi(serv);
	int n = ss.ss_family == AF_INET6 ? snprintf(out, cap, "tcp:[%s]:%s", host, serv)
					 : snprintf(out, cap, "tcp:%s:%s", host, serv);
	return n < (int)cap ? 0 : THOTH_E_NO_SPACE;
}

/* The next address of D's host from d->ai on: 0 connected (d->fd), THOTH_E_AGAIN
 * while one is in progress on d->fd, or the error of the last one tried. */
static int dial_next(thoth__tcp_dial_t *d, char *why, size_t why_len)
{
	for (; d->ai; d->ai = d->ai->ai_next) {
		struct addrinfo *ai = d->ai;
		d->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (d->fd < 0) {
			d->err = errno;
			continue;
		}
		if (connect(d->fd, ai->ai_addr, ai->ai_addrlen) == 0)
			goto connected;
		if (errno == EINPROGRESS)
			return THOTH_E_AGAIN;   /* writable when it is done, either way */
		d->err = errno;
		close(d->fd);
		d->fd = -1;
	}
	freeaddrinfo(d->res);
	d->res = NULL;
	thoth__tcp_why(why, why_len, "connect tcp:%s:%u: %s", d->a.host, (unsigned)d->a.port, strerror(d->err));
	return d->err == ECONNREFUSED ? THOTH_E_NOT_RUNNING : d->err == ETIMEDOUT ? THOTH_E_TIMEDOUT : THOTH_E_IO;
connected:
	freeaddrinfo(d->res);
	d->res = NULL;
	d->ai = NULL;
	int one = 1;
	/* Requests and responses are whole messages written at once: Nagle
	 * would only hold the small ones back by up to 40 ms of delayed ACK. */
	setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}

int thoth__tcp_dial_start(thoth__tcp_dial_t *d, const thoth_tcp_addr_t *a, bool caller_waits, char *why,
			  size_t why_len)
{
	memset(d, 0, sizeof *d);
	d->fd = -1;
	d->a = *a;
	d->err = ECONNREFUSED;
	/* A numeric address asks no resolver: it is resolved here at once. */
	int g = 0;
	int r = resolve(a, AI_NUMERICHOST, &d->res, &g, why, why_len);
	if (r && g == EAI_NONAME) {
		if (why && why_len)
			why[0] = 0;     /* the numeric attempt's failure is no reason */
		return lookup_start(d, caller_waits, why, why_len);   /* a host name: off this thread */
	}
	if (r)
		return r;
	d->ai = d->res;
	return dial_next(d, why, why_len);
}

short thoth__tcp_dial_want(const thoth__tcp_dial_t *d)
{
	return d->lookup ? POLLIN : POLLOUT;
}

int thoth__tcp_dial_step(thoth__tcp_dial_t *d, char *why, size_t why_len)
{
	if (d->lookup) {
		int r = lookup_finish(d, why, why_len);
		return r ? r : dial_next(d, why, why_len);
	}
	if (d->fd < 0)
		return THOTH_E_INVAL;
	if (!d->ai)
		return 0;               /* connected already */
	/* SO_ERROR says how a finished connect went, and is 0 while one is
	 * still in progress too: getpeername tells those two apart. */
	int e = 0;
	socklen_t el = sizeof e;
	if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (!e) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (getpeername(d->fd, (struct sockaddr *)&ss, &sl) == 0) {
			freeaddrinfo(d->res);
			d->res = NULL;
			d->ai = NULL;
			int one = 1;
			setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			return 0;
		}
		if (errno == ENOTCONN)
			return THOTH_E_AGAIN;
		e = errno;
	}
	d->err = e;
	close(d->fd);
	d->fd = -1;
	d->ai = d->ai->ai_next;         /* the host's next address, if it has one */
	return dial_next(d, why, why_len);
}

int thoth__tcp_dial_take(thoth__tcp_dial_t *d)
{
	int fd = d->fd;
	d->fd = -1;
	return fd;
}

void thoth__tcp_dial_free(thoth__tcp_dial_t *d)
{
	if (d->lookup) {
		lookup_release(d->lookup);      /* its thread finishes and frees it */
		d->lookup = NULL;
		d->fd = -1;                     /* the lookup's eventfd */
	}
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	if (d->res)
		freeaddrinfo(d->res);
	d->res = NULL;
	d->ai = NULL;
}
