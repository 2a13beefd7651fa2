/* SPDX-License-Identifier: MIT */
/*
 * notify.c - readiness and stopping notices to a service manager.
 *
 * systemd starts a Type=notify service with $NOTIFY_SOCKET naming a unix
 * datagram socket (a path, or an abstract name written with a leading
 * '@'); the service sends "READY=1" once it serves and "STOPPING=1" when
 * it begins to shut down. The protocol is one datagram of KEY=VALUE lines,
 * so it is written here by hand rather than through libsystemd. Without
 * $NOTIFY_SOCKET every call is a no-op; a notice that cannot be sent is
 * logged and otherwise ignored, since the manager serves either way.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "jobqd.h"

void jobq__notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len;
	socklen_t salen;
	int fd;

	if (!path || !path[0])
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
		jobq__log(0, "NOTIFY_SOCKET %s: not a socket path, ignored",
			  path);
		return;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* an abstract socket name */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		jobq__log(0, "notify %s: socket: %s", state, strerror(errno));
		return;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		   (struct sockaddr *)&sa, salen) < 0)
		jobq__log(0, "notify %s to %s: %s", state, path,
			  strerror(errno));
	close(fd);
}
