/*
 * fuzz_pm_broker: arbitrary bytes as power broker operations (broker_ops.c);
 * any broken invariant aborts with the reason.
 */
#include <stdio.h>
#include <stdlib.h>

#include "broker_ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[512];
	if (size > 1 << 16)
		return 0;               /* long inputs add time, not coverage */
	if (pm_ops_run(data, size, NULL, why, sizeof why)) {
		fprintf(stderr, "fuzz_pm_broker: %s\n", why);
		abort();
	}
	return 0;
}
