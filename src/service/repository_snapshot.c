/*
 * GetSnapshot of RepositoryService: a tar stream of the repository's files
 * picked by name as upstream does (HEAD, packed-refs, refs/, branches/,
 * loose objects and packfiles under objects/, shallow, and the object files
 * of alternates one level deep as if they were local), so a corrupt
 * repository can still be copied. Entries are written as Go's archive/tar
 * writes FileInfoHeader entries: USTAR (a PAX record only for names too long
 * for USTAR), permission bits, owner ids and names, mtime rounded to the
 * second, directories with a trailing slash, two zero blocks at the end.
 * Symlinks and special files are skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define TAR_BLOCK 512
/* Cap on the alternates file read. */
#define ALTERNATES_CAP ((size_t)64 * 1024)

struct tar_out {
	struct rpc_call *call;
	uint8_t *buf; /* SERVICE_CHUNK_SIZE bytes */
	size_t fill;
	struct error *err;
	int failed; /* a send failed: stop everything */
	struct strbuf build_err; /* first building error (upstream's sticky error) */
};

static int tar_flush(struct tar_out *t)
{
	Gitaly__GetSnapshotResponse resp = GITALY__GET_SNAPSHOT_RESPONSE__INIT;

	if (!t->fill)
		return 0;
	resp.data.data = t->buf;
	resp.data.len = t->fill;
	t->fill = 0;
	if (rpc_call_send(t->call, &resp.base, t->err) < 0) {
		t->failed = 1;
		return -1;
	}
	return 0;
}

static int tar_write(struct tar_out *t, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		size_t n = SERVICE_CHUNK_SIZE - t->fill;

		if (n > len)
			n = len;
		memcpy(t->buf + t->fill, p, n);
		t->fill += n;
		p += n;
		len -= n;
		if (t->fill == SERVICE_CHUNK_SIZE && tar_flush(t) < 0)
			return -1;
	}
	return 0;
}

static void set_build_err(struct tar_out *t, const char *fmt, const char *a, const char *b)
{
	if (t->build_err.len)
		return;
	strbuf_addf(&t->build_err, fmt, a, b);
}

/* Octal field as Go writes it: zero-padded digits and a NUL terminator. */
static void put_octal(char *field, size_t width, unsigned long long v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%llo", v);

	if ((size_t)n + 1 > width) {
		memset(field, '7', width - 1); /* cannot happen for the fields used */
		field[width - 1] = '\0';
		return;
	}
	memset(field, '0', width - 1 - (size_t)n);
	memcpy(field + width - 1 - (size_t)n, tmp, (size_t)n);
	field[width - 1] = '\0';
}

static void put_string(char *field, size_t width, const char *s)
{
	size_t n = strlen(s);

	memcpy(field, s, n < width ? n : width);
}

static void finish_header(char *h)
{
	unsigned long sum = 0;

	memset(h + 148, ' ', 8);
	for (int i = 0; i < TAR_BLOCK; i++)
		sum += (unsigned char)h[i];
	/* Go: six octal digits, NUL, space. */
	snprintf(h + 148, 8, "%06lo", sum & 0777777);
	h[155] = ' ';
}

/* Splits name into USTAR prefix/name; 0 when it does not fit. */
static int ustar_split(const char *name, char *h)
{
	size_t len = strlen(name);

	if (len <= 100) {
		memcpy(h, name, len);
		return 1;
	}
	for (size_t i = len - 1; i > 0; i--) {
		if (name[i] != '/' || i > 155 || len - i - 1 > 100 || len - i - 1 == 0)
			continue;
		memcpy(h + 345, name, i);
		memcpy(h, name + i + 1, len - i - 1);
		return 1;
	}
	return 0;
}

static void fill_header(char *h, const char *name, const struct stat *st, char type,
			unsigned long long size)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char pwbuf[1024], grbuf[1024];
	time_t mtime = st->st_mtim.tv_sec + (st->st_mtim.tv_nsec >= 500000000L ? 1 : 0);

	(void)name;
	put_octal(h + 100, 8, st->st_mode & 07777);
	put_octal(h + 108, 8, st->st_uid);
	put_octal(h + 116, 8, st->st_gid);
	put_octal(h + 124, 12, size);
	put_octal(h + 136, 12, (unsigned long long)mtime);
	h[156] = type;
	memcpy(h + 257, "ustar\0" "00", 8);
	if (getpwuid_r(st->st_uid, &pw, pwbuf, sizeof(pwbuf), &pwp) == 0 && pwp)
		put_string(h + 265, 32, pwp->pw_name);
	if (getgrgid_r(st->st_gid, &gr, grbuf, sizeof(grbuf), &grp) == 0 && grp)
		put_string(h + 297, 32, grp->gr_name);
	put_octal(h + 329, 8, 0);
	put_octal(h + 337, 8, 0);
}

/* A PAX extended header carrying the path, for names USTAR cannot hold. */
static int write_pax_path(struct tar_out *t, const char *name, const struct stat *st)
{
	char h[TAR_BLOCK], rec[8192 + 64], hname[101];
	size_t nlen = strlen(name), len, digits = 1;
	const char *base = strrchr(name, '/');

	if (nlen > 8192)
		return -1;
	/* "<len> path=<name>\n" where len counts itself. */
	for (;;) {
		len = digits + 1 + 5 + nlen + 1;
		if (snprintf(rec, sizeof(rec), "%zu", len) == (int)digits)
			break;
		digits++;
	}
	snprintf(rec, sizeof(rec), "%zu path=%s\n", len, name);
	memset(h, 0, sizeof(h));
	snprintf(hname, sizeof(hname), "PaxHeaders.0/%.80s", base ? base + 1 : name);
	memcpy(h, hname, strlen(hname));
	fill_header(h, hname, st, 'x', len);
	finish_header(h);
	if (tar_write(t, h, TAR_BLOCK) < 0 || tar_write(t, rec, len) < 0)
		return -1;
	if (len % TAR_BLOCK) {
		static const char zero[TAR_BLOCK];

		return tar_write(t, zero, TAR_BLOCK - len % TAR_BLOCK);
	}
	return 0;
}

/* One entry: a directory (name gets a trailing slash) or a regular file
 * whose size bytes are copied from fd. */
static int tar_entry(struct tar_out *t, const char *name, const struct stat *st, int fd)
{
	static const char zero[TAR_BLOCK];
	char h[TAR_BLOCK], *full = NULL;
	int dir = S_ISDIR(st->st_mode), ret = -1;
	unsigned long long size = dir ? 0 : (unsigned long long)st->st_size, left = size;

	if (!dir && !S_ISREG(st->st_mode)) {
		set_build_err(t, "unsupported mode for %s%s", name, "");
		return -1;
	}
	if (asprintf(&full, "%s%s", name, dir && name[strlen(name) - 1] != '/' ? "/" : "") < 0)
		return -1;
	memset(h, 0, sizeof(h));
	if (!ustar_split(full, h)) {
		if (write_pax_path(t, full, st) < 0)
			goto out;
		memcpy(h, full, 100);
	}
	fill_header(h, full, st, dir ? '5' : '0', size);
	finish_header(h);
	if (tar_write(t, h, TAR_BLOCK) < 0)
		goto out;
	while (left) {
		char buf[65536];
		ssize_t n = read(fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_build_err(t, "%s: %s", name, n < 0 ? strerror(errno) : "unexpected EOF");
			goto out;
		}
		if (tar_write(t, buf, (size_t)n) < 0)
			goto out;
		left -= (unsigned long long)n;
	}
	if (size % TAR_BLOCK && tar_write(t, zero, TAR_BLOCK - size % TAR_BLOCK) < 0)
		goto out;
	ret = 0;
out:
	free(full);
	return ret;
}

/* Adds the regular file at path as entry name (symlinks refused as
 * upstream's O_NOFOLLOW open; a missing file is skipped when may_miss). */
static int add_file(struct tar_out *t, const char *path, const char *name, int may_miss)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), ret;

	if (fd < 0) {
		if (errno == ENOENT && may_miss)
			return 0;
		set_build_err(t, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		set_build_err(t, "stat %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	ret = tar_entry(t, name, &st, fd);
	close(fd);
	return ret;
}

static int names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Upstream's object file patterns: xx/<38 hex> and pack/pack-<40 hex>.(pack|idx)
 * (62 and 64 hex digits in SHA-256 repositories). */
static int is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
			return 0;
	return 1;
}

static int object_file(const char *path)
{
	size_t n = strlen(path);
	const char *base = strrchr(path, '/');

	size_t hexlen;

	/* 38 / 40 hex digits for SHA-1, 62 / 64 for SHA-256. */
	for (hexlen = 40; hexlen <= 64; hexlen += 24)
		if (n >= hexlen + 2 && path[n - hexlen - 2] == '/' && path[n - hexlen + 1] == '/' &&
		    is_hex(path + n - hexlen - 1, 2) && is_hex(path + n - hexlen + 2, hexlen - 2))
			return 1;
	if (!base || strncmp(base, "/pack-", 6))
		return 0;
	hexlen = strspn(base + 6, "0123456789abcdefABCDEF");
	if (hexlen != 40 && hexlen != 64)
		return 0;
	if (strcmp(base + 6 + hexlen, ".pack") && strcmp(base + 6 + hexlen, ".idx"))
		return 0;
	return base - path >= 5 && !strncmp(base - 5, "/pack", 5);
}

/*
 * filepath.Walk of dir (entry names under prefix): the directory itself,
 * then its children in lexical order. With objects_only, only object files
 * are added (upstream's match walker), directories never.
 */
static int walk(struct tar_out *t, const char *dir, const char *prefix, int objects_only)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, alloc = 0;
	struct stat st;
	int ret = -1;

	if (lstat(dir, &st) < 0) {
		set_build_err(t, "lstat %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (S_ISREG(st.st_mode) && (!objects_only || object_file(dir)))
			return add_file(t, dir, prefix, 0);
		return 0;
	}
	if (!objects_only && tar_entry(t, prefix, &st, -1) < 0)
		return -1;
	d = opendir(dir);
	if (!d) {
		set_build_err(t, "open %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == alloc) {
			char **nn = realloc(names, (alloc = alloc ? alloc * 2 : 32) * sizeof(*nn));

			if (!nn)
				goto out;
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name)))
			goto out;
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), names_cmp);
	for (size_t i = 0; i < n; i++) {
		char *sub = NULL, *subname = NULL;
		int r = 0;

		if (asprintf(&sub, "%s/%s", dir, names[i]) < 0 ||
		    asprintf(&subname, "%s/%s", prefix, names[i]) < 0) {
			free(sub);
			goto out;
		}
		if (lstat(sub, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				r = walk(t, sub, subname, objects_only);
			else if (S_ISREG(st.st_mode) && (!objects_only || object_file(sub)))
				r = add_file(t, sub, subname, 0);
		} /* vanished entries: skipped */
		free(sub);
		free(subname);
		if (r < 0)
			goto out;
	}
	ret = 0;
out:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

static int walk_if_exists(struct tar_out *t, const char *repo, const char *rel, int objects_only)
{
	char *dir = NULL;
	struct stat st;
	int ret = 0;

	if (asprintf(&dir, "%s/%s", repo, rel) < 0)
		return -1;
	if (lstat(dir, &st) == 0 || errno != ENOENT)
		ret = walk(t, dir, rel, objects_only);
	free(dir);
	return ret;
}

static int file_if_exists(struct tar_out *t, const char *repo, const char *rel)
{
	char *path = NULL;
	int ret;

	if (asprintf(&path, "%s/%s", repo, rel) < 0)
		return -1;
	ret = add_file(t, path, rel, 1);
	free(path);
	return ret;
}

/* The object files of each alternate (inside the storage) as objects/<rel>. */
static int add_alternates(struct tar_out *t, const char *storage, const char *repo)
{
	char *file = NULL, *data = NULL, *objects = NULL;
	struct error rerr = ERROR_INIT;
	size_t len = 0;
	int ret = 0;

	if (asprintf(&file, "%s/objects/info/alternates", repo) < 0 ||
	    asprintf(&objects, "%s/objects", repo) < 0)
		goto out;
	if (fsutil_read_file(file, ALTERNATES_CAP, &data, &len, &rerr) < 0)
		goto out; /* none, or unreadable: upstream logs and goes on */
	for (char *line = data; line && *line;) {
		char *nl = strchr(line, '\n'), *alt;
		size_t slen = strlen(storage);

		if (nl)
			*nl = '\0';
		alt = line[0] == '/' ? fsutil_path_clean(line) : fsutil_path_join(objects, line);
		if (alt && line[0] && line[0] != '#' && !strncmp(alt, storage, slen) &&
		    alt[slen] == '/') {
			char *pfx = NULL;

			/* Entries named objects/<path below the alternate>. */
			if (asprintf(&pfx, "objects") >= 0) {
				ret = walk(t, alt, pfx, 1);
				free(pfx);
			}
		}
		free(alt);
		if (ret < 0)
			break;
		line = nl ? nl + 1 : NULL;
	}
out:
	error_release(&rerr);
	free(data);
	free(file);
	free(objects);
	return ret;
}

int repository_get_snapshot_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetSnapshotRequest *req =
		(const Gitaly__GetSnapshotRequest *)rpc_call_request(call);
	static const char zero[2 * TAR_BLOCK];
	struct tar_out t = { 0 };
	const char *storage = NULL;
	char *path = NULL;
	int ret = -1;

	t.call = call;
	t.err = err;
	strbuf_init(&t.build_err, 4096);
	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (locator_storage_path(deps->locator, req->repository->storage_name, &storage, err) < 0)
		goto out;
	t.buf = malloc(SERVICE_CHUNK_SIZE);
	if (!t.buf) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	/* Each step stops at the first error, like upstream's sticky builder. */
	if (file_if_exists(&t, path, "HEAD") < 0 || file_if_exists(&t, path, "packed-refs") < 0 ||
	    walk_if_exists(&t, path, "refs", 0) < 0 || walk_if_exists(&t, path, "branches", 0) < 0 ||
	    walk_if_exists(&t, path, "objects", 1) < 0 || file_if_exists(&t, path, "shallow") < 0 ||
	    add_alternates(&t, storage, path) < 0) {
		if (t.failed)
			goto out;
		error_set(err, STATUS_INTERNAL, "building snapshot failed: %s",
			  t.build_err.len ? t.build_err.buf : "out of memory");
		goto out;
	}
	if (tar_write(&t, zero, sizeof(zero)) < 0 || tar_flush(&t) < 0)
		goto out;
	ret = 0;
out:
	strbuf_release(&t.build_err);
	free(t.buf);
	free(path);
	return ret;
}
