/*
 * The locator: storage name + relative path -> absolute repository directory.
 * The checks run in upstream's order with upstream's codes and messages
 * (internal/gitaly/config/locator.go, internal/gitaly/storage/locator.go).
 * After upstream's lexical containment test the path is also resolved on the
 * real filesystem beneath the storage root, with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS) when the kernel has it and otherwise with a
 * component walk that reads each symlink itself. A symlink inside a storage
 * that leads outside it is therefore refused with "relative path escapes root
 * directory"; upstream follows such links (this is deliberately stricter).
 */
#include "git/locator.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "base/strbuf.h"

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#else
struct open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#endif

/* Symlinks followed in one resolution, as the kernel's MAXSYMLINKS. */
#define BENEATH_MAX_LINKS 40
/* Path components accepted in one resolution (symlink bodies included). */
#define BENEATH_MAX_COMPONENTS 4096

#define MSG_ESCAPES "relative path escapes root directory"

enum beneath_result {
	BENEATH_EXISTS,
	BENEATH_MISSING,
	BENEATH_ESCAPES,
	BENEATH_FAILED, /* errno-style failure in *errnum */
};

static int force_fallback;

void locator_test_force_walk(int on)
{
	force_fallback = on;
}

/*
 * Opens rel beneath rootfd without leaving it. With dirfd, the target must
 * be a directory and its O_PATH descriptor is handed back (callers that go
 * on to look inside it save opening it again).
 */
static int openat2_beneath(int rootfd, const char *rel, int *errnum, int *dirfd)
{
#ifdef SYS_openat2
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_CLOEXEC | (dirfd ? O_DIRECTORY : 0);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	if (fd < 0) {
		*errnum = errno;
		return -1;
	}
	if (dirfd)
		*dirfd = (int)fd;
	else
		close((int)fd);
	*errnum = 0;
	return 0;
#else
	(void)dirfd;
	*errnum = ENOSYS;
	return -1;
#endif
}

/* A growable stack of strings, used for the components still to walk. */
struct comp_stack {
	char **items;
	size_t n, alloc;
};

static void comp_stack_clear(struct comp_stack *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->items[i]);
	s->n = 0;
}

static void comp_stack_release(struct comp_stack *s)
{
	comp_stack_clear(s);
	free(s->items);
	memset(s, 0, sizeof(*s));
}

/* Pushes the components of path so that the first component pops first. */
static int comp_stack_push_path(struct comp_stack *s, const char *path)
{
	const char *end = path + strlen(path);

	while (end > path) {
		const char *start = end;
		size_t len;

		while (start > path && start[-1] != '/')
			start--;
		len = (size_t)(end - start);
		if (len) {
			if (s->n >= BENEATH_MAX_COMPONENTS)
				return -1;
			if (s->n == s->alloc) {
				size_t alloc = s->alloc ? s->alloc * 2 : 16;
				char **items = realloc(s->items, alloc * sizeof(*items));
				if (!items)
					return -1;
				s->items = items;
				s->alloc = alloc;
			}
			s->items[s->n] = strndup(start, len);
			if (!s->items[s->n])
				return -1;
			s->n++;
		}
		end = start;
		while (end > path && end[-1] == '/')
			end--;
	}
	return 0;
}

/*
 * The portable walk: a stack of O_PATH directory fds from the root down, one
 * component at a time with AT_SYMLINK_NOFOLLOW. Symlink bodies are spliced
 * into the remaining components; absolute ones restart from the root when
 * they name a place beneath it. ".." pops a real directory, never above root.
 */
static enum beneath_result walk_beneath(int rootfd, const char *root, const char *rel,
					int *errnum)
{
	struct comp_stack todo = { 0 };
	int fds[BENEATH_MAX_COMPONENTS / 16];
	size_t depth = 0;
	int links = 0;
	enum beneath_result res = BENEATH_FAILED;
	size_t rootlen = strlen(root);

	*errnum = 0;
	fds[0] = rootfd;
	if (comp_stack_push_path(&todo, rel) < 0) {
		*errnum = ENOMEM;
		goto out;
	}
	while (todo.n) {
		char *comp = todo.items[--todo.n];
		int cur = fds[depth];
		struct stat st;

		if (!strcmp(comp, ".")) {
			free(comp);
			continue;
		}
		if (!strcmp(comp, "..")) {
			free(comp);
			if (!depth) {
				res = BENEATH_ESCAPES;
				goto out;
			}
			close(fds[depth--]);
			continue;
		}
		if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			int e = errno;
			free(comp);
			if (e == ENOENT) {
				res = BENEATH_MISSING;
			} else if (e == ENOTDIR) {
				res = BENEATH_MISSING;
			} else {
				*errnum = e;
			}
			goto out;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t n = readlinkat(cur, comp, target, sizeof(target) - 1);

			free(comp);
			if (n < 0) {
				*errnum = errno;
				goto out;
			}
			target[n] = '\0';
			if (++links > BENEATH_MAX_LINKS) {
				*errnum = ELOOP;
				goto out;
			}
			if (target[0] == '/') {
				char *clean = fsutil_path_clean(target);

				if (!clean) {
					*errnum = ENOMEM;
					goto out;
				}
				if (strncmp(clean, root, rootlen) ||
				    (clean[rootlen] != '/' && clean[rootlen] != '\0')) {
					free(clean);
					res = BENEATH_ESCAPES;
					goto out;
				}
				while (depth)
					close(fds[depth--]);
				if (comp_stack_push_path(&todo, clean + rootlen) < 0) {
					free(clean);
					*errnum = ENOMEM;
					goto out;
				}
				free(clean);
			} else if (comp_stack_push_path(&todo, target) < 0) {
				*errnum = ENOMEM;
				goto out;
			}
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			free(comp);
			/* A non-directory is fine at the end; in the middle it ends the walk. */
			res = todo.n ? BENEATH_MISSING : BENEATH_EXISTS;
			goto out;
		}
		if (depth + 1 >= sizeof(fds) / sizeof(fds[0])) {
			free(comp);
			*errnum = ENAMETOOLONG;
			goto out;
		}
		fds[depth + 1] = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		free(comp);
		if (fds[depth + 1] < 0) {
			*errnum = errno;
			goto out;
		}
		depth++;
	}
	res = BENEATH_EXISTS;
out:
	while (depth)
		close(fds[depth--]);
	comp_stack_release(&todo);
	return res;
}

/*
 * Resolves rel (relative, lexically clean) beneath the directory root without
 * leaving it through "..", absolute or magic symlinks.
 */
/*
 * Storage roots stay open (O_PATH) for the life of the process, keyed by
 * path and checked against the caller's fresh stat of the root, so a
 * storage directory that was replaced gets a new descriptor. Replaced
 * descriptors are kept open rather than closed under a concurrent user.
 */
#define ROOT_CACHE 16
static struct {
	char *path;
	dev_t dev;
	ino_t ino;
	int fd;
} root_cache[ROOT_CACHE];
static pthread_mutex_t root_cache_mu = PTHREAD_MUTEX_INITIALIZER;

/* A descriptor for root; *owned says whether the caller must close it. */
static int root_fd(const char *root, const struct stat *st, int *owned)
{
	int fd = -1, slot = -1;

	*owned = 0;
	pthread_mutex_lock(&root_cache_mu);
	for (int i = 0; i < ROOT_CACHE; i++) {
		if (!root_cache[i].path) {
			if (slot < 0)
				slot = i;
			continue;
		}
		if (strcmp(root_cache[i].path, root))
			continue;
		if (root_cache[i].dev == st->st_dev && root_cache[i].ino == st->st_ino) {
			fd = root_cache[i].fd;
			goto out;
		}
		slot = i; /* replaced directory: take a new descriptor below */
		break;
	}
	fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto out;
	if (slot < 0) {
		*owned = 1;
		goto out;
	}
	if (!root_cache[slot].path)
		root_cache[slot].path = strdup(root);
	if (!root_cache[slot].path) {
		*owned = 1;
		goto out;
	}
	root_cache[slot].dev = st->st_dev;
	root_cache[slot].ino = st->st_ino;
	root_cache[slot].fd = fd;
out:
	pthread_mutex_unlock(&root_cache_mu);
	return fd;
}

/*
 * Physical part: rel must resolve beneath root. root_st is a fresh stat of
 * root when root is a storage root (its descriptor is then cached), NULL
 * for any other base (opened for this call only). With dirfd, an existing target
 * must be a directory and *dirfd receives its O_PATH descriptor (-1 when
 * the walk fallback decided, or on any other result).
 */
static enum beneath_result resolve_beneath(const char *root, const struct stat *root_st,
					   const char *rel, int *errnum, int *dirfd)
{
	enum beneath_result res = BENEATH_FAILED;
	int rootfd, owned = 1;

	if (dirfd)
		*dirfd = -1;
	if (root_st)
		rootfd = root_fd(root, root_st, &owned);
	else
		rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		*errnum = errno;
		return errno == ENOENT ? BENEATH_MISSING : BENEATH_FAILED;
	}
	if (!force_fallback && openat2_beneath(rootfd, rel, errnum, dirfd) == 0) {
		res = BENEATH_EXISTS;
		goto out;
	}
	if (!force_fallback) {
		switch (*errnum) {
		case EXDEV:
			/* RESOLVE_BENEATH refuses every absolute symlink, even one
			 * pointing back inside; the walk tells the two apart. */
		case ELOOP:
			break;
		case ENOENT:
		case ENOTDIR:
			res = BENEATH_MISSING;
			goto out;
		case ENOSYS:
		case EPERM:  /* seccomp filters often answer EPERM */
		case EINVAL: /* unknown resolve flags on an old kernel */
		case E2BIG:
		case EAGAIN: /* a concurrent rename: let the walk decide */
			break;
		default:
			res = BENEATH_FAILED;
			goto out;
		}
	}
	res = walk_beneath(rootfd, root, rel, errnum);
out:
	if (owned)
		close(rootfd);
	return res;
}

/*
 * Validated repositories are remembered so that a request for a repository
 * that has not changed costs one statx instead of a stat of the storage,
 * an openat2, four fstatat and a close. A remembered validation is reused
 * when a fresh statx of the path shows the same directory (device, inode,
 * birth time) with the same ctime and mtime: removing or renaming HEAD,
 * objects or refs, or replacing packed-refs, changes those times, and a
 * repository removed and recreated is another directory. Only directories
 * whose ctime was older than the trust margin when looked at are
 * remembered, so a change made in the same clock tick as the look cannot
 * leave the times unchanged. Every entry is fully validated again after
 * VALID_RECHECK_MS at the latest (which also bounds how long a containing
 * directory swapped for a symlink after validation goes unnoticed; the
 * repository directory itself cannot move without its ctime changing).
 */
#define VALID_SLOTS 256
#define VALID_RECHECK_MS 1000
#define TRUST_MARGIN_MS 2000
/* The per-thread stamp counts for the request that took it for this long. */
#define MEMO_MAX_AGE_NS (20 * 1000 * 1000)

struct valid_entry {
	char *abs;
	struct locator_stamp st;
	int64_t checked_ms; /* CLOCK_MONOTONIC */
};
static struct valid_entry valid_cache[VALID_SLOTS];
static pthread_mutex_t valid_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t trust_margin_ms = TRUST_MARGIN_MS;
static unsigned long fast_hits;

static __thread struct {
	char path[1024];
	struct locator_stamp st;
	int64_t at_ns;
} memo;

static int64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void locator_test_set_trust_margin_ms(int64_t ms)
{
	__atomic_store_n(&trust_margin_ms, ms >= 0 ? ms : TRUST_MARGIN_MS, __ATOMIC_RELAXED);
}

unsigned long locator_test_fast_hits(void)
{
	return __atomic_load_n(&fast_hits, __ATOMIC_RELAXED);
}

int locator_stamp_equal(const struct locator_stamp *a, const struct locator_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->btime_sec == b->btime_sec &&
	       a->btime_nsec == b->btime_nsec && a->ctime_sec == b->ctime_sec &&
	       a->ctime_nsec == b->ctime_nsec && a->mtime_sec == b->mtime_sec &&
	       a->mtime_nsec == b->mtime_nsec;
}

/* Stamps the directory path names relative to dirfd (statx flags as given).
 * -1 when it cannot be looked at or is not a directory. */
static int take_stamp(int dirfd, const char *path, int flags, struct locator_stamp *st)
{
	struct statx stx;
	int64_t ctime_ns, now_ns;

	memset(st, 0, sizeof(*st));
	if (statx(dirfd, path, flags, STATX_BASIC_STATS | STATX_BTIME, &stx) < 0 ||
	    !S_ISDIR(stx.stx_mode))
		return -1;
	st->dev = ((uint64_t)stx.stx_dev_major << 32) | stx.stx_dev_minor;
	st->ino = stx.stx_ino;
	if (stx.stx_mask & STATX_BTIME) {
		st->btime_sec = stx.stx_btime.tv_sec;
		st->btime_nsec = stx.stx_btime.tv_nsec;
	}
	st->ctime_sec = stx.stx_ctime.tv_sec;
	st->ctime_nsec = stx.stx_ctime.tv_nsec;
	st->mtime_sec = stx.stx_mtime.tv_sec;
	st->mtime_nsec = stx.stx_mtime.tv_nsec;
	/* mtime can be set back by anyone (cp -a); ctime cannot, and it moves
	 * with every change that moves mtime. */
	ctime_ns = (int64_t)stx.stx_ctime.tv_sec * 1000000000 + stx.stx_ctime.tv_nsec;
	now_ns = clock_ns(CLOCK_REALTIME);
	st->trusted = ctime_ns < now_ns - __atomic_load_n(&trust_margin_ms, __ATOMIC_RELAXED) *
						  1000000;
	return 0;
}

static size_t valid_slot(const char *abs)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)abs; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % VALID_SLOTS);
}

static void memo_set(const char *abs, const struct locator_stamp *st)
{
	size_t n = strlen(abs);

	if (n >= sizeof(memo.path)) {
		memo.path[0] = '\0';
		return;
	}
	memcpy(memo.path, abs, n + 1);
	memo.st = *st;
	memo.at_ns = clock_ns(CLOCK_MONOTONIC);
}

int locator_recent_stamp(const char *repo_path, struct locator_stamp *out)
{
	if (!memo.path[0] || strcmp(memo.path, repo_path) ||
	    clock_ns(CLOCK_MONOTONIC) - memo.at_ns > MEMO_MAX_AGE_NS)
		return 0;
	*out = memo.st;
	return 1;
}

/* The remembered validation of abs still holds: one statx. */
static int valid_lookup(const char *abs)
{
	struct valid_entry *e = &valid_cache[valid_slot(abs)];
	struct locator_stamp want, cur;
	int found = 0;

	pthread_mutex_lock(&valid_mu);
	if (e->abs && !strcmp(e->abs, abs) &&
	    clock_ns(CLOCK_MONOTONIC) / 1000000 - e->checked_ms <= VALID_RECHECK_MS) {
		want = e->st;
		found = 1;
	}
	pthread_mutex_unlock(&valid_mu);
	if (!found || take_stamp(AT_FDCWD, abs, 0, &cur) < 0 || !locator_stamp_equal(&cur, &want))
		return 0;
	cur.trusted = 1;
	memo_set(abs, &cur);
	__atomic_add_fetch(&fast_hits, 1, __ATOMIC_RELAXED);
	return 1;
}

/* Remembers a full validation whose stamp was taken before its checks. */
static void valid_store(const char *abs, const struct locator_stamp *st)
{
	struct valid_entry *e = &valid_cache[valid_slot(abs)];
	char *copy = NULL;

	memo_set(abs, st);
	if (!st->trusted)
		return;
	pthread_mutex_lock(&valid_mu);
	if (!e->abs || strcmp(e->abs, abs)) {
		copy = strdup(abs);
		if (!copy)
			goto out;
		free(e->abs);
		e->abs = copy;
	}
	e->st = *st;
	e->checked_ms = clock_ns(CLOCK_MONOTONIC) / 1000000;
out:
	pthread_mutex_unlock(&valid_mu);
}

/* Lexical part: Clean(Join(root, rel)) must be root or below it. On success
 * *abs is that path and *relclean the part below root ("." for root). */
static int lexical_beneath(const char *root, const char *rel, char **abs, const char **relclean)
{
	size_t rootlen = strlen(root);
	char *joined = fsutil_path_join(root, rel);

	*abs = NULL;
	if (!joined)
		return -2;
	if (strcmp(joined, root) != 0) {
		/* A root of "/" is its own prefix with a separator. */
		size_t plen = (rootlen == 1 && root[0] == '/') ? 0 : rootlen;

		if (strncmp(joined, root, plen) != 0 || joined[plen] != '/') {
			free(joined);
			return -1;
		}
		*relclean = joined + plen + 1;
	} else {
		*relclean = ".";
	}
	*abs = joined;
	return 0;
}

int locator_storage_path(const struct locator *loc, const char *storage_name, const char **out,
			 struct error *err)
{
	*out = NULL;
	if (!storage_name || !*storage_name)
		return error_set(err, STATUS_INVALID_ARGUMENT, "storage name not set");
	for (size_t i = 0; loc && i < loc->n_storages; i++) {
		if (!strcmp(loc->storages[i].name, storage_name)) {
			*out = loc->storages[i].path;
			return 0;
		}
	}
	return error_set(err, STATUS_INVALID_ARGUMENT, "storage name not found");
}

/* Checks that one object directory, relative to the repository at repo_rel
 * (relative to root), stays inside the storage lexically and physically. */
static int check_object_dir(const char *root, const char *repo_rel, const char *dir,
			    struct error *err)
{
	char *rel = fsutil_path_join(repo_rel, dir), *abs = NULL;
	int ret;

	if (!rel)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	ret = locator_resolve_beneath(root, rel, &abs, err);
	free(abs);
	free(rel);
	return ret;
}

int locator_repo_path(const struct locator *loc, const struct repo_ref *repo, unsigned flags,
		      char **out, struct error *err)
{
	const char *configured = NULL, *rel = NULL;
	char *abs = NULL, *root = NULL;
	struct stat st;
	struct locator_stamp stamp;
	int errnum = 0, ret = -1, l, dfd = -1, stamped = 0;
	static const char *const entries[] = { "objects", "refs", "HEAD" };

	*out = NULL;
	if (!repo || ((!repo->storage_name || !*repo->storage_name) &&
		      (!repo->relative_path || !*repo->relative_path))) {
		error_set(err, STATUS_INVALID_ARGUMENT, "repository not set");
		goto out;
	}
	if (!repo->relative_path || !*repo->relative_path) {
		error_set(err, STATUS_INVALID_ARGUMENT, "repository path not set");
		goto out;
	}
	if (locator_storage_path(loc, repo->storage_name, &configured, err) < 0)
		goto out;
	/* Compare against the cleaned root so "/srv/git/" works like "/srv/git". */
	root = fsutil_path_clean(configured);
	if (!root) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	l = lexical_beneath(root, repo->relative_path, &abs, &rel);
	if (l == 0 && !(flags & LOCATOR_SKIP_EXISTS) && valid_lookup(abs))
		goto object_dirs;
	/* Upstream's order: a missing storage comes before a bad path. */
	if (stat(root, &st) < 0) {
		if (errno == ENOENT)
			error_set(err, STATUS_NOT_FOUND, "storage does not exist");
		else
			error_set(err, STATUS_INTERNAL, "storage path: %s", strerror(errno));
		goto out;
	}
	if (l == -2) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (l < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, MSG_ESCAPES);
		goto out;
	}
	switch (resolve_beneath(root, &st, rel, &errnum,
				(flags & LOCATOR_SKIP_EXISTS) ? NULL : &dfd)) {
	case BENEATH_EXISTS:
		break;
	case BENEATH_MISSING:
		if (!(flags & LOCATOR_SKIP_EXISTS)) {
			error_set(err, STATUS_NOT_FOUND, "repository not found");
			goto out;
		}
		break;
	case BENEATH_ESCAPES:
		error_set(err, STATUS_INVALID_ARGUMENT, MSG_ESCAPES);
		goto out;
	default:
		error_set(err, STATUS_INTERNAL, "resolve repository path: %s", strerror(errnum));
		goto out;
	}
	if (!(flags & LOCATOR_SKIP_EXISTS)) {
		if (dfd < 0)
			dfd = open(abs, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			error_set(err, STATUS_NOT_FOUND, "repository not found");
			goto out;
		}
		/* Stamped before the checks: a change after them moves the times. */
		stamped = take_stamp(dfd, "", AT_EMPTY_PATH, &stamp) == 0;
		for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
			/* An entry that is a symlink can lose its target without
			 * the repository directory changing: never remembered. */
			int ok = fstatat(dfd, entries[i], &st, AT_SYMLINK_NOFOLLOW) == 0;

			if (ok && S_ISLNK(st.st_mode)) {
				stamped = 0;
				ok = fstatat(dfd, entries[i], &st, 0) == 0;
			}
			if (!ok) {
				error_set(err, STATUS_FAILED_PRECONDITION,
					  "repository not valid: \"%s\" does not exist", entries[i]);
				goto out;
			}
		}
		/* Upstream stats packed-refs to refresh NFS attribute caches. */
		fstatat(dfd, "packed-refs", &st, 0);
		if (stamped)
			valid_store(abs, &stamp);
	}
object_dirs:
	if (repo->git_object_directory && *repo->git_object_directory &&
	    check_object_dir(root, rel, repo->git_object_directory, err) < 0)
		goto out;
	for (size_t i = 0; i < repo->n_alternates; i++) {
		const char *alt = repo->git_alternate_object_directories[i];

		if (alt && *alt && check_object_dir(root, rel, alt, err) < 0)
			goto out;
	}
	*out = abs;
	abs = NULL;
	ret = 0;
out:
	if (dfd >= 0)
		close(dfd);
	free(abs);
	free(root);
	return ret;
}

int locator_resolve_beneath(const char *base_in, const char *rel, char **out, struct error *err)
{
	char *abs = NULL, *base = fsutil_path_clean(base_in);
	const char *relclean;
	int errnum = 0, ret = -1, l;

	*out = NULL;
	if (!base) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	l = lexical_beneath(base, rel ? rel : "", &abs, &relclean);
	if (l == -2) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (l < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, MSG_ESCAPES);
		goto out;
	}
	switch (resolve_beneath(base, NULL, relclean, &errnum, NULL)) {
	case BENEATH_EXISTS:
	case BENEATH_MISSING:
		break;
	case BENEATH_ESCAPES:
		error_set(err, STATUS_INVALID_ARGUMENT, MSG_ESCAPES);
		goto out;
	default:
		error_set(err, STATUS_INTERNAL, "resolve %s: %s", rel, strerror(errnum));
		goto out;
	}
	*out = abs;
	abs = NULL;
	ret = 0;
out:
	free(abs);
	free(base);
	return ret;
}

int locator_object_dirs(const char *repo_path, const struct repo_ref *repo, char **object_dir,
			char **alternates, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	int ret = -1;

	*object_dir = NULL;
	*alternates = NULL;
	if (repo->git_object_directory && *repo->git_object_directory) {
		*object_dir = fsutil_path_join(repo_path, repo->git_object_directory);
		if (!*object_dir)
			goto oom;
	}
	for (size_t i = 0; i < repo->n_alternates; i++) {
		const char *alt = repo->git_alternate_object_directories[i];
		char *abs;

		if (!alt || !*alt)
			continue;
		abs = fsutil_path_join(repo_path, alt);
		if (!abs)
			goto oom;
		if (strchr(abs, ':')) {
			/* ':' separates the list: such a path cannot be expressed */
			free(abs);
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "alternate object directory contains ':'");
			goto out;
		}
		if ((sb.len && strbuf_addch(&sb, ':') < 0) || strbuf_adds(&sb, abs) < 0) {
			free(abs);
			goto oom;
		}
		free(abs);
	}
	if (sb.len)
		*alternates = strbuf_detach(&sb, NULL);
	ret = 0;
	goto out;
oom:
	error_set(err, STATUS_INTERNAL, "out of memory");
out:
	if (ret < 0) {
		free(*object_dir);
		*object_dir = NULL;
	}
	strbuf_release(&sb);
	return ret;
}
