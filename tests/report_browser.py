"""Open an HTML report in a real headless Chromium (Debian's package) and tell what a user would see.

Talks the DevTools protocol over its websocket: the page is loaded from a file, every console message,
uncaught exception and network request is recorded, the plots are measured (rendered ``<img>`` and
``<svg>`` elements with a size), and a PNG screenshot is taken. Any request other than the file itself
and ``data:`` URIs is a network fetch: reports must be self-contained (air-gapped clusters, KFP UI sandbox).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclasses.dataclass
class PageReport:
    """What the browser saw."""

    console_errors: list[str]
    exceptions: list[str]
    fetches: list[str]  # URLs requested other than the page itself and data: URIs
    plots: int  # <img> decoded with a size, and <svg> with a rendered box
    broken_images: int
    text: str
    screenshot: bytes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_report(path: str | Path, width: int = 1280, height: int = 2000, timeout: float = 60.0) -> PageReport:
    """Load ``path`` in headless Chromium and report errors, fetches, plots and a screenshot."""
    import websocket  # websocket-client (a dependency of the kubernetes client)

    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    page_url = Path(path).absolute().as_uri()  # not resolve(): the .html link, not the artifact file
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="kfpc-chromium-")
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
         "--disable-sync", f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
         "--remote-allow-origins=*", f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + timeout
        targets = None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                    targets = [t for t in json.load(response) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        if not targets:
            raise RuntimeError("chromium did not open its DevTools endpoint")
        ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=timeout,
                                         suppress_origin=True)
        counter = iter(range(1, 1_000_000))
        events: list[dict] = []

        def call(method: str, **params) -> dict:
            ident = next(counter)
            ws.send(json.dumps({"id": ident, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv())
                if message.get("id") == ident:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})
                events.append(message)

        for domain in ("Page", "Runtime", "Log", "Network"):
            call(f"{domain}.enable")
        call("Page.navigate", url=page_url)
        loaded = False
        while time.time() < deadline and not loaded:
            message = json.loads(ws.recv())
            events.append(message)
            loaded = message.get("method") == "Page.loadEventFired"
        time.sleep(0.5)  # late console messages and image decodes
        measure = call("Runtime.evaluate", returnByValue=True, expression="""(() => {
            const imgs = [...document.images];
            const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0);
            const svgs = [...document.querySelectorAll('svg')].filter(s => {
                const r = s.getBoundingClientRect(); return r.width > 0 && r.height > 0 && s.childElementCount > 0; });
            return {plots: ok.length + svgs.length, broken: imgs.length - ok.length,
                    text: document.body ? document.body.innerText : ''};
        })()""")["result"]["value"]
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        ws.close()
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)

    console_errors, exceptions, fetches = [], [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            console_errors.append(params["entry"].get("text", ""))
        elif method == "Runtime.exceptionThrown":
            exceptions.append(params["exceptionDetails"].get("text", "") + " "
                              + str(params["exceptionDetails"].get("exception", {}).get("description", "")))
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url != page_url and not url.startswith("data:"):
                fetches.append(url)
    return PageReport(console_errors, exceptions, fetches, measure["plots"], measure["broken"], measure["text"],
                      base64.b64decode(shot["data"]))
