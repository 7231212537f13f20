/*
 * fuzz_pm_trace.c - `thothctl pm sim` reads trace files and descriptions
 * from the user: the parsers must refuse bad input with a reason and never
 * crash, hang or leak; what they accept must replay through the simulator.
 * The first byte picks the parser (odd: a synthetic description; 2 mod 4:
 * a CTF trace, the metadata up to the first NUL and one stream file after
 * it; 0 mod 4: a trace file); replays are bounded to short traces so runs
 * stay fast.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	thoth_pm_trace_t t;
	int err;
	if (data[0] & 1) {
		char spec[600];
		size_t n = size - 1 < sizeof(spec) - 1 ? size - 1 : sizeof(spec) - 1;
		memcpy(spec, data + 1, n);
		spec[n] = '\0';
		const char *why = NULL;
		err = thoth_pm_trace_generate(spec, NULL, &t, &why);
		if (err && !why)
			abort(); /* a refusal always says why */
	} else if ((data[0] & 3) == 2) {
		const uint8_t *nul = memchr(data + 1, 0, size - 1);
		size_t meta_len = nul ? (size_t)(nul - (data + 1)) : size - 1;
		const uint8_t *stream = nul ? nul + 1 : data + size;
		size_t stream_len = (size_t)(data + size - stream);
		char why[200];
		why[0] = '\0';
		err = thoth_pm_trace_parse_ctf((const char *)data + 1, meta_len, &stream, &stream_len, 1,
					       1000000, 0, &t, why, sizeof(why));
		if (err && !why[0])
			abort();
	} else {
		char why[200];
		why[0] = '\0';
		err = thoth_pm_trace_parse((const char *)data + 1, size - 1, 1000000, 0, &t, why,
					   sizeof(why));
		if (err && !why[0])
			abort();
	}
	if (err)
		return 0;
	/* Replay only what is cheap: few requests over a short span. */
	if (t.count <= 64 && t.end_ns <= 200000000ull) {
		thoth_pm_device_result_t dr;
		for (int p = 0; p < THOTH_PM_DEV_COUNT; p++)
			thoth_pm_sim_device(thoth_pm_device_model_at(2), 200000, &t, p, &dr);
		thoth_pm_cpu_result_t cr;
		for (int k = 0; k <= THOTH_PM_CPU_OPTIMUM; k++)
			thoth_pm_sim_cpu(thoth_pm_cpu_model_at(0), &t, k, &cr);
	}
	thoth_pm_trace_free(&t);
	return 0;
}
