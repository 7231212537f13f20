/*
 * codex_probe - helper of test_codex_service.sh:
 *   codex_probe hold-disk ELEMENT     take an assertive lease on ELEMENT's top
 *                                     level, print "held", keep it until stdin closes
 *   codex_probe bad-durability STREAM send an append with durability 7 (no such
 *                                     class) and print the error codex answers
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codex.thoth.h"
#include "pm.thoth.h"
#include "registry.thoth.h"
#include "thoth/channel.h"
#include "thoth/service.h"

static int hold(const char *element)
{
	thoth_control_t ctl;
	if (thoth_control_connect(&ctl, NULL, 2000))
		return 1;
	static uint64_t scratch[8192];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerBroker_state_req_t sreq = { 0 };
	thoth_pm_PowerBroker_state_resp_t sresp;
	if (thoth_pm_PowerBroker_state(&ctl.client, &sreq, &sresp, &arena))
		return 1;
	uint32_t top = 0;
	for (uint32_t k = 0; k < sresp.elements.count; k++)
		if (sresp.elements.items[k].name.len == strlen(element) &&
		    !memcmp(sresp.elements.items[k].name.ptr, element, strlen(element)))
			top = sresp.elements.items[k].levels.count - 1;
	thoth_pm_PowerBroker_lease_req_t req = { .element = thoth_str(element), .level = top,
						 .kind = THOTH_PM_LEASE_KIND_ASSERTIVE };
	thoth_pm_PowerBroker_lease_resp_t resp;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_pm_PowerBroker_lease(&ctl.client, &req, &resp, &arena);
	if (r) {
		fprintf(stderr, "codex_probe: lease: %s %s\n", thoth_strerror(r), ctl.client.remote_message);
		return 1;
	}
	printf("held\n");
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	thoth_control_close(&ctl);
	return 0;
}

static int bad_durability(const char *stream)
{
	thoth_control_t ctl;
	if (thoth_control_connect(&ctl, NULL, 2000))
		return 1;
	thoth_registry_Registry_resolve_req_t req = { .name = thoth_str("codex"), .min_version = thoth_str("1.0.0") };
	thoth_registry_Registry_resolve_resp_t resp;
	uint64_t scratch[1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	if (thoth_registry_Registry_resolve(&ctl.client, &req, &resp, &arena))
		return 1;
	char addr[108];
	snprintf(addr, sizeof addr, "%.*s", (int)resp.instance.registration.endpoint.addr.len,
		 resp.instance.registration.endpoint.addr.ptr);
	thoth_control_close(&ctl);
	thoth_chan_config_t cfg = { .iface = &thoth_codex_Codex_info };
	thoth_chan_t *ch;
	char why[300];
	if (thoth_chan_connect(addr, &cfg, &ch, why, sizeof why))
		return 1;
	thoth_bytes_t rec = { .ptr = (const uint8_t *)"x", .len = 1 };
	thoth_codex_Codex_append_req_t a = { .stream = thoth_str(stream), .records = { &rec, 1 },
					     .durability = (thoth_codex_Durability_t)7 };
	thoth_codex_Codex_append_resp_t ar;
	int r = thoth_codex_Codex_append(thoth_chan_client(ch), &a, &ar, NULL);
	printf("%s %s\n", thoth_errname(r), r == THOTH_E_REMOTE ? thoth_chan_client(ch)->remote_message : "");
	thoth_chan_close(ch);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "hold-disk"))
		return hold(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "bad-durability"))
		return bad_durability(argv[2]);
	fprintf(stderr, "usage: codex_probe hold-disk ELEMENT | bad-durability STREAM\n");
	return 2;
}
