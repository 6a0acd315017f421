/*
 * Shared machinery of the git transport RPCs (SmartHTTPService,
 * SSHService): request options to git arguments, hook environments, the
 * negotiation pkt-line scanner, and the engine that runs one git transport
 * command. The engine's handler thread copies git's stdout and stderr to the
 * client and watches deadlines; a feeder thread copies the client's input
 * into git's stdin and through the scanner. The feeder of a gRPC stream is
 * stopped with rpc_call_recv_abort and joined; the feeder of a sidechannel
 * is detached (it may block on the client after git is gone) and shares the
 * stream through a reference count.
 */
#include "service/gitproto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/process.h"
#include "hook/custom.h"
#include "hook/install.h"
#include "hook/payload.h"
#include "net/sidechannel.h"
#include "service/repository_internal.h"
#include "service/util.h"

/* Cap on the stderr text kept for error messages. */
#define STDERR_CAP ((size_t)1 << 20)
/* Longest slice the handler sleeps before checking cancellation. */
#define TICK_MS 200

/* ---- pkt-line scanner ------------------------------------------------------ */

void gitproto_pktscan_init(struct gitproto_pktscan *s, const char *want)
{
	memset(s, 0, sizeof(*s));
	s->want = want;
	s->want_len = want ? strlen(want) : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void gitproto_pktscan_release(struct gitproto_pktscan *s)
{
	free(s->caps);
	free(s->deepen);
	free(s->filter);
	s->caps = s->deepen = s->filter = NULL;
}

/* Replaces *dst with a copy of len bytes of src. */
static void set_str(char **dst, const uint8_t *src, size_t len)
{
	char *c = strndup((const char *)src, len);
	if (!c)
		return;
	free(*dst);
	*dst = c;
}

/* Counts the packet as upstream's negotiation parser does. */
static void pkt_stats(struct gitproto_pktscan *s)
{
	size_t len = s->pay_len, hl = s->head_len, w;
	const uint8_t *h = s->head;

	s->packets++;
	if (len && s->last == '\n') {
		len--;
		if (hl > len)
			hl = len;
	}
	s->payload_size += (int64_t)len;
	for (w = 0; w < hl && h[w] != ' '; w++)
		;
	if (w == hl)
		return; /* a single word (done, flush, ...) */
	if (w == 4 && !memcmp(h, "want", 4)) {
		const uint8_t *sp = memchr(h + 5, ' ', hl - 5);
		s->wants++;
		if (sp && !s->caps)
			set_str(&s->caps, sp + 1, hl - (size_t)(sp + 1 - h));
	} else if (w == 4 && !memcmp(h, "have", 4)) {
		s->haves++;
	} else if (w == 7 && !memcmp(h, "shallow", 7)) {
		s->shallows++;
	} else if ((w == 6 && !memcmp(h, "deepen", 6)) ||
		   (w == 12 && !memcmp(h, "deepen-since", 12)) ||
		   (w == 10 && !memcmp(h, "deepen-not", 10))) {
		set_str(&s->deepen, h, hl);
	} else if (w == 6 && !memcmp(h, "filter", 6)) {
		set_str(&s->filter, h + 7, hl - 7);
	}
}

/* The current packet is complete: compare it and look for deepen. */
static void pkt_done(struct gitproto_pktscan *s)
{
	pkt_stats(s);
	if (s->head_len >= 6 && !memcmp(s->head, "deepen", 6))
		s->saw_deepen = 1;
	if (s->want && !s->found && s->want_len == 4 + s->pay_len &&
	    !memcmp(s->hdr, s->want, 4) && s->pay_len <= sizeof(s->head) &&
	    !memcmp(s->head, s->want + 4, s->pay_len))
		s->found = 1;
	s->hdr_len = 0;
	s->head_len = 0;
	s->pay_len = 0;
	s->left = 0;
}

int gitproto_pktscan_feed(struct gitproto_pktscan *s, const uint8_t *data, size_t len)
{
	size_t i = 0;

	while (i < len && !s->bad) {
		if (s->hdr_len < 4) {
			s->hdr[s->hdr_len++] = (char)data[i++];
			if (s->hdr_len < 4)
				continue;
			size_t n = 0;
			for (int k = 0; k < 4; k++) {
				int v = hexval(s->hdr[k]);
				if (v < 0) {
					s->bad = 1;
					break;
				}
				n = n * 16 + (size_t)v;
			}
			if (s->bad)
				break;
			if (n > GITPROTO_PKT_MAX) {
				s->bad = 1;
				break;
			}
			s->pay_len = n < 4 ? 0 : n - 4;
			s->left = s->pay_len;
			if (!s->left)
				pkt_done(s);
			continue;
		}
		size_t take = len - i < s->left ? len - i : s->left;
		if (s->head_len < sizeof(s->head)) {
			size_t h = sizeof(s->head) - s->head_len;
			if (h > take)
				h = take;
			memcpy(s->head + s->head_len, data + i, h);
			s->head_len += h;
		}
		if (take)
			s->last = data[i + take - 1];
		i += take;
		s->left -= take;
		if (!s->left)
			pkt_done(s);
	}
	if (s->bad)
		return -1;
	return s->found ? 1 : 0;
}

/* ---- options -------------------------------------------------------------- */

int gitproto_check_config(char *const *opts, size_t n, struct error *err)
{
	for (size_t i = 0; i < n; i++) {
		if (!strchr(opts[i], '=')) {
			struct strbuf q = STRBUF_INIT;
			service_go_quote(&q, opts[i], strlen(opts[i]));
			error_set(err, STATUS_INVALID_ARGUMENT, "cannot convert invalid config key: %s",
				  q.buf ? q.buf : "\"\"");
			strbuf_release(&q);
			return -1;
		}
	}
	return 0;
}

const char *gitproto_protocol(const char *git_protocol)
{
	if (!git_protocol)
		return NULL;
	if (!strcmp(git_protocol, "version=2"))
		return "version=2";
	if (!strcmp(git_protocol, "version=1"))
		return "version=1";
	if (*git_protocol)
		log_msg(LOG_WARN, "invalid git protocol requested: %s", git_protocol);
	return NULL;
}

void gitproto_apply(struct git_cmd *cmd, const char *git_protocol, char *const *opts, size_t n)
{
	const char *proto = gitproto_protocol(git_protocol);

	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(opts[i], '=');
		char *key;

		if (!eq)
			continue; /* refused earlier by gitproto_check_config */
		key = strndup(opts[i], (size_t)(eq - opts[i]));
		if (!key)
			abort();
		git_cmd_config(cmd, key, eq + 1);
		free(key);
	}
	if (proto)
		git_cmd_setenv(cmd, "GIT_PROTOCOL", proto);
}

/* ---- hooks ---------------------------------------------------------------- */

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

/* Lower-cases s in place. */
static void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/*
 * The object format of repo_path read from its config file, without
 * spawning `git rev-parse --show-object-format`: *format is "sha1" when
 * the file is plain (sections and key = value lines, no include) and has
 * no extensions.objectFormat, "sha256" or "sha1" when it sets one with
 * repositoryformatversion 1. Returns -1 whenever the file holds anything
 * else (includes, other values, odd syntax): git must then be asked.
 */
static int config_object_format(const char *repo_path, const char **format)
{
	char path[4096], line[1024], section[64] = "", *value = NULL;
	FILE *f;
	int version = 0, ret = -1, n;

	n = snprintf(path, sizeof(path), "%s/config", repo_path);
	if (n < 0 || (size_t)n >= sizeof(path) || !(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *eq, *end;
		size_t len = strlen(line);

		if (len && line[len - 1] != '\n' && !feof(f))
			goto out; /* longer than the buffer */
		while (*p == ' ' || *p == '\t')
			p++;
		for (end = p + strlen(p); end > p && strchr(" \t\r\n", end[-1]); end--)
			;
		*end = '\0';
		if (!*p || *p == '#' || *p == ';')
			continue;
		if (end[-1] == '\\' || strchr(p, '"'))
			goto out; /* continuations and quoting: not read here */
		if (*p == '[') {
			size_t sl = (size_t)(end - p);
			if (end[-1] != ']' || sl - 2 >= sizeof(section) || strpbrk(p + 1, " .\t"))
				goto out; /* subsections ([includeIf "..."], [remote "x"]) */
			memcpy(section, p + 1, sl - 2);
			section[sl - 2] = '\0';
			ascii_lower(section);
			if (!strcmp(section, "include"))
				goto out;
			continue;
		}
		if (!(eq = strchr(p, '=')))
			continue; /* a boolean key */
		for (end = eq; end > p && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = '\0';
		ascii_lower(p);
		for (eq++; *eq == ' ' || *eq == '\t'; eq++)
			;
		if (!strcmp(section, "core") && !strcmp(p, "repositoryformatversion")) {
			if (strcmp(eq, "0") && strcmp(eq, "1"))
				goto out;
			version = *eq - '0';
		} else if (!strcmp(section, "extensions") && !strcmp(p, "objectformat")) {
			free(value);
			value = strdup(eq); /* git compares it case-sensitively */
			if (!value)
				goto out;
		}
	}
	if (!value) {
		*format = "sha1";
		ret = 0;
	} else if (version == 1 && !strcmp(value, "sha256")) {
		*format = "sha256";
		ret = 0;
	} else if (version == 1 && !strcmp(value, "sha1")) {
		*format = "sha1";
		ret = 0;
	}
out:
	free(value);
	fclose(f);
	return ret;
}

/* Builds the payload for repo and sets it on cmd. */
static int set_payload(const struct service_deps *deps, const Gitaly__Repository *repo,
		       const char *repo_path, const char *gl_repository, unsigned hooks,
		       const struct gitproto_user *user, struct git_cmd *cmd, struct error *err)
{
	struct hook_payload p;
	struct service_git_env genv;
	const char *format = "sha1";
	char *env = NULL;
	int ret = -1;

	memset(&p, 0, sizeof(p));
	memset(&genv, 0, sizeof(genv));
	if (service_git_env_init(&genv, repo_path, repo, err) < 0)
		goto out;
	if (config_object_format(repo_path, &format) < 0 &&
	    repo_object_format(repo_path, &genv, &format, err) < 0)
		goto out;
	p.requested_hooks = hooks;
	p.repo.storage_name = repo->storage_name;
	p.repo.relative_path = repo->relative_path;
	p.repo.git_object_directory = (char *)nonempty(repo->git_object_directory);
	p.repo.git_alternate_object_directories = repo->git_alternate_object_directories;
	p.repo.n_git_alternate_object_directories = repo->n_git_alternate_object_directories;
	p.repo.gl_repository = nonempty(repo->gl_repository) ? repo->gl_repository
							       : (char *)nonempty(gl_repository);
	p.repo.gl_project_path = (char *)nonempty(repo->gl_project_path);
	p.object_format = (char *)format;
	p.runtime_dir = (char *)deps->runtime_dir;
	p.internal_socket = (char *)deps->internal_socket;
	p.internal_socket_token = deps->cfg ? deps->cfg->auth.token : NULL;
	p.has_user_details = 1;
	p.userid = (char *)(user->gl_id ? user->gl_id : "");
	p.username = (char *)(user->gl_username ? user->gl_username : "");
	p.protocol = (char *)user->protocol;
	p.remote_ip = (char *)(user->remote_ip ? user->remote_ip : "");
	if (hook_payload_env(&p, &env, err) < 0)
		goto out;
	{
		char *eq = strchr(env, '=');
		*eq = '\0';
		git_cmd_setenv(cmd, env, eq + 1);
	}
	ret = 0;
out:
	free(env);
	service_git_env_release(&genv);
	return ret;
}

int gitproto_receive_hooks(const struct service_deps *deps, const Gitaly__Repository *repo,
			   const char *repo_path, const char *gl_repository,
			   const struct gitproto_user *user, struct git_cmd *cmd, struct error *err)
{
	char dir[4096];
	char **update = NULL;
	size_t n_update = 0;
	struct error ignored = ERROR_INIT;
	int want_update = 1;

	if (!deps->hooks_dir || !deps->internal_socket)
		return error_set(err, STATUS_INTERNAL, "receive-pack: hooks are not set up");
	/* The payload never carries a Praefect transaction (we have none to
	 * vote in), so the reference-transaction hook would do nothing; the
	 * update hook only runs custom update hooks, so it is left out when
	 * there are none (install.h). A custom update hook lookup that fails
	 * keeps the hook, which then reports the problem itself. */
	if (hook_custom_list(repo_path, deps->cfg ? deps->cfg->hooks.custom_hooks_dir : NULL,
			     "update", &update, &n_update, &ignored) == 0) {
		want_update = n_update > 0;
		hook_custom_list_free(update, n_update);
	}
	error_release(&ignored);
	snprintf(dir, sizeof(dir), "%s/%s", deps->hooks_dir,
		 want_update ? HOOK_DIR_NO_TX : HOOK_DIR_NO_TX_NO_UPDATE);
	git_cmd_config(cmd, "core.hooksPath", dir);
	return set_payload(deps, repo, repo_path, gl_repository, HOOK_RECEIVE_PACK, user, cmd,
			   err);
}

int gitproto_pack_objects_hook(const struct service_deps *deps, struct rpc_call *call,
			       const Gitaly__Repository *repo, const char *repo_path,
			       const char *protocol, struct git_cmd *cmd, struct error *err)
{
	struct gitproto_user u;

	if (!deps->cfg || !deps->cfg->pack_objects_cache.enabled)
		return 0;
	if (!deps->gitaly_hooks_bin)
		return error_set(err, STATUS_INTERNAL, "pack-objects hook: no gitaly-hooks binary");
	u.gl_id = rpc_call_metadata(call, "user_id");
	u.gl_username = rpc_call_metadata(call, "username");
	u.remote_ip = rpc_call_metadata(call, "remote_ip");
	u.protocol = protocol;
	if (deps->hooks_dir)
		git_cmd_config(cmd, "core.hooksPath", deps->hooks_dir);
	if (set_payload(deps, repo, repo_path, NULL, HOOK_PACK_OBJECTS, &u, cmd, err) < 0)
		return error_prefix(err, "pack-objects hook configuration");
	git_cmd_config(cmd, "uploadpack.packObjectsHook", deps->gitaly_hooks_bin);
	return 0;
}

/* ---- the engine ------------------------------------------------------------ */

/* State shared by the handler thread and the feeder thread. */
struct feeder {
	pthread_mutex_t mu;
	int refs;
	int fd; /* git's stdin, owned by the feeder thread */
	enum gitproto_input input;
	struct rpc_call *call;
	gitproto_stdin_fn stdin_of;
	struct yamux_stream *stream;
	int stream_closed_write;
	struct gitproto_pktscan scan; /* under mu */
	int done;                     /* the feeder thread finished (under mu) */
};

static void feeder_unref(struct feeder *f)
{
	int last;

	pthread_mutex_lock(&f->mu);
	last = --f->refs == 0;
	pthread_mutex_unlock(&f->mu);
	if (!last)
		return;
	if (f->stream)
		yamux_stream_free(f->stream);
	gitproto_pktscan_release(&f->scan);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Writes all of buf to git's stdin; -1 once git stopped reading. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Hands one chunk of client input to the scanner and to git. */
static int feed(struct feeder *f, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&f->mu);
	gitproto_pktscan_feed(&f->scan, buf, len);
	pthread_mutex_unlock(&f->mu);
	return write_all(f->fd, buf, len);
}

static void feed_grpc(struct feeder *f)
{
	struct error err = ERROR_INIT;
	ProtobufCMessage *m;

	for (;;) {
		int r = rpc_call_recv(f->call, &m, &err);
		const ProtobufCBinaryData *d;
		if (r <= 0)
			break;
		d = f->stdin_of(m);
		if (d && d->len && feed(f, d->data, d->len) < 0) {
			rpc_call_free_message(f->call, m);
			break;
		}
		rpc_call_free_message(f->call, m);
	}
	error_release(&err);
}

static void feed_sidechannel(struct feeder *f)
{
	struct error err = ERROR_INIT;
	struct sidechannel_io io;
	struct sidechannel_reader rd;
	uint8_t *buf = malloc(GITPROTO_COPY_BUF);

	if (!buf)
		return;
	sidechannel_io_from_stream(&io, f->stream);
	sidechannel_reader_init(&rd, &io);
	for (;;) {
		size_t n = 0;
		if (sidechannel_reader_read(&rd, buf, GITPROTO_COPY_BUF, &n, &err) < 0 || n == 0)
			break;
		if (feed(f, buf, n) < 0)
			break;
	}
	free(buf);
	error_release(&err);
}

static void *feeder_main(void *arg)
{
	struct feeder *f = arg;

	if (f->input == GITPROTO_IN_GRPC)
		feed_grpc(f);
	else
		feed_sidechannel(f);
	close(f->fd);
	pthread_mutex_lock(&f->mu);
	f->done = 1;
	pthread_mutex_unlock(&f->mu);
	feeder_unref(f);
	return NULL;
}

void gitproto_run_init(struct gitproto_run *r)
{
	memset(r, 0, sizeof(*r));
	strbuf_init(&r->stderr_text, STDERR_CAP);
	r->res.exit_code = -1;
}

void gitproto_run_release(struct gitproto_run *r)
{
	strbuf_release(&r->stderr_text);
	gitproto_pktscan_release(&r->stats);
}

void gitproto_stats_proto(struct rpc_call *call, const struct gitproto_run *r,
			  Gitaly__PackfileNegotiationStatistics *st)
{
	const struct gitproto_pktscan *s = &r->stats;

	st->payload_size = s->payload_size;
	st->packets = s->packets;
	st->wants = s->wants;
	st->haves = s->haves;
	st->shallows = s->shallows;
	if (s->deepen)
		st->deepen = s->deepen;
	if (s->filter)
		st->filter = s->filter;
	if (s->caps && *s->caps) {
		char *copy = rpc_call_strdup(call, s->caps), *p = copy;
		size_t n = 1;

		for (const char *c = copy; *c; c++)
			n += *c == ' ';
		st->caps = rpc_call_alloc(call, n * sizeof(char *));
		st->n_caps = 0;
		while (p) {
			char *sp = strchr(p, ' ');
			if (sp)
				*sp++ = '\0';
			st->caps[st->n_caps++] = p;
			p = sp;
		}
	}
}

/* Reads what is there on git's stderr, keeps it and, if asked, hands it
 * on as band 2; *eof at the end. */
static int pump_stderr(struct gitproto_run *r, int fd, uint8_t *buf, int *eof, struct error *err)
{
	ssize_t n = read(fd, buf, GITPROTO_COPY_BUF);

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		return error_set(err, STATUS_INTERNAL, "reading git output: %s", strerror(errno));
	}
	if (n == 0) {
		*eof = 1;
		return 0;
	}
	strbuf_add(&r->stderr_text, buf, (size_t)n); /* capped: excess dropped */
	if (!r->send_stderr)
		return 0;
	return r->out(r->out_ctx, 2, buf, (size_t)n, err);
}

/*
 * Moves what git's stdout holds now to the client, at most cap bytes:
 * *moved is how many; *eof once git closed it and nothing is left. hup:
 * poll reported the write end closed. With out_pipe the bytes go straight
 * from the pipe (FIONREAD says how many wait); else they are read, in one
 * read, or for bulk_out (non-blocking fd) in as many as there is data.
 */
static int drain_out(struct gitproto_run *r, int fd, uint8_t *buf, size_t cap, int hup,
		     size_t *moved, int *eof, struct error *err)
{
	size_t got = 0;

	*moved = 0;
	if (r->out_pipe) {
		int avail = 0;

		if (ioctl(fd, FIONREAD, &avail) < 0)
			return error_set(err, STATUS_INTERNAL, "reading git output: %s",
					 strerror(errno));
		if (avail <= 0) {
			*eof = hup;
			return 0;
		}
		got = (size_t)avail < cap ? (size_t)avail : cap;
		if (r->out_pipe(r->out_ctx, fd, got, err) < 0)
			return -1;
		r->response_bytes += (int64_t)got;
		*moved = got;
		return 0;
	}
	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return error_set(err, STATUS_INTERNAL, "reading git output: %s",
					 strerror(errno));
		}
		if (n == 0) {
			*eof = 1;
			break;
		}
		got += (size_t)n;
		if (!r->bulk_out)
			break;
	}
	if (!got)
		return 0;
	r->response_bytes += (int64_t)got;
	*moved = got;
	return r->out(r->out_ctx, 1, buf, got, err);
}

/* bulk_out: sizes git's stdout pipe and makes it non-blocking where it is
 * read; returns how much to send at once. */
static size_t bulk_setup(const struct gitproto_run *r, int fd)
{
	int sz;

	(void)fcntl(fd, F_SETPIPE_SZ, (int)GITPROTO_BULK_PIPE); /* best effort */
	sz = fcntl(fd, F_GETPIPE_SZ);
	if (!r->out_pipe)
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* leave git room to keep writing while a pause lasts */
	if (sz > 0 && (size_t)sz / 2 < GITPROTO_BULK_SEND)
		return (size_t)sz / 2 > GITPROTO_COPY_BUF ? (size_t)sz / 2 : GITPROTO_COPY_BUF;
	return GITPROTO_BULK_SEND;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The next pause: long enough for about cap bytes at the rate just seen,
 * growing at most fourfold at a time. */
static int64_t next_pause(int64_t pause_us, size_t moved, size_t cap)
{
	int64_t p = moved ? pause_us * (int64_t)cap / (int64_t)moved : GITPROTO_COALESCE_MAX_US;

	if (p > 4 * pause_us)
		p = 4 * pause_us;
	if (p < GITPROTO_COALESCE_MIN_US)
		p = GITPROTO_COALESCE_MIN_US;
	if (p > GITPROTO_COALESCE_MAX_US)
		p = GITPROTO_COALESCE_MAX_US;
	return p;
}

/* Kills git once; remembers that it did. */
static void kill_once(pid_t pid, int *killed)
{
	if (!*killed) {
		git_cmd_kill(pid);
		*killed = 1;
	}
}

/* Checks the monitor and the call; kills git when either says so. */
static int watch(struct gitproto_run *r, struct feeder *f, pid_t pid, int64_t monitor_deadline,
		 int *killed, struct error *err)
{
	int found = 0, bad = 0;

	if (r->monitor_pkt && !r->negotiation_timeout) {
		pthread_mutex_lock(&f->mu);
		found = f->scan.found;
		bad = f->scan.bad;
		pthread_mutex_unlock(&f->mu);
		if (!found && (bad || process_now_ms() >= monitor_deadline)) {
			r->negotiation_timeout = 1;
			kill_once(pid, killed);
		}
	}
	if (r->call && rpc_call_cancelled(r->call)) {
		kill_once(pid, killed);
		if (!error_is_set(err)) {
			if (rpc_call_deadline_ms(r->call) <= process_now_ms())
				error_set(err, STATUS_DEADLINE_EXCEEDED, "context deadline exceeded");
			else
				error_set(err, STATUS_CANCELLED, "context canceled");
		}
		return -1;
	}
	return 0;
}

/* Milliseconds the handler may sleep. */
static int tick(const struct gitproto_run *r, int64_t monitor_deadline)
{
	int64_t t = TICK_MS;

	if (r->monitor_pkt && !r->negotiation_timeout) {
		int64_t left = monitor_deadline - process_now_ms();
		if (left < t)
			t = left < 0 ? 0 : left;
	}
	return (int)t;
}

/* A connected Unix socket pair for git's stdin: *ours (send buffer of buf
 * bytes, asked for) and *theirs, given to cmd; both close on exec. */
static int stdin_socket(struct git_cmd *cmd, size_t buf, int *ours, int *theirs,
			struct error *err)
{
	int sv[2];
	int size = buf > (size_t)INT32_MAX ? INT32_MAX : (int)buf;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return error_set(err, STATUS_INTERNAL, "git stdin socket: %s", strerror(errno));
	/* best effort: the kernel caps it at net.core.wmem_max */
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	git_cmd_stdin_fd(cmd, sv[1]);
	*ours = sv[0];
	*theirs = sv[1];
	return 0;
}

int gitproto_run_cmd(struct gitproto_run *r, struct git_cmd *cmd, struct error *err)
{
	struct feeder *f = NULL;
	pthread_t th;
	int th_started = 0, killed = 0, out_eof = 0, err_eof = 0, ret = -1, failed = 0;
	int in_fd = -1, out_fd = -1, err_fd = -1, git_in = -1;
	int64_t monitor_deadline = 0, pause_us = GITPROTO_COALESCE_MIN_US;
	uint8_t *buf = NULL;
	size_t cap = GITPROTO_COPY_BUF, moved, win_bytes = 0;
	int bulk = 0, no_pause = 0;
	int64_t win_start = 0;
	pid_t pid = -1;

	f = calloc(1, sizeof(*f));
	/* out_pipe sends stdout without a buffer; stderr needs a small one */
	buf = malloc(r->bulk_out && !r->out_pipe ? GITPROTO_BULK_SEND : GITPROTO_COPY_BUF);
	if (!f || !buf) {
		git_cmd_free(cmd);
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	pthread_mutex_init(&f->mu, NULL);
	f->refs = 1;
	f->fd = -1;
	f->input = r->input;
	f->call = r->call;
	f->stdin_of = r->stdin_of;
	f->stream = r->stream;
	r->stream = NULL; /* the feeder's now */
	gitproto_pktscan_init(&f->scan, r->monitor_pkt);

	if (r->input != GITPROTO_IN_NONE && r->stdin_socket_buf &&
	    stdin_socket(cmd, r->stdin_socket_buf, &in_fd, &git_in, err) < 0) {
		git_cmd_free(cmd);
		goto out;
	}
	if (git_cmd_start(cmd, r->input != GITPROTO_IN_NONE && git_in < 0 ? &in_fd : NULL, &out_fd,
			  &err_fd, &pid, err) < 0)
		goto out;
	if (git_in >= 0) {
		close(git_in); /* git has its copy */
		git_in = -1;
	}
	r->started = 1;
	if (r->bulk_out)
		cap = bulk_setup(r, out_fd);
	if (r->monitor_pkt)
		monitor_deadline = process_now_ms() + r->monitor_timeout_ms;
	if (r->input != GITPROTO_IN_NONE) {
		f->fd = in_fd;
		in_fd = -1;
		f->refs++;
		if (pthread_create(&th, NULL, feeder_main, f) != 0) {
			f->refs--;
			close(f->fd);
			f->fd = -1;
			kill_once(pid, &killed);
			error_set(err, STATUS_INTERNAL, "starting stdin feeder: %s", strerror(errno));
			failed = 1;
		} else {
			th_started = 1;
		}
	}

	while (!failed && (!out_eof || !err_eof)) {
		struct pollfd p[2];
		int np = 0, rc;

		if (bulk && !out_eof) {
			/* a pack is streaming: let it collect in the pipe rather than
			 * waking up for each of git's writes; stderr waits for the
			 * next poll (git blocking on it stops stdout, which polls) */
			if (!no_pause)
				usleep((useconds_t)pause_us);
			if (drain_out(r, out_fd, buf, cap, 0, &moved, &out_eof, err) < 0) {
				failed = 1;
				break;
			}
			if (moved >= GITPROTO_BULK_MIN || (moved && no_pause)) {
				no_pause = moved >= cap;
				if (!no_pause)
					pause_us = next_pause(pause_us, moved, cap);
				if (watch(r, f, pid, monitor_deadline, &killed, err) < 0) {
					failed = 1;
					break;
				}
				continue;
			}
			bulk = no_pause = 0; /* a trickle: wait for git as usual */
			win_start = 0;
		}

		if (!out_eof) {
			p[np].fd = out_fd;
			p[np].events = POLLIN;
			np++;
		}
		if (!err_eof) {
			p[np].fd = err_fd;
			p[np].events = POLLIN;
			np++;
		}
		rc = poll(p, (nfds_t)np, tick(r, monitor_deadline));
		if (rc < 0 && errno != EINTR) {
			error_set(err, STATUS_INTERNAL, "poll: %s", strerror(errno));
			failed = 1;
			break;
		}
		for (int i = 0; rc > 0 && i < np; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (p[i].fd == out_fd) {
				if (drain_out(r, out_fd, buf, cap, !!(p[i].revents & (POLLHUP | POLLERR)),
					      &moved, &out_eof, err) < 0) {
					failed = 1;
					break;
				}
				if (r->bulk_out && moved) {
					/* bulk: BULK_MIN bytes within BULK_WINDOW_US */
					int64_t now = now_us();
					if (now - win_start > GITPROTO_BULK_WINDOW_US) {
						win_start = now;
						win_bytes = 0;
					}
					win_bytes += moved;
					if (win_bytes >= GITPROTO_BULK_MIN) {
						bulk = 1;
						no_pause = moved >= cap;
						pause_us = GITPROTO_COALESCE_MIN_US;
						win_bytes = 0;
					}
				}
			} else if (pump_stderr(r, p[i].fd, buf, &err_eof, err) < 0) {
				failed = 1;
				break;
			}
		}
		if (failed || watch(r, f, pid, monitor_deadline, &killed, err) < 0) {
			failed = 1;
			break;
		}
	}
	if (failed)
		kill_once(pid, &killed);

	/* Reap; git may linger after closing its output, so keep watching.
	 * It usually exits right after closing it, and the client's end of
	 * stream (a sidechannel's half-close) waits for this: look again soon
	 * at first, then every 10 ms. */
	for (int nap_us = 250;; nap_us = nap_us < 5000 ? nap_us * 2 : 10000) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno != EINTR)
			break;
		if (si.si_pid == pid)
			break;
		if (!failed && watch(r, f, pid, monitor_deadline, &killed, err) < 0)
			failed = 1;
		usleep(killed ? 2000 : (useconds_t)nap_us);
	}
	git_cmd_wait(pid, &r->res);
	pid = -1;

	if (th_started && r->input == GITPROTO_IN_GRPC) {
		rpc_call_recv_abort(r->call);
		pthread_join(th, NULL);
	} else if (th_started) {
		pthread_detach(th);
	}
	if (r->input == GITPROTO_IN_SIDECHANNEL && f->stream && !failed) {
		/* The response is complete: half-close (the client reads to EOF). */
		if (yamux_stream_close_write(f->stream, err) < 0)
			failed = 1;
	}
	pthread_mutex_lock(&f->mu);
	r->saw_deepen = f->scan.saw_deepen;
	r->stats = f->scan; /* the strings move to r */
	f->scan.caps = f->scan.deepen = f->scan.filter = NULL;
	pthread_mutex_unlock(&f->mu);
	ret = failed ? -1 : 0;
out:
	if (pid > 0) {
		git_cmd_kill(pid);
		git_cmd_wait(pid, &r->res);
	}
	if (in_fd >= 0)
		close(in_fd);
	if (git_in >= 0)
		close(git_in);
	if (out_fd >= 0)
		close(out_fd);
	if (err_fd >= 0)
		close(err_fd);
	if (f) {
		/* A failed sidechannel is reset, which also ends a blocked feeder. */
		if (ret < 0 && f->stream)
			yamux_stream_reset(f->stream);
		feeder_unref(f);
	} else if (r->stream) {
		yamux_stream_free(r->stream);
		r->stream = NULL;
	}
	free(buf);
	return ret;
}

/* ---- receive-pack ------------------------------------------------------------ */

int gitproto_receive_pack(const struct service_deps *deps, struct rpc_call *call,
			  const struct gitproto_receive_pack *rq, struct gitproto_run *run,
			  struct error *err)
{
	struct gitproto_user user;
	struct git_cmd *cmd;
	char *repo_path = NULL;
	int ret = -1;

	if (service_repo_path(deps, rq->repository, 0, &repo_path, err) < 0)
		goto out;
	if (gitproto_check_config(rq->config, rq->n_config, err) < 0) {
		err->code = rq->config_code;
		goto out;
	}
	cmd = git_cmd_new(repo_path, "receive-pack");
	if (rq->stateless)
		git_cmd_flag(cmd, "--stateless-rpc");
	git_cmd_arg(cmd, repo_path);
	user.gl_id = rq->gl_id;
	user.gl_username = rq->gl_username;
	user.protocol = rq->protocol;
	user.remote_ip = rpc_call_metadata(call, "remote_ip");
	if (gitproto_receive_hooks(deps, rq->repository, repo_path, rq->gl_repository, &user, cmd,
				   err) < 0) {
		git_cmd_free(cmd);
		goto out;
	}
	gitproto_apply(cmd, rq->git_protocol, rq->config, rq->n_config);
	run->stdin_socket_buf = GITPROTO_PUSH_STDIN_BUF;
	ret = gitproto_run_cmd(run, cmd, err);
	if (ret < 0 && !run->started) {
		error_prefix(err, "%s", rq->spawn_prefix);
		err->code = rq->spawn_code;
	}
out:
	free(repo_path);
	return ret;
}
