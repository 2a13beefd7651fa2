/* SPDX-License-Identifier: MIT */
/*
 * fuzz_json.c - job args as JSON: what jobq_submit() accepts as
 * JOBQ_T_JSON args (any JSON value, as jansson decodes it) and what
 * jobq_obj_json() makes of an object's payload. Whatever parses must dump
 * and parse again to an equal value, so that args survive the trip from
 * submitter to worker.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	jobq_obj_t obj = {.type = JOBQ_T_JSON, .len = size};
	json_t *v = NULL, *again;
	json_error_t e;
	char *text;
	int rc;

	if (!copy)
		return 0;
	/* An object's payload is NUL-terminated one byte past its length. */
	memcpy(copy, data, size);
	copy[size] = '\0';
	obj.data = copy;
	rc = jobq_obj_json(&obj, &v);
	if (rc && rc != -EINVAL)
		abort();
	if (!rc) {
		/* The same rule as the args check of jobq_submit(). */
		json_t *w = json_loadb(copy, size,
				       JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

		if (!w)
			abort();
		json_decref(w);
		text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (text) {
			again = json_loads(
			    text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
			if (!again || !json_equal(v, again))
				abort();
			json_decref(again);
			free(text);
		}
		json_decref(v);
	}
	free(copy);
	return 0;
}
