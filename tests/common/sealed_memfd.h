/*
 * sealed_memfd.h - the memfd a hostile writer hands over: SIZE bytes
 * holding IMAGE, with the seals it chose (or none).  The tests of the
 * readers that must refuse such descriptors (trace reader, probe maps,
 * thothd's trace refusals, the timer page) each wrote these lines again,
 * and the first two the same parade of descriptors that are no memfd.
 * Header-only; include it after cmocka.h.
 */
#ifndef THOTH_TESTS_COMMON_SEALED_MEMFD_H
#define THOTH_TESTS_COMMON_SEALED_MEMFD_H

#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include "tmpdir.h"

/* A memfd named NAME of SIZE bytes whose first LEN (may be 0) are IMAGE,
 * SEALS added (0: none, and it can still take some).  Any failure fails
 * the test. */
static inline int test_sealed_memfd(const char *name, const void *image, size_t len, size_t size, int seals)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (len)
		assert_int_equal(pwrite(fd, image, len, 0), (ssize_t)len);
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* A reader's refusal of FD (it closes FD): ERR and a reason holding NEEDLE. */
typedef void (*test_refused_fn)(int fd, int err, const char *needle);

/* The descriptors a hostile writer may hand over in a memfd's place, each
 * refused with ERR by REFUSED, by name: a pipe, a socket, /dev/zero, and a
 * file on disk holding IMAGE (LEN bytes), which takes no seals. */
static inline void test_wrong_kinds_refused(test_refused_fn refused, int err, const void *image, size_t len)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[1]);
	refused(p[0], err, "a pipe or FIFO, not a memfd");
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	refused(sv[0], err, "a socket, not a memfd");
	int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	refused(fd, err, "a character device, not a memfd");
	char path[256];
	test_tmp_template(path, sizeof path, "thoth-hostile");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(pwrite(fd, image, len, 0), (ssize_t)len);
	refused(fd, err, "takes no seals");
}

#endif
