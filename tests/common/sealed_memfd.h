/*
 * sealed_memfd.h - the memfd a hostile writer hands over: SIZE bytes
 * holding IMAGE, with the seals it chose (or none).  The tests of the
 * readers that must refuse such descriptors (trace reader, probe maps,
 * thothd's trace refusals, the timer page) each wrote these lines again.
 * Header-only; include it after cmocka.h.
 */
#ifndef THOTH_TESTS_COMMON_SEALED_MEMFD_H
#define THOTH_TESTS_COMMON_SEALED_MEMFD_H

#include <fcntl.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

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

#endif
