"use strict";
// The crew page: picks from fixed lists only (no free text); polls the gateway's state every second.
const $ = (id) => document.getElementById(id);
let built = false;
let me = null; // GET /auth/me: user, roles, CSRF token (the gateway's login, runtime/security)

function toLogin() { location.replace("/login?next=" + encodeURIComponent(location.pathname)); }

async function whoami() {
  const r = await fetch("/auth/me", {cache: "no-store", credentials: "same-origin"});
  if (r.status === 401) { toLogin(); return null; }
  if (r.ok) me = await r.json();
  return me;
}

function option(sel, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text; sel.appendChild(o);
}

function build(st) {
  for (const h of st.hospitals) option($("hospital"), h, h);
  for (const b of st.beds) option($("bed"), b, b);
  st.complaints.forEach((c, i) => {
    const l = document.createElement("label");
    const r = document.createElement("input");
    r.type = "radio"; r.name = "complaint"; r.value = c; r.required = true; if (i === 0) r.checked = true;
    l.appendChild(r); l.appendChild(document.createTextNode(" " + c.toUpperCase()));
    $("complaints").appendChild(l);
  });
  built = true;
}

function fmtEta(s) {
  if (s === null || s === undefined) return "position unknown";
  const m = Math.round(s / 60);
  return m + " min";
}

function render(st) {
  if (!built) build(st);
  $("title").textContent = st.title || "PulseGate crew";
  const link = st.links;
  $("link").textContent = link ? (link.connected ? "link " + link.active : "link down") : "link ?";
  $("link").className = "pill " + (link && link.connected ? "up" : "down");
  const p = st.position;
  $("gps").textContent = p ? (p.fix ? "GPS " + p.speed_kmh + " km/h" : "GPS no fix") : "GPS none";
  $("gps").className = "pill " + (p && p.fix ? "up" : "down");
  const n = st.notice;
  $("none").hidden = !!n; $("status").hidden = !n;
  const active = n && n.state === "active";
  $("arrived").hidden = !active; $("cancel").hidden = !active;
  if (n) {
    $("s-hospital").textContent = n.hospital;
    $("s-complaint").textContent = n.complaint.toUpperCase() + (n.state !== "active" ? " (" + n.state + ")" : "");
    $("s-eta").textContent = fmtEta(n.eta_s);
    $("s-news2").textContent = n.news2 === null ? "-" : String(n.news2);
    $("s-rev").textContent = "#" + n.rev;
    const ack = $("s-ack");
    if (n.acked) {
      ack.textContent = "Acknowledged (update #" + n.acked_rev + ")";
      ack.className = "ack yes";
    } else {
      ack.textContent = "Waiting for the ED";
      ack.className = "ack no";
    }
  }
  const b = st.budget;
  $("budget").textContent = b ? "Data this hour: " + Math.round(b.bytes_hour / 1024) + " / " +
    Math.round(b.budget_bytes_per_hour / 1024) + " kB (level " + b.level + ")" : "";
}

async function post(path, body) {
  if (!me) await whoami();
  const headers = {"Content-Type": "application/json"};
  if (me && me.csrf) headers["X-CSRF-Token"] = me.csrf;
  const r = await fetch(path, {method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body)});
  if (r.status === 401) { toLogin(); return; }
  const j = await r.json().catch(() => ({ok: false, error: r.status === 403 ? "not allowed for your role" : "refused"}));
  $("message").textContent = j.ok ? "" : (j.error || "refused");
  if (j.ok) render(j);
}

async function poll() {
  try {
    const r = await fetch("/crew/api/state", {cache: "no-store", credentials: "same-origin"});
    if (r.status === 401) { toLogin(); return; }
    if (r.ok) render(await r.json());
  } catch (e) { $("message").textContent = "gateway unreachable"; }
}

$("notice-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const c = document.querySelector("input[name=complaint]:checked");
  post("/crew/api/notice", {hospital: $("hospital").value, complaint: c ? c.value : "", bed: $("bed").value});
});
$("arrived").addEventListener("click", () => post("/crew/api/finish", {state: "arrived"}));
$("cancel").addEventListener("click", () => post("/crew/api/finish", {state: "cancelled"}));
whoami().then(poll);
setInterval(poll, 1000);
