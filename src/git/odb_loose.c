/*
 * Loose objects read with zlib directly, and the object database of a
 * repository assembled from this backend and libgit2's pack backend. A loose
 * object is "<type> <size>\0<content>" deflated; we inflate it from the file
 * in bounded chunks and require progress on every step, so a truncated file
 * ends in "premature end" instead of the endless loop of libgit2 1.5.1. The
 * header must name one of the four object types with a canonical decimal
 * size, the content must be exactly that long and nothing may follow the
 * zlib stream (git's own rules). libgit2 then checks the object's hash.
 * Lookups are never cached here: a missing file is looked for again on the
 * next read, so objects written by git after the handle was opened are seen.
 */
#include "git/odb_loose.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <git2/sys/commit_graph.h>

/* Longest header we accept ("commit " + 20 digits + NUL fits easily). */
#define HEADER_MAX 64
/* Input read from the file per step. */
#define CHUNK_SIZE (64 * 1024)
/* deflate cannot compress better than about 1032:1. */
#define DEFLATE_MAX_RATIO 1032
/* git's and libgit2's limit on nested alternates. */
#define ALTERNATES_MAX_DEPTH 5
/* Caps on what an info/alternates file may hold and on the directories. */
#define ALTERNATES_FILE_MAX (64 * 1024)
#define ODB_DIRS_MAX 64

struct loose_backend {
	git_odb_backend parent;
	git_odb_backend *inner; /* libgit2's loose backend, for everything but reads */
	char *dir;
};

struct inflater {
	int fd;
	z_stream z;
	int z_ready;
	int eof, ended;
	unsigned char in[CHUNK_SIZE];
};

static int fail(const git_oid *oid, const char *why)
{
	char hex[GIT_OID_HEXSZ + 1], msg[256];

	git_oid_tostr(hex, sizeof(hex), oid);
	snprintf(msg, sizeof(msg), "corrupt loose object %s: %s", hex, why);
	git_error_set_str(GIT_ERROR_ODB, msg);
	return -1;
}

/* Opens the object's file: 0, GIT_ENOTFOUND, or -1 with the error set. */
static int inflater_open(struct inflater *s, const struct loose_backend *be, const git_oid *oid,
			 off_t *file_size)
{
	char hex[GIT_OID_HEXSZ + 1], *path = NULL;
	struct stat st;
	int ret = -1;

	memset(&s->z, 0, sizeof(s->z));
	s->fd = -1;
	s->z_ready = s->eof = s->ended = 0;
	git_oid_fmt(hex, oid);
	hex[GIT_OID_HEXSZ] = '\0';
	if (asprintf(&path, "%s/%.2s/%s", be->dir, hex, hex + 2) < 0) {
		path = NULL;
		git_error_set_oom();
		goto out;
	}
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			ret = GIT_ENOTFOUND;
			git_error_set_str(GIT_ERROR_ODB, "object not found");
		} else {
			git_error_set(GIT_ERROR_OS, "opening loose object '%s'", path);
		}
		goto out;
	}
	if (fstat(s->fd, &st) < 0) {
		git_error_set(GIT_ERROR_OS, "reading loose object '%s'", path);
		goto out;
	}
	*file_size = st.st_size;
	if (inflateInit(&s->z) != Z_OK) {
		git_error_set_oom();
		goto out;
	}
	s->z_ready = 1;
	ret = 0;
out:
	free(path);
	return ret;
}

static void inflater_close(struct inflater *s)
{
	if (s->z_ready)
		inflateEnd(&s->z);
	if (s->fd >= 0)
		close(s->fd);
	s->z_ready = 0;
	s->fd = -1;
}

/* Reads the next chunk of the file into the zlib input. */
static int inflater_read(struct inflater *s, const git_oid *oid)
{
	ssize_t n;

	do
		n = read(s->fd, s->in, sizeof(s->in));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		git_error_set(GIT_ERROR_OS, "reading loose object");
		return fail(oid, "read error");
	}
	if (n == 0)
		s->eof = 1;
	s->z.next_in = s->in;
	s->z.avail_in = (uInt)n;
	return 0;
}

/*
 * Inflates until want bytes are in out, the stream ends, or an error. Every
 * round either reads more input, makes progress, or fails, so it ends.
 */
static int inflater_fill(struct inflater *s, const git_oid *oid, unsigned char *out, size_t want,
			 size_t *got)
{
	size_t produced = 0;

	while (produced < want && !s->ended) {
		size_t room = want - produced, made;
		uInt in_before;
		int rc;

		if (s->z.avail_in == 0 && !s->eof && inflater_read(s, oid) < 0)
			return -1;
		if (room > (1u << 30))
			room = 1u << 30;
		s->z.next_out = out + produced;
		s->z.avail_out = (uInt)room;
		in_before = s->z.avail_in;
		rc = inflate(&s->z, Z_NO_FLUSH);
		made = room - s->z.avail_out;
		produced += made;
		if (rc == Z_STREAM_END) {
			s->ended = 1;
			break;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return fail(oid, s->z.msg ? s->z.msg : "zlib error");
		if (made == 0 && s->z.avail_in == in_before) {
			if (s->eof)
				return fail(oid, "premature end of zlib stream (truncated file)");
			if (s->z.avail_in)
				return fail(oid, "zlib stream makes no progress");
		}
	}
	*got = produced;
	return 0;
}

/* Nothing may follow the end of the zlib stream. */
static int inflater_check_end(struct inflater *s, const git_oid *oid)
{
	if (s->z.avail_in == 0 && !s->eof && inflater_read(s, oid) < 0)
		return -1;
	if (s->z.avail_in)
		return fail(oid, "garbage at end of loose object");
	return 0;
}

static git_object_t type_of(const char *name, size_t len)
{
	static const struct {
		const char *name;
		git_object_t type;
	} types[] = {
		{ "blob", GIT_OBJECT_BLOB },
		{ "tree", GIT_OBJECT_TREE },
		{ "commit", GIT_OBJECT_COMMIT },
		{ "tag", GIT_OBJECT_TAG },
	};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strlen(types[i].name) == len && !memcmp(types[i].name, name, len))
			return types[i].type;
	return GIT_OBJECT_INVALID;
}

/*
 * Inflates and parses "<type> <size>\0". On success head[0..*head_len) holds
 * what was inflated and *body_off where the content starts in it.
 */
static int read_head(struct inflater *s, const git_oid *oid, off_t file_size,
		     unsigned char *head, size_t *head_len, size_t *body_off, git_object_t *type,
		     size_t *size)
{
	const unsigned char *sp, *nul, *p;
	size_t n = 0, v = 0;

	if (inflater_fill(s, oid, head, HEADER_MAX, &n) < 0)
		return -1;
	nul = memchr(head, '\0', n);
	sp = memchr(head, ' ', n);
	if (!nul || !sp || sp > nul)
		return fail(oid, "invalid object header");
	*type = type_of((const char *)head, (size_t)(sp - head));
	if (*type == GIT_OBJECT_INVALID)
		return fail(oid, "invalid object type");
	p = sp + 1;
	if (p == nul || (*p == '0' && p + 1 != nul))
		return fail(oid, "invalid object size");
	for (; p < nul; p++) {
		if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10)
			return fail(oid, "invalid object size");
		v = v * 10 + (size_t)(*p - '0');
	}
	if (v / DEFLATE_MAX_RATIO > (size_t)file_size)
		return fail(oid, "object size larger than its file can hold");
	*size = v;
	*head_len = n;
	*body_off = (size_t)(nul - head) + 1;
	return 0;
}

static int backend_read(void **buffer_p, size_t *len_p, git_object_t *type_p,
			git_odb_backend *backend, const git_oid *oid)
{
	struct loose_backend *be = (struct loose_backend *)backend;
	struct inflater *s = malloc(sizeof(*s));
	unsigned char head[HEADER_MAX], *data = NULL;
	size_t head_len, off, size, have, got;
	git_object_t type;
	off_t file_size = 0;
	int ret = -1, rc;

	if (!s) {
		git_error_set_oom();
		return -1;
	}
	if ((rc = inflater_open(s, be, oid, &file_size)) < 0) {
		ret = rc;
		goto out;
	}
	if (read_head(s, oid, file_size, head, &head_len, &off, &type, &size) < 0)
		goto out;
	have = head_len - off;
	if (have > size) {
		fail(oid, "content longer than its header says");
		goto out;
	}
	data = git_odb_backend_data_alloc(backend, size + 1);
	if (!data) {
		git_error_set_oom();
		goto out;
	}
	memcpy(data, head + off, have);
	/* One byte of room past the end catches content that runs long. */
	if (!s->ended) {
		if (inflater_fill(s, oid, data + have, size - have + 1, &got) < 0)
			goto out;
		have += got;
	}
	if (have != size || !s->ended) {
		fail(oid, have > size ? "content longer than its header says"
				      : "content shorter than its header says");
		goto out;
	}
	if (inflater_check_end(s, oid) < 0)
		goto out;
	data[size] = '\0';
	*buffer_p = data;
	*len_p = size;
	*type_p = type;
	data = NULL;
	ret = 0;
out:
	if (data)
		git_odb_backend_data_free(backend, data);
	inflater_close(s);
	free(s);
	return ret;
}

static int backend_read_header(size_t *len_p, git_object_t *type_p, git_odb_backend *backend,
			       const git_oid *oid)
{
	struct loose_backend *be = (struct loose_backend *)backend;
	struct inflater *s = malloc(sizeof(*s));
	unsigned char head[HEADER_MAX];
	size_t head_len, off;
	off_t file_size = 0;
	int ret = -1, rc;

	if (!s) {
		git_error_set_oom();
		return -1;
	}
	if ((rc = inflater_open(s, be, oid, &file_size)) < 0) {
		ret = rc;
		goto out;
	}
	if (read_head(s, oid, file_size, head, &head_len, &off, type_p, len_p) < 0)
		goto out;
	ret = 0;
out:
	inflater_close(s);
	free(s);
	return ret;
}

static int backend_read_prefix(git_oid *out_oid, void **buffer_p, size_t *len_p,
			       git_object_t *type_p, git_odb_backend *backend,
			       const git_oid *short_oid, size_t len)
{
	struct loose_backend *be = (struct loose_backend *)backend;
	git_oid full;
	int rc;

	rc = be->inner->exists_prefix(&full, be->inner, short_oid, len);
	if (rc < 0)
		return rc;
	rc = backend_read(buffer_p, len_p, type_p, backend, &full);
	if (rc == 0)
		git_oid_cpy(out_oid, &full);
	return rc;
}

static int backend_exists(git_odb_backend *backend, const git_oid *oid)
{
	struct loose_backend *be = (struct loose_backend *)backend;

	return be->inner->exists(be->inner, oid);
}

static int backend_exists_prefix(git_oid *out, git_odb_backend *backend, const git_oid *short_oid,
				 size_t len)
{
	struct loose_backend *be = (struct loose_backend *)backend;

	return be->inner->exists_prefix(out, be->inner, short_oid, len);
}

static int backend_foreach(git_odb_backend *backend, git_odb_foreach_cb cb, void *payload)
{
	struct loose_backend *be = (struct loose_backend *)backend;

	return be->inner->foreach(be->inner, cb, payload);
}

static int backend_write(git_odb_backend *backend, const git_oid *oid, const void *data,
			 size_t len, git_object_t type)
{
	struct loose_backend *be = (struct loose_backend *)backend;

	return be->inner->write(be->inner, oid, data, len, type);
}

static int backend_writestream(git_odb_stream **out, git_odb_backend *backend,
			       git_object_size_t size, git_object_t type)
{
	struct loose_backend *be = (struct loose_backend *)backend;

	/* The stream points at the inner backend, and libgit2 finishing it asks
	 * stream->backend->odb whether the object exists already: without an odb
	 * that check fails and the object is silently not written. */
	be->inner->odb = backend->odb;
	return be->inner->writestream(out, be->inner, size, type);
}

static int backend_freshen(git_odb_backend *backend, const git_oid *oid)
{
	struct loose_backend *be = (struct loose_backend *)backend;

	return be->inner->freshen(be->inner, oid);
}

static void backend_free(git_odb_backend *backend)
{
	struct loose_backend *be = (struct loose_backend *)backend;

	if (!be)
		return;
	if (be->inner)
		be->inner->free(be->inner);
	free(be->dir);
	free(be);
}

int odb_loose_backend_new(git_odb_backend **out, const char *objects_dir)
{
	struct loose_backend *be = calloc(1, sizeof(*be));
	int ret = -1;

	if (!be || !(be->dir = strdup(objects_dir))) {
		git_error_set_oom();
		goto out;
	}
	if (git_odb_init_backend(&be->parent, GIT_ODB_BACKEND_VERSION) < 0)
		goto out;
	if (git_odb_backend_loose(&be->inner, objects_dir, -1, 0, 0, 0) < 0)
		goto out;
	be->parent.read = backend_read;
	be->parent.read_header = backend_read_header;
	be->parent.read_prefix = backend_read_prefix;
	be->parent.exists = backend_exists;
	be->parent.exists_prefix = backend_exists_prefix;
	be->parent.foreach = backend_foreach;
	be->parent.write = backend_write;
	be->parent.writestream = backend_writestream;
	be->parent.freshen = backend_freshen;
	be->parent.free = backend_free;
	/* No readstream: libgit2's streams over loose objects use the same
	 * looping inflater; git_odb_open_rstream then reports "unsupported". */
	*out = &be->parent;
	be = NULL;
	ret = 0;
out:
	if (be)
		backend_free(&be->parent);
	return ret;
}

struct odb_build {
	git_odb *odb;
	struct {
		dev_t dev;
		ino_t ino;
	} seen[ODB_DIRS_MAX];
	size_t nseen;
	int have_graph;
};

static int lg2_fail(struct error *err, const char *what, const char *path)
{
	const git_error *ge = git_error_last();

	return error_set(err, STATUS_INTERNAL, "%s %s: %s", what, path,
			 ge && ge->message ? ge->message : "unknown libgit2 error");
}

static int add_dir(struct odb_build *b, const char *dir, int alternate, int depth,
		   struct error *err);

/* Adds every directory named in dir/info/alternates. */
static int add_alternates_of(struct odb_build *b, const char *dir, int depth, struct error *err)
{
	char *path = NULL, *buf = NULL, *cursor, *line, *joined = NULL;
	FILE *f = NULL;
	size_t n;
	int ret = -1;

	if (depth > ALTERNATES_MAX_DEPTH)
		return 0;
	if (asprintf(&path, "%s/info/alternates", dir) < 0) {
		path = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	f = fopen(path, "re");
	if (!f) {
		ret = 0; /* no alternates (or unreadable: git ignores it too) */
		goto out;
	}
	buf = malloc(ALTERNATES_FILE_MAX + 1);
	if (!buf) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	n = fread(buf, 1, ALTERNATES_FILE_MAX, f);
	buf[n] = '\0';
	cursor = buf;
	while ((line = strsep(&cursor, "\r\n"))) {
		if (!*line || *line == '#')
			continue;
		free(joined);
		joined = NULL;
		if (*line != '/') {
			if (asprintf(&joined, "%s/%s", dir, line) < 0) {
				joined = NULL;
				error_set(err, STATUS_INTERNAL, "out of memory");
				goto out;
			}
			line = joined;
		}
		if (add_dir(b, line, 1, depth + 1, err) < 0)
			goto out;
	}
	ret = 0;
out:
	if (f)
		fclose(f);
	free(joined);
	free(buf);
	free(path);
	return ret;
}

static int add_backend(struct odb_build *b, git_odb_backend *be, int priority, int alternate,
		       const char *dir, struct error *err)
{
	int rc = alternate ? git_odb_add_alternate(b->odb, be, priority)
			   : git_odb_add_backend(b->odb, be, priority);

	if (rc < 0) {
		lg2_fail(err, "adding object directory", dir);
		be->free(be);
		return -1;
	}
	return 0;
}

static int add_dir(struct odb_build *b, const char *dir, int alternate, int depth,
		   struct error *err)
{
	git_odb_backend *loose = NULL, *packed = NULL;
	char *graph = NULL;
	struct stat st;
	size_t i;
	int ret = -1, rc;

	rc = stat(dir, &st);
	if (rc < 0 || !S_ISDIR(st.st_mode)) {
		int e = rc < 0 ? errno : ENOTDIR;

		if (alternate)
			return 0; /* a missing alternate is skipped, as libgit2 does */
		return error_set(err, STATUS_INTERNAL, "opening object directory %s: %s", dir,
				 strerror(e));
	}
	for (i = 0; i < b->nseen; i++)
		if (b->seen[i].dev == st.st_dev && b->seen[i].ino == st.st_ino)
			return 0;
	if (b->nseen == ODB_DIRS_MAX)
		return 0;
	b->seen[b->nseen].dev = st.st_dev;
	b->seen[b->nseen].ino = st.st_ino;
	b->nseen++;

	if (odb_loose_backend_new(&loose, dir) < 0) {
		lg2_fail(err, "opening object directory", dir);
		goto out;
	}
	if (add_backend(b, loose, ODB_LOOSE_PRIORITY, alternate, dir, err) < 0)
		goto out;
	if (git_odb_backend_pack(&packed, dir) < 0) {
		lg2_fail(err, "opening packs of", dir);
		goto out;
	}
	if (add_backend(b, packed, ODB_PACKED_PRIORITY, alternate, dir, err) < 0)
		goto out;
	if (!b->have_graph) {
		/* Like libgit2: the first directory's commit-graph, best effort. */
		git_commit_graph *cg = NULL;

		b->have_graph = 1;
		if (asprintf(&graph, "%s/info/commit-graph", dir) < 0)
			graph = NULL;
		if (graph && access(graph, F_OK) == 0 && git_commit_graph_open(&cg, dir) == 0 &&
		    git_odb_set_commit_graph(b->odb, cg) < 0)
			git_commit_graph_free(cg);
		git_error_clear();
	}
	ret = add_alternates_of(b, dir, depth, err);
out:
	free(graph);
	return ret;
}

int odb_loose_open(git_odb **out, const char *objects_dir, const char *extra_alternates,
		   struct error *err)
{
	struct odb_build *b = calloc(1, sizeof(*b));
	char *alts = NULL, *cursor, *part;
	int ret = -1;

	*out = NULL;
	if (!b) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (git_odb_new(&b->odb) < 0) {
		lg2_fail(err, "creating object database for", objects_dir);
		goto out;
	}
	if (add_dir(b, objects_dir, 0, 0, err) < 0)
		goto out;
	if (extra_alternates && *extra_alternates) {
		alts = strdup(extra_alternates);
		if (!alts) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		cursor = alts;
		while ((part = strsep(&cursor, ":")))
			if (*part && add_dir(b, part, 1, 0, err) < 0)
				goto out;
	}
	*out = b->odb;
	b->odb = NULL;
	ret = 0;
out:
	if (b)
		git_odb_free(b->odb);
	free(b);
	free(alts);
	return ret;
}
