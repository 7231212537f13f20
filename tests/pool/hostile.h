/* hostile.h - pool_service --hostile MODE (hostile.c). */
#ifndef POOL_HOSTILE_H
#define POOL_HOSTILE_H

/* Register NAME at a TCP address under DIR's thothd and misbehave there as
 * MODE says until SIGTERM; the process's exit status. */
int pool_service_hostile(const char *dir, const char *name, const char *mode);

#endif
