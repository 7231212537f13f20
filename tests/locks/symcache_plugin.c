/* symcache_plugin.c - a library test_lock_symcache has live_workload dlopen:
 * new code mapped into a profiled process, which makes the symbols thothd
 * cached for that process stale. */
int symcache_plugin_answer(void);

int symcache_plugin_answer(void)
{
	return 42;
}
