#!/usr/bin/env bash
# The systemd units as meson configured them pass `systemd-analyze verify`
# (with ExecStart pointed at the jobqd just built, since verify checks
# that the program exists). Exit 77 (skipped) where systemd-analyze is
# missing.
set -u
command -v systemd-analyze >/dev/null ||
	{ echo "skipped: systemd-analyze is not installed"; exit 77; }
units=${1:?usage: check_units.sh UNITDIR JOBQD}
jobqd=${2:?usage: check_units.sh UNITDIR JOBQD}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
status=0
for u in jobqd.service jobqd-user.service; do
	sed "s|^ExecStart=[^ ]*/jobqd|ExecStart=$jobqd|" "$units/$u" >"$tmp/$u"
	grep -q "^ExecStart=$jobqd" "$tmp/$u" || { echo "$u: no ExecStart= of jobqd"; status=1; }
	# Only warnings about the unit itself count; verify also reports on
	# units of the host that this one does not name.
	out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp/$u" 2>&1 |
		grep -F "$u" || true)
	if [ -n "$out" ]; then
		echo "$u:"
		echo "$out"
		status=1
	else
		echo "$u: verified"
	fi
done
exit $status
