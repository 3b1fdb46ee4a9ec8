"use strict";
// The endoscopy live view: the MJPEG stream in <img>, /status polled for fps, latency and the finding.
(function () {
  const $ = (id) => document.getElementById(id);
  let csrf = null;

  function toLogin() { location.replace("/login?next=/"); }

  fetch("/auth/me", { cache: "no-store" }).then((r) => {
    if (r.status === 401) { toLogin(); return null; }
    return r.json();
  }).then((me) => {
    if (me) { csrf = me.csrf; $("user").textContent = me.user; }
  }).catch(() => {});

  async function poll() {
    try {
      const r = await fetch("/status", { cache: "no-store" });
      if (r.status === 401) { toLogin(); return; }
      const s = await r.json();
      $("room").textContent = "Room " + s.room;
      document.title = "PulseGate endoscopy: " + s.room;
      const st = $("state");
      st.textContent = s.finding_active ? "POLYP" : "no finding";
      st.className = s.finding_active ? "on" : "";
      $("fps").textContent = s.fps.toFixed(1) + " fps";
      $("lat").textContent = "p95 " + (s.latency_ms_p95 ?? "-") + " ms";
      $("drop").textContent = s.dropped_frames + " dropped";
    } catch (e) { $("state").textContent = "gateway unreachable"; }
  }

  $("logout").addEventListener("click", async () => {
    if (csrf) await fetch("/auth/logout", { method: "POST", headers: { "X-CSRF-Token": csrf } }).catch(() => {});
    toLogin();
  });
  setInterval(poll, 500);
  poll();
})();
