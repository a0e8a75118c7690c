"""Run inside the appliance VM as a tablet on the box's page: pair (the pairing button pressed with
``vci pair --approve``), add the ticket, upload the package, start programming it, and wait until
the transfer is under way (``percent`` at least MIN_PERCENT, below 100). Prints the job as JSON.
Only the standard library: it runs with the image's system Python.
Usage: tablet_flash.py BASE_URL TICKET_FILE PACKAGE_FILE ECU MIN_PERCENT TIMEOUT"""

import http.cookiejar
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

VCI = "/opt/vci/venv/bin/vci"


class Tablet:
    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.csrf = ""

    def call(self, method: str, path: str, body=None, raw: bytes | None = None):
        headers = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with self.opener.open(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


def main(base: str, ticket: str, package: str, ecu: str, min_percent: float, timeout: float):
    tablet = Tablet(base)
    status, req = tablet.call("POST", "/api/pair", {"name": "vm-tablet"})
    assert status == 200, (status, req)
    collect = f"/api/pair/{req['id']}/collect"
    status, _ = tablet.call("POST", collect, {"claim": req["claim"]})
    assert status == 202, status  # waits for the button
    subprocess.run([VCI, "pair", "--approve"], check=True, timeout=60)
    status, got = tablet.call("POST", collect, {"claim": req["claim"]})
    assert status == 200, (status, got)
    status, session = tablet.call("GET", "/api/session")
    tablet.csrf = session["csrf"]
    with open(ticket) as f:
        status, added = tablet.call("POST", "/api/tickets", {"token": f.read().strip()})
    assert status == 201, (status, added)
    with open(package, "rb") as f:
        status, kept = tablet.call("POST", "/api/packages?name=vm-flash.vcipkg", raw=f.read())
    assert status == 201, (status, kept)
    status, job = tablet.call(
        "POST",
        "/api/jobs",
        {"kind": "programming", "ecu": ecu, "params": {"package": kept["file"]}},
    )
    assert status == 202, (status, job)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = tablet.call("GET", f"/api/jobs/{job['id']}")
        assert job["state"] in ("queued", "running"), job
        percent = job["progress"].get("percent") or 0
        if min_percent <= percent < 100:
            print(json.dumps(job))
            return
        time.sleep(0.1)
    raise SystemExit(f"the transfer did not reach {min_percent} % in {timeout} s: {job}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], float(a[4]), float(a[5]))
