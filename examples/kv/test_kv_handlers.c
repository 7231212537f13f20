/*
 * test_kv_handlers.c - the example kv service's handlers, called directly
 * (kv_service.c included without its main): keys holding a NUL are keys of
 * their own (strndup() and strlen() cut them, so "a\0b" and "a\0c" were one
 * key "a"), and --max-bytes counts what an entry really costs, not only its
 * key and value bytes (16 M empty entries fit in "0 bytes").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define KV_SERVICE_NO_MAIN 1
#include "kv_service.c"

static void clear(void)
{
	while (table) {
		example_kv_Kv_forget_req_t f = { .key = { table->key, table->klen } };
		on_forget(NULL, &f);
	}
	max_bytes = 64u << 20;
}

static int put(const char *key, uint32_t klen, const char *value)
{
	example_kv_Kv_put_req_t req = {
		.key = { key, klen }, .value = { (const uint8_t *)value, (uint32_t)strlen(value) },
	};
	example_kv_Kv_put_resp_t resp;
	return on_put(NULL, &req, &resp, NULL);
}

static const char *get(const char *key, uint32_t klen, uint32_t *len)
{
	example_kv_Kv_get_req_t req = { .key = { key, klen } };
	example_kv_Kv_get_resp_t resp;
	if (on_get(NULL, &req, &resp, NULL))
		return NULL;
	*len = resp.value.len;
	return (const char *)resp.value.ptr;
}

static void test_keys_with_a_nul_are_distinct(void **state)
{
	clear();
	assert_int_equal(put("a\0b", 3, "one"), 0);
	assert_int_equal(put("a\0c", 3, "two"), 0);
	assert_int_equal(put("a", 1, "three"), 0);
	uint32_t len;
	const char *v = get("a\0b", 3, &len);
	assert_non_null(v);
	assert_int_equal(len, 3);
	assert_memory_equal(v, "one", 3);
	v = get("a\0c", 3, &len);
	assert_non_null(v);
	assert_memory_equal(v, "two", 3);
	v = get("a", 1, &len);
	assert_non_null(v);
	assert_int_equal(len, 5);
	/* forgetting one leaves the others */
	example_kv_Kv_forget_req_t f = { .key = { "a\0b", 3 } };
	on_forget(NULL, &f);
	assert_null(get("a\0b", 3, &len));
	assert_non_null(get("a\0c", 3, &len));
	clear();
}

static void test_max_bytes_counts_what_an_entry_costs(void **state)
{
	clear();
	assert_int_equal(held, 0);
	max_bytes = 10 * ENTRY_COST;
	char key[16];
	int n = 0;
	for (; n < 1000; n++) {
		snprintf(key, sizeof key, "k%d", n);
		if (put(key, (uint32_t)strlen(key), ""))
			break;
	}
	/* empty values: without the entry's cost every one of 1000 fitted */
	assert_true(n < 10);
	assert_true(n >= 5);
	snprintf(key, sizeof key, "k%d", n);
	assert_int_equal(put(key, (uint32_t)strlen(key), ""), EXAMPLE_KV_ERR_FULL);
	/* forgetting them all gives everything back */
	clear();
	assert_int_equal(held, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_with_a_nul_are_distinct),
		cmocka_unit_test(test_max_bytes_counts_what_an_entry_costs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
