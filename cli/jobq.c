/* SPDX-License-Identifier: MIT */
/*
 * jobq.c - the jobq command line: the option and command tables, the
 * parser, --help and main().
 *
 * The parser is written by hand because the contract (CLI.md) lets options
 * stand anywhere on the line, before or after the command and its
 * arguments, except after "--", which hands the rest to a command run by
 * `jobq lock` (and later `jobq run`) untouched. getopt's permutation cannot
 * say "stop at --, but keep what follows as the command's argv".
 *
 * The walk is one pass over argv: a word starting with "--" is looked up in
 * the one table of every option (so its value, if it takes one, is known
 * before the command is), other words are positional. The first positional
 * words name the command; only then is each option checked against what the
 * command accepts, so `jobq --nowait get q` and `jobq get q --nowait` are
 * the same and `jobq queues --nowait` is a usage error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const struct cli_optdef cli_opts[OPT__COUNT] = {
    [OPT_HELP] = {"help", false, NULL, "show help and exit"},
    [OPT_VERSION] = {"version", false, NULL, "show the version and exit"},
    [OPT_DIR] = {"dir", true, "DIR", "the instance directory"},
    [OPT_JSON] = {"json", false, NULL, "print one JSON document"},
    [OPT_QUIET] = {"quiet", false, NULL,
		   "no headers or chatter: results and errors only"},
    [OPT_TIMEOUT] = {"timeout", true, "S",
		     "wait at most S seconds (fractions allowed)"},
    [OPT_NOWAIT] = {"nowait", false, NULL, "do not wait: same as --timeout 0"},
    [OPT_NOW] = {"now", false, NULL, "stop at once, without draining"},
    [OPT_MAX_DEPTH] = {"max-depth", true, "N",
		       "most objects the queue holds (0: unbounded)"},
    [OPT_MAX_BYTES] = {"max-bytes", true, "SIZE",
		       "most payload bytes it holds (0: unbounded)"},
    [OPT_PARALLEL] = {"parallel", true, "N",
		      "how many of the queue's jobs run at once"},
    [OPT_PRIORITY] = {"priority", true, "N", "higher runs first (default 0)"},
    [OPT_DELAY] = {"delay", true, "S", "ready only after S seconds"},
    [OPT_RETRIES] = {"retries", true, "N",
		     "attempts after the first (default 3, backoff from 1 s)"},
    [OPT_QUEUE] = {"queue", true, "Q", "the job queue (default \"default\")"},
    [OPT_AFTER] = {"after", true, "ID[,ID...]",
		   "run only after those jobs succeeded"},
    [OPT_UNIQUE] = {"unique", true, "KEY",
		    "while a job with KEY is not final, return its id"},
    [OPT_DURABLE] = {"durable", false, NULL,
		     "answer once it is synced to disk (not on tmpfs)"},
    [OPT_STATE] = {"state", true, "S", "only jobs in state S"},
    [OPT_TYPE] = {"type", true, "T", "only jobs of type T"},
    [OPT_LIMIT] = {"limit", true, "N", "at most N jobs"},
    [OPT_ALL] = {"all", false, NULL, "every dead job"},
    [OPT_TYPES] = {"types", true, "T[,T...]",
		   "serve only these built-in types"},
    [OPT_CONCURRENCY] = {"concurrency", true, "N", "jobs at once (default 1)"},
    [OPT_CLIENTS] = {"clients", false, NULL,
		     "each connected client: requests, refused, quotas"},
    [OPT_PROMETHEUS] = {"prometheus", false, NULL,
			"print the counters in the Prometheus text format"},
    [OPT_OLDER] = {"older", true, "S",
		   "only jobs created at least S seconds ago"},
    [OPT_NEWER] = {"newer", true, "S",
		   "only jobs created in the last S seconds"},
    [OPT_OFFSET] = {"offset", true, "N",
		    "skip the first N matches (a later page)"},
    [OPT_FROM] = {"from", true, "FILE",
		  "one command per line of FILE (- for stdin)"},
    [OPT_LEASE] = {"lease", true, "S",
		   "the manager takes the lock back after S seconds"},
    [OPT_FOLLOW] = {"follow", false, NULL,
		    "keep printing output as it arrives, until the job ends"},
};

#define T OPT_BIT(OPT_TIMEOUT) | OPT_BIT(OPT_NOWAIT)
/* The filters of ls, cancel and retry. */
#define FILTER                                                                 \
	(OPT_BIT(OPT_STATE) | OPT_BIT(OPT_TYPE) | OPT_BIT(OPT_QUEUE) |         \
	 OPT_BIT(OPT_OLDER) | OPT_BIT(OPT_NEWER))

static int cmd_help(struct cli *c);

#define SUBMIT_OPTS                                                            \
	(OPT_BIT(OPT_PRIORITY) | OPT_BIT(OPT_DELAY) | OPT_BIT(OPT_TIMEOUT) |   \
	 OPT_BIT(OPT_RETRIES) | OPT_BIT(OPT_QUEUE) | OPT_BIT(OPT_AFTER) |      \
	 OPT_BIT(OPT_UNIQUE) | OPT_BIT(OPT_DURABLE))

/*
 * The commands, in the order --help lists them.
 */
static const struct cli_cmd commands[] = {
    {NULL, "ping", cmd_ping, 0, 0, 0, CMD_CONNECT, "",
     "is a manager there: version, pid, uptime", NULL},
    {NULL, "put", cmd_put, T | OPT_BIT(OPT_DURABLE), 1, 2, CMD_CONNECT,
     "QUEUE [DATA] [--timeout S] [--nowait] [--durable]",
     "put one object on a queue",
     "Puts DATA when given ('' is the empty object), else everything read\n"
     "from stdin, as bytes. Waits while the queue is at its limits or the\n"
     "store is full. Exit 3 when that lasts past --timeout (or at once\n"
     "with --nowait). --durable returns only once the manager's journal\n"
     "is synced to disk, whatever jobqd --fsync says; with the journal on\n"
     "tmpfs there is no disk, and the put fails saying so."},
    {NULL, "get", cmd_get, T, 1, 1, CMD_CONNECT,
     "QUEUE [--timeout S] [--nowait]",
     "take one object and write its bytes to stdout",
     "Writes the object's bytes exactly, with no newline added. With\n"
     "--json prints {\"queue\",\"type\",\"size\",\"data\"} (\"data_base64\" "
     "when\n"
     "the bytes are not UTF-8). Exit 3 when nothing arrives in time."},
    {NULL, "queues", cmd_queues, 0, 0, 0, CMD_CONNECT, "",
     "each queue: depth, bytes, waiting getters and putters, totals", NULL},
    {"queue", "set", cmd_queue_set_all,
     OPT_BIT(OPT_MAX_DEPTH) | OPT_BIT(OPT_MAX_BYTES) | OPT_BIT(OPT_PARALLEL), 1,
     1, CMD_CONNECT, "QUEUE [--max-depth N] [--max-bytes SIZE] [--parallel N]",
     "set a queue's limits (creates it)",
     "A limit left out keeps its value; 0 means unbounded. SIZE takes\n"
     "the suffixes K, M, G. --parallel N: at most N of the queue's jobs\n"
     "run at once."},
    {"queue", "rm", cmd_queue_rm, 0, 1, 1, CMD_CONNECT, "QUEUE",
     "remove a queue and the objects it holds",
     "Frees the queue's record for other queues. Its blocked getters and\n"
     "putters fail; naming it again makes a new, empty queue. Refused\n"
     "while jobs belong to it. --json prints {\"queue\",\"dropped\"}."},
    {"kv", "set", cmd_kv_set, 0, 1, 2, CMD_CONNECT, "KEY [VALUE]",
     "store VALUE (else stdin) under KEY", NULL},
    {"kv", "get", cmd_kv_get, 0, 1, 1, CMD_CONNECT, "KEY",
     "print the value of KEY (exit 3 when there is none)",
     "Prints the bare value. With --json prints {\"key\",\"type\",\"size\",\n"
     "\"value\"} (\"value_base64\" when the bytes are not UTF-8)."},
    {"kv", "del", cmd_kv_del, 0, 1, 1, CMD_CONNECT, "KEY", "delete KEY", NULL},
    {"kv", "incr", cmd_kv_incr, 0, 1, 2, CMD_CONNECT, "KEY [BY]",
     "add BY (default 1) to a decimal value; print the new value",
     "A missing key counts as 0. BY may be negative."},
    {"kv", "ls", cmd_kv_ls, 0, 0, 1, CMD_CONNECT, "[PREFIX]",
     "list keys (that start with PREFIX)", NULL},
    {NULL, "lock", cmd_lock, T | OPT_BIT(OPT_LEASE), 1, 1,
     CMD_CONNECT | CMD_ARGV,
     "NAME [--timeout S] [--nowait] [--lease S] -- CMD [ARG...]",
     "run CMD while holding the named lock",
     "Takes the lock (exit 3 when --timeout passes first), runs CMD,\n"
     "releases the lock and exits with CMD's status (128+N when a signal\n"
     "N ended it; 127 when CMD cannot be found). The lock belongs to this\n"
     "jobq process: if it is killed, the manager releases the lock, and\n"
     "CMD dies with it. With --lease S the manager also takes the lock back\n"
     "S seconds after it was given, even if CMD still runs: for a holder\n"
     "that may be stopped or stuck (then jobq exits 1 and says so)."},
    {NULL, "locks", cmd_locks, 0, 0, 0, CMD_CONNECT, "",
     "each lock: kind, holder (pid), how long held, waiters",
     "With jobqd --backend, every host's holders and waiters, each holder's\n"
     "host (hostname:jobqd pid) beside its pid."},
    {NULL, "submit", cmd_submit, SUBMIT_OPTS, 1, 2, CMD_CONNECT,
     "TYPE [ARGS_JSON] [--priority N] [--delay S] [--timeout S] [--retries "
     "N] [--queue Q] [--after ID[,ID...]] [--unique KEY]",
     "submit a job; print its id",
     "ARGS_JSON (default {}) must be JSON: anything else is exit 2.\n"
     "--timeout S is the lease (default 300): a job running longer is\n"
     "taken back and counts as a failed attempt. --retries 0: one attempt\n"
     "only. With --unique KEY, while a job with KEY is not final its id is\n"
     "printed instead (--json says \"existing\": true).\n"
     "--durable returns only once the manager's journal is synced to\n"
     "disk, whatever jobqd --fsync says; with the journal on tmpfs there\n"
     "is no disk, and the submit fails saying so."},
    {NULL, "run", cmd_run, SUBMIT_OPTS | OPT_BIT(OPT_FROM), 0, 0,
     CMD_CONNECT | CMD_ARGV | CMD_ARGV_OPTIONAL,
     "[submit options] -- CMD [ARG...] | [submit options] --from FILE",
     "submit exec jobs: CMD here, or each line of FILE; print their ids",
     "The job runs CMD with this shell's working directory and\n"
     "environment, in a process group of its own. With --from FILE (- for\n"
     "stdin) every non-empty line is one job, run by sh -c, and the ids\n"
     "print one per line in the order of the lines. The submit options\n"
     "are those of submit, except that --retries defaults to 0: a command\n"
     "runs once unless asked. With `jobq queue set Q --parallel N`,\n"
     "`--queue Q` and `jobq wait` this is a task spooler:\n"
     "  jobq queue set build --parallel 4\n"
     "  jobq wait $(jobq run --queue build --from cmds.txt)\n"
     "runs the commands 4 at a time (given workers with room for 4:\n"
     "jobqd --workers 1 --worker-concurrency 4) and names each that failed.\n"
     "A command that exits non-zero or is killed is a failed job, whose\n"
     "error gives the status and the last line of stderr. A succeeded\n"
     "job's result keeps up to 64 KiB of each stream; `jobq logs ID` has\n"
     "all of it either way. --timeout S is the lease: a command running\n"
     "longer is killed with its process group."},
    {NULL, "logs", cmd_logs, OPT_BIT(OPT_FOLLOW), 1, 1, CMD_CONNECT,
     "ID [--follow]", "the output of an exec job",
     "Prints the job's stdout and stderr as they arrived, interleaved.\n"
     "With --follow keeps printing while the job runs and returns when it\n"
     "is final (exit as jobq wait: 0 succeeded, 4 failed). When the whole\n"
     "log is gone (the worker's instance directory was cleaned), prints\n"
     "the output kept in the result. With --json prints {\"id\", \"state\",\n"
     "\"output\"} (\"output_base64\" when it is not UTF-8) once done."},
    {NULL, "wait", cmd_wait, T, 1, -1, CMD_CONNECT,
     "ID... [--timeout S] [--nowait]",
     "wait until each job is final; print each result",
     "Results print in the order of the ids: JSON as one line, bytes as\n"
     "they are. Exit 0 when all succeeded, 4 when any is dead or was\n"
     "cancelled (its error on stderr), 3 when --timeout passes first,\n"
     "1 for an unknown id. On a terminal a progress bar shows on stderr\n"
     "while waiting for many."},
    {NULL, "show", cmd_show, 0, 1, 1, CMD_CONNECT, "ID",
     "every field of one job",
     "With --json the job object: id, type, queue, state, priority,\n"
     "attempts, args, result or error, created, started, finished (RFC\n"
     "3339, null when unset) and more."},
    {NULL, "ls", cmd_ls, FILTER | OPT_BIT(OPT_LIMIT) | OPT_BIT(OPT_OFFSET), 0,
     0, CMD_CONNECT,
     "[--state S] [--type T] [--queue Q] [--older S] [--newer S] "
     "[--limit N] [--offset N]",
     "jobs, newest first",
     "States: waiting, delayed, ready, running, succeeded, failed, dead,\n"
     "cancelled. Filters combine; --limit and --offset page through the\n"
     "matches (when more match than are shown, stderr says how to see the\n"
     "next page). With --json {\"jobs\": [...], \"total\": N}."},
    {NULL, "cancel", cmd_cancel, FILTER, 0, -1, CMD_CONNECT,
     "[ID...] [--state S] [--type T] [--queue Q] [--older S] [--newer S]",
     "cancel queued or running jobs",
     "A queued job is cancelled at once; a running one's worker is told,\n"
     "and killed when it does not stop within 5 seconds. Without IDs, every\n"
     "job the filters match that is not final is cancelled (at least one\n"
     "filter is needed)."},
    {NULL, "retry", cmd_retry, FILTER, 0, -1, CMD_CONNECT,
     "[ID...] [--state S] [--type T] [--queue Q] [--older S] [--newer S]",
     "run failed, dead or cancelled jobs again (attempts from 0)",
     "Without IDs, every failed, dead or cancelled job the filters match\n"
     "(at least one filter is needed)."},
    {NULL, "kick", cmd_kick, OPT_BIT(OPT_ALL), 0, 1, CMD_CONNECT,
     "[ID | --all]", "make a dead job (or every one) ready again", NULL},
    {NULL, "pause", cmd_pause, 0, 1, 1, CMD_CONNECT, "QUEUE",
     "stop handing out a queue's jobs", NULL},
    {NULL, "resume", cmd_resume, 0, 1, 1, CMD_CONNECT, "QUEUE",
     "hand out a paused queue's jobs again", NULL},
    {NULL, "workers", cmd_workers, 0, 0, 0, CMD_CONNECT, "",
     "each worker: pid, job types, running jobs, done, failed, uptime", NULL},
    {NULL, "worker", cmd_worker, OPT_BIT(OPT_TYPES) | OPT_BIT(OPT_CONCURRENCY),
     0, 0, CMD_CONNECT, "[--types T[,T...]] [--concurrency N]",
     "run a worker for the built-in job types here",
     "Serves every built-in type, or those --types names (echo, sleep,\n"
     "fail, exec, file.copy, file.read, file.write, file.checksum,\n"
     "net.request, http.get), N jobs at once, until SIGTERM or SIGINT (then\n"
     "it finishes its running jobs) or until the manager stops."},
    {NULL, "stats", cmd_stats, OPT_BIT(OPT_PROMETHEUS) | OPT_BIT(OPT_CLIENTS),
     0, 0, CMD_CONNECT, "[--prometheus] [--clients]",
     "counters and memory: used, free, clients, queues, locks, keys, jobs",
     "--prometheus prints the counters, every queue and every worker in\n"
     "the Prometheus text format (version 0.0.4), for a node exporter's\n"
     "textfile collector or a scrape. --clients lists each connected\n"
     "client: pid, uid, name, requests, malformed ones (BAD), requests\n"
     "refused by a quota, and its waiting requests, queues and locks\n"
     "against its quotas (--json: {\"clients\": [...]})."},
    {NULL, "top", cmd_top, 0, 0, 0, CMD_CONNECT, "",
     "a live view of queues, jobs, running jobs and workers",
     "Redraws every second from the store (no request to the manager);\n"
     "q quits. Not on a terminal it prints one snapshot and exits."},
    {NULL, "shutdown", cmd_shutdown, OPT_BIT(OPT_NOW) | T, 0, 0, CMD_CONNECT,
     "[--now] [--timeout S] [--nowait]", "stop the manager",
     "Gracefully unless --now. Waits until the manager has exited (at\n"
     "most --timeout S, default 30; --nowait returns once it accepted)."},
    {NULL, "help", cmd_help, 0, 0, 2, 0, "[COMMAND]",
     "help for the program or a command", NULL},
};

#undef T
#undef SUBMIT_OPTS
#undef FILTER

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char *prog = "jobq";

/* ---- help -------------------------------------------------------------- */

static void print_cmd_name(FILE *f, const struct cli_cmd *cmd)
{
	if (cmd->group)
		fprintf(f, "%s %s", cmd->group, cmd->name);
	else
		fprintf(f, "%s", cmd->name);
}

static void print_usage_line(FILE *f, const struct cli_cmd *cmd)
{
	static const char global[] = "[--dir DIR] [--json] [--quiet]";
	const char *dashes = strstr(cmd->usage, "-- ");

	fprintf(f, "usage: %s ", prog);
	print_cmd_name(f, cmd);
	/* Options stand before "--": what follows it is another command's. */
	if (dashes)
		fprintf(f, " %.*s%s %s\n", (int)(dashes - cmd->usage),
			cmd->usage, global, dashes);
	else
		fprintf(f, "%s%s %s\n", *cmd->usage ? " " : "", cmd->usage,
			global);
}

static void print_options(FILE *f, uint64_t mask)
{
	/* Commands that submit jobs take --timeout as the job's lease, not
	 * as how long the command waits. */
	bool submits = mask & OPT_BIT(OPT_PRIORITY);

	for (int i = 0; i < OPT__COUNT; i++) {
		const struct cli_optdef *o = &cli_opts[i];
		const char *help = o->help;
		char left[40];

		if (!(mask & OPT_BIT(i)))
			continue;
		if (i == OPT_TIMEOUT && submits)
			help = "the lease: a job running longer than S seconds "
			       "is taken back and retried (default 300)";
		snprintf(left, sizeof(left), "--%s%s%s", o->name,
			 o->has_arg ? " " : "", o->has_arg ? o->arg : "");
		fprintf(f, "  %-18s %s\n", left, help);
	}
}

static void print_cmd_help(const struct cli_cmd *cmd)
{
	print_usage_line(stdout, cmd);
	printf("\n%s.\n", cmd->summary);
	if (cmd->help)
		printf("\n%s\n", cmd->help);
	printf("\noptions:\n");
	print_options(stdout, cmd->opts | OPTS_GLOBAL);
}

static void print_group_help(FILE *f, const char *group)
{
	fprintf(f, "usage: %s %s COMMAND [ARGS] [options]\n\ncommands:\n", prog,
		group);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct cli_cmd *cmd = &commands[i];
		char left[64];

		if (!cmd->group || strcmp(cmd->group, group))
			continue;
		snprintf(left, sizeof(left), "%s %s", cmd->name, cmd->usage);
		fprintf(f, "  %-26s %s\n", left, cmd->summary);
	}
	fprintf(f, "\n'%s %s COMMAND --help' tells more.\n", prog, group);
}

static void print_main_help(FILE *f)
{
	fprintf(f,
		"usage: %s COMMAND [ARGS] [options]\n"
		"\n"
		"The command line of jobq: jobs, queues, a key/value store and "
		"locks\n"
		"shared through a jobqd manager.\n"
		"\n"
		"commands:\n",
		prog);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct cli_cmd *cmd = &commands[i];
		char left[64];

		if (cmd->group)
			snprintf(left, sizeof(left), "%s %s", cmd->group,
				 cmd->name);
		else
			snprintf(left, sizeof(left), "%s", cmd->name);
		fprintf(f, "  %-12s %s\n", left, cmd->summary);
	}
	fprintf(f,
		"\n"
		"global options (anywhere on the line, but not after --):\n");
	print_options(f, OPTS_GLOBAL | OPT_BIT(OPT_VERSION));
	fprintf(f,
		"\n"
		"The instance directory is --dir, else $JOBQ_DIR, else\n"
		"$XDG_RUNTIME_DIR/jobq, else /tmp/jobq-$UID.\n"
		"\n"
		"exit codes: 0 ok, 1 error, 2 usage, 3 timed out or nothing "
		"there,\n"
		"4 a waited-for job did not succeed.\n"
		"\n"
		"'%s COMMAND --help' tells more about a command.\n",
		prog);
}

static bool is_group(const char *word)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (commands[i].group && !strcmp(commands[i].group, word))
			return true;
	return false;
}

/*
 * find_command - the command named by @words (1 or 2 of them). *used gets
 * how many words the name took. NULL when there is none.
 */
static const struct cli_cmd *find_command(char **words, int n, int *used)
{
	if (n < 1)
		return NULL;
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct cli_cmd *cmd = &commands[i];

		if (!cmd->group && !strcmp(cmd->name, words[0])) {
			*used = 1;
			return cmd;
		}
		if (cmd->group && n >= 2 && !strcmp(cmd->group, words[0]) &&
		    !strcmp(cmd->name, words[1])) {
			*used = 2;
			return cmd;
		}
	}
	return NULL;
}

/* `jobq help [COMMAND]`: the same text as --help. */
static int cmd_help(struct cli *c)
{
	const struct cli_cmd *cmd;
	int used;

	if (c->nargs == 0) {
		print_main_help(stdout);
		return EXIT_OK;
	}
	cmd = find_command(c->args, c->nargs, &used);
	if (cmd && used == c->nargs) {
		print_cmd_help(cmd);
		return EXIT_OK;
	}
	if (c->nargs == 1 && is_group(c->args[0])) {
		print_group_help(stdout, c->args[0]);
		return EXIT_OK;
	}
	return cli_usage(c, "no command \"%s%s%s\"", c->args[0],
			 c->nargs > 1 ? " " : "",
			 c->nargs > 1 ? c->args[1] : "");
}

/* ---- parsing ----------------------------------------------------------- */

static int find_option(const char *name, size_t len)
{
	for (int i = 0; i < OPT__COUNT; i++)
		if (strlen(cli_opts[i].name) == len &&
		    !strncmp(cli_opts[i].name, name, len))
			return i;
	return -1;
}

/* A word that is an argument though it starts with '-': "-" and "-5". */
static bool is_dash_argument(const char *s)
{
	return s[1] == '\0' || (s[1] >= '0' && s[1] <= '9') || s[1] == '.';
}

/*
 * run - parse @argv into @c and run the command. @words and @tail have
 * room for argc + 1 pointers each. Returns the exit code.
 */
static int run(struct cli *c, int argc, char **argv, char **words, char **tail)
{
	int nwords = 0, ntail = 0, used = 0;
	bool after_dd = false;

	for (int i = 1; i < argc; i++) {
		char *arg = argv[i];
		const char *eq;
		size_t len;
		int opt;

		if (after_dd) {
			tail[ntail++] = arg;
			continue;
		}
		if (!strcmp(arg, "--")) {
			after_dd = true;
			continue;
		}
		if (arg[0] != '-' || is_dash_argument(arg)) {
			words[nwords++] = arg;
			continue;
		}
		if (!strcmp(arg, "-h")) {
			c->optval[OPT_HELP] = "";
			continue;
		}
		if (arg[1] != '-')
			return cli_usage(NULL, "unknown option \"%s\"", arg);
		eq = strchr(arg + 2, '=');
		len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		opt = find_option(arg + 2, len);
		if (opt < 0)
			return cli_usage(NULL, "unknown option \"%.*s\"",
					 (int)len + 2, arg);
		if (cli_opts[opt].has_arg) {
			if (eq)
				c->optval[opt] = eq + 1;
			else if (i + 1 < argc)
				c->optval[opt] = argv[++i];
			else
				return cli_usage(
				    NULL, "option --%s needs a value (%s)",
				    cli_opts[opt].name, cli_opts[opt].arg);
		} else {
			if (eq)
				return cli_usage(NULL,
						 "option --%s takes no value",
						 cli_opts[opt].name);
			c->optval[opt] = "";
		}
	}
	c->json = c->optval[OPT_JSON] != NULL;
	c->quiet = c->optval[OPT_QUIET] != NULL;

	if (c->optval[OPT_VERSION]) {
		if (c->json)
			return cli_print_json(
			    json_pack("{s:s}", "version", JOBQ_VERSION_STRING));
		printf("jobq %s\n", JOBQ_VERSION_STRING);
		return cli_flush();
	}
	if (nwords == 0) {
		if (c->optval[OPT_HELP]) {
			print_main_help(stdout);
			return cli_flush();
		}
		if (ntail == 0) {
			print_main_help(stderr);
			return EXIT_USAGE;
		}
	}

	c->cmd = find_command(words, nwords, &used);
	if (!c->cmd) {
		if (nwords >= 1 && is_group(words[0])) {
			if (nwords == 1 && c->optval[OPT_HELP]) {
				print_group_help(stdout, words[0]);
				return cli_flush();
			}
			if (nwords == 1) {
				print_group_help(stderr, words[0]);
				return EXIT_USAGE;
			}
			return cli_usage(NULL, "unknown command \"%s %s\"",
					 words[0], words[1]);
		}
		return cli_usage(NULL, "unknown command \"%s\"",
				 nwords ? words[0] : tail[0]);
	}
	if (c->optval[OPT_HELP] && c->cmd->run != cmd_help) {
		print_cmd_help(c->cmd);
		return cli_flush();
	}
	for (int i = 0; i < OPT__COUNT; i++)
		if (c->optval[i] &&
		    !(OPT_BIT(i) & (OPTS_GLOBAL | c->cmd->opts)))
			return cli_usage(c, "option --%s does not apply here",
					 cli_opts[i].name);

	/* After "--": the command to run, or plain arguments. */
	c->args = words + used;
	c->nargs = nwords - used;
	if (c->cmd->flags & CMD_ARGV) {
		c->argv = tail;
		c->nargv = ntail;
		if (ntail == 0 && !(c->cmd->flags & CMD_ARGV_OPTIONAL))
			return cli_usage(c,
					 "missing the command to run after --");
	} else {
		for (int i = 0; i < ntail; i++)
			c->args[c->nargs++] = tail[i];
	}
	if (c->nargs < c->cmd->min_args)
		return cli_usage(c, "missing argument: %s", c->cmd->usage);
	if (c->cmd->max_args >= 0 && c->nargs > c->cmd->max_args)
		return cli_usage(c, "unexpected argument \"%s\"",
				 c->args[c->cmd->max_args]);

	if (jobq__resolve_dir(c->optval[OPT_DIR], c->dir, sizeof(c->dir)))
		return cli_usage(c, "instance directory name too long");
	if (c->optval[OPT_DIR] && !*c->optval[OPT_DIR])
		return cli_usage(c, "--dir needs a directory");

	return c->cmd->run(c);
}

int main(int argc, char **argv)
{
	struct cli c = {0};
	char **words = calloc((size_t)argc + 1, sizeof(*words));
	char **tail = calloc((size_t)argc + 1, sizeof(*tail));
	int rc;

	if (!words || !tail)
		return cli_error("out of memory");
	rc = run(&c, argc, argv, words, tail);
	if (c.q)
		jobq_close(c.q);
	free(words);
	free(tail);
	if (fflush(stdout) && rc == EXIT_OK)
		rc = cli_error("writing to stdout: %s", strerror(errno));
	return rc;
}

/* The usage message, with the line that says where help is. */
int cli_usage(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c && c->cmd) {
		print_usage_line(stderr, c->cmd);
		fprintf(stderr, "('%s ", prog);
		print_cmd_name(stderr, c->cmd);
		fprintf(stderr, " --help' tells more)\n");
	} else {
		fprintf(stderr, "('%s --help' lists the commands)\n", prog);
	}
	return EXIT_USAGE;
}
