// Patient page: big gauge, angle, zone (colour + shape + words), repetitions, calibration guide,
// set summary, optional speech. Renders the newest frame once per animation frame.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const PIVOT = { x: 140, y: 350 };
  const R = 250; // scale arc radius
  const A_MIN = -20, A_MAX = 100; // drawing angles (0 = upright, 90 = horizontal)
  // The gauge magnifies: `scaleMax` degrees of lumbar flexion fill the quarter circle, chosen
  // from the target and the patient's comfortable range so the target zone is large to see.
  let scaleMax = 60;
  const disp = (v) => (v / scaleMax) * 90;
  const voice = new Voice();
  let latest = null;
  let dirty = false;
  let lastTargetKey = "";
  let lastZone = "";
  let lastCalPhase = "";
  let sessionState = "idle";

  // ---------------------------------------------------------------- gauge geometry
  const clampA = (a) => Math.max(A_MIN, Math.min(A_MAX, a));
  function polar(r, deg) {
    const a = (deg * Math.PI) / 180;
    return { x: PIVOT.x + r * Math.sin(a), y: PIVOT.y - r * Math.cos(a) };
  }
  function arc(r, a0, a1) {
    const p0 = polar(r, a0), p1 = polar(r, a1);
    const large = Math.abs(a1 - a0) > 180 ? 1 : 0;
    return `M ${p0.x.toFixed(1)} ${p0.y.toFixed(1)} A ${r} ${r} 0 ${large} 1 ${p1.x.toFixed(1)} ${p1.y.toFixed(1)}`;
  }
  function chooseScaleMax(target, comfortable) {
    let top = 40;
    if (target) top = Math.max(top, target.target_deg + target.tolerance_deg + Math.max(8, 0.4 * target.target_deg));
    if (comfortable) top = Math.max(top, comfortable + 5);
    return Math.ceil(top / 10) * 10;
  }
  function buildScale() {
    const g = $("gauge-scale");
    g.textContent = "";
    const ns = "http://www.w3.org/2000/svg";
    const base = document.createElementNS(ns, "path");
    base.setAttribute("d", arc(R, A_MIN, A_MAX));
    base.setAttribute("fill", "none");
    base.setAttribute("stroke", "#e3e1d8");
    base.setAttribute("stroke-width", "34");
    g.appendChild(base);
    const major = scaleMax <= 40 ? 10 : scaleMax <= 80 ? 20 : 30;
    for (let v = -major / 2; v <= scaleMax + 1e-9; v += major / 2) {
      const a = disp(v);
      if (a < A_MIN) continue;
      const isMajor = Math.abs(v % major) < 1e-9;
      const p0 = polar(R - 20, a), p1 = polar(R + 20, a);
      const t = document.createElementNS(ns, "line");
      t.setAttribute("x1", p0.x); t.setAttribute("y1", p0.y);
      t.setAttribute("x2", p1.x); t.setAttribute("y2", p1.y);
      t.setAttribute("stroke", "#4a4a4a"); t.setAttribute("stroke-width", isMajor ? "4" : "2");
      g.appendChild(t);
      if (isMajor) {
        const p = polar(R + 44, a);
        const tx = document.createElementNS(ns, "text");
        tx.setAttribute("x", (p.x - (a >= 60 ? 16 : 0)).toFixed(1)); tx.setAttribute("y", (p.y + 8).toFixed(1));
        tx.setAttribute("text-anchor", a >= 60 ? "start" : "middle");
        tx.setAttribute("font-size", "24"); tx.setAttribute("font-weight", "700"); tx.setAttribute("fill", "#4a4a4a");
        tx.textContent = `${v}°`;
        g.appendChild(tx);
      }
    }
  }

  function drawTarget(target) {
    const band = $("gauge-target"), edge = $("gauge-target-edge");
    $("gauge-legend").style.display = target ? "" : "none";
    if (!target) {
      band.setAttribute("d", ""); edge.setAttribute("d", "");
      $("target-text").textContent = "Target: set after calibration";
      return;
    }
    const a0 = clampA(disp(target.target_deg - target.tolerance_deg));
    const a1 = clampA(disp(target.target_deg + target.tolerance_deg));
    band.setAttribute("d", arc(R, a0, a1));
    // dashed outline of the zone: the zone is visible as a shape, not only as a colour
    const ro = R + 17, q1 = polar(ro, a1), q0 = polar(ro, a0);
    edge.setAttribute("d", `${arc(R - 17, a0, a1)} L ${q1.x.toFixed(1)} ${q1.y.toFixed(1)} ` +
      `A ${ro} ${ro} 0 0 0 ${q0.x.toFixed(1)} ${q0.y.toFixed(1)} Z`);
    $("target-text").textContent =
      `Target ${Lumbo.fmt(target.target_deg)}° ± ${Lumbo.fmt(target.tolerance_deg)}°, hold ${Lumbo.fmt(target.hold_s, 0)} s` + (target.level ? ` · level ${target.level}` : "");
  }

  // ---------------------------------------------------------------- zone words and shapes
  const ZONES = {
    in: { icon: "●", text: "In the zone – hold", color: "#0b57a4" },
    below: { icon: "▶", text: "Bend a little further", color: "#a04400" },
    above: { icon: "◀", text: "Too far – come back a little", color: "#a04400" },
    neutral: { icon: "■", text: "Ready", color: "#3d3d3d" },
  };

  function renderZone(fb, target, flex) {
    let kind = fb ? Lumbo.zoneKind(fb.zone) : "neutral";
    let text = ZONES[kind].text;
    if (kind === "in" && fb && fb.hold_progress >= 1) text = "Well held – now come back up";
    if (kind === "below" && fb && fb.in_repetition && fb.hold_progress >= 1) {
      kind = "neutral"; text = "Well held – back up to standing"; // on the way back, not short
    }
    if (kind === "neutral") text = target ? "Ready – bend towards the target" : "Waiting for a target";
    const z = $("zone");
    z.dataset.kind = kind;
    $("zone-icon").textContent = ZONES[kind].icon;
    $("zone-text").textContent = text;
    $("trunk-line").setAttribute("stroke", ZONES[kind].color);
    $("trunk-head").setAttribute("fill", ZONES[kind].color);
    if (kind !== lastZone) {
      if (kind === "in") voice.say("Hold");
      lastZone = kind;
    }
  }

  // ---------------------------------------------------------------- calibration
  // processing.calibration_detector phases
  const CAL_STEP = { waiting_for_sensors: "still", hold_still: "still", bend_forward: "bend",
    return_to_neutral: "return", failed: "still" };
  const calStep = (phase) => CAL_STEP[phase] || "still";
  const isCalibrated = (cal) => cal.phase === "calibrated";
  function renderCalibration(cal) {
    const overlay = $("calibration");
    if (!cal || isCalibrated(cal) || !["calibrating", "running", "starting"].includes(sessionState)) {
      overlay.hidden = true;
      return;
    }
    overlay.hidden = false;
    $("cal-message").textContent = cal.message || "Stand upright and still.";
    const step = calStep(cal.phase);
    const order = ["still", "bend", "return"];
    for (const li of $("cal-steps").children) {
      const i = order.indexOf(li.dataset.step), cur = order.indexOf(step);
      if (i === cur) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
      li.classList.toggle("done", i < cur);
    }
    const pct = Math.round(100 * (cal.progress || 0));
    $("cal-bar").style.width = pct + "%";
    $("cal-meter").setAttribute("aria-valuenow", pct);
    if (cal.phase !== lastCalPhase) {
      voice.say(cal.message, { interrupt: true });
      lastCalPhase = cal.phase;
    }
  }

  // ---------------------------------------------------------------- events
  function repText(ev) {
    // the engine phrases the cue (feedback.scoring): one short sentence, read or heard
    if (ev.type === "repetition_scored") {
      return { text: `Repetition ${ev.rep_number}: ${ev.score.cue_text}`, audio: ev.score.cue_audio };
    }
    return { text: ev.message, audio: ev.message };
  }
  function showSummary(s) {
    const grid = $("summary-grid");
    grid.textContent = "";
    const rows = [
      ["Repetitions", `${s.reps} / ${s.reps_per_set}`],
      ["On target", `${s.reps_reached} of ${s.reps}`],
      ["On target and held", `${s.reps_good} of ${s.reps}`],
      ["Typical miss", s.mean_abs_error_deg === null ? "–" : `${Math.round(s.mean_abs_error_deg)}°`],
      ["Best repetition", s.best_rep === null ? "–" : `no. ${s.best_rep} (${Math.round(s.best_abs_error_deg)}° off)`],
    ];
    for (const [k, v] of rows) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      grid.append(dt, dd);
    }
    const good = s.reps ? s.reps_good / s.reps : 0;
    $("summary-note").textContent = good >= 0.8 ? "Excellent control. Rest a moment, then carry on."
      : good >= 0.5 ? "Good work – more than half on target. Rest a moment, then carry on."
      : "Well done for completing the set. Rest a moment, then carry on.";
    $("summary").hidden = false;
    $("summary-close").focus();
    voice.say("Set complete. Well done.", { interrupt: true });
  }
  function handleEvents(events) {
    for (const ev of events || []) {
      if (ev.type === "set_completed") {
        showSummary(ev.summary);
      } else if (ev.type === "repetition_scored" || ev.type === "repetition_interrupted") {
        const { text, audio } = repText(ev);
        $("lastrep").textContent = text;
        voice.say(audio);
      } else if (ev.type === "repetition_started") {
        $("summary").hidden = true;
      }
    }
  }

  // ---------------------------------------------------------------- frame rendering
  function render() {
    dirty = false;
    const f = latest;
    if (!f) return;
    const flex = f.angles.flexion_deg;
    $("angle").textContent = flex === null ? "–" : String(Math.round(flex));
    const comf = f.calibration.comfortable_flexion_deg;
    const sm = chooseScaleMax(f.target, comf);
    if (sm !== scaleMax) { scaleMax = sm; buildScale(); lastTargetKey = "?"; }
    if (flex !== null) {
      const a = clampA(disp(flex));
      $("trunk").setAttribute("transform", `rotate(${a.toFixed(1)} ${PIVOT.x} ${PIVOT.y})`);
      const tip = polar(R - 20, a), l = polar(R + 22, a - 4), r = polar(R + 22, a + 4);
      $("gauge-needle").setAttribute("d", `M ${tip.x} ${tip.y} L ${l.x} ${l.y} L ${r.x} ${r.y} Z`);
    }
    const tkey = f.target ? `${f.target.target_deg}/${f.target.tolerance_deg}/${f.target.hold_s}/${f.target.level}` : "";
    if (tkey !== lastTargetKey) { drawTarget(f.target); lastTargetKey = tkey; }
    const fb = f.feedback;
    renderZone(fb, f.target, flex);
    $("reps").textContent = fb ? String(fb.rep_count) : "0";
    $("reps-total").textContent = fb && fb.reps_per_set ? String(fb.reps_per_set) : "–";
    const hold = fb ? Math.max(0, Math.min(1, fb.hold_progress || 0)) : 0;
    $("hold-bar").style.width = `${Math.round(hold * 100)}%`;
    $("hold-meter").setAttribute("aria-valuenow", Math.round(hold * 100));
    renderCalibration(f.calibration);
  }
  function scheduleRender() {
    if (!dirty) { dirty = true; requestAnimationFrame(render); }
  }

  // ---------------------------------------------------------------- session state and controls
  function setSessionState(state, message) {
    sessionState = state || "idle";
    const active = ["starting", "calibrating", "running", "stopping"].includes(sessionState);
    $("start").disabled = active;
    $("stop").disabled = !active;
    $("sensors-btn").disabled = active;
    $("idle").hidden = active;
    if (!active) renderSensorBanner(null);
    if (active && message && message.startsWith("No target")) {
      // the level does not fit this patient's range: the therapist has to choose another
      $("idle-text").textContent = "Waiting for your therapist to set a target.";
      $("idle").hidden = false;
    }
    if (!active) {
      const words = {
        idle: "No session is running. Press Start to begin.",
        stopped: "The session is stopped. Press Start for a new one.",
        ended: "The session has ended. Press Start for a new one.",
        failed: `The session stopped because of a problem: ${message || "unknown"}. Press Start to try again.`,
      };
      $("idle-text").textContent = words[sessionState] || words.idle;
      $("calibration").hidden = true;
    }
  }
  async function act(method, path, body) {
    $("action-error").hidden = true;
    try {
      const st = await Lumbo.api(method, path, body);
      if (st && st.state) setSessionState(st.state, st.message);
    } catch (e) {
      $("action-error").textContent = `Could not do that: ${e.message}`;
      $("action-error").hidden = false;
    }
  }
  // ---------------------------------------------------------------- sensors: set-up step
  // Scan, assign upper (T12/L1) and lower (S2), start. The roles remembered on this host (or
  // given to `lumbo serve --upper/--lower`) are preselected. On a server started for BLE the
  // Start button opens this step; otherwise Start runs the simulated patient, as before.
  const ROLE_WORDS = { upper: "Upper back", lower: "Lower back" };
  let defaultSource = "simulated";
  let rateHz = 100;
  const chosen = { upper: null, lower: null }; // address per role
  let known = new Map(); // address -> {name, family, display_name, rssi, battery_pct, battery_from, seen}
  let scanning = false;

  function sensorLabel(addr) {
    const s = known.get(addr);
    return s && s.name ? `${s.name}` : addr;
  }
  function signalWords(rssi) {
    if (rssi === null || rssi === undefined) return "signal unknown";
    const q = rssi >= -60 ? "strong" : rssi >= -75 ? "fair" : "weak";
    return `signal ${q} (${rssi} dBm)`;
  }
  function batteryWords(s) {
    if (s.battery_pct === null || s.battery_pct === undefined) return "battery unknown";
    return `battery ${Math.round(s.battery_pct)} %` + (s.battery_from === "last_session" ? " (last session)" : "");
  }
  function renderSetup() {
    for (const role of ["upper", "lower"]) {
      $(`slot-${role}`).textContent = chosen[role] ? sensorLabel(chosen[role]) : "not chosen";
    }
    const list = $("sensor-list");
    list.textContent = "";
    for (const [addr, s] of known) {
      const li = document.createElement("li");
      if (addr === chosen.upper || addr === chosen.lower) li.classList.add("assigned");
      const who = document.createElement("div");
      who.className = "who";
      const name = document.createElement("div");
      name.className = "name";
      name.textContent = s.name || "Unnamed sensor";
      const meta = document.createElement("div");
      meta.className = "meta";
      const fam = s.display_name || s.family || "unknown type";
      meta.textContent = s.seen
        ? `${fam} · ${signalWords(s.rssi)} · ${batteryWords(s)} · ${addr}`
        : `${fam} · not found nearby just now: is it switched on? · ${addr}`;
      who.append(name, meta);
      const pick = document.createElement("div");
      pick.className = "pick";
      pick.setAttribute("role", "group");
      pick.setAttribute("aria-label", `Role of ${s.name || addr}`);
      for (const role of ["upper", "lower"]) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "btn role";
        b.dataset.role = role;
        b.dataset.address = addr;
        b.setAttribute("aria-pressed", chosen[role] === addr ? "true" : "false");
        const mark = document.createElement("span");
        mark.className = `role-mark ${role}`;
        mark.setAttribute("aria-hidden", "true");
        mark.textContent = role === "upper" ? "1" : "2";
        b.append(mark, document.createTextNode(ROLE_WORDS[role]));
        b.addEventListener("click", () => assign(role, addr));
        pick.appendChild(b);
      }
      li.append(who, pick);
      list.appendChild(li);
    }
    const ready = chosen.upper && chosen.lower && chosen.upper !== chosen.lower;
    $("setup-start").disabled = !ready;
  }
  function assign(role, addr) {
    const other = role === "upper" ? "lower" : "upper";
    chosen[role] = chosen[role] === addr ? null : addr; // pressing again un-assigns
    if (chosen[other] === addr && chosen[role] === addr) chosen[other] = null; // one role per sensor
    const focusKey = `${role}|${addr}`;
    renderSetup();
    const again = [...document.querySelectorAll("#sensor-list .btn.role")]
      .find((b) => `${b.dataset.role}|${b.dataset.address}` === focusKey);
    if (again) again.focus(); // keep the keyboard where it was after the list is redrawn
  }
  function remember(addr, info) {
    const prev = known.get(addr) || {};
    known.set(addr, { ...prev, ...info });
  }
  async function loadRoles() {
    try {
      const r = await Lumbo.api("GET", "/api/sensors/roles");
      defaultSource = r.default_source || "simulated";
      rateHz = r.rate_hz || 100;
      for (const role of ["upper", "lower"]) {
        const s = r[role];
        if (!s) continue;
        if (!known.has(s.address)) remember(s.address, { name: s.name, family: s.family, battery_pct: s.battery_pct, battery_from: "last_session", seen: false });
        if (!chosen[role] && chosen.upper !== s.address && chosen.lower !== s.address) chosen[role] = s.address;
      }
    } catch (e) { /* older server: no sensors API */ }
  }
  async function scan() {
    if (scanning) return;
    scanning = true;
    $("scan").disabled = true;
    $("setup-error").hidden = true;
    $("scan-status").textContent = "Searching for sensors…";
    try {
      const r = await Lumbo.api("GET", "/api/sensors/scan?timeout_s=3");
      for (const s of known.values()) s.seen = false;
      for (const s of r.sensors) remember(s.address, { ...s, seen: true });
      const n = r.sensors.length;
      $("scan-status").textContent = n ? `Found ${n} sensor${n === 1 ? "" : "s"}.`
        : "No sensors found. Switch them on, keep them close, and search again.";
    } catch (e) {
      $("scan-status").textContent = "";
      $("setup-error").textContent = `Could not search: ${e.message}`;
      $("setup-error").hidden = false;
    } finally {
      scanning = false;
      $("scan").disabled = false;
      renderSetup();
    }
  }
  function openSetup() {
    $("setup").hidden = false;
    $("idle").hidden = true;
    document.querySelector("main.patient").hidden = true;
    renderSetup();
    $("scan").focus();
    loadRoles().then(() => { renderSetup(); scan(); });
  }
  function closeSetup() {
    $("setup").hidden = true;
    document.querySelector("main.patient").hidden = false;
    setSessionState(sessionState); // the idle banner again, if no session runs
  }
  async function startWithSensors() {
    $("setup-error").hidden = true;
    try {
      const st = await Lumbo.api("POST", "/api/session/start",
        { source: "ble", upper: chosen.upper, lower: chosen.lower, rate_hz: rateHz });
      closeSetup();
      voice.say("Starting", { interrupt: true });
      if (st && st.state) setSessionState(st.state, st.message);
      $("stop").focus();
    } catch (e) {
      $("setup-error").textContent = `Could not start: ${e.message}`;
      $("setup-error").hidden = false;
    }
  }
  $("sensors-btn").addEventListener("click", openSetup);
  $("scan").addEventListener("click", scan);
  $("setup-start").addEventListener("click", startWithSensors);
  $("setup-cancel").addEventListener("click", () => { closeSetup(); $("start").focus(); });

  // ---------------------------------------------------------------- sensors: health banner
  const ROLE_NAME = { upper: "Upper sensor", lower: "Lower sensor" };
  function renderSensorBanner(sensors) {
    const banner = $("sensor-banner");
    const active = ["starting", "calibrating", "running"].includes(sessionState);
    const problems = [];
    let kind = "warn";
    for (const role of ["upper", "lower"]) {
      const h = sensors && sensors[role];
      if (!h || !active) continue;
      if (h.status === "failed") {
        problems.push(`${ROLE_NAME[role]}: ${h.message || "needs attention"}. Still trying…`);
        kind = "error";
      } else if (h.status === "reconnecting") {
        problems.push(`${ROLE_NAME[role]} lost — reconnecting…`);
      } else if (h.status === "connecting") {
        problems.push(`Connecting to the ${role} sensor…`);
      } else if (h.silent) {
        problems.push(`${ROLE_NAME[role]} is not sending data — is it on and close by?`);
      } else if (h.battery_pct !== null && h.battery_pct !== undefined && h.battery_pct < 15) {
        problems.push(`${ROLE_NAME[role]} battery low (${Math.round(h.battery_pct)} %)`);
      }
    }
    const both = problems.length === 2 && problems.every((p) => p.endsWith("lost — reconnecting…"));
    const text = both ? "Both sensors lost — reconnecting…" : problems.join("  ·  ");
    banner.hidden = !text;
    banner.className = `banner ${kind}`;
    if ($("sensor-banner-text").textContent !== text) $("sensor-banner-text").textContent = text;
  }

  $("start").addEventListener("click", async () => {
    await rolesLoaded; // the server's default source decides what Start does
    if (defaultSource === "ble") { openSetup(); return; }
    voice.say("Starting", { interrupt: true });
    act("POST", "/api/session/start", {});
  });
  $("stop").addEventListener("click", () => act("POST", "/api/session/stop"));
  function renderMute() {
    $("mute").setAttribute("aria-pressed", voice.muted ? "true" : "false");
    $("mute-waves").style.display = voice.muted ? "none" : "";
    $("mute-cross").style.display = voice.muted ? "" : "none";
    $("mute-text").textContent = voice.muted ? "Sound off" : "Sound on";
    if (!voice.available) { $("mute").disabled = true; $("mute-text").textContent = "No speech"; }
  }
  $("mute").addEventListener("click", () => { voice.setMuted(!voice.muted); renderMute(); });
  $("summary-close").addEventListener("click", () => { $("summary").hidden = true; $("start").focus(); });
  document.addEventListener("keydown", (e) => {
    if (e.target && ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName)) return;
    if (e.key === "m" || e.key === "M") { voice.setMuted(!voice.muted); renderMute(); }
    if (e.key === "Escape") {
      $("summary").hidden = true;
      if (!$("setup").hidden) { closeSetup(); $("start").focus(); }
    }
  });

  const CONN = {
    connecting: ["◌", "Connecting…"], live: ["●", "Live"], idle: ["○", "Connected"],
    "no-data": ["▲", "No sensor data"], stale: ["▲", "Data is stale"], closed: ["✕", "Disconnected"],
  };
  function onConnection(state) {
    const pill = $("conn");
    pill.dataset.state = state;
    const [icon, text] = CONN[state] || ["?", state];
    $("conn-icon").textContent = icon;
    $("conn-text").textContent = text;
    const stale = $("stale");
    if (state === "stale" || state === "closed") {
      $("stale-text").textContent = "Data is stale – the connection to Lumbo was lost. Reconnecting…";
      stale.hidden = false;
    } else if (state === "no-data") {
      $("stale-text").textContent = "Data is stale – no data from the sensors right now.";
      stale.hidden = false;
    } else {
      stale.hidden = true;
    }
  }

  buildScale();
  drawTarget(null);
  renderMute();
  setSessionState("idle");
  const rolesLoaded = loadRoles();
  const conn = new LiveConnection({
    onFrame(f) {
      if (window.lumboAdaptFrame) f = window.lumboAdaptFrame(f); // graded practice (practice-patient.js)
      latest = f;
      handleEvents(f.events);
      renderSensorBanner(f.sensors);
      scheduleRender();
    },
    onStatus(s) {
      setSessionState(s.state, s.state === "failed" ? (s.error || s.message) : s.message);
      renderSensorBanner(s.sensors);
    },
    onHeartbeat(h) { if (h.state !== sessionState) setSessionState(h.state); },
    onConnection,
    onSchemaError(msg) { const b = $("schema-error"); b.textContent = msg; b.hidden = false; },
  });
  window.lumboConnection = conn;
  conn.start();
})();
