/*
 * Loose references known to be absent, kept true by inotify (see
 * refwatch.h). One inotify instance for the process, opened on first use;
 * a set-associative table of repositories (least recently used way
 * replaced), each with the directories it watches and the names found
 * missing under the current generation. Every event on a watched
 * directory, and a queue overflow, resets the repositories holding it:
 * new generation, watches removed, nothing remembered. All state is under
 * one mutex; the queue is read under it, so a lookup that found the queue
 * empty knows every earlier change has been applied.
 */
#include "git/refwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "git/locator.h"

#define RW_SETS 32
#define RW_WAYS 4
#define RW_DIRS 8   /* watched directories per repository */
#define RW_NAMES 16 /* remembered misses per repository */
#define RW_PATH_MAX 4096

/* Anything that changes a watched directory's entries or access, or the
 * directory itself (IN_IGNORED and IN_UNMOUNT always come too). */
#define RW_EVENTS                                                                     \
	(IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | \
	 IN_MOVE_SELF)

struct rw_repo {
	char *gitdir; /* NULL: free way */
	struct locator_stamp stamp;
	int local; /* on a file system whose changes inotify reports */
	int stuck; /* a directory on the way could not be watched */
	uint64_t gen, used;
	int wd[RW_DIRS];
	char *dir[RW_DIRS]; /* relative to gitdir */
	unsigned n_dirs;
	char *absent[RW_NAMES];
	unsigned n_absent, next_absent;
};

static struct rw_repo repos[RW_SETS * RW_WAYS];
static pthread_mutex_t rw_mu = PTHREAD_MUTEX_INITIALIZER;
static int rw_fd = -2; /* -2: not opened yet; -1: not available */
static uint64_t rw_gen, rw_tick;
static unsigned long rw_hits;
static unsigned rw_watches;

unsigned long refwatch_test_hits(void)
{
	return __atomic_load_n(&rw_hits, __ATOMIC_RELAXED);
}

/* Caller holds rw_mu. */
static int wd_shared(const struct rw_repo *self, int wd)
{
	for (size_t i = 0; i < sizeof(repos) / sizeof(repos[0]); i++) {
		if (&repos[i] == self || !repos[i].gitdir)
			continue;
		for (unsigned d = 0; d < repos[i].n_dirs; d++)
			if (repos[i].wd[d] == wd)
				return 1;
	}
	return 0;
}

/* Forgets everything about r's references: new generation, no watches,
 * no misses. Caller holds rw_mu. */
static void reset_locked(struct rw_repo *r)
{
	for (unsigned d = 0; d < r->n_dirs; d++) {
		if (!wd_shared(r, r->wd[d])) {
			inotify_rm_watch(rw_fd, r->wd[d]);
			rw_watches--;
		}
		free(r->dir[d]);
	}
	r->n_dirs = 0;
	for (unsigned i = 0; i < r->n_absent; i++)
		free(r->absent[i]);
	r->n_absent = r->next_absent = 0;
	r->stuck = 0;
	r->gen = ++rw_gen;
}

static void reset_all_locked(void)
{
	for (size_t i = 0; i < sizeof(repos) / sizeof(repos[0]); i++)
		if (repos[i].gitdir)
			reset_locked(&repos[i]);
}

/* Applies every queued event. Caller holds rw_mu. */
static void drain_locked(void)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(rw_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			/* Cannot tell what happened: trust nothing remembered. */
			reset_all_locked();
			return;
		}
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW) {
				reset_all_locked();
			} else {
				for (size_t i = 0; i < sizeof(repos) / sizeof(repos[0]); i++)
					for (unsigned d = 0; d < repos[i].n_dirs; d++)
						if (repos[i].wd[d] == ev->wd) {
							reset_locked(&repos[i]);
							break;
						}
			}
			p += sizeof(*ev) + ev->len;
		}
		/* A read that left room for the largest event emptied the queue. */
		if ((size_t)n < sizeof(buf) - sizeof(struct inotify_event) - 256)
			return;
	}
}

/* File systems on which every change goes through this kernel's VFS. */
static int local_fs(const char *path)
{
	struct statfs sf;

	if (statfs(path, &sf) < 0)
		return 0;
	switch ((unsigned long)sf.f_type) {
	case 0xEF53UL:     /* ext2/3/4 */
	case 0x58465342UL: /* xfs */
	case 0x9123683EUL: /* btrfs */
	case 0x01021994UL: /* tmpfs */
		return 1;
	default:
		return 0;
	}
}

static size_t set_of(const char *gitdir)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)gitdir; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % RW_SETS);
}

void refwatch_begin(const char *gitdir, struct refwatch_ticket *t)
{
	struct locator_stamp now;
	struct rw_repo *r = NULL, *way;
	size_t set;

	t->slot = -1;
	t->gen = 0;
	if (!locator_recent_stamp(gitdir, &now) || !now.trusted)
		return;
	set = set_of(gitdir);
	pthread_mutex_lock(&rw_mu);
	if (rw_fd == -2)
		rw_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (rw_fd < 0)
		goto out;
	drain_locked();
	way = &repos[set * RW_WAYS];
	for (int w = 0; w < RW_WAYS; w++)
		if (way[w].gitdir && !strcmp(way[w].gitdir, gitdir))
			r = &way[w];
	if (r && !locator_stamp_equal(&r->stamp, &now)) {
		reset_locked(r);
		r->stamp = now;
	}
	if (!r) {
		char *copy = strdup(gitdir);

		if (!copy)
			goto out;
		/* an empty way, else the least recently used one */
		r = &way[0];
		for (int w = 0; w < RW_WAYS && r->gitdir; w++)
			if (!way[w].gitdir || way[w].used < r->used)
				r = &way[w];
		if (r->gitdir) {
			reset_locked(r);
			free(r->gitdir);
		}
		r->gitdir = copy;
		r->stamp = now;
		r->local = local_fs(gitdir);
		r->gen = ++rw_gen;
	}
	r->used = ++rw_tick;
	if (r->local) {
		t->slot = (int)(r - repos);
		t->gen = r->gen;
	}
out:
	pthread_mutex_unlock(&rw_mu);
}

/* The repository of t while its generation holds. Caller holds rw_mu. */
static struct rw_repo *ticket_repo(const struct refwatch_ticket *t)
{
	if (t->slot < 0 || repos[t->slot].gen != t->gen)
		return NULL;
	return &repos[t->slot];
}

int refwatch_absent(const struct refwatch_ticket *t, const char *name)
{
	struct rw_repo *r;
	int found = 0;

	if (t->slot < 0)
		return 0;
	pthread_mutex_lock(&rw_mu);
	r = ticket_repo(t);
	for (unsigned i = 0; r && i < r->n_absent && !found; i++)
		found = !strcmp(r->absent[i], name);
	if (found)
		rw_hits++;
	pthread_mutex_unlock(&rw_mu);
	return found;
}

int refwatch_prepare(const struct refwatch_ticket *t, const char *gitdir, const char *name)
{
	char path[RW_PATH_MAX];
	struct rw_repo *r;
	int ok = 0;

	if (t->slot < 0)
		return 0;
	pthread_mutex_lock(&rw_mu);
	r = ticket_repo(t);
	if (!r || r->stuck)
		goto out;
	/* Each directory on the way, outermost first; the first one missing
	 * ends it (its creation is an event in the one above it, and the
	 * repository directory's own entries are under the stamp). */
	for (const char *slash = strchr(name, '/'); slash; slash = strchr(slash + 1, '/')) {
		size_t plen = (size_t)(slash - name);
		unsigned d;
		int wd;

		for (d = 0; d < r->n_dirs; d++)
			if (strlen(r->dir[d]) == plen && !memcmp(r->dir[d], name, plen))
				break;
		if (d < r->n_dirs)
			continue;
		if (r->n_dirs == RW_DIRS ||
		    (size_t)snprintf(path, sizeof(path), "%s/%.*s", gitdir, (int)plen, name) >=
			    sizeof(path))
			goto stuck;
		wd = inotify_add_watch(rw_fd, path, RW_EVENTS | IN_ONLYDIR | IN_DONT_FOLLOW);
		if (wd < 0) {
			if (errno == ENOENT)
				break;
			goto stuck; /* a symlink, a file, no watch left */
		}
		for (d = 0; d < r->n_dirs && r->wd[d] != wd; d++)
			;
		if (d < r->n_dirs)
			continue; /* the same directory by another name */
		r->dir[r->n_dirs] = strndup(name, plen);
		if (!r->dir[r->n_dirs]) {
			if (!wd_shared(r, wd))
				inotify_rm_watch(rw_fd, wd);
			goto out;
		}
		if (!wd_shared(r, wd))
			rw_watches++;
		r->wd[r->n_dirs++] = wd;
	}
	ok = 1;
	goto out;
stuck:
	/* Not tried again until something changes (or the stamp does):
	 * no watch system calls on every request. */
	r->stuck = 1;
out:
	pthread_mutex_unlock(&rw_mu);
	return ok;
}

void refwatch_note_absent(const struct refwatch_ticket *t, const char *name)
{
	struct rw_repo *r;
	char *copy;

	if (t->slot < 0)
		return;
	copy = strdup(name);
	if (!copy)
		return;
	pthread_mutex_lock(&rw_mu);
	r = ticket_repo(t);
	if (r) {
		if (r->n_absent < RW_NAMES) {
			r->absent[r->n_absent++] = copy;
		} else {
			free(r->absent[r->next_absent]);
			r->absent[r->next_absent] = copy;
			r->next_absent = (r->next_absent + 1) % RW_NAMES;
		}
		copy = NULL;
	}
	pthread_mutex_unlock(&rw_mu);
	free(copy);
}

void refwatch_test_overflow(void)
{
	pthread_mutex_lock(&rw_mu);
	if (rw_fd >= 0)
		reset_all_locked();
	pthread_mutex_unlock(&rw_mu);
}

unsigned refwatch_test_watches(void)
{
	unsigned n;

	pthread_mutex_lock(&rw_mu);
	n = rw_watches;
	pthread_mutex_unlock(&rw_mu);
	return n;
}
