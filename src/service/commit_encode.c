/*
 * Commits read in-process for CommitService: revisions resolve through
 * libgit2's revparse like "<rev>^{commit}" in cat-file, a missing object or
 * a non-commit is "not found" (not an error), the raw object is encoded by
 * the shared gitcommit parser, trailers come from git itself, and the
 * commit-list responses share one sender.
 */
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "git/catfile.h"
#include "git/command.h"
#include "git/objmemo.h"
#include "git/repo_cache.h"
#include "git/refread.h"
#include "service/commit_internal.h"
#include "service/gitcommit.h"

/* Trailer limits of upstream's trailer parser. */
#define MAX_TRAILERS 64
#define MAX_TRAILER_KEY 128
#define MAX_TRAILER_VALUE 512

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		abort();
	return p;
}

static void bin_set(ProtobufCBinaryData *b, const char *s, size_t len)
{
	b->data = xcalloc(len + 1, 1);
	memcpy(b->data, s, len);
	b->len = len;
}

void commit_gitcommit_free(Gitaly__GitCommit *c)
{
	gitcommit_free(c);
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int commit_read_oid(git_repository *repo, const git_oid *oid, Gitaly__GitCommit **out,
		    struct error *err)
{
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int rc, ret = -1;

	if (git_repository_odb(&odb, repo) < 0) {
		error_set(err, STATUS_INTERNAL, "opening object database: %s", commit_git_error());
		goto out;
	}
	rc = git_odb_read(&obj, odb, oid);
	if (rc == GIT_ENOTFOUND) {
		ret = 0;
		goto out;
	}
	if (rc < 0) {
		error_set(err, STATUS_INTERNAL, "reading object: %s", commit_git_error());
		goto out;
	}
	if (git_odb_object_type(obj) != GIT_OBJECT_COMMIT) {
		ret = 0;
		goto out;
	}
	git_oid_tostr(hex, sizeof(hex), oid);
	if (gitcommit_parse(hex, git_odb_object_data(obj), git_odb_object_size(obj), out, err) < 0)
		goto out;
	ret = 1;
out:
	git_odb_object_free(obj);
	git_odb_free(odb);
	return ret;
}

/*
 * "<name>" and "<name>:<path>" with a plain name resolved by git/refread.c
 * (a few system calls fewer than libgit2's DWIM), then what revparse does
 * with them: the object, or the tree's entry at path ("" is the tree).
 * 1 with *out set; 0 whenever anything differs from the plain success,
 * and the caller asks revparse, so errors and misses stay libgit2's.
 */
static int resolve_fast(git_repository *repo, const char *rev, git_object **out)
{
	const char *colon = strchr(rev, ':');
	size_t n = colon ? (size_t)(colon - rev) : strlen(rev);
	char name[256];
	git_oid oid;
	git_object *obj = NULL, *tree = NULL;
	git_tree_entry *te = NULL;
	int ret = 0;

	if (!n || n >= sizeof(name))
		return 0;
	memcpy(name, rev, n);
	name[n] = '\0';
	if (refread_dwim(repo, name, &oid) != REFREAD_FOUND ||
	    git_object_lookup(&obj, repo, &oid, GIT_OBJECT_ANY) < 0)
		goto out;
	if (!colon) {
		*out = obj;
		obj = NULL;
		ret = 1;
		goto out;
	}
	if (git_object_peel(&tree, obj, GIT_OBJECT_TREE) < 0)
		goto out;
	if (!colon[1]) {
		*out = tree;
		tree = NULL;
		ret = 1;
	} else if (git_tree_entry_bypath(&te, (const git_tree *)tree, colon + 1) == 0 &&
		   git_tree_entry_to_object(out, repo, te) == 0) {
		ret = 1;
	}
out:
	git_tree_entry_free(te);
	git_object_free(tree);
	git_object_free(obj);
	return ret;
}

int commit_resolve(git_repository *repo, const char *rev, git_object **out, struct error *err)
{
	int rc;

	if (resolve_fast(repo, rev, out))
		return 1;
	rc = git_revparse_single(out, repo, rev);

	if (rc == 0)
		return 1;
	*out = NULL;
	switch (rc) {
	case GIT_ENOTFOUND:
	case GIT_EAMBIGUOUS:
	case GIT_EINVALIDSPEC:
	case GIT_EPEEL:
	case GIT_EUNBORNBRANCH:
		return 0;
	default:
		/* libgit2 reports some unparsable specs as generic errors. */
		if (git_error_last() && git_error_last()->klass == GIT_ERROR_INVALID)
			return 0;
		return error_set(err, STATUS_INTERNAL, "resolving revision: %s",
				 commit_git_error());
	}
}

/* A commit through the cat-file reader: rev is read as "<rev>^{commit}"
 * when peel is set (a tag leads to its commit), else as it is. */
static int read_catfile(struct catfile *cf, const char *rev, int peel, Gitaly__GitCommit **out,
			struct error *err)
{
	char oid[CATFILE_OID_MAX], *spec = NULL, *data = NULL;
	git_object_t type;
	size_t len;
	int ret;

	if (peel && asprintf(&spec, "%s^{commit}", rev) < 0)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	ret = catfile_contents(cf, peel ? spec : rev, oid, &type, &data, &len, 0, err);
	if (ret > 0 && type != GIT_OBJECT_COMMIT)
		ret = 0;
	if (ret > 0 && gitcommit_parse(oid, data, len, out, err) < 0)
		ret = -1;
	free(data);
	free(spec);
	return ret;
}

struct repo_handle commit_repo_handle(const struct commit_repo *r)
{
	struct repo_handle h = { r->git, r->cf };

	return h;
}

int commit_resolve_oid(struct commit_repo *r, const char *rev, git_object_t peel, char *oid,
		       struct error *err)
{
	git_object *obj = NULL, *peeled = NULL;
	git_object_t type;
	int64_t size;
	char *spec = NULL;
	int ret;

	if (r->cf) {
		const char *suffix = peel == GIT_OBJECT_COMMIT ? "^{commit}"
				     : peel == GIT_OBJECT_TREE ? "^{tree}" : "";

		if (asprintf(&spec, "%s%s", rev, suffix) < 0)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		ret = catfile_info(r->cf, spec, oid, &type, &size, err);
		free(spec);
		return ret;
	}
	ret = commit_resolve(r->git, rev, &obj, err);
	if (ret <= 0)
		return ret;
	if (peel != GIT_OBJECT_ANY) {
		if (git_object_peel(&peeled, obj, peel) < 0) {
			git_object_free(obj);
			return 0;
		}
		git_oid_tostr(oid, ODB_OID_MAX, git_object_id(peeled));
	} else {
		git_oid_tostr(oid, ODB_OID_MAX, git_object_id(obj));
	}
	git_object_free(peeled);
	git_object_free(obj);
	return 1;
}

int commit_resolve_typed(struct commit_repo *r, const char *rev, char *oid, git_object_t *type,
			 struct error *err)
{
	git_object *obj = NULL;
	int64_t size;
	int ret;

	if (r->cf)
		return catfile_info(r->cf, rev, oid, type, &size, err);
	ret = commit_resolve(r->git, rev, &obj, err);
	if (ret <= 0)
		return ret;
	git_oid_tostr(oid, ODB_OID_MAX, git_object_id(obj));
	*type = git_object_type(obj);
	git_object_free(obj);
	return 1;
}

int commit_read_raw_commit(struct commit_repo *r, const char *rev, char *oid,
			   struct odb_object *out, struct error *err)
{
	struct repo_handle h = commit_repo_handle(r);
	int rc;

	memset(out, 0, sizeof(*out));
	rc = commit_resolve_oid(r, rev, GIT_OBJECT_COMMIT, oid, err);
	if (rc <= 0)
		return rc;
	rc = odb_h_read(&h, oid, out, err);
	if (rc > 0 && out->type != GIT_OBJECT_COMMIT) {
		odb_object_release(out);
		rc = 0;
	}
	return rc;
}

struct walk_state {
	struct commit_repo *r;
	commit_walk_fn fn;
	void *arg;
	struct strbuf root;
	int depth;
};

static int walk_tree(struct walk_state *w, const char *oid, struct error *err);

static int walk_entry(void *arg, const struct odb_tree_entry *e, struct error *err)
{
	struct walk_state *w = arg;
	size_t keep = w->root.len;
	int rc = w->fn(w->arg, w->root.buf ? w->root.buf : "", e, err);

	if (rc < 0)
		return -1;
	if (rc > 0 || e->type != GIT_OBJECT_TREE)
		return 0;
	if (strbuf_add(&w->root, e->name, e->name_len) < 0 || strbuf_addch(&w->root, '/') < 0)
		return error_set(err, STATUS_INTERNAL, "tree path too long");
	rc = walk_tree(w, e->oid, err);
	w->root.len = keep;
	w->root.buf[keep] = '\0';
	return rc < 0 ? -1 : 0;
}

static int walk_tree(struct walk_state *w, const char *oid, struct error *err)
{
	struct repo_handle h = commit_repo_handle(w->r);
	int rc;

	if (++w->depth > 4096)
		return error_set(err, STATUS_INTERNAL, "tree too deep");
	rc = odb_h_tree_each(&h, oid, walk_entry, w, err);
	w->depth--;
	return rc;
}

int commit_tree_walk(struct commit_repo *r, const char *oid, commit_walk_fn fn, void *arg,
		     struct error *err)
{
	struct walk_state w = { r, fn, arg, STRBUF_INIT, 0 };
	int rc;

	strbuf_init(&w.root, (size_t)1 << 20);
	if (strbuf_adds(&w.root, "") < 0) {
		strbuf_release(&w.root);
		return error_set(err, STATUS_INTERNAL, "out of memory");
	}
	rc = walk_tree(&w, oid, err);
	strbuf_release(&w.root);
	return rc;
}

int commit_is_full_hex(const char *s)
{
	size_t n = strlen(s);

	return (n == 40 || n == 64) && strspn(s, "0123456789abcdef") == n;
}

int commit_read_hex(struct commit_repo *r, const char *hex, Gitaly__GitCommit **out,
		    struct error *err)
{
	git_oid oid;

	if (r->cf)
		return read_catfile(r->cf, hex, 0, out, err);
	/* git_oid_fromstr would read the first 40 digits of a longer id. */
	if (strlen(hex) != GIT_OID_HEXSZ || git_oid_fromstr(&oid, hex) < 0)
		return 0;
	return commit_read_oid(r->git, &oid, out, err);
}

static void free_gitcommit(void *c)
{
	gitcommit_free(c);
}

/* The commit at oid, from memo when it is there (*owned = 0), else read
 * and kept in memo when it fits (*owned = 0) or handed over (*owned = 1). */
static int read_oid_memo(git_repository *repo, struct objmemo *memo, const git_oid *oid,
			 Gitaly__GitCommit **out, int *owned, struct error *err)
{
	Gitaly__GitCommit *c;
	int rc;

	*owned = 1;
	if (!memo)
		return commit_read_oid(repo, oid, out, err);
	c = objmemo_get(memo, oid);
	if (c) {
		*out = c;
		*owned = 0;
		return 1;
	}
	rc = commit_read_oid(repo, oid, out, err);
	if (rc > 0 && objmemo_put(memo, oid, *out, protobuf_c_message_get_packed_size(&(*out)->base),
				  free_gitcommit))
		*owned = 0;
	return rc;
}

static int read_rev(struct commit_repo *r, const char *rev, struct objmemo *memo,
		    Gitaly__GitCommit **out, int *owned, struct error *err)
{
	git_repository *repo = r->git;
	git_object *obj = NULL, *peeled = NULL;
	int ret;

	*owned = 1;
	if (r->cf)
		return read_catfile(r->cf, rev, 1, out, err);
	/* A branch or tag name: straight to the raw commit (a tag object, or
	 * anything unusual, takes the general way below). */
	if (!strchr(rev, ':')) {
		git_oid oid;
		struct error e = ERROR_INIT;

		if (refread_dwim(repo, rev, &oid) == REFREAD_FOUND &&
		    read_oid_memo(repo, memo, &oid, out, owned, &e) > 0) {
			error_release(&e);
			return 1;
		}
		error_release(&e);
	}
	ret = commit_resolve(repo, rev, &obj, err);
	if (ret <= 0)
		goto out;
	if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) < 0) {
		ret = 0;
		goto out;
	}
	ret = read_oid_memo(repo, memo, git_object_id(peeled), out, owned, err);
out:
	git_object_free(peeled);
	git_object_free(obj);
	return ret;
}

int commit_read_rev(struct commit_repo *r, const char *rev, Gitaly__GitCommit **out,
		    struct error *err)
{
	int owned;

	return read_rev(r, rev, NULL, out, &owned, err);
}

int commit_find_rev(struct commit_repo *r, const char *rev, Gitaly__GitCommit **out, int *owned,
		    struct error *err)
{
	return read_rev(r, rev, r->git ? repo_cache_objmemo(r->git) : NULL, out, owned, err);
}

int commit_add_trailers(struct commit_repo *r, Gitaly__GitCommit *c, struct error *err)
{
	struct git_cmd *cmd = commit_repo_git(r, "show");
	struct strbuf buf;
	struct git_result res;
	const char *s, *end;
	int ret = -1;

	strbuf_init(&buf, 1 << 20);
	git_cmd_flag(cmd, "--format=%(trailers:unfold,separator=%x00)");
	git_cmd_flag(cmd, "--no-patch");
	git_cmd_arg(cmd, c->id);
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "git show: exit status %d", res.exit_code);
		goto out;
	}
	/* One line of output: the NUL-separated trailers. */
	s = buf.buf ? buf.buf : "";
	end = memchr(s, '\n', buf.len);
	if (!end)
		end = s + buf.len;
	while (s < end && c->n_trailers < MAX_TRAILERS) {
		const char *e = memchr(s, '\0', (size_t)(end - s)), *colon;

		if (!e)
			e = end;
		colon = memchr(s, ':', (size_t)(e - s));
		if (colon && colon > s) {
			const char *v = colon + 1, *ve = e;
			Gitaly__CommitTrailer *t, **arr;

			while (v < ve && is_space(*v))
				v++;
			while (ve > v && is_space(ve[-1]))
				ve--;
			if ((size_t)(colon - s) > MAX_TRAILER_KEY || (size_t)(ve - v) > MAX_TRAILER_VALUE)
				break;
			t = xcalloc(1, sizeof(*t));
			gitaly__commit_trailer__init(t);
			bin_set(&t->key, s, (size_t)(colon - s));
			bin_set(&t->value, v, (size_t)(ve - v));
			arr = realloc(c->trailers, (c->n_trailers + 1) * sizeof(*arr));
			if (!arr)
				abort();
			c->trailers = arr;
			arr[c->n_trailers++] = t;
		}
		s = e + 1;
	}
	ret = 0;
out:
	strbuf_release(&buf);
	return ret;
}

int commit_send_commits(struct commit_chunker *ch, void **items, size_t n, struct error *err)
{
	/* Every "repeated GitCommit commits = 1" response has this layout. */
	Gitaly__ListCommitsResponse resp;
	const ProtobufCMessageDescriptor *desc = ch->ctx;

	if (desc->sizeof_message != sizeof(resp))
		return error_set(err, STATUS_INTERNAL, "unexpected response type");
	protobuf_c_message_init(desc, &resp);
	resp.n_commits = n;
	resp.commits = (Gitaly__GitCommit **)items;
	return rpc_call_send(ch->call, &resp.base, err);
}
