/*
 * fuzz_ethtool_reply - the netlink reply parsers of the NIC coalescing
 * backend (kernel/pm/moderation_ethtool.c) and the NIC loop's link-counter
 * parser (moderation_nic.c) on arbitrary bytes: a reply
 * comes from the kernel, or from whatever answers on the socket.  The
 * sequence number is taken from the input's own header so the fuzzer
 * reaches past the seq check.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "moderation_ethtool.h"
#include "moderation_nic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seq = 0;
	if (size >= 12)
		memcpy(&seq, data + 8, 4);
	char why[200];
	thoth_coalesce_t c;
	uint16_t family = 0;
	thoth_ethtool_parse_coalesce(data, size, seq, &c, why, sizeof why);
	thoth_ethtool_parse_family(data, size, seq, &family, why, sizeof why);
	thoth_ethtool_parse_ack(data, size, seq, why, sizeof why);
	/* The NIC loop's counters: an RTM_NEWLINK reply (moderation_nic.c). */
	thoth_link_stats_t st;
	thoth_rtnl_parse_link_stats(data, size, seq, &st, why, sizeof why);
	return 0;
}
