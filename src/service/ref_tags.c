/*
 * Tags of RefService: FindAllTags, FindTag, GetTagSignatures and
 * GetTagMessages. Tag objects and the commits they point at are read
 * in-process (libgit2 object database) and parsed by gitcommit.c; git
 * chooses and orders refs (for-each-ref, with upstream's sort keys) and
 * walks revisions for GetTagSignatures (rev-list with a tag filter).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"
#include "errors.pb-c.h"
#include "git/revision.h"
#include "ref.pb-c.h"
#include "git/catfile.h"
#include "service/gitcommit.h"
#include "service/ref_internal.h"

#define REVLIST_CAP ((size_t)256 << 20)

/*
 * A Tag message for the ref pointing at oid, as upstream's FindAllTags and
 * FindTag build it: an annotated tag (message trimmed, target commit
 * peeled), a commit (id and target_commit) or anything else (id only).
 * name/name_len: the tag name to report.
 */
static int build_tag(const struct repo_handle *h, const char *hex, const char *name,
		     size_t name_len, Gitaly__Tag **out, struct error *err)
{
	char *data = NULL;
	size_t len;
	git_object_t type;
	Gitaly__Tag *tag = NULL;
	int ret = -1;

	*out = NULL;
	if (gitcommit_read_raw_h(h, hex, &type, &data, &len, err) < 0)
		goto out;
	if (type == GIT_OBJECT_TAG) {
		if (gitcommit_read_tag_h(h, hex, name, name_len, &tag, err) < 0)
			goto out;
		gitcommit_trim_tag_message(tag);
	} else {
		tag = malloc(sizeof(*tag));
		if (!tag)
			abort();
		gitaly__tag__init(tag);
		tag->id = strdup(hex);
		tag->name.data = malloc(name_len + 1);
		if (!tag->id || !tag->name.data)
			abort();
		memcpy(tag->name.data, name, name_len);
		tag->name.len = name_len;
		if (type == GIT_OBJECT_COMMIT &&
		    gitcommit_parse(hex, data, len, &tag->target_commit, err) < 0)
			goto out;
	}
	*out = tag;
	tag = NULL;
	ret = 0;
out:
	gitcommit_tag_free(tag);
	free(data);
	return ret;
}

/* FindAllTags */

struct tags_writer {
	struct rpc_call *call;
	const struct repo_handle *h;
	struct ref_pager pager;
	Gitaly__Tag **tags;
	size_t n, alloc, size;
};

static void tags_reset(struct tags_writer *w)
{
	for (size_t i = 0; i < w->n; i++)
		gitcommit_tag_free(w->tags[i]);
	w->n = 0;
	w->size = 0;
}

static int tags_flush(struct tags_writer *w, struct error *err)
{
	Gitaly__FindAllTagsResponse r = GITALY__FIND_ALL_TAGS_RESPONSE__INIT;
	int ret;

	if (w->size == 0)
		return 0;
	r.n_tags = w->n;
	r.tags = w->tags;
	ret = rpc_call_send(w->call, &r.base, err);
	tags_reset(w);
	return ret;
}

/* "objectname\0refname" */
static int tags_line(void *arg, char *line, size_t len, struct error *err)
{
	struct tags_writer *w = arg;
	char *nul = memchr(line, '\0', len);
	const char *refname, *name;
	size_t rlen, nlen, sz;
	Gitaly__Tag *tag = NULL;
	int step;

	if (!nul || !ref_is_hex_oid(line, (size_t)(nul - line)))
		return error_set(err, STATUS_INTERNAL, "invalid for-each-ref format");
	refname = nul + 1;
	rlen = len - (size_t)(refname - line);
	step = ref_pager_step(&w->pager, refname, rlen);
	if (step < 0)
		return 1;
	if (step == 0)
		return 0;
	name = refname;
	nlen = rlen;
	if (nlen > 10 && memcmp(name, "refs/tags/", 10) == 0) {
		name += 10;
		nlen -= 10;
	}
	if (build_tag(w->h, line, name, nlen, &tag, err) < 0)
		return -1;
	sz = protobuf_c_message_get_packed_size(&tag->base);
	if (sz + w->size >= REF_CHUNK_BYTES && tags_flush(w, err) < 0) {
		gitcommit_tag_free(tag);
		return -1;
	}
	if (w->n == w->alloc) {
		size_t na = w->alloc ? w->alloc * 2 : 32;
		Gitaly__Tag **nt = realloc(w->tags, na * sizeof(*nt));

		if (!nt)
			abort();
		w->tags = nt;
		w->alloc = na;
	}
	w->tags[w->n++] = tag;
	w->size += sz;
	return 0;
}

int ref_find_all_tags_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindAllTagsRequest *req =
		(const Gitaly__FindAllTagsRequest *)rpc_call_request(call);
	struct tags_writer w = { .call = call };
	struct ref_ctx ctx;
	struct git_cmd *cmd;
	char sort[40] = "";
	int code = 0, ret = -1;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (req->sort_by) {
		const char *dir, *key;

		switch (req->sort_by->direction) {
		case GITALY__SORT_DIRECTION__ASCENDING: dir = ""; break;
		case GITALY__SORT_DIRECTION__DESCENDING: dir = "-"; break;
		default:
			error_set(err, STATUS_INVALID_ARGUMENT, "unsupported sorting direction: %d",
				  (int)req->sort_by->direction);
			goto out;
		}
		switch (req->sort_by->key) {
		case GITALY__FIND_ALL_TAGS_REQUEST__SORT_BY__KEY__REFNAME: key = "refname"; break;
		case GITALY__FIND_ALL_TAGS_REQUEST__SORT_BY__KEY__CREATORDATE: key = "creatordate"; break;
		case GITALY__FIND_ALL_TAGS_REQUEST__SORT_BY__KEY__VERSION_REFNAME: key = "version:refname"; break;
		default:
			error_set(err, STATUS_INVALID_ARGUMENT, "unsupported sorting key: %d",
				  (int)req->sort_by->key);
			goto out;
		}
		snprintf(sort, sizeof(sort), "%s%s", dir, key);
	}
	ref_pager_init(&w.pager, req->pagination_params);
	if (ref_ctx_handle(&ctx, &w.h, err) < 0)
		goto out;
	cmd = ref_ctx_git(&ctx, "for-each-ref");
	git_cmd_option(cmd, "--format", "%(objectname)%00%(refname)");
	if (*sort)
		git_cmd_option(cmd, "--sort", sort);
	git_cmd_arg(cmd, "refs/tags/");
	if (ref_run_lines(cmd, tags_line, &w, &code, err) < 0)
		goto out;
	if (ref_pager_finish(&w.pager, err) < 0)
		goto out;
	if (code != 0) {
		error_set(err, STATUS_INTERNAL, "iterating over tags: for-each-ref pipeline command: exit status %d", code);
		goto out;
	}
	ret = tags_flush(&w, err);
out:
	tags_reset(&w);
	free(w.tags);
	ref_ctx_release(&ctx);
	return ret;
}

/* FindTag */

static int has_glob(const void *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = ((const char *)s)[i];

		if (c == '*' || c == '?' || c == '[' || c == '\\')
			return 1;
	}
	return 0;
}

struct tag_line {
	char *line;
	size_t len;
};

static int first_tag_line(void *arg, char *line, size_t len, struct error *err)
{
	struct tag_line *t = arg;

	(void)err;
	t->line = malloc(len + 1);
	if (!t->line)
		abort();
	memcpy(t->line, line, len);
	t->line[len] = '\0';
	t->len = len;
	return 1;
}

/* `git tag -l <pattern>`'s first match: *found_oid / name (malloc'd). */
static int tag_by_pattern(struct ref_ctx *ctx, const char *pattern, char *oid, char **name,
			  struct error *err)
{
	struct git_cmd *cmd = ref_ctx_git(ctx, "tag");
	struct tag_line t = { NULL, 0 };
	char *nul;
	int ret = -1;

	*name = NULL;
	git_cmd_flag(cmd, "-l");
	git_cmd_option(cmd, "--format", "%(objectname)%00%(refname:lstrip=2)");
	git_cmd_arg(cmd, pattern);
	if (ref_run_lines(cmd, first_tag_line, &t, NULL, err) < 0)
		goto out;
	if (!t.line) {
		ret = 0;
		goto out;
	}
	nul = memchr(t.line, '\0', t.len);
	if (!nul || !ref_is_hex_oid(t.line, (size_t)(nul - t.line))) {
		error_set(err, STATUS_INTERNAL, "invalid output from for-each-ref command");
		goto out;
	}
	memcpy(oid, t.line, (size_t)(nul - t.line) + 1);
	*name = strdup(nul + 1);
	ret = 0;
out:
	free(t.line);
	return ret;
}

int ref_find_tag_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindTagRequest *req = (const Gitaly__FindTagRequest *)rpc_call_request(call);
	Gitaly__FindTagResponse resp = GITALY__FIND_TAG_RESPONSE__INIT;
	struct ref_ctx ctx;
	struct strbuf refname = STRBUF_INIT;
	const struct repo_handle *h;
	char oid[64 + 1], *name = NULL;
	int found = 0, ret = -1, rc;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (req->tag_name.len == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "tag name is empty");
		goto out;
	}
	if (ref_ctx_handle(&ctx, &h, err) < 0)
		goto out;
	if (strbuf_adds(&refname, "refs/tags/") < 0 ||
	    strbuf_add(&refname, req->tag_name.data, req->tag_name.len) < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "tag name too long");
		goto out;
	}
	if (!service_has_nul(req->tag_name.data, req->tag_name.len)) {
		if (has_glob(req->tag_name.data, req->tag_name.len)) {
			if (tag_by_pattern(&ctx, refname.buf + 10, oid, &name, err) < 0)
				goto out;
			found = name != NULL;
		} else if ((rc = ref_ctx_resolve(&ctx, refname.buf, oid, err)) < 0) {
			goto out;
		} else if (rc > 0) {
			name = strdup(refname.buf + 10);
			found = 1;
		}
	}
	if (!found) {
		Gitaly__FindTagError detail = GITALY__FIND_TAG_ERROR__INIT;
		Gitaly__ReferenceNotFoundError nf = GITALY__REFERENCE_NOT_FOUND_ERROR__INIT;

		nf.reference_name.data = (uint8_t *)refname.buf;
		nf.reference_name.len = refname.len;
		detail.error_case = GITALY__FIND_TAG_ERROR__ERROR_TAG_NOT_FOUND;
		detail.tag_not_found = &nf;
		error_set(err, STATUS_NOT_FOUND, "tag does not exist");
		ref_add_detail(err, &detail.base);
		goto out;
	}
	if (build_tag(h, oid, name, strlen(name), &resp.tag, err) < 0) {
		error_prefix(err, "parsing tag");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	gitcommit_tag_free(resp.tag);
	free(name);
	strbuf_release(&refname);
	ref_ctx_release(&ctx);
	return ret;
}

/* GetTagSignatures */

struct sig_writer {
	struct rpc_call *call;
	Gitaly__GetTagSignaturesResponse__TagSignature *items;
	Gitaly__GetTagSignaturesResponse__TagSignature **ptrs;
	char **bufs;
	size_t n, alloc, size;
};

static void sig_reset(struct sig_writer *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->bufs[i]);
		free(w->items[i].tag_id);
	}
	w->n = 0;
	w->size = 0;
}

static int sig_flush(struct sig_writer *w, struct error *err)
{
	Gitaly__GetTagSignaturesResponse r = GITALY__GET_TAG_SIGNATURES_RESPONSE__INIT;
	int ret;

	if (w->size == 0)
		return 0;
	for (size_t i = 0; i < w->n; i++)
		w->ptrs[i] = &w->items[i];
	r.n_signatures = w->n;
	r.signatures = w->ptrs;
	ret = rpc_call_send(w->call, &r.base, err);
	sig_reset(w);
	return ret;
}

static int sig_add(struct sig_writer *w, const char *hex, char *raw, size_t len, struct error *err)
{
	Gitaly__GetTagSignaturesResponse__TagSignature *s;
	size_t off, slen, sz;

	if (w->n == w->alloc) {
		size_t na = w->alloc ? w->alloc * 2 : 32;

		w->items = realloc(w->items, na * sizeof(*w->items));
		w->ptrs = realloc(w->ptrs, na * sizeof(*w->ptrs));
		w->bufs = realloc(w->bufs, na * sizeof(*w->bufs));
		if (!w->items || !w->ptrs || !w->bufs)
			abort();
		w->alloc = na;
	}
	s = &w->items[w->n];
	gitaly__get_tag_signatures_response__tag_signature__init(s);
	s->tag_id = strdup(hex);
	if (!s->tag_id)
		abort();
	gitcommit_tag_signature(raw, len, &off, &slen);
	s->content.data = (uint8_t *)raw;
	s->content.len = off;
	if (slen) {
		s->signature.data = (uint8_t *)raw + off;
		s->signature.len = slen;
	}
	sz = protobuf_c_message_get_packed_size(&s->base);
	if (sz + w->size >= REF_CHUNK_BYTES) {
		/* Send what came before, then start the next chunk with this one
		 * (the flush only touches the first n items). */
		Gitaly__GetTagSignaturesResponse__TagSignature cur = *s;

		if (sig_flush(w, err) < 0) {
			free(cur.tag_id);
			free(raw);
			return -1;
		}
		w->items[0] = cur;
	}
	w->bufs[w->n] = raw;
	w->n++;
	w->size += sz;
	return 0;
}

int ref_get_tag_signatures_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__GetTagSignaturesRequest *req =
		(const Gitaly__GetTagSignaturesRequest *)rpc_call_request(call);
	struct sig_writer w = { .call = call };
	struct ref_ctx ctx;
	struct strbuf out, errs;
	struct git_result res;
	struct git_cmd *cmd;
	const struct repo_handle *h;
	int ret = -1;

	strbuf_init(&out, REVLIST_CAP);
	strbuf_init(&errs, 64 * 1024);
	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (req->n_tag_revisions == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "missing revisions");
		goto out;
	}
	for (size_t i = 0; i < req->n_tag_revisions; i++) {
		const char *rev = req->tag_revisions[i];

		if (revision_validate(rev, strlen(rev), REVISION_ALLOW_PSEUDO, err) < 0) {
			error_prefix(err, "invalid revision");
			goto out;
		}
	}
	if (ref_ctx_handle(&ctx, &h, err) < 0)
		goto out;
	cmd = ref_ctx_git(&ctx, "rev-list");
	git_cmd_flag(cmd, "--in-commit-order");
	git_cmd_flag(cmd, "--objects");
	git_cmd_flag(cmd, "--object-names");
	git_cmd_flag(cmd, "--filter=object:type=tag");
	git_cmd_flag(cmd, "--filter-provided-objects");
	for (size_t i = 0; i < req->n_tag_revisions; i++) {
		if (git_pseudo_revision_valid(req->tag_revisions[i]))
			git_cmd_pseudo_arg(cmd, req->tag_revisions[i]);
		else
			git_cmd_arg(cmd, req->tag_revisions[i]);
	}
	if (git_cmd_run(cmd, NULL, 0, &out, &errs, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		struct strbuf msg = STRBUF_INIT;

		strbuf_addf(&msg, "cat-file iterator stop: rev-list pipeline command: exit status %d, stderr: ",
			    res.exit_code);
		service_go_quote(&msg, errs.buf ? errs.buf : "", errs.len);
		error_set(err, STATUS_INTERNAL, "%s", msg.buf);
		strbuf_release(&msg);
		goto out;
	}
	for (char *p = out.buf; p && *p;) {
		char *nl = strchr(p, '\n');
		char hex[64 + 1], *raw = NULL;
		size_t len, hlen;
		git_object_t type;

		if (nl)
			*nl = '\0';
		hlen = strcspn(p, " ");
		if (hlen >= 40) {
			if (!ref_is_hex_oid(p, hlen)) {
				error_set(err, STATUS_INTERNAL, "cat-file iterator stop: invalid object id");
				goto out;
			}
			memcpy(hex, p, hlen);
			hex[hlen] = '\0';
			if (gitcommit_read_raw_h(h, hex, &type, &raw, &len, err) < 0) {
				error_prefix(err, "cat-file iterator stop");
				err->code = STATUS_INTERNAL;
				goto out;
			}
			if (sig_add(&w, hex, raw, len, err) < 0) {
				error_prefix(err, "sending tag signature chunk");
				goto out;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	ret = sig_flush(&w, err);
out:
	sig_reset(&w);
	free(w.items);
	free(w.ptrs);
	free(w.bufs);
	strbuf_release(&out);
	strbuf_release(&errs);
	ref_ctx_release(&ctx);
	return ret;
}

/* GetTagMessages */

int ref_get_tag_messages_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__GetTagMessagesRequest *req =
		(const Gitaly__GetTagMessagesRequest *)rpc_call_request(call);
	struct ref_ctx ctx;
	const struct repo_handle *h;
	int ret = -1;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (ref_ctx_handle(&ctx, &h, err) < 0)
		goto out;
	for (size_t i = 0; i < req->n_tag_ids; i++) {
		Gitaly__GetTagMessagesResponse head = GITALY__GET_TAG_MESSAGES_RESPONSE__INIT;
		Gitaly__Tag *tag = NULL;
		char oid[64 + 1];
		int rc = -1;

		if (ref_is_hex_oid(req->tag_ids[i], strlen(req->tag_ids[i]))) {
			memcpy(oid, req->tag_ids[i], strlen(req->tag_ids[i]) + 1);
		} else if (h->repo) {
			git_object *obj = NULL;

			if (git_revparse_single(&obj, h->repo, req->tag_ids[i]) < 0) {
				error_set(err, STATUS_INTERNAL, "getting tag: object not found");
				goto out;
			}
			git_oid_tostr(oid, sizeof(oid), git_object_id(obj));
			git_object_free(obj);
		} else {
			git_object_t type;
			int64_t size;

			rc = catfile_info(h->cf, req->tag_ids[i], oid, &type, &size, err);
			if (rc < 0)
				goto out;
			if (rc == 0) {
				error_set(err, STATUS_INTERNAL, "getting tag: object not found");
				goto out;
			}
			rc = -1;
		}
		if (gitcommit_read_tag_h(h, oid, NULL, 0, &tag, err) < 0) {
			error_prefix(err, "getting tag");
			err->code = STATUS_INTERNAL;
			goto out;
		}
		head.tag_id = req->tag_ids[i];
		if (rpc_call_send(call, &head.base, err) < 0) {
			gitcommit_tag_free(tag);
			goto out;
		}
		rc = 0;
		for (size_t off = 0; off < tag->message.len; off += SERVICE_CHUNK_SIZE) {
			Gitaly__GetTagMessagesResponse chunk = GITALY__GET_TAG_MESSAGES_RESPONSE__INIT;
			size_t n = tag->message.len - off;

			chunk.message.data = tag->message.data + off;
			chunk.message.len = n > SERVICE_CHUNK_SIZE ? SERVICE_CHUNK_SIZE : n;
			if ((rc = rpc_call_send(call, &chunk.base, err)) < 0)
				break;
		}
		gitcommit_tag_free(tag);
		if (rc < 0)
			goto out;
	}
	ret = 0;
out:
	ref_ctx_release(&ctx);
	return ret;
}
