/*
 * fuzz_probe_points.c - the reader of a process's trace points (thothctl
 * probe run, tools/thothctl/probe_points.c) fed hostile ELF images: the
 * files it reads are the ones a target process maps, which it chooses.
 * Every input must give -1, 0 or 1, never read past the image or the
 * notes, and leave NEAR a string within its buffer.
 *
 * Seeds (fuzz/corpus/fuzz_probe_points/): objects holding "thoth" and
 * "other" USDT notes (STAP_PROBE(thoth, msg_send), timer_fire, msg_recv;
 * STAP_PROBE(other, msg_sned)), built `cc -O2 -c` for x86-64 and with
 * clang --target=i386-linux-gnu for ELF32, and the 64-bit one cut at 1,100
 * bytes.  test_probe_points checks their answers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe_points.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const asked[] = { "msg_send", "msg_sned", "*", "" };
	for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
		char near[64];
		memset(near, 'x', sizeof near);
		int r = thothctl_probe_points_in_image(data, size, asked[i], near, sizeof near);
		if (r < -1 || r > 1 || !memchr(near, '\0', sizeof near))
			abort();
	}
	return 0;
}
