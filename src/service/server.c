/*
 * gitaly.ServerService: server and git versions with per-storage status
 * (readable, writeable through a probe file, filesystem type and id),
 * disk statistics, the NTP clock check and the readiness check (always
 * ready, as upstream). The service
 * is "intercepted" upstream (no repository, no op type).
 *
 * ServerInfo is polled, so its per-storage work is kept cheap while
 * answering what upstream answers: the write probe is an unnamed O_TMPFILE
 * inode (no directory entry, so no directory lock and nothing left behind),
 * with upstream's named "+testWrite" file as the fallback, and a successful
 * probe is reused for a second while faccessat still allows writing (see
 * PROBE_REUSE_MS); the filesystem id
 * is re-read from .gitaly-metadata only when a stat of that file shows it
 * changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "git/command.h"
#include "git/storage.h"
#include "server.pb-c.h"
#include "service/ntp.h"
#include "service/server_internal.h"
#include "service/service_internal.h"

#ifndef GITALY_VERSION
#define GITALY_VERSION "0.0.0"
#endif

#define DEFAULT_NTP_HOST "pool.ntp.org"
#define INFO_STACK_STORAGES 8
#define NTP_TIMEOUT_MS 5000
/* protobuf Duration limits: +-10000 years. */
#define DURATION_MAX_SECONDS 315576000000LL

/* Upstream's probe: create, write and remove "<path>/+testWrite". */
static int probe_named(const char *path)
{
	char *probe = NULL;
	int fd, ok = 0;

	if (asprintf(&probe, "%s/+testWrite", path) < 0)
		return 0;
	fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		ok = write(fd, "testWrite", 9) == 9;
		if (close(fd) < 0)
			ok = 0;
	}
	unlink(probe);
	free(probe);
	return ok;
}

/* The real write test; 1 when an inode could be created and written. */
static int probe_write(const char *path)
{
	int fd, ok;

#ifdef O_TMPFILE
	/*
	 * The same test as upstream's (an inode can be created in the
	 * directory and written) without a directory entry: creating and
	 * unlinking a name takes the directory's lock and journals two
	 * directory updates, which serialises concurrent ServerInfo calls.
	 */
	fd = open(path, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		ok = write(fd, "testWrite", 9) == 9;
		if (close(fd) < 0)
			ok = 0;
		return ok;
	}
	/* Refusals that the named probe would meet too. */
	if (errno == EACCES || errno == EPERM || errno == EROFS || errno == ENOSPC ||
	    errno == EDQUOT || errno == ENOENT || errno == ENOTDIR)
		return 0;
	/* Otherwise (EOPNOTSUPP, EISDIR, EINVAL...): no O_TMPFILE support here. */
#endif
	(void)fd;
	(void)ok;
	return probe_named(path);
}

/*
 * Successful write probes are reused for PROBE_REUSE_MS per storage: even
 * without a directory entry, creating an inode costs ext4 a journalled
 * bitmap update, the orphan list and a scan past recently freed inodes,
 * several times the rest of a ServerInfo call. Every call still checks the
 * things that make a storage unwritable in practice (permissions, a
 * read-only mount, the immutable flag: faccessat W_OK answers those) and
 * a failed probe is never reused, so the only thing a reused result can
 * miss is a storage that turned full or failing within the last second.
 */
#define PROBE_REUSE_MS 1000
#define PROBE_CACHE_MAX 64

struct probe_entry {
	char *path;
	int64_t ok_at_ms; /* CLOCK_MONOTONIC of the last successful probe, 0: none */
};

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static struct probe_entry probe_cache[PROBE_CACHE_MAX];
static size_t probe_n;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The cache slot of path (created when there is room), or NULL; lock held. */
static struct probe_entry *probe_slot(const char *path)
{
	for (size_t i = 0; i < probe_n; i++)
		if (!strcmp(probe_cache[i].path, path))
			return &probe_cache[i];
	if (probe_n >= PROBE_CACHE_MAX)
		return NULL;
	char *p = strdup(path);
	if (!p)
		return NULL;
	probe_cache[probe_n].path = p;
	probe_cache[probe_n].ok_at_ms = 0;
	return &probe_cache[probe_n++];
}

void server_storage_probe(const char *path, int *readable, int *writeable)
{
	struct stat st;
	struct probe_entry *e;
	int64_t now, ok_at = 0;

	*readable = stat(path, &st) == 0;
	*writeable = 0;
	if (faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS) != 0) {
		int e_access = errno;
		/* A write would be refused too; forget any earlier success. */
		pthread_mutex_lock(&probe_lock);
		e = probe_slot(path);
		if (e)
			e->ok_at_ms = 0;
		pthread_mutex_unlock(&probe_lock);
		/* root passes permission checks, and so does its probe */
		if (e_access != EACCES && e_access != EROFS && e_access != EPERM)
			*writeable = probe_write(path);
		return;
	}
	now = mono_ms();
	pthread_mutex_lock(&probe_lock);
	e = probe_slot(path);
	if (e)
		ok_at = e->ok_at_ms;
	pthread_mutex_unlock(&probe_lock);
	if (ok_at && now - ok_at < PROBE_REUSE_MS) {
		*writeable = 1;
		return;
	}
	*writeable = probe_write(path);
	pthread_mutex_lock(&probe_lock);
	e = probe_slot(path);
	if (e)
		e->ok_at_ms = *writeable ? now : 0;
	pthread_mutex_unlock(&probe_lock);
}

/*
 * The filesystem id of each storage, keyed by the storage path and the
 * identity of its .gitaly-metadata file (device, inode, size, mtime,
 * ctime): any rewrite, even in place, changes one of those, so a hit is
 * exactly what reading the file would give.
 */
#define FSID_CACHE_MAX 64

struct fsid_entry {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	char *id;
};

static pthread_mutex_t fsid_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fsid_entry fsid_cache[FSID_CACHE_MAX];
static size_t fsid_n;

static int same_file(const struct fsid_entry *e, const struct stat *st)
{
	return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

int server_filesystem_id(const char *path, char **out, struct error *err)
{
	char *file = NULL;
	struct stat st, st2;
	int have_stat, ret = -1;

	*out = NULL;
	if (asprintf(&file, "%s/%s", path, STORAGE_METADATA_FILE) < 0) {
		file = NULL;
		return storage_filesystem_id(path, out, err);
	}
	have_stat = stat(file, &st) == 0 && S_ISREG(st.st_mode);
	if (have_stat) {
		pthread_mutex_lock(&fsid_lock);
		for (size_t i = 0; i < fsid_n; i++) {
			if (fsid_cache[i].id && !strcmp(fsid_cache[i].path, path) &&
			    same_file(&fsid_cache[i], &st)) {
				*out = strdup(fsid_cache[i].id);
				break;
			}
		}
		pthread_mutex_unlock(&fsid_lock);
		if (*out) {
			ret = 0;
			goto out;
		}
	}
	if (storage_filesystem_id(path, out, err) < 0)
		goto out;
	ret = 0;
	/* Cache only when the file did not change while it was read. */
	if (!have_stat || stat(file, &st2) != 0)
		goto out;
	{
		struct fsid_entry probe = { .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
					    .mtime = st.st_mtim, .ctime = st.st_ctim };
		if (!same_file(&probe, &st2))
			goto out;
	}
	pthread_mutex_lock(&fsid_lock);
	{
		struct fsid_entry *e = NULL;
		for (size_t i = 0; i < fsid_n && !e; i++)
			if (!strcmp(fsid_cache[i].path, path))
				e = &fsid_cache[i];
		if (!e && fsid_n < FSID_CACHE_MAX) {
			char *p = strdup(path);
			if (p) {
				e = &fsid_cache[fsid_n++];
				memset(e, 0, sizeof(*e));
				e->path = p;
			}
		}
		char *id = e ? strdup(*out) : NULL;
		if (e && id) {
			free(e->id);
			e->id = id;
			e->dev = st.st_dev;
			e->ino = st.st_ino;
			e->size = st.st_size;
			e->mtime = st.st_mtim;
			e->ctime = st.st_ctim;
		}
	}
	pthread_mutex_unlock(&fsid_lock);
out:
	if (ret == 0 && !*out) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		ret = -1;
	}
	free(file);
	return ret;
}

int server_check_duration(const Google__Protobuf__Duration *d, int64_t *out_ns,
			  struct error *err)
{
	if (!d)
		return error_set(err, STATUS_INVALID_ARGUMENT, "invalid nil Duration");
	if (d->seconds < -DURATION_MAX_SECONDS)
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "duration (seconds:%lld nanos:%d) exceeds -10000 years",
				 (long long)d->seconds, d->nanos);
	if (d->seconds > DURATION_MAX_SECONDS)
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "duration (seconds:%lld nanos:%d) exceeds +10000 years",
				 (long long)d->seconds, d->nanos);
	if (d->nanos <= -1000000000 || d->nanos >= 1000000000)
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "duration (seconds:%lld nanos:%d) has out-of-range nanos",
				 (long long)d->seconds, d->nanos);
	if ((d->seconds > 0 && d->nanos < 0) || (d->seconds < 0 && d->nanos > 0))
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "duration (seconds:%lld nanos:%d) has seconds and nanos with different signs",
				 (long long)d->seconds, d->nanos);
	/* Go's AsDuration saturates at the int64 nanosecond range. */
	if (d->seconds > INT64_MAX / 1000000000LL - 1)
		*out_ns = INT64_MAX;
	else if (d->seconds < INT64_MIN / 1000000000LL + 1)
		*out_ns = INT64_MIN;
	else
		*out_ns = d->seconds * 1000000000LL + d->nanos;
	return 0;
}

int server_clock_synced(const char *ntp_host, int64_t threshold_ns, int timeout_ms, int *synced,
			struct error *err)
{
	struct ntp_response resp;
	const char *host = ntp_host && *ntp_host ? ntp_host : DEFAULT_NTP_HOST;

	if (ntp_query(host, timeout_ms, &resp, err) < 0)
		return error_prefix(err, "query ntp host %s", host);
	if (ntp_validate(&resp, err) < 0)
		return error_prefix(err, "validate ntp response");
	*synced = !(resp.clock_offset_ns > threshold_ns || resp.clock_offset_ns < -threshold_ns);
	return 0;
}

static int server_info(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const struct config *cfg = deps->cfg;
	Gitaly__ServerInfoResponse resp = GITALY__SERVER_INFO_RESPONSE__INIT;
	Gitaly__ServerInfoResponse__StorageStatus *statuses = NULL, **ptrs = NULL;
	/* a polled call: the usual handful of storages needs no malloc */
	Gitaly__ServerInfoResponse__StorageStatus statuses_s[INFO_STACK_STORAGES];
	Gitaly__ServerInfoResponse__StorageStatus *ptrs_s[INFO_STACK_STORAGES];
	char *ids_s[INFO_STACK_STORAGES];
	char *git_ver = NULL;
	char **ids = NULL;
	int ret = -1;

	if (git_version(&git_ver, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	if (cfg->n_storages <= INFO_STACK_STORAGES) {
		statuses = statuses_s;
		ptrs = ptrs_s;
		ids = ids_s;
		memset(ids_s, 0, sizeof(ids_s));
	} else {
		statuses = calloc(cfg->n_storages + 1, sizeof(*statuses));
		ptrs = calloc(cfg->n_storages + 1, sizeof(*ptrs));
		ids = calloc(cfg->n_storages + 1, sizeof(*ids));
	}
	if (!statuses || !ptrs || !ids) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	server_storage_status_check();
	for (size_t i = 0; i < cfg->n_storages; i++) {
		Gitaly__ServerInfoResponse__StorageStatus *s = &statuses[i];
		struct server_storage_status st;

		gitaly__server_info_response__storage_status__init(s);
		server_storage_status(cfg->storages[i].path, &st);
		if (st.fsid_error) {
			/* Upstream logs the problem and reports an empty id. */
			log_msg(LOG_ERROR, "reading gitaly metadata file: storage %s: %s",
				cfg->storages[i].name, st.fsid_error);
		}
		ids[i] = st.fsid;
		st.fsid = NULL;
		server_storage_status_release(&st);
		s->storage_name = cfg->storages[i].name;
		s->readable = st.readable;
		s->writeable = st.writeable;
		s->fs_type = (char *)st.fs_type;
		s->filesystem_id = ids[i] ? ids[i] : (char *)"";
		s->replication_factor = 1;
		ptrs[i] = s;
	}
	resp.server_version = (char *)GITALY_VERSION;
	resp.git_version = git_ver;
	resp.n_storage_statuses = cfg->n_storages;
	resp.storage_statuses = ptrs;
	ret = rpc_call_send(call, &resp.base, err);
out:
	for (size_t i = 0; ids && i < cfg->n_storages; i++)
		free(ids[i]);
	if (ids != ids_s) {
		free(ids);
		free(ptrs);
		free(statuses);
	}
	free(git_ver);
	return ret;
}

int server_disk_status(const char *path, int64_t *available, int64_t *used)
{
	struct statvfs st;

	if (statvfs(path, &st) < 0)
		return -1;
	*available = (int64_t)st.f_bavail * (int64_t)st.f_bsize;
	*used = ((int64_t)st.f_blocks - (int64_t)st.f_bfree) * (int64_t)st.f_bsize;
	return 0;
}

static int server_disk_statistics(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const struct config *cfg = deps->cfg;
	Gitaly__DiskStatisticsResponse resp = GITALY__DISK_STATISTICS_RESPONSE__INIT;
	Gitaly__DiskStatisticsResponse__StorageStatus *statuses = NULL, **ptrs = NULL;
	int ret = -1;

	statuses = calloc(cfg->n_storages + 1, sizeof(*statuses));
	ptrs = calloc(cfg->n_storages + 1, sizeof(*ptrs));
	if (!statuses || !ptrs) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < cfg->n_storages; i++) {
		Gitaly__DiskStatisticsResponse__StorageStatus *s = &statuses[i];
		int64_t avail = 0, used = 0;

		gitaly__disk_statistics_response__storage_status__init(s);
		s->storage_name = cfg->storages[i].name;
		if (server_disk_status(cfg->storages[i].path, &avail, &used) < 0) {
			/* Upstream logs and reports the storage with zero values. */
			log_msg(LOG_ERROR, "to retrieve shard disk statistics: storage %s: %s",
				cfg->storages[i].name, strerror(errno));
		} else {
			s->available = avail;
			s->used = used;
		}
		ptrs[i] = s;
	}
	resp.n_storage_statuses = cfg->n_storages;
	resp.storage_statuses = ptrs;
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(ptrs);
	free(statuses);
	return ret;
}

static int server_clock_synced_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ClockSyncedRequest *req =
		(const Gitaly__ClockSyncedRequest *)rpc_call_request(call);
	Gitaly__ClockSyncedResponse resp = GITALY__CLOCK_SYNCED_RESPONSE__INIT;
	int64_t threshold, timeout = NTP_TIMEOUT_MS, deadline, now;
	struct timespec ts;
	int synced = 0;

	if (server_check_duration(req ? req->drift_threshold : NULL, &threshold, err) < 0)
		return -1;
	/* Never wait for the NTP server beyond the call's own deadline. */
	deadline = rpc_call_deadline_ms(call);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (deadline != INT64_MAX && deadline - now < timeout)
		timeout = deadline - now > 1 ? deadline - now : 1;
	if (server_clock_synced(req->ntp_host, threshold, (int)timeout, &synced, err) < 0)
		return -1;
	resp.synced = synced;
	return rpc_call_send(call, &resp.base, err);
}

static int server_readiness_check(struct rpc_call *call, struct error *err)
{
	Gitaly__ReadinessCheckResponse resp = GITALY__READINESS_CHECK_RESPONSE__INIT;
	Gitaly__ReadinessCheckResponse__Ok ok = GITALY__READINESS_CHECK_RESPONSE__OK__INIT;

	resp.result_case = GITALY__READINESS_CHECK_RESPONSE__RESULT_OK_RESPONSE;
	resp.ok_response = &ok;
	return rpc_call_send(call, &resp.base, err);
}

#define M(name, req, resp, fn)                                                                 \
	{ name, RPC_UNARY, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn,     \
	  RPC_OP_UNKNOWN, RPC_SCOPE_STORAGE }

static const struct rpc_method server_methods[] = {
	M("ServerInfo", server_info_request, server_info_response, server_info),
	M("DiskStatistics", disk_statistics_request, disk_statistics_response,
	  server_disk_statistics),
	M("ClockSynced", clock_synced_request, clock_synced_response, server_clock_synced_rpc),
	M("ReadinessCheck", readiness_check_request, readiness_check_response,
	  server_readiness_check),
};

void service_server_init(struct rpc_service *svc, struct service_deps *deps)
{
	svc->name = "gitaly.ServerService";
	svc->methods = server_methods;
	svc->n_methods = sizeof(server_methods) / sizeof(server_methods[0]);
	svc->data = deps;
}
