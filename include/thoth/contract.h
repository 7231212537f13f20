/*
 * thoth/contract.h - the pre-activation contract check (IPC-5).
 *
 * A service describes what it implements with a claim (interface, version,
 * schema hash, features).  Before it is activated (registered), the claim is
 * verified against the schema it was actually compiled with; the registry
 * repeats the check and refuses services that fail it.  Two claims for the
 * same interface are compatible when their major versions match and, when
 * they state the same version, their schema hashes match too (same version,
 * different schema = someone changed the schema without bumping it).
 */
#ifndef THOTH_CONTRACT_H
#define THOTH_CONTRACT_H

#include "thoth/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct thoth_contract_claim {
	const char *package;
	const char *interface;
	uint32_t interface_id;
	uint8_t major, minor;
	uint64_t schema_hash;
	uint64_t features;              /* feature bits the service offers */
} thoth_contract_claim_t;

/* The claim a service compiled against IFACE makes, offering FEATURES. */
void thoth_contract_claim_init(thoth_contract_claim_t *claim, const thoth_interface_info_t *iface,
			       uint64_t features);

/*
 * Verify CLAIM against the compiled IFACE.  Returns 0, or THOTH_E_CONTRACT
 * with a one-line reason ("claims version 1.4, compiled schema is 1.3").
 */
int thoth_contract_verify(const thoth_interface_info_t *iface, const thoth_contract_claim_t *claim,
			  char *reason, size_t reason_len);

/* Are two claims wire-compatible (client vs service)?  0 or THOTH_E_CONTRACT /
 * THOTH_E_BAD_VERSION with a reason that says which side has what. */
int thoth_contract_compatible(const thoth_contract_claim_t *service,
			      const thoth_contract_claim_t *client,
			      char *reason, size_t reason_len);

/*
 * Exercise the compiled codecs of every method of IFACE: encode a zero
 * value, verify and decode it, re-encode and compare bytes, for requests and
 * responses.  Catches a stub linked against an incompatible runtime before
 * the service takes traffic.  0 or THOTH_E_CONTRACT with a reason.
 */
int thoth_contract_selftest(const thoth_interface_info_t *iface, char *reason, size_t reason_len);

#ifdef __cplusplus
}
#endif
#endif
