/*
 * gitaly.HookService handlers. Each reads the request (and, for the bidi
 * ones, stdin from the following messages), hands it to src/hook/hook.c and
 * streams back the hook's stdout and stderr, then a last message with the
 * exit status. As upstream, a failing hook is not a gRPC error: the stream
 * succeeds and carries exit_status (1 plus the error text on stderr when the
 * failure is not a custom hook's own exit code).
 * PackObjectsHookWithSidechannel lives in hook_packobjects.c.
 */
#include <stdlib.h>
#include <string.h>

#include "hook.pb-c.h"
#include "hook/hook.h"
#include "base/log.h"
#include "service/hook.h"
#include "service/hook_packobjects.h"
#include "service/util.h"

/* Cap on the ref-update lines a hook reads from its stdin. */
#define MAX_HOOK_STDIN ((size_t)64 << 20)

/* Sends one response of the message type desc (all four share a layout). */
#define DEFINE_SEND(fn, Type, INIT)                                                       \
	static int fn(struct rpc_call *call, const void *out, size_t out_len,             \
		      const void *errbuf, size_t err_len, int has_status, int code,       \
		      struct error *err)                                                  \
	{                                                                                 \
		Type m = INIT;                                                            \
		Gitaly__ExitStatus st = GITALY__EXIT_STATUS__INIT;                        \
		m.stdout.data = (uint8_t *)out;                                           \
		m.stdout.len = out_len;                                                   \
		m.stderr.data = (uint8_t *)errbuf;                                        \
		m.stderr.len = err_len;                                                   \
		if (has_status) {                                                         \
			st.value = code;                                                  \
			m.exit_status = &st;                                              \
		}                                                                         \
		return rpc_call_send(call, &m.base, err);                                 \
	}

DEFINE_SEND(send_pre, Gitaly__PreReceiveHookResponse, GITALY__PRE_RECEIVE_HOOK_RESPONSE__INIT)
DEFINE_SEND(send_post, Gitaly__PostReceiveHookResponse, GITALY__POST_RECEIVE_HOOK_RESPONSE__INIT)
DEFINE_SEND(send_update, Gitaly__UpdateHookResponse, GITALY__UPDATE_HOOK_RESPONSE__INIT)
DEFINE_SEND(send_tx, Gitaly__ReferenceTransactionHookResponse,
	    GITALY__REFERENCE_TRANSACTION_HOOK_RESPONSE__INIT)

typedef int (*send_fn)(struct rpc_call *, const void *, size_t, const void *, size_t, int, int,
		       struct error *);

/* Streams out and err_out in chunks, then the final exit status. */
static int finish(struct rpc_call *call, send_fn send, const struct strbuf *out,
		  const struct strbuf *err_out, int code, const char *msg, struct error *err)
{
	for (size_t o = 0; o < out->len; o += SERVICE_CHUNK_SIZE) {
		size_t n = out->len - o < SERVICE_CHUNK_SIZE ? out->len - o : SERVICE_CHUNK_SIZE;
		if (send(call, out->buf + o, n, NULL, 0, 0, 0, err) < 0)
			return -1;
	}
	for (size_t o = 0; o < err_out->len; o += SERVICE_CHUNK_SIZE) {
		size_t n = err_out->len - o < SERVICE_CHUNK_SIZE ? err_out->len - o
								 : SERVICE_CHUNK_SIZE;
		if (send(call, NULL, 0, err_out->buf + o, n, 0, 0, err) < 0)
			return -1;
	}
	return send(call, NULL, 0, msg, msg ? strlen(msg) : 0, 1, code, err);
}

/* Reads the stdin field of every following message of the stream. */
typedef const ProtobufCBinaryData *(*stdin_of_fn)(const ProtobufCMessage *m);

static int read_stdin(struct rpc_call *call, const ProtobufCBinaryData *first, stdin_of_fn of,
		      struct strbuf *in, struct error *err)
{
	ProtobufCMessage *m = NULL;
	int r;

	strbuf_init(in, MAX_HOOK_STDIN);
	if (first->len && strbuf_add(in, first->data, first->len) < 0)
		return error_set(err, STATUS_RESOURCE_EXHAUSTED, "hook stdin too large");
	while ((r = rpc_call_recv(call, &m, err)) == 1) {
		const ProtobufCBinaryData *d = of(m);
		int bad = d->len && strbuf_add(in, d->data, d->len) < 0;
		rpc_call_free_message(call, m);
		if (bad)
			return error_set(err, STATUS_RESOURCE_EXHAUSTED, "hook stdin too large");
	}
	return r < 0 ? -1 : 0;
}

static const ProtobufCBinaryData *pre_stdin(const ProtobufCMessage *m)
{
	return &((const Gitaly__PreReceiveHookRequest *)m)->stdin;
}

static const ProtobufCBinaryData *post_stdin(const ProtobufCMessage *m)
{
	return &((const Gitaly__PostReceiveHookRequest *)m)->stdin;
}

static const ProtobufCBinaryData *tx_stdin(const ProtobufCMessage *m)
{
	return &((const Gitaly__ReferenceTransactionHookRequest *)m)->stdin;
}

enum which { PRE, POST, UPDATE, TX };

/* The shared body of the four handlers. */
static int run_hook(struct rpc_call *call, enum which which, struct error *err)
{
	struct service_deps *deps = rpc_call_service_data(call);
	const ProtobufCMessage *req = rpc_call_request(call);
	const Gitaly__Repository *repo = NULL;
	char **env = NULL, **opts = NULL;
	size_t n_env = 0, n_opts = 0;
	const ProtobufCBinaryData *first_in = NULL;
	stdin_of_fn of = NULL;
	send_fn send = NULL;
	struct strbuf in = STRBUF_INIT, out = STRBUF_INIT, err_out = STRBUF_INIT;
	struct error herr = ERROR_INIT;
	char *repo_path = NULL;
	int code = 0, ret = -1, rc = -1;

	if (!req) {
		error_set(err, STATUS_INTERNAL, "receiving first request: EOF");
		goto out;
	}
	switch (which) {
	case PRE: {
		const Gitaly__PreReceiveHookRequest *r = (const void *)req;
		repo = r->repository, env = r->environment_variables, n_env = r->n_environment_variables;
		opts = r->git_push_options, n_opts = r->n_git_push_options;
		first_in = &r->stdin, of = pre_stdin, send = send_pre;
		break;
	}
	case POST: {
		const Gitaly__PostReceiveHookRequest *r = (const void *)req;
		repo = r->repository, env = r->environment_variables, n_env = r->n_environment_variables;
		opts = r->git_push_options, n_opts = r->n_git_push_options;
		first_in = &r->stdin, of = post_stdin, send = send_post;
		break;
	}
	case UPDATE: {
		const Gitaly__UpdateHookRequest *r = (const void *)req;
		repo = r->repository, env = r->environment_variables, n_env = r->n_environment_variables;
		send = send_update;
		break;
	}
	case TX: {
		const Gitaly__ReferenceTransactionHookRequest *r = (const void *)req;
		repo = r->repository, env = r->environment_variables, n_env = r->n_environment_variables;
		first_in = &r->stdin, of = tx_stdin, send = send_tx;
		break;
	}
	}
	if (service_repo_path(deps, repo, 0, &repo_path, err) < 0)
		goto out;
	if (of && read_stdin(call, first_in, of, &in, err) < 0)
		goto out;
	strbuf_init(&out, MAX_HOOK_STDIN);
	strbuf_init(&err_out, MAX_HOOK_STDIN);
	struct hook_request hr = {
		.cfg = deps->cfg, .repo_path = repo_path, .relative_path = repo->relative_path,
		.gl_repository = repo->gl_repository, .gl_project_path = repo->gl_project_path,
		.env = (const char *const *)env, .n_env = n_env,
		.push_options = (const char *const *)opts, .n_push_options = n_opts,
		.out = &out, .err_out = &err_out,
	};
	switch (which) {
	case PRE:
		rc = hook_pre_receive(&hr, in.buf, in.len, &code, &herr);
		break;
	case POST:
		rc = hook_post_receive(&hr, in.buf, in.len, &code, &herr);
		break;
	case UPDATE: {
		const Gitaly__UpdateHookRequest *r = (const void *)req;
		char *ref = strndup((const char *)r->ref.data, r->ref.len);
		rc = hook_update(&hr, ref, r->old_value, r->new_value, &code, &herr);
		free(ref);
		break;
	}
	case TX: {
		const Gitaly__ReferenceTransactionHookRequest *r = (const void *)req;
		rc = hook_reference_transaction(&hr, r->state, in.buf, in.len, &herr);
		/* Upstream answers these as gRPC errors, not as exit codes. */
		if (rc < 0) {
			error_set(err, herr.code, "%s", herr.message);
			goto out;
		}
		break;
	}
	}
	if (rc < 0)
		ret = finish(call, send, &out, &err_out, 1, herr.message ? herr.message : "", err);
	else
		ret = finish(call, send, &out, &err_out, code, NULL, err);
out:
	error_release(&herr);
	free(repo_path);
	strbuf_release(&in);
	strbuf_release(&out);
	strbuf_release(&err_out);
	return ret;
}

static int pre_receive_rpc(struct rpc_call *call, struct error *err)
{
	return run_hook(call, PRE, err);
}

static int post_receive_rpc(struct rpc_call *call, struct error *err)
{
	return run_hook(call, POST, err);
}

static int update_rpc(struct rpc_call *call, struct error *err)
{
	return run_hook(call, UPDATE, err);
}

static int reference_transaction_rpc(struct rpc_call *call, struct error *err)
{
	return run_hook(call, TX, err);
}

#define M(name, type, req, resp, fn)                                                    \
	{ name, type, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn,  \
	  RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY }

static const struct rpc_method hook_methods[] = {
	M("PreReceiveHook", RPC_BIDI_STREAM, pre_receive_hook_request, pre_receive_hook_response,
	  pre_receive_rpc),
	M("PostReceiveHook", RPC_BIDI_STREAM, post_receive_hook_request,
	  post_receive_hook_response, post_receive_rpc),
	M("UpdateHook", RPC_SERVER_STREAM, update_hook_request, update_hook_response, update_rpc),
	M("ReferenceTransactionHook", RPC_BIDI_STREAM, reference_transaction_hook_request,
	  reference_transaction_hook_response, reference_transaction_rpc),
	M("PackObjectsHookWithSidechannel", RPC_UNARY, pack_objects_hook_with_sidechannel_request,
	  pack_objects_hook_with_sidechannel_response, hook_packobjects_rpc),
};

const struct rpc_service *hook_service(struct service_deps *deps)
{
	static struct rpc_service svc;
	struct error err = ERROR_INIT;

	if (hook_packobjects_setup(deps, &err) < 0) {
		log_msg(LOG_ERROR, "pack-objects cache disabled: %s", err.message);
		error_release(&err);
	}

	svc.name = "gitaly.HookService";
	svc.methods = hook_methods;
	svc.n_methods = sizeof(hook_methods) / sizeof(hook_methods[0]);
	svc.data = deps;
	return &svc;
}
