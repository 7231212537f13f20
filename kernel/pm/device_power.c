/*
 * device_power.c - modelled power and latency of runtime-PM devices
 * (device_power.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backend.h"
#include "device_power.h"
#include "thoth/error.h"

/* The built-in table.  Latencies: PCI Bus Power Management Interface 1.2
 * section 5.6.1 (10 ms from D3hot to D0 before the device may be
 * accessed: Linux's PCI_PM_D3HOT_WAIT) and USB 2.0 section 7.1.7.7 (20 ms
 * of resume signalling: Linux's USB_RESUME_TIMEOUT is 40 ms with margin);
 * suspending is a register write (PCI) or 3 ms of bus idle (USB 2.0
 * 7.1.7.6).  Powers are ASSUMPTIONS of the order of magnitude of each
 * class, not datasheet figures, except the USB suspend limit (2.5 mA at
 * 5 V, USB 2.0 7.2.3).  Write the config file for real devices. */
typedef struct row {
	const char *match; /* "class:0xCCSS", "usb", "pci", "*" */
	const char *what;
	double active_mw, suspended_mw;
	uint32_t suspend_us, resume_us;
} row_t;

static const row_t builtin[] = {
	{ "class:0x0108", "NVMe controller (its APST states are a separate model)", 2500, 50, 100, 10000 },
	{ "class:0x0c03", "USB host controller", 300, 10, 100, 10000 },
	{ "class:0x0200", "Ethernet controller", 500, 20, 100, 10000 },
	{ "class:0x0280", "wireless controller", 800, 20, 100, 10000 },
	{ "class:0x0403", "HD audio controller", 100, 5, 100, 10000 },
	{ "class:0x0300", "VGA display controller", 2000, 100, 100, 10000 },
	{ "usb", "USB device (suspend limit 2.5 mA x 5 V)", 100, 12.5, 3000, 20000 },
	{ "pci", "other PCI device", 100, 10, 100, 10000 },
	{ "*", "other device (platform, PnP, virtual)", 10, 1, 100, 1000 },
};

typedef struct device_facts {
	char class4[16]; /* "0x0c03" or "" */
	int usb, pci;
} device_facts_t;

static void read_facts(const char *device, device_facts_t *f)
{
	memset(f, 0, sizeof *f);
	char rel[512], full[1024], line[64];
	snprintf(rel, sizeof rel, "%s/class", device);
	if (!thoth_pm_path(full, sizeof full, rel)) {
		FILE *fp = fopen(full, "r");
		if (fp) {
			if (fgets(line, sizeof line, fp) && strncmp(line, "0x", 2) == 0 && strlen(line) >= 6) {
				memcpy(f->class4, line, 6);
				f->class4[6] = '\0';
			}
			fclose(fp);
		}
	}
	snprintf(rel, sizeof rel, "%s/bDeviceClass", device);
	f->usb = !thoth_pm_path(full, sizeof full, rel) && access(full, R_OK) == 0;
	f->pci = f->class4[0] != '\0' || strstr(device, "/pci") != NULL;
}

static int matches(const char *match, const char *device, const device_facts_t *f)
{
	if (strncmp(match, "class:", 6) == 0)
		return f->class4[0] && strcasecmp(match + 6, f->class4) == 0;
	if (strcmp(match, "usb") == 0)
		return f->usb;
	if (strcmp(match, "pci") == 0)
		return f->pci && !f->usb;
	if (strcmp(match, "*") == 0)
		return 1;
	return strstr(device, match) != NULL;
}

/* One config line: 0 and *OUT set if it matches, 1 if it does not, or an
 * error with WHY. */
static int config_line(const char *table, size_t lineno, char *text, const char *device,
		       const device_facts_t *f, thoth_pm_device_power_t *out, char *why, size_t why_len)
{
	char match[256];
	double a, s, su, ru;
	char extra[2];
	int n = sscanf(text, "%255s %lf %lf %lf %lf %1s", match, &a, &s, &su, &ru, extra);
	if (n != 5) {
		snprintf(why, why_len, "%s line %zu: expected MATCH ACTIVE_MW SUSPENDED_MW SUSPEND_US RESUME_US",
			 table, lineno);
		return THOTH_E_INVAL;
	}
	const char *field = NULL;
	if (!isfinite(a) || a < 0 || a > 1e6)
		field = "ACTIVE_MW (0..1e6)";
	else if (!isfinite(s) || s < 0 || s > a)
		field = "SUSPENDED_MW (0..ACTIVE_MW)";
	else if (!isfinite(su) || su < 0 || su > 1e7)
		field = "SUSPEND_US (0..10 s)";
	else if (!isfinite(ru) || ru < 0 || ru > 1e7)
		field = "RESUME_US (0..10 s)";
	if (field) {
		snprintf(why, why_len, "%s line %zu: %s out of range", table, lineno, field);
		return THOTH_E_INVAL;
	}
	if (!matches(match, device, f))
		return 1;
	*out = (thoth_pm_device_power_t){ a, s, (uint32_t)su, (uint32_t)ru, "" };
	snprintf(out->source, sizeof out->source, "modelled: %.80s line %zu (%.30s)", table, lineno,
		 match);
	return 0;
}

int thoth_pm_device_power_lookup(const char *device, const char *table, thoth_pm_device_power_t *out,
				 char *why, size_t why_len)
{
	device_facts_t f;
	read_facts(device, &f);
	if (table) {
		FILE *fp = fopen(table, "r");
		if (!fp) {
			snprintf(why, why_len, "%s: %s", table, strerror(errno));
			return THOTH_E_IO;
		}
		char text[512];
		size_t lineno = 0;
		int r = 1;
		while (r == 1 && fgets(text, sizeof text, fp)) {
			lineno++;
			char *hash = strchr(text, '#');
			if (hash)
				*hash = '\0';
			if (strspn(text, " \t\r\n") == strlen(text))
				continue;
			r = config_line(table, lineno, text, device, &f, out, why, why_len);
		}
		fclose(fp);
		if (r <= 0)
			return r;
	}
	for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
		const row_t *b = &builtin[i];
		if (!matches(b->match, device, &f))
			continue;
		*out = (thoth_pm_device_power_t){ b->active_mw, b->suspended_mw, b->suspend_us,
						  b->resume_us, "" };
		if (strncmp(b->match, "class:", 6) == 0)
			snprintf(out->source, sizeof out->source,
				 "modelled: built-in table, PCI class %s: %s", f.class4, b->what);
		else
			snprintf(out->source, sizeof out->source, "modelled: built-in table: %s", b->what);
		return 0;
	}
	return THOTH_E_NOT_FOUND; /* unreachable: "*" matches */
}
