/*
 * shard_internal.h - what the pool (pool.c) needs of a shard table beyond
 * thoth/shard.h.  Module-internal: not exported from libthoth.
 */
#ifndef THOTH_SHARD_INTERNAL_H
#define THOTH_SHARD_INTERNAL_H

#include "thoth/shard.h"

/* Count one more load on MEMBER without choosing it: a call already in
 * flight on that member when the table was built (a rebuild after an
 * instance came or went).  Released with thoth_shard_release() as any
 * acquired load.  Ignored for a member out of range. */
void shard_charge(thoth_shard_table_t *t, uint32_t member);

#endif
