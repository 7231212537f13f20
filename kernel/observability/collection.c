/*
 * collection.c - events drained from one or more readers, kept in memory
 * until an exporter writes them out.
 */
#include <stdlib.h>
#include <string.h>

#include "collection.h"

/* Grow *ARRAY (of ELEM-byte items, *CAP of them) to hold one more. */
static int grow(void **array, size_t *cap, size_t count, size_t elem)
{
	if (count < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *n = realloc(*array, ncap * elem);
	if (!n)
		return THOTH_E_NOMEM;
	*array = n;
	*cap = ncap;
	return 0;
}

int thoth_trace_collection_new(thoth_trace_collection_t **out)
{
	if (!out)
		return THOTH_E_INVAL;
	*out = calloc(1, sizeof **out);
	return *out ? 0 : THOTH_E_NOMEM;
}

void thoth_trace_collection_free(thoth_trace_collection_t *c)
{
	if (!c)
		return;
	free(c->events);
	free(c->names);
	free(c->threads);
	free(c->processes);
	free(c);
}

size_t thoth_trace_collection_count(const thoth_trace_collection_t *c)
{
	return c ? c->count : 0;
}

static int intern_name(thoth_trace_collection_t *c, const char *name, uint32_t *index)
{
	for (size_t i = 0; i < c->name_count; i++) {
		if (strcmp(c->names[i], name) == 0) {
			*index = (uint32_t)i;
			return 0;
		}
	}
	int err = grow((void **)&c->names, &c->name_cap, c->name_count, sizeof *c->names);
	if (err)
		return err;
	memset(c->names[c->name_count], 0, sizeof *c->names);
	strncpy(c->names[c->name_count], name, THOTH_TRACE_NAME_MAX);
	*index = (uint32_t)c->name_count++;
	return 0;
}

static int note_process(thoth_trace_collection_t *c, uint32_t pid, const char *name)
{
	for (size_t i = 0; i < c->process_count; i++)
		if (c->processes[i].pid == pid)
			return 0;
	int err = grow((void **)&c->processes, &c->process_cap, c->process_count,
	               sizeof *c->processes);
	if (err)
		return err;
	collected_process_t *p = &c->processes[c->process_count++];
	p->pid = pid;
	memset(p->name, 0, sizeof p->name);
	strncpy(p->name, name, sizeof p->name - 1);
	return 0;
}

static int note_thread(thoth_trace_collection_t *c, uint32_t pid, uint32_t tid, const char *name)
{
	for (size_t i = 0; i < c->thread_count; i++)
		if (c->threads[i].pid == pid && c->threads[i].tid == tid)
			return 0;
	int err = grow((void **)&c->threads, &c->thread_cap, c->thread_count, sizeof *c->threads);
	if (err)
		return err;
	collected_thread_t *t = &c->threads[c->thread_count++];
	t->pid = pid;
	t->tid = tid;
	memset(t->name, 0, sizeof t->name);
	strncpy(t->name, name, sizeof t->name - 1);
	return 0;
}

typedef struct add_ctx {
	thoth_trace_collection_t *c;
	thoth_trace_reader_t *reader;
	const char *process_name;
	uint32_t name_of_id[256];  /* reader event id (<= 255) -> name index + 1 */
} add_ctx_t;

static int add_event(const thoth_trace_event_t *ev, void *arg)
{
	add_ctx_t *a = arg;
	thoth_trace_collection_t *c = a->c;
	int err;
	if (ev->event_id >= 256)
		return THOTH_E_CORRUPT;  /* the reader never delivers one */
	if (!a->name_of_id[ev->event_id]) {
		uint32_t index;
		if ((err = intern_name(c, ev->name, &index)))
			return err;
		a->name_of_id[ev->event_id] = index + 1;
	}
	const char *thread_name = "";
	thoth_trace_reader_thread_name(a->reader, ev->ring, &thread_name);
	if ((err = note_process(c, ev->pid, a->process_name)) ||
	    (err = note_thread(c, ev->pid, ev->tid, thread_name)) ||
	    (err = grow((void **)&c->events, &c->cap, c->count, sizeof *c->events)))
		return err;
	collected_event_t *e = &c->events[c->count++];
	e->ev = *ev;
	e->ev.name = NULL;
	e->name_index = a->name_of_id[ev->event_id] - 1;
	return 0;
}

int thoth_trace_collection_add(thoth_trace_collection_t *c, thoth_trace_reader_t *reader)
{
	if (!c || !reader)
		return THOTH_E_INVAL;
	add_ctx_t *a = calloc(1, sizeof *a);
	if (!a)
		return THOTH_E_NOMEM;
	a->c = c;
	a->reader = reader;
	uint32_t pid;
	thoth_trace_reader_process(reader, &pid, &a->process_name);
	int err = note_process(c, pid, a->process_name);
	if (!err)
		err = thoth_trace_reader_poll(reader, add_event, a);
	free(a);
	return err;
}

int thoth_trace_collection_add_event(thoth_trace_collection_t *c, const thoth_trace_event_t *ev,
                                     const char *process_name, const char *thread_name)
{
	if (!c || !ev || !ev->name)
		return THOTH_E_INVAL;
	uint32_t index;
	int err;
	if ((err = note_process(c, ev->pid, process_name ? process_name : "")) ||
	    (err = note_thread(c, ev->pid, ev->tid, thread_name ? thread_name : "")) ||
	    (err = intern_name(c, ev->name, &index)) ||
	    (err = grow((void **)&c->events, &c->cap, c->count, sizeof *c->events)))
		return err;
	collected_event_t *e = &c->events[c->count++];
	e->ev = *ev;
	e->ev.name = NULL;
	e->name_index = index;
	return 0;
}

static int compare_events(const void *pa, const void *pb)
{
	const thoth_trace_event_t *a = &(*(const collected_event_t *const *)pa)->ev;
	const thoth_trace_event_t *b = &(*(const collected_event_t *const *)pb)->ev;
	if (a->timestamp_ns != b->timestamp_ns)
		return a->timestamp_ns < b->timestamp_ns ? -1 : 1;
	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	if (a->tid != b->tid)
		return a->tid < b->tid ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int thoth_trace_collection_sorted(const thoth_trace_collection_t *c,
                                  const collected_event_t ***out)
{
	const collected_event_t **sorted = malloc((c->count ? c->count : 1) * sizeof *sorted);
	if (!sorted)
		return THOTH_E_NOMEM;
	for (size_t i = 0; i < c->count; i++)
		sorted[i] = &c->events[i];
	qsort(sorted, c->count, sizeof *sorted, compare_events);
	*out = sorted;
	return 0;
}

/* N items of ELEM bytes from SRC into a fresh array (NULL when N is 0). */
static int copy_array(void **dst, const void *src, size_t n, size_t elem)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = malloc(n * elem);
	if (!*dst)
		return THOTH_E_NOMEM;
	memcpy(*dst, src, n * elem);
	return 0;
}

int thoth__trace_collection_clone(const thoth_trace_collection_t *c,
                                  thoth_trace_collection_t **out)
{
	thoth_trace_collection_t *n = calloc(1, sizeof *n);
	if (!n)
		return THOTH_E_NOMEM;
	if (copy_array((void **)&n->events, c->events, c->count, sizeof *c->events) ||
	    copy_array((void **)&n->names, c->names, c->name_count, sizeof *c->names) ||
	    copy_array((void **)&n->threads, c->threads, c->thread_count, sizeof *c->threads) ||
	    copy_array((void **)&n->processes, c->processes, c->process_count, sizeof *c->processes)) {
		thoth_trace_collection_free(n);
		return THOTH_E_NOMEM;
	}
	n->count = n->cap = c->count;
	n->name_count = n->name_cap = c->name_count;
	n->thread_count = n->thread_cap = c->thread_count;
	n->process_count = n->process_cap = c->process_count;
	*out = n;
	return 0;
}

const char *thoth_trace_category_name(unsigned category)
{
	static const char *const names[THOTH_TRACE_CAT_COUNT] = {
		[THOTH_TRACE_CAT_IPC] = "ipc",     [THOTH_TRACE_CAT_REGISTRY] = "registry",
		[THOTH_TRACE_CAT_TIMER] = "timer", [THOTH_TRACE_CAT_LOOP] = "loop",
		[THOTH_TRACE_CAT_PM] = "pm",       [THOTH_TRACE_CAT_USER] = "user",
		[THOTH_TRACE_CAT_LOCK] = "lock",
	};
	return category < THOTH_TRACE_CAT_COUNT ? names[category] : "other";
}

const char *thoth_trace_transport_name(unsigned flags)
{
	switch (flags & 3u) {
	case THOTH_TRACE_INLINE:    return "inline";
	case THOTH_TRACE_ZERO_COPY: return "zero_copy";
	case THOTH_TRACE_NO_TRANSPORT: return "none";
	}
	return "unknown";
}
