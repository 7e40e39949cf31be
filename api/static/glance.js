// Therapist page: every live session of this therapist's patients at a glance, from the
// WebSocket /ws/overview (about 4 updates a second). A tile per session: patient, state and
// calibration, current angles, repetitions, exercise and level, sensor health, viewers; a tile
// is a link to that patient's detailed live view (this page with ?patient_id=). Tiles are
// updated in place (no re-creation, so keyboard focus stays where it is).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const f = (x, d = 0, u = "") => {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    const t = Number(x).toFixed(d);
    return (Number(t) === 0 ? Number(0).toFixed(d) : t) + u; // no "-0.0"
  };
  const E = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
  const STATE = {
    starting: ["◌", "starting"], calibrating: ["◐", "calibrating"], running: ["●", "running"],
    stopping: ["■", "stopping"], stopped: ["■", "stopped"], ended: ["■", "ended"], failed: ["✕", "failed"],
  };
  const SENSOR_NAME = { upper: "Upper", lower: "Lower" };
  const tiles = new Map(); // session_id -> {li, parts}
  const page = { messages: 0, last: null, ws: null, backoffMs: 500, lastAt: 0, stopped: false };
  page.stop = () => { page.stopped = true; if (page.ws) { const ws = page.ws; page.ws = null; ws.close(); } };
  window.lumboGlance = page;

  function sensorText(role, h) {
    if (!h) return [`${SENSOR_NAME[role]}: –`, false];
    let bad = false, words;
    if (!h.connected || h.status === "reconnecting" || h.status === "failed") { words = `✕ ${h.status === "reconnecting" ? "reconnecting" : "not connected"}`; bad = true; }
    else if (h.silent) { words = "⚠ silent"; bad = true; }
    else words = "✔ connected";
    const extra = [];
    if (h.battery_pct !== null && h.battery_pct !== undefined) { extra.push(`battery ${f(h.battery_pct)} %`); if (h.battery_pct < 20) bad = true; }
    if (h.loss_pct > 1) { extra.push(`loss ${f(h.loss_pct, 1)} %`); bad = true; }
    return [`${SENSOR_NAME[role]}: ${words}${extra.length ? ", " + extra.join(", ") : ""}`, bad];
  }

  function build(t) {
    const li = E("li", "tile-item");
    const a = E("a", "tile");
    a.href = `/therapist?patient_id=${encodeURIComponent(t.patient_id)}#live-detail`;
    a.dataset.patient = t.patient_id;
    const head = E("div", "tile-head");
    const name = E("span", "tile-name");
    const state = E("span", "tile-state");
    head.append(name, state);
    const cal = E("div", "tile-cal");
    const angles = E("dl", "tile-angles");
    const parts = { a, name, state, cal, angles, values: {} };
    for (const [key, label] of [["flexion_deg", "Forward"], ["lateral_bend_deg", "Side"], ["axial_rotation_deg", "Turn"]]) {
      const box = E("div");
      box.append(E("dt", "", label));
      const dd = E("dd", "tile-angle");
      dd.dataset.angle = key;
      box.append(dd);
      angles.append(box);
      parts.values[key] = dd;
    }
    parts.exercise = E("div", "tile-ex");
    parts.reps = E("div", "tile-reps");
    parts.sensors = E("ul", "tile-sensors");
    parts.upper = E("li"); parts.lower = E("li"); parts.gaps = E("li");
    parts.sensors.append(parts.upper, parts.lower, parts.gaps);
    parts.foot = E("div", "tile-foot");
    a.append(head, cal, angles, parts.exercise, parts.reps, parts.sensors, parts.foot);
    li.append(a);
    return { li, parts };
  }

  const set = (el, text) => { if (el.textContent !== text) el.textContent = text; };

  function update(entry, t) {
    const p = entry.parts;
    set(p.name, t.patient_name);
    const [icon, word] = STATE[t.state] || ["?", t.state];
    set(p.state, `${icon} ${word}`);
    p.state.dataset.state = t.state;
    const c = t.calibration || {};
    const calibrated = c.comfortable_flexion_deg !== null && c.comfortable_flexion_deg !== undefined;
    set(p.cal, calibrated ? `Calibrated: comfortable forward bend ${f(c.comfortable_flexion_deg, 0, "°")}`
      : `Calibration: ${c.phase || "–"}${c.progress ? ` ${Math.round(100 * c.progress)} %` : ""}${c.message ? " – " + c.message : ""}`);
    p.cal.dataset.phase = c.phase || "";
    for (const [key, dd] of Object.entries(p.values)) set(dd, f(t.angles ? t.angles[key] : null, 1, "°"));
    const ex = t.exercise;
    set(p.exercise, ex ? `${ex.name}${ex.level ? ` · level ${ex.level}` : ""}${ex.block ? ` · ${ex.block}` : ""}${ex.stage && ex.stages ? ` (${ex.stage}/${ex.stages})` : ""}` : "No exercise yet");
    const waiting = (t.awaiting || []).map((w) => w.replace(/_/g, " ")).join(", ");
    set(p.reps, `Repetitions ${t.reps_done ?? "–"} / ${t.reps_planned ?? "–"}${waiting ? ` · waiting for ${waiting}` : ""}`);
    let bad = false;
    for (const role of ["upper", "lower"]) {
      const [text, b] = sensorText(role, (t.sensors || {})[role]);
      set(p[role], text); p[role].className = b ? "bad" : "";
      bad = bad || b;
    }
    set(p.gaps, t.gaps ? `⚠ ${t.gaps} gap${t.gaps === 1 ? "" : "s"} in the data` : "no gaps in the data");
    p.gaps.className = t.gaps ? "bad" : "";
    const stale = t.frame_age_s !== null && t.frame_age_s !== undefined && t.frame_age_s > 2 && t.state !== "starting";
    set(p.foot, `${t.viewers} watching · ${t.source}${stale ? ` · ⚠ no new data for ${f(t.frame_age_s, 0)} s` : ""}${t.storage_healthy ? "" : " · ⚠ recording failing"}`);
    p.a.dataset.alert = bad || stale || !t.storage_healthy || t.state === "failed" ? "true" : "false";
    p.a.setAttribute("aria-label", `${t.patient_name}: ${word}, ${p.exercise.textContent}, ${p.reps.textContent}. Open the live view.`);
  }

  function render(msg) {
    page.last = msg;
    const list = $("glance-tiles");
    const seen = new Set();
    for (const t of msg.sessions) {
      seen.add(t.session_id);
      let entry = tiles.get(t.session_id);
      if (!entry) { entry = build(t); tiles.set(t.session_id, entry); list.append(entry.li); }
      update(entry, t);
    }
    for (const [sid, entry] of tiles) if (!seen.has(sid)) { entry.li.remove(); tiles.delete(sid); }
    $("glance-empty").hidden = msg.sessions.length > 0;
    set($("glance-count"), `${msg.sessions.length} live of ${msg.patients} patient${msg.patients === 1 ? "" : "s"}`);
  }

  function conn(state, text, icon) {
    const el = $("glance-conn");
    el.dataset.state = state;
    set($("glance-conn-icon"), icon); set($("glance-conn-text"), text);
  }

  function connect() {
    if (page.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try { ws = new WebSocket(`${proto}//${location.host}/ws/overview`); } catch (e) { retry(); return; }
    page.ws = ws;
    conn("connecting", "Connecting…", "◌");
    ws.onopen = () => { page.backoffMs = 500; };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type !== "overview" || msg.schema_version !== 1) return;
      page.messages += 1;
      page.lastAt = performance.now();
      conn("live", "Live", "●");
      render(msg);
    };
    ws.onclose = (ev) => {
      if (page.ws !== ws) return;
      page.ws = null;
      conn("closed", "Disconnected – reconnecting…", "✕");
      if (ev.code === 1008 && window.Lumbo) Lumbo.api("GET", "/api/auth/me").catch(() => {});
      retry();
    };
    ws.onerror = () => { try { ws.close(); } catch (e) { /* closed */ } };
  }
  function retry() {
    if (page.stopped) return;
    const d = page.backoffMs;
    page.backoffMs = Math.min(5000, page.backoffMs * 2);
    setTimeout(connect, d);
  }
  // a silent socket: say so (the server pushes 4 times a second)
  setInterval(() => {
    if (page.ws && page.ws.readyState === WebSocket.OPEN && page.lastAt && performance.now() - page.lastAt > 2500) conn("stale", "No updates – reconnecting…", "▲");
  }, 500);
  connect();
})();
