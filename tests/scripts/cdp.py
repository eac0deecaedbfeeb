#!/usr/bin/env python3
"""cdp.py - drive a headless Chromium through the DevTools protocol, one command at a time.

Usage: cdp.py [--chromium PATH] [--window WxH] WORKDIR

Starts Chromium (headless, its own profile under WORKDIR, DevTools over a pipe: no port is
opened) and reads commands from stdin, one JSON object per line; answers each on stdout with
one JSON line, {"ok": true, ...} or {"ok": false, "error": "..."}:

  {"op": "open", "url": U}                 navigate and wait for the load event
  {"op": "eval", "expr": JS}               evaluate (promises awaited); {"value": V}
  {"op": "screenshot", "path": P}          PNG of the whole page (not just the window)
  {"op": "dialogs"}                        messages of the dialogs seen so far (all accepted)
  {"op": "errors"}                         uncaught exceptions and console errors so far
  {"op": "close"}                          close Chromium and exit

JavaScript dialogs (confirm, alert) are accepted as they open. Chromium runs in a process
group of its own, ended when this script ends (EOF on stdin, "close", or a signal), so no
browser outlives the test that started it.

Needs python3 (standard library only) and chromium:  apt-get install -y chromium python3
Exit codes: 0 after "close" or EOF; 2 when Chromium cannot be started.
"""

import base64
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time

DEFAULT_CHROMIUM = "chromium"


def log(msg):
    print(f"cdp.py: {msg}", file=sys.stderr, flush=True)


class Browser:
    def __init__(self, chromium, workdir, width, height):
        self.width, self.height = width, height
        self.buf = b""
        self.next_id = 0
        self.pending = []
        self.dialogs = []
        self.errors = []
        self.session = None
        cmd_r, cmd_w = os.pipe()
        resp_r, resp_w = os.pipe()

        def child_fds():
            # Chromium reads commands on fd 3 and writes replies on fd 4.
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(resp_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-default-apps", "--password-store=basic", "--mute-audio", "--hide-scrollbars",
            "--force-color-profile=srgb", f"--window-size={width},{height}",
            f"--user-data-dir={os.path.join(workdir, 'profile')}",
            "--remote-debugging-pipe",
        ]
        self.log_path = os.path.join(workdir, "chromium.log")
        out = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         preexec_fn=child_fds, close_fds=False,
                                         start_new_session=True)
        except OSError as e:
            log(f"cannot start {chromium}: {e}. Install it with: apt-get install -y chromium")
            sys.exit(2)
        os.close(cmd_r)
        os.close(resp_w)
        self.cmd_w, self.resp_r = cmd_w, resp_r

    # ---- the protocol ----
    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def read(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium in time")
            r, _, _ = select.select([self.resp_r], [], [], left)
            if r:
                chunk = os.read(self.resp_r, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium exited (code {self.proc.wait()}); see {self.log_path}")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        msg = json.loads(raw)
        self.on_event(msg)
        return msg

    def on_event(self, msg):
        method = msg.get("method")
        params = msg.get("params", {})
        if method == "Page.javascriptDialogOpening":
            # A confirm() blocks the page (and an evaluate waiting on it) until answered.
            self.dialogs.append(params.get("message", ""))
            self.send("Page.handleJavaScriptDialog", {"accept": True}, msg.get("sessionId"))
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            self.errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))

    def call(self, method, params=None, session=None, timeout=30.0):
        sent = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(deadline)
            if m.get("id") == sent:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error'].get('message')}")
                return m.get("result", {})
            if "method" in m:
                self.pending.append(m)

    def wait_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        for i, m in enumerate(self.pending):
            if m.get("method") == name and m.get("sessionId") == self.session:
                return self.pending.pop(i)
        while True:
            m = self.read(deadline)
            if m.get("method") == name and m.get("sessionId") == self.session:
                return m
            if "method" in m:
                self.pending.append(m)

    # ---- commands ----
    def start(self):
        tid = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        for m in ("Page.enable", "Runtime.enable"):
            self.call(m, session=self.session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
                  session=self.session)

    def open(self, url):
        self.pending.clear()
        r = self.call("Page.navigate", {"url": url}, session=self.session)
        if r.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {r['errorText']}")
        self.wait_event("Page.loadEventFired", 30.0)
        return {}

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True, "returnByValue": True},
                      session=self.session)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(d.get("exception", {}).get("description") or d.get("text", "exception"))
        return {"value": r.get("result", {}).get("value")}

    def screenshot(self, path):
        # The whole page: grow the viewport to the content's height for the capture.
        metrics = self.call("Page.getLayoutMetrics", session=self.session)
        size = metrics.get("cssContentSize") or metrics.get("contentSize")
        height = max(self.height, int(size["height"]))
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=self.session)
        try:
            shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False},
                             session=self.session)
        finally:
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
                      session=self.session)
        data = base64.b64decode(shot["data"])
        with open(path, "wb") as f:
            f.write(data)
        return {"bytes": len(data), "width": self.width, "height": height}

    def close(self):
        try:
            if self.proc.poll() is None:
                self.send("Browser.close")
                self.proc.wait(timeout=5)
        except Exception:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group Chromium leads, nothing else
        except (ProcessLookupError, PermissionError):
            pass


def main():
    args = sys.argv[1:]
    chromium = os.environ.get("CHROMIUM", DEFAULT_CHROMIUM)
    width, height = 1400, 1000
    while args and args[0].startswith("--"):
        if args[0] == "--chromium" and len(args) > 1:
            chromium, args = args[1], args[2:]
        elif args[0] == "--window" and len(args) > 1:
            width, height = (int(v) for v in args[1].split("x"))
            args = args[2:]
        else:
            log(f"unknown option {args[0]}")
            sys.exit(2)
    if len(args) != 1:
        log("usage: cdp.py [--chromium PATH] [--window WxH] WORKDIR")
        sys.exit(2)
    workdir = args[0]
    os.makedirs(workdir, exist_ok=True)

    browser = Browser(chromium, workdir, width, height)

    def on_signal(signum, _frame):
        browser.close()
        sys.exit(1)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    def answer(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        browser.start()
        answer({"ok": True, "ready": True})
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
                op = cmd.get("op")
                if op == "open":
                    out = browser.open(cmd["url"])
                elif op == "eval":
                    out = browser.eval(cmd["expr"])
                elif op == "screenshot":
                    out = browser.screenshot(cmd["path"])
                elif op == "dialogs":
                    out = {"value": browser.dialogs}
                elif op == "errors":
                    out = {"value": browser.errors}
                elif op == "close":
                    answer({"ok": True})
                    break
                else:
                    raise ValueError(f"unknown op {op!r}")
                answer(dict(ok=True, **out))
            except (RuntimeError, TimeoutError, ValueError, KeyError) as e:
                answer({"ok": False, "error": str(e)})
    except (RuntimeError, TimeoutError) as e:
        answer({"ok": False, "error": f"Chromium did not start: {e}"})
    finally:
        browser.close()


if __name__ == "__main__":
    main()
