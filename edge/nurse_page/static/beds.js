// Bed tiles and the bed view of the nurse station.
// A tile: the bed's colour follows its highest OPEN alarm nobody acknowledged yet (server side: bed.alarm);
// a value beyond a limit of the bed's profile is coloured by that limit's priority and shows the limit;
// NEWS2 with what is missing and its clinical response; the anomaly score as a small trend and its level.
// The bed view (click a tile): per-minute sparklines of the last hours from the gateway's own memory.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const TREND_PARAMS = ["heart_rate", "spo2", "resp_rate", "nibp_sys", "temperature"];

/** An SVG sparkline of points [[minutesAgo, value], ...] over the last `spanMin` minutes. */
function sparkline(points, spanMin, opts) {
  const w = opts.w || 240, h = opts.h || 48, pad = 3;
  const svg = document.createElementNS(SVGNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "spark" + (opts.cls ? ` ${opts.cls}` : ""));
  svg.setAttribute("role", "img");
  const vals = points.map((p) => p[1]).concat(opts.lines || []);
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (opts.min !== undefined) lo = Math.min(lo, opts.min);
  if (opts.max !== undefined) hi = Math.max(hi, opts.max);
  if (!(hi > lo)) { hi = lo + 1; lo -= 1; }
  const x = (ago) => pad + (w - 2 * pad) * (1 - ago / spanMin);
  const y = (v) => h - pad - (h - 2 * pad) * (v - lo) / (hi - lo);
  for (const l of opts.lines || []) {
    const ln = document.createElementNS(SVGNS, "line");
    ln.setAttribute("x1", pad); ln.setAttribute("x2", w - pad);
    ln.setAttribute("y1", y(l)); ln.setAttribute("y2", y(l));
    ln.setAttribute("class", "limit-line");
    svg.append(ln);
  }
  if (points.length) {
    const pl = document.createElementNS(SVGNS, "polyline");
    pl.setAttribute("points", points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
    pl.setAttribute("class", "line");
    svg.append(pl);
  }
  svg.dataset.points = String(points.length);
  return svg;
}

function limitText(v) {
  const b = v.breach;
  if (!b) return "";
  return b.direction === "low" ? `below low limit ${b.limit}` : `above high limit ${b.limit}`;
}

function renderValue(cell, p, v) {
  cell.replaceChildren();
  cell.className = "v" + (v && v.stale ? " stale" : "");
  delete cell.dataset.breach;
  if (!v) { cell.textContent = "–"; return; }
  const num = el("span", "num", `${v.v}`);
  cell.append(num, el("span", "trend", ARROWS[String(v.trend)]), el("small", null, ` ${UNITS[p]}`));
  if (v.breach && !v.stale) {
    cell.classList.add("out", `out-${v.breach.priority}`);
    cell.dataset.breach = v.breach.direction;
    cell.append(el("span", "limit", v.breach.direction === "low" ? `▼ low limit ${v.breach.limit}`
                                                                     : `▲ high limit ${v.breach.limit}`));
    cell.title = limitText(v);
  } else {
    const lim = [v.low !== null && v.low !== undefined ? `low ${v.low}` : null,
                 v.high !== null && v.high !== undefined ? `high ${v.high}` : null].filter(Boolean);
    cell.title = lim.length ? `limits: ${lim.join(", ")}` : "no alarm limits";
  }
}

function renderBeds(beds) {
  const grid = $("beds");
  const have = new Map([...grid.children].map((d) => [d.dataset.bed, d]));
  for (const b of beds) {
    let d = have.get(b.bed);
    if (!d) {
      d = el("article", "bed");
      d.dataset.bed = b.bed;
      d.tabIndex = 0;
      d.setAttribute("role", "button");
      d.setAttribute("aria-label", `${b.bed}: open trends`);
      const h = el("h3");
      h.append(el("span", "name", b.bed), el("span", "news2"));
      d.append(h, el("div", "vals"), el("div", "news2-words"), el("div", "anomaly"), el("div", "ctx"));
      d.addEventListener("click", () => bedView.open(d.dataset.bed));
      d.addEventListener("keydown", (ev) => { if (ev.key === "Enter") bedView.open(d.dataset.bed); });
      grid.append(d);
    }
    have.delete(b.bed);
    d.className = "bed" + (b.alarm ? ` alarm-${b.alarm}` : "");
    d.dataset.alarm = b.alarm || "";
    d.dataset.acknowledged = String(b.alarms_acknowledged || 0);
    const w = b.news2_words || {};
    const n = d.querySelector(".news2");
    n.textContent = b.news2 === null ? "NEWS2 –" : `NEWS2 ${w.complete ? "" : "≥"}${b.news2}`;
    n.className = "news2" + (b.news2_response ? ` r-${b.news2_response}` : "");
    const nw = d.querySelector(".news2-words");
    nw.replaceChildren(el("span", "news2-text", w.text || ""), el("span", "news2-response",
      w.band ? `${w.band}: ${w.response}` : (w.response || "")));
    const vals = d.querySelector(".vals");
    vals.replaceChildren();
    for (const p of SHOWN) {
      const v = b.values[p] || (p === "heart_rate" ? b.values.pulse_rate : undefined);
      const cell = el("span", "v");
      cell.dataset.param = p;
      renderValue(cell, p, v);
      vals.append(el("span", "k", LABELS[p]), cell);
    }
    const an = d.querySelector(".anomaly");
    an.replaceChildren();
    const aw = b.anomaly_words || {};
    an.dataset.level = aw.level || "";
    if (b.anomaly !== null || aw.text) {
      const trend = (b.anomaly_trend || []).map((s, i, arr) => [arr.length - 1 - i, s]);
      if (trend.length > 1) {
        an.append(sparkline(trend, Math.max(trend.length - 1, 1), { w: 90, h: 22, min: 0, max: 1, cls: "anomaly-spark",
          lines: b.anomaly_threshold !== null ? [b.anomaly_threshold] : [] }));
      }
      an.append(el("span", "anomaly-text", aw.text || ""));
      if (b.anomaly !== null) an.title = `score ${b.anomaly}` + (b.anomaly_threshold !== null ? `, alarm level ${b.anomaly_threshold}` : "");
    }
    const ctx = [];
    if (b.on_oxygen) ctx.push("on O2");
    if (b.scale2) ctx.push("SpO2 scale 2");
    if (b.consciousness !== "A") ctx.push(`ACVPU ${b.consciousness}`);
    if (b.alarms_acknowledged) ctx.push(`${b.alarms_acknowledged} acknowledged`);
    d.querySelector(".ctx").textContent = ctx.join(" · ");
  }
  for (const d of have.values()) d.remove();
}

const bedView = {
  bed: null, timer: null,
  async open(bed) {
    this.bed = bed;
    const dlg = $("bed-view");
    $("bed-view-title").textContent = `${bed}: trends`;
    if (!dlg.open) dlg.showModal();
    await this.load();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.load(), 60000);
  },
  close() {
    clearInterval(this.timer);
    this.bed = null;
    if ($("bed-view").open) $("bed-view").close();
  },
  async load() {
    if (!this.bed) return;
    const hours = Number($("bed-view-hours").value) || 6;
    const charts = $("bed-view-charts");
    let j;
    try {
      const r = await fetch(`/nurse/api/trends?bed=${encodeURIComponent(this.bed)}&hours=${hours}`, { cache: "no-store" });
      j = await r.json();
    } catch (e) { j = { ok: false, error: "the gateway is unreachable" }; }
    if (!j.ok) { charts.replaceChildren(el("p", "hint", j.error || "no trends")); return; }
    const live = state ? (state.beds.find((b) => b.bed === this.bed) || { values: {} }) : { values: {} };
    const span = hours * 60;
    const rows = [];
    for (const p of TREND_PARAMS) rows.push(this.row(LABELS[p], UNITS[p], j.series[p] || [], span, live.values[p], p));
    rows.push(this.row("NEWS2", "", j.news2 || [], span, null, "news2"));
    rows.push(this.row("Anomaly", "", j.anomaly || [], span, null, "anomaly",
                       live.anomaly_threshold !== null && live.anomaly_threshold !== undefined ? [live.anomaly_threshold] : []));
    charts.replaceChildren(...rows);
    $("bed-view-note").textContent = `Per-minute means from this gateway's memory (no cloud needed): last ${hours} h` +
      `, at most ${Math.round(j.minutes_kept / 60)} h kept.`;
  },
  row(label, unit, pts, span, live, key, extra) {
    const r = el("div", "trend-row");
    r.dataset.param = key;
    const lines = (extra || []).slice();
    if (live) {
      if (live.low !== null && live.low !== undefined) lines.push(live.low);
      if (live.high !== null && live.high !== undefined) lines.push(live.high);
    }
    const vs = pts.map((p) => p[1]);
    const summary = vs.length ? `now ${vs[vs.length - 1]} · min ${Math.min(...vs)} · max ${Math.max(...vs)}` : "no data yet";
    r.append(el("span", "trend-label", `${label}${unit ? ` (${unit.trim()})` : ""}`),
             sparkline(pts, span, { w: 480, h: 56, lines }), el("span", "trend-summary", summary));
    return r;
  },
};

document.getElementById("bed-view-close").addEventListener("click", () => bedView.close());
document.getElementById("bed-view").addEventListener("close", () => { clearInterval(bedView.timer); bedView.bed = null; });
document.getElementById("bed-view-hours").addEventListener("change", () => bedView.load());
for (const b of document.querySelectorAll("#bed-view-events .event")) {
  b.addEventListener("click", () => { if (bedView.bed) recordEvent(bedView.bed, b.dataset.code); });
}
