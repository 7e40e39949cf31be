// Therapist page: live trace, metrics, set summaries, sensor health, target controls.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const chart = new TraceChart($("trace"), [
    { label: "Lumbar flexion", color: "#0b57a4", width: 2.5 },
    { label: "Pelvic tilt", color: "#a04400", width: 2, dash: [7, 5] },
  ]);
  let latest = null, dirty = false, sessionState = "idle";
  const fpsWindow = []; // frame times (s, host clock of the data) for frames per second of data
  const sets = [];
  let lastRep = null;

  const fmt = Lumbo.fmt;
  const ZONE_WORD = { in: "● in target", below: "▶ below", above: "◀ above", neutral: "■ rest" };

  const sign = (x, d = 1) => (x > 0 ? "+" : x < 0 ? "−" : "±") + Math.abs(x).toFixed(d);
  function describe(ev) {
    if (ev.type === "repetition_scored") {
      const sc = ev.score;
      const ttt = sc.time_to_target_s === null ? "never in band" : `to target ${sc.time_to_target_s.toFixed(1)} s`;
      return `Set ${ev.set_index} rep ${ev.rep_number}: peak ${sc.peak_deg.toFixed(1)}° (${sign(sc.peak_error_deg)}°), ` +
        `${ttt}, hold ${sc.longest_hold_s.toFixed(1)} s ${sc.hold_achieved ? "✔" : "✕"}${sc.tempo ? ", tempo " + sc.tempo : ""} – “${sc.cue_text}”`;
    }
    if (ev.type === "repetition_interrupted") return `Set ${ev.set_index} rep ${ev.rep_number} interrupted (${ev.reason})`;
    if (ev.type === "set_completed") {
      const s = ev.summary;
      return `Set ${s.set_index} complete: ${s.reps_good}/${s.reps} on target and held, mean |error| ${Lumbo.fmt(s.mean_abs_error_deg, 1)}°`;
    }
    return null; // repetition_started: not logged
  }

  // ---------------------------------------------------------------- sets table
  const SET_COLS = [
    ["Set", (s) => s.set_index], ["Reps", (s) => `${s.reps}/${s.reps_per_set}`],
    ["On target", (s) => s.reps_reached], ["Held", (s) => s.reps_good], ["Interrupted", (s) => s.interrupted],
    ["Mean |err|", (s) => fmt(s.mean_abs_error_deg, 1, "°")], ["Mean err", (s) => s.mean_error_deg === null ? "–" : sign(s.mean_error_deg) + "°"],
    ["To target", (s) => fmt(s.mean_time_to_target_s, 1, " s")], ["Best", (s) => s.best_rep === null ? "–" : `#${s.best_rep} (${fmt(s.best_abs_error_deg, 1)}°)`],
  ];
  function renderSets() {
    const table = $("sets");
    const thead = table.tHead, tbody = table.tBodies[0];
    if (!sets.length) return;
    if (!thead.rows.length) {
      const hr = thead.insertRow();
      for (const [name] of SET_COLS) { const th = document.createElement("th"); th.scope = "col"; th.textContent = name; hr.appendChild(th); }
    }
    tbody.innerHTML = "";
    for (const s of sets) {
      const tr = tbody.insertRow();
      for (const [, f] of SET_COLS) tr.insertCell().textContent = String(f(s));
    }
  }

  // ---------------------------------------------------------------- sensor health
  // status words with a shape, so the state reads without colour
  function statusText(h) {
    if (h.status === "reconnecting") return [`⚠ reconnecting${h.retry_in_s !== null && h.retry_in_s !== undefined ? ` (next try in ${fmt(h.retry_in_s, 1)} s)` : "…"}`, "warn-cell"];
    if (h.status === "failed") return ["✕ failed – still retrying", "warn-cell"];
    if (h.status === "connecting") return ["◌ connecting…", ""];
    if (h.silent) return ["⚠ silent (no data)", "warn-cell"];
    if (h.status === "streaming") return ["● streaming", "ok"];
    return [h.status, ""];
  }
  const HEALTH_ROWS = [
    ["Connected", (h) => h.connected ? ["✔ yes", "ok"] : ["✕ no", "bad"]],
    ["Status", statusText],
    ["Message", (h) => [h.message || "–", h.message && h.status !== "streaming" ? "bad" : ""]],
    ["Reconnects", (h) => [String(h.reconnects || 0), h.reconnects ? "bad" : ""]],
    ["Rate", (h) => [`${fmt(h.rate_hz, 1)} / ${fmt(h.nominal_rate_hz, 0)} Hz`, h.nominal_rate_hz && h.rate_hz < 0.9 * h.nominal_rate_hz ? "bad" : ""]],
    ["Loss", (h) => [`${fmt(h.loss_pct, 2)} %`, h.loss_pct > 1 ? "bad" : ""]],
    ["Battery", (h) => [h.battery_pct === null ? "–" : `${fmt(h.battery_pct, 0)} %`, h.battery_pct !== null && h.battery_pct < 20 ? "bad" : ""]],
    ["Last seen", (h, t) => [h.last_seen_s === null ? "never" : `${fmt(Math.max(0, t - h.last_seen_s), 2)} s ago`, ""]],
    ["Device", (h) => [h.device_name || h.address || "–", ""]],
    ["Family", (h) => [h.family || "–", ""]],
  ];
  const ROLE_NAME = { upper: "Upper sensor (T12/L1)", lower: "Lower sensor (S2)" };
  function renderSensorWarning(sensors) {
    const active = ["starting", "calibrating", "running"].includes(sessionState);
    const items = [];
    for (const role of ["upper", "lower"]) {
      const h = sensors && sensors[role];
      if (!h || !active) continue;
      if (h.status === "reconnecting") items.push(`${ROLE_NAME[role]} lost – reconnecting${h.message ? ` (${h.message})` : ""}`);
      else if (h.status === "failed") items.push(`${ROLE_NAME[role]}: ${h.message || "failed"} – still retrying`);
      else if (h.silent) items.push(`${ROLE_NAME[role]} silent – no data${h.message ? ` (${h.message})` : ""}`);
      else if (h.loss_pct > 5) items.push(`${ROLE_NAME[role]} losing ${fmt(h.loss_pct, 1)} % of samples`);
      else if (h.battery_pct !== null && h.battery_pct !== undefined && h.battery_pct < 15) items.push(`${ROLE_NAME[role]} battery ${fmt(h.battery_pct, 0)} %`);
    }
    const text = items.join(" · ");
    $("sensor-warning").hidden = !text;
    if ($("sensor-warning-text").textContent !== text) $("sensor-warning-text").textContent = text;
  }
  let lastSensors = null;
  let nowS = 0; // newest host time seen (frame t_s, heartbeat server_time_s: one clock)
  function renderHealth(sensors, t) {
    lastSensors = sensors;
    renderSensorWarning(sensors);
    const tbody = $("health").tBodies[0];
    if (tbody.rows.length !== HEALTH_ROWS.length) {
      tbody.innerHTML = "";
      for (const [name] of HEALTH_ROWS) {
        const tr = tbody.insertRow();
        const th = document.createElement("th"); th.scope = "row"; th.textContent = name; tr.appendChild(th);
        tr.insertCell(); tr.insertCell();
      }
    }
    HEALTH_ROWS.forEach(([, f], r) => {
      ["upper", "lower"].forEach((role, c) => {
        const cell = tbody.rows[r].cells[c + 1];
        const h = sensors && sensors[role];
        const [text, cls] = h ? f(h, t) : ["–", ""];
        if (cell.textContent !== text) cell.textContent = text;
        cell.className = cls;
      });
    });
  }

  // ---------------------------------------------------------------- frames
  function onEvents(events) {
    for (const ev of events || []) {
      if (ev.type === "set_completed") { sets.push(ev.summary); renderSets(); }
      if (ev.type === "repetition_scored") lastRep = ev.score;
      const text = describe(ev);
      if (!text) continue;
      const li = document.createElement("li");
      li.textContent = text;
      if (ev.type === "set_completed") li.style.fontWeight = "700";
      const list = $("events");
      list.prepend(li);
      while (list.children.length > 50) list.lastChild.remove();
    }
  }
  function render() {
    dirty = false;
    const f = latest;
    if (!f) return;
    $("m-flex").textContent = fmt(f.angles.flexion_deg, 1, "°");
    $("m-vel").textContent = fmt(f.velocity.flexion_deg_s, 0, "°/s");
    $("m-tilt").textContent = fmt(f.angles.pelvic_tilt_deg, 1, "°");
    const t = f.target;
    $("m-target").textContent = t ? `${fmt(t.target_deg, 1)}° ±${fmt(t.tolerance_deg, 0)}` + (t.level ? ` (L${t.level})` : " (explicit)") : "–";
    const fb = f.feedback;
    const kind = fb ? Lumbo.zoneKind(fb.zone) : "neutral";
    $("m-zone").textContent = fb ? `${ZONE_WORD[kind]}` : "–";
    $("m-zone").title = fb && fb.zone ? String(fb.zone) : "";
    $("m-zone").dataset.kind = kind;
    $("m-reps").textContent = fb ? `${fb.rep_count} / ${fb.reps_per_set}` : "–";
    $("m-hold").textContent = fb ? `${Math.round(100 * Math.min(1, fb.hold_progress || 0))} %` : "–";
    if (lastRep) {
      $("m-err").textContent = `${sign(lastRep.peak_error_deg)}°`;
      $("m-ttt").textContent = lastRep.time_to_target_s === null ? "never" : fmt(lastRep.time_to_target_s, 1, " s");
    }
    const cal = f.calibration;
    $("m-comf").textContent = fmt(cal.comfortable_flexion_deg, 1, "°");
    $("m-cal").textContent = `${cal.phase} ${cal.progress < 1 && cal.comfortable_flexion_deg === null ? Math.round(cal.progress * 100) + " %" : ""}`;
    $("m-cal").title = cal.message;
    nowS = Math.max(nowS, f.t_s);
    renderHealth(f.sensors, nowS);
    if (fpsWindow.length > 1) {
      const span = fpsWindow[fpsWindow.length - 1] - fpsWindow[0];
      $("m-fps").textContent = span > 0 ? fmt((fpsWindow.length - 1) / span, 0) : "–";
    }
  }
  function onFrame(f) {
    latest = f;
    fpsWindow.push(f.t_s);
    while (fpsWindow.length > 2 && fpsWindow[fpsWindow.length - 1] - fpsWindow[0] > 2) fpsWindow.shift();
    if (f.trace.t_s.length) {
      const tr = f.trace;
      if (tr.gaps && tr.gaps.length) {
        // samples were lost before these: a missing point lifts the pen, so no line bridges it
        const t = [], fl = [], pt = [];
        const gaps = new Set(tr.gaps);
        tr.t_s.forEach((ts, i) => {
          if (gaps.has(i)) { t.push(ts - 1e-6); fl.push(null); pt.push(null); }
          t.push(ts); fl.push(tr.flexion_deg[i]); pt.push(tr.pelvic_tilt_deg[i]);
        });
        chart.push(t, fl, pt);
      } else {
        chart.push(tr.t_s, tr.flexion_deg, tr.pelvic_tilt_deg);
      }
    }
    const t = f.target;
    const band = t ? { low: t.target_deg - t.tolerance_deg, high: t.target_deg + t.tolerance_deg } : null;
    if (JSON.stringify(band) !== JSON.stringify(chart.band)) chart.setBand(band);
    onEvents(f.events);
    if (!dirty) { dirty = true; requestAnimationFrame(render); }
  }

  // ---------------------------------------------------------------- session and controls
  function setSession(s) {
    sessionState = s.state || "idle";
    const el = $("session-state");
    el.textContent = `Session: ${sessionState}`;
    el.dataset.state = ["calibrating", "running"].includes(sessionState) ? "live" : sessionState === "failed" ? "stale" : "idle";
    const active = ["starting", "calibrating", "running", "stopping"].includes(sessionState);
    $("start").disabled = active;
    $("stop").disabled = !active;
    const err = $("session-error");
    if (sessionState === "failed") { err.textContent = `Session failed: ${s.error || s.message}`; err.hidden = false; }
    else err.hidden = true;
    if (s.sets && s.sets.length >= sets.length) { sets.length = 0; sets.push(...s.sets); renderSets(); }
    if (s.target && document.activeElement && !["t-deg", "t-tol", "t-hold"].includes(document.activeElement.id)) {
      $("t-deg").value = s.target.target_deg; $("t-tol").value = s.target.tolerance_deg; $("t-hold").value = s.target.hold_s;
    }
    if (s.target && s.target.level) $("level").value = String(s.target.level);
    else if (s.pending_level) $("level").value = String(s.pending_level);
    // a lost lower sensor produces no frames: the status messages carry its health meanwhile
    if (s.sensors && (s.sensors.upper || s.sensors.lower)) renderHealth(s.sensors, nowS);
    else renderSensorWarning(lastSensors);
  }
  async function act(method, path, body, okText) {
    const msg = $("control-msg");
    msg.className = "msg"; msg.textContent = "…";
    try {
      const st = await Lumbo.api(method, path, body);
      if (st && st.state) setSession(st);
      msg.textContent = okText || "Done.";
      return st;
    } catch (e) {
      msg.className = "msg error"; msg.textContent = e.message;
      return null;
    }
  }
  $("start").addEventListener("click", () => {
    chart.clear(); sets.length = 0; $("events").innerHTML = "";
    const choice = $("start-script").value;
    // BLE: the sensors remembered on this host (assigned on the patient page's Sensors step)
    const body = choice === "ble" ? { source: "ble" } : { source: "simulated", script: choice, speed: Number($("start-speed").value) };
    act("POST", "/api/session/start", body, "Session started.");
  });
  $("start-script").addEventListener("change", () => { $("start-speed").disabled = $("start-script").value === "ble"; });
  Lumbo.api("GET", "/api/sensors/roles").then((r) => {
    if (r.default_source === "ble") { $("start-script").value = "ble"; $("start-speed").disabled = true; }
  }).catch(() => {});
  $("stop").addEventListener("click", () => act("POST", "/api/session/stop", undefined, "Session stopped."));
  $("level-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act("PUT", "/api/session/target", { level: Number($("level").value) }, `Level ${$("level").value} applied.`);
  });
  $("target-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { target_deg: Number($("t-deg").value), tolerance_deg: Number($("t-tol").value) };
    if ($("t-hold").value !== "") body.hold_s = Number($("t-hold").value);
    act("PUT", "/api/session/target", body, "Explicit target set.");
  });
  async function loadLevels() {
    try {
      const levels = await Lumbo.api("GET", "/api/levels");
      const sel = $("level");
      sel.innerHTML = "";
      for (const lv of levels) {
        const o = document.createElement("option");
        o.value = String(lv.level);
        const share = lv.share !== null ? `${Math.round(lv.share * 100)} %` : "";
        o.textContent = `${lv.level}: ${share} ±${fmt(lv.tolerance_deg, 0)}° ${fmt(lv.hold_s, 0)} s`;
        o.title = `Level ${lv.level}: ${share} of the comfortable range, ±${fmt(lv.tolerance_deg, 0)}°, hold ${fmt(lv.hold_s, 0)} s, ${lv.reps_per_set} reps`;
        sel.appendChild(o);
      }
    } catch (e) { $("control-msg").textContent = `Levels unavailable: ${e.message}`; }
  }

  const CONN = {
    connecting: ["◌", "Connecting…"], live: ["●", "Live"], idle: ["○", "Connected"],
    "no-data": ["▲", "No sensor data"], stale: ["▲", "Data is stale"], closed: ["✕", "Disconnected"],
  };
  function onConnection(state) {
    $("conn").dataset.state = state;
    const [icon, text] = CONN[state] || ["?", state];
    $("conn-icon").textContent = icon; $("conn-text").textContent = text;
    const stale = $("stale");
    if (state === "stale" || state === "closed") { $("stale-text").textContent = "Data is stale – connection lost, reconnecting…"; stale.hidden = false; }
    else if (state === "no-data") { $("stale-text").textContent = "Data is stale – no frames from the session."; stale.hidden = false; }
    else stale.hidden = true;
  }

  renderHealth(null, 0);
  loadLevels().then(() => Lumbo.api("GET", "/api/session").then(setSession).catch(() => {}));
  const conn = new LiveConnection({
    onFrame, onStatus: setSession, onConnection,
    onHeartbeat(h) {
      // heartbeats come while no frames flow (a lost lower sensor): "last seen" keeps counting
      nowS = Math.max(nowS, h.server_time_s || 0);
      if (lastSensors) renderHealth(lastSensors, nowS);
      if (h.state !== sessionState) setSession({ state: h.state });
    },
    onSchemaError(m) { const b = $("schema-error"); b.textContent = m; b.hidden = false; },
  });
  window.lumboConnection = conn;
  window.lumboChart = chart;
  conn.start();
})();
