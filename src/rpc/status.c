/*
 * Typed error details and the google.rpc.Status encoding. A handler attaches
 * protobuf messages (gitaly.LimitError, gitaly.ReferenceExistsError, ...) to
 * its struct error as packed google.protobuf.Any values; when the call ends,
 * the whole error is serialized as google.rpc.Status for the
 * grpc-status-details-bin trailer, which is where upstream's clients look for
 * the typed detail.
 */
#include "rpc/status.h"

#include <stdio.h>
#include <stdlib.h>

#include "status.pb-c.h"

#define TYPE_URL_PREFIX "type.googleapis.com/"

int rpc_error_add_detail(struct error *err, const ProtobufCMessage *msg)
{
	uint8_t *value = NULL;
	char *type_url = NULL;
	size_t len;
	int ret = -1;

	if (!err || !msg || !msg->descriptor || !msg->descriptor->name)
		goto out;
	if (asprintf(&type_url, TYPE_URL_PREFIX "%s", msg->descriptor->name) < 0) {
		type_url = NULL;
		goto out;
	}
	len = protobuf_c_message_get_packed_size(msg);
	value = malloc(len ? len : 1);
	if (!value)
		goto out;
	if (protobuf_c_message_pack(msg, value) != len)
		goto out;
	if (error_add_detail(err, type_url, value, len) < 0)
		goto out;
	ret = 0;
out:
	free(type_url);
	free(value);
	return ret;
}

int rpc_status_encode(const struct error *err, struct strbuf *out)
{
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	Google__Protobuf__Any *anys = NULL;
	Google__Protobuf__Any **ptrs = NULL;
	size_t len;
	int ret = -1;

	if (!err || !out)
		goto out;
	if (err->n_details) {
		anys = calloc(err->n_details, sizeof(*anys));
		ptrs = calloc(err->n_details, sizeof(*ptrs));
		if (!anys || !ptrs)
			goto out;
	}
	for (size_t i = 0; i < err->n_details; i++) {
		const struct error_detail *d = &err->details[i];

		google__protobuf__any__init(&anys[i]);
		/* The packer only reads these; the casts drop const for its struct. */
		anys[i].type_url = (char *)(d->type_url ? d->type_url : "");
		anys[i].value.data = (uint8_t *)d->value;
		anys[i].value.len = d->len;
		ptrs[i] = &anys[i];
	}
	status.code = err->code;
	status.message = (char *)(err->message ? err->message : "");
	status.n_details = err->n_details;
	status.details = ptrs;

	len = google__rpc__status__get_packed_size(&status);
	if (strbuf_grow(out, len) < 0)
		goto out;
	if (google__rpc__status__pack(&status, (uint8_t *)out->buf + out->len) != len)
		goto out;
	out->len += len;
	out->buf[out->len] = '\0';
	ret = 0;
out:
	free(anys);
	free(ptrs);
	return ret;
}
