/*
 * OpenPGP signing keys for GetCommitSignatures: the public keyring of a
 * binary secret key file (what `[git] signing_key` names when it is a GPG
 * key, as upstream reads it), so that gpgv can check signatures against it
 * without gpg, an agent or any state outside a temporary directory.
 */
#ifndef SERVICE_PGPKEY_H
#define SERVICE_PGPKEY_H

#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"

/*
 * Rewrites the transferable secret key in data (binary OpenPGP packets) as
 * a public keyring: secret (sub)key packets become public (sub)key packets
 * holding only their public material; user ids and signatures are kept;
 * anything else is dropped. Returns 1 with out filled, 0 when data is not
 * a version 4 secret key this understands.
 */
int pgpkey_public_keyring(const uint8_t *data, size_t len, struct strbuf *out);

/*
 * 1 when armored (a detached "-----BEGIN PGP SIGNATURE-----" block) is a
 * good signature of text by a key of keyring (from pgpkey_public_keyring),
 * as gpgv says; 0 otherwise, including when gpgv is not installed.
 * tmp_dir: where a private scratch directory is made (NULL: /tmp).
 */
int pgpkey_verify(const struct strbuf *keyring, const char *armored, size_t armored_len,
		  const char *text, size_t text_len, const char *tmp_dir);

#endif
