"use strict";
// Arrivals board: polls /api/arrivals every 2 s; the ED acknowledges with one click. Text via textContent only.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let hospital = params.get("hospital") || "";
let me = null; // GET /auth/me: user, roles, CSRF token (the cloud's login, runtime/security)

function toLogin() { location.replace("/login?next=" + encodeURIComponent(location.pathname + location.search)); }

async function whoami() {
  const r = await fetch("/auth/me", {cache: "no-store", credentials: "same-origin"});
  if (r.status === 401) { toLogin(); return null; }
  if (r.ok) me = await r.json();
  return me;
}

const LABEL = {heart_rate: "HR", pulse_rate: "PR", spo2: "SpO2", resp_rate: "RR", nibp_sys: "SBP",
               nibp_dia: "DBP", temperature: "T"};

function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (text instanceof Node) td.appendChild(text); else td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function etaText(a) {
  if (a.state !== "active") return a.state;
  if (a.eta_s === null || a.eta_s === undefined) return "?";
  return Math.max(0, Math.round((a.eta_s - a.received_age_s) / 60)) + " min";
}

function row(a) {
  const tr = document.createElement("tr");
  tr.dataset.notice = a.notice_id;
  if (a.state !== "active") tr.className = "done";
  cell(tr, etaText(a), "eta");
  const c = document.createElement("span");
  c.className = "complaint " + a.complaint; c.textContent = a.complaint.toUpperCase();
  cell(tr, c);
  const n = a.news2.length ? a.news2[a.news2.length - 1][1] : null;
  const trend = a.news2.map((x) => x[1]).join(" > ");
  cell(tr, n === null ? "-" : trend, n === null ? "" : (n >= 7 ? "news2-high" : n >= 5 ? "news2-med" : ""));
  cell(tr, Object.entries(a.vitals).map(([k, v]) => (LABEL[k] || k) + " " + v).join("  "));
  const al = document.createElement("div");
  for (const x of a.alarms) {
    const d = document.createElement("div");
    d.className = "alarm-" + x.priority; d.textContent = x.condition + " (" + x.priority + ")";
    al.appendChild(d);
  }
  cell(tr, a.alarms.length ? al : "none");
  cell(tr, a.gateway + (a.position ? (a.position.fix ? " " + a.position.speed_kmh + " km/h" : " (no GPS fix)") : ""));
  cell(tr, Math.round(a.received_age_s) + " s ago (#" + a.rev + ")");
  if (a.acked_rev >= a.rev) {
    cell(tr, "Acknowledged", "acked");
  } else {
    const b = document.createElement("button");
    b.className = "ack"; b.type = "button";
    b.textContent = a.acked_rev ? "Acknowledge update" : "Acknowledge";
    b.addEventListener("click", () => ack(a));
    cell(tr, b);
  }
  return tr;
}

async function ack(a) {
  if (!me) await whoami();
  const headers = {"Content-Type": "application/json"};
  if (me && me.csrf) headers["X-CSRF-Token"] = me.csrf;
  const r = await fetch("/api/arrivals/ack", {method: "POST", credentials: "same-origin", headers,
    body: JSON.stringify({hospital: a.hospital, notice_id: a.notice_id, rev: a.rev})});
  if (r.status === 401) { toLogin(); return; }
  refresh();
}

function hospitals(list) {
  const sel = $("hospital");
  const have = new Set([...sel.options].map((o) => o.value));
  for (const h of list) if (!have.has(h)) {
    const o = document.createElement("option"); o.value = h; o.textContent = h; sel.appendChild(o);
  }
  sel.value = hospital;
}

async function refresh() {
  try {
    const r = await fetch("/api/arrivals" + (hospital ? "?hospital=" + encodeURIComponent(hospital) : ""),
                          {cache: "no-store", credentials: "same-origin"});
    if (r.status === 401) { toLogin(); return; }
    if (!r.ok) throw new Error(String(r.status));
    const j = await r.json();
    hospitals(j.hospitals);
    $("hospital-name").textContent = hospital;
    const rows = $("rows");
    rows.replaceChildren(...j.arrivals.map(row));
    $("empty").hidden = j.arrivals.length > 0;
    $("banner").hidden = true;
  } catch (e) { $("banner").hidden = false; }
  $("clock").textContent = new Date().toLocaleTimeString();
}

$("hospital").addEventListener("change", (ev) => {
  hospital = ev.target.value;
  history.replaceState(null, "", hospital ? "?hospital=" + encodeURIComponent(hospital) : location.pathname);
  refresh();
});
whoami().then(refresh);
setInterval(refresh, 2000);
