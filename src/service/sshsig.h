/*
 * Verification of SSH signatures (the "SSHSIG" format git writes with
 * gpg.format=ssh, see OpenSSH's PROTOCOL.sshsig) against the public half of
 * an OpenSSH private key file, the kind of key `[git] signing_key` names.
 * In-process with OpenSSL: ssh-ed25519 and ssh-rsa keys (rsa-sha2-256 and
 * rsa-sha2-512 signatures). GetCommitSignatures uses it to tell commits
 * signed by the server's own key (SIGNER_SYSTEM) from the others.
 */
#ifndef SERVICE_SSHSIG_H
#define SERVICE_SSHSIG_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct sshsig_key {
	uint8_t *blob; /* the public key in SSH wire format */
	size_t len;
};

/*
 * Reads the public key out of the OpenSSH private key file at path (its
 * public part is stored unencrypted, so passphrase-protected keys work
 * too). Returns 1 with key filled, 0 when the file is not an OpenSSH
 * private key (key untouched), -1 with err set when it cannot be read or
 * is malformed. Release with sshsig_key_release.
 */
int sshsig_key_load(const char *path, struct sshsig_key *key, struct error *err);

void sshsig_key_release(struct sshsig_key *key);

/*
 * 1 when armored (an "-----BEGIN SSH SIGNATURE-----" block) is a valid
 * signature of text by key, 0 otherwise (including unsupported key types
 * and malformed signatures).
 */
int sshsig_verify(const struct sshsig_key *key, const char *armored, size_t armored_len,
		  const char *text, size_t text_len);

#endif
