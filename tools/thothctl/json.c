/*
 * json.c - thothctl's JSON string writer (thothctl.h).
 *
 * What thothctl prints comes from other processes: registrations' endpoint
 * addresses, codex records (bytes), probe objects' section names.  A JSON
 * text must be UTF-8 (RFC 8259 section 8.1): one stray byte and a reader
 * (python3's json, jq --seq, a browser) rejects the whole line.  So valid
 * UTF-8 passes through as is, and every byte that does not start or
 * continue a well-formed sequence becomes U+FFFD, as a decoder with
 * errors="replace" would show it.  Control characters are escaped.
 */
#include <stdio.h>

#include "thothctl.h"

bool thothctl_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		size_t n = peertext_utf8_seq(p + i, len - i);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

void thothctl_json_fstr(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	fputc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n = peertext_utf8_seq(p + i, len - i);
		if (!n) {
			fputs("\\ufffd", f);
			i++;
		} else if (n > 1) {
			fwrite(p + i, 1, n, f);
			i += n;
		} else {
			if (c == '"' || c == '\\')
				fprintf(f, "\\%c", c);
			else if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
			i++;
		}
	}
	fputc('"', f);
}

void thothctl_json_str(const char *s, size_t len)
{
	thothctl_json_fstr(stdout, s, len);
}
