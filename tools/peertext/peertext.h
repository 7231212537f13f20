/*
 * peertext.h - a peer's string on a terminal, shown, never obeyed
 * (peertext.c says the rule; docs/THOTHD.md "A peer's text").  Shared by
 * thothctl, echo-client and thothd's log: everything they print that
 * another process chose goes through here.  Named peertext_*, outside
 * libthoth's thoth_ namespace (hist46): a static library of the tools,
 * linked beside libthoth, whose symbol of the same name could take one's
 * place.
 */
#ifndef THOTH_PEERTEXT_H
#define THOTH_PEERTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The length of the well-formed UTF-8 sequence at S (at most LEFT bytes),
 * or 0: no overlong forms, no surrogates, nothing above U+10FFFF. */
size_t peertext_utf8_seq(const unsigned char *s, size_t left);

/* A peer's string (thothd's answers, codex's, a PM element's, a probe's, an
 * endpoint's address)
 * as text for the operator's terminal: control bytes (C0, DEL, C1 raw or
 * as UTF-8) and bytes that are not well-formed UTF-8 written \xNN, a
 * backslash \\, an invisible or bidi-control character \u{XXXX}, never
 * raw (peertext.c says the rule; docs/THOTHD.md "A peer's text").
 * peertext_fput writes the LEN bytes at S to F (a tab kept as it is
 * under PEERTEXT_TAB, a newline under PEERTEXT_LINES); peertext_text returns them in
 * one of 8 static buffers used in turn (for up to 8 strings in one printf),
 * at most 2,044 bytes of the visible form, then "..."; peertext_textz is
 * peertext_text for a NUL-terminated S (NULL: ""). */
#define PEERTEXT_TAB 1u
#define PEERTEXT_LINES 2u     /* a newline kept (a text of lines) */
void peertext_fput(FILE *f, const char *s, size_t len, unsigned flags);
const char *peertext_text(const char *s, size_t len);
const char *peertext_textz(const char *s);
/* The visible form of the LEN bytes at S into OUT (CAP bytes, always
 * terminated: a log line's buffer), whole units only, never half an
 * escape; it ends "..." when it did not all fit, or CUT says S was cut
 * (a half letter at S's end is then dropped, not shown \xNN).  Returns
 * the length written.  thothd's log lines (kernel/thothd/log.c). */
size_t peertext_cut(char *out, size_t cap, const char *s, size_t len, bool cut);
/* How many of the last bytes of S (0..3) begin a UTF-8 sequence that
 * LEN cuts: a text that comes in pages holds them for the next page
 * (locks.c), else each would be shown \xNN. */
size_t peertext_cut_tail(const char *s, size_t len);
/* The terminal columns of SHOWN, a string as peertext_text gives it (a
 * combining mark 0, an East Asian wide character 2); and the printf field
 * width ("%-*s") that pads SHOWN to COLS columns: a table's cell holding
 * a peer's string is padded by these, never by its bytes. */
int peertext_cols(const char *shown);
int peertext_field(const char *shown, int cols);
/* The bytes of SHOWN's longest start of at most COLS columns, never
 * inside a character or an escape; *USED its columns. */
size_t peertext_prefix(const char *shown, int cols, int *used);

#endif
