/*
 * element.c - validation of power element declarations (element.h).
 * Every refusal names the field at fault, in the declaration's own terms.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "element.h"
#include "thoth/error.h"
#include "backend.h"

/* Every refusal of a declaration is THOTH_E_INVAL, with its reason. */
#define refuse(why, cap, ...) thoth__why_err(why, cap, THOTH_E_INVAL, __VA_ARGS__)

int thoth_pm_name_valid(const char *name)
{
	size_t n = strnlen(name, THOTH_PM_NAME_MAX + 1);
	if (n == 0 || n > THOTH_PM_NAME_MAX || name[0] < 'a' || name[0] > 'z')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

static int level_name_valid(const char *name)
{
	size_t n = strnlen(name, THOTH_PM_LEVEL_NAME_MAX + 1);
	if (n == 0 || n > THOTH_PM_LEVEL_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
			return 0;
	return 1;
}

static int check_latency(const char *field, uint32_t i, int64_t v, char *why, size_t cap)
{
	if (v < 0)
		return refuse(why, cap, "levels[%u].%s: %lld is negative", i, field, (long long)v);
	if (v > THOTH_PM_MAX_LATENCY_US)
		return refuse(why, cap, "levels[%u].%s: %lld us is absurd (limit %d us)", i, field,
			      (long long)v, THOTH_PM_MAX_LATENCY_US);
	return 0;
}

int thoth_pm_element_validate(const thoth_pm_element_decl_t *d, char *why, size_t cap)
{
	if (!thoth_pm_name_valid(d->name))
		return refuse(why, cap, "name: \"%.*s\" is not 1..%d chars of [a-z0-9_.-] starting with a letter",
			      THOTH_PM_NAME_MAX, d->name, THOTH_PM_NAME_MAX);
	if (d->n_levels < 2 || d->n_levels > THOTH_PM_MAX_LEVELS)
		return refuse(why, cap, "n_levels: %u is outside 2..%d", d->n_levels, THOTH_PM_MAX_LEVELS);
	for (uint32_t i = 0; i < d->n_levels; i++) {
		const thoth_pm_level_decl_t *l = &d->levels[i];
		if (!level_name_valid(l->name))
			return refuse(why, cap, "levels[%u].name: must be 1..%d printable characters", i,
				      THOTH_PM_LEVEL_NAME_MAX);
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(d->levels[j].name, l->name))
				return refuse(why, cap, "levels[%u].name: \"%s\" repeats levels[%u]", i,
					      l->name, j);
		if (!isfinite(l->power_mw) || l->power_mw < 0)
			return refuse(why, cap, "levels[%u].power_mw: %g is not a power", i, l->power_mw);
		if (l->power_mw > THOTH_PM_MAX_POWER_MW)
			return refuse(why, cap, "levels[%u].power_mw: %g mW is absurd (limit %g mW)", i,
				      l->power_mw, THOTH_PM_MAX_POWER_MW);
		int r = check_latency("entry_latency_us", i, l->entry_latency_us, why, cap);
		if (!r)
			r = check_latency("exit_latency_us", i, l->exit_latency_us, why, cap);
		if (r)
			return r;
		if (i && l->power_mw < d->levels[i - 1].power_mw)
			return refuse(why, cap, "levels[%u].power_mw: %g is below levels[%u]'s %g (levels are ordered, 0 deepest)",
				      i, l->power_mw, i - 1, d->levels[i - 1].power_mw);
		if (i && l->exit_latency_us > d->levels[i - 1].exit_latency_us)
			return refuse(why, cap, "levels[%u].exit_latency_us: %lld is above levels[%u]'s %lld (a higher level wakes faster)",
				      i, (long long)l->exit_latency_us, i - 1,
				      (long long)d->levels[i - 1].exit_latency_us);
	}
	if (d->levels[d->n_levels - 1].exit_latency_us != 0)
		return refuse(why, cap, "levels[%u].exit_latency_us: the top level is the working one; its exit latency must be 0",
			      d->n_levels - 1);
	if (d->initial_level >= d->n_levels)
		return refuse(why, cap, "initial_level: %u is not a level (0..%u)", d->initial_level,
			      d->n_levels - 1);
	if (d->n_deps > THOTH_PM_MAX_DEPS)
		return refuse(why, cap, "n_deps: %u is above %d", d->n_deps, THOTH_PM_MAX_DEPS);
	for (uint32_t i = 0; i < d->n_deps; i++) {
		const thoth_pm_dep_decl_t *dep = &d->deps[i];
		if (dep->level == 0 || dep->level >= d->n_levels)
			return refuse(why, cap, "deps[%u].level: %u is not a level above 0 (1..%u)", i,
				      dep->level, d->n_levels - 1);
		if (!thoth_pm_name_valid(dep->required))
			return refuse(why, cap, "deps[%u].required: \"%.*s\" is not an element name", i,
				      THOTH_PM_NAME_MAX, dep->required);
		if (!strcmp(dep->required, d->name))
			return refuse(why, cap, "deps[%u].required: \"%s\" depends on itself (a cycle)", i,
				      d->name);
		if (dep->kind != THOTH_PM_ASSERTIVE && dep->kind != THOTH_PM_OPPORTUNISTIC)
			return refuse(why, cap, "deps[%u].kind: %d is neither ASSERTIVE nor OPPORTUNISTIC", i,
				      (int)dep->kind);
		/* required_level is checked by the broker, which knows the other element. */
	}
	return 0;
}
