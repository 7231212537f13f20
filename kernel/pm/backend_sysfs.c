/*
 * backend_sysfs.c - Linux runtime PM, cpuidle, cpufreq and NVMe APST tables
 * read (and the writable knobs written) through sysfs under
 * $THOTH_SYSFS_ROOT (backend.h).  One small reader per file; an absent file
 * is "not there", never a guess.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "thoth/error.h"

/* Read the first line of ROOT+PATH into OUT (newline stripped). */
static int read_line(const char *path, char *out, size_t cap)
{
	char full[768];
	if (thoth_pm_path(full, sizeof full, path))
		return THOTH_E_INVAL;
	int fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? THOTH_E_NOT_FOUND : THOTH_E_IO;
	ssize_t n = read(fd, out, cap - 1);
	close(fd);
	if (n < 0)
		return THOTH_E_IO;
	out[n] = 0;
	out[strcspn(out, "\n")] = 0;
	return 0;
}

static int read_u64(const char *path, uint64_t *v)
{
	char buf[64], *end;
	int r = read_line(path, buf, sizeof buf);
	if (r)
		return r;
	errno = 0;
	unsigned long long x = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return THOTH_E_INVAL;
	*v = x;
	return 0;
}

static int write_str(const char *path, const char *value)
{
	char full[768];
	if (thoth_pm_path(full, sizeof full, path))
		return THOTH_E_INVAL;
	int fd = open(full, O_WRONLY | O_CLOEXEC | O_TRUNC);
	if (fd < 0)
		return errno == ENOENT ? THOTH_E_NOT_FOUND : errno == EACCES ? THOTH_E_PERM : THOTH_E_IO;
	size_t len = strlen(value);
	ssize_t n = write(fd, value, len);
	close(fd);
	return n == (ssize_t)len ? 0 : THOTH_E_IO;
}

/* OUT = A "/" MID "/" B (MID may be NULL: A "/" B). */
static int join(char *out, size_t cap, const char *a, const char *mid, const char *b)
{
	int n = mid ? snprintf(out, cap, "%s/%s/%s", a, mid, b) : snprintf(out, cap, "%s/%s", a, b);
	return n < 0 || (size_t)n >= cap ? THOTH_E_INVAL : 0;
}

/* ---- runtime PM ---------------------------------------------------------------- */

int thoth_pm_runtime_read(const char *device, thoth_pm_runtime_state_t *st)
{
	char p[512];
	memset(st, 0, sizeof *st);
	if (join(p, sizeof p, device, "power", "runtime_status"))
		return THOTH_E_INVAL;
	int r = read_line(p, st->status, sizeof st->status);
	if (r)
		return r;
	join(p, sizeof p, device, "power", "control");
	read_line(p, st->control, sizeof st->control);
	uint64_t v;
	st->autosuspend_delay_ms = -1;
	char buf[32];
	join(p, sizeof p, device, "power", "autosuspend_delay_ms");
	if (!read_line(p, buf, sizeof buf))
		st->autosuspend_delay_ms = strtoll(buf, NULL, 10);
	join(p, sizeof p, device, "power", "runtime_active_time");
	if (!read_u64(p, &v))
		st->active_ms = v;
	join(p, sizeof p, device, "power", "runtime_suspended_time");
	if (!read_u64(p, &v))
		st->suspended_ms = v;
	return 0;
}

int thoth_pm_runtime_set_control(const char *device, const char *control)
{
	if (strcmp(control, "on") && strcmp(control, "auto"))
		return THOTH_E_INVAL;
	char p[512];
	if (join(p, sizeof p, device, "power", "control"))
		return THOTH_E_INVAL;
	return write_str(p, control);
}

int thoth_pm_runtime_set_autosuspend(const char *device, int64_t delay_ms)
{
	char p[512], v[32];
	if (delay_ms < -1 || delay_ms > 3600000 || join(p, sizeof p, device, "power", "autosuspend_delay_ms"))
		return THOTH_E_INVAL;
	snprintf(v, sizeof v, "%lld", (long long)delay_ms);
	return write_str(p, v);
}

static void scan_dir(const char *dir, int depth, char (*paths)[256], uint32_t max, uint32_t *n)
{
	char full[768];
	if (depth > 6 || *n >= max || thoth_pm_path(full, sizeof full, dir))
		return;
	DIR *d = opendir(full);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) && *n < max) {
		if (e->d_name[0] == '.' || e->d_type != DT_DIR || !strcmp(e->d_name, "power") ||
		    !strcmp(e->d_name, "subsystem") || !strcmp(e->d_name, "driver"))
			continue;
		char sub[512];
		if (join(sub, sizeof sub, dir, NULL, e->d_name) || strlen(sub) >= 256)
			continue;
		thoth_pm_runtime_state_t st;
		if (!thoth_pm_runtime_read(sub, &st) &&
		    (!strcmp(st.status, "active") || !strcmp(st.status, "suspended")))
			memcpy(paths[(*n)++], sub, strlen(sub) + 1);   /* < 256: checked above */
		scan_dir(sub, depth + 1, paths, max, n);
	}
	closedir(d);
}

int thoth_pm_runtime_scan(char (*paths)[256], uint32_t max, uint32_t *n)
{
	*n = 0;
	scan_dir("/sys/devices", 0, paths, max, n);
	return 0;
}

/* ---- cpuidle -------------------------------------------------------------------- */

int thoth_pm_cpuidle_read(uint32_t cpu, thoth_pm_cpuidle_t *out)
{
	memset(out, 0, sizeof *out);
	int r = read_line("/sys/devices/system/cpu/cpuidle/current_driver", out->driver, sizeof out->driver);
	if (r)
		return r;
	read_line("/sys/devices/system/cpu/cpuidle/current_governor", out->governor, sizeof out->governor);
	for (uint32_t s = 0; s < THOTH_PM_MAX_IDLE_STATES; s++) {
		char p[160];
		thoth_pm_idle_state_t *st = &out->states[s];
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/name", cpu, s);
		if (read_line(p, st->name, sizeof st->name))
			break;
		uint64_t v = 0;
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/latency", cpu, s);
		read_u64(p, &st->latency_us);
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/residency", cpu, s);
		read_u64(p, &st->residency_us);
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/usage", cpu, s);
		read_u64(p, &st->usage);
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/time", cpu, s);
		read_u64(p, &st->time_us);
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/disable", cpu, s);
		if (!read_u64(p, &v))
			st->disabled = v != 0;
		out->n_states++;
	}
	return 0;
}

/* ---- cpufreq -------------------------------------------------------------------- */

static void cpufreq_u32(uint32_t cpu, const char *file, uint32_t *v)
{
	char p[160];
	uint64_t x;
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/%s", cpu, file);
	if (!read_u64(p, &x))
		*v = (uint32_t)x;
}

static uint32_t parse_list(const char *s, uint32_t *v, uint32_t max)
{
	uint32_t n = 0;
	char *end;
	while (*s && n < max) {
		unsigned long x = strtoul(s, &end, 10);
		if (end == s)
			break;
		v[n++] = (uint32_t)x;
		s = end;
	}
	return n;
}

int thoth_pm_cpufreq_read(uint32_t cpu, thoth_pm_cpufreq_t *out)
{
	memset(out, 0, sizeof *out);
	char p[200], buf[1024];
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/scaling_driver", cpu);
	if (read_line(p, out->driver, sizeof out->driver))
		return 0;               /* no cpufreq driver: present stays false */
	out->present = true;
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/scaling_governor", cpu);
	read_line(p, out->governor, sizeof out->governor);
	cpufreq_u32(cpu, "scaling_cur_freq", &out->cur_khz);
	cpufreq_u32(cpu, "scaling_min_freq", &out->min_khz);
	cpufreq_u32(cpu, "scaling_max_freq", &out->max_khz);
	cpufreq_u32(cpu, "cpuinfo_min_freq", &out->hw_min_khz);
	cpufreq_u32(cpu, "cpuinfo_max_freq", &out->hw_max_khz);
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/scaling_available_frequencies", cpu);
	if (!read_line(p, buf, sizeof buf))
		out->n_opps = parse_list(buf, out->opp_khz, THOTH_PM_MAX_OPPS);
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/energy_performance_preference", cpu);
	read_line(p, out->epp, sizeof out->epp);
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/energy_performance_available_preferences", cpu);
	read_line(p, out->epp_available, sizeof out->epp_available);
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/scaling_setspeed", cpu);
	out->has_setspeed = !read_line(p, buf, sizeof buf) && strcmp(buf, "<unsupported>") != 0;
	uint64_t cap;
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpu_capacity", cpu);
	if (!read_u64(p, &cap))
		out->capacity = (uint32_t)cap;
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/related_cpus", cpu);
	if (!read_line(p, buf, sizeof buf))
		out->n_related = parse_list(buf, out->related, THOTH_PM_MAX_DOMAIN_CPUS);
	if (!out->n_related) {
		out->related[0] = cpu;
		out->n_related = 1;
	}
	/* The energy model: one directory per performance state, named ps:<kHz>. */
	char dir[200], full[768];
	snprintf(dir, sizeof dir, "/sys/kernel/debug/energy_model/cpu%u", cpu);
	if (thoth_pm_path(full, sizeof full, dir))
		return 0;
	DIR *d = opendir(full);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && out->n_em < THOTH_PM_MAX_OPPS) {
		if (strncmp(e->d_name, "ps:", 3))
			continue;
		uint64_t f = 0, pw = 0, cost = 0;
		char ps[512];
		if (join(ps, sizeof ps, dir, e->d_name, "frequency") || read_u64(ps, &f))
			continue;
		if (!join(ps, sizeof ps, dir, e->d_name, "power"))
			read_u64(ps, &pw);
		if (!join(ps, sizeof ps, dir, e->d_name, "cost"))
			read_u64(ps, &cost);
		/* insertion sort by frequency: readdir order is arbitrary */
		uint32_t i = out->n_em++;
		while (i && out->em_khz[i - 1] > f) {
			out->em_khz[i] = out->em_khz[i - 1];
			out->em_power_mw[i] = out->em_power_mw[i - 1];
			out->em_cost[i] = out->em_cost[i - 1];
			i--;
		}
		out->em_khz[i] = (uint32_t)f;
		out->em_power_mw[i] = (uint32_t)(pw / 1000);   /* the kernel reports uW */
		out->em_cost[i] = (uint32_t)cost;
	}
	closedir(d);
	return 0;
}

static int cpufreq_write(uint32_t cpu, const char *file, const char *value)
{
	char p[200];
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/%s", cpu, file);
	return write_str(p, value);
}

int thoth_pm_cpufreq_set_limits(uint32_t cpu, uint32_t min_khz, uint32_t max_khz)
{
	thoth_pm_cpufreq_t f;
	thoth_pm_cpufreq_read(cpu, &f);
	if (!f.present)
		return THOTH_E_NOT_FOUND;
	if (min_khz > max_khz || min_khz < f.hw_min_khz || max_khz > f.hw_max_khz)
		return THOTH_E_INVAL;
	char v[16];
	/* Raise max before min and lower min before max, so min <= max holds
	 * after every single write (the kernel refuses otherwise). */
	snprintf(v, sizeof v, "%u", max_khz);
	int r = max_khz >= f.max_khz ? cpufreq_write(cpu, "scaling_max_freq", v) : 0;
	snprintf(v, sizeof v, "%u", min_khz);
	if (!r)
		r = cpufreq_write(cpu, "scaling_min_freq", v);
	snprintf(v, sizeof v, "%u", max_khz);
	if (!r && max_khz < f.max_khz)
		r = cpufreq_write(cpu, "scaling_max_freq", v);
	return r;
}

int thoth_pm_cpufreq_set_speed(uint32_t cpu, uint32_t khz)
{
	thoth_pm_cpufreq_t f;
	thoth_pm_cpufreq_read(cpu, &f);
	if (!f.present || !f.has_setspeed)
		return THOTH_E_NOT_FOUND;       /* only under the userspace governor */
	if (khz < f.min_khz || khz > f.max_khz)
		return THOTH_E_INVAL;
	char v[16];
	snprintf(v, sizeof v, "%u", khz);
	return cpufreq_write(cpu, "scaling_setspeed", v);
}

int thoth_pm_cpufreq_set_epp(uint32_t cpu, const char *epp)
{
	thoth_pm_cpufreq_t f;
	thoth_pm_cpufreq_read(cpu, &f);
	if (!f.epp[0])
		return THOTH_E_NOT_FOUND;
	/* Only a preference the driver lists, matched as a whole word. */
	size_t n = strlen(epp);
	const char *s = f.epp_available;
	bool ok = false;
	while (n && (s = strstr(s, epp))) {
		bool start = s == f.epp_available || s[-1] == ' ';
		bool end = s[n] == 0 || s[n] == ' ';
		if (start && end) {
			ok = true;
			break;
		}
		s += n;
	}
	if (!ok)
		return THOTH_E_INVAL;
	return cpufreq_write(cpu, "energy_performance_preference", epp);
}

/* ---- NVMe APST ------------------------------------------------------------------ */

/*
 * The power-state descriptors come from Identify Controller (an admin
 * command, root only), so the backend reads them as `nvme id-ctrl -H`
 * records them, one line per state in a file beside the controller:
 *   /sys/class/nvme/<name>/device/thoth_power_states:
 *   "ps <n> mp:<W>W <operational|non-operational> enlat:<us> exlat:<us>"
 * and the latency tolerance APST uses from the nvme_core parameter.
 */
int thoth_pm_nvme_read(const char *name, thoth_pm_nvme_ps_t *ps, uint32_t max, uint32_t *n,
		       int64_t *apst_latency_tolerance_us)
{
	char p[300], full[768];
	*n = 0;
	if (strchr(name, '/') || join(p, sizeof p, "/sys/class/nvme", name, "device/thoth_power_states") ||
	    thoth_pm_path(full, sizeof full, p))
		return THOTH_E_INVAL;
	FILE *f = fopen(full, "re");
	if (!f)
		return errno == ENOENT ? THOTH_E_NOT_FOUND : THOTH_E_IO;
	char line[256];
	while (fgets(line, sizeof line, f) && *n < max) {
		unsigned idx, en, ex;
		double watts;
		char op[32];
		if (sscanf(line, "ps %u mp:%lfW %31s enlat:%u exlat:%u", &idx, &watts, op, &en, &ex) != 5)
			continue;
		ps[*n] = (thoth_pm_nvme_ps_t){
			.max_power_mw = watts * 1000.0, .entry_latency_us = en, .exit_latency_us = ex,
			.non_operational = !strcmp(op, "non-operational"),
		};
		(*n)++;
	}
	fclose(f);
	char buf[32];
	*apst_latency_tolerance_us = -1;
	if (!read_line("/sys/module/nvme_core/parameters/default_ps_max_latency_us", buf, sizeof buf))
		*apst_latency_tolerance_us = strtoll(buf, NULL, 10);
	return *n ? 0 : THOTH_E_INVAL;
}
