/*
 * fuzz_nvme_counters - the NVMe loop's counter-file parsers
 * (kernel/pm/moderation_nvme.c) on arbitrary text: /sys/block/<ns>/stat
 * and /proc/interrupts come from the kernel, from a fixture tree under
 * $THOTH_SYSFS_ROOT, or from whatever was mounted there.  The first byte
 * picks the parser (even: block stat, odd: interrupts for nvme0); the
 * rest is the file, not NUL-terminated.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moderation_nvme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	/* A copy of exactly the input's length: reading past it is a bug the
	 * sanitizer must see. */
	char *text = malloc(size - 1 ? size - 1 : 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	char why[200];
	if (data[0] % 2 == 0) {
		uint64_t ios, sectors;
		thoth_nvme_parse_blockstat(text, size - 1, &ios, &sectors, NULL, why, sizeof why);
	} else {
		uint64_t irqs;
		uint32_t queues;
		thoth_nvme_parse_interrupts(text, size - 1, "nvme0", &irqs, &queues, why, sizeof why);
	}
	free(text);
	return 0;
}
