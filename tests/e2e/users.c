/* SPDX-License-Identifier: MIT */
/*
 * users.c - create and remove the unprivileged user of users.h.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "users.h"

/* The users this process made, removed by the exit handler. */
static char made[4][32];
static int nmade;

static void remove_user(const char *name)
{
	const char *del[] = {"userdel", name, NULL};
	const char *gdel[] = {"groupdel", name, NULL};
	struct jqt_out o;

	if (!name[0] || jqt_run("/usr/sbin/userdel", del, NULL, 0, 30, &o))
		return;
	jqt_out_free(&o);
	/* userdel removes the user's own group; this is for the odd
	 * configuration that keeps it. */
	if (getgrnam(name) &&
	    !jqt_run("/usr/sbin/groupdel", gdel, NULL, 0, 30, &o))
		jqt_out_free(&o);
}

/* Children leave with _exit(): only the process that made the users
 * runs this. */
static void remove_made(void)
{
	for (int i = 0; i < nmade; i++)
		remove_user(made[i]);
	nmade = 0;
}

/* Users left by runs that were killed before their exit handler ran (a
 * timeout): named after a pid that is gone. */
static void remove_stale_users(const char *prefix)
{
	char names[8][32], fmt[48];
	struct passwd *pw;
	int n = 0;

	snprintf(fmt, sizeof(fmt), "%s%%d", prefix);
	setpwent();
	while ((pw = getpwent()) && n < 8) {
		int pid;

		if (!strncmp(pw->pw_name, prefix, strlen(prefix)) &&
		    sscanf(pw->pw_name, fmt, &pid) == 1 && pid > 0 &&
		    kill(pid, 0) < 0 && errno == ESRCH)
			snprintf(names[n++], sizeof(names[0]), "%s",
				 pw->pw_name);
	}
	endpwent();
	for (int i = 0; i < n; i++)
		remove_user(names[i]);
}

int jqt_user_make(struct jqt_user *u, const char *prefix, char *why,
		  size_t whylen)
{
	const char *add[] = {"useradd",		  "-M",	   "-U", "-s",
			     "/usr/sbin/nologin", u->name, NULL};
	static pid_t registered;
	struct passwd *pw;
	struct jqt_out o;

	if (geteuid() != 0) {
		snprintf(why, whylen,
			 "needs root, to create a second user with useradd");
		return -1;
	}
	if (access("/usr/sbin/useradd", X_OK) < 0) {
		snprintf(why, whylen, "/usr/sbin/useradd is not there");
		return -1;
	}
	if (nmade == (int)(sizeof(made) / sizeof(made[0]))) {
		snprintf(why, whylen, "too many users made");
		return -1;
	}
	remove_stale_users(prefix);
	snprintf(u->name, sizeof(u->name), "%s%d", prefix, (int)getpid());
	if (jqt_run("/usr/sbin/useradd", add, NULL, 0, 30, &o)) {
		snprintf(why, whylen, "useradd %s could not run", u->name);
		u->name[0] = '\0';
		return -1;
	}
	if (o.code) {
		snprintf(why, whylen, "useradd %s failed: %s", u->name, o.err);
		jqt_out_free(&o);
		u->name[0] = '\0';
		return -1;
	}
	jqt_out_free(&o);
	snprintf(made[nmade++], sizeof(made[0]), "%s", u->name);
	if (registered != getpid()) {
		registered = getpid();
		atexit(remove_made);
	}
	pw = getpwnam(u->name);
	if (!pw) {
		snprintf(why, whylen, "user %s not found after useradd",
			 u->name);
		return -1;
	}
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

int jqt_user_become(const struct jqt_user *u)
{
	if (setgroups(0, NULL) || setgid(u->gid) || setuid(u->uid))
		return -1;
	return 0;
}
