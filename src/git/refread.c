/*
 * Reference reads without libgit2's per-lookup stats (see refread.h).
 * libgit2 resolves "main" by trying refs/main, refs/tags/main and
 * refs/heads/main, each time a stat of the loose file and a stat of
 * packed-refs (6 system calls, more for the remote rules); here a loose
 * candidate is one open and packed-refs is looked at once per request at
 * most. packed-refs snapshots are mapped read-only and shared by all
 * handles of a repository, with a hash index of the names built when
 * mapped; one that is replaced is unmapped when its last
 * reader is done.
 */
#include "git/refread.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "git/locator.h"
#include "git/refwatch.h"

/* Snapshots: SNAP_SETS sets of SNAP_WAYS, least recently used way
 * replaced, so two busy repositories never evict each other by hash. */
#define SNAP_SETS 128
#define SNAP_WAYS 4
#define HEXSZ 40
/* A loose ref longer than this is not a plain object id. */
#define LOOSE_MAX 128
#define NAME_MAX_LEN 1024

/* One mapping of a repository's packed-refs (or its absence). */
struct snap {
	char *gitdir;
	char *map;
	size_t len;
	int present, usable; /* usable: indexed, searchable */
	struct stat st; /* of the mapped file */
	/* Open-addressing index of the records: offset + 1 of each record
	 * line (0: empty), probed by hash of the name. */
	size_t *index, mask;
	struct locator_stamp dir; /* repository directory stamp it was confirmed under */
	int dir_ok;
	unsigned readers;
	int stale; /* replaced: freed by the last reader */
	uint64_t used; /* snap_tick when last handed out */
};

static struct snap *slots[SNAP_SETS][SNAP_WAYS];
static uint64_t snap_tick;
static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long n_maps, n_stats;

unsigned long refread_test_maps(void)
{
	return __atomic_load_n(&n_maps, __ATOMIC_RELAXED);
}

unsigned long refread_test_stats(void)
{
	return __atomic_load_n(&n_stats, __ATOMIC_RELAXED);
}

static void snap_free(struct snap *s)
{
	if (!s)
		return;
	if (s->map)
		munmap(s->map, s->len);
	free(s->index);
	free(s->gitdir);
	free(s);
}

static size_t slot_of(const char *gitdir)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)gitdir; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % SNAP_SETS);
}

/* The way of set holding gitdir, or NULL. Caller holds snap_mu. */
static struct snap **find_way(size_t set, const char *gitdir)
{
	for (int w = 0; w < SNAP_WAYS; w++)
		if (slots[set][w] && !strcmp(slots[set][w]->gitdir, gitdir))
			return &slots[set][w];
	return NULL;
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static uint64_t name_hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (n--)
		h = (h ^ (unsigned char)*p++) * 1099511628211ULL;
	return h;
}

/*
 * Indexes every "<hex> <name>" line of the mapped file by name, so that a
 * lookup is a probe or two instead of a binary search touching a page per
 * step. Peeled ("^") and comment lines are skipped. A malformed line or a
 * name seen twice leaves the snapshot unsearchable (usable = 0): libgit2
 * then answers.
 */
static void snap_index(struct snap *s)
{
	const char *p = s->map, *end = s->map + s->len;
	size_t n = 0, size = 16;

	for (const char *q = p; q < end; q++)
		n += *q == '\n';
	while (size < 2 * n + 2)
		size *= 2;
	s->index = calloc(size, sizeof(*s->index));
	if (!s->index)
		goto bad;
	s->mask = size - 1;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *name;
		size_t nlen, i;

		if (!eol)
			eol = end;
		if (*p == '#' || *p == '^') {
			p = eol + 1;
			continue;
		}
		if (eol - p < HEXSZ + 2 || p[HEXSZ] != ' ')
			goto bad;
		name = p + HEXSZ + 1;
		nlen = (size_t)(eol - name);
		for (i = name_hash(name, nlen) & s->mask; s->index[i]; i = (i + 1) & s->mask) {
			const char *o = s->map + s->index[i] - 1 + HEXSZ + 1;
			const char *oe = memchr(o, '\n', (size_t)(end - o));

			if ((size_t)((oe ? oe : end) - o) == nlen && !memcmp(o, name, nlen))
				goto bad; /* the same name twice */
		}
		s->index[i] = (size_t)(p - s->map) + 1;
		p = eol + 1;
	}
	return;
bad:
	s->usable = 0;
}

/* Maps gitdir/packed-refs; NULL on an unexpected failure. */
static struct snap *snap_load(const char *gitdir, const char *file)
{
	struct snap *s = calloc(1, sizeof(*s));
	const char *nl;
	int fd = -1;

	if (!s || !(s->gitdir = strdup(gitdir)))
		goto fail;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			goto fail;
		return s; /* no packed refs at all */
	}
	if (fstat(fd, &s->st) < 0 || !S_ISREG(s->st.st_mode))
		goto fail;
	s->present = 1;
	s->len = (size_t)s->st.st_size;
	if (s->len) {
		s->map = mmap(NULL, s->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (s->map == MAP_FAILED) {
			s->map = NULL;
			goto fail;
		}
	}
	close(fd);
	fd = -1;
	__atomic_add_fetch(&n_maps, 1, __ATOMIC_RELAXED);
	/* Only a file that says it is sorted is searched. */
	if (!s->len) {
		s->usable = 1;
	} else if (s->len > 18 && !memcmp(s->map, "# pack-refs with:", 17) &&
		   (nl = memchr(s->map, '\n', s->len))) {
		const char *p = s->map;

		for (; p + 7 <= nl; p++)
			if (!memcmp(p, " sorted", 7) && (p + 7 == nl || p[7] == ' ')) {
				s->usable = 1;
				break;
			}
	}
	if (s->len && s->usable)
		snap_index(s);
	return s;
fail:
	if (fd >= 0)
		close(fd);
	snap_free(s);
	return NULL;
}

/* Drops a reader; caller holds snap_mu. */
static void snap_put_locked(struct snap *s, struct snap **graveyard)
{
	if (--s->readers == 0 && s->stale)
		*graveyard = s;
}

static void snap_release(struct snap *s)
{
	struct snap *dead = NULL;

	if (!s)
		return;
	pthread_mutex_lock(&snap_mu);
	snap_put_locked(s, &dead);
	pthread_mutex_unlock(&snap_mu);
	snap_free(dead);
}

/* Installs s in its set (over the same repository's old snapshot, else
 * an empty or the least recently used way, retiring that one) with a
 * reader held. */
static void snap_install(size_t set, struct snap *s)
{
	struct snap **way, *old, *dead = NULL;

	pthread_mutex_lock(&snap_mu);
	way = find_way(set, s->gitdir);
	if (!way) {
		/* an empty way, else the least recently used one */
		way = &slots[set][0];
		for (int w = 0; w < SNAP_WAYS && *way; w++)
			if (!slots[set][w] || slots[set][w]->used < (*way)->used)
				way = &slots[set][w];
	}
	old = *way;
	*way = s;
	s->readers = 1;
	s->used = ++snap_tick;
	if (old) {
		old->stale = 1;
		if (old->readers == 0)
			dead = old;
	}
	pthread_mutex_unlock(&snap_mu);
	snap_free(dead);
}

/* The current packed-refs of gitdir with a reader held, or NULL (undecided). */
static struct snap *snap_get(const char *gitdir)
{
	size_t set = slot_of(gitdir);
	struct snap **way;
	struct locator_stamp now;
	int have = locator_recent_stamp(gitdir, &now) && now.trusted;
	char file[NAME_MAX_LEN + 32];
	struct stat st;
	int absent = 0;
	struct snap *s;

	pthread_mutex_lock(&snap_mu);
	way = find_way(set, gitdir);
	s = way ? *way : NULL;
	if (s && have && s->dir_ok && locator_stamp_equal(&now, &s->dir)) {
		s->readers++;
		s->used = ++snap_tick;
		pthread_mutex_unlock(&snap_mu);
		return s;
	}
	pthread_mutex_unlock(&snap_mu);

	if ((size_t)snprintf(file, sizeof(file), "%s/packed-refs", gitdir) >= sizeof(file))
		return NULL;
	__atomic_add_fetch(&n_stats, 1, __ATOMIC_RELAXED);
	if (stat(file, &st) < 0) {
		if (errno != ENOENT)
			return NULL;
		absent = 1;
	}
	pthread_mutex_lock(&snap_mu);
	way = find_way(set, gitdir);
	s = way ? *way : NULL;
	if (s && (absent ? !s->present : (s->present && same_file(&s->st, &st)))) {
		s->used = ++snap_tick;
		/* The directory stamp was taken before this stat. */
		s->dir = now;
		s->dir_ok = have;
		s->readers++;
		pthread_mutex_unlock(&snap_mu);
		return s;
	}
	pthread_mutex_unlock(&snap_mu);

	s = snap_load(gitdir, file);
	if (!s)
		return NULL;
	s->dir = now;
	s->dir_ok = have;
	snap_install(set, s);
	return s;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 40 lowercase hex digits into out; -1 otherwise. */
static int parse_hex(const char *s, git_oid *out)
{
	for (int i = 0; i < HEXSZ; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out->id[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* The record for name in the snapshot: FOUND with *out, MISSING, or
 * UNDECIDED when the snapshot could not be indexed. */
static enum refread_result packed_find(const struct snap *s, const char *name, git_oid *out)
{
	size_t nlen = strlen(name), i;

	if (!s->present || !s->len)
		return REFREAD_MISSING;
	if (!s->usable || !s->index)
		return REFREAD_UNDECIDED;
	for (i = name_hash(name, nlen) & s->mask; s->index[i]; i = (i + 1) & s->mask) {
		const char *rec = s->map + s->index[i] - 1, *o = rec + HEXSZ + 1;
		const char *end = s->map + s->len;

		/* Records were checked when indexed: o + nlen is inside the
		 * mapping whenever the name fits before its end. */
		if ((size_t)(end - o) >= nlen && !memcmp(o, name, nlen) &&
		    (o + nlen == end || o[nlen] == '\n'))
			return parse_hex(rec, out) < 0 ? REFREAD_UNDECIDED : REFREAD_FOUND;
	}
	return REFREAD_MISSING;
}

/* The loose file gitdir/name: FOUND with an object id, MISSING, UNDECIDED.
 * A miss is remembered (git/refwatch.c) and not looked for again while
 * nothing changes on the way to it. */
static enum refread_result loose_find(const char *gitdir, const struct refwatch_ticket *t,
				      const char *name, git_oid *out)
{
	char path[2 * NAME_MAX_LEN + 2], buf[LOOSE_MAX];
	ssize_t n;
	int fd, learn;

	if (refwatch_absent(t, name))
		return REFREAD_MISSING;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", gitdir, name) >= sizeof(path))
		return REFREAD_UNDECIDED;
	learn = refwatch_prepare(t, gitdir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT && learn)
			refwatch_note_absent(t, name);
		return e == ENOENT || e == ENOTDIR ? REFREAD_MISSING : REFREAD_UNDECIDED;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	/* "<hex>\n" or "<hex>"; symbolic refs, directories and anything else
	 * are libgit2's to judge. */
	if ((n != HEXSZ && n != HEXSZ + 1) || (n == HEXSZ + 1 && buf[HEXSZ] != '\n'))
		return REFREAD_UNDECIDED;
	return parse_hex(buf, out) < 0 ? REFREAD_UNDECIDED : REFREAD_FOUND;
}

/* Loose first, then packed, as the files backend. */
static enum refread_result lookup_in(const char *gitdir, const struct refwatch_ticket *t,
				     struct snap *s, const char *name, git_oid *out)
{
	enum refread_result r = loose_find(gitdir, t, name, out);

	if (r != REFREAD_MISSING)
		return r;
	return packed_find(s, name, out);
}

/*
 * A name this reader is sure libgit2 takes as a plain, valid reference
 * name with nothing special: [A-Za-z0-9._/-] only, components not empty,
 * not starting with '.', not ending with ".lock", no "..", not ending
 * with '.' or '/'.
 */
static int plain_name(const char *name)
{
	size_t len = strlen(name), comp = 0;

	if (!len || len > NAME_MAX_LEN || name[len - 1] == '.' || name[len - 1] == '/')
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '/' || c == '\0') {
			size_t clen = i - comp;

			if (!clen || name[comp] == '.' ||
			    (clen >= 5 && !memcmp(name + i - 5, ".lock", 5)))
				return 0;
			comp = i + 1;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
		if (c == '.' && name[i + 1] == '.')
			return 0;
	}
	return 1;
}

/* The repository's directory without the trailing slash, into buf; 0 when
 * it is a plain (bare or non-worktree) repository. */
static int gitdir_of(git_repository *repo, char *buf, size_t size)
{
	const char *path = git_repository_path(repo), *common = git_repository_commondir(repo);
	size_t n;

	if (!path || !common || strcmp(path, common))
		return -1;
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n >= size)
		return -1;
	memcpy(buf, path, n);
	buf[n] = '\0';
	return 0;
}

enum refread_result refread_lookup(git_repository *repo, const char *name, git_oid *out)
{
	char gitdir[NAME_MAX_LEN];
	struct refwatch_ticket t;
	enum refread_result r;
	struct snap *s;

	if (strncmp(name, "refs/", 5) || !plain_name(name) ||
	    gitdir_of(repo, gitdir, sizeof(gitdir)) < 0)
		return REFREAD_UNDECIDED;
	/* Loose first: a loose hit needs no packed-refs at all. */
	refwatch_begin(gitdir, &t);
	r = loose_find(gitdir, &t, name, out);
	if (r != REFREAD_MISSING)
		return r;
	s = snap_get(gitdir);
	if (!s)
		return REFREAD_UNDECIDED;
	r = packed_find(s, name, out);
	snap_release(s);
	return r;
}

enum refread_result refread_dwim(git_repository *repo, const char *rev, git_oid *out)
{
	/* "<prefix><rev><suffix>" */
	static const struct {
		const char *prefix, *suffix;
	} rules[] = {
		{ "", "" },
		{ "refs/", "" },
		{ "refs/tags/", "" },
		{ "refs/heads/", "" },
		{ "refs/remotes/", "" },
		{ "refs/remotes/", "/HEAD" },
	};
	char gitdir[NAME_MAX_LEN], name[NAME_MAX_LEN + 32];
	size_t rlen = strlen(rev);
	enum refread_result r = REFREAD_UNDECIDED;
	struct refwatch_ticket t = { -1, 0 };
	struct snap *s = NULL;
	int hex = 1;

	if (!plain_name(rev) || gitdir_of(repo, gitdir, sizeof(gitdir)) < 0)
		return REFREAD_UNDECIDED;
	for (const char *p = rev; *p; p++)
		if (hexval(*p) < 0)
			hex = 0;
	/* A hexadecimal name may be an object id or an abbreviation. */
	if (hex)
		return REFREAD_UNDECIDED;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		if (i == 0) {
			/* A one-level name is a ref only when it is like HEAD
			 * (upper case and '_'): libgit2's to resolve. */
			if (!strchr(rev, '/')) {
				int caps = 1;

				for (const char *p = rev; *p; p++)
					if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
						caps = 0;
				if (caps)
					goto out;
				continue;
			}
		}
		{
			size_t plen = strlen(rules[i].prefix), slen = strlen(rules[i].suffix);

			/* rlen <= NAME_MAX_LEN (plain_name), so this fits */
			memcpy(name, rules[i].prefix, plen);
			memcpy(name + plen, rev, rlen);
			memcpy(name + plen + rlen, rules[i].suffix, slen + 1);
		}
		if (!s) {
			if (!(s = snap_get(gitdir)))
				goto out;
			refwatch_begin(gitdir, &t);
		}
		r = lookup_in(gitdir, &t, s, name, out);
		if (r == REFREAD_FOUND)
			goto out;
		if (r == REFREAD_UNDECIDED)
			goto out;
	}
	/* Nothing matched: abbreviations and describe names are libgit2's. */
	r = REFREAD_UNDECIDED;
out:
	snap_release(s);
	return r;
}
