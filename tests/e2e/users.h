/* SPDX-License-Identifier: MIT */
/*
 * users.h - a second, unprivileged user for tests that run as root: the
 * permission tests (test_identity.c) and the PostgreSQL server, which
 * refuses to run as root (pg_server.c).
 */
#ifndef JOBQ_TEST_USERS_H
#define JOBQ_TEST_USERS_H

#include <stddef.h>
#include <sys/types.h>

struct jqt_user {
	char name[32];
	uid_t uid;
	gid_t gid;
};

/*
 * jqt_user_make - as root, create user PREFIX<pid> with a group of its own
 * name and no home (useradd), after removing the users with this prefix
 * that runs killed before their clean-up left behind. It is removed again
 * at exit. Returns 0, or -1 with the reason (for a SKIP line) in @why.
 */
int jqt_user_make(struct jqt_user *u, const char *prefix, char *why,
		  size_t whylen);

/* In a child: become @u, with no supplementary groups. 0 or -1. */
int jqt_user_become(const struct jqt_user *u);

#endif
