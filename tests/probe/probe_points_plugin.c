/* probe_points_plugin.c - a module with a thoth trace point of its own
 * (a USDT note, provider "thoth", as THOTH_TRACE makes one), for
 * test_probe_points: a point that only a mapped library holds. */
#include <sys/sdt.h>

void ppt_plugin_fire(void);
void ppt_plugin_fire(void)
{
	STAP_PROBE(thoth, ppt_plugin_only);
}
