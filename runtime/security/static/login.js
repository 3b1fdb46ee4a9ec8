"use strict";
// The login page: posts JSON (a cross-site form cannot), then goes back to the page that sent us here.
(function () {
  const params = new URLSearchParams(location.search);
  const raw = params.get("next") || "/";
  const next = raw.startsWith("/") && !raw.startsWith("//") && !raw.includes("\\") ? raw : "/";
  const form = document.getElementById("login");
  const message = document.getElementById("message");

  fetch("/auth/methods", { cache: "no-store" }).then((r) => r.json()).then((m) => {
    if (m.oidc) {
      document.getElementById("oidc").hidden = false;
      document.getElementById("oidc-link").href = "/auth/oidc/login?next=" + encodeURIComponent(next);
    }
    if (!m.local) form.hidden = true;
  }).catch(() => {});

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.textContent = "";
    const body = { user: document.getElementById("user").value, password: document.getElementById("password").value };
    try {
      const r = await fetch("/auth/login", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        credentials: "same-origin",
      });
      const out = await r.json().catch(() => ({}));
      if (r.ok && out.ok) {
        location.replace(next);
        return;
      }
      message.textContent = out.error || ("login failed (" + r.status + ")");
    } catch (e) {
      message.textContent = "the gateway is unreachable";
    }
    document.getElementById("password").value = "";
  });
})();
