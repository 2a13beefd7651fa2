"""Write jobq's man pages from what the code already says.

  gen_man.py lib HEADER OUTDIR PAGE...   section 3, one page per header section
  gen_man.py cli JOBQ OUT                jobq(1), from jobq --help and CMD --help
  gen_man.py daemon JOBQD OUT            jobqd(8), from jobqd --help

The library pages are cut from include/jobq.h: each "/* ----" banner starts
a section, whose first sentence titles the page; every declaration comes
with the comment above it, which is the function's contract. The program
pages put hand-written text (DESCRIPTION, FILES, ENVIRONMENT, EXIT STATUS,
...) around the programs' own --help output, so neither can drift from
the code. An unknown header section is an error: it needs a page name
here, chosen on purpose.
"""
import datetime
import os
import re
import subprocess
import sys

VERSION = "0.1.0"
DATE = datetime.date.today().strftime("%Y-%m-%d")
if os.environ.get("SOURCE_DATE_EPOCH"):
    DATE = datetime.datetime.utcfromtimestamp(
        int(os.environ["SOURCE_DATE_EPOCH"])).strftime("%Y-%m-%d")

# Section title (its first words) -> page name and one-line summary.
PAGES = [
    ("Errors", "jobq_errors", "error codes and jobq_strerror"),
    ("Objects", "jobq_objects", "objects: bytes with a type tag"),
    ("Connecting", "jobq_open", "connect to a jobqd manager"),
    ("Event-loop", "jobq_async", "event-loop integration and asynchronous calls"),
    ("Queues", "jobq_queues", "named queues of objects"),
    ("Key/value", "jobq_kv", "the shared key/value store"),
    ("Named locks", "jobq_locks", "named locks, semaphores and events"),
    ("Statistics", "jobq_stats", "counters of a manager"),
    ("Jobs", "jobq_jobs", "jobs: submit, wait, cancel, retry"),
    ("Workers", "jobq_worker", "serve jobs: handlers per job type"),
    ("The IO engine", "jobq_io", "the io_uring engine: loops, fibers, IO calls"),
    ("Helpers", "jobq_helpers", "helpers shared by the tools"),
]


def esc(s):
    """Text for roff: backslashes doubled, a leading dot or quote guarded."""
    s = s.replace("\\", "\\e")
    return "\n".join(("\\&" + l if l[:1] in (".", "'") else l)
                     for l in s.split("\n"))


def th(name, section, title):
    return ('.TH %s %s %s "jobq %s" "%s"\n'
            % (name.upper(), section, DATE, VERSION, title))


def header_sections(text):
    """[(title, body)] split at the banners; body is the code after it."""
    parts = re.split(r"/\* -{20,}\n", text)
    out = []
    for p in parts[1:]:
        m = re.match(r"((?: \*.*\n)*?) \*/\n", p)
        if not m:
            continue
        intro = re.sub(r"^ \* ?", "", m.group(1), flags=re.M).strip()
        out.append((intro, p[m.end():]))
    return out


def declarations(body):
    """[(comment, declaration)] of the section's code, in order: a small
    scanner, since comments hold semicolons and structs hold braces."""
    items, comment, cur, depth, i = [], None, "", 0, 0
    while i < len(body):
        if body.startswith("/*", i):
            end = body.index("*/", i) + 2
            if depth or cur.strip():
                cur += body[i:end]  # a member's comment stays in place
            else:
                c = re.sub(r"^\s*\* ?", "", body[i + 2:end - 2],
                           flags=re.M).strip()
                comment = c if comment is None else comment + "\n\n" + c
            i = end
            continue
        ch = body[i]
        if ch == "#" and not cur.strip():
            i = body.find("\n", i) + 1 or len(body)
            comment = None
            continue
        cur += ch
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:  # the extern "C" brace
                depth, cur = 0, ""
        elif ch == ";" and depth == 0:
            decl = re.sub(r"\bJOBQ_API\s+", "", cur.strip())
            decl = re.sub(r"\s*__attribute__\s*\(\(.*?\)\)\s*", "", decl,
                          flags=re.S)
            if decl != ";":
                items.append((comment, decl))
            cur, comment = "", None
        i += 1
    return items


def names_in(decl):
    if re.match(r"(struct|typedef|enum|union)\b", decl):
        return []
    decl = re.sub(r"/\*.*?\*/", "", decl, flags=re.S)
    m = re.search(r"\b(jobq_[a-z0-9_]+)\s*\(", decl)
    if m:
        return [m.group(1)]
    return []


def lib(header, outdir, wanted):
    text = open(header).read()
    pages = {}
    for intro, body in header_sections(text):
        title = intro.split("\n")[0]
        for key, page, summary in PAGES:
            if title.startswith(key):
                break
        else:
            sys.exit("gen_man.py: no page for the header section %r: add it "
                     "to PAGES" % title)
        pages[page] = (summary, intro, declarations(body))
    missing = sorted(set(pages) - set(wanted))
    if missing:
        sys.exit("gen_man.py: the header has sections for %s: list them in "
                 "man/meson.build" % ", ".join(missing))
    for page in wanted:
        if page == "libjobq":
            write_libjobq(outdir, text, pages)
            continue
        if page not in pages:
            sys.exit("gen_man.py: the header has no section for %s" % page)
        summary, intro, decls = pages[page]
        funcs = [n for _, d in decls for n in names_in(d)]
        with open(os.path.join(outdir, page + ".3"), "w") as f:
            f.write(th(page, 3, "libjobq"))
            f.write(".SH NAME\n%s \\- %s\n" % (
                esc(", ".join(funcs or [page])), esc(summary)))
            f.write(".SH SYNOPSIS\n.nf\n.B #include <jobq.h>\n.sp\n")
            for _, d in decls:
                f.write(esc(d) + "\n")
            f.write(".fi\n.PP\nLink with \\fI\\-ljobq\\fP "
                    "(\\fIpkg\\-config \\-\\-libs jobq\\fP).\n")
            f.write(".SH DESCRIPTION\n")
            for para in intro.split("\n\n"):
                f.write(".PP\n" + esc(" ".join(para.split("\n"))) + "\n")
            for comment, d in decls:
                if not comment:
                    continue
                f.write(".PP\n.nf\n.B %s\n.fi\n" % esc(
                    " ".join(d.split())).replace("\n", " "))
                f.write(".RS\n")
                for para in comment.split("\n\n"):
                    f.write(".PP\n" + esc(" ".join(para.split())) + "\n")
                f.write(".RE\n")
            f.write(".SH SEE ALSO\n")
            others = [p for _, p, _ in PAGES if p in pages and p != page]
            f.write(",\n".join(".BR %s (3)" % p for p in ["libjobq"] + others))
            f.write(",\n.BR jobq (1),\n.BR jobqd (8)\n")


def write_libjobq(outdir, text, pages):
    m = re.match(r"/\*.*?\n \* jobq\.h - [^\n]*\n \*\n(.*?) \*/", text, re.S)
    intro = re.sub(r"^ \* ?", "", m.group(1), flags=re.M).strip() if m else ""
    with open(os.path.join(outdir, "libjobq.3"), "w") as f:
        f.write(th("libjobq", 3, "libjobq"))
        f.write(".SH NAME\nlibjobq \\- client library of the jobq job queue\n")
        f.write(".SH SYNOPSIS\n.nf\n.B #include <jobq.h>\n.fi\n.PP\n"
                "cc prog.c $(pkg\\-config \\-\\-cflags \\-\\-libs jobq)\n")
        f.write(".SH DESCRIPTION\n.PP\nlibjobq connects a program to a "
                "\\fBjobqd\\fP(8) manager: named queues of objects, a shared "
                "key/value store, named locks, jobs that workers run, and the "
                "workers themselves, with their file and socket IO on "
                "io_uring.\n")
        for para in intro.split("\n\n"):
            f.write(".PP\n" + esc(" ".join(para.split())) + "\n")
        f.write(".SH FUNCTIONS\nThe calls are described by group:\n")
        for key, page, summary in PAGES:
            if page in pages:
                f.write(".TP\n.BR %s (3)\n%s\n" % (page, esc(summary)))
        f.write(".SH SEE ALSO\n.BR jobq (1),\n.BR jobqd (8)\n")


def run_help(prog, *args):
    r = subprocess.run([prog, *args, "--help"], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        sys.exit("gen_man.py: %s %s --help exited %d" %
                 (prog, " ".join(args), r.returncode))
    return r.stdout


def cli(jobq, out):
    top = run_help(jobq)
    cmds = []
    for line in top.split("commands:", 1)[1].split("\n\n")[0].splitlines():
        m = re.match(r"  ([a-z]+(?: [a-z]+)?)\s{2,}(.*)", line)
        if m and m.group(1) != "help":
            cmds.append(m.group(1))
    with open(out, "w") as f:
        f.write(th("jobq", 1, "jobq"))
        f.write(".SH NAME\njobq \\- submit jobs and use the queues, store "
                "and locks of a jobqd manager from the shell\n")
        f.write(".SH SYNOPSIS\n.B jobq\n.I COMMAND\n[\\fIARGS\\fP] "
                "[\\fIoptions\\fP]\n")
        f.write(".SH DESCRIPTION\n.PP\n\\fBjobq\\fP talks to the "
                "\\fBjobqd\\fP(8) manager of an instance directory: it puts "
                "and gets objects on named queues, reads and writes the "
                "key/value store, runs commands under named locks, submits "
                "jobs (shell commands included, with \\fBjobq run\\fP), waits "
                "for them and inspects everything. Options may stand before or "
                "after the command and its arguments, but not after "
                "\\fB\\-\\-\\fP.\n.PP\nThe overview below is "
                "\\fBjobq \\-\\-help\\fP; each command's own text is "
                "\\fBjobq\\fP \\fICOMMAND\\fP \\fB\\-\\-help\\fP.\n")
        f.write(".PP\n.nf\n" + esc(top.rstrip()) + "\n.fi\n")
        f.write(".SH COMMANDS\n")
        for c in cmds:
            h = run_help(jobq, *c.split())
            f.write(".SS %s\n.nf\n%s\n.fi\n" % (esc("jobq " + c),
                                               esc(h.rstrip())))
        f.write(CLI_TAIL)


CLI_TAIL = r""".SH ENVIRONMENT
.TP
.B JOBQ_DIR
The instance directory when \fB\-\-dir\fP is not given. Without either,
\fB$XDG_RUNTIME_DIR/jobq\fP, else \fB/tmp/jobq\-$UID\fP.
.TP
.B JOBQ_RECONNECT
Seconds a command (and any program using libjobq) keeps reconnecting when
its manager goes away while it waits, resending what had no answer; 0
never reconnects. Default 30; a manager stopped on purpose gets at most 5.
.TP
.B JOBQ_BUSY_POLL
When 1, a command (and any program using libjobq) polls for its answers
without ever sleeping: the lowest latency, for a whole CPU while it waits.
.SH EXIT STATUS
.TP
.B 0
success
.TP
.B 1
an error; the message says what and why (no such job, no manager running)
.TP
.B 2
a usage error: an unknown command or option, a missing or malformed
argument (an \fIARGS_JSON\fP that is not JSON included)
.TP
.B 3
timed out, or nothing there with \fB\-\-nowait\fP
.TP
.B 4
a waited\-for job failed, was cancelled or is dead
.SH EXAMPLES
.nf
jobqd \-\-workers 2 \-\-daemon
jobq put emails '{"to": "a@b.c"}'
jobq get emails
id=$(jobq submit sleep '{"ms": 500}' \-\-retries 2)
jobq wait "$id"
jobq queue set builds \-\-parallel 4
jobq run \-\-queue builds \-\-from commands.txt | xargs jobq wait
jobq lock deploy \-\- ./deploy.sh
jobq stats \-\-prometheus
.fi
.SH SEE ALSO
.BR jobqd (8),
.BR libjobq (3)
"""


def daemon(jobqd, out):
    h = run_help(jobqd)
    with open(out, "w") as f:
        f.write(th("jobqd", 8, "jobq"))
        f.write(".SH NAME\njobqd \\- the jobq manager: queues, key/value "
                "store, locks and jobs of one instance\n")
        f.write(".SH SYNOPSIS\n.B jobqd\n[\\fIoptions\\fP]\n")
        f.write(DAEMON_DESC)
        f.write(".SH OPTIONS\n.nf\n" + esc(h.rstrip()) + "\n.fi\n")
        f.write(DAEMON_TAIL)


DAEMON_DESC = r""".SH DESCRIPTION
.PP
\fBjobqd\fP owns one instance of jobq: a shared\-memory store holding named
queues of objects, a key/value store, named locks and a table of jobs. It
is the only writer of that store. Clients (programs linking
\fBlibjobq\fP(3), the \fBjobq\fP(1) command line, workers) connect to its
control socket in the instance directory, map the store read\-only, and
send requests through shared\-memory rings of their own. It supervises the
built\-in worker processes it starts, runs the timers (delayed jobs,
leases, retries, result expiry) and notices dead clients: their locks are
released, the objects being handed to them go back to their queues, and
the jobs they ran are retried.
.PP
The instance directory is \fB\-\-dir\fP, else \fB$JOBQ_DIR\fP, else
\fB$XDG_RUNTIME_DIR/jobq\fP, else \fB/tmp/jobq\-$UID\fP. It is created
with mode 0700 (0750 with \fB\-\-group\fP); one owned by another user or
writable by others is refused. A second manager on the same directory is
refused, naming the running one's pid.
"""

DAEMON_TAIL = r""".SH SIGNALS
.TP
.BR SIGTERM ", " SIGINT
Shut down gracefully: running jobs drain for up to \fB\-\-grace\fP seconds,
workers are stopped and reaped. \fBjobq shutdown\fP does the same.
.TP
.B SIGHUP
Reopen the \fB\-\-log\fP file (for logrotate).
.SH FILES
.TP
.I DIR/jobqd.sock
The control socket.
.TP
.I DIR/jobqd.pid
The manager's pid.
.TP
.I DIR/jobqd.lock
Held (flock) while a manager runs there.
.TP
.I DIR/jobqd.http
With \fB\-\-http\fP: the address it serves.
.TP
.I DIR/journal
The journal of queues and keys (or \fB\-\-journal\fP \fIFILE\fP): every
change, checksummed, replayed at start; a torn or corrupt tail is cut and
the cut logged.
.TP
.IR DIR/journal.snap ", " DIR/journal.lock
The snapshot that compacts the journal (a damaged one is refused: the
manager does not start), and the lock that keeps a second manager off the
journal.
.SH SERVICE
.PP
\fBjobqd\fP speaks the systemd notify protocol: with \fB$NOTIFY_SOCKET\fP
set it sends READY=1 once clients can connect and STOPPING=1 when a
shutdown begins. \fBmeson install\fP installs a system unit
(\fBsystemctl enable \-\-now jobqd\fP: the instance \fI/run/jobq\fP, user
\fBjobq\fP, members of group \fBjobq\fP may connect) and a user unit
(\fBsystemctl \-\-user enable \-\-now jobqd\fP).
.SH SEE ALSO
.BR jobq (1),
.BR libjobq (3)
"""

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "lib":
        lib(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif mode == "cli":
        cli(sys.argv[2], sys.argv[3])
    elif mode == "daemon":
        daemon(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: gen_man.py lib|cli|daemon ...")
