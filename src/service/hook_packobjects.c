/*
 * HookService/PackObjectsHookWithSidechannel: what gitaly-hooks calls when
 * upload-pack runs it as uploadpack.packObjectsHook. The handler dials the
 * unix socket gitaly-hooks named in `gitaly-sidechannel-socket`, spools
 * pack-objects' stdin from it into an unlinked file while hashing it into
 * the cache key, and serves the answer through the pack-objects cache
 * (src/packcache): either an existing entry or a new `git pack-objects`
 * whose stdout and stderr are written as side-band packets (band 1 and 2),
 * the very bytes gitaly-hooks demultiplexes. [pack_objects_limiting]
 * applies to that producer only, keyed by the client's IP.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/log.h"
#include "base/metrics.h"
#include "errors.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "hook.pb-c.h"
#include "limit/adaptive.h"
#include "limit/limit.h"
#include "packcache/cache.h"
#include "packcache/limiter.h"
#include "rpc/status.h"
#include "service/hook_packobjects.h"
#include "service/util.h"

#define SIDECHANNEL_HEADER "gitaly-sidechannel-socket"
#define SIDECHANNEL_NAME "sidechannel"
/* pack-objects' stdin (wants, haves, shallows): refuse absurd sizes. */
#define MAX_PACK_STDIN ((off_t)1 << 30)
/* side-band-64k: a 65520-byte packet holds 65515 data bytes. */
#define SIDEBAND_MAX_DATA 65515
#define STDERR_KEEP ((size_t)64 * 1024)

static struct packcache *cache;
static struct packlimit *limiter;
static struct metric_family *m_lookups, *m_served, *m_generated;

static void metrics_once(void)
{
	static const char *const result[] = {"result"};
	m_lookups = metrics_counter("gitaly_pack_objects_cache_lookups_total",
				    "Number of lookups in the PackObjectsHook cache, divided by hit/miss",
				    result, 1);
	m_served = metrics_counter("gitaly_pack_objects_served_bytes_total",
				   "Number of bytes of git-pack-objects data served to clients", NULL,
				   0);
	m_generated = metrics_counter("gitaly_pack_objects_generated_bytes_total",
				      "Number of bytes generated in PackObjectsHook by running "
				      "git-pack-objects",
				      NULL, 0);
}

static int clamp_limit(int64_t v)
{
	return v < 0 ? 0 : v > 1000000000 ? 1000000000 : (int)v;
}

int hook_packobjects_setup(const struct service_deps *deps, struct error *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const struct config *cfg = deps->cfg;

	pthread_once(&once, metrics_once);
	if (!cfg || !cfg->pack_objects_cache.enabled || cache)
		return 0;
	struct packcache_options o = {
		.dir = cfg->pack_objects_cache.dir,
		.max_age_ms = cfg->pack_objects_cache.max_age_ms,
		.min_occurrences = cfg->pack_objects_cache.min_occurrences,
		.start_cleaner = 1,
	};
	if (!o.dir || !*o.dir)
		return error_set(err, STATUS_INVALID_ARGUMENT, "pack_objects_cache: no dir");
	if (packcache_new(&o, &cache, err) < 0)
		return -1;
	if (cfg->pack_objects_limiting.adaptive) {
		/* upstream's "packObjects" limit, moved by the calculator that
		 * limit_setup starts along with the [[concurrency]] ones */
		struct adaptive_limit *al = adaptive_limit_new(
			"packObjects", clamp_limit(cfg->pack_objects_limiting.initial_limit),
			clamp_limit(cfg->pack_objects_limiting.min_limit),
			clamp_limit(cfg->pack_objects_limiting.max_limit), ADAPTIVE_BACKOFF_FACTOR);
		if (!al)
			return error_set(err, STATUS_INTERNAL, "pack_objects_limiting: out of memory");
		limiter = packlimit_new_adaptive(al, cfg->pack_objects_limiting.max_queue_length,
						 cfg->pack_objects_limiting.max_queue_wait_ms);
		limit_register_adaptive(al); /* lives as long as the process */
	} else {
		limiter = packlimit_new(cfg->pack_objects_limiting.max_concurrency,
					cfg->pack_objects_limiting.max_queue_length,
					cfg->pack_objects_limiting.max_queue_wait_ms);
	}
	static const char *const labels[] = {"dir", "max_age"};
	struct metric_family *en = metrics_gauge("gitaly_pack_objects_cache_enabled",
						 "If set to 1, indicates that the cache for "
						 "PackObjectsHook has been enabled in this process",
						 labels, 2);
	char age[32];
	metrics_format_float((double)o.max_age_ms / 1000.0, age, sizeof(age));
	const char *lv[] = {o.dir, age};
	metrics_set(en, lv, 1);
	metrics_touch(m_served, NULL);
	metrics_touch(m_generated, NULL);
	return 0;
}

/* ---- arguments ----------------------------------------------------------- */

struct pack_args {
	int shallow;
	char **flags;
	size_t n_flags;
};

/* Upstream's rules: optional `--shallow-file ""`, then pack-objects, then
 * only flags, one of them --stdout (dropped here, always passed first). */
static int parse_args(char **args, size_t n, struct pack_args *out, const char **why)
{
	size_t i = 0;
	int seen_stdout = 0;

	memset(out, 0, sizeof(*out));
	if (n >= 2 && !strcmp(args[0], "--shallow-file") && !strcmp(args[1], "")) {
		out->shallow = 1;
		i = 2;
	}
	if (i >= n || strcmp(args[i], "pack-objects")) {
		*why = "missing pack-objects";
		return -1;
	}
	out->flags = calloc(n, sizeof(char *));
	if (!out->flags) {
		*why = "out of memory";
		return -1;
	}
	for (i++; i < n; i++) {
		if (args[i][0] != '-') {
			*why = "non-flag argument";
			return -1;
		}
		if (!strcmp(args[i], "--stdout"))
			seen_stdout = 1;
		else
			out->flags[out->n_flags++] = args[i];
	}
	if (!seen_stdout) {
		*why = "missing --stdout";
		return -1;
	}
	return 0;
}

/* ---- producer ------------------------------------------------------------ */

/* What the producer learned, read by the request that created it. Shared
 * because the producer may outlive that request. */
struct prod_stats {
	pthread_mutex_t mu;
	int refs;
	int done;
	char total[256];   /* the "Total ..." line of pack-objects' stderr */
	int limited;
	char limit_key[64];
	struct packlimit_info linfo;
};

static void stats_unref(struct prod_stats *s)
{
	pthread_mutex_lock(&s->mu);
	int left = --s->refs;
	pthread_mutex_unlock(&s->mu);
	if (left == 0) {
		pthread_mutex_destroy(&s->mu);
		free(s);
	}
}

struct producer {
	char *repo_path;
	struct service_git_env genv;
	struct pack_args args;
	char **flag_store; /* owned copies of args.flags */
	int stdin_fd;
	char limit_key[64];
	struct prod_stats *stats;
};

static void producer_release(void *arg)
{
	struct producer *p = arg;

	free(p->repo_path);
	service_git_env_release(&p->genv);
	/* parse_args may fail after collecting flags, before flag_store */
	for (size_t i = 0; p->flag_store && i < p->args.n_flags; i++)
		free(p->flag_store[i]);
	free(p->flag_store);
	free(p->args.flags);
	if (p->stdin_fd >= 0)
		close(p->stdin_fd);
	stats_unref(p->stats);
	free(p);
}

/* Writes data as side-band packets on band. */
static int sideband(struct packcache_sink *sink, int band, const char *data, size_t len,
		    struct error *err)
{
	char pkt[5 + SIDEBAND_MAX_DATA];

	while (len) {
		size_t n = len > SIDEBAND_MAX_DATA ? SIDEBAND_MAX_DATA : len;
		char hdr[8];
		snprintf(hdr, sizeof(hdr), "%04zx", n + 5);
		memcpy(pkt, hdr, 4);
		pkt[4] = (char)band;
		memcpy(pkt + 5, data, n);
		if (packcache_sink_write(sink, pkt, n + 5, err) < 0)
			return -1;
		data += n;
		len -= n;
	}
	return 0;
}

/* Runs git pack-objects, relaying its output as side-band packets. */
static int run_pack_objects(struct producer *p, struct packcache_sink *sink, struct error *err)
{
	char *obuf = malloc(SIDEBAND_MAX_DATA);
	char ebuf[8192];
	struct strbuf errkeep = STRBUF_INIT;
	size_t ofill = 0;
	int out_fd = -1, err_fd = -1, ret = -1;
	pid_t pid = -1;
	struct git_result res;

	strbuf_init(&errkeep, STDERR_KEEP);
	if (!obuf) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (lseek(p->stdin_fd, 0, SEEK_SET) < 0) {
		error_set(err, STATUS_INTERNAL, "rewind stdin: %s", strerror(errno));
		goto out;
	}
	struct git_cmd *cmd = service_git_new(p->repo_path, &p->genv, "pack-objects");
	if (p->args.shallow)
		git_cmd_shallow_file_empty(cmd);
	git_cmd_flag(cmd, "--stdout");
	for (size_t i = 0; i < p->args.n_flags; i++)
		git_cmd_flag(cmd, p->args.flags[i]);
	git_cmd_stdin_fd(cmd, p->stdin_fd);
	if (git_cmd_start(cmd, NULL, &out_fd, &err_fd, &pid, err) < 0)
		goto out;
	while (out_fd >= 0 || err_fd >= 0) {
		struct pollfd pf[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			error_set(err, STATUS_INTERNAL, "poll: %s", strerror(errno));
			goto out;
		}
		if (out_fd >= 0 && pf[0].revents) {
			ssize_t n = read(out_fd, obuf + ofill, SIDEBAND_MAX_DATA - ofill);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(out_fd);
				out_fd = -1;
			} else {
				ofill += (size_t)n;
			}
			if (ofill == SIDEBAND_MAX_DATA || (out_fd < 0 && ofill)) {
				if (sideband(sink, 1, obuf, ofill, err) < 0)
					goto out;
				ofill = 0;
			}
		}
		if (err_fd >= 0 && pf[1].revents) {
			ssize_t n = read(err_fd, ebuf, sizeof(ebuf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(err_fd);
				err_fd = -1;
			} else {
				/* Keep the tail: git's complaint and "Total" come last. */
				if (errkeep.len + (size_t)n > STDERR_KEEP) {
					size_t keep = STDERR_KEEP / 2;
					if (errkeep.len > keep) {
						memmove(errkeep.buf, errkeep.buf + errkeep.len - keep,
							keep);
						errkeep.len = keep;
						errkeep.buf[keep] = '\0';
					}
				}
				strbuf_add(&errkeep, ebuf, (size_t)n);
				if (sideband(sink, 2, ebuf, (size_t)n, err) < 0)
					goto out;
			}
		}
	}
	git_cmd_wait(pid, &res);
	pid = -1;
	if (res.exit_code != 0) {
		struct strbuf q = STRBUF_INIT;
		strbuf_init(&q, STDERR_KEEP * 4 + 16);
		/* The tail holds git's complaint; progress lines come first. */
		size_t from = errkeep.len > 4096 ? errkeep.len - 4096 : 0;
		service_go_quote(&q, errkeep.buf ? errkeep.buf + from : "", errkeep.len - from);
		if (res.signal)
			error_set(err, STATUS_INTERNAL, "git-pack-objects: stderr: %s err: signal: %s",
				  q.buf ? q.buf : "\"\"", strsignal(res.signal));
		else
			error_set(err, STATUS_INTERNAL,
				  "git-pack-objects: stderr: %s err: exit status %d",
				  q.buf ? q.buf : "\"\"", res.exit_code);
		strbuf_release(&q);
		goto out;
	}
	ret = 0;
out:
	if (pid > 0) {
		/* Nobody reads any more (or we failed): stop git. */
		git_cmd_kill(pid);
		git_cmd_wait(pid, &res);
	}
	if (out_fd >= 0)
		close(out_fd);
	if (err_fd >= 0)
		close(err_fd);
	if (errkeep.buf) {
		const char *t = memmem(errkeep.buf, errkeep.len, "Total ", 6);
		if (t) {
			size_t rest = errkeep.len - (size_t)(t - errkeep.buf);
			const char *nl = memchr(t, '\n', rest);
			if (nl) {
				pthread_mutex_lock(&p->stats->mu);
				snprintf(p->stats->total, sizeof(p->stats->total), "%.*s",
					 (int)(nl - t), t);
				pthread_mutex_unlock(&p->stats->mu);
			}
		}
	}
	strbuf_release(&errkeep);
	free(obuf);
	return ret;
}

static int producer_run(void *arg, struct packcache_sink *sink, struct error *err)
{
	struct producer *p = arg;
	struct packlimit_info li;
	int limited = p->limit_key[0] && limiter;
	int ret;

	if (limited) {
		int rc = packlimit_acquire(limiter, p->limit_key, &li, err);
		pthread_mutex_lock(&p->stats->mu);
		p->stats->limited = 1;
		snprintf(p->stats->limit_key, sizeof(p->stats->limit_key), "%s", p->limit_key);
		p->stats->linfo = li;
		pthread_mutex_unlock(&p->stats->mu);
		if (rc < 0)
			return -1;
	}
	ret = run_pack_objects(p, sink, err);
	if (limited && li.held)
		packlimit_release(limiter, p->limit_key);
	metrics_add(m_generated, NULL, (double)packcache_sink_bytes(sink));
	pthread_mutex_lock(&p->stats->mu);
	p->stats->done = 1;
	pthread_mutex_unlock(&p->stats->mu);
	return ret;
}

/* ---- the request ----------------------------------------------------------- */

/* Connects to gitaly-hooks' socket within one second. */
static int dial_sidechannel(const char *addr, int *out, struct error *err)
{
	struct sockaddr_un sa;
	int fd = -1, ret = -1;

	if (strlen(addr) >= sizeof(sa.sun_path)) {
		error_set(err, STATUS_INTERNAL, "get side-channel: dial unix %s: path too long", addr);
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, addr, strlen(addr));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		error_set(err, STATUS_INTERNAL, "get side-channel: socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			error_set(err, STATUS_INTERNAL, "get side-channel: dial unix %s: connect: %s",
				  addr, strerror(errno));
			goto out;
		}
		struct pollfd pf = {fd, POLLOUT, 0};
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (poll(&pf, 1, 1000) <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 ||
		    soerr) {
			error_set(err, STATUS_INTERNAL, "get side-channel: dial unix %s: %s", addr,
				  soerr ? strerror(soerr) : "i/o timeout");
			goto out;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*out = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Copies the socket's bytes until EOF into an unlinked file, hashing them. */
static int spool_stdin(int sock, const char *tmpdir, EVP_MD_CTX *h, int *out, struct error *err)
{
	char buf[65536];
	off_t total = 0;
	int fd = open(tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	int ret = -1;

	if (fd < 0) {
		char tmpl[4096];
		snprintf(tmpl, sizeof(tmpl), "%s/PackObjectsHook-stdin-XXXXXX", tmpdir);
		fd = mkostemp(tmpl, O_CLOEXEC);
		if (fd >= 0)
			unlink(tmpl);
	}
	if (fd < 0) {
		error_set(err, STATUS_INTERNAL, "create stdin buffer: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = read(sock, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, STATUS_INTERNAL, "read stdin: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		total += n;
		if (total > MAX_PACK_STDIN) {
			error_set(err, STATUS_RESOURCE_EXHAUSTED, "pack-objects stdin too large");
			goto out;
		}
		EVP_DigestUpdate(h, buf, (size_t)n);
		for (ssize_t o = 0; o < n;) {
			ssize_t w = write(fd, buf + o, (size_t)(n - o));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				error_set(err, STATUS_INTERNAL, "buffer stdin: %s", strerror(errno));
				goto out;
			}
			o += w;
		}
	}
	*out = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* The request fields that make up the key (never the user or the IP),
 * serialized deterministically. */
static int key_material(const Gitaly__PackObjectsHookWithSidechannelRequest *req,
			EVP_MD_CTX *h)
{
	Gitaly__PackObjectsHookWithSidechannelRequest k =
		GITALY__PACK_OBJECTS_HOOK_WITH_SIDECHANNEL_REQUEST__INIT;
	k.repository = req->repository;
	k.args = req->args;
	k.n_args = req->n_args;
	k.git_protocol = req->git_protocol;
	size_t len = protobuf_c_message_get_packed_size(&k.base);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return -1;
	protobuf_c_message_pack(&k.base, buf);
	EVP_DigestUpdate(h, buf, len);
	free(buf);
	return 0;
}

static void add_limit_detail(struct error *err)
{
	Gitaly__LimitError le = GITALY__LIMIT_ERROR__INIT;
	Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
	le.error_message = err->message ? err->message : "";
	le.retry_after = &d;
	rpc_error_add_detail(err, &le.base);
}

static void log_limit(struct rpc_call *call, const struct prod_stats *s)
{
	rpc_call_log_field(call, "limit.limiting_type", json_string("pack-objects"));
	rpc_call_log_field(call, "limit.limiting_key", json_string(s->limit_key));
	rpc_call_log_field(call, "limit.concurrency_queue_ms", json_integer(s->linfo.queue_ms));
	rpc_call_log_field(call, "limit.concurrency_queue_length",
			   json_integer(s->linfo.queue_len));
	rpc_call_log_field(call, "limit.concurrency_in_progress",
			   json_integer(s->linfo.in_progress));
	if (s->linfo.dropped)
		rpc_call_log_field(call, "limit.concurrency_dropped", json_string(s->linfo.dropped));
}

int hook_packobjects_rpc(struct rpc_call *call, struct error *err)
{
	struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__PackObjectsHookWithSidechannelRequest *req = (const void *)rpc_call_request(call);
	struct producer *p = NULL;
	struct prod_stats *stats = NULL;
	struct packcache_result res;
	char *repo_path = NULL;
	int sock = -1, ret = -1;
	EVP_MD_CTX *h = NULL;
	const char *why = NULL;

	memset(&res, 0, sizeof(res));
	if (!req) {
		error_set(err, STATUS_INTERNAL, "empty request");
		goto out;
	}
	if (service_repo_path(deps, req->repository, 0, &repo_path, err) < 0)
		goto out;
	p = calloc(1, sizeof(*p));
	stats = calloc(1, sizeof(*stats));
	if (!p || !stats) {
		free(stats);
		free(p);
		stats = NULL;
		p = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	pthread_mutex_init(&stats->mu, NULL);
	stats->refs = 2; /* this request and the producer */
	p->stats = stats;
	p->stdin_fd = -1;
	p->repo_path = repo_path;
	repo_path = NULL;
	if (parse_args(req->args, req->n_args, &p->args, &why) < 0) {
		struct strbuf a = STRBUF_INIT;
		strbuf_init(&a, 1 << 16);
		strbuf_add(&a, "[", 1);
		for (size_t i = 0; i < req->n_args; i++) {
			if (i)
				strbuf_add(&a, " ", 1);
			strbuf_add(&a, req->args[i], strlen(req->args[i]));
		}
		strbuf_add(&a, "]", 1);
		error_set(err, STATUS_INVALID_ARGUMENT, "invalid pack-objects command: %s: %s",
			  a.buf ? a.buf : "[]", why);
		strbuf_release(&a);
		goto out;
	}
	p->flag_store = calloc(p->args.n_flags + 1, sizeof(char *));
	for (size_t i = 0; p->flag_store && i < p->args.n_flags; i++) {
		p->flag_store[i] = strdup(p->args.flags[i]);
		p->args.flags[i] = p->flag_store[i];
	}
	if (service_git_env_init(&p->genv, p->repo_path, req->repository, err) < 0)
		goto out;
	if (!packlimit_key_from_ip(req->remote_ip, p->limit_key, sizeof(p->limit_key)))
		p->limit_key[0] = '\0';

	const char *addr = rpc_call_metadata(call, SIDECHANNEL_HEADER);
	const char *base = addr ? strrchr(addr, '/') : NULL;
	base = base ? base + 1 : addr;
	if (!addr || strcmp(base, SIDECHANNEL_NAME)) {
		error_set(err, STATUS_INVALID_ARGUMENT, "invalid side channel address: \"%s\"",
			  addr ? addr : "");
		goto out;
	}
	if (dial_sidechannel(addr, &sock, err) < 0)
		goto out;

	h = EVP_MD_CTX_new();
	if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1 || key_material(req, h) < 0) {
		error_set(err, STATUS_INTERNAL, "hash: out of memory");
		goto out;
	}
	const char *tmpdir = deps->runtime_dir && *deps->runtime_dir ? deps->runtime_dir : "/tmp";
	if (spool_stdin(sock, tmpdir, h, &p->stdin_fd, err) < 0)
		goto out;
	unsigned char md[32];
	unsigned mdlen = 0;
	char key[65];
	EVP_DigestFinal_ex(h, md, &mdlen);
	for (unsigned i = 0; i < 32; i++)
		snprintf(key + 2 * i, 3, "%02x", md[i]);

	struct packcache_producer prod = {producer_run, producer_release, p};
	p = NULL; /* consumed by the fetch */
	int rc;
	if (cache) {
		rc = packcache_fetch(cache, key, sock, &prod, &res, err);
	} else {
		rc = packcache_run_direct(sock, &prod, &res.served_bytes, err);
		res.generated_bytes = res.served_bytes;
	}
	const char *lv[] = {res.hit ? "hit" : "miss"};
	metrics_add(m_lookups, lv, 1);
	metrics_add(m_served, NULL, (double)res.served_bytes);
	rpc_call_log_field(call, "pack_objects_cache.key", json_string(key));
	rpc_call_log_field(call, "pack_objects_cache.hit", json_string(res.hit ? "true" : "false"));
	rpc_call_log_field(call, "pack_objects_cache.served_bytes",
			   json_integer((json_int_t)res.served_bytes));
	if (!res.hit) {
		rpc_call_log_field(call, "pack_objects_cache.generated_bytes",
				   json_integer((json_int_t)res.generated_bytes));
		pthread_mutex_lock(&stats->mu);
		if (stats->total[0])
			rpc_call_log_field(call, "pack_objects.compression_statistics",
					   json_string(stats->total));
		if (stats->limited)
			log_limit(call, stats);
		pthread_mutex_unlock(&stats->mu);
	}
	if (rc < 0) {
		if (err->code == STATUS_RESOURCE_EXHAUSTED)
			add_limit_detail(err);
		else if (err->code != STATUS_CANCELLED)
			err->code = STATUS_INTERNAL;
		error_prefix(err, "pack objects hook");
		goto out;
	}
	shutdown(sock, SHUT_WR);
	Gitaly__PackObjectsHookWithSidechannelResponse resp =
		GITALY__PACK_OBJECTS_HOOK_WITH_SIDECHANNEL_RESPONSE__INIT;
	ret = rpc_call_send(call, &resp.base, err);
out:
	if (h)
		EVP_MD_CTX_free(h);
	if (sock >= 0)
		close(sock);
	if (p)
		producer_release(p); /* drops the producer's stats reference */
	if (stats)
		stats_unref(stats);
	free(repo_path);
	return ret;
}
