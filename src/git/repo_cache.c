/*
 * The libgit2 repository handle cache. Opening a repository with libgit2
 * costs a few syscalls and allocations, and an open handle keeps its pack
 * indexes mapped, so handles are checked out exclusively and parked on an
 * idle list when returned, like upstream parks its cat-file processes. The
 * idle list is ordered by return time: the oldest entry is evicted when the
 * list grows past max_idle, and entries idle for more than REPO_CACHE_TTL
 * are dropped lazily on every get/put (no background thread).
 *
 * Correctness underneath: libgit2 rereads loose refs on every lookup, checks
 * packed-refs' stamp, and rescans the pack directory when an object lookup
 * misses, so a cached handle sees pushes and repacks. What it cannot notice
 * is the repository directory being replaced (removed and recreated at the
 * same path): reuse therefore checks the device and inode of the repository
 * and objects directories recorded at open time. Every handle reads objects
 * through our own object database (git/odb_loose.c): libgit2 1.5's loose
 * reader never returns on a truncated loose object.
 */
#include "git/repo_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <git2/sys/repository.h>

#include "base/metrics.h"
#include "git/odb_loose.h"

/* Idle handles older than this are closed (upstream's cat-file TTL). */
#define REPO_CACHE_TTL_MS 10000
#define REPO_CACHE_DEFAULT_MAX 100

/* Identity of a directory: inode numbers are reused at once by ext4 after
 * rm -rf, so the birth time (where the filesystem records one) is part of it. */
struct dir_id {
	uint64_t dev, ino;
	int64_t btime_sec;
	uint32_t btime_nsec;
};

struct cache_entry {
	char *repo_path;
	char *object_dir;  /* NULL when not set */
	char *alternates;  /* NULL when not set */
	git_repository *repo;
	struct dir_id repo_id, objects_id;
	int64_t idle_since_ms;
	int doomed; /* evicted while checked out: free on put */
	struct cache_entry *prev, *next;
};

struct entry_list {
	struct cache_entry *head, *tail; /* head: oldest */
	size_t len;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static size_t cache_max_idle = REPO_CACHE_DEFAULT_MAX;
static int64_t cache_ttl_ms = REPO_CACHE_TTL_MS;
static struct entry_list idle_list, busy_list;
static struct metric_family *m_cache_total, *m_members;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void global_init(void)
{
	static const char *const type_label[] = { "type" };

	git_libgit2_init();
	/* Like the git commands upstream runs: no global or system config. */
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_PROGRAMDATA, "");
	/* The locator already decided the path is ours to serve. */
	git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
	/* Open pack files across all handles: beyond this libgit2 closes the
	 * least recently used one (it reopens on demand), so a hundred cached
	 * handles on repositories with many packs cannot exhaust descriptors. */
	git_libgit2_opts(GIT_OPT_SET_MWINDOW_FILE_LIMIT, (size_t)1024);
	/* One bound for the decoded-object caches of all handles together. */
	git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)64 * 1024 * 1024);
	/* libgit2 caches only trees under 4 KiB by default (about a hundred
	 * entries) and no blobs: a bigger directory was inflated and parsed
	 * again on every TreeEntry or GetTreeEntries of a path beneath it, and
	 * a small hot file (a README) on every read. */
	git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE, (size_t)1024 * 1024);
	git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_BLOB, (size_t)64 * 1024);

	m_cache_total = metrics_counter("gitaly_catfile_cache_total",
					"Counter of catfile cache hit/miss", type_label, 1);
	m_members = metrics_gauge("gitaly_catfile_cache_members",
				  "Gauge of catfile cache members by process type", type_label, 1);
	{
		const char *hit[] = { "hit" }, *miss[] = { "miss" }, *obj[] = { "object_reader" };

		metrics_touch(m_cache_total, hit);
		metrics_touch(m_cache_total, miss);
		metrics_touch(m_members, obj);
	}
}

static void ensure_init(void)
{
	pthread_once(&init_once, global_init);
}

void repo_cache_configure(size_t max_idle)
{
	ensure_init();
	pthread_mutex_lock(&cache_lock);
	cache_max_idle = max_idle ? max_idle : REPO_CACHE_DEFAULT_MAX;
	pthread_mutex_unlock(&cache_lock);
}

static void list_append(struct entry_list *l, struct cache_entry *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
	l->len++;
}

static void list_unlink(struct entry_list *l, struct cache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
	l->len--;
}

static void entry_free(struct cache_entry *e)
{
	if (!e)
		return;
	git_repository_free(e->repo);
	free(e->repo_path);
	free(e->object_dir);
	free(e->alternates);
	free(e);
}

/* Frees a chain linked through ->next (built under the lock, freed outside). */
static void free_chain(struct cache_entry *e)
{
	while (e) {
		struct cache_entry *next = e->next;

		entry_free(e);
		e = next;
	}
}

static void count(const char *type)
{
	const char *labels[] = { type };

	metrics_add(m_cache_total, labels, 1);
}

/* Caller holds the lock. */
static void update_members(void)
{
	const char *labels[] = { "object_reader" };

	metrics_set(m_members, labels, (double)idle_list.len);
}

static int str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Moves expired and surplus idle entries onto *graveyard. Caller holds the lock. */
static void sweep_locked(struct cache_entry **graveyard, int64_t now)
{
	while (idle_list.head &&
	       (idle_list.len > cache_max_idle ||
		now - idle_list.head->idle_since_ms > cache_ttl_ms)) {
		struct cache_entry *e = idle_list.head;

		list_unlink(&idle_list, e);
		e->next = *graveyard;
		*graveyard = e;
	}
}

static int dir_id_of(const char *path, struct dir_id *id)
{
	memset(id, 0, sizeof(*id));
	struct statx stx;

	if (statx(AT_FDCWD, path, 0, STATX_INO | STATX_BTIME, &stx) < 0)
		return -1;
	id->dev = ((uint64_t)stx.stx_dev_major << 32) | stx.stx_dev_minor;
	id->ino = stx.stx_ino;
	id->btime_sec = (stx.stx_mask & STATX_BTIME) ? stx.stx_btime.tv_sec : 0;
	id->btime_nsec = (stx.stx_mask & STATX_BTIME) ? stx.stx_btime.tv_nsec : 0;
	return 0;
}

/* Device and inode of the repository directory and of its object directory. */
static int repo_ids(const char *repo_path, const char *object_dir, struct dir_id *repo_id,
		    struct dir_id *objects_id)
{
	char *objects = NULL;
	int ret = -1;

	if (dir_id_of(repo_path, repo_id) < 0)
		goto out;
	if (object_dir) {
		ret = dir_id_of(object_dir, objects_id);
		goto out;
	}
	if (asprintf(&objects, "%s/objects", repo_path) < 0) {
		objects = NULL;
		goto out;
	}
	ret = dir_id_of(objects, objects_id);
out:
	free(objects);
	return ret;
}

static int still_valid(const struct cache_entry *e)
{
	struct dir_id r, o;

	if (repo_ids(e->repo_path, e->object_dir, &r, &o) < 0)
		return 0;
	return !memcmp(&r, &e->repo_id, sizeof(r)) && !memcmp(&o, &e->objects_id, sizeof(o));
}

static int libgit2_error(struct error *err, const char *what, const char *path)
{
	const git_error *ge = git_error_last();

	return error_set(err, STATUS_INTERNAL, "%s %s: %s", what, path,
			 ge && ge->message ? ge->message : "unknown libgit2 error");
}

/*
 * Gives the handle our object database (src/git/odb_loose.c) in place of
 * libgit2's, whose loose reader hangs on truncated files: the repository's
 * objects directory, or the quarantine object_dir plus its alternates.
 */
static int install_odb(git_repository *repo, const char *object_dir, const char *alternates,
		       struct error *err)
{
	git_odb *odb = NULL;
	char *objects = NULL;
	int ret = -1;

	if (!object_dir) {
		const char *common = git_repository_commondir(repo);
		size_t n = strlen(common);

		while (n > 1 && common[n - 1] == '/')
			n--; /* commondir ends with a slash */
		if (asprintf(&objects, "%.*s/objects", (int)n, common) < 0) {
			objects = NULL;
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		alternates = NULL;
	}
	if (odb_loose_open(&odb, object_dir ? object_dir : objects, alternates, err) < 0)
		goto out;
	if (git_repository_set_odb(repo, odb) < 0) {
		libgit2_error(err, "setting object database of", object_dir ? object_dir : objects);
		goto out;
	}
	ret = 0;
out:
	free(objects);
	git_odb_free(odb);
	return ret;
}

static int entry_open(const char *repo_path, const char *object_dir, const char *alternates,
		      struct cache_entry **out, struct error *err)
{
	struct cache_entry *e = calloc(1, sizeof(*e));
	int ret = -1;

	if (!e) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	e->repo_path = strdup(repo_path);
	e->object_dir = object_dir && *object_dir ? strdup(object_dir) : NULL;
	e->alternates = alternates && *alternates ? strdup(alternates) : NULL;
	if (!e->repo_path || (object_dir && *object_dir && !e->object_dir) ||
	    (alternates && *alternates && !e->alternates)) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	/* Record the identity before opening: a swap in between then shows
	 * up as a mismatch on the next reuse rather than going unnoticed. */
	if (repo_ids(repo_path, e->object_dir, &e->repo_id, &e->objects_id) < 0) {
		error_set(err, STATUS_INTERNAL, "opening repository %s: %s", repo_path,
			  strerror(errno));
		goto out;
	}
	if (git_repository_open_ext(&e->repo, repo_path,
				    GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE,
				    NULL) < 0) {
		libgit2_error(err, "opening repository", repo_path);
		goto out;
	}
	if (install_odb(e->repo, e->object_dir, e->alternates, err) < 0)
		goto out;
	*out = e;
	e = NULL;
	ret = 0;
out:
	entry_free(e);
	return ret;
}

int repo_cache_get(const char *repo_path, const char *object_dir, const char *alternates,
		   git_repository **out, struct error *err)
{
	struct cache_entry *graveyard = NULL, *found = NULL, *e;
	int ret = -1;

	ensure_init();
	if (object_dir && !*object_dir)
		object_dir = NULL;
	if (alternates && !*alternates)
		alternates = NULL;

	pthread_mutex_lock(&cache_lock);
	sweep_locked(&graveyard, now_ms());
	/* Newest first: the most recently used handle has the warmest caches. */
	for (e = idle_list.tail; e; e = e->prev) {
		if (!strcmp(e->repo_path, repo_path) && str_eq(e->object_dir, object_dir) &&
		    str_eq(e->alternates, alternates)) {
			list_unlink(&idle_list, e);
			found = e;
			break;
		}
	}
	update_members();
	pthread_mutex_unlock(&cache_lock);
	free_chain(graveyard);

	if (found && !still_valid(found)) {
		entry_free(found);
		found = NULL;
	}
	if (found) {
		count("hit");
	} else {
		count("miss");
		if (entry_open(repo_path, object_dir, alternates, &found, err) < 0)
			goto out;
	}

	pthread_mutex_lock(&cache_lock);
	list_append(&busy_list, found);
	pthread_mutex_unlock(&cache_lock);
	*out = found->repo;
	ret = 0;
out:
	return ret;
}

void repo_cache_put(git_repository *repo)
{
	struct cache_entry *graveyard = NULL, *e;

	if (!repo)
		return;
	pthread_mutex_lock(&cache_lock);
	for (e = busy_list.head; e; e = e->next)
		if (e->repo == repo)
			break;
	if (e) {
		list_unlink(&busy_list, e);
		if (e->doomed) {
			e->next = graveyard;
			graveyard = e;
		} else {
			e->idle_since_ms = now_ms();
			list_append(&idle_list, e);
		}
	}
	sweep_locked(&graveyard, now_ms());
	update_members();
	pthread_mutex_unlock(&cache_lock);
	free_chain(graveyard);
	if (!e)
		git_repository_free(repo); /* not ours: do not leak it */
}

void repo_cache_evict(const char *repo_path)
{
	struct cache_entry *graveyard = NULL, *e, *next;

	ensure_init();
	pthread_mutex_lock(&cache_lock);
	for (e = idle_list.head; e; e = next) {
		next = e->next;
		if (!strcmp(e->repo_path, repo_path)) {
			list_unlink(&idle_list, e);
			e->next = graveyard;
			graveyard = e;
		}
	}
	for (e = busy_list.head; e; e = e->next)
		if (!strcmp(e->repo_path, repo_path))
			e->doomed = 1;
	update_members();
	pthread_mutex_unlock(&cache_lock);
	free_chain(graveyard);
}

size_t repo_cache_idle_count(void)
{
	size_t n;

	pthread_mutex_lock(&cache_lock);
	n = idle_list.len;
	pthread_mutex_unlock(&cache_lock);
	return n;
}

void repo_cache_clear(void)
{
	struct cache_entry *graveyard = NULL;

	pthread_mutex_lock(&cache_lock);
	while (idle_list.head) {
		struct cache_entry *e = idle_list.head;

		list_unlink(&idle_list, e);
		e->next = graveyard;
		graveyard = e;
	}
	update_members();
	pthread_mutex_unlock(&cache_lock);
	free_chain(graveyard);
}

void repo_cache_set_ttl_ms(int64_t ttl_ms)
{
	pthread_mutex_lock(&cache_lock);
	cache_ttl_ms = ttl_ms >= 0 ? ttl_ms : REPO_CACHE_TTL_MS;
	pthread_mutex_unlock(&cache_lock);
}

void repo_cache_shutdown(void)
{
	repo_cache_clear();
	pthread_mutex_lock(&cache_lock);
	if (!busy_list.len) {
		/* Balances the init of global_init (frees libgit2's per-thread
		 * state of this thread, which leak checkers would report). */
		git_libgit2_shutdown();
	}
	pthread_mutex_unlock(&cache_lock);
}
