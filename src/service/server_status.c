/*
 * The per-storage part of ServerInfo (readable, writeable, filesystem type
 * and id), remembered between calls. ServerInfo is polled by every client,
 * and its four file-system calls per storage are most of its cost on a busy
 * server, so a storage's status is reused for up to STATUS_REUSE_MS as long
 * as nothing it depends on has visibly changed. "Visibly" is decided by the
 * kernel: an inotify watch on each storage directory reports a chmod/chown
 * or flag change of the directory, its removal or rename, and any change to
 * its .gitaly-metadata; /proc/self/mountinfo reports mounts and remounts
 * (read-only, a file system mounted over the storage). Every call checks
 * both with one non-blocking poll(2) (server_storage_status_check, once per
 * call for all storages) and reads the events it finds, so a
 * change made before a call is seen by that call (no watcher thread to wait
 * for). What no event reports (a parent directory's permissions, a full
 * disk, failing I/O) is re-checked when the entry is a second old. Without
 * inotify (no instances left, unsupported file system) every call reads
 * everything, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "git/storage.h"
#include "service/server_internal.h"

#define STATUS_REUSE_MS 1000
#define STATUS_CACHE_MAX 64

#define WATCH_MASK                                                                             \
	(IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |     \
	 IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct status_entry {
	char *path;
	int wd;          /* inotify watch on path, -1: none */
	uint64_t seq;    /* bumped by every event that concerns the entry */
	int64_t at_ms;   /* CLOCK_MONOTONIC when filled, 0: not usable */
	int readable, writeable;
	const char *fs_type;
	char *fsid;
};

static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static int ino_fd = -1, mnt_fd = -1;
static struct status_entry cache[STATUS_CACHE_MAX];
static size_t cache_n;
static uint64_t n_hits, n_reads; /* atomics, for tests */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void watch_init(void)
{
	ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ino_fd < 0)
		return;
	mnt_fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (mnt_fd < 0) {
		close(ino_fd);
		ino_fd = -1;
	}
}

static void forget(struct status_entry *e)
{
	e->seq++;
	e->at_ms = 0;
}

/* Applies one inotify event; lock held. */
static void apply_event(const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		for (size_t i = 0; i < cache_n; i++)
			forget(&cache[i]);
		return;
	}
	for (size_t i = 0; i < cache_n; i++) {
		struct status_entry *e = &cache[i];
		if (e->wd != ev->wd)
			continue;
		if (ev->mask & (IN_IGNORED | IN_MOVE_SELF | IN_DELETE_SELF)) {
			/*
			 * Gone, unmounted or renamed (the watch would follow the
			 * directory to its new name): watch the path afresh on
			 * the next refresh.
			 */
			if (!(ev->mask & IN_IGNORED))
				inotify_rm_watch(ino_fd, ev->wd);
			e->wd = -1;
			forget(e);
		} else if (!ev->len || !strcmp(ev->name, STORAGE_METADATA_FILE)) {
			/* the directory itself, or the file the id comes from */
			forget(e);
		}
	}
}

/* Reads whatever the watches reported since the last call; lock held. */
static void drain_locked(int ino_ready, int mnt_ready)
{
	if (mnt_ready) {
		for (size_t i = 0; i < cache_n; i++)
			forget(&cache[i]);
	}
	while (ino_ready) {
		char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t n = read(ino_fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			apply_event(ev);
			p += sizeof(*ev) + ev->len;
		}
	}
}

/* One poll(2) for both sources, then the events under the lock. */
static void check_events(void)
{
	struct pollfd fds[2] = {
		{ .fd = ino_fd, .events = POLLIN },
		{ .fd = mnt_fd, .events = POLLPRI },
	};
	int ino_ready = 0, mnt_ready = 0;

	if (poll(fds, 2, 0) > 0) {
		ino_ready = (fds[0].revents & POLLIN) != 0;
		mnt_ready = (fds[1].revents & (POLLPRI | POLLERR)) != 0;
	}
	pthread_mutex_lock(&status_lock);
	drain_locked(ino_ready, mnt_ready);
	pthread_mutex_unlock(&status_lock);
}

/* The entry of path, created when there is room; lock held. */
static struct status_entry *entry_of(const char *path)
{
	for (size_t i = 0; i < cache_n; i++)
		if (!strcmp(cache[i].path, path))
			return &cache[i];
	if (cache_n >= STATUS_CACHE_MAX)
		return NULL;
	char *p = strdup(path);
	if (!p)
		return NULL;
	struct status_entry *e = &cache[cache_n++];
	memset(e, 0, sizeof(*e));
	e->path = p;
	e->wd = -1;
	return e;
}

/* Reads everything (the work of an uncached call). */
static void read_status(const char *path, struct server_storage_status *out)
{
	struct error ierr = ERROR_INIT;

	__atomic_add_fetch(&n_reads, 1, __ATOMIC_RELAXED);
	server_storage_probe(path, &out->readable, &out->writeable);
	out->fs_type = storage_fs_type(path);
	out->fsid = NULL;
	out->fsid_error = NULL;
	if (server_filesystem_id(path, &out->fsid, &ierr) < 0) {
		out->fsid = NULL;
		out->fsid_error = ierr.message ? strdup(ierr.message) : strdup("");
	}
	error_release(&ierr);
}

void server_storage_status_check(void)
{
	pthread_once(&watch_once, watch_init);
	if (ino_fd >= 0)
		check_events();
}

void server_storage_status(const char *path, struct server_storage_status *out)
{
	struct status_entry *e;
	uint64_t seq = 0;
	int64_t now = mono_ms();
	int cacheable = 0;

	memset(out, 0, sizeof(*out));
	pthread_once(&watch_once, watch_init);
	if (ino_fd < 0) {
		read_status(path, out);
		return;
	}
	pthread_mutex_lock(&status_lock);
	e = entry_of(path);
	if (e && e->at_ms && e->wd >= 0 && now - e->at_ms < STATUS_REUSE_MS) {
		out->readable = e->readable;
		out->writeable = e->writeable;
		out->fs_type = e->fs_type;
		out->fsid = strdup(e->fsid);
		pthread_mutex_unlock(&status_lock);
		if (out->fsid) {
			__atomic_add_fetch(&n_hits, 1, __ATOMIC_RELAXED);
			return;
		}
		read_status(path, out); /* out of memory: read it the long way */
		return;
	}
	if (e) {
		/* The watch exists before anything is read, so a change made while
		 * reading bumps seq and the result is not kept. */
		if (e->wd < 0) {
			int wd = inotify_add_watch(ino_fd, path, WATCH_MASK);
			/* (one inode under two paths shares a wd: events go to both) */
			if (wd >= 0)
				e->wd = wd;
		}
		cacheable = e->wd >= 0;
		seq = e->seq;
	}
	pthread_mutex_unlock(&status_lock);

	read_status(path, out);
	if (!cacheable || !out->fsid)
		return;

	check_events();
	pthread_mutex_lock(&status_lock);
	if (e->seq == seq && e->wd >= 0) {
		char *id = strdup(out->fsid);
		if (id) {
			free(e->fsid);
			e->fsid = id;
			e->readable = out->readable;
			e->writeable = out->writeable;
			e->fs_type = out->fs_type;
			e->at_ms = now;
		}
	}
	pthread_mutex_unlock(&status_lock);
}

void server_storage_status_release(struct server_storage_status *st)
{
	free(st->fsid);
	free(st->fsid_error);
	st->fsid = NULL;
	st->fsid_error = NULL;
}

void server_storage_status_counts(uint64_t *hits, uint64_t *reads)
{
	*hits = __atomic_load_n(&n_hits, __ATOMIC_RELAXED);
	*reads = __atomic_load_n(&n_reads, __ATOMIC_RELAXED);
}
