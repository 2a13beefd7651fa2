/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the pieces of the jobq command line share: the parsed
 * command line, the command table's shape, exit codes and output helpers.
 *
 * A command is one row of the table in jobq.c: its words ("kv" "set"), the
 * options it accepts beyond the global ones, how many arguments it takes
 * and the function that runs it. Adding a command is adding a row and a
 * function; the parser, --help and option checking come with the row.
 */
#ifndef JOBQ_CLI_H
#define JOBQ_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "internal.h"

/* Exit codes: the contract of CLI.md. */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,	  /* the message says what and why */
	EXIT_USAGE = 2,	  /* unknown command or option, bad argument */
	EXIT_TIMEOUT = 3, /* timed out, or nothing there with --nowait */
	EXIT_JOB = 4,	  /* a waited-for job failed (job commands) */
};

/*
 * Every option the program knows, whatever command it belongs to. The
 * parser accepts an option anywhere before "--" and checks afterwards that
 * the command allows it, so one table serves every command.
 */
enum cli_opt {
	OPT_HELP,
	OPT_VERSION,
	OPT_DIR,
	OPT_JSON,
	OPT_QUIET,
	OPT_TIMEOUT,
	OPT_NOWAIT,
	OPT_NOW,
	OPT_MAX_DEPTH,
	OPT_MAX_BYTES,
	OPT_PARALLEL,
	OPT_PRIORITY, /* the job options (cmd_job.c) */
	OPT_DELAY,
	OPT_RETRIES,
	OPT_QUEUE,
	OPT_AFTER,
	OPT_UNIQUE,
	OPT_DURABLE,
	OPT_STATE,
	OPT_TYPE,
	OPT_LIMIT,
	OPT_ALL,
	OPT_TYPES,
	OPT_CONCURRENCY,
	OPT_PROMETHEUS,
	OPT_OLDER, /* the job filters of ls, cancel and retry */
	OPT_NEWER,
	OPT_OFFSET,
	OPT_FROM,    /* jobq run --from FILE */
	OPT_FOLLOW,  /* jobq logs --follow */
	OPT_LEASE,   /* jobq lock --lease S */
	OPT_CLIENTS, /* jobq stats --clients */
	OPT__COUNT,
};

#define OPT_BIT(o) (1ull << (o))
_Static_assert(OPT__COUNT <= 64, "options are bits of a uint64_t");
#define OPTS_GLOBAL                                                            \
	(OPT_BIT(OPT_HELP) | OPT_BIT(OPT_DIR) | OPT_BIT(OPT_JSON) |            \
	 OPT_BIT(OPT_QUIET))

struct cli_optdef {
	const char *name; /* without the leading "--" */
	bool has_arg;
	const char *arg; /* what the value is, for help: "S", "N" */
	const char *help;
};

extern const struct cli_optdef cli_opts[OPT__COUNT];

/* Command flags. */
/*
 * CMD_CONNECT: run() talks to a manager. It connects (cli_connect()) only
 * once its arguments are checked, so a usage error is exit 2 whether or not
 * a manager runs.
 */
#define CMD_CONNECT (1u << 0)
#define CMD_ARGV    (1u << 1) /* takes "-- CMD [ARG...]" */
#define CMD_ARGV_OPTIONAL                                                      \
	(1u << 2) /* with CMD_ARGV: the command checks that "--" came */

struct cli;

struct cli_cmd {
	const char *group; /* "kv", "queue", or NULL for a one-word command */
	const char *name;
	int (*run)(struct cli *c);
	uint64_t opts; /* OPT_BIT()s accepted besides OPTS_GLOBAL */
	int min_args;
	int max_args;	   /* -1: any number */
	unsigned flags;	   /* CMD_* */
	const char *usage; /* the arguments, as the usage line shows them */
	const char *summary;
	const char *help; /* paragraphs after the usage line; may be NULL */
};

/* One invocation: what the parser found, and the connection. */
struct cli {
	const struct cli_cmd *cmd;
	const char *optval[OPT__COUNT]; /* NULL: not given; "" for flags */
	bool json;
	bool quiet;
	char **args; /* the command's arguments, command words excluded */
	int nargs;
	char **argv; /* after "--" for CMD_ARGV commands, NULL-terminated */
	int nargv;
	char dir[PATH_MAX]; /* the instance directory, resolved */
	jobq_t *q;	    /* set by cli_connect(); closed by main() */
};

/* ---- messages (common.c) ---------------------------------------------- */

/* "jobq: <message>" on stderr; returns EXIT_ERROR. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A usage error: the message and a pointer to --help; returns EXIT_USAGE. */
int cli_usage(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * cli_timeout_msg - a timeout or "nothing there": printed unless --quiet,
 * since scripts that poll expect it. Returns EXIT_TIMEOUT.
 */
int cli_timeout_msg(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * cli_fail - the message for a library error @err about @what ("queue
 * \"q\""), naming the manager's directory when the connection is the cause.
 * Returns the exit code for it (EXIT_ERROR).
 */
int cli_fail(const struct cli *c, const char *what, int err);
/* cli_fail(), but a full queue table is said with its size and remedy. */
int cli_queue_fail(const struct cli *c, const char *what, int err);
/* A submit got JOBQ_ELIMIT: says whether the job type table or the job
 * table is full, with its size and what helps. Returns 1. */
int cli_jobs_full(const struct cli *c, const char *what);

/* ---- connection ------------------------------------------------------- */

/*
 * cli_connect - open c->q on c->dir, unless it is open already. On failure
 * prints one line (naming the directory, and how to start a manager when none
 * runs) and returns EXIT_ERROR; returns 0 on success.
 */
int cli_connect(struct cli *c);

/* ---- arguments -------------------------------------------------------- */

/*
 * cli_timeout - the wait that --timeout S / --nowait ask for: seconds, 0 for
 * --nowait, @dflt when neither is given. Returns 0, or EXIT_USAGE after a
 * message for a malformed value.
 */
int cli_timeout(const struct cli *c, double dflt, double *out);

/* cli_parse_seconds - "0.25", "3" to seconds >= 0. Returns 0 or -EINVAL. */
int cli_parse_seconds(const char *s, double *out);

/* cli_parse_i64 / cli_parse_u64 - whole decimal strings. 0 or -EINVAL. */
int cli_parse_i64(const char *s, int64_t *out);
int cli_parse_u64(const char *s, uint64_t *out);

/* cli_check_name - a queue or lock name; EXIT_USAGE with a message or 0. */
int cli_check_name(const struct cli *c, const char *what, const char *name);

/* cli_check_key - a key/value key; EXIT_USAGE with a message or 0. */
int cli_check_key(const struct cli *c, const char *key);

/* Messages quote at most this many bytes of a name, then "...". */
#define CLI_QUOTE_MAX 64
/* A buffer for cli_text() of any key or name (each byte may take 4). */
#define CLI_TEXT_LEN (4 * JOBQ_KEY_MAX + 8)

/*
 * cli_text - @s made safe to print on a terminal: backslash, newline and
 * tab as \\, \n and \t; other control characters and bytes that are not
 * UTF-8 as \xNN. At most @max bytes of @s are shown, then "...". Writes
 * into @buf (@len bytes, cut short when it is too small) and returns it.
 */
const char *cli_text(const char *s, size_t max, char *buf, size_t len);

/*
 * cli_json_str - a JSON string of @s, whatever bytes it holds: bytes that
 * are not UTF-8 become U+FFFD. NULL only when out of memory.
 */
json_t *cli_json_str(const char *s);
/*
 * cli_submit_opts - the submit options (--priority, --delay, --timeout,
 * --retries, --queue, --after, --unique, --durable) into *opts, whose
 * after list points into @after. Returns 0, or EXIT_USAGE after a message.
 */
struct jobq_submit_opts;
int cli_submit_opts(struct cli *c, struct jobq_submit_opts *opts,
		    uint64_t after[64]);

/* ---- output ----------------------------------------------------------- */

/* cli_read_all - all of @fd to its end into a malloc'd buffer. 0 or -errno. */
int cli_read_all(int fd, char **buf, size_t *len);

/* cli_write_all - all @len bytes to @fd. 0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t len);

/*
 * cli_print_json - print @doc as one line on stdout and drop the reference.
 * Returns EXIT_OK, or EXIT_ERROR when @doc is NULL (out of memory) or stdout
 * cannot be written.
 */
int cli_print_json(json_t *doc);

/*
 * A JSON listing, {"KEY": [...]}, as every inspection command prints one:
 * cli_list_new() starts it (NULL when out of memory) and gives the array;
 * cli_list_push() appends @item, and on any failure (a NULL item included)
 * drops the whole document, so the caller's cli_print_json() reports it.
 */
json_t *cli_list_new(const char *key, json_t **arr);
void cli_list_push(json_t **doc, json_t *arr, json_t *item);

/* cli_flush - flush stdout; EXIT_ERROR with a message if it fails. */
int cli_flush(void);

/* JSON values shared by the commands. */
json_t *cli_json_time(uint64_t realtime_ns); /* RFC 3339, or null for 0 */
json_t *cli_json_u64(uint64_t v);

/*
 * cli_json_data - set @data (a string, when the bytes are valid UTF-8) or
 * "<name>_base64" on @obj for @len bytes at @p. Returns 0 or -ENOMEM.
 */
int cli_json_data(json_t *obj, const char *name, const void *p, size_t len);

/* cli_type_name - "bytes", "json", "text", "none", or the number. */
const char *cli_type_name(uint32_t type, char *buf, size_t len);

/* cli_format_duration - "3.2s", "5m03s", "2h10m", "3d04h" into @buf. */
void cli_format_duration(double seconds, char *buf, size_t len);

/*
 * cli_pid_gone - has process @pid exited? A zombie counts as gone: a
 * manager that is some shell's unreaped child has stopped all the same.
 */
bool cli_pid_gone(pid_t pid);

/* Seconds since @realtime_ns (0 when it is 0 or in the future). */
double cli_since(uint64_t realtime_ns);

/* ---- the commands (cmd_*.c) ------------------------------------------- */

int cmd_ping(struct cli *c);
int cmd_stats(struct cli *c);
int cmd_top(struct cli *c);
int cmd_shutdown(struct cli *c);
int cmd_put(struct cli *c);
int cmd_get(struct cli *c);
int cmd_queues(struct cli *c);
int cmd_queue_set(struct cli *c);
int cmd_kv_set(struct cli *c);
int cmd_kv_get(struct cli *c);
int cmd_kv_del(struct cli *c);
int cmd_kv_incr(struct cli *c);
int cmd_kv_ls(struct cli *c);
int cmd_lock(struct cli *c);
int cmd_locks(struct cli *c);
int cmd_submit(struct cli *c);
int cmd_wait(struct cli *c);
int cmd_show(struct cli *c);
int cmd_ls(struct cli *c);
int cmd_cancel(struct cli *c);
int cmd_retry(struct cli *c);
int cmd_kick(struct cli *c);
int cmd_pause(struct cli *c);
int cmd_resume(struct cli *c);
int cmd_queue_set_all(struct cli *c); /* --parallel, then cmd_queue_set() */
int cmd_queue_rm(struct cli *c);
int cmd_workers(struct cli *c);
int cmd_worker(struct cli *c);
int cmd_run(struct cli *c);  /* cmd_run.c */
int cmd_logs(struct cli *c); /* cmd_run.c */

#endif
