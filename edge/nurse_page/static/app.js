// PulseGate nurse station: live state over a WebSocket, alarms by priority, IEC 60601-1-8 style signals.
"use strict";

const LABELS = { heart_rate: "HR", pulse_rate: "PR", spo2: "SpO2", resp_rate: "RR", nibp_sys: "BP sys",
                 nibp_dia: "BP dia", temperature: "Temp" };
const UNITS = { heart_rate: "/min", pulse_rate: "/min", spo2: "%", resp_rate: "/min", nibp_sys: "mmHg",
                nibp_dia: "mmHg", temperature: "°C" };
const SHOWN = ["heart_rate", "spo2", "resp_rate", "nibp_sys", "temperature"];
const ARROWS = { "1": "↑", "-1": "↓", "0": "→" };
const PRIO_RANK = { high: 3, medium: 2, low: 1, info: 0 };

const $ = (id) => document.getElementById(id);
let state = null;
let ws = null;
let retry = 500;
let me = null; // who is logged in (GET /auth/me): name, roles, CSRF token, what they may do

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function toLogin() {
  location.replace("/login?next=" + encodeURIComponent(location.pathname));
}

async function whoami() {
  const r = await fetch("/auth/me", { cache: "no-store", credentials: "same-origin" });
  if (r.status === 401) { toLogin(); return null; }
  me = await r.json();
  $("user").textContent = `${me.user} (${me.roles.join(", ")})`;
  document.body.dataset.mayAct = me.may_act ? "yes" : "no";
  const sel = $("silence-s");
  sel.replaceChildren();
  for (const s of [30, 60, 120, 300, 600].filter((x) => x <= me.max_silence_s)) {
    const o = el("option", null, s < 60 ? `${s} s` : `${s / 60} min`);
    o.value = String(s);
    sel.append(o);
  }
  sel.value = String(Math.min(120, me.max_silence_s));
  $("silence-label").hidden = !me.may_act;
  return me;
}

function say(text) {
  $("message").textContent = text;
  clearTimeout(say.t);
  say.t = setTimeout(() => { $("message").textContent = ""; }, 4000);
}

async function post(path, body) {
  if (!me || !me.csrf) { toLogin(); return false; }
  const r = await fetch(path, { method: "POST", credentials: "same-origin", body: JSON.stringify(body),
                                headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf } });
  if (r.status === 401) { toLogin(); return false; }
  const j = await r.json().catch(() => ({ ok: false, error: r.status === 403 ? "not allowed for your role" : r.statusText }));
  if (!j.ok) say(j.error || "failed");
  else if (ws && ws.readyState === 1) ws.send("refresh");
  return j.ok;
}

function ack(id) {
  post("/nurse/api/ack", { alarm_id: id }).then((ok) => ok && say(`Acknowledged by ${me.user}`));
}

function silence(id) {
  const s = Number($("silence-s").value) || Math.min(120, me ? me.max_silence_s : 0);
  post("/nurse/api/silence", { alarm_id: id, seconds: s })
    .then((ok) => ok && say(`Audio paused ${Math.round(s)} s by ${me.user}`));
}

function fmtTime(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function renderAlarms(alarms) {
  const list = $("alarms");
  const have = new Map([...list.children].map((li) => [li.dataset.id, li]));
  let prev = null;
  for (const a of alarms) {
    let li = have.get(a.alarm_id);
    if (!li) {
      li = el("li");
      li.dataset.id = a.alarm_id;
      li.append(el("span", "prio"), el("span", "what"), el("span", "actions"), el("span", "meta"));
      const ackB = el("button", "ack", "Acknowledge");
      ackB.type = "button";
      ackB.addEventListener("click", () => ack(a.alarm_id));
      const silB = el("button", "silence", "Pause audio");
      silB.type = "button";
      silB.addEventListener("click", () => silence(a.alarm_id));
      li.querySelector(".actions").append(ackB, silB);
    }
    have.delete(a.alarm_id);
    const audible = a.state === "active" || a.state === "latched";
    li.className = `alarm ${a.priority} ${a.kind} state-${a.state}` + (audible ? " audible" : "");
    li.dataset.bed = a.bed;
    li.dataset.priority = a.priority;
    li.dataset.state = a.state;
    li.querySelector(".prio").textContent = a.priority;
    const val = a.value !== null && a.value !== undefined ? ` ${a.value}` : "";
    const sc = a.score !== null && a.score !== undefined ? ` (score ${a.score})` : "";
    li.querySelector(".what").textContent = `${a.bed}: ${a.message}${val}${sc}`;
    const by = a.acked_by ? ` · ack ${a.acked_by}` : "";
    const esc = a.escalation ? ` · escalated ×${a.escalation}` : "";
    li.querySelector(".meta").textContent = `${a.kind} · ${a.source} · ${fmtTime(a.t)} · ${a.state}${by}${esc}`;
    const mayAct = !!(me && me.may_act);
    li.querySelector(".ack").hidden = a.state === "acknowledged" || !mayAct;
    li.querySelector(".silence").hidden = !audible || !mayAct;
    if (prev ? prev.nextSibling !== li : list.firstChild !== li) {
      list.insertBefore(li, prev ? prev.nextSibling : list.firstChild);
    }
    prev = li;
  }
  for (const li of have.values()) li.remove();
  $("alarm-count").textContent = alarms.length;
  $("no-alarms").hidden = alarms.length > 0;
}

function renderBeds(beds, alarms) {
  const worst = {};
  for (const a of alarms) {
    if ((PRIO_RANK[a.priority] || 0) > (PRIO_RANK[worst[a.bed]] || 0)) worst[a.bed] = a.priority;
  }
  const grid = $("beds");
  const have = new Map([...grid.children].map((d) => [d.dataset.bed, d]));
  for (const b of beds) {
    let d = have.get(b.bed);
    if (!d) {
      d = el("article", "bed");
      d.dataset.bed = b.bed;
      const h = el("h3");
      h.append(el("span", "name", b.bed), el("span", "news2"));
      d.append(h, el("div", "vals"), el("div", "ctx"));
      grid.append(d);
    }
    have.delete(b.bed);
    d.className = "bed" + (worst[b.bed] ? ` alarm-${worst[b.bed]}` : "");
    const n = d.querySelector(".news2");
    n.textContent = b.news2 === null ? "NEWS2 –" : `NEWS2 ${b.news2}${b.news2_missing.length ? "+" : ""}`;
    n.className = "news2" + (b.news2_response ? ` r-${b.news2_response}` : "");
    n.title = b.news2_missing.length ? `missing: ${b.news2_missing.join(", ")}` : "";
    const vals = d.querySelector(".vals");
    vals.replaceChildren();
    for (const p of SHOWN) {
      const v = b.values[p] || (p === "heart_rate" ? b.values.pulse_rate : undefined);
      const k = el("span", "k", LABELS[p]);
      const cell = el("span", "v" + (v && v.stale ? " stale" : ""));
      cell.dataset.param = p;
      if (v) {
        cell.textContent = `${v.v}`;
        cell.append(el("span", "trend", ARROWS[String(v.trend)]), el("small", null, ` ${UNITS[p]}`));
      } else cell.textContent = "–";
      vals.append(k, cell);
    }
    const ctx = [];
    if (b.on_oxygen) ctx.push("O2");
    if (b.scale2) ctx.push("SpO2 scale 2");
    if (b.consciousness !== "A") ctx.push(`ACVPU ${b.consciousness}`);
    if (b.anomaly !== null) ctx.push(`anomaly ${b.anomaly}`);
    d.querySelector(".ctx").textContent = ctx.join(" · ");
  }
  for (const d of have.values()) d.remove();
}

function render(s) {
  state = s;
  $("title").textContent = s.title;
  document.title = s.title;
  $("cloud-banner").hidden = !!s.cloud_online;
  renderAlarms(s.alarms);
  renderBeds(s.beds, s.alarms);
  sound.update(s.alarms);
}

// --- sound: WebAudio tones generated here (no files, no network) -------------------------------------------
// IEC 60601-1-8 style bursts: high = 10 pulses (3+2, pause, 3+2) repeated every 5 s; medium = 3 pulses every
// 8 s; low = 2 pulses every 20 s. Only the highest priority that is audible (not acknowledged/paused) sounds.
const sound = {
  ctx: null, enabled: false, timer: null, priority: null,
  toggle() {
    if (!this.ctx) this.ctx = new (window.AudioContext || window.webkitAudioContext)();
    this.enabled = !this.enabled;
    $("sound").setAttribute("aria-pressed", String(this.enabled));
    $("sound").textContent = this.enabled ? "Sound on" : "Enable sound";
    this.priority = null;
    if (state) this.update(state.alarms);
  },
  pulse(t, freq) {
    const o = this.ctx.createOscillator(), g = this.ctx.createGain();
    o.type = "square";   // rich in harmonics, as the standard asks for
    o.frequency.value = freq;
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(0.15, t + 0.02);
    g.gain.setValueAtTime(0.15, t + 0.13);
    g.gain.linearRampToValueAtTime(0, t + 0.16);
    o.connect(g).connect(this.ctx.destination);
    o.start(t); o.stop(t + 0.17);
  },
  burst(p) {
    const t0 = this.ctx.currentTime + 0.05;
    const seq = p === "high" ? [0, .25, .5, 1.0, 1.25, 2.0, 2.25, 2.5, 3.0, 3.25]
              : p === "medium" ? [0, .3, .6] : [0, .4];
    const f = p === "high" ? [523, 698, 880] : p === "medium" ? [523, 659, 784] : [523, 392];
    seq.forEach((dt, i) => this.pulse(t0 + dt, f[i % f.length]));
  },
  update(alarms) {
    let p = null;
    for (const a of alarms) {
      if ((a.state === "active" || a.state === "latched") &&
          (PRIO_RANK[a.priority] || 0) > (PRIO_RANK[p] || 0)) p = a.priority;
    }
    document.body.dataset.sounding = p || "";
    if (!this.enabled || !this.ctx) { p = null; }
    if (p === this.priority) return;
    this.priority = p;
    clearInterval(this.timer);
    if (!p) return;
    this.burst(p);
    this.timer = setInterval(() => this.burst(p), p === "high" ? 5000 : p === "medium" ? 8000 : 20000);
  },
};

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${proto}//${location.host}/nurse/ws`);
  ws.onopen = () => { retry = 500; $("link-banner").hidden = true; };
  ws.onmessage = (ev) => render(JSON.parse(ev.data));
  ws.onclose = () => {
    $("link-banner").hidden = false;
    // the session may have expired: /auth/me sends us to the login page if so
    setTimeout(() => whoami().then((m) => m && connect()).catch(() => setTimeout(connect, retry)), retry);
    retry = Math.min(retry * 2, 5000);
  };
}

async function logout() {
  if (me && me.csrf) {
    await fetch("/auth/logout", { method: "POST", credentials: "same-origin",
                                  headers: { "X-CSRF-Token": me.csrf } }).catch(() => {});
  }
  toLogin();
}

$("sound").addEventListener("click", () => sound.toggle());
$("logout").addEventListener("click", logout);
setInterval(() => { $("clock").textContent = new Date().toLocaleTimeString(); }, 1000);
whoami().then((m) => m && connect()).catch(() => say("the gateway is unreachable"));
