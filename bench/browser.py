"""Headless Chromium watches the sender's page (issue 14) for scripts/bench.sh; prints JSON.

Opens the page (https://IP:PORT/#code=CODE) in N windows of one Chromium (one renderer, one
WebSocket, one viewer each), waits until every one plays, lets them settle for --warmup s, then
measures --seconds: each window's frames shown and the latencies the page measured (capture →
shown, sender's clock), the sender's CPU time from /proc/PID/stat and its frame counters from
/metrics, over the same window. With --pause FILE, a second window follows the first: the script
creates FILE, waits for FILE.go (the bench starts more viewers meanwhile), settles, and measures
again.

Runs Debian's python3-selenium against /usr/bin/chromedriver (never downloads a driver); Chromium
resolves no name and reaches only the sender's address (--host-resolver-rules). Run it as the
leader of its own process group (setsid), so the bench can end chromedriver and Chromium with it.

Usage: browser.py URL --pid PID [--windows N] [--seconds S] [--warmup S] [--pause FILE]
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import ssl
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

parser = argparse.ArgumentParser()
parser.add_argument("url", help="https://IP:PORT/#code=CODE")
parser.add_argument("--pid", type=int, required=True, help="the sender's pid, for its CPU time")
parser.add_argument("--windows", type=int, default=1)
parser.add_argument("--seconds", type=float, default=5)
parser.add_argument("--warmup", type=float, default=2)
parser.add_argument("--pause", help="after the first window: create this file, wait for FILE.go")
args = parser.parse_args()

# However it goes, the script ends: the bench waits for it.
budget = 60 + args.warmup * 2 + args.seconds * (2 if args.pause else 1) + 10 * args.windows
signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"browser.py: still running after {budget:.0f} s"))
signal.alarm(int(budget))
# The bench ends it with SIGINT or SIGTERM: leave through `finally`, which ends Chromium.
signal.signal(signal.SIGTERM, lambda *_: sys.exit("browser.py: terminated"))

page = urllib.parse.urlsplit(args.url)
host = page.hostname
code = urllib.parse.parse_qs(page.fragment).get("code", [""])[0]
metrics_url = f"{page.scheme}://{page.netloc}/metrics"

# Counts frames the page shows and keeps each latency it measures with the wall-clock time it was
# taken, for the bench to read (`latencies` only keeps the last 600, without times).
HOOK = """
const c = window.camstream;
if (!c) return false;
if (!c.bench) {
  c.bench = [];
  c.latencies.push = function (v) { c.bench.push([Date.now(), v]); return Array.prototype.push.call(this, v); };
}
return true;
"""
DRAIN = "const c = window.camstream; return [c.stats, c.bench.splice(0), document.visibilityState];"


def cpu_seconds(pid):
    """utime + stime of the process (all its threads) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds():
    """utime + stime of the processes in this process group (browser.py, chromedriver, Chromium)."""
    total, group = 0, os.getpgid(0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy():
    """(busy, all) jiffies of every core since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


def metrics():
    """The sender's counters and page-latency quantiles from /metrics (Basic auth, the code)."""
    request = urllib.request.Request(metrics_url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f":{code}".encode()).decode())
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # No proxy: the sender is on this machine or in the bench's network namespace.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    text = opener.open(request, timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        m = re.match(r"^(camstream_\w+)(\{[^}]*\})?\s+(\S+)$", line)
        if m:
            values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


profile = tempfile.mkdtemp(prefix="camstream-bench-chromium-")
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--ignore-certificate-errors", "--autoplay-policy=no-user-gesture-required",
    # Every window plays as if in front (windows behind others are otherwise throttled).
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
    f"--user-data-dir={profile}", "--window-size=1280,800",
):
    options.add_argument(flag)
options.set_capability("acceptInsecureCerts", True)
# Chromium's own cache and config go to the profile folder too, not the user's.
env = dict(os.environ, XDG_CONFIG_HOME=profile, XDG_CACHE_HOME=profile, HOME=profile)
service = Service("/usr/bin/chromedriver", env=env)

driver = None
result = {"windows": args.windows, "warmup": args.warmup}
try:
    started = time.time()
    driver = webdriver.Chrome(service=service, options=options)
    handles = []
    for i in range(args.windows):
        if i:
            driver.switch_to.new_window("window")
        handles.append(driver.current_window_handle)
        driver.get(args.url)
    result["browser_start_s"] = round(time.time() - started, 2)

    tabs = [{"latencies": [], "stats": None} for _ in handles]

    def drain():
        for handle, tab in zip(handles, tabs):
            driver.switch_to.window(handle)
            if not driver.execute_script(HOOK):
                continue
            stats, samples, visibility = driver.execute_script(DRAIN)
            tab["stats"], tab["visibility"] = stats, visibility
            tab["latencies"] += samples

    # Until each window plays.
    deadline = time.time() + 30
    while True:
        drain()
        if all(t["stats"] and t["stats"]["state"] == "playing" for t in tabs):
            break
        if time.time() > deadline:
            result["error"] = "not every window played within 30 s: " + json.dumps([t["stats"] for t in tabs])
            raise SystemExit(1)
        time.sleep(0.2)
    result["playing_s"] = round(time.time() - started, 2)

    def measure(name, seconds):
        time.sleep(args.warmup)
        drain()
        shown0 = [t["stats"]["shown"] for t in tabs]
        m0, cpu0, t0 = metrics(), cpu_seconds(args.pid), time.time()
        group0, busy0 = group_cpu_seconds(), machine_busy()
        end = t0 + seconds
        while time.time() < end:
            # Often enough that no window's 600 latencies roll over between two reads.
            time.sleep(min(2.0, max(0.0, end - time.time())))
            drain()
        m1, cpu1, t1 = metrics(), cpu_seconds(args.pid), time.time()
        group1, busy1 = group_cpu_seconds(), machine_busy()
        delta = lambda key: m1.get(key, 0) - m0.get(key, 0)  # noqa: E731
        result[name] = {
            "start_unix_ms": t0 * 1000,
            "end_unix_ms": t1 * 1000,
            "seconds": t1 - t0,
            "cpu_seconds": cpu1 - cpu0,
            # Chromium's (and this script's) CPU, and how busy the whole machine was (0..1).
            "browser_cpu_seconds": group1 - group0,
            "machine_busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
            "frames_captured": delta("camstream_frames_captured_total"),
            "frames_sent": delta("camstream_frames_sent_total"),
            "bytes_sent": delta("camstream_bytes_sent_total"),
            "encoded": {k: v - m0.get(k, 0) for k, v in m1.items() if k.startswith("camstream_frames_encoded_total")},
            "page_latency_quantiles": {k: v for k, v in m1.items() if k.startswith("camstream_page_latency_seconds")},
            "shown": [t["stats"]["shown"] - s for t, s in zip(tabs, shown0)],
            "stats": [t["stats"] for t in tabs],
            "visibility": [t.get("visibility") for t in tabs],
        }

    measure("first", args.seconds)
    if args.pause:
        open(args.pause, "w").close()
        deadline = time.time() + 30
        while not os.path.exists(args.pause + ".go"):
            if time.time() > deadline:
                raise SystemExit(f"browser.py: no {args.pause}.go within 30 s")
            time.sleep(0.1)
        measure("second", args.seconds)
    # Every latency each window measured, [wall-clock ms, latency ms], from when it first played.
    result["latencies"] = [t["latencies"] for t in tabs]
finally:
    if driver is not None:
        try:
            driver.quit()
        except Exception as e:  # noqa: BLE001  (the bench kills the process group anyway)
            print(f"browser.py: quitting Chromium: {e}", file=sys.stderr)
    shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(result))
