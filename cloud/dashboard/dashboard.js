"use strict";
// PulseGate fleet dashboard: polls the read-only API every 5 s. No external assets.
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmtTime = (ns) => new Date(Number(ns) / 1e6).toLocaleTimeString();

async function getJson(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (r.status === 401) { location.replace("/login?next=/"); throw new Error("log in first"); }
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

async function gateways() {
  const rows = await getJson("/api/gateways");
  $("gateways").tBodies[0].innerHTML = rows.map((g) =>
    `<tr data-gateway="${esc(g.gateway)}"><td>${esc(g.site)}</td><td>${esc(g.gateway)}</td>` +
    `<td class="${esc(g.state)}">${esc(g.state)}</td><td>${esc(g.backlog)}</td>` +
    `<td>${g.oldest_unsent_s == null ? "" : esc(Math.round(g.oldest_unsent_s)) + " s"}</td><td>${esc(g.software)}</td>` +
    `<td>${esc(Object.entries(g.models || {}).map(([k, v]) => k + " " + v).join(", "))}</td></tr>`).join("");
}

async function alarms() {
  const rows = await getJson("/api/alarms?since=6h");
  $("alarms").tBodies[0].innerHTML = rows.map((a) =>
    `<tr class="${esc(a.priority)}"><td>${fmtTime(a.changed)}</td><td>${esc(a.gateway)}</td><td>${esc(a.bed)}</td>` +
    `<td>${esc(a.priority)}</td><td>${esc(a.state)}</td><td>${esc(a.condition)}</td><td>${esc(a.source)}</td>` +
    `<td>${esc(a.by)}</td><td>${a.latency_total_ms == null ? "" : esc(a.latency_total_ms.toFixed(1)) + " ms"}</td></tr>`).join("");
}

async function patients() {
  const rows = await getJson("/api/patients");
  const sel = $("patient");
  const keep = sel.value;
  sel.innerHTML = rows.map((p) => `<option value="${esc(p.patient)}">${esc(p.gateway)} ${esc(p.bed)} · ${esc(p.patient.slice(0, 8))}</option>`).join("");
  if (keep && rows.some((p) => p.patient === keep)) sel.value = keep;
}

async function chart() {
  const patient = $("patient").value;
  const svg = $("chart");
  if (!patient) { svg.innerHTML = ""; return; }
  const d = await getJson(`/api/vitals?patient=${encodeURIComponent(patient)}&param=${$("param").value}&since=${$("since").value}`);
  const pts = d.points.filter((p) => p[1] != null);
  if (!pts.length) { svg.innerHTML = `<text x="10" y="20" class="axis">no data</text>`; return; }
  const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1);
  const lo = Math.min(...pts.map((p) => p[2] ?? p[1])), hi = Math.max(...pts.map((p) => p[3] ?? p[1]));
  const pad = (hi - lo) * 0.1 || 1;
  const x = (t) => 40 + (t - t0) / (t1 - t0) * 750, y = (v) => 200 - (v - lo + pad) / (hi - lo + 2 * pad) * 190;
  const band = pts.map((p) => `${x(p[0])},${y(p[3] ?? p[1])}`).concat(pts.slice().reverse().map((p) => `${x(p[0])},${y(p[2] ?? p[1])}`));
  svg.innerHTML = `<polygon class="band" points="${band.join(" ")}"/>` +
    `<polyline class="line" points="${pts.map((p) => `${x(p[0])},${y(p[1])}`).join(" ")}"/>` +
    `<text x="2" y="12" class="axis">${esc((hi).toFixed(1))} ${esc(d.unit)}</text>` +
    `<text x="2" y="205" class="axis">${esc((lo).toFixed(1))}</text>` +
    `<text x="40" y="218" class="axis">${fmtTime(t0 * 1e6)}</text><text x="740" y="218" class="axis">${fmtTime(t1 * 1e6)}</text>`;
}

async function refresh() {
  try {
    await Promise.all([gateways(), alarms(), patients().then(chart)]);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("updated").textContent = "API unreachable: " + e.message;
  }
}
["patient", "param", "since"].forEach((id) => $(id).addEventListener("change", chart));
refresh();
setInterval(refresh, 5000);
