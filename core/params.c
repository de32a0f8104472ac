/* SPDX-License-Identifier: MIT */
#include "params.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wccl/errors.h>
#include <wccl/params.h>

#include "log.h"

struct param_def {
	const char *env;
	int is_int;
	int64_t int_default;
	const char *str_default;
	const char *description;
};

static const struct param_def defs[WCCL_PARAM_COUNT_] = {
#define WCCL_PARAM_DEF_INT(id, def, desc) \
	[WCCL_PARAM_##id] = {"WCCL_" #id, 1, def, #def, desc},
#define WCCL_PARAM_DEF_STR(id, def, desc) \
	[WCCL_PARAM_##id] = {"WCCL_" #id, 0, 0, def, desc},
    WCCL_PARAM_LIST(WCCL_PARAM_DEF_INT, WCCL_PARAM_DEF_STR)
#undef WCCL_PARAM_DEF_INT
#undef WCCL_PARAM_DEF_STR
};

static struct {
	pthread_mutex_t lock;
	int loaded;
	int64_t ints[WCCL_PARAM_COUNT_];
	const char *strs[WCCL_PARAM_COUNT_];
	int from_env[WCCL_PARAM_COUNT_];
	char text[WCCL_PARAM_COUNT_][24];
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

int wccl_parse_size(const char *s, uint64_t *out)
{
	if (!s)
		return WCCL_EINVAL;
	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return WCCL_EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno == ERANGE)
		return WCCL_ERANGE;
	unsigned shift = 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return WCCL_EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return WCCL_ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static void load_locked(void)
{
	for (int i = 0; i < WCCL_PARAM_COUNT_; i++) {
		const struct param_def *d = &defs[i];
		const char *env = getenv(d->env);
		g.from_env[i] = 0;
		if (!d->is_int) {
			g.strs[i] = env ? env : d->str_default;
			g.from_env[i] = env != NULL;
			continue;
		}
		g.ints[i] = d->int_default;
		if (env) {
			uint64_t v;
			if (wccl_parse_size(env, &v) == 0 && v <= INT64_MAX) {
				g.ints[i] = (int64_t)v;
				g.from_env[i] = 1;
			} else {
				/* Plain stderr: the logger reads params too. */
				fprintf(stderr,
					"wccl: WARN %s='%s' is not a "
					"non-negative integer; using %" PRId64
					"\n",
					d->env, env, d->int_default);
			}
		}
		snprintf(g.text[i], sizeof(g.text[i]), "%" PRId64, g.ints[i]);
		g.strs[i] = g.text[i];
	}
	__atomic_store_n(&g.loaded, 1, __ATOMIC_RELEASE);
}

static void ensure_loaded(void)
{
	if (__atomic_load_n(&g.loaded, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&g.lock);
	if (!g.loaded)
		load_locked();
	pthread_mutex_unlock(&g.lock);
}

void wccl_param_reload(void)
{
	pthread_mutex_lock(&g.lock);
	load_locked();
	pthread_mutex_unlock(&g.lock);
	wccl_log_reload();
}

int64_t wccl_param_int(enum wccl_param id)
{
	ensure_loaded();
	return g.ints[id];
}

const char *wccl_param_str(enum wccl_param id)
{
	ensure_loaded();
	return g.strs[id];
}

int wccl_param_count(void)
{
	return WCCL_PARAM_COUNT_;
}

int wccl_param_get(int index, struct wccl_param_info *info)
{
	if (index < 0 || index >= WCCL_PARAM_COUNT_ || !info)
		return WCCL_EINVAL;
	ensure_loaded();
	info->name = defs[index].env;
	info->value = g.strs[index];
	info->default_value = defs[index].str_default;
	info->description = defs[index].description;
	info->from_env = g.from_env[index];
	return 0;
}
