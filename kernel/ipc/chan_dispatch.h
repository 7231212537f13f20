/*
 * chan_dispatch.h - another transport's dispatch hides the channel
 * server's (not installed).
 *
 * A channel handler may serve a TCP session's request in turn (a handler
 * that runs a server of its own).  While that request is dispatched, the
 * channel's "who is dispatching" (include/thoth/caller.h) must not answer:
 * a governed TCP service would otherwise credit the channel's client and
 * look at the channel server's rings (docs/PM.md "Seeing the rings").
 */
#ifndef THOTH_CHAN_DISPATCH_H
#define THOTH_CHAN_DISPATCH_H

#include "log_internal.h"   /* THOTH__HIDDEN */

/* Hide this thread's channel dispatch; returns it, for the restore. */
THOTH__HIDDEN void *thoth__chan_dispatch_hide(void);
THOTH__HIDDEN void thoth__chan_dispatch_restore(void *hidden);

#endif
