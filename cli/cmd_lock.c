/* SPDX-License-Identifier: MIT */
/*
 * cmd_lock.c - jobq lock NAME -- CMD, and jobq locks.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

/* The command being run, leader of its own process group, for the signal
 * handler to pass signals on to. */
static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(-(pid_t)child_pid, sig);
}

/* tcsetpgrp() from a background group, which would otherwise stop us
 * with SIGTTOU. */
static void give_terminal(int tty, pid_t pgrp)
{
	sigset_t ttou, old;

	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, &old);
	tcsetpgrp(tty, pgrp);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static const char *kind_name(int kind)
{
	switch (kind) {
	case JOBQ_LOCK:
		return "lock";
	case JOBQ_RLOCK:
		return "rlock";
	case JOBQ_SEMAPHORE:
		return "semaphore";
	case JOBQ_EVENT:
		return "event";
	default:
		return "unknown";
	}
}

/* The lock's holder, for a timeout message: 0 when not known. */
static pid_t holder_of(const struct cli *c, const char *name)
{
	struct jobq_lock_info *ls = NULL;
	size_t n = 0;
	pid_t pid = 0;

	if (jobq_locks(c->q, &ls, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ls[i].name, name))
			pid = ls[i].holder;
	free(ls);
	return pid;
}

/*
 * run_child - fork and exec c->argv; wait for it. Returns the exit code
 * jobq should leave with: the command's status, 128+N for signal N, 127
 * when it cannot be found, 126 when it cannot be run.
 *
 * The lock must not outlive the command's hold on it, nor the command the
 * lock: the manager gives the lock away as soon as this process is gone,
 * so the command must be gone too. It runs in a process group of its own,
 * which is killed on every way out of here, and with SIGKILL as its
 * parent-death signal: when jobq is killed outright (kill -9), the kernel
 * sends that before it tells anyone (the manager's pidfd included) that
 * jobq has exited, and a process with SIGKILL pending runs no more of its
 * code. Only the command itself gets the signal; what it started in the
 * background is killed with the group on the other ways out.
 */
static int run_child(const struct cli *c)
{
	struct sigaction fwd = {.sa_handler = forward_signal};
	struct sigaction old_int, old_quit, old_term, old_hup;
	sigset_t block, old_mask;
	pid_t pid, parent = getpid();
	int status, err, tty = -1;

	fflush(stdout);
	fflush(stderr);
	/*
	 * A terminal's ^C or ^\ goes to the foreground group: when jobq has
	 * the terminal, the command's group gets it for as long as it runs,
	 * so it reads the terminal and decides about ^C itself, as under a
	 * shell. Signals sent to jobq (SIGINT, SIGQUIT, SIGTERM, SIGHUP) are
	 * passed on to the command's group, and jobq exits (releasing the
	 * lock) once the command has.
	 */
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp())
		tty = STDIN_FILENO;
	sigemptyset(&fwd.sa_mask);
	sigaction(SIGINT, &fwd, &old_int);
	sigaction(SIGQUIT, &fwd, &old_quit);
	sigaction(SIGTERM, &fwd, &old_term);
	sigaction(SIGHUP, &fwd, &old_hup);

	/*
	 * The forwarded signals stay blocked until child_pid is set and its
	 * group exists, so one that arrives around fork() is passed on
	 * rather than lost.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old_mask);
	pid = fork();
	if (pid < 0) {
		err = errno;
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		cli_error("lock \"%s\": cannot start %s: %s", c->args[0],
			  c->argv[0], strerror(err));
		status = EXIT_ERROR;
		goto out;
	}
	if (pid == 0) {
		/* Both sides set the group, so it exists before either goes
		 * on; then the death signal, and a check that jobq did not
		 * die before it was set. */
		setpgid(0, 0);
		if (tty >= 0)
			give_terminal(tty, getpid());
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(EXIT_ERROR);
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		sigaction(SIGHUP, &old_hup, NULL);
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		execvp(c->argv[0], c->argv);
		err = errno;
		dprintf(STDERR_FILENO, "jobq: %s: %s\n", c->argv[0],
			strerror(err));
		_exit(err == ENOENT ? 127 : 126);
	}
	setpgid(pid, pid);
	if (tty >= 0)
		give_terminal(tty, pid);
	child_pid = pid;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	/*
	 * Learn that it ended without reaping it: while the leader is a
	 * zombie its pid cannot name another group, so what it left in its
	 * group is killed, before the lock goes, and only then reaped.
	 */
	for (;;) {
		siginfo_t si = {0};

		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0)
			break;
		if (errno != EINTR) {
			err = errno;
			cli_error("lock \"%s\": waiting for %s: %s", c->args[0],
				  c->argv[0], strerror(err));
			status = EXIT_ERROR;
			kill(-pid, SIGKILL);
			goto out;
		}
	}
	kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status))
		status = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		status = 128 + WTERMSIG(status);
	else
		status = EXIT_ERROR;
out:
	if (pid > 0 && tty >= 0)
		give_terminal(tty, getpgrp());
	child_pid = 0;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	return status;
}

int cmd_lock(struct cli *c)
{
	const char *name = c->args[0];
	const char *lv = c->optval[OPT_LEASE];
	char what[96];
	double timeout, lease = 0;
	int rc, status;

	if ((rc = cli_check_name(c, "lock", name)) ||
	    (rc = cli_timeout(c, -1, &timeout)))
		return rc;
	if (lv && (cli_parse_seconds(lv, &lease) || !(lease > 0)))
		return cli_usage(c,
				 "--lease \"%s\": a number of seconds above "
				 "0",
				 lv);
	snprintf(what, sizeof(what), "lock \"%s\"", name);
	if ((rc = cli_connect(c)))
		return rc;
	rc = lv ? jobq_lock_acquire_lease(c->q, name, timeout, lease)
		: jobq_lock_acquire(c->q, name, timeout);
	switch (rc) {
	case 0:
		break;
	case -EAGAIN:
	case -ETIMEDOUT: {
		pid_t holder = holder_of(c, name);
		char by[32] = "";

		if (holder)
			snprintf(by, sizeof(by), " by pid %d", (int)holder);
		if (rc == -EAGAIN)
			return cli_timeout_msg(c, "%s: held%s", what, by);
		return cli_timeout_msg(c, "%s: still held%s after %gs", what,
				       by, timeout);
	}
	case JOBQ_EKIND:
		return cli_error("%s: is an event or a semaphore of another "
				 "kind, not a lock to hold",
				 what);
	case -EDEADLK:
		return cli_error("%s: waiting for it would deadlock", what);
	case JOBQ_ELIMIT:
		return cli_error("%s: the lock table of the manager is full",
				 what);
	default:
		return cli_fail(c, what, rc);
	}

	status = run_child(c);

	rc = jobq_lock_release(c->q, name);
	if (rc == -EPERM && lv)
		return cli_error("%s: the lease of %gs ran out while the "
				 "command ran: the lock was given to others "
				 "meanwhile",
				 what, lease);
	if (rc && !c->quiet)
		cli_error("%s: releasing: %s (the manager frees it when this "
			  "process exits)",
			  what, jobq_strerror(rc));
	return status;
}

static int cmp_lock(const void *a, const void *b)
{
	return strcmp(((const struct jobq_lock_info *)a)->name,
		      ((const struct jobq_lock_info *)b)->name);
}

int cmd_locks(struct cli *c)
{
	struct jobq_lock_info *ls = NULL;
	size_t n = 0;
	int rc, w = 4, hw = 0;

	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_locks(c->q, &ls, &n);
	if (rc)
		return cli_fail(c, "locks", rc);
	if (n > 1)
		qsort(ls, n, sizeof(*ls), cmp_lock);
	if (c->json) {
		json_t *arr, *doc = cli_list_new("locks", &arr);

		for (size_t i = 0; doc && i < n; i++) {
			struct jobq_lock_info *l = &ls[i];
			bool held = l->held > 0;
			json_t *o = json_pack(
			    "{s:o,s:s,s:I,s:I,s:I,s:o,s:o,s:o,s:b,s:o}", "name",
			    cli_json_str(l->name), "kind", kind_name(l->kind),
			    "limit", (json_int_t)l->limit, "held",
			    (json_int_t)l->held, "waiters",
			    (json_int_t)l->waiters, "holder",
			    l->holder ? json_integer(l->holder) : json_null(),
			    "held_since",
			    held ? cli_json_time(l->held_since_ns)
				 : json_null(),
			    "held_for",
			    held ? json_real(cli_since(l->held_since_ns))
				 : json_null(),
			    "is_set", l->is_set != 0, "host",
			    l->holder && l->host[0] ? cli_json_str(l->host)
						    : json_null());

			cli_list_push(&doc, arr, o);
		}
		free(ls);
		return cli_print_json(doc);
	}
	/* Names print escaped: a stored name may hold any byte. */
	for (size_t i = 0; i < n; i++) {
		char t[CLI_TEXT_LEN];

		cli_text(ls[i].name, SIZE_MAX, t, sizeof(t));
		if ((int)strlen(t) > w)
			w = (int)strlen(t);
		/* With --backend, the holder's host beside its pid. */
		cli_text(ls[i].host, SIZE_MAX, t, sizeof(t));
		if (ls[i].holder && (int)strlen(t) > hw)
			hw = (int)strlen(t) < 4 ? 4 : (int)strlen(t);
	}
	if (!c->quiet && hw)
		printf("%-*s %-9s %8s %-*s %10s %8s\n", w, "LOCK", "KIND",
		       "HOLDER", hw, "HOST", "HELD(s)", "WAITERS");
	else if (!c->quiet)
		printf("%-*s %-9s %8s %10s %8s\n", w, "LOCK", "KIND", "HOLDER",
		       "HELD(s)", "WAITERS");
	for (size_t i = 0; i < n; i++) {
		struct jobq_lock_info *l = &ls[i];
		char holder[16] = "-", held[24] = "-", t[CLI_TEXT_LEN],
		     ht[CLI_TEXT_LEN] = "-";

		if (l->kind == JOBQ_EVENT)
			snprintf(holder, sizeof(holder), "%s",
				 l->is_set ? "set" : "clear");
		else if (l->holder)
			snprintf(holder, sizeof(holder), "%d", (int)l->holder);
		if (l->held && l->kind != JOBQ_EVENT)
			snprintf(held, sizeof(held), "%.1f",
				 cli_since(l->held_since_ns));
		cli_text(l->name, SIZE_MAX, t, sizeof(t));
		if (l->holder && l->host[0] && l->kind != JOBQ_EVENT)
			cli_text(l->host, SIZE_MAX, ht, sizeof(ht));
		if (hw)
			printf("%-*s %-9s %8s %-*s %10s %8u\n", w, t,
			       kind_name(l->kind), holder, hw, ht, held,
			       l->waiters);
		else
			printf("%-*s %-9s %8s %10s %8u\n", w, t,
			       kind_name(l->kind), holder, held, l->waiters);
	}
	free(ls);
	return cli_flush();
}
