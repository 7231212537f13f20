/*
 * test_pm_backends.c - the sysfs backends on the fixture trees of
 * tests/fixtures/sysfs (THOTH_SYSFS_ROOT): what each tree holds is read
 * back exactly, writes go to a private copy (never the repo's tree, never
 * the host), and refused writes name no file at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "thoth/error.h"

static void use_tree(const char *name)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", FIXTURES, name);
	setenv("THOTH_SYSFS_ROOT", p, 1);
}

/* A writable copy of fixture NAME in a temp dir; the root is set to it. */
static char copy_root[256];
static void use_copy(const char *name)
{
	snprintf(copy_root, sizeof copy_root, "/tmp/thoth-pm-fixture-XXXXXX");
	assert_non_null(mkdtemp(copy_root));
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "cp -r '%s/%s/.' '%s/'", FIXTURES, name, copy_root);
	assert_int_equal(system(cmd), 0);
	setenv("THOTH_SYSFS_ROOT", copy_root, 1);
}

static void drop_copy(void)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", copy_root);
	assert_int_equal(system(cmd), 0);
	unsetenv("THOTH_SYSFS_ROOT");
}

static void read_file(const char *rel, char *out, size_t cap)
{
	char p[512];
	snprintf(p, sizeof p, "%s%s", copy_root, rel);
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	assert_non_null(fgets(out, (int)cap, f));
	out[strcspn(out, "\n")] = 0;
	fclose(f);
}

static void test_x86_laptop_reads_intel_pstate_with_epp(void **state)
{
	use_tree("x86-laptop");
	thoth_pm_cpufreq_t f;
	assert_int_equal(thoth_pm_cpufreq_read(0, &f), 0);
	assert_true(f.present);
	assert_string_equal(f.driver, "intel_pstate");
	assert_int_equal(f.hw_max_khz, 4700000);
	assert_int_equal(f.n_opps, 0);          /* a range, not a table */
	assert_string_equal(f.epp, "balance_performance");
	assert_false(f.has_setspeed);
	thoth_pm_cpuidle_t idle;
	assert_int_equal(thoth_pm_cpuidle_read(1, &idle), 0);
	assert_string_equal(idle.driver, "acpi_idle");
	assert_int_equal(idle.n_states, 4);
	assert_string_equal(idle.states[3].name, "C3_ACPI");
	assert_int_equal(idle.states[3].latency_us, 1048);
	assert_int_equal(idle.states[3].residency_us, 3144);
	unsetenv("THOTH_SYSFS_ROOT");
}

static void test_epp_and_limits_are_written_and_bad_values_refused(void **state)
{
	use_copy("x86-laptop");
	char buf[64];
	assert_int_equal(thoth_pm_cpufreq_set_epp(0, "power"), 0);
	read_file("/sys/devices/system/cpu/cpu0/cpufreq/energy_performance_preference", buf, sizeof buf);
	assert_string_equal(buf, "power");
	assert_int_equal(thoth_pm_cpufreq_set_epp(0, "pow"), THOTH_E_INVAL);   /* not a listed word */
	assert_int_equal(thoth_pm_cpufreq_set_limits(0, 800000, 2000000), 0);
	read_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq", buf, sizeof buf);
	assert_string_equal(buf, "2000000");
	read_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq", buf, sizeof buf);
	assert_string_equal(buf, "800000");
	assert_int_equal(thoth_pm_cpufreq_set_limits(0, 3000000, 2000000), THOTH_E_INVAL);
	assert_int_equal(thoth_pm_cpufreq_set_limits(0, 100000, 2000000), THOTH_E_INVAL);
	assert_int_equal(thoth_pm_cpufreq_set_speed(0, 1000000), THOTH_E_NOT_FOUND);  /* no userspace governor */
	drop_copy();
}

static void test_arm64_energy_model_shows_the_inefficient_lowest_opp(void **state)
{
	use_tree("arm64-hikey");
	thoth_pm_cpufreq_t f;
	assert_int_equal(thoth_pm_cpufreq_read(2, &f), 0);
	assert_int_equal(f.n_opps, 5);
	assert_int_equal(f.opp_khz[0], 208000);
	assert_int_equal(f.n_em, 5);
	assert_int_equal(f.em_khz[0], 208000);
	assert_int_equal(f.em_power_mw[0], 69);
	assert_int_equal(f.em_power_mw[4], 670);
	/* 208 MHz costs more energy per unit of work than 432 MHz. */
	assert_true(f.em_cost[0] > f.em_cost[1]);
	assert_true(f.has_setspeed);
	assert_int_equal(f.capacity, 1024);
	unsetenv("THOTH_SYSFS_ROOT");
}

static void test_setspeed_writes_only_inside_the_limits(void **state)
{
	use_copy("arm64-hikey");
	char buf[64];
	assert_int_equal(thoth_pm_cpufreq_set_speed(0, 729000), 0);
	read_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_setspeed", buf, sizeof buf);
	assert_string_equal(buf, "729000");
	assert_int_equal(thoth_pm_cpufreq_set_speed(0, 5000000), THOTH_E_INVAL);
	drop_copy();
}

static void test_nvme_apst_table_is_read_in_mw_and_us(void **state)
{
	use_tree("nvme-ssd");
	thoth_pm_nvme_ps_t ps[8];
	uint32_t n;
	int64_t tol;
	assert_int_equal(thoth_pm_nvme_read("nvme0", ps, 8, &n, &tol), 0);
	assert_int_equal(n, 5);
	assert_true(ps[0].max_power_mw > 7799 && ps[0].max_power_mw < 7801);
	assert_false(ps[0].non_operational);
	assert_true(ps[4].non_operational);
	assert_true(ps[4].max_power_mw > 9.99 && ps[4].max_power_mw < 10.01);
	assert_int_equal(ps[4].entry_latency_us, 2000);
	assert_int_equal(ps[4].exit_latency_us, 8000);
	assert_int_equal(tol, 100000);
	assert_int_equal(thoth_pm_nvme_read("../x", ps, 8, &n, &tol), THOTH_E_INVAL);
	unsetenv("THOTH_SYSFS_ROOT");
}

static void test_vm_tree_has_no_cpufreq_and_no_idle_driver(void **state)
{
	use_tree("vm");
	thoth_pm_cpufreq_t f;
	assert_int_equal(thoth_pm_cpufreq_read(0, &f), 0);
	assert_false(f.present);
	thoth_pm_cpuidle_t idle;
	assert_int_equal(thoth_pm_cpuidle_read(0, &idle), 0);
	assert_string_equal(idle.driver, "none");
	assert_int_equal(idle.n_states, 0);
	char paths[16][256];
	uint32_t n;
	assert_int_equal(thoth_pm_runtime_scan(paths, 16, &n), 0);
	assert_true(n >= 1);
	bool pnp = false;
	for (uint32_t i = 0; i < n; i++)
		pnp |= strstr(paths[i], "pnp0/00:00/00:00:0") != NULL;
	assert_true(pnp);
	unsetenv("THOTH_SYSFS_ROOT");
}

static void test_runtime_pm_control_and_autosuspend_are_written(void **state)
{
	use_copy("x86-laptop");
	const char *dev = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3";
	thoth_pm_runtime_state_t st;
	assert_int_equal(thoth_pm_runtime_read(dev, &st), 0);
	assert_string_equal(st.status, "suspended");
	assert_string_equal(st.control, "auto");
	assert_int_equal(st.autosuspend_delay_ms, 2000);
	assert_int_equal(st.suspended_ms, 9800001);
	assert_int_equal(thoth_pm_runtime_set_control(dev, "on"), 0);
	assert_int_equal(thoth_pm_runtime_set_autosuspend(dev, 500), 0);
	assert_int_equal(thoth_pm_runtime_read(dev, &st), 0);
	assert_string_equal(st.control, "on");
	assert_int_equal(st.autosuspend_delay_ms, 500);
	assert_int_equal(thoth_pm_runtime_set_control(dev, "off"), THOTH_E_INVAL);
	assert_int_equal(thoth_pm_runtime_set_autosuspend(dev, -7), THOTH_E_INVAL);
	drop_copy();
}

static void test_uclamp_is_detected_not_assumed(void **state)
{
	/* Either answer is fine; what matters is that a kernel without uclamp
	 * is told apart and set() then fails cleanly instead of pretending. */
	bool yes = thoth_pm_uclamp_supported();
	print_message("uclamp on this kernel: %s\n", yes ? "yes" : "no");
	if (!yes)
		assert_int_equal(thoth_pm_uclamp_set(0, 0, 1024), THOTH_E_IO);
	assert_int_equal(thoth_pm_uclamp_set(0, 900, 100), THOTH_E_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_x86_laptop_reads_intel_pstate_with_epp),
		cmocka_unit_test(test_epp_and_limits_are_written_and_bad_values_refused),
		cmocka_unit_test(test_arm64_energy_model_shows_the_inefficient_lowest_opp),
		cmocka_unit_test(test_setspeed_writes_only_inside_the_limits),
		cmocka_unit_test(test_nvme_apst_table_is_read_in_mw_and_us),
		cmocka_unit_test(test_vm_tree_has_no_cpufreq_and_no_idle_driver),
		cmocka_unit_test(test_runtime_pm_control_and_autosuspend_are_written),
		cmocka_unit_test(test_uclamp_is_detected_not_assumed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
