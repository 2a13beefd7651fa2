"""Drive the jobqd dashboard in headless Chromium over the DevTools protocol.

check_dashboard.py JOBQ DIR URL SCREENSHOT

Loads URL (jobqd --http's /), waits until the page shows the queue
"invoices" and a running job of type "sleep" that the caller made, then
puts an object on a new queue "late.arrival" with the jobq command line
and waits until the page shows it without being reloaded (its
data-refreshes count grows). Saves a screenshot to SCREENSHOT. Exit 0 on
success; 1 with the reason; 77 when Chromium or python3-websocket is
missing. Chromium runs in its own process group and is killed by pid.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import websocket  # Debian's python3-websocket
except ImportError:
    print("skipped: python3-websocket is not installed")
    sys.exit(77)

jobq, instance, url, shot = sys.argv[1:5]
chrome = shutil.which("chromium") or shutil.which("chromium-browser")
if not chrome:
    print("skipped: chromium is not installed")
    sys.exit(77)

profile = tempfile.mkdtemp(prefix="jobq-dash-")
proc = subprocess.Popen(
    [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
     "--no-first-run", "--disable-background-networking",
     "--disable-component-update", "--disable-sync",
     "--user-data-dir=" + profile, "--remote-debugging-port=0",
     "--window-size=1280,1000", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    start_new_session=True)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def cleanup():
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    shutil.rmtree(profile, ignore_errors=True)


try:
    deadline = time.monotonic() + 30
    port_file = os.path.join(profile, "DevToolsActivePort")
    while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
        if time.monotonic() > deadline or proc.poll() is not None:
            fail("chromium did not start its DevTools endpoint")
        time.sleep(0.1)
    port = open(port_file).read().split()[0]
    targets = json.load(urllib.request.urlopen(
        "http://127.0.0.1:%s/json/list" % port, timeout=10))
    page = next(t for t in targets if t.get("type") == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=10)
    next_id = [0]

    def call(method, **params):
        next_id[0] += 1
        ws.send(json.dumps({"id": next_id[0], "method": method,
                            "params": params}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == next_id[0]:
                if "error" in msg:
                    fail("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})

    def evaluate(expr):
        r = call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    def wait_for(pred, what, seconds=20):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            text = evaluate("document.body ? document.body.innerText : ''")
            if text and pred(text):
                return text
            time.sleep(0.2)
        fail("the page never showed %s; it shows:\n%s" % (what, text))

    call("Page.enable")
    call("Page.navigate", url=url)
    wait_for(lambda t: "invoices" in t, "the queue 'invoices'")
    wait_for(lambda t: "sleep" in t and "nothing runs" not in t,
             "the running sleep job")
    before = int(evaluate("document.body.dataset.refreshes || '0'"))
    subprocess.run([jobq, "--dir", instance, "put", "late.arrival", "x"],
                   check=True, timeout=15)
    wait_for(lambda t: "late.arrival" in t, "the queue added while it ran")
    after = int(evaluate("document.body.dataset.refreshes || '0'"))
    if after <= before:
        fail("the page did not refresh by itself (%d -> %d)" % (before, after))
    if evaluate("location.href") != url:
        fail("the page navigated away")
    png = call("Page.captureScreenshot", format="png")["data"]
    with open(shot, "wb") as f:
        f.write(base64.b64decode(png))
    print("ok: queue, running job and a later queue shown; %d refreshes; "
          "screenshot %s" % (after, shot))
finally:
    cleanup()
