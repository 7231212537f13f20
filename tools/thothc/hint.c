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
 * replace, swap two neighbours), case-insensitive, or MAX + 1 when it is
 * more than MAX; words longer than 31 are never near.  Only the cells
 * within MAX of the diagonal are computed, and a row all over MAX ends it:
 * each unknown type is compared with every struct and enum of its file
 * (4096), and the full table made 4000 unknown types of 31 letters take
 * 14 s, a 4 MiB file minutes. */
static unsigned edit_distance(const char *a, size_t la, const char *b, size_t lb, unsigned max)
{
	const unsigned far = max + 1;
	if (la > 31 || lb > 31 || (la > lb ? la - lb : lb - la) > max)
		return far;
	unsigned d[32][32];
	for (size_t i = 0; i <= la; i++)
		for (size_t j = 0; j <= lb; j++)
			d[i][j] = i == 0 ? (unsigned)j : j == 0 ? (unsigned)i : far;
	for (size_t i = 1; i <= la; i++) {
		size_t lo = i > max ? i - max : 1, hi = i + max < lb ? i + max : lb;
		unsigned row_min = d[i][0];
		for (size_t j = lo; j <= hi; j++) {
			char x = (char)(a[i - 1] | 0x20), y = (char)(b[j - 1] | 0x20);
			unsigned best = d[i - 1][j - 1] + (x != y);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && x == (b[j - 2] | 0x20) && (a[i - 2] | 0x20) == y &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best > far ? far : best;
			if (d[i][j] < row_min)
				row_min = d[i][j];
		}
		/* every alignment crosses this row (a swap from the row
		 * before costs more than a replace into it): all over MAX */
		if (row_min > max)
			return far;
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
		/* one edit, or two in a word of six letters or more: "packge",
		 * "interfce", "optionl"; never a short name like "id" -> "i8" */
		unsigned max = lw >= 6 ? 2 : 1;
		if (lw < 3)
			continue;
		unsigned d = edit_distance(s, len, words[i], lw, max);
		if (d > max || (best && d >= best_d))
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
