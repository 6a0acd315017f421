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
 *
 * SHA-256 repositories (extensions.objectFormat in their config, checked
 * when an entry is opened) cannot be opened by libgit2 1.5: their entries
 * hold a `git cat-file --batch-command` process (git/catfile.c) instead,
 * under the same key, bounds, TTL and identity check. git itself rereads
 * refs and rescans packs on a miss, so the reader sees pushes and repacks
 * too; a reader whose process failed is closed when returned.
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
#include "git/catfile.h"
#include "git/locator.h"
#include "git/objmemo.h"
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
	git_repository *repo;  /* SHA-1 repositories */
	struct catfile *cf;    /* SHA-256 repositories: a cat-file process */
	struct dir_id repo_id, objects_id;
	/* The locator's stamp of the repository directory when the identity
	 * above was last confirmed (stamp_ok set): while the directory keeps
	 * those times, objects cannot have been replaced either. */
	struct locator_stamp stamp;
	int stamp_ok;
	struct objmemo *memo; /* repo_cache_objmemo, made on first use */
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
/* Idle cat-file readers are processes: a reaper thread (started with the
 * first one) closes them once past the TTL even when no request comes by
 * to sweep. */
static pthread_once_t reaper_once = PTHREAD_ONCE_INIT;
static pthread_cond_t reaper_cond = PTHREAD_COND_INITIALIZER;
static pthread_t reaper_thread;
static int reaper_running, reaper_stop;
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

/*
 * libgit2 is initialised on the first repository opened, not at startup:
 * its init also sets up TLS for remotes (on Debian: mbedtls parsing the
 * whole system CA bundle), which costs idle memory in a server that may
 * never need it (ServerInfo, hooks...). Only repo_cache_get opens handles.
 */
static pthread_once_t libgit2_once = PTHREAD_ONCE_INIT;
static int libgit2_ready; /* read with atomics (shutdown) */

static void libgit2_init(void)
{
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
	__atomic_store_n(&libgit2_ready, 1, __ATOMIC_RELEASE);
}

/* The metrics exist from startup, as upstream registers them. */
static void global_init(void)
{
	static const char *const type_label[] = { "type" };

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

static void sweep_locked(struct cache_entry **graveyard, int64_t now);
static void free_chain(struct cache_entry *e);
static void update_members(void);

/* Sweeps the idle list once a second until repo_cache_shutdown. */
static void *reaper_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cache_lock);
	while (!reaper_stop) {
		struct cache_entry *graveyard = NULL;
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&reaper_cond, &cache_lock, &until);
		if (reaper_stop)
			break;
		sweep_locked(&graveyard, now_ms());
		update_members();
		pthread_mutex_unlock(&cache_lock);
		free_chain(graveyard);
		pthread_mutex_lock(&cache_lock);
	}
	pthread_mutex_unlock(&cache_lock);
	return NULL;
}

static void start_reaper(void)
{
	pthread_mutex_lock(&cache_lock);
	reaper_running = pthread_create(&reaper_thread, NULL, reaper_main, NULL) == 0;
	pthread_mutex_unlock(&cache_lock);
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
	objmemo_free(e->memo);
	git_repository_free(e->repo);
	catfile_close(e->cf);
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

/*
 * The entry still names the directories it was opened on. When the locator
 * has just stamped the repository directory for this request and the stamp
 * equals the one recorded at the last full check, nothing in the directory
 * was created, removed or renamed since (objects included), so no system
 * call is needed. Quarantine entries (a separate object directory) always
 * look at both directories.
 */
static int still_valid(struct cache_entry *e)
{
	struct dir_id r, o;
	struct locator_stamp cur;
	int have = !e->object_dir && locator_recent_stamp(e->repo_path, &cur) && cur.trusted;

	if (have && e->stamp_ok && locator_stamp_equal(&cur, &e->stamp))
		return 1;
	if (repo_ids(e->repo_path, e->object_dir, &r, &o) < 0)
		return 0;
	if (memcmp(&r, &e->repo_id, sizeof(r)) || memcmp(&o, &e->objects_id, sizeof(o)))
		return 0;
	/* The stamp was taken before these looks: a change after it moves it. */
	if (have && cur.dev == r.dev && cur.ino == r.ino && cur.btime_sec == r.btime_sec &&
	    cur.btime_nsec == r.btime_nsec) {
		e->stamp = cur;
		e->stamp_ok = 1;
	}
	return 1;
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
	if (repo_cache_is_sha256(repo_path)) {
		if (catfile_open(repo_path, e->object_dir, e->alternates, &e->cf, err) < 0)
			goto out;
		pthread_once(&reaper_once, start_reaper);
		*out = e;
		e = NULL;
		ret = 0;
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

static int cache_get(const char *repo_path, const char *object_dir, const char *alternates,
		     struct cache_entry **out, struct error *err)
{
	struct cache_entry *graveyard = NULL, *found = NULL, *e;
	int ret = -1;

	ensure_init();
	pthread_once(&libgit2_once, libgit2_init);
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
	*out = found;
	ret = 0;
out:
	return ret;
}

/* Returns a checked-out entry (matched by its libgit2 handle or its reader)
 * to the idle list; a broken reader is closed instead. 0 when not ours. */
static int cache_put(git_repository *repo, struct catfile *cf)
{
	struct cache_entry *graveyard = NULL, *e;

	pthread_mutex_lock(&cache_lock);
	for (e = busy_list.head; e; e = e->next)
		if ((repo && e->repo == repo) || (cf && e->cf == cf))
			break;
	if (e) {
		list_unlink(&busy_list, e);
		if (e->doomed || (e->cf && !catfile_usable(e->cf))) {
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
	return e != NULL;
}

int repo_cache_get(const char *repo_path, const char *object_dir, const char *alternates,
		   git_repository **out, struct error *err)
{
	struct cache_entry *e;

	*out = NULL;
	if (cache_get(repo_path, object_dir, alternates, &e, err) < 0)
		return -1;
	if (!e->repo) {
		cache_put(NULL, e->cf);
		return error_set(err, STATUS_INTERNAL,
				 "opening repository %s: object format sha256 has no in-process "
				 "reader", repo_path);
	}
	*out = e->repo;
	return 0;
}

void repo_cache_put(git_repository *repo)
{
	if (repo && !cache_put(repo, NULL))
		git_repository_free(repo); /* not ours: do not leak it */
}

struct objmemo *repo_cache_objmemo(git_repository *repo)
{
	struct cache_entry *e;
	struct objmemo *m = NULL;

	pthread_mutex_lock(&cache_lock);
	for (e = busy_list.tail; e; e = e->prev)
		if (e->repo == repo)
			break;
	if (e && !e->memo)
		e->memo = objmemo_new();
	if (e)
		m = e->memo;
	pthread_mutex_unlock(&cache_lock);
	return m;
}

int repo_cache_get_handle(const char *repo_path, const char *object_dir, const char *alternates,
			  struct repo_handle *out, struct error *err)
{
	struct cache_entry *e;

	memset(out, 0, sizeof(*out));
	if (cache_get(repo_path, object_dir, alternates, &e, err) < 0)
		return -1;
	out->repo = e->repo;
	out->cf = e->cf;
	return 0;
}

void repo_cache_put_handle(struct repo_handle *h)
{
	if (!h)
		return;
	if (h->repo)
		repo_cache_put(h->repo);
	else if (h->cf && !cache_put(NULL, h->cf))
		catfile_close(h->cf);
	memset(h, 0, sizeof(*h));
}

/* Lowercases s in place. */
static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

int repo_cache_is_sha256(const char *repo_path)
{
	char *path = NULL, line[512], section[64] = "";
	FILE *f = NULL;
	int found = 0;

	if (asprintf(&path, "%s/config", repo_path) < 0)
		return 0;
	f = fopen(path, "re");
	free(path);
	if (!f)
		return 0;
	/* A small reading of git's config syntax: enough for the line git init
	 * writes ("[extensions]" then "objectformat = sha256"). */
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *eq, *end;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '[') {
			end = strchr(p, ']');
			if (end && (size_t)(end - p - 1) < sizeof(section)) {
				memcpy(section, p + 1, (size_t)(end - p - 1));
				section[end - p - 1] = '\0';
				lower(section);
			} else {
				section[0] = '\0';
			}
			continue;
		}
		if (strcmp(section, "extensions") || !(eq = strchr(p, '=')))
			continue;
		for (end = eq; end > p && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = '\0';
		lower(p);
		if (strcmp(p, "objectformat"))
			continue;
		for (p = eq + 1; *p == ' ' || *p == '\t'; p++)
			;
		for (end = p + strlen(p); end > p && strchr(" \t\r\n", end[-1]); end--)
			;
		*end = '\0';
		lower(p);
		found = !strcmp(p, "sha256");
	}
	fclose(f);
	return found;
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
	int join;

	pthread_mutex_lock(&cache_lock);
	reaper_stop = 1;
	join = reaper_running;
	reaper_running = 0;
	pthread_cond_signal(&reaper_cond);
	pthread_mutex_unlock(&cache_lock);
	if (join)
		pthread_join(reaper_thread, NULL);
	repo_cache_clear();
	pthread_mutex_lock(&cache_lock);
	if (!busy_list.len && __atomic_load_n(&libgit2_ready, __ATOMIC_ACQUIRE)) {
		/* Balances the init of global_init (frees libgit2's per-thread
		 * state of this thread, which leak checkers would report). */
		git_libgit2_shutdown();
	}
	pthread_mutex_unlock(&cache_lock);
}
