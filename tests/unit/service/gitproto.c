/*
 * The shared git-transport module: the pkt-line scanner behind the
 * negotiation monitors (split input, special packets, invalid lengths,
 * deepen), git_config_options and git_protocol handling, the hook
 * environments (payload contents, pack-objects hook only with the cache on),
 * and receive-pack refusing to run without hooks, driven through the fake
 * call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_call.h"
#include "hook/install.h"
#include "hook/payload.h"
#include "service/gitproto.h"
#include "service/smarthttp.h"
#include "service/ssh.h"
#include "smarthttp.pb-c.h"
#include "ssh.pb-c.h"

static char tmp[] = "/tmp/gitproto-XXXXXX";
static char storage_path[256], repo_path[300];
static struct locator_storage storages[1];
static struct locator loc;
static struct config cfg;
static struct service_deps deps;
static Gitaly__Repository repo_msg = GITALY__REPOSITORY__INIT;

static int run_argv(const char *const *argv)
{
	int st = 0;
	pid_t pid = fork();
	if (pid == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	snprintf(storage_path, sizeof(storage_path), "%s/storage", tmp);
	snprintf(repo_path, sizeof(repo_path), "%s/repo.git", storage_path);
	const char *init[] = { "/usr/bin/git", "init", "--bare", "-q", repo_path, NULL };
	if (run_argv(init) != 0)
		return -1;
	storages[0].name = "default";
	storages[0].path = storage_path;
	loc.storages = storages;
	loc.n_storages = 1;
	deps.locator = &loc;
	deps.cfg = &cfg;
	repo_msg.storage_name = "default";
	repo_msg.relative_path = "repo.git";
	repo_msg.gl_project_path = "group/proj";
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	const char *rm[] = { "/bin/rm", "-rf", tmp, NULL };
	run_argv(rm);
	return 0;
}

static int feed_str(struct gitproto_pktscan *s, const char *data)
{
	return gitproto_pktscan_feed(s, (const uint8_t *)data, strlen(data));
}

static void test_pktscan_done_split(void **state)
{
	struct gitproto_pktscan s;
	const char *req = "0032want 0123456789012345678901234567890123456789\n0000"
			  "0009done\n";
	(void)state;

	/* byte by byte: found only with the last byte of "done\n" */
	gitproto_pktscan_init(&s, GITPROTO_PKT_DONE);
	for (size_t i = 0; req[i]; i++) {
		int r = gitproto_pktscan_feed(&s, (const uint8_t *)req + i, 1);
		assert_int_equal(r, req[i + 1] ? 0 : 1);
	}
	/* in one go */
	gitproto_pktscan_init(&s, GITPROTO_PKT_DONE);
	assert_int_equal(feed_str(&s, req), 1);
	assert_false(s.saw_deepen);
	/* "done" without newline, or inside a longer line, is not it */
	gitproto_pktscan_init(&s, GITPROTO_PKT_DONE);
	assert_int_equal(feed_str(&s, "0008done0000000adone now\n"), 0);
}

static void test_pktscan_flush_and_specials(void **state)
{
	struct gitproto_pktscan s;
	(void)state;

	gitproto_pktscan_init(&s, GITPROTO_PKT_FLUSH);
	assert_int_equal(feed_str(&s, "001aargument --format"), 0);
	assert_int_equal(feed_str(&s, "=tar\n0001"), 0); /* delim is not a flush */
	assert_int_equal(feed_str(&s, "0000"), 1);
	/* 0002 and 0003 are 4-byte packets too */
	gitproto_pktscan_init(&s, GITPROTO_PKT_DONE);
	assert_int_equal(feed_str(&s, "000200030009done\n"), 1);
}

static void test_pktscan_invalid(void **state)
{
	struct gitproto_pktscan s;
	(void)state;

	gitproto_pktscan_init(&s, GITPROTO_PKT_DONE);
	assert_int_equal(feed_str(&s, "00zz"), -1);
	assert_int_equal(feed_str(&s, "0009done\n"), -1); /* stays invalid */
	gitproto_pktscan_init(&s, GITPROTO_PKT_DONE);
	assert_int_equal(feed_str(&s, "fff1"), -1); /* longer than 65520 */
	gitproto_pktscan_init(&s, GITPROTO_PKT_DONE);
	assert_int_equal(feed_str(&s, "fff0"), 0); /* the longest allowed */
}

static void test_pktscan_deepen(void **state)
{
	struct gitproto_pktscan s;
	(void)state;

	gitproto_pktscan_init(&s, NULL);
	assert_int_equal(feed_str(&s, "000ddeepen 1\n0000"), 0);
	assert_true(s.saw_deepen);
	gitproto_pktscan_release(&s);
	gitproto_pktscan_init(&s, NULL);
	feed_str(&s, "000ashallow0000");
	assert_false(s.saw_deepen);
	gitproto_pktscan_release(&s);
}

/* Appends one pkt-line made from fmt to buf (room for 1024 bytes). */
static void add_pkt(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_pkt(char *buf, const char *fmt, ...)
{
	char line[512];
	size_t len = strlen(buf);
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	snprintf(buf + len, 1024 - len, "%04x%s", n + 4, line);
}

static void add_flush(char *buf)
{
	size_t len = strlen(buf);
	snprintf(buf + len, 1024 - len, "0000");
}

static void test_pktscan_statistics(void **state)
{
	struct gitproto_pktscan s;
	struct gitproto_run r;
	struct rpc_call call;
	Gitaly__PackfileNegotiationStatistics st = GITALY__PACKFILE_NEGOTIATION_STATISTICS__INIT;
	const char *oid = "0123456789012345678901234567890123456789";
	char req[1024];
	(void)state;

	/* two wants (caps on the first), a shallow, a deepen, a filter, a
	 * flush, two haves, a flush, done */
	req[0] = '\0';
	add_pkt(req, "want %s multi_ack side-band-64k ofs-delta\n", oid);
	add_pkt(req, "want %s\n", oid);
	add_pkt(req, "shallow %s\n", oid);
	add_pkt(req, "deepen 3\n");
	add_pkt(req, "filter blob:none\n");
	add_flush(req);
	add_pkt(req, "have %s\n", oid);
	add_pkt(req, "have %s\n", oid);
	add_flush(req);
	add_pkt(req, "done\n");
	gitproto_pktscan_init(&s, GITPROTO_PKT_DONE);
	/* in odd-sized pieces */
	for (size_t i = 0; i < strlen(req); i += 7) {
		size_t n = strlen(req) - i < 7 ? strlen(req) - i : 7;
		gitproto_pktscan_feed(&s, (const uint8_t *)req + i, n);
	}
	assert_true(s.found);
	assert_false(s.bad);
	assert_int_equal(s.packets, 10);
	assert_int_equal(s.wants, 2);
	assert_int_equal(s.haves, 2);
	assert_int_equal(s.shallows, 1);
	assert_string_equal(s.caps, "multi_ack side-band-64k ofs-delta");
	assert_string_equal(s.deepen, "deepen 3");
	assert_string_equal(s.filter, "blob:none");
	/* payload without newlines: 2x"want <oid>..." etc. */
	assert_int_equal(s.payload_size,
			 (int64_t)(strlen(oid) + 39 + strlen(oid) + 5 + strlen(oid) + 8 + 8 +
				   16 + 2 * (strlen(oid) + 5) + 4));

	memset(&call, 0, sizeof(call));
	gitproto_run_init(&r);
	r.stats = s;
	gitproto_stats_proto(&call, &r, &st);
	assert_int_equal(st.n_caps, 3);
	assert_string_equal(st.caps[1], "side-band-64k");
	assert_int_equal(st.packets, 10);
	assert_string_equal(st.filter, "blob:none");
	gitproto_run_release(&r); /* frees the strings of s */
	free(st.caps[0]); /* the fake call's arena is plain malloc */
	free(st.caps);
}

static void test_config_options(void **state)
{
	struct error err = ERROR_INIT;
	char *good[] = { "a.b=c", "x.y=" , "k.v=a=b" };
	char *bad[] = { "a.b=c", "novalue" };
	(void)state;

	assert_int_equal(gitproto_check_config(good, 3, &err), 0);
	assert_int_equal(gitproto_check_config(bad, 2, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "cannot convert invalid config key: \"novalue\"");
	error_release(&err);

	assert_string_equal(gitproto_protocol("version=2"), "version=2");
	assert_string_equal(gitproto_protocol("version=1"), "version=1");
	assert_null(gitproto_protocol("version=3"));
	assert_null(gitproto_protocol(""));
	assert_null(gitproto_protocol(NULL));
}

static int has(const char *const *v, const char *s)
{
	for (; *v; v++)
		if (!strcmp(*v, s))
			return 1;
	return 0;
}

static const char *env_of(const char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (; *envp; envp++)
		if (!strncmp(*envp, name, n) && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

static void test_apply(void **state)
{
	struct error err = ERROR_INIT;
	char *opts[] = { "uploadpack.hideRefs=refs/x/", "core.k=a=b" };
	struct git_cmd *cmd = git_cmd_new(repo_path, "upload-pack");
	const char *const *argv, *const *envp;
	(void)state;

	git_cmd_arg(cmd, repo_path);
	gitproto_apply(cmd, "version=2", opts, 2);
	argv = git_cmd_argv(cmd, &err);
	assert_non_null(argv);
	assert_true(has(argv, "uploadpack.hideRefs=refs/x/"));
	assert_true(has(argv, "core.k=a=b"));
	envp = git_cmd_envp(cmd, &err);
	assert_string_equal(env_of(envp, "GIT_PROTOCOL"), "version=2");
	git_cmd_free(cmd);

	cmd = git_cmd_new(repo_path, "upload-pack");
	gitproto_apply(cmd, "version=9", NULL, 0);
	envp = git_cmd_envp(cmd, &err);
	assert_null(env_of(envp, "GIT_PROTOCOL"));
	git_cmd_free(cmd);
}

static void test_receive_hooks_payload(void **state)
{
	struct error err = ERROR_INIT;
	struct gitproto_user u = { "user-9", "jane", "ssh", "10.0.0.9" };
	struct hook_payload p;
	struct git_cmd *cmd = git_cmd_new(repo_path, "receive-pack");
	struct service_deps d = deps;
	const char *const *argv, *const *envp;
	char hooks_arg[128];
	(void)state;

	/* without a hooks directory, receive-pack is refused */
	assert_int_equal(gitproto_receive_hooks(&d, &repo_msg, repo_path, "project-3", &u, cmd,
						&err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	error_release(&err);

	d.hooks_dir = "/run/hooks.d";
	d.internal_socket = "/run/sock.d/intern";
	d.runtime_dir = "/run";
	cfg.auth.token = "secret-token";
	assert_int_equal(gitproto_receive_hooks(&d, &repo_msg, repo_path, "project-3", &u, cmd,
						&err), 0);
	cfg.auth.token = NULL;
	argv = git_cmd_argv(cmd, &err);
	/* no custom update hook, no transaction: the leanest directory */
	snprintf(hooks_arg, sizeof(hooks_arg), "core.hooksPath=%s/" HOOK_DIR_NO_TX_NO_UPDATE,
		 d.hooks_dir);
	assert_true(has(argv, hooks_arg));
	envp = git_cmd_envp(cmd, &err);
	assert_non_null(env_of(envp, HOOK_PAYLOAD_ENV));
	assert_int_equal(hook_payload_decode(env_of(envp, HOOK_PAYLOAD_ENV), &p, &err), 0);
	assert_int_equal(p.requested_hooks, HOOK_RECEIVE_PACK);
	assert_string_equal(p.repo.storage_name, "default");
	assert_string_equal(p.repo.relative_path, "repo.git");
	assert_string_equal(p.repo.gl_repository, "project-3"); /* from the request */
	assert_string_equal(p.repo.gl_project_path, "group/proj");
	assert_string_equal(p.object_format, "sha1");
	assert_string_equal(p.internal_socket, "/run/sock.d/intern");
	assert_string_equal(p.internal_socket_token, "secret-token");
	assert_string_equal(p.userid, "user-9");
	assert_string_equal(p.username, "jane");
	assert_string_equal(p.protocol, "ssh");
	assert_string_equal(p.remote_ip, "10.0.0.9");
	hook_payload_release(&p);
	git_cmd_free(cmd);

	/* a custom update hook in the repository brings the update hook back */
	{
		char dir[400], hook[420];
		FILE *f;

		snprintf(dir, sizeof(dir), "%s/custom_hooks", repo_path);
		snprintf(hook, sizeof(hook), "%s/update", dir);
		assert_int_equal(mkdir(dir, 0755), 0);
		f = fopen(hook, "w");
		assert_non_null(f);
		fputs("#!/bin/sh\nexit 0\n", f);
		fclose(f);
		assert_int_equal(chmod(hook, 0755), 0);
		cmd = git_cmd_new(repo_path, "receive-pack");
		assert_int_equal(gitproto_receive_hooks(&d, &repo_msg, repo_path, "project-3", &u,
							cmd, &err), 0);
		argv = git_cmd_argv(cmd, &err);
		snprintf(hooks_arg, sizeof(hooks_arg), "core.hooksPath=%s/" HOOK_DIR_NO_TX,
			 d.hooks_dir);
		assert_true(has(argv, hooks_arg));
		git_cmd_free(cmd);
		unlink(hook);
		rmdir(dir);
	}
}

/* Payload object format of repo_path through a git that logs its runs. */
static const char *format_of(const char *path, const char *config, int *spawned)
{
	static char format[16];
	char cfgfile[400], log[300];
	struct error err = ERROR_INIT;
	struct gitproto_user u = { "user-9", "jane", "ssh", "10.0.0.9" };
	struct hook_payload p;
	struct service_deps d = deps;
	struct git_cmd *cmd;
	FILE *f;

	snprintf(cfgfile, sizeof(cfgfile), "%s/config", path);
	snprintf(log, sizeof(log), "%s/git.log", tmp);
	unlink(log);
	f = fopen(cfgfile, "w");
	assert_non_null(f);
	fputs(config, f);
	fclose(f);
	d.hooks_dir = "/run/hooks.d";
	d.internal_socket = "/run/sock.d/intern";
	d.runtime_dir = "/run";
	cmd = git_cmd_new(path, "receive-pack");
	assert_int_equal(gitproto_receive_hooks(&d, &repo_msg, path, "project-3", &u, cmd, &err),
			 0);
	assert_int_equal(hook_payload_decode(env_of(git_cmd_envp(cmd, &err), HOOK_PAYLOAD_ENV), &p,
					     &err), 0);
	snprintf(format, sizeof(format), "%s", p.object_format);
	hook_payload_release(&p);
	git_cmd_free(cmd);
	*spawned = access(log, F_OK) == 0;
	return format;
}

static void test_receive_hooks_object_format(void **state)
{
	char wrapper[300], path[300];
	struct git_exec_env env = { 0 };
	FILE *f;
	int spawned = -1;
	(void)state;

	/* a git that notes every run, so the test sees when it is asked */
	snprintf(wrapper, sizeof(wrapper), "%s/git-logged", tmp);
	f = fopen(wrapper, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\necho \"$@\" >> %s/git.log\nexec /usr/bin/git \"$@\"\n", tmp);
	fclose(f);
	assert_int_equal(chmod(wrapper, 0755), 0);
	snprintf(path, sizeof(path), "%s/repo.git", storage_path);
	env.git_binary = wrapper;
	git_exec_env_set(&env);

	/* what git init writes: read from the file, git is not run */
	assert_string_equal(format_of(path, "[core]\n\trepositoryformatversion = 0\n"
					    "\tfilemode = true\n\tbare = true\n", &spawned),
			    "sha1");
	assert_false(spawned);
	assert_string_equal(format_of(path, "[core]\n\trepositoryformatversion = 1\n"
					    "\tbare = true\n[extensions]\n"
					    "\tobjectFormat = sha256\n", &spawned),
			    "sha256");
	assert_false(spawned);
	assert_string_equal(format_of(path, "[core]\n\trepositoryformatversion = 1\n"
					    "[Extensions]\n\tobjectformat = sha1\n", &spawned),
			    "sha1");
	assert_false(spawned);
	/* anything the small reader does not follow is left to git */
	assert_string_equal(format_of(path, "[core]\n\trepositoryformatversion = 1\n"
					    "[include]\n\tpath = other\n", &spawned),
			    "sha1");
	assert_true(spawned);
	assert_string_equal(format_of(path, "[core]\n\trepositoryformatversion = 1\n"
					    "[extensions]\n\tobjectformat = \"sha256\"\n",
				      &spawned),
			    "sha256");
	assert_true(spawned);
	assert_string_equal(format_of(path, "[core]\n\trepositoryformatversion = 1\n"
					    "[remote \"origin\"]\n\turl = /x\n", &spawned),
			    "sha1");
	assert_true(spawned);

	/* back to the repository as git init made it, and to the usual git */
	format_of(path, "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n"
			"\tbare = true\n", &spawned);
	env.git_binary = "/usr/bin/git";
	git_exec_env_set(&env);
}

static void test_pack_objects_hook_only_with_cache(void **state)
{
	struct error err = ERROR_INIT;
	struct rpc_call call;
	struct service_deps d = deps;
	struct hook_payload p;
	struct git_cmd *cmd;
	const char *const *argv, *const *envp;
	(void)state;

	memset(&call, 0, sizeof(call));
	d.gitaly_hooks_bin = "/opt/gitaly/gitaly-hooks";
	d.hooks_dir = "/run/hooks.d";
	cmd = git_cmd_new(repo_path, "upload-pack");
	assert_int_equal(gitproto_pack_objects_hook(&d, &call, &repo_msg, repo_path, "http", cmd,
						    &err), 0);
	argv = git_cmd_argv(cmd, &err);
	assert_false(has(argv, "uploadpack.packObjectsHook=/opt/gitaly/gitaly-hooks"));
	assert_null(env_of(git_cmd_envp(cmd, &err), HOOK_PAYLOAD_ENV));
	git_cmd_free(cmd);

	cfg.pack_objects_cache.enabled = 1;
	cmd = git_cmd_new(repo_path, "upload-pack");
	assert_int_equal(gitproto_pack_objects_hook(&d, &call, &repo_msg, repo_path, "http", cmd,
						    &err), 0);
	cfg.pack_objects_cache.enabled = 0;
	argv = git_cmd_argv(cmd, &err);
	assert_true(has(argv, "uploadpack.packObjectsHook=/opt/gitaly/gitaly-hooks"));
	envp = git_cmd_envp(cmd, &err);
	assert_int_equal(hook_payload_decode(env_of(envp, HOOK_PAYLOAD_ENV), &p, &err), 0);
	assert_int_equal(p.requested_hooks, HOOK_PACK_OBJECTS);
	assert_string_equal(p.protocol, "http");
	hook_payload_release(&p);
	git_cmd_free(cmd);
}

static rpc_handler_fn handler(const struct rpc_service *svc, const char *name)
{
	for (size_t i = 0; i < svc->n_methods; i++)
		if (!strcmp(svc->methods[i].name, name))
			return svc->methods[i].handler;
	return NULL;
}

static void test_receive_pack_refused_without_hooks(void **state)
{
	struct error err = ERROR_INIT;
	struct rpc_call call;
	Gitaly__PostReceivePackRequest req = GITALY__POST_RECEIVE_PACK_REQUEST__INIT;
	Gitaly__SSHReceivePackRequest sreq = GITALY__SSHRECEIVE_PACK_REQUEST__INIT;
	(void)state;

	memset(&call, 0, sizeof(call));
	call.data = &deps; /* hooks_dir NULL */
	req.repository = &repo_msg;
	req.gl_id = "user-1";
	call.request = &req.base;
	assert_int_equal(handler(smarthttp_service(&deps), "PostReceivePack")(&call, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_int_equal(call.n_sent, 0);
	error_release(&err);

	sreq.repository = &repo_msg;
	sreq.gl_id = "user-1";
	call.request = &sreq.base;
	assert_int_equal(handler(ssh_service(&deps), "SSHReceivePack")(&call, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_int_equal(call.n_sent, 0);
	error_release(&err);

	/* validation comes first */
	req.gl_id = "";
	call.request = &req.base;
	assert_int_equal(handler(smarthttp_service(&deps), "PostReceivePack")(&call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "empty GlId");
	error_release(&err);
}

/* ---- the engine's bulk output --------------------------------------------- */

#define BULK_PAIRS 400
#define BULK_DATA 8187 /* upload-pack style: a 5-byte header, then the data */

struct collected {
	struct strbuf bytes;
	int calls;
};

static int collect_out(void *ctx, int band, const uint8_t *buf, size_t len, struct error *err)
{
	struct collected *c = ctx;
	(void)err;
	if (band == 1) {
		strbuf_add(&c->bytes, buf, len);
		c->calls++;
	}
	return 0;
}

static int collect_pipe(void *ctx, int fd, size_t len, struct error *err)
{
	struct collected *c = ctx;
	uint8_t b[4096];
	(void)err;
	c->calls++;
	while (len) {
		ssize_t n = read(fd, b, len < sizeof(b) ? len : sizeof(b));
		assert_true(n > 0);
		strbuf_add(&c->bytes, b, (size_t)n);
		len -= (size_t)n;
	}
	return 0;
}

/* A "git" that writes BULK_PAIRS pairs of writes (5 bytes, BULK_DATA
 * bytes) at a steady pace, as upload-pack relays a pack. */
static void bulk_git(char *wrapper, size_t n)
{
	FILE *f;
	struct git_exec_env env = { 0 };

	snprintf(wrapper, n, "%s/git-bulk", tmp);
	f = fopen(wrapper, "w");
	assert_non_null(f);
	fprintf(f, "#!/usr/bin/python3\nimport os, time\n"
		   "d = bytes((i * 7 + i // 251) & 255 for i in range(%d))\n"
		   "for i in range(%d):\n"
		   "    os.write(1, b'%%04x\\1' %% i)\n"
		   "    os.write(1, d)\n"
		   "    time.sleep(0.0002)\n", BULK_DATA, BULK_PAIRS);
	fclose(f);
	assert_int_equal(chmod(wrapper, 0755), 0);
	env.git_binary = wrapper;
	git_exec_env_set(&env);
}

static void expect_bulk_bytes(const struct strbuf *b)
{
	size_t off = 0;
	char hdr[8];

	assert_int_equal(b->len, (size_t)BULK_PAIRS * (5 + BULK_DATA));
	for (int i = 0; i < BULK_PAIRS; i++) {
		snprintf(hdr, sizeof(hdr), "%04x\1", i);
		assert_memory_equal(b->buf + off, hdr, 5);
		off += 5;
		for (int k = 0; k < BULK_DATA; k++)
			if ((uint8_t)b->buf[off + k] != (uint8_t)((k * 7 + k / 251) & 255))
				fail_msg("pair %d byte %d differs", i, k);
		off += BULK_DATA;
	}
}

static int run_bulk(int bulk, int use_pipe, struct collected *c)
{
	struct gitproto_run r;
	struct error err = ERROR_INIT;
	struct git_cmd *cmd = git_cmd_new(NULL, "upload-pack");
	int rc;

	gitproto_run_init(&r);
	r.input = GITPROTO_IN_NONE;
	r.out = collect_out;
	r.out_pipe = use_pipe ? collect_pipe : NULL;
	r.out_ctx = c;
	r.bulk_out = bulk;
	rc = gitproto_run_cmd(&r, cmd, &err);
	assert_int_equal(rc, 0);
	assert_int_equal(r.res.exit_code, 0);
	assert_int_equal(r.response_bytes, (int64_t)BULK_PAIRS * (5 + BULK_DATA));
	error_release(&err);
	gitproto_run_release(&r);
	return rc;
}

/* With bulk_out, a stream of small writes reaches the client whole and in
 * order, in far fewer sends than git made writes (copied and spliced);
 * without it, the handler still sends about once per write. */
static void test_bulk_out_coalesces(void **state)
{
	char wrapper[300];
	struct collected plain = { STRBUF_INIT, 0 }, copied = { STRBUF_INIT, 0 },
			 spliced = { STRBUF_INIT, 0 };
	struct git_exec_env env = { 0 };
	(void)state;

	bulk_git(wrapper, sizeof(wrapper));
	run_bulk(0, 0, &plain);
	run_bulk(1, 0, &copied);
	run_bulk(1, 1, &spliced);
	expect_bulk_bytes(&plain.bytes);
	expect_bulk_bytes(&copied.bytes);
	expect_bulk_bytes(&spliced.bytes);
	print_message("sends: plain %d, copied %d, spliced %d\n", plain.calls, copied.calls,
		      spliced.calls);
	/* 800 writes over >= 80 ms: without pauses about a send per write
	 * (~490 on a quiet machine), with them a few dozen */
	assert_true(copied.calls < BULK_PAIRS / 4);
	assert_true(spliced.calls < BULK_PAIRS / 4);
	assert_true(plain.calls > 2 * copied.calls && plain.calls > 2 * spliced.calls);
	strbuf_release(&plain.bytes);
	strbuf_release(&copied.bytes);
	strbuf_release(&spliced.bytes);
	env.git_binary = "/usr/bin/git";
	git_exec_env_set(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pktscan_done_split),
		cmocka_unit_test(test_pktscan_flush_and_specials),
		cmocka_unit_test(test_pktscan_invalid),
		cmocka_unit_test(test_pktscan_deepen),
		cmocka_unit_test(test_pktscan_statistics),
		cmocka_unit_test(test_config_options),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_receive_hooks_payload),
		cmocka_unit_test(test_receive_hooks_object_format),
		cmocka_unit_test(test_pack_objects_hook_only_with_cache),
		cmocka_unit_test(test_receive_pack_refused_without_hooks),
		cmocka_unit_test(test_bulk_out_coalesces),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
