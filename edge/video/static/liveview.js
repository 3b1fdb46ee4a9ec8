"use strict";
// The endoscopy live view: the MJPEG stream in <img>, /status polled for processed vs source fps, the one
// latency (capture -> overlay ready, the overlay's number) and the finding.
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
      // processed fps against the source's fps: the latest-frame policy skips what the model has no time
      // for (that is the policy working, not a fault); one latency, as the overlay shows it
      const src = s.source_fps ? s.source_fps.toFixed(0) : "-";
      $("fps").textContent = `${s.processed_fps.toFixed(1)} of ${src} fps analysed`;
      $("policy").textContent = s.skipped_frames > 0 ? "(latest-frame policy: older frames skipped)" : "";
      $("lat").textContent = "latency " + (s.latency_ms ?? "-") + " ms";
      $("lat").title = s.latency_definition || "";
    } catch (e) { $("state").textContent = "gateway unreachable"; }
  }

  $("logout").addEventListener("click", async () => {
    if (csrf) await fetch("/auth/logout", { method: "POST", headers: { "X-CSRF-Token": csrf } }).catch(() => {});
    toLogin();
  });
  setInterval(poll, 500);
  poll();
})();
