// Alarm sound of the nurse station, generated here with WebAudio (no audio files, no network), and the
// persistent "SOUND OFF" banner shown until the sound is really on (browsers start audio only after a click).
//
// Burst patterns after IEC 60601-1-8 (auditory alarm signals; values as manufacturers' manuals give them):
//   high:   10 pulses, 3 + 2, pause, 3 + 2 (x x x _ x x ... x x x _ x x); pulse 150 ms, spacing 100 ms,
//           0.6 s between the two halves; burst repeated every 5 s (standard: 2.5-15 s)
//   medium: 3 pulses, 200 ms each, spacing 100 ms; burst repeated every 8 s (standard: 2.5-30 s)
//   low:    2 pulses, 200 ms each; burst repeated every 20 s (standard: > 15 s, or once)
// Pulses are square waves (fundamental 150-1000 Hz with harmonics, as the standard asks) with 20 ms rise and
// fall. Only the highest audible priority sounds (active or latched; not acknowledged, not paused).
"use strict";

const SOUND_PATTERNS = {
  high: { offsets: [0, .25, .5, 1.0, 1.25, 2.0, 2.25, 2.5, 3.0, 3.25], pulse: .15, every: 5.0, freqs: [523, 698, 880] },
  medium: { offsets: [0, .3, .6], pulse: .2, every: 8.0, freqs: [523, 659, 784] },
  low: { offsets: [0, .4], pulse: .2, every: 20.0, freqs: [523, 392] },
};
const SOUND_RANK = { high: 3, medium: 2, low: 1 };

const sound = {
  ctx: null, enabled: false, timer: null, priority: null, pulses: 0, bursts: 0, alarms: [],
  /** on: the user asked for sound and the browser's audio context really runs. */
  on() { return this.enabled && !!this.ctx && this.ctx.state === "running"; },
  async toggle() {
    if (!this.ctx) {
      this.ctx = new (window.AudioContext || window.webkitAudioContext)();
      this.ctx.onstatechange = () => this.show();
    }
    this.enabled = !this.enabled;
    if (this.enabled && this.ctx.state !== "running") {
      try { await this.ctx.resume(); } catch (e) { /* stays suspended: the banner stays */ }
    }
    this.priority = null;
    this.update(this.alarms);
    this.show();
  },
  show() {
    const on = this.on();
    const b = document.getElementById("sound");
    b.setAttribute("aria-pressed", String(on));
    b.textContent = on ? "Sound on" : "Enable sound";
    document.getElementById("sound-off").hidden = on;
    document.body.dataset.sound = on ? "on" : "off";
  },
  pulse(t, freq, len) {
    const o = this.ctx.createOscillator(), g = this.ctx.createGain();
    o.type = "square";
    o.frequency.value = freq;
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(0.15, t + 0.02);
    g.gain.setValueAtTime(0.15, t + len - 0.02);
    g.gain.linearRampToValueAtTime(0, t + len);
    o.connect(g).connect(this.ctx.destination);
    o.start(t); o.stop(t + len + 0.01);
    this.pulses += 1;
  },
  burst(p) {
    const pat = SOUND_PATTERNS[p];
    const t0 = this.ctx.currentTime + 0.05;
    pat.offsets.forEach((dt, i) => this.pulse(t0 + dt, pat.freqs[i % pat.freqs.length], pat.pulse));
    this.bursts += 1;
    document.body.dataset.lastBurst = `${p}:${pat.offsets.length}`;
  },
  update(alarms) {
    this.alarms = alarms;
    let p = null;
    for (const a of alarms) {
      if ((a.state === "active" || a.state === "latched") && (SOUND_RANK[a.priority] || 0) > (SOUND_RANK[p] || 0)) {
        p = a.priority;
      }
    }
    document.body.dataset.sounding = p || "";
    if (!this.on()) p = null;
    if (p === this.priority) return;
    this.priority = p;
    clearInterval(this.timer);
    if (!p) return;
    this.burst(p);
    this.timer = setInterval(() => this.burst(p), SOUND_PATTERNS[p].every * 1000);
  },
};
