/*
 * contract.c - pre-activation contract checks (include/thoth/contract.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "thoth/contract.h"
#include "why.h"

static bool same_str(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

void thoth_contract_claim_init(thoth_contract_claim_t *claim, const thoth_interface_info_t *iface,
			       uint64_t features)
{
	claim->package = iface->package;
	claim->interface = iface->name;
	claim->interface_id = iface->id;
	claim->major = iface->major;
	claim->minor = iface->minor;
	claim->schema_hash = iface->schema_hash;
	claim->features = features;
}

int thoth_contract_verify(const thoth_interface_info_t *iface, const thoth_contract_claim_t *claim,
			  char *reason, size_t len)
{
	if (reason && len)
		reason[0] = 0;
	if (!same_str(claim->package, iface->package) || !same_str(claim->interface, iface->name))
		return thoth__why_err(reason, len, THOTH_E_CONTRACT,
			              "claims interface %s.%s, compiled schema is %s.%s",
			              claim->package ? claim->package : "(null)",
			              claim->interface ? claim->interface : "(null)",
			              iface->package, iface->name);
	if (claim->interface_id != iface->id)
		return thoth__why_err(reason, len, THOTH_E_CONTRACT,
			              "claims interface id %08x, compiled schema has %08x",
			              claim->interface_id, iface->id);
	if (claim->major != iface->major || claim->minor != iface->minor)
		return thoth__why_err(reason, len, THOTH_E_CONTRACT,
			              "claims version %u.%u, compiled schema is %u.%u",
			              claim->major, claim->minor, iface->major, iface->minor);
	if (claim->schema_hash != iface->schema_hash)
		return thoth__why_err(reason, len, THOTH_E_CONTRACT,
			              "claims schema hash %016llx, compiled schema hashes to %016llx",
			              (unsigned long long)claim->schema_hash,
			              (unsigned long long)iface->schema_hash);
	uint64_t unknown = claim->features & ~iface->features;
	if (unknown)
		return thoth__why_err(reason, len, THOTH_E_CONTRACT,
			              "claims feature bits %#llx that the schema does not declare",
			              (unsigned long long)unknown);
	return 0;
}

int thoth_contract_compatible(const thoth_contract_claim_t *s, const thoth_contract_claim_t *c,
			      char *reason, size_t len)
{
	if (reason && len)
		reason[0] = 0;
	if (s->interface_id != c->interface_id)
		return thoth__why_err(reason, len, THOTH_E_CONTRACT,
			              "service implements %s.%s (%08x), client wants %s.%s (%08x)",
			              s->package, s->interface, s->interface_id,
			              c->package, c->interface, c->interface_id);
	if (s->major != c->major)
		return thoth__why_err(reason, len, THOTH_E_BAD_VERSION,
			              "service speaks %s %u.%u, client speaks %u.%u: major versions differ",
			              s->interface, s->major, s->minor, c->major, c->minor);
	if (s->minor == c->minor && s->schema_hash != c->schema_hash)
		return thoth__why_err(reason, len, THOTH_E_CONTRACT,
			              "both sides claim %s %u.%u but schema hashes differ "
			              "(service %016llx, client %016llx): schema changed without a version bump",
			              s->interface, s->major, s->minor,
			              (unsigned long long)s->schema_hash, (unsigned long long)c->schema_hash);
	return 0;
}

/* Encode a zero value with ENCODE, decode it, re-encode, compare. */
static int roundtrip(const char *what, const char *method, size_t struct_size,
		     size_t (*size)(const void *), int (*encode)(thoth_builder_t *, const void *),
		     int (*decode)(thoth_decoder_t *, void *), char *reason, size_t len)
{
	int r = THOTH_E_NOMEM;
	void *value = calloc(1, struct_size ? struct_size : 1);
	void *again = calloc(1, struct_size ? struct_size : 1);
	size_t n = value ? THOTH_WIRE_HEADER_SIZE + size(value) + 8 : 0;
	uint64_t *buf1 = calloc(1, n), *buf2 = calloc(1, n), *scratch = calloc(1, 4096);
	if (!value || !again || !buf1 || !buf2 || !scratch)
		goto out;
	thoth_msg_header_t h = { .flags = THOTH_MSG_REQUEST };
	thoth_builder_t b;
	size_t l1, l2;
	thoth_builder_init(&b, buf1, n);
	r = encode(&b, value);
	if (!r)
		r = thoth_builder_finish(&b, &h, &l1);
	if (r) {
		r = thoth__why_err(reason, len, THOTH_E_CONTRACT, "%s %s: encode failed: %s (size() said %zu)",
			           method, what, thoth_strerror(r), n);
		goto out;
	}
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, 4096);
	thoth_decoder_t d;
	thoth_decoder_init(&d, (uint8_t *)buf1 + THOTH_WIRE_HEADER_SIZE,
			   (uint32_t)(l1 - THOTH_WIRE_HEADER_SIZE), &arena);
	r = decode(&d, again);
	if (r) {
		r = thoth__why_err(reason, len, THOTH_E_CONTRACT, "%s %s: own encoding does not verify: %s",
			           method, what, thoth_strerror(r));
		goto out;
	}
	thoth_builder_init(&b, buf2, n);
	r = encode(&b, again);
	if (!r)
		r = thoth_builder_finish(&b, &h, &l2);
	if (r || l1 != l2 || memcmp(buf1, buf2, l1) != 0) {
		r = thoth__why_err(reason, len, THOTH_E_CONTRACT, "%s %s: re-encoding differs", method, what);
		goto out;
	}
	r = 0;
out:
	free(value);
	free(again);
	free(buf1);
	free(buf2);
	free(scratch);
	return r;
}

int thoth_contract_selftest(const thoth_interface_info_t *iface, char *reason, size_t len)
{
	if (reason && len)
		reason[0] = 0;
	for (size_t i = 0; i < iface->n_methods; i++) {
		const thoth_method_info_t *m = iface->methods[i];
		if (m->interface_id != iface->id || m->major != iface->major)
			return thoth__why_err(reason, len, THOTH_E_CONTRACT,
				              "method %s does not belong to %s %u.x", m->name, iface->name,
				              iface->major);
		int r = roundtrip("request", m->name, m->req_struct_size, m->req_size, m->req_encode,
				  m->req_decode, reason, len);
		if (!r && !m->oneway)
			r = roundtrip("response", m->name, m->resp_struct_size, m->resp_size,
				      m->resp_encode, m->resp_decode, reason, len);
		if (r)
			return r;
	}
	return 0;
}
