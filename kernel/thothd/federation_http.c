/*
 * federation_http.c - HTTP POSTs to etcd's JSON gateway, driven by
 * thothd's loop through libcurl's multi-socket interface (federation.h).
 *
 * Why the multi interface and not a worker thread: every structure
 * federation.c touches (the registry, thothd's clients) is the loop
 * thread's; curl's multi-socket API hands us its sockets and its one timer,
 * we watch them on the loop and call curl_multi_socket_action when they
 * fire.  Nothing blocks, nothing is shared between threads, and when no
 * transfer has anything to do curl asks for no timer, so an idle thothd
 * sleeps (the open watch stream is a socket that stays quiet).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "thoth/error.h"

struct fed_req {
	fed_http_t *h;
	fed_req_t *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	char *body;                     /* owned: curl reads it while sending */
	size_t body_len;
	char *resp;                     /* whole response (non-streaming) */
	size_t resp_len, resp_cap;
	size_t max_resp;
	fed_chunk_fn chunk;
	fed_done_fn done;
	void *arg;
	int chunk_err;                  /* the chunk callback asked to stop */
};

typedef struct fed_sock {
	thoth_source_t *src;
} fed_sock_t;

struct fed_http {
	thoth_loop_t *loop;
	CURLM *multi;
	thoth_timer_t *timer;
	fed_req_t *reqs;
	fed_http_stats_t stats;
	bool in_action;
};

static void check_done(fed_http_t *h);

static void finish(fed_http_t *h, fed_req_t *r, bool call_done, int err, long status)
{
	curl_off_t req_size = 0;
	long hdr = 0;
	if (curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &hdr) == CURLE_OK)
		req_size = hdr;
	h->stats.bytes_sent += (uint64_t)req_size + r->body_len;
	curl_multi_remove_handle(h->multi, r->easy);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (call_done && r->done)
		r->done(r->arg, err, status, r->resp ? r->resp : "", r->resp_len);
	free(r->body);
	free(r->resp);
	free(r);
}

static void run_action(fed_http_t *h, curl_socket_t s, int ev)
{
	int running;
	h->in_action = true;
	curl_multi_socket_action(h->multi, s, ev, &running);
	h->in_action = false;
	check_done(h);
}

static void sock_ready(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	fed_http_t *h = arg;
	(void)loop;
	(void)src;
	int ev = 0;
	if (events & THOTH_LOOP_READ)
		ev |= CURL_CSELECT_IN;
	if (events & THOTH_LOOP_WRITE)
		ev |= CURL_CSELECT_OUT;
	if (events & THOTH_LOOP_HUP)
		ev |= CURL_CSELECT_ERR | CURL_CSELECT_IN;
	h->stats.wakeups++;
	run_action(h, fd, ev);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	fed_http_t *h = userp;
	fed_sock_t *fs = socketp;
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (fs) {
			thoth_loop_remove_fd(h->loop, fs->src);
			free(fs);
			curl_multi_assign(h->multi, s, NULL);
		}
		return 0;
	}
	uint32_t ev = (what & CURL_POLL_IN ? THOTH_LOOP_READ : 0) | (what & CURL_POLL_OUT ? THOTH_LOOP_WRITE : 0);
	if (fs)
		return thoth_loop_modify_fd(h->loop, fs->src, ev) ? -1 : 0;
	fs = calloc(1, sizeof *fs);
	if (!fs || thoth_loop_add_fd(h->loop, s, ev, sock_ready, h, &fs->src)) {
		free(fs);
		return -1;
	}
	curl_multi_assign(h->multi, s, fs);
	return 0;
}

static void timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	fed_http_t *h = arg;
	(void)loop;
	(void)timer;
	h->timer = NULL;                /* freed by the loop unless re-armed */
	h->stats.wakeups++;
	run_action(h, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	fed_http_t *h = userp;
	(void)multi;
	if (h->timer) {
		thoth_timer_cancel(h->loop, h->timer);
		h->timer = NULL;
	}
	if (timeout_ms < 0)
		return 0;
	/* curl's timeouts are upper bounds it re-checks itself: 1 ms of slack
	 * or a tenth, whichever is larger, lets the loop coalesce. */
	uint64_t delay = (uint64_t)timeout_ms * 1000000ull;
	uint64_t slack = delay / 10 > 1000000ull ? delay / 10 : 1000000ull;
	return thoth_loop_add_timer_in(h->loop, delay, slack, timer_fired, h, &h->timer) ? -1 : 0;
}

static void check_done(fed_http_t *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		fed_req_t *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (!r)
			continue;
		long status = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		int err = 0;
		if (r->chunk_err)
			err = r->chunk_err;
		else if (m->data.result == CURLE_OPERATION_TIMEDOUT)
			err = THOTH_E_TIMEDOUT;
		else if (m->data.result == CURLE_COULDNT_CONNECT)
			err = THOTH_E_NOT_RUNNING;
		else if (m->data.result == CURLE_WRITE_ERROR && r->resp_len >= r->max_resp)
			err = THOTH_E_TOO_LARGE;
		else if (m->data.result != CURLE_OK)
			err = THOTH_E_IO;
		finish(h, r, true, err, status);
	}
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
	fed_req_t *r = arg;
	size_t len = size * n;
	r->h->stats.bytes_received += len;
	if (r->chunk) {
		int e = r->chunk(r->arg, data, len);
		if (e) {
			r->chunk_err = e;
			return 0;       /* aborts the transfer */
		}
		return len;
	}
	if (r->resp_len + len > r->max_resp) {
		r->resp_len = r->max_resp;
		return 0;
	}
	if (r->resp_len + len + 1 > r->resp_cap) {
		size_t cap = r->resp_cap ? r->resp_cap : 1024;
		while (cap < r->resp_len + len + 1)
			cap *= 2;
		char *p = realloc(r->resp, cap);
		if (!p)
			return 0;
		r->resp = p;
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, data, len);
	r->resp_len += len;
	r->resp[r->resp_len] = 0;
	return len;
}

int fed_http_new(thoth_loop_t *loop, fed_http_t **out)
{
	*out = NULL;
	if (curl_global_init(CURL_GLOBAL_NOTHING))
		return THOTH_E_IO;
	fed_http_t *h = calloc(1, sizeof *h);
	if (!h)
		return THOTH_E_NOMEM;
	h->loop = loop;
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return THOTH_E_NOMEM;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	*out = h;
	return 0;
}

int fed_http_post(fed_http_t *h, const char *url, const char *body, long timeout_ms, fed_chunk_fn chunk,
		  fed_done_fn done, void *arg, fed_req_t **out)
{
	if (out)
		*out = NULL;
	fed_req_t *r = calloc(1, sizeof *r);
	if (!r)
		return THOTH_E_NOMEM;
	r->h = h;
	r->body_len = strlen(body);
	r->body = strdup(body);
	r->easy = curl_easy_init();
	r->headers = curl_slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *more = r->headers ? curl_slist_append(r->headers, "Expect:") : NULL;
	if (!r->body || !r->easy || !more) {
		if (r->easy)
			curl_easy_cleanup(r->easy);
		curl_slist_free_all(more ? more : r->headers);
		free(r->body);
		free(r);
		return THOTH_E_NOMEM;
	}
	r->headers = more;
	r->chunk = chunk;
	r->done = done;
	r->arg = arg;
	r->max_resp = 64u << 20;        /* a full list of many thousand instances fits */
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	if (timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	else {
		/* A stream (the watch): the kernel's keep-alive finds a peer
		 * that vanished without a FIN, without waking us meanwhile. */
		curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 10L);
		curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L);
	}
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		curl_slist_free_all(r->headers);
		free(r->body);
		free(r);
		return THOTH_E_IO;
	}
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	h->stats.requests++;
	if (out)
		*out = r;
	return 0;
}

void fed_http_cancel(fed_http_t *h, fed_req_t *r)
{
	if (r)
		finish(h, r, false, 0, 0);
}

void fed_http_stats(const fed_http_t *h, fed_http_stats_t *out)
{
	*out = h->stats;
}

void fed_http_free(fed_http_t *h)
{
	if (!h)
		return;
	while (h->reqs)
		finish(h, h->reqs, false, 0, 0);
	if (h->timer)
		thoth_timer_cancel(h->loop, h->timer);
	curl_multi_cleanup(h->multi);  /* removes its sockets through socket_cb */
	free(h);
}
