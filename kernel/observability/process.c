/*
 * process.c - the start-up call every thoth process makes
 * (thoth_trace_init_process), category names for command lines and the
 * environment, and trace ids for messages that carry none.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "collection.h"
#include "trace_internal.h"

enum {
	PROCESS_RING_COUNT = 16,        /* threads of a service that trace */
	PROCESS_RING_RECORDS = 16384,   /* 1 MiB a ring: ~100 ms of a busy thread */
};

int thoth_trace_parse_categories(const char *list, uint64_t *mask)
{
	if (!list || !mask)
		return THOTH_E_INVAL;
	uint64_t m = 0;
	const char *p = list;
	while (*p) {
		size_t n = strcspn(p, ",");
		bool known = false;
		if (n == 3 && strncasecmp(p, "all", 3) == 0) {
			m |= THOTH_TRACE_ALL_CATEGORIES;
			known = true;
		}
		for (unsigned i = 0; i < THOTH_TRACE_CAT_COUNT && !known; i++) {
			const char *name = thoth_trace_category_name(i);
			if (strlen(name) == n && strncasecmp(p, name, n) == 0) {
				m |= UINT64_C(1) << i;
				known = true;
			}
		}
		if (!known)
			return THOTH_E_INVAL;
		p += n;
		if (*p == ',')
			p++;
	}
	if (!m)
		return THOTH_E_INVAL;
	*mask = m;
	return 0;
}

int thoth_trace_init_process(const char *process_name)
{
	const char *env = getenv("THOTH_TRACE");
	uint64_t enabled = 0;
	if (env && *env) {
		if (strcasecmp(env, "off") == 0 || strcmp(env, "0") == 0)
			return 0;
		if (thoth_trace_parse_categories(env, &enabled))
			enabled = 0;    /* a typo must not stop a service from starting */
	}
	if (thoth_trace_buffer.base)
		return 0;
	thoth_trace_config_t cfg = {
		.ring_count = PROCESS_RING_COUNT,
		.ring_records = PROCESS_RING_RECORDS,
		.full_policy = THOTH_TRACE_OVERWRITE_OLDEST,
		.enabled = enabled,
		.process_name = process_name,
	};
	int r = thoth_trace_init(&cfg);
	return r == THOTH_E_EXISTS ? 0 : r;
}

uint64_t thoth_trace_new_id(void)
{
	static uint32_t counter;
	uint32_t n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
	if (!n)
		n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
	/* The private copy: the shared control page is writable by thothd. */
	uint32_t pid = thoth_trace_buffer.pid ? thoth_trace_buffer.pid : (uint32_t)getpid();
	return (uint64_t)pid << 32 | n;
}
