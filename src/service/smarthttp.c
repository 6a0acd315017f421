/*
 * gitaly.SmartHTTPService: the four RPCs behind Workhorse's Git-over-HTTP.
 * InfoRefs* stream the "# service=" header and git's stateless reference
 * advertisement; PostUploadPackWithSidechannel runs a stateless upload-pack
 * between the sidechannel's request and response; PostReceivePack runs a
 * stateless receive-pack with the hooks, fed by the request stream. Codes
 * and messages follow upstream's smarthttp package.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/sidechannel.h"
#include "service/gitproto.h"
#include "service/smarthttp.h"
#include "service/util.h"
#include "smarthttp.pb-c.h"

/* Upstream's wording of a failed git: "exit status N" or "signal: killed". */
static void exit_text(const struct git_result *res, char *buf, size_t len)
{
	if (res->exit_code >= 0)
		snprintf(buf, len, "exit status %d", res->exit_code);
	else
		snprintf(buf, len, "signal: %s", res->signal == 9 ? "killed" : "terminated");
}

/* ---- InfoRefs -------------------------------------------------------------- */

static int send_info_refs(struct rpc_call *call, const uint8_t *buf, size_t len,
			  struct error *err)
{
	Gitaly__InfoRefsResponse m = GITALY__INFO_REFS_RESPONSE__INIT;

	m.data.data = (uint8_t *)buf;
	m.data.len = len;
	return rpc_call_send(call, &m.base, err);
}

static int info_refs_out(void *ctx, int band, const uint8_t *buf, size_t len, struct error *err)
{
	(void)band;
	while (len) {
		size_t n = len < SERVICE_CHUNK_SIZE ? len : SERVICE_CHUNK_SIZE;
		if (send_info_refs(ctx, buf, n, err) < 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

static int info_refs(struct rpc_call *call, const char *service, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__InfoRefsRequest *req = (const Gitaly__InfoRefsRequest *)rpc_call_request(call);
	struct gitproto_run run;
	struct git_cmd *cmd;
	char *repo_path = NULL;
	char hdr[64];
	int n, ret = -1;

	gitproto_run_init(&run);
	if (service_repo_path(deps, req->repository, 0, &repo_path, err) < 0)
		goto out;
	if (gitproto_check_config(req->git_config_options, req->n_git_config_options, err) < 0) {
		err->code = STATUS_UNKNOWN; /* upstream returns it unwrapped */
		goto out;
	}
	cmd = git_cmd_new(repo_path, service);
	git_cmd_flag(cmd, "--stateless-rpc");
	git_cmd_flag(cmd, "--advertise-refs");
	git_cmd_arg(cmd, repo_path);
	gitproto_apply(cmd, req->git_protocol, req->git_config_options, req->n_git_config_options);
	{
		/* Building errors (bad config keys) surface before any output. */
		struct error berr = ERROR_INIT;
		if (!git_cmd_argv(cmd, &berr)) {
			error_set(err, STATUS_INTERNAL, "cmd: %s", berr.message);
			error_release(&berr);
			git_cmd_free(cmd);
			goto out;
		}
	}
	/* "# service=git-<svc>\n" as a pkt-line, then a flush. */
	n = snprintf(hdr, sizeof(hdr), "%04x# service=git-%s\n0000",
		     (unsigned)(4 + strlen("# service=git-\n") + strlen(service)), service);
	if (send_info_refs(call, (const uint8_t *)hdr, (size_t)n, err) < 0) {
		git_cmd_free(cmd);
		goto out;
	}
	run.call = call;
	run.input = GITPROTO_IN_NONE;
	run.out = info_refs_out;
	run.out_ctx = call;
	if (gitproto_run_cmd(&run, cmd, err) < 0) {
		if (err->code != STATUS_CANCELLED && err->code != STATUS_DEADLINE_EXCEEDED) {
			error_prefix(err, run.started ? "send" : "cmd");
			err->code = STATUS_INTERNAL;
		}
		goto out;
	}
	if (run.res.exit_code != 0) {
		char t[64];
		exit_text(&run.res, t, sizeof(t));
		error_set(err, STATUS_INTERNAL, "wait: %s", t);
		goto out;
	}
	ret = 0;
out:
	gitproto_run_release(&run);
	free(repo_path);
	return ret;
}

static int info_refs_upload_pack(struct rpc_call *call, struct error *err)
{
	return info_refs(call, "upload-pack", err);
}

static int info_refs_receive_pack(struct rpc_call *call, struct error *err)
{
	return info_refs(call, "receive-pack", err);
}

/* ---- PostUploadPackWithSidechannel ------------------------------------------ */

static int sidechannel_raw_out(void *ctx, int band, const uint8_t *buf, size_t len,
			       struct error *err)
{
	(void)band;
	return yamux_stream_write(ctx, buf, len, err);
}

static int sidechannel_pipe_out(void *ctx, int fd, size_t len, struct error *err)
{
	return yamux_stream_write_pipe(ctx, fd, len, err);
}

static int post_upload_pack(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__PostUploadPackWithSidechannelRequest *req =
		(const Gitaly__PostUploadPackWithSidechannelRequest *)rpc_call_request(call);
	struct gitproto_run run;
	struct yamux_stream *st = NULL;
	struct git_cmd *cmd = NULL;
	char *repo_path = NULL;
	int ret = -1;

	gitproto_run_init(&run);
	if (service_repo_path(deps, req->repository, 0, &repo_path, err) < 0 ||
	    gitproto_check_config(req->git_config_options, req->n_git_config_options, err) < 0)
		goto out; /* InvalidArgument around the inner code, as upstream */
	if (rpc_sidechannel_open(call, &st, err) < 0) {
		error_prefix(err, "open sidechannel");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	cmd = git_cmd_new(repo_path, "upload-pack");
	git_cmd_flag(cmd, "--stateless-rpc");
	git_cmd_arg(cmd, repo_path);
	gitproto_apply(cmd, req->git_protocol, req->git_config_options, req->n_git_config_options);
	if (gitproto_pack_objects_hook(deps, call, req->repository, repo_path, "http", cmd,
				       err) < 0) {
		git_cmd_free(cmd);
		yamux_stream_free(st);
		error_prefix(err, "running upload-pack");
		goto out;
	}
	run.call = call;
	run.input = GITPROTO_IN_SIDECHANNEL;
	run.stream = st; /* the engine's from here on */
	run.out = sidechannel_raw_out;
	run.out_pipe = sidechannel_pipe_out;
	run.out_ctx = st;
	run.bulk_out = 1;
	if (gitproto_run_cmd(&run, cmd, err) < 0) {
		if (err->code != STATUS_CANCELLED && err->code != STATUS_DEADLINE_EXCEEDED) {
			error_prefix(err, "running upload-pack: %s",
				     run.started ? "copying stdout from upload-pack"
						 : "spawning upload-pack");
			err->code = STATUS_UNAVAILABLE;
		}
		goto out;
	}
	if (run.res.exit_code != 0 && !(run.res.exit_code > 0 && run.saw_deepen)) {
		char t[64];
		exit_text(&run.res, t, sizeof(t));
		error_set(err, STATUS_UNAVAILABLE, "running upload-pack: waiting for upload-pack: %s",
			  t);
		goto out;
	}
	rpc_call_log_field(call, "response_bytes", json_integer(run.response_bytes));
	{
		Gitaly__PostUploadPackWithSidechannelResponse resp =
			GITALY__POST_UPLOAD_PACK_WITH_SIDECHANNEL_RESPONSE__INIT;
		Gitaly__PackfileNegotiationStatistics st =
			GITALY__PACKFILE_NEGOTIATION_STATISTICS__INIT;

		gitproto_stats_proto(call, &run, &st);
		resp.packfile_negotiation_statistics = &st;
		if (rpc_call_send(call, &resp.base, err) < 0)
			goto out;
	}
	ret = 0;
out:
	gitproto_run_release(&run);
	free(repo_path);
	return ret;
}

/* ---- PostReceivePack ---------------------------------------------------------- */

static const ProtobufCBinaryData *receive_pack_data(const ProtobufCMessage *m)
{
	return &((const Gitaly__PostReceivePackRequest *)m)->data;
}

static int post_receive_pack_out(void *ctx, int band, const uint8_t *buf, size_t len,
				 struct error *err)
{
	(void)band;
	while (len) {
		Gitaly__PostReceivePackResponse m = GITALY__POST_RECEIVE_PACK_RESPONSE__INIT;
		size_t n = len < SERVICE_CHUNK_SIZE ? len : SERVICE_CHUNK_SIZE;

		m.data.data = (uint8_t *)buf;
		m.data.len = n;
		if (rpc_call_send(ctx, &m.base, err) < 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

static int post_receive_pack(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__PostReceivePackRequest *req =
		(const Gitaly__PostReceivePackRequest *)rpc_call_request(call);
	struct gitproto_receive_pack rq;
	struct gitproto_run run;
	int ret = -1;

	gitproto_run_init(&run);
	if (!req) {
		error_set(err, STATUS_INTERNAL, "EOF");
		goto out;
	}
	if (!req->gl_id || !*req->gl_id) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty GlId");
		goto out;
	}
	if (req->data.len) {
		error_set(err, STATUS_INVALID_ARGUMENT, "non-empty Data");
		goto out;
	}
	memset(&rq, 0, sizeof(rq));
	rq.repository = req->repository;
	rq.gl_id = req->gl_id;
	rq.gl_username = req->gl_username;
	rq.gl_repository = req->gl_repository;
	rq.git_protocol = req->git_protocol;
	rq.config = req->git_config_options;
	rq.n_config = req->n_git_config_options;
	rq.protocol = "http";
	rq.stateless = 1;
	rq.config_code = STATUS_UNKNOWN;
	rq.spawn_prefix = "spawning receive-pack";
	rq.spawn_code = STATUS_UNAVAILABLE;
	run.call = call;
	run.input = GITPROTO_IN_GRPC;
	run.stdin_of = receive_pack_data;
	run.out = post_receive_pack_out;
	run.out_ctx = call;
	if (gitproto_receive_pack(deps, call, &rq, &run, err) < 0)
		goto out;
	if (run.res.exit_code != 0) {
		char t[64];
		exit_text(&run.res, t, sizeof(t));
		error_set(err, STATUS_UNAVAILABLE, "waiting for receive-pack: %s", t);
		goto out;
	}
	ret = 0;
out:
	gitproto_run_release(&run);
	return ret;
}

#define M(name, type, req, resp, fn, op)                                               \
	{ name, type, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn, \
	  op, RPC_SCOPE_REPOSITORY }

static const struct rpc_method smarthttp_methods[] = {
	M("InfoRefsUploadPack", RPC_SERVER_STREAM, info_refs_request, info_refs_response,
	  info_refs_upload_pack, RPC_OP_ACCESSOR),
	M("InfoRefsReceivePack", RPC_SERVER_STREAM, info_refs_request, info_refs_response,
	  info_refs_receive_pack, RPC_OP_ACCESSOR),
	M("PostUploadPackWithSidechannel", RPC_UNARY, post_upload_pack_with_sidechannel_request,
	  post_upload_pack_with_sidechannel_response, post_upload_pack, RPC_OP_ACCESSOR),
	M("PostReceivePack", RPC_BIDI_STREAM, post_receive_pack_request,
	  post_receive_pack_response, post_receive_pack, RPC_OP_MUTATOR),
};

const struct rpc_service *smarthttp_service(struct service_deps *deps)
{
	static struct rpc_service svc;

	svc.name = "gitaly.SmartHTTPService";
	svc.methods = smarthttp_methods;
	svc.n_methods = sizeof(smarthttp_methods) / sizeof(smarthttp_methods[0]);
	svc.data = deps;
	return &svc;
}
