/* SPDX-License-Identifier: MIT */
/*
 * cmd_queue.c - jobq put, get, queues and queue set.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void qwhat(char *buf, size_t len, const char *queue)
{
	snprintf(buf, len, "queue \"%s\"", queue);
}

static int too_big(const struct cli *c, const char *queue, size_t len)
{
	char a[32], b[32];

	jobq__format_size(len, a, sizeof(a));
	jobq__format_size(jobq_max_object(c->q), b, sizeof(b));
	return cli_error("queue \"%s\": object of %s exceeds max-object %s "
			 "(jobqd --max-object)",
			 queue, a, b);
}

/*
 * A put that could not go in time: say which limit held it back. The
 * library answers JOBQ_EFULL for the store when it does not wait, but a
 * put that waited and timed out does not say why, so the queue's limits
 * are looked at: if they do not explain it, the store was full.
 */
static int put_blocked(const struct cli *c, const char *queue, size_t len,
		       double timeout, int err)
{
	struct jobq_queue_info qi;
	struct jobq_stats st;
	char after[64] = "";

	if (timeout > 0)
		snprintf(after, sizeof(after), " after waiting %gs", timeout);
	if (err != JOBQ_EFULL && !jobq_queue_info(c->q, queue, &qi)) {
		if (qi.max_depth && qi.depth >= qi.max_depth)
			return cli_timeout_msg(
			    c,
			    "queue \"%s\": full at max-depth %" PRIu64
			    "%s; nothing put (jobq queue set --max-depth)",
			    queue, qi.max_depth, after);
		if (qi.max_bytes && qi.bytes + len > qi.max_bytes)
			return cli_timeout_msg(
			    c,
			    "queue \"%s\": full at max-bytes %" PRIu64
			    "%s; nothing put (jobq queue set --max-bytes)",
			    queue, qi.max_bytes, after);
	}
	if (!jobq_stats(c->q, &st)) {
		char used[32], total[32];

		jobq__format_size(st.memory_used, used, sizeof(used));
		jobq__format_size(st.memory_total, total, sizeof(total));
		return cli_timeout_msg(
		    c,
		    "queue \"%s\": the store is full (%s of "
		    "%s used)%s; nothing put (jobqd --memory "
		    "SIZE makes a larger store)",
		    queue, used, total, after);
	}
	return cli_timeout_msg(c,
			       "queue \"%s\": the store is full%s; nothing "
			       "put (jobqd --memory SIZE makes a larger "
			       "store)",
			       queue, after);
}

int cmd_put(struct cli *c)
{
	const char *queue = c->args[0];
	char *buf = NULL, what[96];
	const void *data;
	size_t len;
	double timeout;
	int rc;

	if ((rc = cli_check_name(c, "queue", queue)) ||
	    (rc = cli_timeout(c, -1, &timeout)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	if (c->nargs > 1) {
		data = c->args[1];
		len = strlen(c->args[1]);
	} else {
		/* A bare `jobq put Q` at a prompt would wait in silence. */
		if (isatty(STDIN_FILENO) && !c->quiet)
			fprintf(stderr, "jobq: reading the object from the "
					"terminal; end it with Ctrl-D (or give "
					"DATA on the command line)\n");
		rc = cli_read_all(STDIN_FILENO, &buf, &len);
		if (rc)
			return cli_error("queue \"%s\": reading stdin: %s",
					 queue, strerror(-rc));
		data = buf;
	}
	if (len > jobq_max_object(c->q)) {
		rc = too_big(c, queue, len);
		goto out;
	}
	if (c->optval[OPT_DURABLE])
		rc = jobq_put_durable(c->q, queue, JOBQ_T_BYTES, data, len,
				      timeout);
	else
		rc = jobq_put(c->q, queue, JOBQ_T_BYTES, data, len, timeout);
	switch (rc) {
	case 0:
		break;
	case -EOPNOTSUPP:
		qwhat(what, sizeof(what), queue);
		rc = cli_error("%s: --durable: the manager's journal is on "
			       "tmpfs, in memory, so there is no disk to sync "
			       "(start jobqd with --journal FILE on a disk)",
			       what);
		break;
	case -E2BIG:
		rc = too_big(c, queue, len);
		break;
	case -EAGAIN:
	case -ETIMEDOUT:
	case JOBQ_EFULL:
		rc = put_blocked(c, queue, len, timeout, rc);
		break;
	default:
		qwhat(what, sizeof(what), queue);
		rc = cli_queue_fail(c, what, rc);
		break;
	}
out:
	free(buf);
	return rc;
}

int cmd_get(struct cli *c)
{
	const char *queue = c->args[0];
	jobq_obj_t obj = {0};
	char what[96], tbuf[16];
	double timeout;
	json_t *doc;
	int rc;

	if ((rc = cli_check_name(c, "queue", queue)) ||
	    (rc = cli_timeout(c, -1, &timeout)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_get(c->q, queue, &obj, timeout);
	if (rc == -EAGAIN)
		return cli_timeout_msg(c, "queue \"%s\": empty", queue);
	if (rc == -ETIMEDOUT)
		return cli_timeout_msg(
		    c, "queue \"%s\": nothing arrived in %gs", queue, timeout);
	if (rc) {
		qwhat(what, sizeof(what), queue);
		return cli_queue_fail(c, what, rc);
	}
	if (!c->json) {
		/* The object is taken: it must reach stdout or be reported. */
		rc = cli_write_all(STDOUT_FILENO, obj.data, obj.len);
		jobq_obj_free(&obj);
		if (rc)
			return cli_error("queue \"%s\": writing the object to "
					 "stdout: %s (the object was taken)",
					 queue, strerror(-rc));
		return EXIT_OK;
	}
	doc = json_pack("{s:s,s:s,s:I}", "queue", queue, "type",
			cli_type_name(obj.type, tbuf, sizeof(tbuf)), "size",
			(json_int_t)obj.len);
	if (doc && cli_json_data(doc, "data", obj.data, obj.len)) {
		json_decref(doc);
		doc = NULL;
	}
	jobq_obj_free(&obj);
	return cli_print_json(doc);
}

static int cmp_queue(const void *a, const void *b)
{
	return strcmp(((const struct jobq_queue_info *)a)->name,
		      ((const struct jobq_queue_info *)b)->name);
}

int cmd_queues(struct cli *c)
{
	struct jobq_queue_info *qs = NULL;
	size_t n = 0;
	int rc, w = 5;

	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_queues(c->q, &qs, &n);
	if (rc)
		return cli_fail(c, "queues", rc);
	if (n > 1)
		qsort(qs, n, sizeof(*qs), cmp_queue);
	if (c->json) {
		json_t *arr, *doc = cli_list_new("queues", &arr);

		for (size_t i = 0; doc && i < n; i++) {
			struct jobq_queue_info *qi = &qs[i];
			json_t *o = json_pack(
			    "{s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:o,s:o,s:o}", "name",
			    cli_json_str(qi->name), "depth",
			    cli_json_u64(qi->depth), "bytes",
			    cli_json_u64(qi->bytes), "max_depth",
			    cli_json_u64(qi->max_depth), "max_bytes",
			    cli_json_u64(qi->max_bytes), "getters",
			    (json_int_t)qi->getters, "putters",
			    (json_int_t)qi->putters, "total_put",
			    cli_json_u64(qi->total_put), "total_get",
			    cli_json_u64(qi->total_get), "unfinished",
			    cli_json_u64(qi->unfinished));

			cli_list_push(&doc, arr, o);
		}
		free(qs);
		return cli_print_json(doc);
	}
	/* Names print escaped: a stored name may hold any byte. */
	for (size_t i = 0; i < n; i++) {
		char t[CLI_TEXT_LEN];

		cli_text(qs[i].name, SIZE_MAX, t, sizeof(t));
		if ((int)strlen(t) > w)
			w = (int)strlen(t);
	}
	if (!c->quiet)
		printf("%-*s %10s %12s %8s %8s %12s %12s\n", w, "QUEUE",
		       "DEPTH", "BYTES", "GETTERS", "PUTTERS", "PUT", "GOT");
	for (size_t i = 0; i < n; i++) {
		struct jobq_queue_info *qi = &qs[i];
		char t[CLI_TEXT_LEN];

		printf("%-*s %10" PRIu64 " %12" PRIu64 " %8u %8u %12" PRIu64
		       " %12" PRIu64 "\n",
		       w, cli_text(qi->name, SIZE_MAX, t, sizeof(t)), qi->depth,
		       qi->bytes, qi->getters, qi->putters, qi->total_put,
		       qi->total_get);
	}
	free(qs);
	return cli_flush();
}

int cmd_queue_set(struct cli *c)
{
	const char *queue = c->args[0];
	const char *depth = c->optval[OPT_MAX_DEPTH];
	const char *bytes = c->optval[OPT_MAX_BYTES];
	struct jobq_queue_opts opts = {0};
	struct jobq_queue_info qi;
	char what[96];
	int rc;

	if ((rc = cli_check_name(c, "queue", queue)))
		return rc;
	if (!depth && !bytes)
		return cli_usage(c, "say which limit: --max-depth N, "
				    "--max-bytes SIZE or --parallel N");
	if (depth && cli_parse_u64(depth, &opts.max_depth))
		return cli_usage(c, "--max-depth \"%s\": not a whole number",
				 depth);
	if (bytes && jobq_parse_size(bytes, &opts.max_bytes))
		return cli_usage(c,
				 "--max-bytes \"%s\": not a size (like 64K, "
				 "16M, 1G)",
				 bytes);

	if ((rc = cli_connect(c)))
		return rc;

	/* A limit not named keeps the value it has. */
	qwhat(what, sizeof(what), queue);
	rc = jobq_queue_info(c->q, queue, &qi);
	if (rc == 0) {
		if (!depth)
			opts.max_depth = qi.max_depth;
		if (!bytes)
			opts.max_bytes = qi.max_bytes;
	} else if (rc != -ENOENT) {
		return cli_fail(c, what, rc);
	}
	rc = jobq_queue_open(c->q, queue, &opts);
	if (rc)
		return cli_queue_fail(c, what, rc);
	return EXIT_OK;
}

int cmd_queue_rm(struct cli *c)
{
	const char *queue = c->args[0];
	char what[96];
	int rc;

	if ((rc = cli_check_name(c, "queue", queue)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	qwhat(what, sizeof(what), queue);
	rc = jobq_queue_remove(c->q, queue);
	if (rc == -ENOENT)
		return cli_error("%s: no such queue", what);
	if (rc == -EBUSY)
		return cli_error("%s: jobs belong to it (removable once they "
				 "are finished and gone: jobq ls --queue, "
				 "jobqd --keep)",
				 what);
	if (rc < 0)
		return cli_fail(c, what, rc);
	if (c->json)
		return cli_print_json(
		    json_pack("{s:s,s:i}", "queue", queue, "dropped", rc));
	if (rc && !c->quiet)
		fprintf(stderr, "jobq: %s removed with %d object%s\n", what, rc,
			rc == 1 ? "" : "s");
	return EXIT_OK;
}
