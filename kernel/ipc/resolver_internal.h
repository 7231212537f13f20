/*
 * resolver_internal.h - what a pool tells its resolver (internal: thoth__
 * prefix, hidden from libthoth.so).
 */
#ifndef THOTH_IPC_RESOLVER_INTERNAL_H
#define THOTH_IPC_RESOLVER_INTERNAL_H

#include "thoth/service.h"
#include "thoth/wire.h"

#ifndef THOTH__HIDDEN
#define THOTH__HIDDEN __attribute__((visibility("hidden")))
#endif

/*
 * The interface the resolver's user speaks (a pool's iface): from then on
 * its snapshot and pick leave out, on any host, an instance whose claims
 * of that interface conflict with IFACE (another major, another schema),
 * and keep one that agrees even beside a conflicting instance of this
 * host; without it (thoth_resolver_new alone) another host's instance is
 * left out when it conflicts with one of this host's.  thothd's list is
 * unchanged (the full view).  Instances that claim nothing are kept.
 */
THOTH__HIDDEN void thoth__resolver_speaks(thoth_resolver_t *r, const thoth_interface_info_t *iface);

#endif
