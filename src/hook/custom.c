/*
 * Discovery and execution of custom server hooks (see custom.h). Each hook is
 * a child process spawned without a shell; its output is collected into the
 * caller's capped buffers while stdin is fed, so a chatty hook never blocks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/process.h"
#include "hook/custom.h"

static int is_candidate(const char *path, const char *name)
{
	struct stat st;
	size_t l = strlen(name);

	if (!l || name[l - 1] == '~')
		return 0;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return access(path, X_OK) == 0;
}

static int push_path(char ***list, size_t *n, size_t *alloc, char *path, struct error *err)
{
	if (*n + 2 > *alloc) {
		size_t na = *alloc ? *alloc * 2 : 8;
		char **nl = realloc(*list, na * sizeof(char *));
		if (!nl) {
			free(path);
			return error_set(err, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		}
		*list = nl;
		*alloc = na;
	}
	(*list)[(*n)++] = path;
	(*list)[*n] = NULL;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the sorted candidates of directory dir. A missing dir adds nothing. */
static int add_dir(const char *dir, char ***list, size_t *n, size_t *alloc, struct error *err)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	size_t nn = 0, na = 0;
	struct dirent *de;
	int ret = -1;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (push_path(&names, &nn, &na, strdup(de->d_name), err) < 0)
			goto out;
	}
	if (nn)
		qsort(names, nn, sizeof(char *), cmp_str);
	for (size_t i = 0; i < nn; i++) {
		char path[4096];
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= sizeof(path))
			continue;
		if (is_candidate(path, names[i]) &&
		    push_path(list, n, alloc, strdup(path), err) < 0)
			goto out;
	}
	ret = 0;
out:
	hook_custom_list_free(names, nn);
	closedir(d);
	return ret;
}

int hook_custom_list(const char *repo_path, const char *global_dir, const char *name,
		     char ***out, size_t *n, struct error *err)
{
	char path[4096];
	size_t alloc = 0;

	*out = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/custom_hooks/%s", repo_path, name);
	if (is_candidate(path, name) && push_path(out, n, &alloc, strdup(path), err) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/custom_hooks/%s.d", repo_path, name);
	if (add_dir(path, out, n, &alloc, err) < 0)
		goto fail;
	if (global_dir && *global_dir) {
		snprintf(path, sizeof(path), "%s/%s.d", global_dir, name);
		if (add_dir(path, out, n, &alloc, err) < 0)
			goto fail;
	}
	return 0;
fail:
	hook_custom_list_free(*out, *n);
	*out = NULL;
	*n = 0;
	return -1;
}

void hook_custom_list_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* Runs one hook; *code gets its exit code. */
static int run_one(const char *path, const char *repo_path, const char *const *args,
		   size_t n_args, const char *const *env, const void *in, size_t in_len,
		   struct strbuf *out, struct strbuf *err_out, int *code, struct error *err)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	const char *argv[16];
	struct process_status st;
	pid_t pid = -1;
	int ret = -1;

	if (n_args > 14) {
		error_set(err, STATUS_INTERNAL, "too many hook arguments");
		goto out;
	}
	argv[0] = path;
	for (size_t i = 0; i < n_args; i++)
		argv[i + 1] = args[i];
	argv[n_args + 1] = NULL;
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 ||
	    pipe2(perr, O_CLOEXEC) < 0) {
		error_set(err, STATUS_INTERNAL, "pipe: %s", strerror(errno));
		goto out;
	}
	struct process_spawn_opts o = {
		.path = path, .argv = argv, .envp = env, .cwd = repo_path,
		.stdin_fd = pin[0], .stdout_fd = pout[1], .stderr_fd = perr[1], .new_pgroup = 1,
	};
	if (process_spawn(&o, &pid, err) < 0)
		goto out;
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	struct process_pump_io io = {
		.stdin_fd = pin[1], .stdin_data = in, .stdin_len = in_len,
		.stdout_fd = pout[0], .out = out, .stderr_fd = perr[0], .err_out = err_out,
	};
	pin[1] = pout[0] = perr[0] = -1; /* the pump closes them */
	if (process_pump(&io, err) < 0) {
		process_kill_group(pid);
		process_wait(pid, 0, &st);
		goto out;
	}
	if (process_wait(pid, 0, &st) < 0) {
		error_set(err, STATUS_INTERNAL, "waiting for hook %s", path);
		goto out;
	}
	*code = st.exited ? st.exit_code : -1;
	ret = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
	return ret;
}

int hook_custom_run(const char *repo_path, const char *global_dir, const char *name,
		    const char *const *args, size_t n_args, const char *const *env,
		    const void *stdin_data, size_t stdin_len, struct strbuf *out,
		    struct strbuf *err_out, int *exit_code, struct error *err)
{
	char **list = NULL;
	size_t n = 0;
	int ret = -1;

	*exit_code = 0;
	if (hook_custom_list(repo_path, global_dir, name, &list, &n, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int code = 0;
		if (run_one(list[i], repo_path, args, n_args, env, stdin_data, stdin_len, out,
			    err_out, &code, err) < 0)
			goto out;
		if (code != 0) {
			*exit_code = code;
			break;
		}
	}
	ret = 0;
out:
	hook_custom_list_free(list, n);
	return ret;
}
