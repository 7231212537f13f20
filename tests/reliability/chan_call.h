/*
 * chan_call.h - a chantest client's connect and 64-byte echo, shared by the
 * channel reliability tests.  Header-only; include it after cmocka.h,
 * chantest.thoth.h, thoth/channel.h and chan_proc.h.
 */
#ifndef THOTH_CHAN_CALL_H
#define THOTH_CHAN_CALL_H

/* A channel to ENV's service with CFG, or the test fails saying why. */
static inline thoth_chan_t *chan_open(const chan_proc_env_t *env, const thoth_chan_config_t *cfg)
{
	thoth_chan_t *ch = NULL;
	char why[300];
	int r = thoth_chan_connect(env->sock, cfg, &ch, why, sizeof why);
	if (r)
		fail_msg("connect: %s: %s", thoth_strerror(r), why);
	return ch;
}

/* One 64-byte echo: 0, the call's error, or THOTH_E_PROTOCOL for an answer
 * that is not the request. */
static inline int chan_echo64(thoth_chan_t *ch)
{
	uint8_t data[64] = { 1, 2, 3 };
	thoth_chantest_Test_echo_req_t rq = { .data = { .ptr = data, .len = sizeof data } };
	thoth_chantest_Test_echo_resp_t rs;
	uint64_t ab[64];
	thoth_arena_t a;
	thoth_arena_init(&a, ab, sizeof ab);
	int r = thoth_chantest_Test_echo(thoth_chan_client(ch), &rq, &rs, &a);
	if (!r && (rs.data.len != 64 || rs.data.ptr[2] != 3))
		return THOTH_E_PROTOCOL;
	return r;
}

#endif
