/*
 * Administrative actions of the gateway: creating a repository through
 * Gitaly's RepositoryService (used by `make run` and for setting up demo
 * repositories without GitLab).
 */
#include "gateway/gateway.h"

#include "repository.pb-c.h"

int gateway_create_repository(struct gateway_config *cfg, const char *path, struct error *err)
{
	Gitaly__CreateRepositoryRequest req = GITALY__CREATE_REPOSITORY_REQUEST__INIT;
	Gitaly__Repository repo;
	struct gateway_repo r = { 0 };
	struct gateway_conn *conn = NULL;
	struct gitaly_call_opts o = { 0 };
	ProtobufCMessage *resp = NULL;
	int ret = -1;

	o.timeout_ms = 60000;
	if (gateway_repo_resolve(cfg, path, strlen(path), &r, err) < 0 ||
	    gateway_conn_get(r.storage, &conn, err) < 0)
		goto out;
	gateway_repo_message(&r, &repo);
	req.repository = &repo;
	if (gitaly_unary(conn->conn, "/gitaly.RepositoryService/CreateRepository", &req.base,
			 &gitaly__create_repository_response__descriptor, &o, &resp, err) < 0)
		goto out;
	ret = 0;
out:
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	if (conn)
		gateway_conn_put(r.storage, conn);
	gateway_repo_release(&r);
	return ret;
}
