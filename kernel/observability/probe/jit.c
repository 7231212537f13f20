/* jit.c - placeholder replaced by the x86-64 JIT. */
#include "probe_internal.h"
#include <stdio.h>

int probe_jit_compile(thoth_probe_prog_t *prog, char *msg, size_t msg_len)
{
	(void)prog;
	if (msg && msg_len)
		snprintf(msg, msg_len, "the JIT is not built in this version");
	return THOTH_E_NO_FEATURE;
}

void probe_jit_free(thoth_probe_prog_t *prog)
{
	(void)prog;
}
