/*
 * The reference mutators of RefService: UpdateReferences (a client stream
 * of updates applied as one atomic transaction) and DeleteRefs (explicit
 * refs, or every ref except some prefixes). Both go through
 * git/refupdate.c, i.e. `git update-ref --stdin` with start/prepare/commit,
 * and map git's refusals to upstream's codes and typed error details.
 */
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"
#include "errors.pb-c.h"
#include "git/refupdate.h"
#include "git/revision.h"
#include "git/repo_cache.h"
#include "ref.pb-c.h"
#include "service/ref_internal.h"
#include "service/repository_internal.h"

static void refupdate_opts_from(struct ref_ctx *ctx, const char *format, int no_deref,
				struct refupdate_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->object_dir = ctx->genv.object_directory;
	o->alternates = ctx->genv.alternates;
	o->object_format = format;
	o->no_deref = no_deref;
}

static char *bytes_str(const ProtobufCBinaryData *b)
{
	char *s = malloc(b->len + 1);

	if (!s)
		abort();
	if (b->len)
		memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	return s;
}

/* Queues one update after upstream's validation. */
static int queue_update(struct refupdate *u, const char *format,
			const Gitaly__UpdateReferencesRequest__Update *up, struct error *err)
{
	char *ref = bytes_str(&up->reference), *old = bytes_str(&up->old_object_id),
	     *new = bytes_str(&up->new_object_id);
	int ret = -1;

	if (reference_validate((const char *)up->reference.data, up->reference.len, err) < 0) {
		Gitaly__UpdateReferencesError detail = GITALY__UPDATE_REFERENCES_ERROR__INIT;
		Gitaly__InvalidRefFormatError inv = GITALY__INVALID_REF_FORMAT_ERROR__INIT;
		ProtobufCBinaryData refs[1] = { up->reference };

		error_prefix(err, "validating reference");
		inv.n_refs = 1;
		inv.refs = refs;
		detail.error_case = GITALY__UPDATE_REFERENCES_ERROR__ERROR_INVALID_FORMAT;
		detail.invalid_format = &inv;
		ref_add_detail(err, &detail.base);
		goto out;
	}
	if (up->old_object_id.len &&
	    (service_has_nul(old, up->old_object_id.len) ||
	     ref_validate_hex(old, format, "validating old object ID: ", err) < 0)) {
		if (!error_is_set(err))
			ref_validate_hex("", format, "validating old object ID: ", err);
		goto out;
	}
	if (service_has_nul(new, up->new_object_id.len) ||
	    ref_validate_hex(new, format, "validating new object ID: ", err) < 0) {
		if (!error_is_set(err))
			ref_validate_hex("", format, "validating new object ID: ", err);
		goto out;
	}
	if (refupdate_update(u, ref, new, up->old_object_id.len ? old : NULL, err) < 0) {
		error_prefix(err, "queueing update");
		err->code = STATUS_INVALID_ARGUMENT;
		goto out;
	}
	ret = 0;
out:
	free(ref);
	free(old);
	free(new);
	return ret;
}

/* Maps a refused commit as upstream's UpdateReferences does. */
static void update_commit_error(const struct refupdate_failure *f, struct error *err)
{
	switch (f->kind) {
	case REFUPDATE_FAIL_LOCKED: {
		Gitaly__UpdateReferencesError detail = GITALY__UPDATE_REFERENCES_ERROR__INIT;
		Gitaly__ReferencesLockedError locked = GITALY__REFERENCES_LOCKED_ERROR__INIT;
		ProtobufCBinaryData refs[1] = { { strlen(f->ref), (uint8_t *)f->ref } };

		error_set(err, STATUS_ABORTED, "%s", refupdate_failure_message(f->kind));
		locked.n_refs = 1;
		locked.refs = refs;
		detail.error_case = GITALY__UPDATE_REFERENCES_ERROR__ERROR_REFERENCES_LOCKED;
		detail.references_locked = &locked;
		ref_add_detail(err, &detail.base);
		break;
	}
	case REFUPDATE_FAIL_MISMATCH: {
		Gitaly__UpdateReferencesError detail = GITALY__UPDATE_REFERENCES_ERROR__INIT;
		Gitaly__ReferenceStateMismatchError mm = GITALY__REFERENCE_STATE_MISMATCH_ERROR__INIT;

		error_set(err, STATUS_ABORTED, "%s", refupdate_failure_message(f->kind));
		mm.reference_name.data = (uint8_t *)f->ref;
		mm.reference_name.len = strlen(f->ref);
		mm.expected_object_id.data = (uint8_t *)f->expected;
		mm.expected_object_id.len = strlen(f->expected);
		mm.actual_object_id.data = (uint8_t *)f->actual;
		mm.actual_object_id.len = strlen(f->actual);
		detail.error_case = GITALY__UPDATE_REFERENCES_ERROR__ERROR_REFERENCE_STATE_MISMATCH;
		detail.reference_state_mismatch = &mm;
		ref_add_detail(err, &detail.base);
		break;
	}
	case REFUPDATE_FAIL_NONEXISTENT_OBJECT:
		error_set(err, STATUS_NOT_FOUND, "%s", refupdate_failure_message(f->kind));
		break;
	default:
		error_prefix(err, "committing update");
		err->code = STATUS_INTERNAL;
		break;
	}
}

int ref_update_references_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__UpdateReferencesRequest *first =
		(const Gitaly__UpdateReferencesRequest *)rpc_call_request(call);
	const Gitaly__UpdateReferencesRequest *req = first;
	Gitaly__UpdateReferencesResponse resp = GITALY__UPDATE_REFERENCES_RESPONSE__INIT;
	struct refupdate *u = NULL;
	struct refupdate_opts opts;
	struct ref_ctx ctx;
	const char *format = "sha1";
	int ret = -1;

	memset(&ctx, 0, sizeof(ctx));
	if (!first) {
		error_set(err, STATUS_INTERNAL, "receiving initial request: EOF");
		goto out;
	}
	if (ref_ctx_init(&ctx, call, first->repository, err) < 0)
		goto out;
	if (repo_object_format(ctx.path, &ctx.genv, &format, err) < 0)
		goto out;
	refupdate_opts_from(&ctx, format, 0, &opts);
	if (refupdate_begin(ctx.path, &opts, &u, err) < 0) {
		error_prefix(err, "starting updater");
		goto out;
	}
	for (;;) {
		ProtobufCMessage *next = NULL;
		int rc;

		if (req != first && req->repository) {
			error_set(err, STATUS_INVALID_ARGUMENT, "repository set in subsequent request");
			goto out;
		}
		if (req->n_updates == 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "no updates specified");
			goto out;
		}
		for (size_t i = 0; i < req->n_updates; i++)
			if (queue_update(u, format, req->updates[i], err) < 0)
				goto out;
		rc = rpc_call_recv(call, &next, err);
		if (rc < 0) {
			error_prefix(err, "receiving subsequent request");
			goto out;
		}
		if (rc == 0)
			break;
		req = (const Gitaly__UpdateReferencesRequest *)next;
	}
	if (refupdate_commit(u, err) < 0) {
		update_commit_error(refupdate_failure(u), err);
		goto out;
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	refupdate_free(u);
	ref_ctx_release(&ctx);
	return ret;
}

static int has_any_prefix(const char *s, ProtobufCBinaryData *prefixes, size_t n)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (prefixes[i].len <= len && memcmp(s, prefixes[i].data, prefixes[i].len) == 0)
			return 1;
	return 0;
}

struct ref_names {
	char **v;
	size_t n, alloc;
};

static void names_push(struct ref_names *l, char *s)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 32;
		l->v = realloc(l->v, l->alloc * sizeof(*l->v));
		if (!l->v)
			abort();
	}
	l->v[l->n++] = s;
}

struct except_ctx {
	struct ref_names *names;
	const Gitaly__DeleteRefsRequest *req;
};

static int except_line(void *arg, char *line, size_t len, struct error *err)
{
	struct except_ctx *c = arg;

	(void)err;
	(void)len;
	if (!has_any_prefix(line, c->req->except_with_prefix, c->req->n_except_with_prefix))
		names_push(c->names, strdup(line));
	return 0;
}

int ref_delete_refs_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__DeleteRefsRequest *req = (const Gitaly__DeleteRefsRequest *)rpc_call_request(call);
	Gitaly__DeleteRefsResponse resp = GITALY__DELETE_REFS_RESPONSE__INIT;
	struct ref_names names = { 0 };
	ProtobufCBinaryData *invalid = NULL;
	size_t n_invalid = 0;
	struct refupdate *u = NULL;
	struct refupdate_opts opts;
	struct ref_ctx ctx;
	int ret = -1;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (req->n_except_with_prefix > 0 && req->n_refs > 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "ExceptWithPrefix and Refs are mutually exclusive");
		goto out;
	}
	if (req->n_except_with_prefix == 0 && req->n_refs == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty ExceptWithPrefix and Refs");
		goto out;
	}
	for (size_t i = 0; i < req->n_except_with_prefix; i++)
		if (req->except_with_prefix[i].len == 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "empty prefix for exclusion");
			goto out;
		}
	for (size_t i = 0; i < req->n_refs; i++)
		if (req->refs[i].len == 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "empty ref");
			goto out;
		}

	if (req->n_refs > 0) {
		for (size_t i = 0; i < req->n_refs; i++)
			names_push(&names, bytes_str(&req->refs[i]));
	} else {
		struct except_ctx ec = { &names, req };
		struct git_cmd *cmd = ref_ctx_git(&ctx, "for-each-ref");

		git_cmd_flag(cmd, "--format=%(refname)");
		if (ref_run_lines(cmd, except_line, &ec, NULL, err) < 0)
			goto out;
	}

	/* The zero id update-ref expects depends on the object format. */
	refupdate_opts_from(&ctx, repo_cache_is_sha256(ctx.path) ? "sha256" : "sha1", 1, &opts);
	if (refupdate_begin(ctx.path, &opts, &u, err) < 0) {
		error_prefix(err, "start reference transaction");
		goto out;
	}
	invalid = calloc(names.n ? names.n : 1, sizeof(*invalid));
	if (!invalid)
		abort();
	for (size_t i = 0; i < names.n; i++) {
		struct error verr = ERROR_INIT;
		size_t len = i < req->n_refs ? req->refs[i].len : strlen(names.v[i]);

		if (revision_validate(names.v[i], len, 0, &verr) < 0) {
			invalid[n_invalid].data = (uint8_t *)names.v[i];
			invalid[n_invalid].len = len;
			n_invalid++;
		}
		error_release(&verr);
	}
	if (n_invalid > 0) {
		Gitaly__DeleteRefsError detail = GITALY__DELETE_REFS_ERROR__INIT;
		Gitaly__InvalidRefFormatError inv = GITALY__INVALID_REF_FORMAT_ERROR__INIT;

		error_set(err, STATUS_INVALID_ARGUMENT, "invalid references");
		inv.n_refs = n_invalid;
		inv.refs = invalid;
		detail.error_case = GITALY__DELETE_REFS_ERROR__ERROR_INVALID_FORMAT;
		detail.invalid_format = &inv;
		ref_add_detail(err, &detail.base);
		goto out;
	}
	for (size_t i = 0; i < names.n; i++)
		if (refupdate_delete(u, names.v[i], err) < 0) {
			error_prefix(err, "unable to delete refs");
			goto out;
		}
	if (refupdate_prepare(u, err) < 0) {
		const struct refupdate_failure *f = refupdate_failure(u);

		if (f->kind == REFUPDATE_FAIL_LOCKED) {
			Gitaly__DeleteRefsError detail = GITALY__DELETE_REFS_ERROR__INIT;
			Gitaly__ReferencesLockedError locked = GITALY__REFERENCES_LOCKED_ERROR__INIT;
			ProtobufCBinaryData refs[1] = { { strlen(f->ref), (uint8_t *)f->ref } };

			error_set(err, STATUS_ABORTED, "cannot lock references");
			locked.n_refs = 1;
			locked.refs = refs;
			detail.error_case = GITALY__DELETE_REFS_ERROR__ERROR_REFERENCES_LOCKED;
			detail.references_locked = &locked;
			ref_add_detail(err, &detail.base);
		} else {
			error_prefix(err, "unable to prepare");
		}
		goto out;
	}
	/* Upstream votes on the deleted names here when Praefect runs a
	 * transaction; voting arrives with the transaction module. */
	if (refupdate_commit(u, err) < 0) {
		error_prefix(err, "unable to commit");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	refupdate_free(u);
	free(invalid);
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
	ref_ctx_release(&ctx);
	return ret;
}
