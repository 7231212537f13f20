/*
 * golden_hex.h - golden wire vectors as checked-in hex files (16 bytes a
 * line, '#' comment lines), shared by test_golden (system schemas) and
 * test_matrix (the evolution schemas, with reserved ordinals and gaps).
 */
#ifndef GOLDEN_HEX_H
#define GOLDEN_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Write N bytes of B to PATH under the comment line TITLE; 0 or -errno. */
int golden_write_hex(const char *path, const uint8_t *b, size_t n, const char *title);

/* Read PATH into B (at most CAP bytes); fails the current cmocka test when
 * the file is missing or too large.  Returns the byte count. */
size_t golden_read_hex(const char *path, uint8_t *b, size_t cap);

#endif
