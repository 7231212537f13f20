/*
 * device_power.h - power and latency of a runtime-PM device's two levels
 * (SUSPENDED, ACTIVE) for pm-runtime-driver (PM-1).
 *
 * Linux runtime PM publishes neither power nor latency, so every figure
 * here is MODELLED, and says where it comes from:
 *   - a config file the administrator writes with real figures (a device's
 *     datasheet, a measurement), one line per device or class:
 *         MATCH ACTIVE_MW SUSPENDED_MW SUSPEND_US RESUME_US
 *     MATCH is "class:0xCCSS" (PCI class and subclass, the first 4 hex
 *     digits of the device's `class` file), "usb" (any USB device), or a
 *     substring of the device's path; the first matching line wins; '#'
 *     starts a comment;
 *   - else the built-in table (device_power.c, docs/PM.md "Runtime PM
 *     power table"): latencies from the bus specifications (PCI PM: 10 ms
 *     from D3hot to D0; USB 2.0: 20 ms of resume signalling), powers as
 *     labelled order-of-magnitude assumptions per device class.
 */
#ifndef THOTH_PM_DEVICE_POWER_H
#define THOTH_PM_DEVICE_POWER_H

#include <stddef.h>
#include <stdint.h>

typedef struct thoth_pm_device_power {
	double active_mw, suspended_mw;
	uint32_t suspend_us, resume_us;
	char source[160]; /* "modelled: built-in table, PCI class 0x0c03 (USB host controller)" */
} thoth_pm_device_power_t;

/* Figures for DEVICE (a /sys/devices path, under $THOTH_SYSFS_ROOT), from
 * the config file TABLE (NULL: none) or the built-in table.  0, or
 * THOTH_E_INVAL / THOTH_E_IO for a bad or unreadable TABLE, with WHY
 * naming the file, the line and the field. */
int thoth_pm_device_power_lookup(const char *device, const char *table, thoth_pm_device_power_t *out,
				 char *why, size_t why_len);

#endif
