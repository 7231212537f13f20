/*
 * bench_codec.c - encode+decode cost of the thoth wire format against
 * protobuf-c, on equivalent messages (bench.tidl / bench.proto), in one run.
 *
 *   small: a control message, four scalars and a 12-byte string
 *   large: an id and a bytes payload of 64 B .. 1 MiB
 *
 * thoth's figures include its 40-byte header and full verification (bounds,
 * UTF-8, flags); protobuf-c's are the bare body, unpacked with the default
 * allocator and freed, which is how protobuf-c is used.  Each figure is the
 * median of RUNS runs of N iterations, in ns per operation.
 *
 * usage: bench_codec [runs]
 *        bench_codec --count-small N   N encode+decode pairs of each, nothing
 *                                      else: for instruction counts under
 *                                      valgrind --tool=callgrind
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.pb-c.h"
#include "bench.thoth.h"

static int runs = 7;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Keep the compiler from deleting work whose result is unused. */
static volatile uint64_t sink;
#define KEEP(x) (sink += (uint64_t)(x))

typedef void (*op_fn)(void *ctx, long n);

/* Median ns/op over `runs` runs of n iterations. */
static double measure(op_fn fn, void *ctx, long n)
{
	double t[32];
	fn(ctx, n / 10 + 1); /* warm up */
	for (int r = 0; r < runs; r++) {
		double t0 = now_ns();
		fn(ctx, n);
		t[r] = (now_ns() - t0) / (double)n;
	}
	qsort(t, (size_t)runs, sizeof t[0], cmp_double);
	return t[runs / 2];
}

/* ---- small ---------------------------------------------------------------- */

static _Alignas(8) uint8_t tbuf[2 << 20];
static uint8_t pbuf[2 << 20];
static uint64_t arena_mem[256];

static const char small_name[] = "codex.node-7";

static void thoth_small(void *ctx, long n)
{
	bench_codec_Bench_small_req_t in = {
		.id = 7, .lease = 0x123456789ull, .numa_node = 1, .urgent = true,
		.name = { small_name, sizeof small_name - 1 },
	}, out;
	for (long i = 0; i < n; i++) {
		size_t len;
		in.id = (uint32_t)i;
		if (bench_codec_Bench_small_req_encode_msg(tbuf, sizeof tbuf, NULL, &in, &len))
			abort();
		thoth_arena_t a;
		thoth_arena_init(&a, arena_mem, sizeof arena_mem);
		if (bench_codec_Bench_small_req_decode_msg(tbuf, len, &out, &a))
			abort();
		KEEP(out.id + out.name.len);
	}
}

static void pb_small(void *ctx, long n)
{
	Small in = SMALL__INIT;
	in.lease = 0x123456789ull;
	in.numa_node = 1;
	in.urgent = 1;
	in.name = (char *)small_name;
	for (long i = 0; i < n; i++) {
		in.id = (uint32_t)i;
		size_t len = small__pack(&in, pbuf);
		Small *out = small__unpack(NULL, len, pbuf);
		if (!out)
			abort();
		KEEP(out->id + strlen(out->name));
		small__free_unpacked(out, NULL);
	}
}

/* ---- large ------------------------------------------------------------------ */

static uint8_t *payload;
static size_t payload_len;
static size_t t_large_len, p_large_len;

static void thoth_large_encode(void *ctx, long n)
{
	bench_codec_Bench_large_req_t in = { .l = { .id = 1, .payload = { .ptr = payload, .len = (uint32_t)payload_len } } };
	for (long i = 0; i < n; i++) {
		if (bench_codec_Bench_large_req_encode_msg(tbuf, sizeof tbuf, NULL, &in, &t_large_len))
			abort();
		KEEP(tbuf[t_large_len - 1]);
	}
}

/* Build in place: reserve the payload inside the message, no copy. */
static void thoth_large_encode_reserve(void *ctx, long n)
{
	uint8_t *where;
	bench_codec_Bench_large_req_t in = { .l = { .id = 1, .payload = { .len = (uint32_t)payload_len, .reserve = &where } } };
	for (long i = 0; i < n; i++) {
		size_t len;
		if (bench_codec_Bench_large_req_encode_msg(tbuf, sizeof tbuf, NULL, &in, &len))
			abort();
		where[0] = (uint8_t)i; /* the producer would write its data here */
		KEEP(len);
	}
}

static void thoth_large_decode(void *ctx, long n)
{
	bench_codec_Bench_large_req_t out;
	for (long i = 0; i < n; i++) {
		thoth_arena_t a;
		thoth_arena_init(&a, arena_mem, sizeof arena_mem);
		if (bench_codec_Bench_large_req_decode_msg(tbuf, t_large_len, &out, &a))
			abort();
		KEEP(out.l.payload.ptr[0] + out.l.payload.len);
	}
}

static void pb_large_encode(void *ctx, long n)
{
	Large in = LARGE__INIT;
	in.id = 1;
	in.payload.data = payload;
	in.payload.len = payload_len;
	for (long i = 0; i < n; i++) {
		p_large_len = large__pack(&in, pbuf);
		KEEP(pbuf[p_large_len - 1]);
	}
}

static void pb_large_decode(void *ctx, long n)
{
	for (long i = 0; i < n; i++) {
		Large *out = large__unpack(NULL, p_large_len, pbuf);
		if (!out)
			abort();
		KEEP(out->payload.data[0] + out->payload.len);
		large__free_unpacked(out, NULL);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--count-small") == 0) {
		long n = atol(argv[2]);
		thoth_small(NULL, n);
		pb_small(NULL, n);
		return 0;
	}
	if (argc > 1) {
		runs = atoi(argv[1]);
		if (runs < 1 || runs > 31) {
			fprintf(stderr, "usage: bench_codec [runs 1..31]\n");
			return 2;
		}
	}
	printf("bench_codec: thoth wire vs protobuf-c %s, median of %d runs, ns/op\n",
	       protobuf_c_version(), runs);

	double t = measure(thoth_small, NULL, 2000000);
	double p = measure(pb_small, NULL, 2000000);
	printf("\n%-34s %10s %12s %8s\n", "small control message", "thoth", "protobuf-c", "ratio");
	printf("%-34s %10.1f %12.1f %7.1fx\n", "encode+decode (4 scalars+string)", t, p, p / t);

	printf("\n%-10s %14s %14s %14s %14s %14s %8s\n", "payload", "thoth enc", "thoth enc-rsv",
	       "thoth dec", "pb enc", "pb dec", "dec ratio");
	static const size_t sizes[] = { 64, 4096, 65536, 1 << 20 };
	payload = malloc(1 << 20);
	if (!payload)
		return 1;
	for (size_t i = 0; i < 1 << 20; i++)
		payload[i] = (uint8_t)i;
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		payload_len = sizes[s];
		long n = payload_len >= 65536 ? 20000 : 500000;
		double te = measure(thoth_large_encode, NULL, n);
		double tr = measure(thoth_large_encode_reserve, NULL, n);
		double td = measure(thoth_large_decode, NULL, n);
		double pe = measure(pb_large_encode, NULL, n);
		double pd = measure(pb_large_decode, NULL, n);
		printf("%-10zu %14.1f %14.1f %14.1f %14.1f %14.1f %7.1fx\n", payload_len, te, tr, td,
		       pe, pd, pd / td);
	}
	printf("\n(enc-rsv: the payload is reserved inside the message and written in place;\n"
	       " thoth dec: verification + views, the payload is not copied.)\n");
	free(payload);
	return 0;
}
