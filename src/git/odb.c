/*
 * Object reads over a libgit2 handle, shaped after git cat-file's answers so
 * that services can replace a cat-file process with an in-process lookup:
 * "missing" is a normal outcome (0), anything else going wrong is Internal.
 * The handle-generic half below dispatches to libgit2 or to the cat-file
 * reader of SHA-256 repositories, and parses raw trees for the latter.
 */
#include "git/odb.h"

#include <stdlib.h>
#include <string.h>

#include "git/catfile.h"

static int lg2_error(struct error *err, const char *what)
{
	const git_error *ge = git_error_last();

	return error_set(err, STATUS_INTERNAL, "%s: %s", what,
			 ge && ge->message ? ge->message : "unknown libgit2 error");
}

const char *odb_type_name(git_object_t type)
{
	switch (type) {
	case GIT_OBJECT_BLOB:
		return "blob";
	case GIT_OBJECT_TREE:
		return "tree";
	case GIT_OBJECT_COMMIT:
		return "commit";
	case GIT_OBJECT_TAG:
		return "tag";
	default:
		return "unknown";
	}
}

static int is_full_hex(const char *s)
{
	size_t n = strlen(s);

	return n == GIT_OID_HEXSZ && strspn(s, "0123456789abcdefABCDEF") == n;
}

int odb_resolve(git_repository *repo, const char *rev, git_oid *out, struct error *err)
{
	git_object *obj = NULL;
	int rc;

	if (!*rev)
		return 0;
	if (is_full_hex(rev)) {
		git_odb *odb = NULL;
		int exists;

		if (git_oid_fromstr(out, rev) < 0)
			return 0;
		if (git_repository_odb(&odb, repo) < 0)
			return lg2_error(err, "opening object database");
		exists = git_odb_exists(odb, out);
		git_odb_free(odb);
		return exists ? 1 : 0;
	}
	rc = git_revparse_single(&obj, repo, rev);
	if (rc == GIT_ENOTFOUND || rc == GIT_EAMBIGUOUS || rc == GIT_EINVALIDSPEC ||
	    rc == GIT_EPEEL || rc == GIT_EINVALID)
		return 0;
	if (rc < 0)
		return lg2_error(err, "resolving revision");
	git_oid_cpy(out, git_object_id(obj));
	git_object_free(obj);
	return 1;
}

int odb_header(git_repository *repo, const git_oid *oid, git_object_t *type, int64_t *size,
	       struct error *err)
{
	git_odb *odb = NULL;
	size_t len = 0;
	int rc;

	if (git_repository_odb(&odb, repo) < 0)
		return lg2_error(err, "opening object database");
	rc = git_odb_read_header(&len, type, odb, oid);
	git_odb_free(odb);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return lg2_error(err, "reading object header");
	*size = (int64_t)len;
	return 1;
}

int odb_read(git_repository *repo, const git_oid *oid, git_odb_object **out, struct error *err)
{
	git_odb *odb = NULL;
	int rc;

	*out = NULL;
	if (git_repository_odb(&odb, repo) < 0)
		return lg2_error(err, "opening object database");
	rc = git_odb_read(out, odb, oid);
	git_odb_free(odb);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return lg2_error(err, "reading object");
	return 1;
}

/* Whether some line of buf (start of text or after '\n') is prefix followed
 * by at least one char of set (exactly n of them when n > 0) up to '\n' or
 * the end, as Go's (?m)^prefix[set]{n}$ / [set]+$. */
static int has_line(const char *buf, size_t len, const char *prefix, const char *set, size_t n)
{
	size_t plen = strlen(prefix);
	size_t i = 0;

	while (i <= len) {
		const char *line = buf + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t llen = nl ? (size_t)(nl - line) : len - i;

		if (llen > plen && !memcmp(line, prefix, plen)) {
			size_t rest = llen - plen, k;

			for (k = 0; k < rest; k++)
				if (!strchr(set, line[plen + k]) || !line[plen + k])
					break;
			if (k == rest && (n == 0 || rest == n))
				return 1;
		}
		if (!nl)
			break;
		i += llen + 1;
	}
	return 0;
}

int odb_is_lfs_pointer(const void *data, size_t len)
{
	static const char version[] = "version https://git-lfs.github.com/spec";
	const char *buf = data;

	if (len < sizeof(version) - 1 || memcmp(buf, version, sizeof(version) - 1))
		return 0;
	return has_line(buf, len, "oid sha256:", "0123456789abcdef", 64) &&
	       has_line(buf, len, "size ", "0123456789", 0);
}

/* ---- either kind of handle ------------------------------------------------ */

/* A full lowercase hex id of either length, converted for libgit2. */
static int lg_oid(const char *hex, git_oid *out)
{
	return strlen(hex) == GIT_OID_HEXSZ && strspn(hex, "0123456789abcdef") == GIT_OID_HEXSZ &&
	       git_oid_fromstr(out, hex) == 0;
}

int odb_h_resolve(const struct repo_handle *h, const char *rev, char *oid, struct error *err)
{
	git_object_t type;
	int64_t size;
	git_oid bin;
	int rc;

	if (h->cf)
		return catfile_info(h->cf, rev, oid, &type, &size, err);
	rc = odb_resolve(h->repo, rev, &bin, err);
	if (rc > 0)
		git_oid_tostr(oid, ODB_OID_MAX, &bin);
	return rc;
}

int odb_h_header(const struct repo_handle *h, const char *oid, git_object_t *type, int64_t *size,
		 struct error *err)
{
	char got[ODB_OID_MAX];
	git_oid bin;

	if (h->cf)
		return catfile_info(h->cf, oid, got, type, size, err);
	if (!lg_oid(oid, &bin))
		return 0;
	return odb_header(h->repo, &bin, type, size, err);
}

int odb_h_read(const struct repo_handle *h, const char *oid, struct odb_object *out,
	       struct error *err)
{
	char got[ODB_OID_MAX];
	git_oid bin;
	int rc;

	memset(out, 0, sizeof(*out));
	if (h->cf) {
		rc = catfile_contents(h->cf, oid, got, &out->type, &out->buf, &out->len, 0, err);
		out->data = out->buf;
		return rc;
	}
	if (!lg_oid(oid, &bin))
		return 0;
	rc = odb_read(h->repo, &bin, &out->lg, err);
	if (rc > 0) {
		out->type = git_odb_object_type(out->lg);
		out->data = git_odb_object_data(out->lg);
		out->len = git_odb_object_size(out->lg);
	}
	return rc;
}

void odb_object_release(struct odb_object *o)
{
	git_odb_object_free(o->lg);
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

git_object_t odb_mode_type(uint32_t mode)
{
	switch (mode & 0170000) {
	case 0040000:
		return GIT_OBJECT_TREE;
	case 0160000:
		return GIT_OBJECT_COMMIT;
	default:
		return GIT_OBJECT_BLOB;
	}
}

int odb_tree_parse(const char *data, size_t len, size_t raw_len, odb_tree_fn fn, void *arg,
		   struct error *err)
{
	static const char hexdig[] = "0123456789abcdef";
	size_t pos = 0;

	while (pos < len) {
		struct odb_tree_entry e;
		const char *sp = memchr(data + pos, ' ', len - pos), *nul;
		uint32_t mode = 0;
		int rc;

		if (!sp || sp == data + pos)
			return error_set(err, STATUS_INTERNAL, "malformed tree");
		for (const char *p = data + pos; p < sp; p++) {
			if (*p < '0' || *p > '7' || mode > 0777777)
				return error_set(err, STATUS_INTERNAL, "malformed tree");
			mode = mode * 8 + (uint32_t)(*p - '0');
		}
		nul = memchr(sp + 1, '\0', len - (size_t)(sp + 1 - data));
		if (!nul || nul == sp + 1 || (size_t)(data + len - (nul + 1)) < raw_len)
			return error_set(err, STATUS_INTERNAL, "malformed tree");
		e.mode = mode;
		e.type = odb_mode_type(mode);
		e.name = sp + 1;
		e.name_len = (size_t)(nul - (sp + 1));
		for (size_t i = 0; i < raw_len; i++) {
			unsigned char b = (unsigned char)nul[1 + i];

			e.oid[2 * i] = hexdig[b >> 4];
			e.oid[2 * i + 1] = hexdig[b & 15];
		}
		e.oid[2 * raw_len] = '\0';
		pos = (size_t)(nul + 1 - data) + raw_len;
		rc = fn(arg, &e, err);
		if (rc < 0)
			return -1;
		if (rc > 0)
			break;
	}
	return 0;
}

int odb_h_tree_each(const struct repo_handle *h, const char *oid, odb_tree_fn fn, void *arg,
		    struct error *err)
{
	struct odb_object obj;
	git_tree *tree = NULL;
	git_oid bin;
	int rc, ret = -1;

	if (h->cf) {
		rc = odb_h_read(h, oid, &obj, err);
		if (rc <= 0)
			return rc;
		if (obj.type != GIT_OBJECT_TREE) {
			odb_object_release(&obj);
			return 0;
		}
		ret = odb_tree_parse(obj.data, obj.len, strlen(oid) / 2, fn, arg, err) < 0 ? -1 : 1;
		odb_object_release(&obj);
		return ret;
	}
	if (!lg_oid(oid, &bin))
		return 0;
	rc = git_tree_lookup(&tree, h->repo, &bin);
	if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC)
		return 0;
	if (rc < 0) {
		const git_error *ge = git_error_last();

		/* A non-tree object is "not a tree", not a failure. */
		if (ge && ge->klass == GIT_ERROR_INVALID)
			return 0;
		return lg2_error(err, "reading tree");
	}
	ret = odb_tree_each_lg(tree, fn, arg, err) < 0 ? -1 : 1;
	git_tree_free(tree);
	return ret;
}

int odb_tree_each_lg(const git_tree *tree, odb_tree_fn fn, void *arg, struct error *err)
{
	for (size_t i = 0; i < git_tree_entrycount(tree); i++) {
		const git_tree_entry *te = git_tree_entry_byindex(tree, i);
		struct odb_tree_entry e;

		e.mode = (uint32_t)git_tree_entry_filemode_raw(te);
		e.type = odb_mode_type(e.mode);
		e.name = git_tree_entry_name(te);
		e.name_len = strlen(e.name);
		git_oid_tostr(e.oid, sizeof(e.oid), git_tree_entry_id(te));
		int rc = fn(arg, &e, err);

		if (rc < 0)
			return -1;
		if (rc > 0)
			break;
	}
	return 0;
}
