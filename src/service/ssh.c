/*
 * gitaly.SSHService: the RPCs gitlab-shell runs for git over SSH. Fetches
 * run `git upload-pack` (stdin and output over a bidi stream, or over a
 * sidechannel with stdout and stderr multiplexed as side-band-64k), with
 * upstream's negotiation timeout: the client's request must contain
 * "0009done\n" within [timeout] upload_pack_negotiation, else git is killed
 * and the RPC ends DeadlineExceeded. Pushes run `git receive-pack` with the
 * hooks; archives run `git upload-archive` whose option list must end with a
 * flush within upload_archive_negotiation. Final exit_status messages, codes
 * and messages follow upstream's ssh package.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/sidechannel.h"
#include "rpc/sidechannel.h"
#include "service/gitproto.h"
#include "service/ssh.h"
#include "service/util.h"
#include "ssh.pb-c.h"

#define HUNG_UP "fatal: the remote end hung up unexpectedly\n"

static void exit_text(const struct git_result *res, char *buf, size_t len)
{
	if (res->exit_code >= 0)
		snprintf(buf, len, "exit status %d", res->exit_code);
	else
		snprintf(buf, len, "signal: %s", res->signal == 9 ? "killed" : "terminated");
}

/* The exit status upstream reports for a failed git (-1 when signalled). */
static int exit_value(const struct git_result *res)
{
	return res->exit_code >= 0 ? res->exit_code : -1;
}

/*
 * Upstream's ValidateRepository: only the checks that need no disk (set,
 * storage, relative path); the rest comes with the repository lookup.
 */
static int validate_repo(const struct service_deps *deps, const Gitaly__Repository *repo,
			 struct error *err)
{
	char *path = NULL;

	if (repo && repo->storage_name && *repo->storage_name && repo->relative_path &&
	    *repo->relative_path)
		return 0;
	if (service_repo_path(deps, repo, 0, &path, err) < 0)
		return -1;
	free(path);
	return 0;
}

/* ---- outputs ------------------------------------------------------------------- */

/* Sends stdout or stderr as messages of type T (all three SSH responses
 * share the layout). */
#define DEFINE_SSH_OUT(fn, T, INIT)                                                       \
	static int fn(void *ctx, int band, const uint8_t *buf, size_t len, struct error *err) \
	{                                                                                 \
		while (len) {                                                             \
			T m = INIT;                                                       \
			size_t n = len < SERVICE_CHUNK_SIZE ? len : SERVICE_CHUNK_SIZE;   \
			ProtobufCBinaryData *d = band == 2 ? &m.stderr : &m.stdout;       \
			d->data = (uint8_t *)buf;                                         \
			d->len = n;                                                       \
			if (rpc_call_send(ctx, &m.base, err) < 0)                         \
				return -1;                                                \
			buf += n;                                                         \
			len -= n;                                                         \
		}                                                                         \
		return 0;                                                                 \
	}                                                                                 \
	static int fn##_status(struct rpc_call *call, int value, struct error *err)       \
	{                                                                                 \
		T m = INIT;                                                               \
		Gitaly__ExitStatus st = GITALY__EXIT_STATUS__INIT;                        \
		st.value = value;                                                         \
		m.exit_status = &st;                                                      \
		return rpc_call_send(call, &m.base, err);                                 \
	}

DEFINE_SSH_OUT(upload_pack_out, Gitaly__SSHUploadPackResponse,
	       GITALY__SSHUPLOAD_PACK_RESPONSE__INIT)
DEFINE_SSH_OUT(receive_pack_out, Gitaly__SSHReceivePackResponse,
	       GITALY__SSHRECEIVE_PACK_RESPONSE__INIT)
DEFINE_SSH_OUT(upload_archive_out, Gitaly__SSHUploadArchiveResponse,
	       GITALY__SSHUPLOAD_ARCHIVE_RESPONSE__INIT)

static int sideband_out(void *ctx, int band, const uint8_t *buf, size_t len, struct error *err)
{
	return sidechannel_sideband_write(ctx, band, buf, len, err);
}

static const ProtobufCBinaryData *upload_pack_stdin(const ProtobufCMessage *m)
{
	return &((const Gitaly__SSHUploadPackRequest *)m)->stdin;
}

static const ProtobufCBinaryData *receive_pack_stdin(const ProtobufCMessage *m)
{
	return &((const Gitaly__SSHReceivePackRequest *)m)->stdin;
}

static const ProtobufCBinaryData *upload_archive_stdin(const ProtobufCMessage *m)
{
	return &((const Gitaly__SSHUploadArchiveRequest *)m)->stdin;
}

/* ---- upload-pack ------------------------------------------------------------------ */

/* What the two upload-pack RPCs share (upstream's sshUploadPack). */
struct upload_pack_args {
	const Gitaly__Repository *repository;
	char *const *config;
	size_t n_config;
	const char *git_protocol;
};

/*
 * Runs upload-pack with the input and output set in run. *status receives
 * the exit status to report (0 when git did not run or succeeded).
 */
static int ssh_upload_pack(struct rpc_call *call, const struct upload_pack_args *a,
			   struct gitproto_run *run, int *status, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	struct git_cmd *cmd;
	char *repo_path = NULL;
	int ret = -1;

	*status = 0;
	if (service_repo_path(deps, a->repository, 0, &repo_path, err) < 0)
		goto out;
	if (gitproto_check_config(a->config, a->n_config, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	cmd = git_cmd_new(repo_path, "upload-pack");
	git_cmd_arg(cmd, repo_path);
	gitproto_apply(cmd, a->git_protocol, a->config, a->n_config);
	if (gitproto_pack_objects_hook(deps, call, (Gitaly__Repository *)a->repository, repo_path,
				       "ssh", cmd, err) < 0) {
		git_cmd_free(cmd);
		goto out;
	}
	run->call = call;
	run->send_stderr = 1;
	run->monitor_pkt = GITPROTO_PKT_DONE;
	run->monitor_timeout_ms = deps->cfg ? deps->cfg->timeout.upload_pack_negotiation_ms : 0;
	if (run->monitor_timeout_ms <= 0)
		run->monitor_timeout_ms = 10 * 60 * 1000;
	if (gitproto_run_cmd(run, cmd, err) < 0)
		goto out;
	if (run->res.exit_code != 0) {
		struct strbuf msg = STRBUF_INIT;
		char t[64];

		*status = exit_value(&run->res);
		if (run->negotiation_timeout) {
			error_set(err, STATUS_DEADLINE_EXCEEDED,
				  "waiting for packfile negotiation: context canceled");
			goto out;
		}
		if (run->stderr_text.len == strlen(HUNG_UP) &&
		    !memcmp(run->stderr_text.buf, HUNG_UP, strlen(HUNG_UP))) {
			error_set(err, STATUS_CANCELLED, "user canceled the fetch");
			goto out;
		}
		exit_text(&run->res, t, sizeof(t));
		strbuf_addf(&msg, "cmd wait: %s, stderr: ", t);
		service_go_quote(&msg, run->stderr_text.buf ? run->stderr_text.buf : "",
				 run->stderr_text.len);
		error_set(err, STATUS_INTERNAL, "%s", msg.buf ? msg.buf : "cmd wait");
		strbuf_release(&msg);
		goto out;
	}
	rpc_call_log_field(call, "response_bytes", json_integer(run->response_bytes));
	ret = 0;
out:
	free(repo_path);
	return ret;
}

static int ssh_upload_pack_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__SSHUploadPackRequest *req =
		(const Gitaly__SSHUploadPackRequest *)rpc_call_request(call);
	struct upload_pack_args a;
	struct gitproto_run run;
	int status = 0, ret = -1;

	gitproto_run_init(&run);
	if (!req)
		return error_set(err, STATUS_INTERNAL, "EOF");
	if (validate_repo(deps, req->repository, err) < 0)
		goto out;
	if (req->stdin.len) {
		error_set(err, STATUS_INVALID_ARGUMENT, "non-empty stdin in first request");
		goto out;
	}
	a.repository = req->repository;
	a.config = req->git_config_options;
	a.n_config = req->n_git_config_options;
	a.git_protocol = req->git_protocol;
	run.input = GITPROTO_IN_GRPC;
	run.stdin_of = upload_pack_stdin;
	run.out = upload_pack_out;
	run.out_ctx = call;
	if (ssh_upload_pack(call, &a, &run, &status, err) < 0) {
		struct error serr = ERROR_INIT;
		if (upload_pack_out_status(call, status, &serr) < 0)
			log_msg(LOG_ERROR, "send final status code: %s", serr.message);
		error_release(&serr);
		goto out;
	}
	ret = 0;
out:
	gitproto_run_release(&run);
	return ret;
}

static int ssh_upload_pack_sidechannel(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__SSHUploadPackWithSidechannelRequest *req =
		(const Gitaly__SSHUploadPackWithSidechannelRequest *)rpc_call_request(call);
	struct sidechannel_io io;
	struct upload_pack_args a;
	struct gitproto_run run;
	struct yamux_stream *st = NULL;
	int status = 0, ret = -1;

	gitproto_run_init(&run);
	if (validate_repo(deps, req->repository, err) < 0)
		goto out;
	if (rpc_sidechannel_open(call, &st, err) < 0) {
		error_prefix(err, "opennig sidechannel");
		err->code = STATUS_ABORTED;
		goto out;
	}
	sidechannel_io_from_stream(&io, st);
	a.repository = req->repository;
	a.config = req->git_config_options;
	a.n_config = req->n_git_config_options;
	a.git_protocol = req->git_protocol;
	run.input = GITPROTO_IN_SIDECHANNEL;
	run.stream = st; /* the engine frees it */
	run.out = sideband_out;
	run.out_ctx = &io;
	run.bulk_out = 1;
	if (ssh_upload_pack(call, &a, &run, &status, err) < 0) {
		if (run.stream) {
			/* git never started: nothing was written, drop the channel */
			yamux_stream_free(run.stream);
			run.stream = NULL;
		}
		goto out;
	}
	{
		Gitaly__SSHUploadPackWithSidechannelResponse resp =
			GITALY__SSHUPLOAD_PACK_WITH_SIDECHANNEL_RESPONSE__INIT;
		Gitaly__PackfileNegotiationStatistics ps =
			GITALY__PACKFILE_NEGOTIATION_STATISTICS__INIT;

		gitproto_stats_proto(call, &run, &ps);
		resp.packfile_negotiation_statistics = &ps;
		if (rpc_call_send(call, &resp.base, err) < 0)
			goto out;
	}
	ret = 0;
out:
	gitproto_run_release(&run);
	return ret;
}

/* ---- receive-pack ------------------------------------------------------------------ */

static int ssh_receive_pack(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__SSHReceivePackRequest *req =
		(const Gitaly__SSHReceivePackRequest *)rpc_call_request(call);
	struct gitproto_receive_pack rq;
	struct gitproto_run run;
	int ret = -1;

	gitproto_run_init(&run);
	if (!req)
		return error_set(err, STATUS_INTERNAL, "EOF");
	if (!req->gl_id || !*req->gl_id) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty GlId");
		goto out;
	}
	if (req->stdin.len) {
		error_set(err, STATUS_INVALID_ARGUMENT, "non-empty data in first request");
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
	rq.protocol = "ssh";
	rq.config_code = STATUS_INTERNAL;
	rq.spawn_prefix = "start cmd";
	rq.spawn_code = STATUS_INTERNAL;
	run.call = call;
	run.input = GITPROTO_IN_GRPC;
	run.stdin_of = receive_pack_stdin;
	run.out = receive_pack_out;
	run.out_ctx = call;
	run.send_stderr = 1;
	if (gitproto_receive_pack(deps, call, &rq, &run, err) < 0)
		goto out;
	if (run.res.exit_code != 0) {
		struct error serr = ERROR_INIT;
		char t[64];

		if (receive_pack_out_status(call, exit_value(&run.res), &serr) < 0)
			log_msg(LOG_ERROR, "send final status code: %s", serr.message);
		error_release(&serr);
		if (run.stderr_text.len == strlen(HUNG_UP) &&
		    !memcmp(run.stderr_text.buf, HUNG_UP, strlen(HUNG_UP))) {
			error_set(err, STATUS_CANCELLED, "user canceled the push");
			goto out;
		}
		exit_text(&run.res, t, sizeof(t));
		error_set(err, STATUS_INTERNAL, "cmd wait: %s", t);
		goto out;
	}
	ret = 0;
out:
	gitproto_run_release(&run);
	return ret;
}

/* ---- upload-archive ------------------------------------------------------------------ */

static int ssh_upload_archive(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__SSHUploadArchiveRequest *req =
		(const Gitaly__SSHUploadArchiveRequest *)rpc_call_request(call);
	struct gitproto_run run;
	struct git_cmd *cmd;
	char *repo_path = NULL;
	int ret = -1;

	gitproto_run_init(&run);
	if (!req)
		return error_set(err, STATUS_INTERNAL, "EOF");
	if (validate_repo(deps, req->repository, err) < 0)
		goto out;
	if (req->stdin.len) {
		error_set(err, STATUS_INVALID_ARGUMENT, "non-empty stdin in first request");
		goto out;
	}
	if (service_repo_path(deps, req->repository, 0, &repo_path, err) < 0)
		goto out;
	cmd = git_cmd_new(repo_path, "upload-archive");
	git_cmd_arg(cmd, repo_path);
	run.call = call;
	run.input = GITPROTO_IN_GRPC;
	run.stdin_of = upload_archive_stdin;
	run.out = upload_archive_out;
	run.out_ctx = call;
	run.send_stderr = 1;
	run.monitor_pkt = GITPROTO_PKT_FLUSH;
	run.monitor_timeout_ms = deps->cfg ? deps->cfg->timeout.upload_archive_negotiation_ms : 0;
	if (run.monitor_timeout_ms <= 0)
		run.monitor_timeout_ms = 60 * 1000;
	if (gitproto_run_cmd(&run, cmd, err) < 0)
		goto out;
	if (run.res.exit_code != 0) {
		char t[64];

		if (run.negotiation_timeout) {
			error_set(err, STATUS_DEADLINE_EXCEEDED,
				  "waiting for packfile negotiation: context canceled");
			goto out;
		}
		if (upload_archive_out_status(call, exit_value(&run.res), err) < 0)
			goto out;
		exit_text(&run.res, t, sizeof(t));
		error_set(err, STATUS_INTERNAL, "SSHUploadPack: %s", t);
		goto out;
	}
	if (upload_archive_out_status(call, 0, err) < 0)
		goto out;
	ret = 0;
out:
	gitproto_run_release(&run);
	free(repo_path);
	return ret;
}

#define M(name, type, req, resp, fn, op)                                               \
	{ name, type, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn, \
	  op, RPC_SCOPE_REPOSITORY }

static const struct rpc_method ssh_methods[] = {
	M("SSHUploadPack", RPC_BIDI_STREAM, sshupload_pack_request, sshupload_pack_response,
	  ssh_upload_pack_rpc, RPC_OP_ACCESSOR),
	M("SSHUploadPackWithSidechannel", RPC_UNARY, sshupload_pack_with_sidechannel_request,
	  sshupload_pack_with_sidechannel_response, ssh_upload_pack_sidechannel,
	  RPC_OP_ACCESSOR),
	M("SSHReceivePack", RPC_BIDI_STREAM, sshreceive_pack_request, sshreceive_pack_response,
	  ssh_receive_pack, RPC_OP_MUTATOR),
	M("SSHUploadArchive", RPC_BIDI_STREAM, sshupload_archive_request,
	  sshupload_archive_response, ssh_upload_archive, RPC_OP_ACCESSOR),
};

const struct rpc_service *ssh_service(struct service_deps *deps)
{
	static struct rpc_service svc;

	svc.name = "gitaly.SSHService";
	svc.methods = ssh_methods;
	svc.n_methods = sizeof(ssh_methods) / sizeof(ssh_methods[0]);
	svc.data = deps;
	return &svc;
}
