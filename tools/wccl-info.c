/* SPDX-License-Identifier: MIT */
/*
 * wccl-info: what this libwccl can do here — providers (and why one is
 * unavailable), their devices, and every tunable with its current value.
 */
#include <stdio.h>
#include <string.h>

#include <wccl/wccl.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: wccl-info [--providers] [--params] [--markdown]\n"
		"  --providers  providers compiled in, availability, devices\n"
		"  --params     every WCCL_* tunable with current value\n"
		"  --markdown   print the tunables as a Markdown table\n"
		"With no option, prints both lists.\n");
}

static void print_caps(unsigned caps)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
	    {WCCL_CAP_SEND_RECV, "send/recv"},
	    {WCCL_CAP_WRITE, "write"},
	    {WCCL_CAP_WRITE_IMM, "write-imm"},
	    {WCCL_CAP_ZCOPY_TX, "zcopy-tx"},
	    {WCCL_CAP_ZCOPY_RX, "zcopy-rx"},
	    {WCCL_CAP_SAME_HOST, "same-host"},
	    {WCCL_CAP_REMOTE_HOST, "remote-host"},
	};
	const char *sep = "";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (caps & names[i].bit) {
			printf("%s%s", sep, names[i].name);
			sep = ",";
		}
}

static void print_providers(void)
{
	printf("Providers (highest priority first):\n");
	for (int i = 0; i < wccl_provider_count(); i++) {
		struct wccl_provider_info info;
		if (wccl_provider_info(i, &info))
			continue;
		printf("  %-6s prio %3d  %s\n", info.name, info.priority,
		       info.available ? "UNAVAILABLE" : "available");
		printf("         %s\n         caps: ", info.description);
		print_caps(info.caps);
		printf("\n");
		if (info.available) {
			printf("         why: %s (%s)\n",
			       wccl_strerror(info.available),
			       wccl_err_name(info.available));
			continue;
		}
		char buf[4096];
		if (wccl_provider_describe(info.name, buf, sizeof(buf)) == 0 &&
		    buf[0]) {
			/* Indent every line of the provider's text. */
			for (char *line = strtok(buf, "\n"); line;
			     line = strtok(NULL, "\n"))
				printf("         %s\n", line);
		}
	}
}

static void print_params(int markdown)
{
	if (markdown) {
		printf("| variable | default | description |\n"
		       "| --- | --- | --- |\n");
	} else {
		printf("Tunables (environment; * = set):\n");
	}
	for (int i = 0; i < wccl_param_count(); i++) {
		struct wccl_param_info p;
		if (wccl_param_get(i, &p))
			continue;
		if (markdown)
			printf("| `%s` | `%s` | %s |\n", p.name,
			       p.default_value, p.description);
		else
			printf("  %c %-26s = %-10s %s\n",
			       p.from_env ? '*' : ' ', p.name, p.value,
			       p.description);
	}
}

int main(int argc, char **argv)
{
	int providers = 0, params = 0, markdown = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--providers"))
			providers = 1;
		else if (!strcmp(argv[i], "--params"))
			params = 1;
		else if (!strcmp(argv[i], "--markdown"))
			params = markdown = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "wccl-info: unknown option '%s'\n",
				argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!providers && !params)
		providers = params = 1;
	printf("wccl %d.%d.%d\n", WCCL_VERSION_MAJOR, WCCL_VERSION_MINOR,
	       WCCL_VERSION_PATCH);
	if (providers)
		print_providers();
	if (params)
		print_params(markdown);
	return 0;
}
