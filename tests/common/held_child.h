/*
 * held_child.h - a child process that holds something for the test (a
 * mapping, a descriptor at a chosen number) for as long as the test
 * wants: it prepares, says it is ready, and lives until the test closes
 * its end of a pipe.  The lock-table scan and thothctl's /proc reads are
 * tested against such children; both wrote these lines again.
 * Header-only; include it after cmocka.h.
 */
#ifndef THOTH_TESTS_COMMON_HELD_CHILD_H
#define THOTH_TESTS_COMMON_HELD_CHILD_H

#include <fcntl.h>
#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>

/* A child that runs PREPARE(ARG) (false: it exits 1 at once, and the test
 * fails), says it is ready, and lives until the test closes *RELEASE
 * (then it exits 0).  Its pid. */
static inline pid_t test_held_child(bool (*prepare)(void *arg), void *arg, int *release)
{
	int ready[2], hold[2];
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		char c = 'r';
		if (!prepare(arg) || write(ready[1], &c, 1) != 1)
			_exit(1);
		while (read(hold[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*release = hold[1];
	return pid;
}

#endif
