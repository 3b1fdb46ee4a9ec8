// PulseGate nurse station: live state over a WebSocket, alarms by priority (sound.js: IEC 60601-1-8 tones
// and the SOUND OFF banner; beds.js: bed tiles and the bed trend view).
"use strict";

const LABELS = { heart_rate: "HR", pulse_rate: "PR", spo2: "SpO2", resp_rate: "RR", nibp_sys: "BP sys",
                 nibp_dia: "BP dia", temperature: "Temp" };
const UNITS = { heart_rate: "/min", pulse_rate: "/min", spo2: "%", resp_rate: "/min", nibp_sys: "mmHg",
                nibp_dia: "mmHg", temperature: "°C" };
const SHOWN = ["heart_rate", "spo2", "resp_rate", "nibp_sys", "temperature"];
const ARROWS = { "1": "↑", "-1": "↓", "0": "→" };

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
  $("bed-view-events").hidden = !me.may_act;
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

function ack(id, verdict) {
  const body = verdict ? { alarm_id: id, verdict } : { alarm_id: id };
  post("/nurse/api/ack", body).then((ok) => ok && say(`Acknowledged by ${me.user}` +
    (verdict ? ` · ${VERDICT_LABELS[verdict]}` : "")));
}

// one-tap verdicts with the acknowledgement: fixed codes only (the learning loop's labels)
const VERDICT_LABELS = { actionable: "Actionable", not_actionable: "Not actionable", artifact: "Artifact",
                         already_known: "Already known" };
const EVENT_LABELS = { rapid_response: "Rapid-response call", icu_transfer: "Transfer to ICU",
                       sepsis_pathway: "Sepsis pathway started" };

function recordEvent(bed, code) {
  post("/nurse/api/event", { bed, code }).then((ok) => ok && say(`${EVENT_LABELS[code]} recorded for ${bed}`));
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
      const verdicts = el("span", "verdicts");
      for (const [code, label] of Object.entries(VERDICT_LABELS)) {
        const b = el("button", "verdict", label);
        b.type = "button";
        b.dataset.verdict = code;
        b.title = "Acknowledge with this verdict";
        b.addEventListener("click", () => ack(a.alarm_id, code));
        verdicts.append(b);
      }
      li.querySelector(".actions").append(verdicts);
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
    const also = a.acked_also && a.acked_also.length ? ` (also ${a.acked_also.join(", ")})` : "";
    const by = a.acked_by ? ` · ack ${a.acked_by}${also}` : "";
    const esc = a.escalation ? ` · escalated ×${a.escalation}` : "";
    li.querySelector(".meta").textContent = `${a.kind} · ${a.source} · ${fmtTime(a.t)} · ${a.state}${by}${esc}`;
    const mayAct = !!(me && me.may_act);
    li.querySelector(".ack").hidden = a.state === "acknowledged" || !mayAct;
    li.querySelector(".silence").hidden = !audible || !mayAct;
    li.querySelector(".verdicts").hidden = !mayAct;
    if (prev ? prev.nextSibling !== li : list.firstChild !== li) {
      list.insertBefore(li, prev ? prev.nextSibling : list.firstChild);
    }
    prev = li;
  }
  for (const li of have.values()) li.remove();
  $("alarm-count").textContent = alarms.length;
  $("no-alarms").hidden = alarms.length > 0;
}

function render(s) {
  state = s;
  $("title").textContent = s.title;
  document.title = s.title;
  $("cloud-banner").hidden = !!s.cloud_online;
  renderLink(s.cloud_link || { configured: true, connected: !!s.cloud_online, backlog: null });
  renderAlarms(s.alarms);
  renderBeds(s.beds);
  sound.update(s.alarms);
}

// the cloud link, always shown (small, steady): up, down, or up with a backlog still to send
function renderLink(l) {
  const e = $("link");
  let cls, text;
  if (!l.configured) { cls = "off"; text = "Cloud link: not configured"; }
  else if (!l.connected) { cls = "down"; text = "Cloud link down" + (l.backlog ? ` · ${l.backlog} queued` : ""); }
  else if (l.backlog) { cls = "backlog"; text = `Cloud link up · ${l.backlog} queued`; }
  else { cls = "up"; text = "Cloud link up"; }
  e.className = `link ${cls}`;
  e.dataset.link = cls;
  e.textContent = text;
}

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
$("sound-enable").addEventListener("click", () => { if (!sound.on()) sound.toggle(); });
sound.show();
$("logout").addEventListener("click", logout);
setInterval(() => { $("clock").textContent = new Date().toLocaleTimeString(); }, 1000);
whoami().then((m) => m && connect()).catch(() => say("the gateway is unreachable"));
