/*
 * peercred_hidden.c - an LD_PRELOAD shim for test_cli_pidfile.sh: the
 * listener's pid is hidden from SO_PEERCRED, as it is from a thothctl in
 * another pid namespace than thothd (the kernel reports pid 0 there), so
 * thothctl must fall back to the pid file beside the socket.  Everything
 * else passes through to libc's getsockopt.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>

int getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	static int (*real)(int, int, int, void *, socklen_t *);
	if (!real)
		real = (int (*)(int, int, int, void *, socklen_t *))dlsym(RTLD_NEXT, "getsockopt");
	int r = real(fd, level, name, value, len);
	if (r == 0 && level == SOL_SOCKET && name == SO_PEERCRED && value && len &&
	    *len >= sizeof(struct ucred))
		((struct ucred *)value)->pid = 0;
	return r;
}
