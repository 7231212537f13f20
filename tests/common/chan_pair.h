/*
 * chan_pair.h - both ends of a channel in one process, on a fresh memfd:
 * the mapping every in-process channel test starts from (test_chan_shm,
 * test_chan_bells, test_chan_moderation).  Header-only; include it after
 * cmocka.h and chan_shm.h.
 */
#ifndef THOTH_TEST_CHAN_PAIR_H
#define THOTH_TEST_CHAN_PAIR_H

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* LIM resolved and laid out in a memfd named NAME, formatted and mapped;
 * *SRV and *CLI attached to it.  Any failure fails the test. */
static inline void chan_pair_map(const char *name, thoth_chan_limits_t lim, int *fd, uint8_t **base,
				 chan_layout_t *lay, chan_end_t *srv, chan_end_t *cli)
{
	assert_int_equal(thoth_chan_limits_resolve(&lim, NULL, 0), 0);
	assert_int_equal(chan_layout_compute(&lim, lay), 0);
	*fd = memfd_create(name, MFD_CLOEXEC);
	assert_true(*fd >= 0);
	assert_int_equal(ftruncate(*fd, (off_t)lay->size), 0);
	*base = chan_shm_map(*fd, lay->size);
	assert_non_null(*base);
	chan_shm_format(*base, lay);
	assert_int_equal(chan_end_init(srv, *base, lay, CHAN_SERVER), 0);
	assert_int_equal(chan_end_init(cli, *base, lay, CHAN_CLIENT), 0);
}

/* The two ends, the mapping and the memfd, as chan_pair_map made them. */
static inline void chan_pair_unmap(int fd, uint8_t *base, const chan_layout_t *lay, chan_end_t *srv,
				   chan_end_t *cli)
{
	chan_end_fini(cli);
	chan_end_fini(srv);
	chan_shm_unmap(base, lay->size);
	close(fd);
}

#endif
