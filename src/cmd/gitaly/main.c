/*
 * The gitaly binary: upstream's command line (`gitaly <config>`, `serve`,
 * `check`, `configuration validate`, `--version`) and the serve wiring:
 * config, logging, runtime directory, storages, git environment, locator,
 * services, metrics endpoint, listeners, then wait for SIGTERM/SIGINT.
 * Like upstream, a signal is an immediate (not graceful) stop and the
 * process exits 1 with "unclean Gitaly shutdown: received signal ...".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/metrics.h"
#include "cmd/gitaly/gitaly.h"
#include "config/config.h"
#include "limit/limit.h"
#include "git/command.h"
#include "git/locator.h"
#include "git/repo_cache.h"
#include "hook/install.h"
#include "net/backchannel.h"
#include "net/listener.h"
#include "net/tls.h"
#include "rpc/accesslog.h"
#include "rpc/server.h"
#include "service/service.h"

#define SHUTDOWN_GRACE_MS 200
#define SHUTDOWN_WATCHDOG_S 4

static void usage(FILE *out)
{
	fprintf(out,
		"NAME:\n"
		"   gitaly - a Git RPC service\n\n"
		"USAGE:\n"
		"   gitaly [global options] command [command options] [arguments...]\n\n"
		"VERSION:\n"
		"   %s\n\n"
		"COMMANDS:\n"
		"   serve          launch the server daemon\n"
		"   check          verify internal API is accessible\n"
		"   configuration  run configuration-related commands\n"
		"   help, h        Shows a list of commands or help for one command\n\n"
		"GLOBAL OPTIONS:\n"
		"   --help, -h     show help\n"
		"   --version, -v  print the version\n",
		GITALY_VERSION);
}

/* ---- runtime directory ------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void remove_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Removes gitaly-<pid> directories of processes that are gone (and gitaly-0). */
static void prune_runtime_dirs(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end;
		if (strncmp(de->d_name, "gitaly-", 7))
			continue;
		long pid = strtol(de->d_name + 7, &end, 10);
		if (*end || end == de->d_name + 7 || pid < 0)
			continue;
		if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
			continue;
		char path[PATH_MAX + 256];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		log_msg(LOG_INFO, "removing leftover runtime directory %s", path);
		remove_tree(path);
	}
	closedir(d);
}

/* Creates the per-process runtime directory; *out is malloc'd. */
static int setup_runtime_dir(const struct config *cfg, char **out, struct error *err)
{
	char path[PATH_MAX];

	*out = NULL;
	if (cfg->runtime_dir && *cfg->runtime_dir) {
		prune_runtime_dirs(cfg->runtime_dir);
		snprintf(path, sizeof(path), "%s/gitaly-%d", cfg->runtime_dir, (int)getpid());
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return error_set(err, STATUS_INTERNAL, "setup runtime directory: mkdir %s: %s",
					 path, strerror(errno));
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(path, sizeof(path), "%s/gitaly-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(path))
			return error_set(err, STATUS_INTERNAL, "setup runtime directory: %s",
					 strerror(errno));
	}
	char sockd[PATH_MAX + 16];
	snprintf(sockd, sizeof(sockd), "%s/sock.d", path);
	if (mkdir(sockd, 0700) < 0 && errno != EEXIST)
		return error_set(err, STATUS_INTERNAL, "setup runtime directory: mkdir %s: %s",
				 sockd, strerror(errno));
	*out = strdup(path);
	return 0;
}

/* ---- git ----------------------------------------------------------------- */

/* Absolute path of the git binary: [git] bin_path, else `git` on PATH. */
static int resolve_git(const struct config *cfg, char **out, struct error *err)
{
	*out = NULL;
	if (cfg->git.bin_path && *cfg->git.bin_path) {
		*out = realpath(cfg->git.bin_path, NULL);
		if (!*out)
			return error_set(err, STATUS_INVALID_ARGUMENT, "git: bin_path %s: %s",
					 cfg->git.bin_path, strerror(errno));
		return 0;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	const char *p = path;
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t len = colon ? (size_t)(colon - p) : strlen(p);
		char cand[PATH_MAX];
		if (len > 0 && len < sizeof(cand) - 5) {
			snprintf(cand, sizeof(cand), "%.*s/git", (int)len, p);
			if (access(cand, X_OK) == 0) {
				*out = realpath(cand, NULL);
				if (*out)
					return 0;
			}
		}
		p += len;
		if (*p == ':')
			p++;
	}
	return error_set(err, STATUS_NOT_FOUND, "git: executable \"git\" not found in $PATH");
}

/* ---- serve --------------------------------------------------------------- */

struct serve_state {
	struct config cfg;
	char *runtime_dir;
	char *git_bin;
	char **git_config;
	struct locator_storage *loc_storages;
	struct locator locator;
	struct service_deps deps;
	struct rpc_server *srv;
	struct listener_set *listeners;
	struct tls_server *tls;
	pthread_t cleaner;
	int cleaner_started;
	char *hooks_bin, *hooks_dir;
	char intern[PATH_MAX];
};

static int to_grpc(void *ctx, int fd, struct error *err)
{
	return rpc_server_add_fd(ctx, fd, err);
}

/* Every listener's connections go through the listen-mux first. */
static void on_conn(void *ctx, int fd, enum listener_type type, const char *peer)
{
	struct error err = ERROR_INIT;

	if (backchannel_serve(fd, peer, -1, to_grpc, ctx, &err) < 0) {
		log_msg(LOG_WARN, "dropping %s connection: %s", listener_type_name(type),
			err.message);
		error_release(&err);
	}
}

static void *tmp_cleaner_main(void *arg)
{
	struct serve_state *st = arg;
	for (;;) {
		sleep(3600);
		gitaly_clean_storages(&st->cfg);
	}
	return NULL;
}

static void log_listening(const char *type, const char *addr, const char *bound)
{
	json_t *f = json_object();
	json_object_set_new(f, "address", json_string(addr));
	if (bound && strcmp(bound, addr))
		json_object_set_new(f, "bound_address", json_string(bound));
	char msg[64];
	snprintf(msg, sizeof(msg), "listening at %s address", type);
	log_fields(LOG_INFO, f, msg);
}

static void configure_logging(const struct config *cfg)
{
	enum log_level level = LOG_INFO;
	enum log_format fmt = LOG_FORMAT_TEXT;
	if (cfg->logging.level && *cfg->logging.level &&
	    log_level_parse(cfg->logging.level, &level) < 0)
		level = LOG_INFO;
	if (cfg->logging.format && !strcmp(cfg->logging.format, "json"))
		fmt = LOG_FORMAT_JSON;
	log_configure(fmt, level, STDOUT_FILENO);
}

static int start_listeners(struct serve_state *st, struct error *err)
{
	const struct config *cfg = &st->cfg;
	char *bound = NULL;
	char intern[PATH_MAX];

	if (listener_set_new(on_conn, st->srv, &st->listeners, err) < 0)
		return -1;
	if (cfg->socket_path && *cfg->socket_path) {
		if (listener_add_unix(st->listeners, cfg->socket_path, err) < 0)
			return -1;
		log_listening("unix", cfg->socket_path, NULL);
	}
	snprintf(intern, sizeof(intern), "%s/sock.d/intern", st->runtime_dir);
	if (strlen(intern) >= 108)
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "setup runtime directory: your socket path is likely too long: %s",
				 intern);
	if (listener_add_unix(st->listeners, intern, err) < 0)
		return -1;
	log_listening("unix", intern, NULL);
	if (cfg->listen_addr && *cfg->listen_addr) {
		if (listener_add_tcp(st->listeners, cfg->listen_addr, &bound, err) < 0)
			return -1;
		log_listening("tcp", cfg->listen_addr, bound);
		free(bound);
		bound = NULL;
	}
	if (cfg->tls_listen_addr && *cfg->tls_listen_addr) {
		if (tls_server_new(cfg->tls.certificate_path, cfg->tls.key_path, cfg->tls.key,
				   &st->tls, err) < 0)
			return -1;
		if (listener_add_tls(st->listeners, cfg->tls_listen_addr, st->tls, &bound, err) < 0)
			return -1;
		log_listening("tls", cfg->tls_listen_addr, bound);
		free(bound);
		bound = NULL;
	}
	return listener_start(st->listeners, err);
}

static int setup_git(struct serve_state *st, struct error *err)
{
	const struct config *cfg = &st->cfg;
	struct git_exec_env env;

	if (resolve_git(cfg, &st->git_bin, err) < 0)
		return -1;
	st->git_config = calloc(cfg->git.n_config + 1, sizeof(char *));
	if (!st->git_config)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	for (size_t i = 0; i < cfg->git.n_config; i++) {
		size_t len = strlen(cfg->git.config[i].key) + strlen(cfg->git.config[i].value) + 2;
		st->git_config[i] = malloc(len);
		if (!st->git_config[i])
			return error_set(err, STATUS_INTERNAL, "out of memory");
		snprintf(st->git_config[i], len, "%s=%s", cfg->git.config[i].key,
			 cfg->git.config[i].value);
	}
	memset(&env, 0, sizeof(env));
	env.git_binary = st->git_bin;
	env.config = (const char *const *)st->git_config;
	env.n_config = cfg->git.n_config;
	git_exec_env_set(&env);
	repo_cache_configure((size_t)cfg->git.catfile_cache_size);
	return 0;
}

/*
 * The gitaly-hooks binary: <bin_dir>/gitaly-hooks, else the one beside this
 * gitaly (upstream always has it: it unpacks its own copy at startup). Git
 * silently skips a hook whose file is missing, which would let pushes past
 * every check, so a server without one refuses to start.
 */
static int find_hooks_binary(const struct config *cfg, char *out, size_t cap, struct error *err)
{
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (cfg->bin_dir && *cfg->bin_dir &&
	    (size_t)snprintf(out, cap, "%s/gitaly-hooks", cfg->bin_dir) < cap &&
	    access(out, X_OK) == 0)
		return 0;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return error_set(err, STATUS_INTERNAL, "resolve own binary: %s", strerror(errno));
	self[n] = 0;
	slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	if ((size_t)snprintf(out, cap, "%s/gitaly-hooks", self) < cap && access(out, X_OK) == 0) {
		if (cfg->bin_dir && *cfg->bin_dir)
			log_msg(LOG_WARN, "no gitaly-hooks in bin_dir %s, using %s", cfg->bin_dir, out);
		return 0;
	}
	return error_set(err, STATUS_FAILED_PRECONDITION,
			 "gitaly-hooks not found in bin_dir (%s) nor beside gitaly (%s): pushes would "
			 "run without hooks",
			 cfg->bin_dir && *cfg->bin_dir ? cfg->bin_dir : "unset", self);
}

/* Links gitaly-hooks into <runtime_dir>/hooks.d for core.hooksPath. */
static int setup_hooks(struct serve_state *st, struct error *err)
{
	char bin[PATH_MAX];

	if (find_hooks_binary(&st->cfg, bin, sizeof(bin), err) < 0)
		return -1;
	st->hooks_bin = strdup(bin);
	if (!st->hooks_bin)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	if (hook_install(st->runtime_dir, st->hooks_bin, &st->hooks_dir, err) < 0)
		return error_prefix(err, "install hooks");
	snprintf(st->intern, sizeof(st->intern), "%s/sock.d/intern", st->runtime_dir);
	st->deps.hooks_dir = st->hooks_dir;
	st->deps.gitaly_hooks_bin = st->hooks_bin;
	st->deps.runtime_dir = st->runtime_dir;
	st->deps.internal_socket = st->intern;
	return 0;
}

static int setup_server(struct serve_state *st, struct error *err)
{
	const struct config *cfg = &st->cfg;
	struct rpc_server_options opts;
	const struct rpc_service *svcs;
	size_t n_svcs = 0;

	st->loc_storages = calloc(cfg->n_storages + 1, sizeof(*st->loc_storages));
	if (!st->loc_storages)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	for (size_t i = 0; i < cfg->n_storages; i++) {
		st->loc_storages[i].name = cfg->storages[i].name;
		st->loc_storages[i].path = cfg->storages[i].path;
	}
	st->locator.storages = st->loc_storages;
	st->locator.n_storages = cfg->n_storages;
	st->deps.cfg = cfg;
	st->deps.locator = &st->locator;
	if (setup_hooks(st, err) < 0)
		return -1;

	memset(&opts, 0, sizeof(opts));
	opts.auth.token = cfg->auth.token;
	opts.auth.transitioning = cfg->auth.transitioning;
	opts.auth.previous_tokens = (const char *const *)cfg->auth.previous_tokens;
	opts.auth.n_previous_tokens = cfg->auth.n_previous_tokens;
	if (cfg->prometheus.n_grpc_latency_buckets)
		rpc_metrics_set_buckets(cfg->prometheus.grpc_latency_buckets,
					cfg->prometheus.n_grpc_latency_buckets);
	/* tests only: a short keepalive ping period (tests/integration/
	 * test_gateway_idle.py); upstream's 5 minutes otherwise */
	if (getenv("GITALY_TESTING_KEEPALIVE_TIME_MS"))
		opts.keepalive_time_ms = strtoll(getenv("GITALY_TESTING_KEEPALIVE_TIME_MS"), NULL, 10);
	if (rpc_server_new(&opts, &st->srv, err) < 0)
		return -1;
	svcs = services_all(&st->deps, &n_svcs);
	for (size_t i = 0; i < n_svcs; i++) {
		if (rpc_server_register(st->srv, &svcs[i], err) < 0)
			return -1;
		rpc_metrics_preregister(&svcs[i]);
	}
	if (limit_setup(cfg, err) < 0) /* [[concurrency]], [[rate_limiting]] */
		return -1;
	return rpc_server_start(st->srv, err);
}

/* Exits the process if shutdown hangs (a handler that ignores cancellation). */
static void *watchdog_main(void *arg)
{
	(void)arg;
	sleep(SHUTDOWN_WATCHDOG_S);
	_exit(1);
	return NULL;
}

static const char *signal_text(int sig)
{
	/* Go's os.Signal names, as upstream prints them. */
	switch (sig) {
	case SIGTERM:
		return "terminated";
	case SIGINT:
		return "interrupt";
	default:
		return strsignal(sig);
	}
}

static int serve(const char *config_path)
{
	struct serve_state st;
	struct error err = ERROR_INIT;
	sigset_t sigs;
	int sig = 0;
	int rc = 1;

	memset(&st, 0, sizeof(st));
	/* Signals are taken by sigwait below; every thread inherits the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (config_load_file(&st.cfg, config_path, &err) < 0) {
		fprintf(stderr, "load config: config_path \"%s\": %s\n", config_path, err.message);
		goto out;
	}
	configure_logging(&st.cfg);
	if (config_validate(&st.cfg, &err) < 0 || config_absolutize_dirs(&st.cfg, &err) < 0) {
		fprintf(stderr, "load config: config_path \"%s\": invalid config: %s\n", config_path,
			err.message);
		goto out;
	}
	if (st.cfg.auth.transitioning && st.cfg.auth.token && *st.cfg.auth.token)
		log_msg(LOG_WARN, "Authentication is enabled but not enforced because "
				  "transitioning=true. Gitaly will accept unauthenticated requests.");
	{
		json_t *f = json_object();
		json_object_set_new(f, "version", json_string(GITALY_VERSION));
		log_fields(LOG_INFO, f, "Starting Gitaly");
	}
	if (setup_runtime_dir(&st.cfg, &st.runtime_dir, &err) < 0)
		goto fail;
	if (setup_git(&st, &err) < 0)
		goto fail;
	if (gitaly_setup_storages(&st.cfg, &err) < 0)
		goto fail;
	if (setup_server(&st, &err) < 0)
		goto fail;
	if (st.cfg.prometheus_listen_addr && *st.cfg.prometheus_listen_addr) {
		if (gitaly_start_metrics(st.cfg.prometheus_listen_addr, &err) < 0)
			goto fail;
		json_t *f = json_object();
		json_object_set_new(f, "address", json_string(st.cfg.prometheus_listen_addr));
		log_fields(LOG_INFO, f, "starting prometheus listener");
	}
	if (start_listeners(&st, &err) < 0)
		goto fail;
	if (pthread_create(&st.cleaner, NULL, tmp_cleaner_main, &st) == 0) {
		pthread_detach(st.cleaner);
		st.cleaner_started = 1;
	}

	while (sigwait(&sigs, &sig) != 0)
		;
	{
		pthread_t wd;
		if (pthread_create(&wd, NULL, watchdog_main, NULL) == 0)
			pthread_detach(wd);
	}
	listener_stop(st.listeners);
	rpc_server_shutdown(st.srv, SHUTDOWN_GRACE_MS);
	fprintf(stderr, "unclean Gitaly shutdown: received signal \"%s\"\n", signal_text(sig));
	rc = 1;
	goto out;
fail:
	fprintf(stderr, "unclean Gitaly shutdown: %s\n", err.message);
	rc = 1;
out:
	listener_free(st.listeners);
	free(st.hooks_bin);
	free(st.hooks_dir);
	if (st.runtime_dir) {
		remove_tree(st.runtime_dir);
		free(st.runtime_dir);
	}
	/* The process is about to exit: the server, config and the rest go with it. */
	error_release(&err);
	return rc;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-version") || !strcmp(cmd, "-v")) {
		printf("Gitaly, version %s\n", GITALY_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help") ||
	    !strcmp(cmd, "h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "serve")) {
		if (argc != 3 || !*argv[2]) {
			usage(stderr);
			return 2;
		}
		return serve(argv[2]);
	}
	if (!strcmp(cmd, "check")) {
		if (argc != 3 || !*argv[2]) {
			usage(stderr);
			return 2;
		}
		return gitaly_check(argv[2]);
	}
	if (!strcmp(cmd, "configuration")) {
		if (argc == 3 && !strcmp(argv[2], "validate"))
			return gitaly_configuration_validate();
		usage(stderr);
		return 2;
	}
	if (argc != 2 || !*cmd || cmd[0] == '-') {
		usage(stderr);
		return 2;
	}
	return serve(cmd);
}
