"use strict";
// PulseGate fleet dashboard: polls the read-only API; charts by uPlot (vendored, served by the cloud daemon).
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmtTime = (ns) => new Date(Number(ns) / 1e6).toLocaleTimeString();
const fmtAge = (s) => s == null ? "" : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
const num = (v, d = 0) => v == null ? "" : Number(v).toFixed(d);
const PRIORITY_COLOUR = { high: "#cf222e", medium: "#bf8700", low: "#0598bc", info: "#57606a" };
// one chart per parameter group: [title, unit, [[param, label, colour], ...]]
const CHARTS = [
  ["heart rate", "/min", [["heart_rate", "HR (ECG)", "#cf222e"], ["pulse_rate", "pulse (SpO2)", "#8250df"]]],
  ["SpO2", "%", [["spo2", "SpO2", "#0969da"]]],
  ["respiratory rate", "/min", [["resp_rate", "RR", "#1a7f37"]]],
  ["non-invasive blood pressure", "mm[Hg]", [["nibp_sys", "systolic", "#bc4c00"], ["nibp_dia", "diastolic", "#d4a72c"]]],
  ["temperature", "°C", [["temperature", "temp", "#953800"]]],
];

async function getJson(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (r.status === 401) { location.replace("/login?next=/"); throw new Error("log in first"); }
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

let gatewayRows = [];
async function gateways() {
  gatewayRows = await getJson("/api/gateways");
  $("gateways").tBodies[0].innerHTML = gatewayRows.map((g) =>
    `<tr data-gateway="${esc(g.gateway)}"><td>${esc(g.site)}</td><td>${esc(g.gateway)}</td>` +
    `<td class="${esc(g.state)}">${esc(g.state)}</td><td>${esc(fmtAge(g.last_status_age_s))} ago</td>` +
    `<td class="num">${esc(g.backlog)}</td><td class="num">${g.oldest_unsent_s == null ? "" : esc(fmtAge(g.oldest_unsent_s))}</td>` +
    `<td class="num">${g.unreceipted == null ? "" : esc(g.unreceipted)}${g.oldest_unreceipted_s ? " (" +
      esc(fmtAge(g.oldest_unreceipted_s)) + ")" : ""}</td>` +
    `<td>${esc(g.software)}</td></tr>`).join("");
  $("models").tBodies[0].innerHTML = gatewayRows.flatMap((g) => {
    const models = Object.entries(g.models || {});
    if (!models.length) return [`<tr><td>${esc(g.gateway)}</td><td>${esc(g.software)}</td><td></td><td></td></tr>`];
    return models.map(([m, v]) => `<tr data-model="${esc(m)}"><td>${esc(g.gateway)}</td><td>${esc(g.software)}</td>` +
      `<td>${esc(m)}</td><td>${esc(v)}</td></tr>`);
  }).join("");
  const sel = $("gw"), keep = sel.value;
  sel.innerHTML = `<option value="">all</option>` + gatewayRows.map((g) => `<option>${esc(g.gateway)}</option>`).join("");
  sel.value = gatewayRows.some((g) => g.gateway === keep) ? keep : "";
}

async function rollouts() {
  const rs = await getJson("/api/rollouts?since=7d");
  $("rollouts").tBodies[0].innerHTML = rs.map((r) =>
    `<tr data-rollout="${esc(r.rollout)}"><td>${esc(r.rollout)}</td><td>${esc(r.model)}</td><td>${esc(r.version)}</td>` +
    `<td class="num">${esc(r.stage)}</td><td class="${esc(r.outcome)}">${esc(r.outcome)}</td><td>${esc(r.last_reason)}</td></tr>`).join("");
  $("shadow").tBodies[0].innerHTML = rs.flatMap((r) => Object.entries(r.shadow).map(([gw, f]) =>
    `<tr><td>${esc(r.rollout)}</td><td>${esc(gw)}</td><td>${esc(f.state)}</td><td class="num">${esc(f.bed_windows)}</td>` +
    `<td class="num">${num(f.agreement, 3)}</td><td class="num">${esc(f.cand_alarms)}</td><td class="num">${esc(f.active_alarms)}</td>` +
    `<td class="num">${num(f.invoke_ms_p50, 2)} / ${num(f.invoke_ms_max, 2)}</td><td class="num">${esc(f.errors)}</td></tr>`)).join("");
  $("decisions").tBodies[0].innerHTML = rs.flatMap((r) => r.decisions.map((d) =>
    `<tr><td>${esc(fmtTime(d.time))}</td><td>${esc(r.rollout)}</td><td>${esc(d.action)}</td><td class="num">${esc(d.stage)}</td>` +
    `<td>${esc(d.gateways.join(", "))}</td><td>${esc(d.reason)}</td></tr>`).reverse()).join("");
}

function newsClass(n) { return n == null ? "" : n >= 7 ? "n7" : n >= 5 ? "n5" : n >= 1 ? "n1" : "n0"; }

async function ward() {
  const gw = $("gw").value;
  const beds = await getJson("/api/ward" + (gw ? `?gateway=${encodeURIComponent(gw)}` : ""));
  const v = (b, p, d = 0) => num(b.vitals[p]?.value, d);
  $("ward").tBodies[0].innerHTML = beds.map((b) => {
    const open = Object.entries(b.open_alarms).map(([p, n]) => `<span class="pill ${esc(p)}">${esc(n)} ${esc(p)}</span>`).join("");
    const bp = b.vitals.nibp_sys ? `${v(b, "nibp_sys")}/${v(b, "nibp_dia")}` : "";
    return `<tr data-bed="${esc(b.bed)}" data-patient="${esc(b.patient)}"><td>${esc(b.gateway)}</td><td>${esc(b.bed)}</td>` +
      `<td title="pseudonym">${esc(b.patient.slice(0, 8))}</td><td class="num">${v(b, "heart_rate") || v(b, "pulse_rate")}</td>` +
      `<td class="num">${v(b, "spo2")}</td><td class="num">${v(b, "resp_rate")}</td><td class="num">${bp}</td>` +
      `<td class="num">${v(b, "temperature", 1)}</td><td class="num ${newsClass(b.news2)}">${esc(b.news2)}</td>` +
      `<td>${open}</td><td class="${b.fresh ? "fresh" : "stale"}">${esc(fmtAge(b.age_s))}</td></tr>`;
  }).join("");
}

async function burden() {
  const d = await getJson(`/api/burden?since=${$("burden-since").value}`);
  $("bed-days").textContent = `${d.bed_days.toFixed(2)} bed-days with data in the last ${d.since}`;
  for (const by of ["priority", "source"]) {
    const rows = Object.entries(d["by_" + by]);
    const max = Math.max(1e-9, ...rows.map(([, r]) => r.per_bed_day || 0));
    $("burden-" + by).tBodies[0].innerHTML = rows.map(([k, r]) =>
      `<tr class="${by === "priority" ? esc(k) : ""}" data-key="${esc(k)}"><td>${esc(k)}</td><td class="num">${esc(r.raised)}</td>` +
      `<td class="num">${r.per_bed_day == null ? "" : esc(r.per_bed_day.toFixed(2))}</td>` +
      `<td><span class="bar" data-w="${Math.round(120 * (r.per_bed_day || 0) / max)}"></span></td></tr>`).join("");
    // widths through the CSSOM: the CSP (style-src 'self') refuses style attributes in markup
    $("burden-" + by).querySelectorAll(".bar").forEach((b) => { b.style.width = b.dataset.w + "px"; });
  }
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
  const sel = $("patient"), keep = sel.value;
  sel.innerHTML = rows.map((p) => `<option value="${esc(p.patient)}">${esc(p.gateway)} ${esc(p.bed)} · ${esc(p.patient.slice(0, 8))}</option>`).join("");
  if (keep && rows.some((p) => p.patient === keep)) sel.value = keep;
}

// -- charts ---------------------------------------------------------------------------------------
let charts = {}, chartKey = "", markers = [];

function drawMarkers(u) {
  const ctx = u.ctx, { top, height } = u.bbox;
  ctx.save();
  ctx.lineWidth = 2 * devicePixelRatio;
  for (const m of markers) {
    if (m.state !== "raised") continue;
    const x = Math.round(u.valToPos(m.t / 1000, "x", true));
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.strokeStyle = PRIORITY_COLOUR[m.priority] || "#57606a";
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
  }
  ctx.restore();
}

function makeChart(el, title, unit, labels, colours, range, data) {
  const series = [{ label: "time", value: (u, v) => v == null ? "" : new Date(v * 1000).toLocaleString() }];
  labels.forEach((label, i) => {
    series.push({ label: `${label} (${unit})`, stroke: colours[i], width: 2, spanGaps: false,
      value: (u, v) => v == null ? "" : `${v.toFixed(1)} ${unit}` });
    if (range) {
      series.push({ label: `${label} min`, stroke: colours[i] + "66", width: 1, dash: [3, 3] });
      series.push({ label: `${label} max`, stroke: colours[i] + "66", width: 1, dash: [3, 3] });
    }
  });
  const opts = {
    title, width: Math.max(300, el.clientWidth - 8), height: 190, series,
    scales: { x: { time: true } },
    axes: [{ label: "time", labelSize: 18, size: 40 }, { label: unit, labelSize: 18, size: 56 }],
    legend: { live: true },
    hooks: { draw: [drawMarkers] },
  };
  return new uPlot(opts, data, el);
}

// [[t_ms, mean, min, max], ...] per param -> uPlot columns on the union of their times (seconds)
function align(sets, range) {
  const xs = [...new Set(sets.flatMap((s) => s.map((p) => p[0])))].sort((a, b) => a - b);
  const cols = [xs.map((t) => t / 1000)];
  for (const s of sets) {
    const by = new Map(s.map((p) => [p[0], p]));
    cols.push(xs.map((t) => by.get(t)?.[1] ?? null));
    if (range) {
      cols.push(xs.map((t) => by.get(t)?.[2] ?? null));
      cols.push(xs.map((t) => by.get(t)?.[3] ?? null));
    }
  }
  return cols;
}

async function trends() {
  const patient = $("patient").value, since = $("since").value;
  const box = $("charts");
  if (!patient) { box.innerHTML = `<div class="chart"><div class="empty">no patients with data</div></div>`; charts = {}; chartKey = ""; return; }
  const key = patient + since;
  const q = `patient=${encodeURIComponent(patient)}&since=${since}`;
  const [scores, marks, ...vitals] = await Promise.all([
    getJson(`/api/scores?${q}`), getJson(`/api/markers?${q}`),
    ...CHARTS.flatMap(([, , ps]) => ps.map(([p]) => getJson(`/api/vitals?${q}&param=${p}`))),
  ]);
  markers = marks;
  if (key !== chartKey) {
    Object.values(charts).forEach((c) => c.destroy());
    charts = {};
    box.innerHTML = "";
    chartKey = key;
  }
  let i = 0;
  const specs = CHARTS.map(([title, unit, ps]) => {
    const sets = ps.map(() => vitals[i++].points);
    return { id: "chart-" + ps[0][0], title, unit, labels: ps.map((p) => p[1]), colours: ps.map((p) => p[2]), sets, range: ps.length === 1 };
  });
  specs.push({ id: "chart-news2", title: "NEWS2 (0-20) and anomaly score (x20)", unit: "score", labels: ["NEWS2", "anomaly x20"],
    colours: ["#cf222e", "#8250df"], range: false,
    sets: [scores.points.map((p) => [p[0], p[1]]), scores.points.map((p) => [p[0], p[2] == null ? null : p[2] * 20])] });
  for (const s of specs) {
    let el = $(s.id);
    if (!el) {
      el = document.createElement("div");
      el.id = s.id; el.className = "chart";
      box.appendChild(el);
    }
    const data = align(s.sets, s.range);
    el.dataset.points = String(data[0].length);
    el.dataset.markers = String(markers.filter((m) => m.state === "raised").length);
    if (!data[0].length) {
      if (charts[s.id]) { charts[s.id].destroy(); delete charts[s.id]; }
      el.innerHTML = `<div class="empty">${esc(s.title)}: no data in the last ${esc(since)}</div>`;
      continue;
    }
    if (charts[s.id]) charts[s.id].setData(data);
    else { el.innerHTML = ""; charts[s.id] = makeChart(el, s.title, s.unit, s.labels, s.colours, s.range, data); }
  }
}

async function refresh() {
  try {
    await Promise.all([gateways().then(ward), alarms(), burden(), patients().then(trends), rollouts()]);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("updated").textContent = "API unreachable: " + e.message;
  }
}
["patient", "since"].forEach((id) => $(id).addEventListener("change", () => trends().catch((e) => { $("updated").textContent = e.message; })));
$("gw").addEventListener("change", () => ward().catch(() => {}));
$("burden-since").addEventListener("change", () => burden().catch(() => {}));
window.addEventListener("resize", () => { for (const c of Object.values(charts)) c.setSize({ width: Math.max(300, c.root.parentElement.clientWidth - 8), height: 190 }); });
refresh();
setInterval(refresh, 10000);
