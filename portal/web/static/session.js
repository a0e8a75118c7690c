// The remote job page: asks the job's JSON (from the portal's database) every second until the
// job has ended, and shows its state, progress, summary and result. Served as a file: the
// portal's Content-Security-Policy allows no inline script.
"use strict";
(function () {
  const job = document.getElementById("job");
  if (!job || job.dataset.final === "1") return;
  const url = job.dataset.url;
  const started = Date.now();
  const LIMIT_MS = 2 * 3600 * 1000; // a page left open stops asking after two hours
  let delay = 1000;

  function show(data) {
    document.getElementById("job-state").textContent = data.state_text || data.state; // in the reader's language
    document.getElementById("job-progress").value = data.progress || 0;
    document.getElementById("job-summary").textContent = data.summary || "";
    // HTML the portal rendered with every value escaped (portal/web/session_view.py)
    document.getElementById("job-result").innerHTML = data.html;
  }

  async function poll() {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      show(data);
      delay = 1000;
      if (data.final) {
        job.dataset.final = "1";
        const stop = document.getElementById("job-stop");
        if (stop) stop.remove();
        return;
      }
    } catch (err) {
      delay = Math.min(delay * 2, 10000); // the portal away: ask less often, at most every 10 s
    }
    if (Date.now() - started < LIMIT_MS) setTimeout(poll, delay);
  }
  setTimeout(poll, delay);
})();
