/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "params.h"

static const struct {
	const char *name;
	unsigned bit;
} subsys_names[] = {
    {"INIT", WCCL_SUB_INIT},   {"TRANSPORT", WCCL_SUB_TRANSPORT},
    {"URING", WCCL_SUB_URING}, {"SHM", WCCL_SUB_SHM},
    {"VERBS", WCCL_SUB_VERBS}, {"DPDK", WCCL_SUB_DPDK},
    {"COLL", WCCL_SUB_COLL},   {"BOOTSTRAP", WCCL_SUB_BOOTSTRAP},
    {"TUNER", WCCL_SUB_TUNER}, {"PERF", WCCL_SUB_PERF},
    {"ALL", WCCL_SUB_ALL},
};

static const char *level_names[] = {"NONE", "WARN", "INFO", "TRACE"};

static struct {
	pthread_mutex_t lock;
	int loaded;
	int level;
	unsigned mask;
	FILE *out;
	char host[64];
} g_log = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned subsys_bit(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(subsys_names) / sizeof(subsys_names[0]);
	     i++)
		if (strlen(subsys_names[i].name) == n &&
		    strncasecmp(subsys_names[i].name, name, n) == 0)
			return subsys_names[i].bit;
	return 0;
}

/* "INIT,URING" selects; a leading ^ ("^SHM,COLL") selects all but those. */
static unsigned parse_subsys(const char *spec)
{
	if (!spec || !*spec)
		return WCCL_SUB_ALL;
	int invert = spec[0] == '^';
	unsigned mask = 0;
	const char *p = spec + invert;
	while (*p) {
		size_t n = strcspn(p, ",");
		unsigned bit = subsys_bit(p, n);
		if (!bit && n)
			fprintf(stderr,
				"wccl: WCCL_DEBUG_SUBSYS: unknown subsystem "
				"'%.*s' ignored\n",
				(int)n, p);
		mask |= bit;
		p += n + (p[n] == ',');
	}
	return invert ? ~mask : mask;
}

static int parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	fprintf(stderr,
		"wccl: WCCL_DEBUG='%s' is not NONE, WARN, INFO or TRACE; "
		"using WARN\n",
		s);
	return WCCL_LOG_WARN;
}

/* Expand %h (host) and %p (pid) in WCCL_DEBUG_FILE. */
static FILE *open_log_file(const char *pattern)
{
	char path[512];
	size_t o = 0;
	for (const char *p = pattern; *p && o + 1 < sizeof(path); p++) {
		int n = 0;
		if (p[0] == '%' && p[1] == 'h')
			n = snprintf(path + o, sizeof(path) - o, "%s",
				     g_log.host);
		else if (p[0] == '%' && p[1] == 'p')
			n = snprintf(path + o, sizeof(path) - o, "%d",
				     (int)getpid());
		if (n > 0) {
			o += (size_t)n;
			p++;
			continue;
		}
		path[o++] = *p;
	}
	if (o >= sizeof(path))
		o = sizeof(path) - 1;
	path[o] = '\0';
	FILE *f = fopen(path, "a");
	if (!f) {
		fprintf(stderr, "wccl: cannot open WCCL_DEBUG_FILE '%s': %m\n",
			path);
		return stderr;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

static void load_locked(void)
{
	gethostname(g_log.host, sizeof(g_log.host) - 1);
	g_log.level = parse_level(wccl_param_str(WCCL_PARAM_DEBUG));
	g_log.mask = parse_subsys(wccl_param_str(WCCL_PARAM_DEBUG_SUBSYS));
	const char *file = wccl_param_str(WCCL_PARAM_DEBUG_FILE);
	if (g_log.out && g_log.out != stderr)
		fclose(g_log.out);
	g_log.out = *file ? open_log_file(file) : stderr;
	__atomic_store_n(&g_log.loaded, 1, __ATOMIC_RELEASE);
}

void wccl_log_reload(void)
{
	pthread_mutex_lock(&g_log.lock);
	load_locked();
	pthread_mutex_unlock(&g_log.lock);
}

bool wccl_log_enabled(enum wccl_log_level level, unsigned subsys)
{
	if (!__atomic_load_n(&g_log.loaded, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&g_log.lock);
		if (!g_log.loaded)
			load_locked();
		pthread_mutex_unlock(&g_log.lock);
	}
	return (int)level <= g_log.level && (subsys & g_log.mask);
}

static const char *subsys_name(unsigned subsys)
{
	for (size_t i = 0; i < sizeof(subsys_names) / sizeof(subsys_names[0]);
	     i++)
		if (subsys_names[i].bit == subsys)
			return subsys_names[i].name;
	return "MISC";
}

void wccl_log(enum wccl_log_level level, unsigned subsys, const char *file,
	      int line, const char *fmt, ...)
{
	if (!wccl_log_enabled(level, subsys))
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	/* One fprintf per line keeps lines from several threads whole. */
	fprintf(g_log.out, "%s:%d:%ld %ld.%06ld wccl %s %s %s:%d %s\n",
		g_log.host, (int)getpid(), (long)syscall(SYS_gettid),
		(long)ts.tv_sec, ts.tv_nsec / 1000, level_names[level],
		subsys_name(subsys), base, line, msg);
}
