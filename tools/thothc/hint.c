/*
 * hint.c - "did you mean ...?" for a word a schema's author probably
 * mistyped: a keyword (`strcut`, `optinal`, `onway`) or a built-in type
 * written as C or another IDL spells it (`uint32`, `int`, `double`).
 * Without it the error fell on the token after the typo (`optinal u8 a;`
 * was "expected ';' after field, found 'a'"), far from the mistake.
 */
#include <string.h>
#include <strings.h>

#include "front.h"

/* Optimal string alignment distance of A and B (edits: insert, delete,
 * replace, swap two neighbours), case-insensitive; at most 3 counts, words
 * longer than 31 are never near. */
static unsigned edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
	if (la > 31 || lb > 31)
		return 99;
	unsigned d[32][32];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			char x = (char)(a[i - 1] | 0x20), y = (char)(b[j - 1] | 0x20);
			unsigned best = d[i - 1][j - 1] + (x != y);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && x == (b[j - 2] | 0x20) && (a[i - 2] | 0x20) == y &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

const char *tidl_near_word(const char *s, size_t len, const char *const *words)
{
	const char *best = NULL;
	unsigned best_d = 0;
	for (size_t i = 0; words[i]; i++) {
		size_t lw = strlen(words[i]);
		if (lw == len && strncmp(s, words[i], len) == 0)
			return NULL;            /* the word itself: nothing to suggest */
		unsigned d = edit_distance(s, len, words[i], lw);
		/* one edit, or two in a word of six letters or more: "packge",
		 * "interfce", "optionl"; never a short name like "id" -> "i8" */
		unsigned max = lw >= 6 ? 2 : 1;
		if (lw < 3 || d > max || (best && d >= best_d))
			continue;
		best = words[i];
		best_d = d;
	}
	return best;
}

/* What C, protobuf, FIDL and Thrift call tidl's built-in types. */
static const struct { const char *alias, *type; } aliases[] = {
	{ "uint8", "u8" }, { "uint16", "u16" }, { "uint32", "u32" }, { "uint64", "u64" },
	{ "uint8_t", "u8" }, { "uint16_t", "u16" }, { "uint32_t", "u32" }, { "uint64_t", "u64" },
	{ "int8", "i8" }, { "int16", "i16" }, { "int32", "i32" }, { "int64", "i64" },
	{ "int8_t", "i8" }, { "int16_t", "i16" }, { "int32_t", "i32" }, { "int64_t", "i64" },
	{ "byte", "u8" }, { "char", "u8" }, { "short", "i16" }, { "int", "i32" },
	{ "long", "i64" }, { "unsigned", "u32" }, { "size_t", "u64" },
	{ "float", "f32" }, { "float32", "f32" }, { "double", "f64" }, { "float64", "f64" },
	{ "boolean", "bool" }, { "_Bool", "bool" }, { "str", "string" }, { "text", "string" },
	{ "vector", "list<T>" }, { "array", "list<T>" }, { "sequence", "list<T>" },
};

const char *tidl_builtin_hint(const char *name)
{
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (strcasecmp(name, aliases[i].alias) == 0)
			return aliases[i].type;
	static const char *const builtins[] = { "bool", "string", "bytes", "list", NULL };
	const char *near = tidl_near_word(name, strlen(name), builtins);
	if (near)
		return strcmp(near, "list") == 0 ? "list<T>" : near;
	static const char *const keywords[] = { "optional", NULL };
	return tidl_near_word(name, strlen(name), keywords);
}
