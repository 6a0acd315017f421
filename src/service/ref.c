/*
 * gitaly.RefService: the method table. The handlers live in ref_find.c
 * (single lookups), ref_list.c (listings), ref_tags.c (tags) and
 * ref_update.c (the mutators).
 */
#include "service/ref.h"

#include "ref.pb-c.h"
#include "service/ref_internal.h"

#define M(name, type, req, resp, fn, op)                                                       \
	{ name, type, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn, op,      \
	  RPC_SCOPE_REPOSITORY }

static const struct rpc_method ref_methods[] = {
	M("FindDefaultBranchName", RPC_UNARY, find_default_branch_name_request, find_default_branch_name_response, ref_find_default_branch_name_rpc, RPC_OP_ACCESSOR),
	M("FindLocalBranches", RPC_SERVER_STREAM, find_local_branches_request, find_local_branches_response, ref_find_local_branches_rpc, RPC_OP_ACCESSOR),
	M("FindAllBranches", RPC_SERVER_STREAM, find_all_branches_request, find_all_branches_response, ref_find_all_branches_rpc, RPC_OP_ACCESSOR),
	M("FindAllTags", RPC_SERVER_STREAM, find_all_tags_request, find_all_tags_response, ref_find_all_tags_rpc, RPC_OP_ACCESSOR),
	M("FindTag", RPC_UNARY, find_tag_request, find_tag_response, ref_find_tag_rpc, RPC_OP_ACCESSOR),
	M("FindAllRemoteBranches", RPC_SERVER_STREAM, find_all_remote_branches_request, find_all_remote_branches_response, ref_find_all_remote_branches_rpc, RPC_OP_ACCESSOR),
	M("RefExists", RPC_UNARY, ref_exists_request, ref_exists_response, ref_exists_rpc, RPC_OP_ACCESSOR),
	M("FindBranch", RPC_UNARY, find_branch_request, find_branch_response, ref_find_branch_rpc, RPC_OP_ACCESSOR),
	M("UpdateReferences", RPC_CLIENT_STREAM, update_references_request, update_references_response, ref_update_references_rpc, RPC_OP_MUTATOR),
	M("DeleteRefs", RPC_UNARY, delete_refs_request, delete_refs_response, ref_delete_refs_rpc, RPC_OP_MUTATOR),
	M("ListBranchNamesContainingCommit", RPC_SERVER_STREAM, list_branch_names_containing_commit_request, list_branch_names_containing_commit_response, ref_list_branch_names_containing_rpc, RPC_OP_ACCESSOR),
	M("ListTagNamesContainingCommit", RPC_SERVER_STREAM, list_tag_names_containing_commit_request, list_tag_names_containing_commit_response, ref_list_tag_names_containing_rpc, RPC_OP_ACCESSOR),
	M("GetTagSignatures", RPC_SERVER_STREAM, get_tag_signatures_request, get_tag_signatures_response, ref_get_tag_signatures_rpc, RPC_OP_ACCESSOR),
	M("GetTagMessages", RPC_SERVER_STREAM, get_tag_messages_request, get_tag_messages_response, ref_get_tag_messages_rpc, RPC_OP_ACCESSOR),
	M("ListRefs", RPC_SERVER_STREAM, list_refs_request, list_refs_response, ref_list_refs_rpc, RPC_OP_ACCESSOR),
	M("FindRefsByOID", RPC_UNARY, find_refs_by_oidrequest, find_refs_by_oidresponse, ref_find_refs_by_oid_rpc, RPC_OP_ACCESSOR),
};

const struct rpc_service *ref_service(struct service_deps *deps)
{
	static struct rpc_service svc;

	svc.name = "gitaly.RefService";
	svc.methods = ref_methods;
	svc.n_methods = sizeof(ref_methods) / sizeof(ref_methods[0]);
	svc.data = deps;
	return &svc;
}
