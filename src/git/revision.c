/*
 * Revision, reference-name and object-id checks for request fields, with
 * upstream's messages (internal/git/revision.go ValidateRevision and
 * internal/git/reference.go ValidateReference, which follows git's own
 * check_refname_format). Inputs carry a length: protobuf bytes fields may
 * hold NUL bytes, which are refused explicitly.
 */
#include "git/revision.h"

#include <string.h>

static int bytes_eq(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && !memcmp(s, lit, len);
}

static int bytes_prefix(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len >= n && !memcmp(s, lit, n);
}

static int pseudo_revision(const char *rev, size_t len)
{
	return bytes_eq(rev, len, "--all") || bytes_eq(rev, len, "--not") ||
	       bytes_eq(rev, len, "--branches") || bytes_eq(rev, len, "--tags") ||
	       bytes_eq(rev, len, "--alternate-refs") || bytes_prefix(rev, len, "--branches=") ||
	       bytes_prefix(rev, len, "--tags=") || bytes_prefix(rev, len, "--glob=");
}

int revision_validate(const char *rev, size_t len, unsigned flags, struct error *err)
{
	const char *colon;

	if (!rev)
		len = 0;
	if ((flags & REVISION_ALLOW_PSEUDO) && pseudo_revision(rev, len))
		return 0;
	if (len && rev[0] == '-')
		return error_set(err, STATUS_INVALID_ARGUMENT, "revision can't start with '-'");
	if (len && memchr(rev, '\0', len))
		return error_set(err, STATUS_INVALID_ARGUMENT, "revision can't contain NUL");
	/* The path part of treeish:path may hold anything but NUL. */
	if ((flags & REVISION_ALLOW_PATH) && len && (colon = memchr(rev, ':', len)))
		len = (size_t)(colon - rev);
	if (!len) {
		if (flags & REVISION_ALLOW_EMPTY)
			return 0;
		return error_set(err, STATUS_INVALID_ARGUMENT, "empty revision");
	}
	for (size_t i = 0; i < len; i++)
		if (rev[i] == ' ' || rev[i] == '\t' || rev[i] == '\n' || rev[i] == '\r')
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "revision can't contain whitespace");
	if (memchr(rev, ':', len))
		return error_set(err, STATUS_INVALID_ARGUMENT, "revision can't contain ':'");
	if (memchr(rev, '\\', len))
		return error_set(err, STATUS_INVALID_ARGUMENT, "revision can't contain '\\'");
	return 0;
}

static int has_substr(const char *s, size_t len, const char *needle)
{
	return memmem(s, len, needle, strlen(needle)) != NULL;
}

int reference_validate(const char *name, size_t len, struct error *err)
{
	const char *p, *end;

	if (!name)
		len = 0;
	if (bytes_eq(name, len, "HEAD"))
		return error_set(err, STATUS_INVALID_ARGUMENT, "HEAD reference not allowed");
	if (!bytes_prefix(name, len, "refs/"))
		return error_set(err, STATUS_INVALID_ARGUMENT, "reference is not fully qualified");
	name += 5;
	len -= 5;
	if (!len)
		return error_set(err, STATUS_INVALID_ARGUMENT, "refs/ is not a valid reference");
	if (name[len - 1] == '/')
		return error_set(err, STATUS_INVALID_ARGUMENT, "reference must not end with slash");
	if (name[len - 1] == '.')
		return error_set(err, STATUS_INVALID_ARGUMENT, "reference must not end with dot");
	if (has_substr(name, len, "@{"))
		return error_set(err, STATUS_INVALID_ARGUMENT, "reference must not contain @{");
	if (has_substr(name, len, ".."))
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "reference must not contain double dots");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		switch (c) {
		case ' ':
		case '\t':
		case '\n':
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "reference must not contain space characters");
		case ':':
		case '?':
		case '[':
		case '\\':
		case '^':
		case '~':
		case '*':
		case 0x7f:
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "reference must not contain special characters");
		default:
			break;
		}
		if (c < 32)
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "reference must not contain control characters");
	}
	/* Per component: not empty, no leading dot, no ".lock" suffix. */
	p = name;
	end = name + len;
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *cend = slash ? slash : end;
		size_t clen = (size_t)(cend - p);

		if (!clen)
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "empty component is not allowed");
		if (p[0] == '.')
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "component must not start with dot");
		if (clen >= 5 && !memcmp(cend - 5, ".lock", 5))
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "component must not end with .lock");
		p = slash ? slash + 1 : end;
	}
	return 0;
}

int refname_validate(const char *name, size_t len, struct error *err)
{
	if (name && bytes_eq(name, len, "HEAD"))
		return 0;
	return reference_validate(name, len, err);
}

int oid_is_hex(const char *s, size_t len, const char *object_format)
{
	size_t want = 40;

	if (object_format && !strcmp(object_format, "sha256"))
		want = 64;
	else if (object_format && *object_format && strcmp(object_format, "sha1") != 0)
		return 0;
	if (!s || len != want)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return 1;
}
