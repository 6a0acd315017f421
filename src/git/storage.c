/*
 * Storage housekeeping outside repositories: directory setup, the metadata
 * file with the filesystem id (written once, never replaced: the final step
 * is renameat2(RENAME_NOREPLACE), or link(2) where the filesystem lacks it),
 * the temp-dir sweep by age, temp-dir creation and statfs-based filesystem
 * names.
 */
#include "git/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "base/fsutil.h"

#define METADATA_MAX_SIZE 4096

int storage_uuid4(char buf[37], struct error *err)
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return error_set(err, STATUS_INTERNAL, "getrandom: %s", strerror(errno));
		}
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(buf, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
	return 0;
}

static char *join(const char *a, const char *b)
{
	char *out = NULL;

	if (asprintf(&out, "%s/%s", a, b) < 0)
		return NULL;
	return out;
}

/* Puts tmp in place as path unless path exists; tmp is gone afterwards. */
static int install_noreplace(const char *tmp, const char *path, int *existed)
{
	*existed = 0;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST) {
		*existed = 1;
		unlink(tmp);
		return 0;
	}
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* No RENAME_NOREPLACE on this filesystem: link(2) refuses to replace too. */
	if (link(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		if (e == EEXIST) {
			*existed = 1;
			return 0;
		}
		errno = e;
		return -1;
	}
	unlink(tmp);
	return 0;
}

static int write_metadata(const char *path, struct error *err)
{
	char *file = join(path, STORAGE_METADATA_FILE), *tmp = NULL, *body = NULL;
	char uuid[37];
	struct stat st;
	int fd = -1, existed, ret = -1;
	size_t len;

	if (!file) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (lstat(file, &st) == 0) {
		ret = 0; /* never rewritten */
		goto out;
	}
	if (errno != ENOENT) {
		error_set(err, STATUS_INTERNAL, "stat %s: %s", file, strerror(errno));
		goto out;
	}
	if (storage_uuid4(uuid, err) < 0)
		goto out;
	if (asprintf(&body, "{\"gitaly_filesystem_id\":\"%s\"}\n", uuid) < 0 ||
	    asprintf(&tmp, "%s.tmp-XXXXXX", file) < 0) {
		body = NULL;
		tmp = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		error_set(err, STATUS_INTERNAL, "create %s: %s", tmp, strerror(errno));
		goto out;
	}
	len = strlen(body);
	if (fchmod(fd, 0644) < 0 || write(fd, body, len) != (ssize_t)len || fsync(fd) < 0) {
		error_set(err, STATUS_INTERNAL, "write %s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	close(fd);
	fd = -1;
	if (install_noreplace(tmp, file, &existed) < 0) {
		error_set(err, STATUS_INTERNAL, "install %s: %s", file, strerror(errno));
		unlink(tmp);
		goto out;
	}
	ret = fsutil_fsync_dir(path, err);
out:
	if (fd >= 0)
		close(fd);
	free(file);
	free(tmp);
	free(body);
	return ret;
}

int storage_setup(const char *path, struct error *err)
{
	static const char *const dirs[] = { STORAGE_TMP_DIR, STORAGE_CACHE_DIR, STORAGE_STATE_DIR };
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return error_set(err, STATUS_NOT_FOUND, "storage does not exist: %s", path);
		return error_set(err, STATUS_INTERNAL, "stat %s: %s", path, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return error_set(err, STATUS_INTERNAL, "storage %s is not a directory", path);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *d = join(path, dirs[i]);
		int r;

		if (!d)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		r = fsutil_mkdir_p(d, 0700, err);
		free(d);
		if (r < 0)
			return -1;
	}
	return write_metadata(path, err);
}

/* Opens <path>/+gitaly/tmp without following a symlink at either step. */
static int open_tmp_dir(const char *path, int *out, struct error *err)
{
	int root, gitaly, tmp;

	*out = -1;
	root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return error_set(err, errno == ENOENT ? STATUS_NOT_FOUND : STATUS_INTERNAL,
				 "open storage %s: %s", path, strerror(errno));
	gitaly = openat(root, "+gitaly", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(root);
	if (gitaly < 0)
		return errno == ENOENT ? 0
				       : error_set(err, STATUS_INTERNAL, "open %s/+gitaly: %s",
						   path, strerror(errno));
	tmp = openat(gitaly, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(gitaly);
	if (tmp < 0)
		return errno == ENOENT ? 0
				       : error_set(err, STATUS_INTERNAL, "open %s/%s: %s", path,
						   STORAGE_TMP_DIR, strerror(errno));
	*out = tmp;
	return 0;
}

int storage_clean_tmp(const char *path, int64_t max_age_seconds, size_t *removed,
		      struct error *err)
{
	struct dirent *de;
	DIR *d = NULL;
	time_t cutoff = time(NULL) - (time_t)max_age_seconds;
	size_t count = 0;
	int fd, ret = -1;

	if (removed)
		*removed = 0;
	if (open_tmp_dir(path, &fd, err) < 0)
		return -1;
	if (fd < 0)
		return 0;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return error_set(err, STATUS_INTERNAL, "open %s/%s: %s", path, STORAGE_TMP_DIR,
				 strerror(errno));
	}
	while ((errno = 0, de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* raced with its removal */
		if (st.st_mtime >= cutoff)
			continue;
		if (fsutil_remove_tree_at(dirfd(d), de->d_name, err) < 0)
			goto out;
		count++;
	}
	if (errno) {
		error_set(err, STATUS_INTERNAL, "read %s/%s: %s", path, STORAGE_TMP_DIR,
			  strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (removed)
		*removed = count;
	closedir(d);
	return ret;
}

int storage_filesystem_id(const char *path, char **out, struct error *err)
{
	char *file = join(path, STORAGE_METADATA_FILE), *text = NULL;
	json_t *root = NULL;
	json_error_t jerr;
	const char *id;
	size_t len = 0;
	int ret = -1;

	*out = NULL;
	if (!file) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (fsutil_read_file(file, METADATA_MAX_SIZE, &text, &len, err) < 0)
		goto out;
	root = json_loadb(text, len, 0, &jerr);
	if (!root || !json_is_object(root)) {
		error_set(err, STATUS_INTERNAL, "parse %s: %s", file,
			  root ? "not a JSON object" : jerr.text);
		goto out;
	}
	id = json_string_value(json_object_get(root, "gitaly_filesystem_id"));
	*out = strdup(id ? id : "");
	if (!*out) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	ret = 0;
out:
	json_decref(root);
	free(text);
	free(file);
	return ret;
}

struct fs_magic {
	unsigned long magic;
	const char *name;
};

/* statfs f_type values and the names upstream reports for them. */
static const struct fs_magic fs_magics[] = {
	{ 0xadf5, "ADFS" },          { 0xadff, "AFFS" },
	{ 0x5346414f, "AFS" },       { 0x09041934, "ANON_INODE_FS" },
	{ 0x0187, "AUTOFS" },        { 0x62646576, "BDEVFS" },
	{ 0x42465331, "BEFS" },      { 0x1badface, "BFS" },
	{ 0x42494e4d, "BINFMTFS" },  { 0xcafe4a11, "BPF_FS" },
	{ 0x9123683e, "BTRFS" },     { 0x73727279, "BTRFS_TEST" },
	{ 0x27e0eb, "CGROUP" },      { 0x63677270, "CGROUP2" },
	{ 0xff534d42, "CIFS_NUMBER" }, { 0x73757245, "CODA" },
	{ 0x012ff7b7, "COH" },       { 0x28cd3d45, "CRAMFS" },
	{ 0x64626720, "DEBUGFS" },   { 0x1373, "DEVFS" },
	{ 0x1cd1, "DEVPTS" },        { 0xf15f, "ECRYPTFS" },
	{ 0xde5e81e4, "EFIVARFS" },  { 0x00414a53, "EFS" },
	{ 0x137d, "EXT" },           { 0xef51, "EXT2_OLD" },
	{ 0xef53, "EXT_2_3_4" },     { 0xf2f52010, "F2FS" },
	{ 0x65735546, "FUSE" },      { 0xbad1dea, "FUTEXFS" },
	{ 0x4244, "HFS" },           { 0x00c0ffee, "HOSTFS" },
	{ 0xf995e849, "HPFS" },      { 0x958458f6, "HUGETLBFS" },
	{ 0x9660, "ISOFS" },         { 0x72b6, "JFFS2" },
	{ 0x3153464a, "JFS" },       { 0x137f, "MINIX" },
	{ 0x138f, "MINIX2" },        { 0x2468, "MINIX2" },
	{ 0x2478, "MINIX22" },       { 0x4d5a, "MINIX3" },
	{ 0x19800202, "MQUEUE" },    { 0x4d44, "MSDOS" },
	{ 0x11307854, "MTD_INODE_FS" }, { 0x564c, "NCP" },
	{ 0x6969, "NFS" },           { 0x3434, "NILFS" },
	{ 0x6e736673, "NSFS" },      { 0x5346544e, "NTFS_SB" },
	{ 0x7461636f, "OCFS2" },     { 0x9fa1, "OPENPROM" },
	{ 0x794c7630, "OVERLAYFS" }, { 0x50495045, "PIPEFS" },
	{ 0x9fa0, "PROC" },          { 0x6165676c, "PSTOREFS" },
	{ 0x002f, "QNX4" },          { 0x68191122, "QNX6" },
	{ 0x858458f6, "RAMFS" },     { 0x52654973, "REISERFS" },
	{ 0x7275, "ROMFS" },         { 0x73636673, "SECURITYFS" },
	{ 0xf97cff8c, "SELINUX" },   { 0x43415d53, "SMACK" },
	{ 0x517b, "SMB" },           { 0x534f434b, "SOCKFS" },
	{ 0x73717368, "SQUASHFS" },  { 0x62656572, "SYSFS" },
	{ 0x012ff7b6, "SYSV2" },     { 0x012ff7b5, "SYSV4" },
	{ 0x01021994, "TMPFS" },     { 0x74726163, "TRACEFS" },
	{ 0x15013346, "UDF" },       { 0x00011954, "UFS" },
	{ 0x9fa2, "USBDEVICE" },     { 0x01021997, "V9FS" },
	{ 0xa501fcf5, "VXFS" },      { 0xabba1974, "XENFS" },
	{ 0x012ff7b4, "XENIX" },     { 0x58465342, "XFS" },
};

const char *storage_fs_type_name(unsigned long magic)
{
	for (size_t i = 0; i < sizeof(fs_magics) / sizeof(fs_magics[0]); i++)
		if (fs_magics[i].magic == magic)
			return fs_magics[i].name;
	return "unknown";
}

const char *storage_fs_type(const char *path)
{
	struct statfs sfs;

	if (statfs(path, &sfs) < 0)
		return "unknown";
	/* f_type is signed on some ABIs; compare as the 32-bit magic. */
	return storage_fs_type_name((unsigned long)(unsigned int)sfs.f_type);
}

int storage_tempdir(const char *path, const char *prefix, char **out, struct error *err)
{
	char *tmproot = join(path, STORAGE_TMP_DIR), *tmpl = NULL;
	int ret = -1;

	*out = NULL;
	if (!tmproot) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (prefix && strchr(prefix, '/')) {
		error_set(err, STATUS_INVALID_ARGUMENT, "temporary directory prefix \"%s\" contains '/'",
			  prefix);
		goto out;
	}
	if (fsutil_mkdir_p(tmproot, 0700, err) < 0)
		goto out;
	if (asprintf(&tmpl, "%s/%sXXXXXX", tmproot, prefix ? prefix : "") < 0) {
		tmpl = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (!mkdtemp(tmpl)) {
		error_set(err, STATUS_INTERNAL, "create temporary directory in %s: %s", tmproot,
			  strerror(errno));
		goto out;
	}
	*out = tmpl;
	tmpl = NULL;
	ret = 0;
out:
	free(tmproot);
	free(tmpl);
	return ret;
}
