/* backend_none.c - built instead of backend_uring.c when liburing is
 * missing: the io_uring backend does not exist (loop_backend.h). */
#include "loop_backend.h"

const loop_backend_t *const loop_backend_uring = NULL;
