/*
 * gitaly.RepositoryService: the method table. Every method of the proto
 * service is listed with its streaming type, op type and scope; methods not
 * implemented yet have a NULL handler and answer UNIMPLEMENTED. The handlers
 * live in the repository_*.c files, one concern each.
 */
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/service_internal.h"

#define M(name, type, req, resp, fn, op, scope)                                                \
	{ name, type, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn, op, scope }

static const struct rpc_method repository_methods[] = {
	M("RepositoryExists", RPC_UNARY, repository_exists_request, repository_exists_response, repository_exists_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("RepositorySize", RPC_UNARY, repository_size_request, repository_size_response, repository_size_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("RepositoryInfo", RPC_UNARY, repository_info_request, repository_info_response, repository_info_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("ObjectsSize", RPC_CLIENT_STREAM, objects_size_request, objects_size_response, repository_objects_size_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("ObjectFormat", RPC_UNARY, object_format_request, object_format_response, repository_object_format_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("ApplyGitattributes", RPC_UNARY, apply_gitattributes_request, apply_gitattributes_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("FetchRemote", RPC_UNARY, fetch_remote_request, fetch_remote_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("CreateRepository", RPC_UNARY, create_repository_request, create_repository_response, repository_create_rpc, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("GetArchive", RPC_SERVER_STREAM, get_archive_request, get_archive_response, repository_get_archive_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("HasLocalBranches", RPC_UNARY, has_local_branches_request, has_local_branches_response, repository_has_local_branches_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("FetchSourceBranch", RPC_UNARY, fetch_source_branch_request, fetch_source_branch_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("Fsck", RPC_UNARY, fsck_request, fsck_response, repository_fsck_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("WriteRef", RPC_UNARY, write_ref_request, write_ref_response, repository_write_ref_rpc, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("FindMergeBase", RPC_UNARY, find_merge_base_request, find_merge_base_response, repository_find_merge_base_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("CreateFork", RPC_UNARY, create_fork_request, create_fork_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("CreateRepositoryFromURL", RPC_UNARY, create_repository_from_urlrequest, create_repository_from_urlresponse, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("CreateBundle", RPC_SERVER_STREAM, create_bundle_request, create_bundle_response, repository_create_bundle_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("CreateBundleFromRefList", RPC_BIDI_STREAM, create_bundle_from_ref_list_request, create_bundle_from_ref_list_response, repository_create_bundle_from_ref_list_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("FetchBundle", RPC_CLIENT_STREAM, fetch_bundle_request, fetch_bundle_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("CreateRepositoryFromBundle", RPC_CLIENT_STREAM, create_repository_from_bundle_request, create_repository_from_bundle_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("GetConfig", RPC_SERVER_STREAM, get_config_request, get_config_response, repository_get_config_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("FindLicense", RPC_UNARY, find_license_request, find_license_response, repository_find_license_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("GetInfoAttributes", RPC_SERVER_STREAM, get_info_attributes_request, get_info_attributes_response, repository_get_info_attributes_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("CalculateChecksum", RPC_UNARY, calculate_checksum_request, calculate_checksum_response, repository_checksum_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("GetSnapshot", RPC_SERVER_STREAM, get_snapshot_request, get_snapshot_response, repository_get_snapshot_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("CreateRepositoryFromSnapshot", RPC_UNARY, create_repository_from_snapshot_request, create_repository_from_snapshot_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("GetRawChanges", RPC_SERVER_STREAM, get_raw_changes_request, get_raw_changes_response, repository_get_raw_changes_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("SearchFilesByContent", RPC_SERVER_STREAM, search_files_by_content_request, search_files_by_content_response, repository_search_files_by_content_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("SearchFilesByName", RPC_SERVER_STREAM, search_files_by_name_request, search_files_by_name_response, repository_search_files_by_name_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("RestoreCustomHooks", RPC_CLIENT_STREAM, restore_custom_hooks_request, restore_custom_hooks_response, repository_restore_custom_hooks_rpc, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("SetCustomHooks", RPC_CLIENT_STREAM, set_custom_hooks_request, set_custom_hooks_response, repository_set_custom_hooks_rpc, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("BackupCustomHooks", RPC_SERVER_STREAM, backup_custom_hooks_request, backup_custom_hooks_response, repository_backup_custom_hooks_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("GetCustomHooks", RPC_SERVER_STREAM, get_custom_hooks_request, get_custom_hooks_response, repository_get_custom_hooks_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("GetObjectDirectorySize", RPC_UNARY, get_object_directory_size_request, get_object_directory_size_response, repository_object_dir_size_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("RemoveRepository", RPC_UNARY, remove_repository_request, remove_repository_response, repository_remove_rpc, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("ReplicateRepository", RPC_UNARY, replicate_repository_request, replicate_repository_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("OptimizeRepository", RPC_UNARY, optimize_repository_request, optimize_repository_response, NULL, RPC_OP_MAINTENANCE, RPC_SCOPE_REPOSITORY),
	M("PruneUnreachableObjects", RPC_UNARY, prune_unreachable_objects_request, prune_unreachable_objects_response, NULL, RPC_OP_MAINTENANCE, RPC_SCOPE_REPOSITORY),
	M("SetFullPath", RPC_UNARY, set_full_path_request, set_full_path_response, repository_set_full_path_rpc, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("FullPath", RPC_UNARY, full_path_request, full_path_response, repository_full_path_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("RemoveAll", RPC_UNARY, remove_all_request, remove_all_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_STORAGE),
	M("BackupRepository", RPC_UNARY, backup_repository_request, backup_repository_response, NULL, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
	M("RestoreRepository", RPC_UNARY, restore_repository_request, restore_repository_response, NULL, RPC_OP_MUTATOR, RPC_SCOPE_REPOSITORY),
	M("GetFileAttributes", RPC_UNARY, get_file_attributes_request, get_file_attributes_response, repository_get_file_attributes_rpc, RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY),
};

void service_repository_init(struct rpc_service *svc, struct service_deps *deps)
{
	svc->name = "gitaly.RepositoryService";
	svc->methods = repository_methods;
	svc->n_methods = sizeof(repository_methods) / sizeof(repository_methods[0]);
	svc->data = deps;
}
