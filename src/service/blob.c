/*
 * gitaly.BlobService: GetBlob, GetBlobs, ListBlobs and ListAllBlobs, plus the
 * helpers the LFS handlers (blob_lfs.c) share. Objects are read in-process
 * through the libgit2 handle cache; the object enumeration itself comes from
 * git (rev-list for graph walks, cat-file --batch-all-objects for the whole
 * database) because its order and filtering are the product clients see.
 * Behaviour, messages and chunking follow upstream's
 * internal/gitaly/service/blob.
 */
#include "service/blob.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.pb-c.h"
#include "git/catfile.h"
#include "git/odb.h"
#include "git/repo_cache.h"
#include "git/revision.h"
#include "service/blob_internal.h"

/* Upstream's chunk.Chunker threshold for item lists. */
#define BATCH_MAX_BYTES ((size_t)1024 * 1024)

#define M(name, type, req, resp, fn)                                                           \
	{ name, type, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn,             \
	  RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY }

/* ---- repository ---------------------------------------------------------- */

int blob_repo_open(const struct service_deps *deps, const Gitaly__Repository *repo,
		   struct blob_repo *out, struct error *err)
{
	memset(out, 0, sizeof(*out));
	if (service_repo_path(deps, repo, 0, &out->path, err) < 0)
		goto fail;
	if (service_git_env_init(&out->env, out->path, repo, err) < 0)
		goto fail;
	if (repo_cache_get_handle(out->path, out->env.object_directory, out->env.alternates,
				  &out->h, err) < 0) {
		error_prefix(err, "creating object reader");
		goto fail;
	}
	return 0;
fail:
	blob_repo_close(out);
	return -1;
}

void blob_repo_close(struct blob_repo *r)
{
	repo_cache_put_handle(&r->h);
	service_git_env_release(&r->env);
	free(r->path);
	memset(r, 0, sizeof(*r));
}

int blob_validate_revisions(char **revs, size_t n, struct error *err)
{
	if (n == 0)
		return error_set(err, STATUS_INVALID_ARGUMENT, "missing revisions");
	for (size_t i = 0; i < n; i++) {
		if (revs[i][0] == '-' && strcmp(revs[i], "--all") && strcmp(revs[i], "--not")) {
			struct strbuf q = STRBUF_INIT;

			service_go_quote(&q, revs[i], strlen(revs[i]));
			error_set(err, STATUS_INVALID_ARGUMENT, "invalid revision: %s",
				  q.buf ? q.buf : "");
			strbuf_release(&q);
			return -1;
		}
	}
	return 0;
}

struct git_cmd *blob_revlist_cmd(const struct blob_repo *r, char **revs, size_t n,
				 int lfs_size_filter)
{
	struct git_cmd *cmd = service_git_new(r->path, &r->env, "rev-list");

	git_cmd_flag(cmd, "--in-commit-order");
	git_cmd_flag(cmd, "--objects");
	git_cmd_flag(cmd, "--object-names");
	if (lfs_size_filter) {
		char f[64];

		snprintf(f, sizeof(f), "--filter=blob:limit=%d", ODB_LFS_POINTER_MAX);
		git_cmd_flag(cmd, f);
	}
	git_cmd_flag(cmd, "--filter=object:type=blob");
	git_cmd_flag(cmd, "--filter-provided-objects");
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(revs[i], "--all") || !strcmp(revs[i], "--not"))
			git_cmd_pseudo_arg(cmd, revs[i]);
		else
			git_cmd_arg(cmd, revs[i]);
	}
	return cmd;
}

struct git_cmd *blob_all_objects_cmd(const struct blob_repo *r)
{
	struct git_cmd *cmd = service_git_new(r->path, &r->env, "cat-file");

	git_cmd_flag(cmd, "--batch-check");
	git_cmd_flag(cmd, "--batch-all-objects");
	git_cmd_flag(cmd, "--buffer");
	git_cmd_flag(cmd, "--unordered");
	return cmd;
}

int blob_parse_batch_check(const char *line, char *oid, size_t oid_size, char *type,
			   size_t type_size, int64_t *size)
{
	const char *sp1 = strchr(line, ' '), *sp2;
	char *end;
	long long v;

	if (!sp1 || (size_t)(sp1 - line) >= oid_size)
		return -1;
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || (size_t)(sp2 - sp1 - 1) >= type_size)
		return -1;
	memcpy(oid, line, (size_t)(sp1 - line));
	oid[sp1 - line] = 0;
	memcpy(type, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	type[sp2 - sp1 - 1] = 0;
	errno = 0;
	v = strtoll(sp2 + 1, &end, 10);
	if (errno || *end || end == sp2 + 1 || v < 0)
		return -1;
	*size = v;
	return 0;
}

/* ---- blob content in 128 KiB pieces ---------------------------------------- */

int blob_read_chunks(const struct blob_repo *r, const char *hex, int64_t size, int64_t want,
		     blob_chunk_fn fn, void *ctx, struct error *err)
{
	struct odb_object obj = { 0 };
	struct blob_pipe p;
	uint8_t *buf = NULL;
	int64_t sent = 0;
	int found, started = 0, ret = -1;

	if (want <= 0)
		return 0;
	if (size <= BLOB_STREAM_THRESHOLD) {
		found = odb_h_read(&r->h, hex, &obj, err);
		if (found == 0)
			error_set(err, STATUS_INTERNAL, "read object: object not found");
		if (found <= 0)
			goto out;
		if ((int64_t)obj.len < want)
			want = (int64_t)obj.len;
		while (sent < want) {
			size_t n = (size_t)(want - sent);

			if (n > SERVICE_CHUNK_SIZE)
				n = SERVICE_CHUNK_SIZE;
			if (fn(ctx, (const uint8_t *)obj.data + sent, n, err) < 0)
				goto out;
			sent += (int64_t)n;
		}
		ret = 0;
		goto out;
	}
	/* Large blobs are streamed from git instead of inflated into memory. */
	{
		struct git_cmd *cmd = service_git_new(r->path, &r->env, "cat-file");

		git_cmd_arg(cmd, "blob");
		git_cmd_arg(cmd, hex);
		if (blob_pipe_start(cmd, &p, err) < 0)
			goto out;
	}
	started = 1;
	buf = malloc(SERVICE_CHUNK_SIZE);
	if (!buf) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	while (sent < want) {
		size_t fill = 0, goal = (size_t)(want - sent);

		if (goal > SERVICE_CHUNK_SIZE)
			goal = SERVICE_CHUNK_SIZE;
		while (fill < goal) {
			ssize_t n = blob_pipe_read(&p, buf + fill, goal - fill);

			if (n < 0) {
				error_set(err, STATUS_INTERNAL, "reading blob: %s", strerror(errno));
				goto out;
			}
			if (n == 0)
				break;
			fill += (size_t)n;
		}
		if (fill == 0) {
			started = 0;
			if (blob_pipe_finish(&p, 0, "cat-file", err) < 0)
				goto out;
			error_set(err, STATUS_INTERNAL, "reading blob: short read");
			goto out;
		}
		if (fn(ctx, buf, fill, err) < 0)
			goto out;
		sent += (int64_t)fill;
	}
	started = 0;
	if (blob_pipe_finish(&p, 1, "cat-file", err) < 0)
		goto out;
	ret = 0;
out:
	if (started)
		blob_pipe_finish(&p, 1, "cat-file", NULL);
	free(buf);
	odb_object_release(&obj);
	return ret;
}

/* ---- 1 MiB item chunker --------------------------------------------------- */

void blob_batch_init(struct blob_batch *b, struct rpc_call *call, enum blob_batch_kind kind)
{
	memset(b, 0, sizeof(*b));
	b->call = call;
	b->kind = kind;
}

static void item_release(struct blob_batch_item *it)
{
	free(it->oid);
	free(it->data);
	free(it->path);
	memset(it, 0, sizeof(*it));
}

/* Fills the three item message shapes from it (borrowing its buffers). */
static size_t item_packed_size(enum blob_batch_kind kind, const struct blob_batch_item *it)
{
	static char empty[] = "";

	switch (kind) {
	case BLOB_BATCH_LIST_BLOBS: {
		Gitaly__ListBlobsResponse__Blob m = GITALY__LIST_BLOBS_RESPONSE__BLOB__INIT;

		m.oid = it->oid ? it->oid : empty;
		m.size = it->size;
		m.data.data = it->data, m.data.len = it->data_len;
		m.path.data = it->path, m.path.len = it->path_len;
		return protobuf_c_message_get_packed_size(&m.base);
	}
	case BLOB_BATCH_LIST_ALL_BLOBS: {
		Gitaly__ListAllBlobsResponse__Blob m = GITALY__LIST_ALL_BLOBS_RESPONSE__BLOB__INIT;

		m.oid = it->oid ? it->oid : empty;
		m.size = it->size;
		m.data.data = it->data, m.data.len = it->data_len;
		return protobuf_c_message_get_packed_size(&m.base);
	}
	default: {
		Gitaly__LFSPointer m = GITALY__LFSPOINTER__INIT;

		m.oid = it->oid ? it->oid : empty;
		m.size = it->size;
		m.data.data = it->data, m.data.len = it->data_len;
		return protobuf_c_message_get_packed_size(&m.base);
	}
	}
}

static void *dup_bytes(const void *p, size_t n)
{
	void *d;

	if (!n)
		return NULL;
	d = malloc(n);
	if (d)
		memcpy(d, p, n);
	return d;
}

int blob_batch_add(struct blob_batch *b, const char *oid, int64_t size, const void *data,
		   size_t data_len, const void *path, size_t path_len, struct error *err)
{
	struct blob_batch_item it = { 0 };
	size_t sz;

	it.oid = oid ? strdup(oid) : NULL;
	it.size = size;
	it.data = dup_bytes(data, data_len);
	it.data_len = data_len;
	it.path = dup_bytes(path, path_len);
	it.path_len = path_len;
	if ((oid && !it.oid) || (data_len && !it.data) || (path_len && !it.path)) {
		item_release(&it);
		return error_set(err, STATUS_INTERNAL, "out of memory");
	}
	sz = item_packed_size(b->kind, &it);
	if (b->n && b->bytes + sz >= BATCH_MAX_BYTES && blob_batch_flush(b, err) < 0) {
		item_release(&it);
		return -1;
	}
	if (b->n == b->alloc) {
		size_t na = b->alloc ? b->alloc * 2 : 64;
		struct blob_batch_item *ni = realloc(b->items, na * sizeof(*ni));

		if (!ni) {
			item_release(&it);
			return error_set(err, STATUS_INTERNAL, "out of memory");
		}
		b->items = ni;
		b->alloc = na;
	}
	b->items[b->n++] = it;
	b->bytes += sz;
	return 0;
}

int blob_batch_flush(struct blob_batch *b, struct error *err)
{
	static char empty[] = "";
	void **msgs = NULL;
	size_t i;
	int ret = -1;

	if (!b->n)
		return 0;
	msgs = calloc(b->n, sizeof(*msgs));
	if (!msgs)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	for (i = 0; i < b->n; i++) {
		struct blob_batch_item *it = &b->items[i];

		if (b->kind == BLOB_BATCH_LIST_BLOBS) {
			Gitaly__ListBlobsResponse__Blob *m = malloc(sizeof(*m));

			if (!m)
				goto oom;
			gitaly__list_blobs_response__blob__init(m);
			m->oid = it->oid ? it->oid : empty;
			m->size = it->size;
			m->data.data = it->data, m->data.len = it->data_len;
			m->path.data = it->path, m->path.len = it->path_len;
			msgs[i] = m;
		} else if (b->kind == BLOB_BATCH_LIST_ALL_BLOBS) {
			Gitaly__ListAllBlobsResponse__Blob *m = malloc(sizeof(*m));

			if (!m)
				goto oom;
			gitaly__list_all_blobs_response__blob__init(m);
			m->oid = it->oid ? it->oid : empty;
			m->size = it->size;
			m->data.data = it->data, m->data.len = it->data_len;
			msgs[i] = m;
		} else {
			Gitaly__LFSPointer *m = malloc(sizeof(*m));

			if (!m)
				goto oom;
			gitaly__lfspointer__init(m);
			m->oid = it->oid ? it->oid : empty;
			m->size = it->size;
			m->data.data = it->data, m->data.len = it->data_len;
			msgs[i] = m;
		}
	}
	switch (b->kind) {
	case BLOB_BATCH_LIST_BLOBS: {
		Gitaly__ListBlobsResponse r = GITALY__LIST_BLOBS_RESPONSE__INIT;

		r.n_blobs = b->n;
		r.blobs = (Gitaly__ListBlobsResponse__Blob **)msgs;
		ret = rpc_call_send(b->call, &r.base, err);
		break;
	}
	case BLOB_BATCH_LIST_ALL_BLOBS: {
		Gitaly__ListAllBlobsResponse r = GITALY__LIST_ALL_BLOBS_RESPONSE__INIT;

		r.n_blobs = b->n;
		r.blobs = (Gitaly__ListAllBlobsResponse__Blob **)msgs;
		ret = rpc_call_send(b->call, &r.base, err);
		break;
	}
	case BLOB_BATCH_GET_LFS: {
		Gitaly__GetLFSPointersResponse r = GITALY__GET_LFSPOINTERS_RESPONSE__INIT;

		r.n_lfs_pointers = b->n;
		r.lfs_pointers = (Gitaly__LFSPointer **)msgs;
		ret = rpc_call_send(b->call, &r.base, err);
		break;
	}
	case BLOB_BATCH_LIST_LFS: {
		Gitaly__ListLFSPointersResponse r = GITALY__LIST_LFSPOINTERS_RESPONSE__INIT;

		r.n_lfs_pointers = b->n;
		r.lfs_pointers = (Gitaly__LFSPointer **)msgs;
		ret = rpc_call_send(b->call, &r.base, err);
		break;
	}
	case BLOB_BATCH_LIST_ALL_LFS: {
		Gitaly__ListAllLFSPointersResponse r = GITALY__LIST_ALL_LFSPOINTERS_RESPONSE__INIT;

		r.n_lfs_pointers = b->n;
		r.lfs_pointers = (Gitaly__LFSPointer **)msgs;
		ret = rpc_call_send(b->call, &r.base, err);
		break;
	}
	}
	goto out;
oom:
	error_set(err, STATUS_INTERNAL, "out of memory");
out:
	for (i = 0; i < b->n; i++) {
		free(msgs[i]);
		item_release(&b->items[i]);
	}
	free(msgs);
	b->n = 0;
	b->bytes = 0;
	return ret;
}

void blob_batch_release(struct blob_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		item_release(&b->items[i]);
	free(b->items);
	memset(b, 0, sizeof(*b));
}

/* ---- GetBlob --------------------------------------------------------------- */

struct get_blob_state {
	struct rpc_call *call;
	Gitaly__GetBlobResponse resp;
};

static int get_blob_chunk(void *ctx, const uint8_t *data, size_t len, struct error *err)
{
	struct get_blob_state *st = ctx;

	st->resp.data.data = (uint8_t *)data;
	st->resp.data.len = len;
	if (rpc_call_send(st->call, &st->resp.base, err) < 0)
		return -1;
	/* Only the first message carries size and oid. */
	st->resp.size = 0;
	st->resp.oid = (char *)"";
	return 0;
}

static int get_blob_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetBlobRequest *req = (const Gitaly__GetBlobRequest *)rpc_call_request(call);
	struct get_blob_state st = { call, GITALY__GET_BLOB_RESPONSE__INIT };
	struct blob_repo r;
	git_object_t type = GIT_OBJECT_INVALID;
	char hex[ODB_OID_MAX];
	int64_t size = 0, want;
	int found, ret = -1;

	if (blob_repo_open(deps, req->repository, &r, err) < 0)
		return -1;
	if (!req->oid || !*req->oid) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty Oid");
		goto out;
	}
	found = odb_h_resolve(&r.h, req->oid, hex, err);
	if (found > 0)
		found = odb_h_header(&r.h, hex, &type, &size, err);
	if (found < 0) {
		error_prefix(err, "read object");
		goto out;
	}
	if (!found || type != GIT_OBJECT_BLOB) {
		/* Missing or not a blob: one empty message, as upstream. */
		ret = rpc_call_send(call, &st.resp.base, err);
		goto out;
	}
	want = size;
	if (req->limit >= 0 && req->limit < want)
		want = req->limit;
	st.resp.size = size;
	st.resp.oid = hex;
	if (want == 0) {
		ret = rpc_call_send(call, &st.resp.base, err);
		goto out;
	}
	if (blob_read_chunks(&r, hex, size, want, get_blob_chunk, &st, err) < 0)
		goto out;
	ret = 0;
out:
	blob_repo_close(&r);
	return ret;
}

/* ---- GetBlobs -------------------------------------------------------------- */

/* Go's path.Dir for the lookup of the parent tree: "." for the root. */
static char *go_dir(const uint8_t *path, size_t len)
{
	size_t cut = len;
	struct strbuf out = STRBUF_INIT;
	char *raw, *res = NULL;
	size_t n = 0;
	char **parts = NULL;

	while (cut > 0 && path[cut - 1] != '/')
		cut--;
	raw = malloc(cut + 1);
	if (!raw)
		return NULL;
	memcpy(raw, path, cut);
	raw[cut] = 0;
	/* Clean: drop empty and "." elements, resolve "..". */
	parts = calloc(cut / 2 + 2, sizeof(*parts));
	if (!parts)
		goto out;
	for (char *s = raw, *tok; (tok = strsep(&s, "/"));) {
		if (!*tok || !strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			if (n > 0 && strcmp(parts[n - 1], ".."))
				n--;
			else if (!(cut && path[0] == '/'))
				parts[n++] = tok;
			continue;
		}
		parts[n++] = tok;
	}
	if (cut && path[0] == '/')
		strbuf_addch(&out, '/');
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_addch(&out, '/');
		strbuf_adds(&out, parts[i]);
	}
	if (!out.len)
		strbuf_adds(&out, ".");
	res = strbuf_detach(&out, NULL);
out:
	free(parts);
	free(raw);
	strbuf_release(&out);
	return res;
}

/*
 * Upstream's TreeEntryFinder: the entries of the tree at revision:dir, the
 * one whose joined path equals the requested path. Returns 1 with *entry
 * (owned) set, 0 when there is no such entry, -1 on errors.
 */
static int find_tree_entry(git_repository *repo, const char *revision, const uint8_t *path,
			   size_t path_len, git_tree_entry **entry, struct error *err)
{
	char *dir = go_dir(path, path_len);
	git_object *obj = NULL, *treeobj = NULL;
	git_tree *tree = NULL;
	size_t dlen, name_off;
	int rc, ret = -1;

	*entry = NULL;
	if (!dir)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	rc = git_revparse_single(&obj, repo, revision);
	if (rc < 0) {
		ret = 0; /* cat-file: missing */
		goto out;
	}
	if (git_object_peel(&treeobj, obj, GIT_OBJECT_TREE) < 0) {
		ret = 0;
		goto out;
	}
	tree = (git_tree *)treeobj;
	treeobj = NULL;
	if (strcmp(dir, ".")) {
		git_tree_entry *sub = NULL;
		git_object *subobj = NULL;

		if (dir[0] == '/' || git_tree_entry_bypath(&sub, tree, dir) < 0) {
			ret = 0;
			goto out;
		}
		if (git_tree_entry_type(sub) != GIT_OBJECT_TREE) {
			git_tree_entry_free(sub);
			ret = 0;
			goto out;
		}
		rc = git_tree_entry_to_object(&subobj, repo, sub);
		git_tree_entry_free(sub);
		if (rc < 0) {
			error_set(err, STATUS_INTERNAL, "find by revision and path: reading tree");
			goto out;
		}
		git_tree_free(tree);
		tree = (git_tree *)subobj;
	}
	/* The entry path is dir + "/" + name (just name at the root). */
	dlen = strcmp(dir, ".") ? strlen(dir) : 0;
	name_off = dlen ? dlen + 1 : 0;
	if (path_len <= name_off || (dlen && (memcmp(path, dir, dlen) || path[dlen] != '/'))) {
		ret = 0;
		goto out;
	}
	{
		size_t nlen = path_len - name_off;
		char *name = malloc(nlen + 1);
		const git_tree_entry *e;

		if (!name) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		memcpy(name, path + name_off, nlen);
		name[nlen] = 0;
		e = memchr(name, '/', nlen) || memchr(name, 0, nlen) ? NULL
								      : git_tree_entry_byname(tree, name);
		free(name);
		if (!e) {
			ret = 0;
			goto out;
		}
		if (git_tree_entry_dup(entry, e) < 0) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
	}
	ret = 1;
out:
	git_tree_free(tree);
	git_object_free(treeobj);
	git_object_free(obj);
	free(dir);
	return ret;
}

/* What GetBlobs needs of a tree entry. */
struct found_entry {
	uint32_t mode;
	git_object_t type;
	char oid[ODB_OID_MAX];
};

struct name_lookup {
	const char *name;
	size_t len;
	struct found_entry *out;
	int found;
};

static int match_name(void *arg, const struct odb_tree_entry *e, struct error *err)
{
	struct name_lookup *l = arg;

	(void)err;
	if (e->name_len != l->len || memcmp(e->name, l->name, l->len))
		return 0;
	l->out->mode = e->mode;
	l->out->type = e->type;
	memcpy(l->out->oid, e->oid, sizeof(e->oid));
	l->found = 1;
	return 1;
}

/*
 * find_tree_entry through the cat-file reader (SHA-256): cat-file resolves
 * revision^{tree} or revision:dir, and the tree is searched for the name.
 */
static int find_tree_entry_catfile(const struct repo_handle *h, const char *revision,
				   const uint8_t *path, size_t path_len, struct found_entry *out,
				   struct error *err)
{
	char *dir = go_dir(path, path_len), *spec = NULL, tree[ODB_OID_MAX];
	struct name_lookup l = { NULL, 0, out, 0 };
	git_object_t type;
	int64_t size;
	size_t dlen, name_off;
	int rc, ret = -1;

	if (!dir)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	dlen = strcmp(dir, ".") ? strlen(dir) : 0;
	name_off = dlen ? dlen + 1 : 0;
	if (dir[0] == '/' || path_len <= name_off ||
	    (dlen && (memcmp(path, dir, dlen) || path[dlen] != '/')) ||
	    memchr(path + name_off, '/', path_len - name_off) ||
	    memchr(path + name_off, 0, path_len - name_off)) {
		ret = 0;
		goto out;
	}
	if ((dlen ? asprintf(&spec, "%s:%s", revision, dir)
		  : asprintf(&spec, "%s^{tree}", revision)) < 0) {
		spec = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	rc = catfile_info(h->cf, spec, tree, &type, &size, err);
	if (rc <= 0 || type != GIT_OBJECT_TREE) {
		ret = rc < 0 ? -1 : 0;
		goto out;
	}
	l.name = (const char *)path + name_off;
	l.len = path_len - name_off;
	rc = odb_h_tree_each(h, tree, match_name, &l, err);
	if (rc < 0) {
		error_prefix(err, "find by revision and path: reading tree");
		goto out;
	}
	ret = l.found;
out:
	free(spec);
	free(dir);
	return ret;
}

struct get_blobs_state {
	struct rpc_call *call;
	Gitaly__GetBlobsResponse *resp;
	int first;
};

static int get_blobs_chunk(void *ctx, const uint8_t *data, size_t len, struct error *err)
{
	struct get_blobs_state *st = ctx;
	Gitaly__GetBlobsResponse blank = GITALY__GET_BLOBS_RESPONSE__INIT;

	/* Later messages carry only data. */
	if (!st->first)
		*st->resp = blank;
	st->first = 0;
	st->resp->data.data = (uint8_t *)data;
	st->resp->data.len = len;
	return rpc_call_send(st->call, &st->resp->base, err);
}

static int get_blobs_one(struct rpc_call *call, const struct blob_repo *r,
			 const Gitaly__GetBlobsRequest__RevisionPath *rp, int64_t limit,
			 struct error *err)
{
	Gitaly__GetBlobsResponse resp = GITALY__GET_BLOBS_RESPONSE__INIT;
	git_tree_entry *entry = NULL;
	struct found_entry fe;
	size_t plen = rp->path.len;
	git_object_t etype;
	int64_t size, want;
	int found, ret = -1;

	/* Trailing slashes are ignored, except for a lone "/". */
	while (plen > 1 && rp->path.data[plen - 1] == '/')
		plen--;
	resp.revision = rp->revision;
	resp.path.data = rp->path.data;
	resp.path.len = plen;

	if (r->h.cf) {
		found = find_tree_entry_catfile(&r->h, rp->revision, rp->path.data, plen, &fe, err);
	} else {
		found = find_tree_entry(r->h.repo, rp->revision, rp->path.data, plen, &entry, err);
		if (found > 0) {
			git_oid_tostr(fe.oid, sizeof(fe.oid), git_tree_entry_id(entry));
			fe.mode = (uint32_t)git_tree_entry_filemode_raw(entry);
			fe.type = git_tree_entry_type(entry);
		}
	}
	if (found < 0)
		goto out;
	if (!found) {
		ret = rpc_call_send(call, &resp.base, err);
		goto out;
	}
	resp.oid = fe.oid;
	resp.mode = (int32_t)fe.mode;
	etype = fe.type;
	if (etype == GIT_OBJECT_COMMIT) {
		resp.is_submodule = 1;
		resp.type = GITALY__OBJECT_TYPE__COMMIT;
		ret = rpc_call_send(call, &resp.base, err);
		goto out;
	}
	found = odb_h_header(&r->h, fe.oid, &etype, &size, err);
	if (found <= 0) {
		if (!found)
			error_set(err, STATUS_INTERNAL, "read object info: object not found");
		else
			error_prefix(err, "read object info");
		goto out;
	}
	resp.size = size;
	if (fe.type == GIT_OBJECT_TREE) {
		resp.type = GITALY__OBJECT_TYPE__TREE;
		ret = rpc_call_send(call, &resp.base, err);
		goto out;
	}
	if (fe.type != GIT_OBJECT_BLOB) {
		ret = 0; /* upstream skips other entry types silently */
		goto out;
	}
	if (etype != GIT_OBJECT_BLOB) {
		error_set(err, STATUS_INTERNAL, "blob got unexpected type \"%s\"",
			  odb_type_name(etype));
		goto out;
	}
	resp.type = GITALY__OBJECT_TYPE__BLOB;
	want = (limit < 0 || limit > size) ? size : limit;
	if (want == 0) {
		ret = rpc_call_send(call, &resp.base, err);
		goto out;
	}
	{
		struct get_blobs_state st = { call, &resp, 1 };

		if (blob_read_chunks(r, fe.oid, size, want, get_blobs_chunk, &st, err) < 0)
			goto out;
	}
	ret = 0;
out:
	git_tree_entry_free(entry);
	return ret;
}

static int get_blobs_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetBlobsRequest *req =
		(const Gitaly__GetBlobsRequest *)rpc_call_request(call);
	struct blob_repo r;
	int ret = -1;

	memset(&r, 0, sizeof(r));
	if (!req->repository)
		return blob_repo_open(deps, req->repository, &r, err);
	if (req->n_revision_paths == 0)
		return error_set(err, STATUS_INVALID_ARGUMENT, "empty RevisionPaths");
	for (size_t i = 0; i < req->n_revision_paths; i++) {
		const char *rev = req->revision_paths[i]->revision;

		if (revision_validate(rev, strlen(rev), 0, err) < 0)
			return -1;
	}
	if (blob_repo_open(deps, req->repository, &r, err) < 0)
		return -1;
	for (size_t i = 0; i < req->n_revision_paths; i++) {
		if (rpc_call_cancelled(call)) {
			error_set(err, STATUS_CANCELLED, "context canceled");
			goto out;
		}
		if (get_blobs_one(call, &r, req->revision_paths[i], req->limit, err) < 0)
			goto out;
	}
	ret = 0;
out:
	blob_repo_close(&r);
	return ret;
}

/* ---- ListBlobs / ListAllBlobs ------------------------------------------------ */

/*
 * Upstream's processBlobs for one object: with bytes_limit 0 only oid, size
 * (and path); otherwise the content up to bytes_limit (< 0: all) in 128 KiB
 * items, the first one carrying oid and size.
 */
struct process_state {
	struct blob_batch *b;
	const char *hex;
	int64_t size;
	const uint8_t *path;
	size_t path_len;
	int first;
};

static int process_chunk(void *ctx, const uint8_t *data, size_t len, struct error *err)
{
	struct process_state *st = ctx;
	int ret = blob_batch_add(st->b, st->first ? st->hex : NULL, st->first ? st->size : 0,
				 data, len, st->path, st->path_len, err);

	st->first = 0;
	return ret;
}

static int process_blob(struct blob_batch *b, const struct blob_repo *r, const char *hex,
			int64_t bytes_limit, const uint8_t *path, size_t path_len,
			struct error *err)
{
	git_object_t type;
	int64_t size, want;
	int found;

	found = odb_h_header(&r->h, hex, &type, &size, err);
	if (found == 0)
		return error_set(err, STATUS_INTERNAL,
				 "retrieving object info for \"%s\": object not found", hex);
	if (found < 0)
		return -1;
	want = (bytes_limit < 0 || bytes_limit > size) ? size : bytes_limit;
	if (want == 0)
		return blob_batch_add(b, hex, size, NULL, 0, path, path_len, err);
	{
		struct process_state st = { b, hex, size, path, path_len, 1 };

		return blob_read_chunks(r, hex, size, want, process_chunk, &st, err);
	}
}

/* A line of `rev-list --objects --object-names`: "<oid>[ <path>]". */
struct list_blobs_ctx {
	struct blob_batch *b;
	const struct blob_repo *r;
	int64_t bytes_limit;
	int with_paths;
};

static int list_blobs_line(void *arg, const char *line, size_t len, struct error *err)
{
	struct list_blobs_ctx *c = arg;
	const char *sp = memchr(line, ' ', len);
	size_t hexlen = sp ? (size_t)(sp - line) : len;
	char hex[ODB_OID_MAX];

	if (hexlen != 40 && hexlen != 64)
		return error_set(err, STATUS_INTERNAL, "processing blobs: invalid rev-list line");
	memcpy(hex, line, hexlen);
	hex[hexlen] = 0;
	if (strspn(hex, "0123456789abcdef") != hexlen)
		return error_set(err, STATUS_INTERNAL, "processing blobs: invalid object id");
	if (process_blob(c->b, c->r, hex, c->bytes_limit,
			 c->with_paths && sp ? (const uint8_t *)sp + 1 : NULL,
			 c->with_paths && sp ? len - hexlen - 1 : 0, err) < 0) {
		error_prefix(err, "processing blobs");
		return -1;
	}
	return 1;
}

static int list_blobs_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__ListBlobsRequest *req =
		(const Gitaly__ListBlobsRequest *)rpc_call_request(call);
	struct blob_repo r;
	struct blob_batch b;
	struct list_blobs_ctx c = { &b, &r, req->bytes_limit, req->with_paths };
	struct blob_scan scan = { list_blobs_line, &c, req->limit, "rev-list pipeline command",
				  "processing blobs" };
	int ret = -1;

	memset(&r, 0, sizeof(r));
	blob_batch_init(&b, call, BLOB_BATCH_LIST_BLOBS);
	if (!req->repository)
		return blob_repo_open(deps, req->repository, &r, err);
	if (blob_validate_revisions(req->revisions, req->n_revisions, err) < 0)
		return -1;
	if (blob_repo_open(deps, req->repository, &r, err) < 0)
		return -1;
	if (blob_scan_run(call, blob_revlist_cmd(&r, req->revisions, req->n_revisions, 0), &scan,
			  err) == 0)
		ret = blob_batch_flush(&b, err);
	blob_batch_release(&b);
	blob_repo_close(&r);
	return ret;
}

/* A line of `cat-file --batch-all-objects --batch-check`: "<oid> <type> <size>". */
static int list_all_blobs_line(void *arg, const char *line, size_t len, struct error *err)
{
	struct list_blobs_ctx *c = arg;
	char hex[ODB_OID_MAX + 8], type[16];
	int64_t size;
	size_t hexlen;

	(void)len;
	if (blob_parse_batch_check(line, hex, sizeof(hex), type, sizeof(type), &size) < 0 ||
	    ((hexlen = strlen(hex)) != 40 && hexlen != 64) ||
	    strspn(hex, "0123456789abcdef") != hexlen)
		return error_set(err, STATUS_INTERNAL,
				 "processing blobs: parsing object info: invalid line");
	if (strcmp(type, "blob"))
		return 0;
	if (process_blob(c->b, c->r, hex, c->bytes_limit, NULL, 0, err) < 0) {
		error_prefix(err, "processing blobs");
		return -1;
	}
	return 1;
}

static int list_all_blobs_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__ListAllBlobsRequest *req =
		(const Gitaly__ListAllBlobsRequest *)rpc_call_request(call);
	struct blob_repo r;
	struct blob_batch b;
	struct list_blobs_ctx c = { &b, &r, req->bytes_limit, 0 };
	struct blob_scan scan = { list_all_blobs_line, &c, req->limit, "cat-file failed",
				  "processing blobs" };
	int ret = -1;

	blob_batch_init(&b, call, BLOB_BATCH_LIST_ALL_BLOBS);
	if (blob_repo_open(deps, req->repository, &r, err) < 0)
		return -1;
	if (blob_scan_run(call, blob_all_objects_cmd(&r), &scan, err) == 0) {
		ret = blob_batch_flush(&b, err);
		if (ret < 0)
			error_prefix(err, "flushing blobs");
	}
	blob_batch_release(&b);
	blob_repo_close(&r);
	return ret;
}

static const struct rpc_method blob_methods[] = {
	M("GetBlob", RPC_SERVER_STREAM, get_blob_request, get_blob_response, get_blob_rpc),
	M("GetBlobs", RPC_SERVER_STREAM, get_blobs_request, get_blobs_response, get_blobs_rpc),
	M("ListBlobs", RPC_SERVER_STREAM, list_blobs_request, list_blobs_response, list_blobs_rpc),
	M("ListAllBlobs", RPC_SERVER_STREAM, list_all_blobs_request, list_all_blobs_response,
	  list_all_blobs_rpc),
	M("GetLFSPointers", RPC_SERVER_STREAM, get_lfspointers_request, get_lfspointers_response,
	  blob_get_lfs_pointers_rpc),
	M("ListLFSPointers", RPC_SERVER_STREAM, list_lfspointers_request,
	  list_lfspointers_response, blob_list_lfs_pointers_rpc),
	M("ListAllLFSPointers", RPC_SERVER_STREAM, list_all_lfspointers_request,
	  list_all_lfspointers_response, blob_list_all_lfs_pointers_rpc),
};

const struct rpc_service *blob_service(struct service_deps *deps)
{
	static struct rpc_service svc;

	svc.name = "gitaly.BlobService";
	svc.methods = blob_methods;
	svc.n_methods = sizeof(blob_methods) / sizeof(blob_methods[0]);
	svc.data = deps;
	return &svc;
}
