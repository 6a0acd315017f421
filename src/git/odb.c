/*
 * Object reads over a libgit2 handle, shaped after git cat-file's answers so
 * that services can replace a cat-file process with an in-process lookup:
 * "missing" is a normal outcome (0), anything else going wrong is Internal.
 */
#include "git/odb.h"

#include <string.h>

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
