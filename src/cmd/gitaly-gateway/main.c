/*
 * gitaly-gateway: command line. `serve` runs the smart HTTP front door,
 * `ssh-command <user>` is the SSH forced command, `create-repository <path>`
 * creates a repository through Gitaly. The configuration file comes from
 * --config/-c or $GITALY_GATEWAY_CONFIG (docs/gateway.md).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "gateway/gateway.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: gitaly-gateway [--config FILE] serve\n"
		   "       gitaly-gateway [--config FILE] ssh-command <user>\n"
		   "       gitaly-gateway [--config FILE] create-repository <[storage/]path>\n"
		   "       gitaly-gateway --version\n"
		   "The configuration file defaults to $" GATEWAY_CONFIG_ENV ".\n");
}

int main(int argc, char **argv)
{
	struct gateway_config *cfg = NULL;
	struct error err = ERROR_INIT;
	const char *config = getenv(GATEWAY_CONFIG_ENV);
	enum log_level level;
	sigset_t set;
	int i = 1, code = 2;

	if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
		printf("gitaly-gateway, version %s\n", GITALY_VERSION);
		return 0;
	}
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	while (i < argc && argv[i][0] == '-') {
		if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) && i + 1 < argc) {
			config = argv[i + 1];
			i += 2;
		} else if (!strncmp(argv[i], "--config=", 9)) {
			config = argv[i] + 9;
			i++;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc || !config || !*config) {
		usage(stderr);
		return 2;
	}
	/* every thread inherits this: the serve loop takes the signals with sigwait */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (!strcmp(argv[i], "serve")) {
		/* a shell's background job starts with SIGINT ignored, and an
		 * ignored signal never reaches sigwait */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	if (gateway_config_load(config, &cfg, &err) < 0) {
		fprintf(stderr, "gitaly-gateway: %s\n", err.message);
		goto out;
	}
	if (log_level_parse(cfg->log_level, &level) < 0)
		level = LOG_INFO;
	if (!strcmp(argv[i], "serve") && i + 1 == argc) {
		log_configure(LOG_FORMAT_TEXT, level, 2);
		code = gateway_http_serve(cfg, &err) < 0 ? 1 : 0;
		if (code)
			fprintf(stderr, "gitaly-gateway: %s\n", err.message);
	} else if (!strcmp(argv[i], "ssh-command") && i + 2 == argc) {
		/* stderr belongs to the git client: no log lines there */
		log_configure(LOG_FORMAT_TEXT, LOG_FATAL, 2);
		code = gateway_ssh_command(cfg, argv[i + 1]);
		fflush(stdout);
		_exit(code); /* threads may still block on stdin */
	} else if (!strcmp(argv[i], "create-repository") && i + 2 == argc) {
		log_configure(LOG_FORMAT_TEXT, level, 2);
		if (gateway_create_repository(cfg, argv[i + 1], &err) < 0) {
			fprintf(stderr, "gitaly-gateway: create %s: %s\n", argv[i + 1], err.message);
			code = 1;
		} else {
			code = 0;
		}
	} else {
		usage(stderr);
	}
out:
	error_release(&err);
	gateway_config_free(cfg);
	return code;
}
