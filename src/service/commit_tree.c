/*
 * Trees: TreeEntry (one entry by revision and path, blob contents streamed
 * in 128 KiB chunks with limit/max_size) and GetTreeEntries (a directory
 * listing, optionally recursive, sorted, paginated with upstream's
 * base64-JSON tokens and with "flat paths"). Read in-process through the
 * cached handle: libgit2 for SHA-1 (TreeEntry's by-name lookup and the
 * listings walk libgit2's own trees), the cat-file reader for SHA-256.
 * Paths are built with Go's path cleaning rules so entries compare equal to
 * what upstream would produce.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/strbuf.h"
#include "git/revision.h"
#include "service/commit_internal.h"

#define FLAT_TREE_RECURSION 10

static char *xstrdup_len(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (!p)
		abort();
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* Go's path.Clean. */
char *commit_path_clean(const char *s)
{
	size_t n = strlen(s), w = 0, r = 0, dotdot = 0;
	int rooted = n > 0 && s[0] == '/';
	char *out = malloc(n + 2);

	if (!out)
		abort();
	if (n == 0) {
		out[0] = '.';
		out[1] = '\0';
		return out;
	}
	if (rooted) {
		out[w++] = '/';
		r = 1;
		dotdot = 1;
	}
	while (r < n) {
		if (s[r] == '/') {
			r++;
		} else if (s[r] == '.' && (r + 1 == n || s[r + 1] == '/')) {
			r++;
		} else if (s[r] == '.' && s[r + 1] == '.' && (r + 2 == n || s[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && out[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					out[w++] = '/';
				out[w++] = '.';
				out[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				out[w++] = '/';
			for (; r < n && s[r] != '/'; r++)
				out[w++] = s[r];
		}
	}
	if (w == 0)
		out[w++] = '.';
	out[w] = '\0';
	return out;
}

/* Go's filepath.Join(a, b) for relative paths: empty parts are dropped. */
static char *path_join(const char *a, const char *b)
{
	struct strbuf sb = STRBUF_INIT;
	char *joined, *clean;

	if (!*a && !*b)
		return xstrdup_len("", 0);
	strbuf_adds(&sb, a);
	if (*a && *b)
		strbuf_addch(&sb, '/');
	strbuf_adds(&sb, b);
	joined = strbuf_detach(&sb, NULL);
	clean = commit_path_clean(joined);
	free(joined);
	return clean;
}

/* Go's path.Dir. */
static char *path_dir(const char *p)
{
	const char *slash = strrchr(p, '/');
	char *d, *c;

	if (!slash)
		return xstrdup_len(".", 1);
	d = xstrdup_len(p, (size_t)(slash - p + 1));
	c = commit_path_clean(d);
	free(d);
	return c;
}

static Gitaly__TreeEntry__EntryType entry_type(uint32_t mode)
{
	switch (mode & 0170000) {
	case 0160000:
		return GITALY__TREE_ENTRY__ENTRY_TYPE__COMMIT;
	case 0040000:
		return GITALY__TREE_ENTRY__ENTRY_TYPE__TREE;
	default:
		return GITALY__TREE_ENTRY__ENTRY_TYPE__BLOB;
	}
}

/* Entries are one allocation (struct, oid and path); commit_oid is borrowed
 * from the request and flat_path, when set, is allocated apart. */
static void tree_entry_free(void *item)
{
	Gitaly__TreeEntry *e = item;

	if (!e)
		return;
	free(e->flat_path.data);
	free(e);
}

/* The entry te under the (clean) directory base, as Go's
 * filepath.Join would give it. */
static Gitaly__TreeEntry *tree_entry_new(const char *commit_oid, const char *base,
					 const struct odb_tree_entry *te)
{
	const char *name = te->name;
	size_t blen = strlen(base), nlen = te->name_len, olen = strlen(te->oid), plen;
	char *joined = NULL, *p;
	Gitaly__TreeEntry *e;

	if (!strcmp(base, "."))
		blen = 0;
	/* A plain name under a clean base joins without cleaning. */
	if (!nlen || memchr(name, '/', nlen) || (nlen == 1 && name[0] == '.') ||
	    (nlen == 2 && name[0] == '.' && name[1] == '.')) {
		char *n = xstrdup_len(name, nlen);

		joined = path_join(base, n);
		free(n);
		plen = strlen(joined);
	} else {
		plen = blen ? blen + 1 + nlen : nlen;
	}
	/* One allocation: the struct, then the hex id (40 or 64 digits),
	 * then the path. */
	e = malloc(sizeof(*e) + olen + 1 + plen + 1);
	if (!e)
		abort();
	gitaly__tree_entry__init(e);
	p = (char *)(e + 1);
	memcpy(p, te->oid, olen + 1);
	e->oid = p;
	p += olen + 1;
	if (joined) {
		memcpy(p, joined, plen + 1);
		free(joined);
	} else if (blen) {
		memcpy(p, base, blen);
		p[blen] = '/';
		memcpy(p + blen + 1, name, nlen);
		p[plen] = '\0';
	} else {
		memcpy(p, name, nlen);
		p[plen] = '\0';
	}
	e->commit_oid = (char *)commit_oid;
	e->path.data = (uint8_t *)p;
	e->path.len = plen;
	e->mode = (int32_t)te->mode;
	e->type = entry_type(te->mode);
	return e;
}

/* "rev:path" resolved to an object id and type; 1 found, 0 missing, -1. */
static int resolve_path(struct commit_repo *r, const char *rev, const char *path, char *oid,
			git_object_t *type, struct error *err)
{
	struct strbuf spec = STRBUF_INIT;
	int ret;

	strbuf_adds(&spec, rev);
	strbuf_addch(&spec, ':');
	strbuf_adds(&spec, path);
	ret = commit_resolve_typed(r, spec.buf, oid, type, err);
	strbuf_release(&spec);
	return ret;
}

struct entry_list {
	Gitaly__TreeEntry **v;
	size_t n, alloc;
};

static void entry_list_push(struct entry_list *l, Gitaly__TreeEntry *e)
{
	if (l->n == l->alloc) {
		size_t alloc = l->alloc ? l->alloc * 2 : 32;
		Gitaly__TreeEntry **v = realloc(l->v, alloc * sizeof(*v));

		if (!v)
			abort();
		l->v = v;
		l->alloc = alloc;
	}
	l->v[l->n++] = e;
}

static void entry_list_release(struct entry_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		tree_entry_free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/*
 * Upstream's catfile.TreeEntries: the entries of the tree at rev:path, none
 * when it is missing, not a tree, or outside the repository.
 */
struct push_ctx {
	struct entry_list *list;
	const char *rev, *root;
};

static int push_entry(void *arg, const struct odb_tree_entry *te, struct error *err)
{
	struct push_ctx *p = arg;

	(void)err;
	entry_list_push(p->list, tree_entry_new(p->rev, p->root, te));
	return 0;
}

static int tree_entries(struct commit_repo *r, const char *rev, const char *path,
			struct entry_list *out, struct error *err)
{
	struct repo_handle h = commit_repo_handle(r);
	struct push_ctx p = { out, rev, NULL };
	char oid[ODB_OID_MAX], *clean, *base = NULL;
	git_object_t type;
	int found, ret = -1;

	if (!strcmp(path, "."))
		path = "";
	clean = commit_path_clean(path);
	found = strncmp(clean, "../", 3) != 0;
	free(clean);
	if (!found)
		return 0;
	/* The directory is joined and cleaned once for all its entries. */
	base = path_join(path, "");
	p.root = base;
	if (r->git) {
		/* libgit2 resolves to the loaded tree: walk it without a second
		 * lookup (large trees are not in its object cache). */
		struct strbuf spec = STRBUF_INIT;
		git_object *obj = NULL;

		strbuf_adds(&spec, rev);
		strbuf_addch(&spec, ':');
		strbuf_adds(&spec, path);
		found = commit_resolve(r->git, spec.buf, &obj, err);
		strbuf_release(&spec);
		if (found >= 0)
			ret = found && git_object_type(obj) == GIT_OBJECT_TREE
				      ? odb_tree_each_lg((const git_tree *)obj, push_entry, &p, err)
				      : 0;
		git_object_free(obj);
		goto out;
	}
	found = resolve_path(r, rev, path, oid, &type, err);
	if (found < 0)
		goto out;
	if (found && type == GIT_OBJECT_TREE && odb_h_tree_each(&h, oid, push_entry, &p, err) < 0)
		goto out;
	ret = 0;
out:
	free(base);
	return ret;
}

/* One entry of a libgit2 tree in the form odb.h's walkers give. */
static void lg_tree_entry(const git_tree_entry *te, struct odb_tree_entry *out)
{
	out->mode = (uint32_t)git_tree_entry_filemode_raw(te);
	out->type = odb_mode_type(out->mode);
	out->name = git_tree_entry_name(te);
	out->name_len = strlen(out->name);
	git_oid_tostr(out->oid, sizeof(out->oid), git_tree_entry_id(te));
}

/* Looks for one name among a tree's entries (cat-file handles). */
struct name_ctx {
	const char *rev, *base, *name;
	size_t name_len;
	Gitaly__TreeEntry *found;
};

static int match_name(void *arg, const struct odb_tree_entry *te, struct error *err)
{
	struct name_ctx *c = arg;

	(void)err;
	if (te->name_len != c->name_len || memcmp(te->name, c->name, c->name_len))
		return 0;
	c->found = tree_entry_new(c->rev, c->base, te);
	return 1;
}

/*
 * The entry tree_entries(rev, dir) would list with exactly this path, found
 * by name in the directory's tree instead of by building the whole listing
 * (libgit2's sorted lookup for SHA-1, a scan that stops at the name through
 * cat-file for SHA-256): 1 with *out set, 0 when there is none, -1 on error.
 */
static int tree_entry_at(struct commit_repo *r, const char *rev, const char *dir,
			 const char *path, Gitaly__TreeEntry **out, struct error *err)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	struct name_ctx c = { rev, NULL, name, strlen(name), NULL };
	char oid[ODB_OID_MAX], *clean;
	git_object_t type;
	int found, ret = -1;

	*out = NULL;
	if (!strcmp(dir, "."))
		dir = "";
	clean = commit_path_clean(dir);
	found = strncmp(clean, "../", 3) != 0;
	free(clean);
	if (!found)
		return 0;
	c.base = path_join(dir, "");
	if (r->git) {
		struct strbuf spec = STRBUF_INIT;
		git_object *obj = NULL;

		strbuf_adds(&spec, rev);
		strbuf_addch(&spec, ':');
		strbuf_adds(&spec, dir);
		found = commit_resolve(r->git, spec.buf, &obj, err);
		strbuf_release(&spec);
		if (found > 0 && git_object_type(obj) == GIT_OBJECT_TREE && *name) {
			const git_tree_entry *te = git_tree_entry_byname((const git_tree *)obj, name);
			struct odb_tree_entry e;

			if (te) {
				lg_tree_entry(te, &e);
				c.found = tree_entry_new(rev, c.base, &e);
			}
		}
		git_object_free(obj);
		if (found < 0)
			goto out;
	} else {
		struct repo_handle h = commit_repo_handle(r);

		found = resolve_path(r, rev, dir, oid, &type, err);
		if (found < 0)
			goto out;
		if (found && type == GIT_OBJECT_TREE && *name &&
		    odb_h_tree_each(&h, oid, match_name, &c, err) < 0)
			goto out;
	}
	if (c.found && (c.found->path.len != strlen(path) ||
			memcmp(c.found->path.data, path, c.found->path.len))) {
		tree_entry_free(c.found);
		c.found = NULL;
	}
	*out = c.found;
	c.found = NULL;
	ret = *out ? 1 : 0;
out:
	tree_entry_free(c.found);
	free((char *)c.base);
	return ret;
}

static int send_tree_entry_blob(struct rpc_call *call, struct commit_repo *r,
				const Gitaly__TreeEntry *e, int64_t limit, int64_t max_size,
				struct error *err)
{
	Gitaly__TreeEntryResponse resp = GITALY__TREE_ENTRY_RESPONSE__INIT;
	struct repo_handle h = commit_repo_handle(r);
	struct odb_object obj = { 0 };
	int64_t size;
	git_object_t type;
	int64_t len;
	int ret = -1, rc;

	rc = odb_h_header(&h, e->oid, &type, &size, err);
	if (rc <= 0) {
		if (rc == 0)
			error_set(err, STATUS_INTERNAL, "object not found");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	if (type != GIT_OBJECT_BLOB) {
		error_set(err, STATUS_INTERNAL,
			  "mismatched object type: tree-oid=%s object-oid=%s entry-type=BLOB object-type=%s",
			  e->oid, e->oid, git_object_type2string(type));
		goto out;
	}
	len = (int64_t)size;
	if (max_size > 0 && len > max_size) {
		error_set(err, STATUS_FAILED_PRECONDITION,
			  "object size (%lld) is bigger than the maximum allowed size (%lld)",
			  (long long)len, (long long)max_size);
		goto out;
	}
	if (limit > 0 && len > limit)
		len = limit;
	resp.type = GITALY__TREE_ENTRY_RESPONSE__OBJECT_TYPE__BLOB;
	resp.oid = e->oid;
	resp.size = (int64_t)size;
	resp.mode = e->mode;
	if (len == 0) {
		ret = rpc_call_send(call, &resp.base, err);
		goto out;
	}
	rc = odb_h_read(&h, e->oid, &obj, err);
	if (rc <= 0) {
		if (rc == 0)
			error_set(err, STATUS_INTERNAL, "object not found");
		error_prefix(err, "reading blob");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	if ((int64_t)obj.len < len)
		len = (int64_t)obj.len;
	for (int64_t off = 0; off < len;) {
		size_t n = (size_t)(len - off) > SERVICE_CHUNK_SIZE ? SERVICE_CHUNK_SIZE : (size_t)(len - off);

		resp.data.data = (uint8_t *)obj.data + off;
		resp.data.len = n;
		if (rpc_call_send(call, &resp.base, err) < 0)
			goto out;
		/* Only the first message carries the metadata. */
		gitaly__tree_entry_response__init(&resp);
		off += (int64_t)n;
	}
	ret = 0;
out:
	odb_object_release(&obj);
	return ret;
}

int commit_tree_entry_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__TreeEntryRequest *req = (const Gitaly__TreeEntryRequest *)rpc_call_request(call);
	Gitaly__TreeEntryResponse resp = GITALY__TREE_ENTRY_RESPONSE__INIT;
	struct commit_repo r;
	Gitaly__TreeEntry *found = NULL;
	char *rev = NULL, *path = NULL, *dir = NULL;
	int ret = -1;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, 0, err) < 0)
		goto out;
	if (req->path.len == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty Path");
		goto out;
	}
	if (req->limit < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "negative Limit");
		goto out;
	}
	if (req->max_size < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "negative MaxSize");
		goto out;
	}
	if (commit_repo_open(&r, err) < 0)
		goto out;
	rev = commit_bytes_dup(&req->revision);
	path = commit_bytes_dup(&req->path);
	/* A trailing slash would make the parent directory wrong. */
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';
	dir = path_dir(path);
	if (tree_entry_at(&r, rev, dir, path, &found, err) < 0)
		goto out;
	if (!found) {
		error_set(err, STATUS_NOT_FOUND, "tree entry not found");
		goto out;
	}
	resp.oid = found->oid;
	resp.mode = found->mode;
	switch (found->type) {
	case GITALY__TREE_ENTRY__ENTRY_TYPE__COMMIT:
		resp.type = GITALY__TREE_ENTRY_RESPONSE__OBJECT_TYPE__COMMIT;
		ret = rpc_call_send(call, &resp.base, err);
		break;
	case GITALY__TREE_ENTRY__ENTRY_TYPE__TREE: {
		struct repo_handle h = commit_repo_handle(&r);
		int64_t size;
		git_object_t type;
		int rc = odb_h_header(&h, found->oid, &type, &size, err);

		if (rc <= 0) {
			if (rc == 0)
				error_set(err, STATUS_INTERNAL, "object not found");
			err->code = STATUS_INTERNAL;
			goto out;
		}
		resp.type = GITALY__TREE_ENTRY_RESPONSE__OBJECT_TYPE__TREE;
		resp.size = (int64_t)size;
		ret = rpc_call_send(call, &resp.base, err);
		break;
	}
	default:
		ret = send_tree_entry_blob(call, &r, found, req->limit, req->max_size, err);
	}
out:
	tree_entry_free(found);
	free(rev);
	free(path);
	free(dir);
	commit_repo_release(&r);
	return ret;
}

/* ---- GetTreeEntries ---------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const char *s, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)u[i] << 16;

		if (i + 1 < len)
			v |= (unsigned)u[i + 1] << 8;
		if (i + 2 < len)
			v |= u[i + 2];
		strbuf_addch(&sb, b64[(v >> 18) & 63]);
		strbuf_addch(&sb, b64[(v >> 12) & 63]);
		strbuf_addch(&sb, i + 1 < len ? b64[(v >> 6) & 63] : '=');
		strbuf_addch(&sb, i + 2 < len ? b64[v & 63] : '=');
	}
	return sb.buf ? strbuf_detach(&sb, NULL) : xstrdup_len("", 0);
}

/* Go's base64.StdEncoding.DecodeString (padding required); -1 if invalid. */
static int base64_decode(const char *s, struct strbuf *out)
{
	size_t n = strlen(s);

	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;

		for (int k = 0; k < 4; k++) {
			const char *p = s[i + k] ? strchr(b64, s[i + k]) : NULL;

			if (s[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (!p || pad) {
				return -1;
			} else {
				v[k] = (int)(p - b64);
			}
		}
		strbuf_addch(out, (char)((v[0] << 2) | (v[1] >> 4)));
		if (pad < 2)
			strbuf_addch(out, (char)(((v[1] & 15) << 4) | (v[2] >> 2)));
		if (pad < 1)
			strbuf_addch(out, (char)(((v[2] & 3) << 6) | v[3]));
	}
	return 0;
}

/* Length of the valid UTF-8 sequence at s[i] (as Go decodes it), 0 if invalid. */
static size_t utf8_seq(const char *s, size_t len, size_t i, uint32_t *cpo)
{
	unsigned char c = (unsigned char)s[i];
	size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
	uint32_t cp = need == 4 ? c & 7 : need == 3 ? c & 15 : c & 31;

	if (c < 0x80) {
		*cpo = c;
		return 1;
	}
	if (!need || i + need > len || c >= 0xf5 || c == 0xc0 || c == 0xc1)
		return 0;
	for (size_t k = 1; k < need; k++) {
		unsigned char cc = (unsigned char)s[i + k];

		if ((cc & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (cc & 63);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	*cpo = cp;
	return need;
}

/* s with invalid UTF-8 bytes replaced by U+FFFD, as a token round trip
 * through Go's JSON sees a path. */
static char *utf8_lossy(const char *s, size_t len)
{
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_seq(s, len, i, &cp);

		if (n) {
			strbuf_add(&sb, s + i, n);
			i += n;
		} else {
			strbuf_adds(&sb, "\xef\xbf\xbd");
			i++;
		}
	}
	return sb.buf ? strbuf_detach(&sb, NULL) : xstrdup_len("", 0);
}

/* json.Marshal of a string as Go writes it (HTML-safe escapes, invalid
 * UTF-8 as U+FFFD). */
static void go_json_string(struct strbuf *sb, const char *s, size_t len)
{
	strbuf_addch(sb, '"');
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80) {
			if (c == '"' || c == '\\') {
				strbuf_addch(sb, '\\');
				strbuf_addch(sb, (char)c);
			} else if (c == '\n') {
				strbuf_adds(sb, "\\n");
			} else if (c == '\r') {
				strbuf_adds(sb, "\\r");
			} else if (c == '\t') {
				strbuf_adds(sb, "\\t");
			} else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
				strbuf_addf(sb, "\\u%04x", c);
			} else {
				strbuf_addch(sb, (char)c);
			}
			i++;
			continue;
		}
		{
			uint32_t cp;
			size_t need = utf8_seq(s, len, i, &cp);

			if (!need) {
				strbuf_adds(sb, "\\ufffd");
				i++;
			} else if (cp == 0x2028 || cp == 0x2029) {
				strbuf_addf(sb, "\\u%04x", cp);
				i += need;
			} else {
				strbuf_add(sb, s + i, need);
				i += need;
			}
		}
	}
	strbuf_addch(sb, '"');
}

/* The token upstream hands out: base64 of {"file_name":"<path>"}. */
char *commit_tree_page_token(const char *path, size_t len);
char *commit_tree_page_token(const char *path, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	char *tok;

	strbuf_adds(&sb, "{\"file_name\":");
	go_json_string(&sb, path, len);
	strbuf_addch(&sb, '}');
	tok = base64_encode(sb.buf, sb.len);
	strbuf_release(&sb);
	return tok;
}

/*
 * Decodes a page token: *by_path = 1 with *start the file name for a
 * base64-JSON token, else *by_path = 0 with *start the token itself (an
 * object id, the deprecated form). *start is malloc'd.
 */
void commit_tree_decode_token(const char *token, char **start, int *by_path);
void commit_tree_decode_token(const char *token, char **start, int *by_path)
{
	struct strbuf raw = STRBUF_INIT;
	json_t *j = NULL;

	*by_path = 0;
	*start = NULL;
	if (base64_decode(token, &raw) == 0 &&
	    (j = json_loadb(raw.buf ? raw.buf : "", raw.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL))) {
		if (json_is_null(j)) {
			*by_path = 1;
		} else if (json_is_object(j)) {
			const char *key;
			json_t *v, *match = NULL;
			int bad = 0;

			/* Go matches keys case-insensitively, the last match wins. */
			json_object_foreach(j, key, v) {
				if (!strcasecmp(key, "file_name"))
					match = v;
			}
			if (match && !json_is_string(match) && !json_is_null(match))
				bad = 1;
			if (!bad) {
				*by_path = 1;
				if (match && json_is_string(match))
					*start = xstrdup_len(json_string_value(match), json_string_length(match));
			}
		}
	}
	if (!*by_path)
		*start = xstrdup_len(token, strlen(token));
	else if (!*start)
		*start = xstrdup_len("", 0);
	json_decref(j);
	strbuf_release(&raw);
}

struct tree_sender {
	const char *cursor;
	int sent_cursor;
};

static int send_tree_entries(struct commit_chunker *ch, void **items, size_t n, struct error *err)
{
	struct tree_sender *ts = ch->ctx;
	Gitaly__GetTreeEntriesResponse resp = GITALY__GET_TREE_ENTRIES_RESPONSE__INIT;
	Gitaly__PaginationCursor cur = GITALY__PAGINATION_CURSOR__INIT;

	resp.n_entries = n;
	resp.entries = (Gitaly__TreeEntry **)items;
	if (!ts->sent_cursor) {
		cur.next_cursor = (char *)ts->cursor;
		resp.pagination_cursor = &cur;
		ts->sent_cursor = 1;
	}
	return rpc_call_send(ch->call, &resp.base, err);
}

static int tree_error(struct error *err, int code, const char *msg, const char *rev, int path_error)
{
	Gitaly__GetTreeEntriesError te = GITALY__GET_TREE_ENTRIES_ERROR__INIT;
	Gitaly__ResolveRevisionError rr = GITALY__RESOLVE_REVISION_ERROR__INIT;
	Gitaly__PathError pe = GITALY__PATH_ERROR__INIT;
	uint8_t *buf;
	size_t len;

	if (path_error) {
		pe.error_type = GITALY__PATH_ERROR__ERROR_TYPE__ERROR_TYPE_EMPTY_PATH;
		te.error_case = GITALY__GET_TREE_ENTRIES_ERROR__ERROR_PATH;
		te.path = &pe;
	} else {
		rr.revision.data = (uint8_t *)rev;
		rr.revision.len = strlen(rev);
		te.error_case = GITALY__GET_TREE_ENTRIES_ERROR__ERROR_RESOLVE_TREE;
		te.resolve_tree = &rr;
	}
	error_set(err, code, "%s", msg);
	len = gitaly__get_tree_entries_error__get_packed_size(&te);
	buf = malloc(len + 1);
	if (!buf)
		abort();
	gitaly__get_tree_entries_error__pack(&te, buf);
	error_add_detail(err, "type.googleapis.com/gitaly.GetTreeEntriesError", buf, len);
	free(buf);
	return -1;
}

struct walk_ctx {
	struct entry_list *list;
	struct commit_chunker *ch; /* set: entries are sent as they come */
	const char *rev, *root;
	const char *root_oid;
	char *dir, *base; /* the last directory seen and its joined path */
	int send_failed;  /* the walk stopped because sending failed */
};

static int walk_cb(void *payload, const char *dir, const struct odb_tree_entry *te,
		   struct error *err)
{
	struct walk_ctx *w = payload;
	Gitaly__TreeEntry *e;

	if (!strcmp(te->oid, w->root_oid))
		return 0;
	if (!w->dir || strcmp(w->dir, dir) != 0) {
		free(w->dir);
		free(w->base);
		w->dir = xstrdup_len(dir, strlen(dir));
		w->base = path_join(w->root, dir);
	}
	e = tree_entry_new(w->rev, w->base, te);
	if (!w->ch) {
		entry_list_push(w->list, e);
		return 0;
	}
	/* commit_tree_walk stops on a negative return; err says why. */
	if (commit_chunker_add(w->ch, e, protobuf_c_message_get_packed_size(&e->base), err) < 0) {
		w->send_failed = 1;
		return -1;
	}
	return 0;
}

static int type_rank(Gitaly__TreeEntry__EntryType t)
{
	return t == GITALY__TREE_ENTRY__ENTRY_TYPE__TREE ? 1 : t == GITALY__TREE_ENTRY__ENTRY_TYPE__BLOB ? 2 : 3;
}

/* Stable sort, trees first, then blobs, then submodules (insertion into a copy). */
static void sort_trees_first(struct entry_list *l)
{
	Gitaly__TreeEntry **v = malloc((l->n ? l->n : 1) * sizeof(*v));
	size_t k = 0;

	if (!v)
		abort();
	for (int rank = 1; rank <= 3; rank++)
		for (size_t i = 0; i < l->n; i++)
			if (type_rank(l->v[i]->type) == rank)
				v[k++] = l->v[i];
	memcpy(l->v, v, l->n * sizeof(*v));
	free(v);
}

/* Counts a tree's entries, keeping the first. */
struct only_child {
	size_t n;
	struct odb_tree_entry first;
	char name[4096];
};

static int count_entry(void *arg, const struct odb_tree_entry *te, struct error *err)
{
	struct only_child *c = arg;

	(void)err;
	if (c->n++ == 0) {
		c->first = *te;
		if (te->name_len >= sizeof(c->name))
			c->n = 2; /* too long to follow: stop as for a crowded tree */
		else
			memcpy(c->name, te->name, te->name_len);
		c->name[te->name_len < sizeof(c->name) ? te->name_len : 0] = '\0';
	}
	return c->n > 1;
}

static void populate_flat_paths(struct commit_repo *r, struct entry_list *l)
{
	struct repo_handle h = commit_repo_handle(r);

	for (size_t i = 0; i < l->n; i++) {
		Gitaly__TreeEntry *e = l->v[i];
		char *flat = xstrdup_len((const char *)e->path.data, e->path.len);
		char oid[ODB_OID_MAX];

		if (e->type == GITALY__TREE_ENTRY__ENTRY_TYPE__TREE && strlen(e->oid) < sizeof(oid)) {
			memcpy(oid, e->oid, strlen(e->oid) + 1);
			for (int depth = 1; depth < FLAT_TREE_RECURSION; depth++) {
				struct only_child c = { 0 };
				struct error ignored = ERROR_INIT;
				char *next;
				int rc = odb_h_tree_each(&h, oid, count_entry, &c, &ignored);

				error_release(&ignored);
				if (rc <= 0 || c.n != 1 || entry_type(c.first.mode) !=
							   GITALY__TREE_ENTRY__ENTRY_TYPE__TREE)
					break;
				next = path_join(flat, c.name);
				free(flat);
				flat = next;
				memcpy(oid, c.first.oid, sizeof(oid));
			}
		}
		e->flat_path.data = (uint8_t *)flat;
		e->flat_path.len = strlen(flat);
	}
}

int commit_get_tree_entries_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__GetTreeEntriesRequest *req =
		(const Gitaly__GetTreeEntriesRequest *)rpc_call_request(call);
	struct entry_list entries = { 0 };
	struct commit_chunker ch;
	struct tree_sender ts = { "", 0 };
	struct commit_repo r;
	git_object_t type;
	char *rev = NULL, *path = NULL, *start = NULL, *cursor = NULL, oid[ODB_OID_MAX];
	size_t from = 0, to;
	int found, ret = -1;

	commit_chunker_init(&ch, call, send_tree_entries, tree_entry_free, &ts);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, 0, err) < 0)
		goto out;
	if (req->path.len == 0) {
		tree_error(err, STATUS_INVALID_ARGUMENT, "empty path", NULL, 1);
		goto out;
	}
	if (commit_repo_open(&r, err) < 0)
		goto out;
	rev = commit_bytes_dup(&req->revision);
	path = commit_bytes_dup(&req->path);
	if (!strcmp(path, ".")) {
		free(path);
		path = xstrdup_len("", 0);
	}
	found = resolve_path(&r, rev, path, oid, &type, err);
	if (found < 0)
		goto out;
	if (!found) {
		if (req->recursive)
			tree_error(err, STATUS_NOT_FOUND, "invalid revision or path", rev, 0);
		else
			tree_error(err, STATUS_INVALID_ARGUMENT, "invalid revision or path", rev, 0);
		goto out;
	}
	if (req->recursive) {
		struct walk_ctx w = { &entries, NULL, rev, path, oid, NULL, NULL, 0 };
		int rc;

		/* Upstream answers nothing when the path names a blob. */
		if (type != GIT_OBJECT_TREE) {
			ret = 0;
			goto out;
		}
		/* Without sorting or pages, entries go out in walk order as
		 * they come: no list of the whole tree is built. */
		if (!req->pagination_params && req->sort != GITALY__GET_TREE_ENTRIES_REQUEST__SORT_BY__TREES_FIRST)
			w.ch = &ch;
		rc = commit_tree_walk(&r, oid, walk_cb, &w, err);
		free(w.dir);
		free(w.base);
		if (rc < 0 && w.send_failed)
			goto out;
		if (rc < 0) {
			error_prefix(err, "listing tree entries");
			err->code = STATUS_INTERNAL;
			goto out;
		}
	} else if (tree_entries(&r, rev, path, &entries, err) < 0) {
		goto out;
	}
	if (req->sort == GITALY__GET_TREE_ENTRIES_REQUEST__SORT_BY__TREES_FIRST)
		sort_trees_first(&entries);
	to = entries.n;
	if (req->pagination_params) {
		int by_path;
		int32_t limit = req->pagination_params->limit;
		const char *token = req->pagination_params->page_token ? req->pagination_params->page_token : "";
		long idx = -1;

		commit_tree_decode_token(token, &start, &by_path);
		if (!*start) {
			idx = 0;
		} else {
			for (size_t i = 0; i < entries.n; i++) {
				const Gitaly__TreeEntry *e = entries.v[i];

				int match;

				if (by_path) {
					/* Beyond upstream: a non-UTF-8 path survives its own
					 * token (Go's JSON turned its bad bytes into U+FFFD). */
					char *lossy = utf8_lossy((const char *)e->path.data, e->path.len);

					match = !strcmp(lossy, start);
					free(lossy);
				} else {
					match = !strcmp(e->oid, start);
				}
				if (match) {
					idx = (long)i + 1;
					break;
				}
			}
		}
		if (idx < 0) {
			error_set(err, STATUS_UNKNOWN, "could not find starting OID: %s", start);
			goto out;
		}
		if (limit == 0) {
			from = to = 0;
		} else if (limit < 0 || (size_t)idx + (size_t)limit >= entries.n) {
			from = (size_t)idx;
		} else {
			from = (size_t)idx;
			to = from + (size_t)limit;
			cursor = commit_tree_page_token((const char *)entries.v[to - 1]->path.data,
							entries.v[to - 1]->path.len);
			ts.cursor = cursor;
		}
	}
	/* Entries outside the page are dropped before flat paths are computed. */
	for (size_t i = 0; i < entries.n; i++) {
		if (i < from || i >= to) {
			tree_entry_free(entries.v[i]);
			entries.v[i] = NULL;
		}
	}
	if (to > from) /* (entries.v is NULL for an empty tree) */
		memmove(entries.v, entries.v + from, (to - from) * sizeof(*entries.v));
	entries.n = to - from;
	if (!req->recursive && !req->skip_flat_paths)
		populate_flat_paths(&r, &entries);
	for (size_t i = 0; i < entries.n; i++) {
		Gitaly__TreeEntry *e = entries.v[i];

		entries.v[i] = NULL;
		if (commit_chunker_add(&ch, e, protobuf_c_message_get_packed_size(&e->base), err) < 0)
			goto out;
	}
	ret = commit_chunker_flush(&ch, err);
out:
	commit_chunker_release(&ch);
	entry_list_release(&entries);
	free(rev);
	free(path);
	free(start);
	free(cursor);
	commit_repo_release(&r);
	return ret;
}
