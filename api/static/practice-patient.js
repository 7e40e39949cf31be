// Patient page, graded practice: today's exercises with their levels and instructions, the live
// view of whichever exercise runs (the page's gauge for forward bending, a scale for the other
// angles; nothing live when the schedule gives no concurrent feedback), cues in words and speech,
// the self-estimate prompt, pain before and after (0-10), the end-of-session summary, the RMDQ
// when due and the trends. Built into the page by this script; the page's own parts (gauge,
// calibration guide, Start/Stop, mute) keep working and are fed through `lumboAdaptFrame`.
"use strict";

(function () {
  const P = LumboPractice, el = P.el;
  const $ = (id) => document.getElementById(id);
  let pid = null;        // whose practice (from /api/practice/state)
  let prog = null;       // the latest ProgramFrame
  let active = false;    // a session is live
  let dirty = false;
  const seen = new Set(); // events handled (frames and REST answers carry the same ones)
  let levels = {};        // exercise_id -> level shown, to point out a change
  let lastPrompt = null;  // latest self-estimate prompt text
  let rmdqAnswers = [];
  let painLater = null;   // "before"/"after": the patient chose to rate the pain later

  // ---------------------------------------------------------------- the elements
  const items = el("ol", { id: "pp-items", class: "pp-items", "aria-label": "Today's exercises" });
  const startBtn = el("button", { id: "pp-start", class: "btn primary huge", type: "button" },
    el("span", { "aria-hidden": "true", text: "▶ " }), "Start today's exercises");
  const listCard = el("div", { class: "pp-card", id: "pp-list" },
    el("h2", { text: "Today's exercises" }), items, el("div", { class: "pp-row" }, startBtn),
    el("div", { id: "pp-status", class: "pp-status", role: "status" }));

  const painScale = el("div", { class: "pp-pain-scale", role: "group", "aria-labelledby": "pp-pain-title" });
  for (let v = 0; v <= 10; v++) {
    painScale.append(el("button", { type: "button", "data-value": v, "aria-pressed": "false",
      "aria-label": `${v}${v === 0 ? ", no pain" : v === 10 ? ", worst pain imaginable" : ""}`, text: String(v) }));
  }
  const painCard = el("div", { class: "pp-card prompt", id: "pp-pain", hidden: true },
    el("h2", { id: "pp-pain-title", text: "How much pain do you have right now?" }),
    painScale,
    el("div", { class: "pp-pain-ends", "aria-hidden": "true" }, el("span", { text: "◀ 0 no pain" }), el("span", { text: "10 worst pain imaginable ▶" })),
    el("div", { class: "pp-row" },
      el("button", { id: "pp-pain-later", class: "btn", type: "button", text: "Later" }),
      el("span", { id: "pp-pain-msg", class: "pp-status", role: "status", "aria-live": "polite" })));

  const estButtons = el("div", { class: "pp-estimate", id: "pp-estimate-buttons", role: "group", "aria-labelledby": "pp-estimate-title" });
  const estCard = el("div", { class: "pp-card prompt", id: "pp-estimate", hidden: true },
    el("h2", { id: "pp-estimate-title", text: "Before you hear it: were you short of the target, on it, or past it?" }),
    estButtons,
    el("div", { class: "pp-row" }, el("button", { id: "pp-estimate-skip", class: "btn", type: "button", text: "Just tell me" })));

  const nowCard = el("div", { class: "pp-card", id: "pp-now", hidden: true, "aria-live": "off" },
    el("h2", { id: "pp-title", class: "pp-title", text: "" }),
    el("div", { id: "pp-sub", class: "pp-sub", text: "" }),
    el("p", { id: "pp-instructions", class: "pp-instructions", text: "" }),
    el("div", { id: "pp-cue", class: "pp-cue", role: "status", "aria-live": "polite", text: "" }),
    el("div", { id: "pp-perf", class: "pp-perf", text: "" }),
    el("div", { class: "pp-row" },
      el("span", { id: "pp-rest", class: "pp-rest", hidden: true }),
      el("button", { id: "pp-skip-rest", class: "btn", type: "button", hidden: true, text: "Skip the rest" }),
      el("button", { id: "pp-request", class: "btn primary", type: "button", hidden: true, text: "How did that one go?" })));
  const painOpen = el("button", { id: "pp-pain-open", class: "btn primary", type: "button", hidden: true, text: "Rate your pain" });

  const summaryCard = el("div", { class: "pp-card", id: "pp-summary", hidden: true },
    el("h2", { id: "pp-summary-title", text: "All done for today – well done!" }),
    el("ul", { id: "pp-summary-list", class: "pp-summary-list" }),
    el("p", { id: "pp-summary-note", text: "" }));

  const rmdqCard = el("div", { class: "pp-card", id: "pp-rmdq", hidden: true },
    el("h2", { text: "Back questionnaire (RMDQ)" }),
    el("p", { id: "pp-rmdq-text", text: "" }),
    el("div", { class: "pp-row" }, el("button", { id: "pp-rmdq-open", class: "btn", type: "button", text: "Answer now" })),
    el("div", { id: "pp-rmdq-form", hidden: true },
      el("p", { id: "pp-rmdq-note", class: "pp-muted", text: "" }),
      el("ol", { id: "pp-rmdq-list", class: "pp-rmdq-list" }),
      el("div", { class: "pp-row" },
        el("button", { id: "pp-rmdq-submit", class: "btn primary", type: "button", text: "Send answers" }),
        el("span", { id: "pp-rmdq-msg", class: "pp-status", role: "status" }))));

  const trends = el("details", { class: "pp-card", id: "pp-trends" },
    el("summary", { text: "Your progress" }),
    el("div", { class: "pp-legend" },
      el("span", {}, el("span", { class: "sw", style: "border-color:#0b57a4" }), "● pain before practice"),
      el("span", {}, el("span", { class: "sw", style: "border-color:#a04400;border-top-style:dashed" }), "▲ pain after practice")),
    el("canvas", { id: "pp-chart-pain", class: "pp-chart", role: "img", "aria-label": "Pain per session" }),
    el("canvas", { id: "pp-chart-rmdq", class: "pp-chart", role: "img", "aria-label": "RMDQ by week" }),
    el("p", { id: "pp-trends-text", class: "pp-muted", text: "" }));

  // prompts float over the page (always in view); the running exercise above the live view;
  // the list, questionnaire and trends below it
  painCard.classList.add("pp-sheet"); estCard.classList.add("pp-sheet");
  const section = el("section", { id: "pp", class: "pp", "aria-label": "Today's practice" },
    painCard, estCard, painOpen, summaryCard, nowCard);
  const below = el("section", { id: "pp-more", class: "pp pp-more", "aria-label": "Today's exercises and progress" },
    listCard, rmdqCard, trends);
  const main = document.querySelector("main.patient");
  main.parentNode.insertBefore(section, main);
  main.parentNode.insertBefore(below, main.nextSibling);

  // the live view of angles other than forward bending, and the "no live guide" note
  const barSvg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  barSvg.setAttribute("viewBox", "0 0 600 150");
  barSvg.setAttribute("role", "img");
  barSvg.id = "pp-bar";
  const barPanel = el("section", { class: "panel pp-bar-panel", id: "pp-bar-panel", "aria-label": "Live position" },
    el("div", { id: "pp-bar-label", class: "pp-bar-label", text: "" }), barSvg,
    el("div", { id: "pp-bar-zone", class: "pp-bar-zone", "data-kind": "neutral", role: "status", "aria-live": "polite" },
      el("span", { id: "pp-bar-zone-icon", "aria-hidden": "true", text: "■" }), el("span", { id: "pp-bar-zone-text", text: "Ready" })),
    el("div", { class: "pp-hidden-note", id: "pp-hidden-note" },
      el("span", { class: "pp-shape", "aria-hidden": "true", text: "◌" }), el("span", { id: "pp-hidden-text", text: "" })));
  main.insertBefore(barPanel, main.firstChild);

  // ---------------------------------------------------------------- feeding the page's gauge
  // The page's own view (gauge, angle, zone, repetitions, hold) shows the running exercise: its
  // position relative to where the exercise started, its band, its count. Values the schedule
  // hides (no concurrent feedback) arrive as null and stay hidden.
  const LEGACY_ZONE = { rest: "rest", towards: "below", below: "below", in: "in", over: "over",
    above: "over", wrong_direction: "rest", no_signal: "rest" };
  window.lumboAdaptFrame = function (f) {
    const pg = f.program;
    if (!pg) return f;
    if (pg.mode === "baseline") {
      const b = pg.baseline || {};
      return Object.assign({}, f, { angles: Object.assign({}, f.angles, { flexion_deg: null }), target: null,
        feedback: { zone: "rest", rep_count: b.count || 0, reps_per_set: b.of || 0, hold_progress: 0, in_repetition: false },
        events: [] });
    }
    const pv = pg.patient;
    const cur = (pg.items || []).find((i) => i.status === "current");
    const shown = pv && pv.value_deg !== null && pv.value_deg !== undefined;
    const band = pv && pv.low_deg !== null && pv.low_deg !== undefined && pv.high_deg !== null && pv.high_deg !== undefined;
    return Object.assign({}, f, {
      angles: Object.assign({}, f.angles, { flexion_deg: shown ? pv.value_deg : null }),
      target: band ? {
        target_deg: pv.target_deg, tolerance_deg: (pv.high_deg - pv.low_deg) / 2,
        hold_s: (cur.parameters && cur.parameters.hold_s) || 0, level: cur.level, share: null, source: "level",
      } : null,
      feedback: pv ? { zone: LEGACY_ZONE[pv.zone] || "rest", rep_count: pv.rep_count || 0,
        reps_per_set: pv.reps_in_block || 0, hold_progress: pv.hold_progress || 0, in_repetition: !!pv.in_trial } : null,
      events: [],
    });
  };

  // ---------------------------------------------------------------- rendering
  function itemText(it) {
    return { current: ["▶", "now"], done: ["✔", "done"], next: ["○", "next"] }[it.status] || ["○", ""];
  }
  function renderItems(pg, view) {
    const list = pg ? pg.items : (view ? view.program.items.map((it, i) => Object.assign({ index: i, status: "next" }, it)) : []);
    items.textContent = "";
    for (const it of list) {
      const [icon, word] = itemText(it);
      const li = el("li", { "data-status": it.status, "data-exercise": it.exercise_id },
        el("span", { class: "pp-icon", "aria-hidden": "true", text: icon }),
        el("span", { class: "pp-name", text: it.name }),
        el("span", { class: "pp-level", text: `Level ${it.level}` }),
        el("span", { class: "visually-hidden", text: `, ${word}` }));
      if (levels[it.exercise_id] !== undefined && levels[it.exercise_id] !== it.level) {
        li.classList.add("pp-changed");
        setTimeout(() => li.classList.remove("pp-changed"), 6000); // a visual cue, not synchronisation
      }
      levels[it.exercise_id] = it.level;
      items.append(li);
    }
  }

  function hiddenText(pg, pv) {
    if (pg.mode === "baseline") return "Assessment: move as far as is comfortable. No results are shown during the assessment.";
    if (!pv) return "";
    if (pv.block_kind === "retention") return "Test block, no feedback: do your best – move to where the target was, hold, and come back.";
    return { terminal: "No live guide in this block: you will hear how it went after each movement.",
      bandwidth: "No live guide: you will hear when a movement was off target.",
      faded: "No live guide: you will hear how it went now and then.",
      summary: "No live guide: you will hear a summary every few movements.",
      self_controlled: "No live guide: ask when you want to know how a movement went." }[pv.feedback] ||
      "No live guide in this block.";
  }

  function renderBar(pg, pv, cur) {
    const label = cur ? `${P.ANGLE_WORDS[cur.angle] || cur.angle} – ${cur.direction}` : "";
    $("pp-bar-label").textContent = label;
    const v = pv ? pv.value_deg : null;
    const lo = pv ? pv.low_deg : null, hi = pv ? pv.high_deg : null;
    const top = Math.max(10, (hi ?? 0) * 1.5, (v ?? 0) + 3);
    const bottom = Math.min(-5, (v ?? 0) - 3);
    const X = (d) => 20 + ((d - bottom) / (top - bottom)) * 560;
    const ns = "http://www.w3.org/2000/svg";
    barSvg.textContent = "";
    const add = (tag, a) => { const n = document.createElementNS(ns, tag); for (const k in a) n.setAttribute(k, a[k]); barSvg.append(n); return n; };
    add("rect", { x: 20, y: 50, width: 560, height: 40, fill: "#e3e1d8", rx: 8 });
    if (lo !== null && lo !== undefined && hi !== null && hi !== undefined) {
      add("rect", { x: X(lo), y: 44, width: Math.max(4, X(hi) - X(lo)), height: 52, fill: "#0b57a4", stroke: "#141414", "stroke-width": 3, "stroke-dasharray": "8 6" });
    }
    add("line", { x1: X(0), y1: 36, x2: X(0), y2: 104, stroke: "#4a4a4a", "stroke-width": 3 });
    const t0 = add("text", { x: X(0), y: 128, "text-anchor": "middle", "font-size": 22, "font-weight": 700, fill: "#4a4a4a" });
    t0.textContent = "start";
    if (v !== null && v !== undefined) {
      const x = Math.max(20, Math.min(580, X(v)));
      add("path", { d: `M ${x} 40 L ${x - 14} 12 L ${x + 14} 12 Z`, fill: "#141414" });
      add("line", { x1: x, y1: 40, x2: x, y2: 100, stroke: "#141414", "stroke-width": 6 });
    }
    barSvg.setAttribute("aria-label", v === null || v === undefined ? "Live position hidden" :
      `Position ${Math.round(v)} degrees` + (lo !== null && lo !== undefined ? `, target zone ${Math.round(lo)} to ${Math.round(hi)} degrees` : ""));
    const kind = pv ? P.zoneKind(pv.zone) : "neutral";
    const [icon, words] = P.ZONE_WORDS[kind];
    $("pp-bar-zone").dataset.kind = kind;
    $("pp-bar-zone-icon").textContent = icon;
    $("pp-bar-zone-text").textContent = v === null || v === undefined ? "Ready" : words;
  }

  function renderSummary(pg) {
    const s = pg.summary;
    const list = $("pp-summary-list");
    list.textContent = "";
    if (pg.mode === "baseline") {
      $("pp-summary-title").textContent = "Assessment complete – well done!";
      const dirs = (s.baseline && s.baseline.directions) || {};
      for (const [k, m] of Object.entries(dirs)) {
        list.append(el("li", { text: `${k.replace(/_/g, " ")}: ${Math.round(m.range_deg)}°` }));
      }
      $("pp-summary-note").textContent = s.review ? s.review.patient_message : "Your therapist will use these ranges to set your targets.";
      return;
    }
    $("pp-summary-title").textContent = "All done for today – well done!";
    for (const ex of s.exercises || []) {
      const r = ex.retention;
      const sets = (ex.sets || []).map((b) => `${b.reps_in_tolerance} of ${b.reps}`).join(", ");
      let text = `${ex.name}, level ${ex.level}: practice ${sets || "–"} on target`;
      if (r) text += `; test without feedback ${r.reps_in_tolerance} of ${r.reps}`;
      list.append(el("li", { class: r && !r.criterion_met ? "pp-miss" : "", text }));
    }
    const est = s.self_estimates || {};
    if (est.answered) list.append(el("li", { text: `You judged ${est.matched} of ${est.answered} movements right.` }));
    const pb = s.pain_before ?? pg.pain_before, pa = s.pain_after ?? pg.pain_after;
    list.append(el("li", { text: `Pain before: ${pb ?? "not entered"}; after: ${pa ?? "not entered"}.` }));
    const msgs = (s.decisions || []).filter((d) => d.patient_message && d.exercise_id !== "baseline");
    $("pp-summary-note").textContent = msgs.length
      ? msgs.map((d) => `${(pg.items.find((i) => i.exercise_id === d.exercise_id) || {}).name || d.exercise_id}: ${d.patient_message}`).join(" ")
      : (pa === null || pa === undefined ? "Please rate your pain now to finish today's session." : "");
  }

  function render() {
    dirty = false;
    const pg = prog;
    document.body.classList.toggle("pp-on", !!pg);
    startBtn.hidden = active;
    if (!pg) {
      document.body.classList.remove("pp-bar-mode", "pp-hidden-live");
      nowCard.hidden = true; painCard.hidden = true; estCard.hidden = true;
      return;
    }
    const pv = pg.patient;
    const cur = pg.items.find((i) => i.status === "current");
    renderItems(pg);
    const awaiting = pg.awaiting || [];
    // pain
    const painWhen = awaiting.includes("pain_after") ? "after" : awaiting.includes("pain_before") ? "before" : null;
    painCard.hidden = !painWhen || painLater === painWhen;
    $("pp-pain-open").hidden = !painWhen || painLater !== painWhen;
    if (painWhen) $("pp-pain-open").textContent = `Rate your pain ${painWhen === "before" ? "(before)" : "now"}`;
    if (painWhen) {
      painCard.dataset.when = painWhen;
      $("pp-pain-title").textContent = painWhen === "before"
        ? "Before we start: how much pain do you have right now?"
        : "All done. How much pain do you have now?";
    }
    $("pp-status").textContent = pg.mode === "program"
      ? `Pain before: ${pg.pain_before ?? "not entered"} · after: ${pg.pain_after ?? "not entered"}` : "";
    // self-estimate
    const asking = awaiting.includes("self_estimate");
    if (asking && estCard.hidden) {
      const opts = pg.estimate_options || ["short", "on_target", "past"];
      estButtons.textContent = "";
      estButtons.classList.toggle("two", opts.length === 2);
      for (const o of opts) {
        const [shape, words] = P.ESTIMATES[o] || ["•", o];
        estButtons.append(el("button", { type: "button", "data-kind": o },
          el("span", { class: "pp-shape", "aria-hidden": "true", text: shape }), el("span", { text: words })));
      }
      if (lastPrompt) $("pp-estimate-title").textContent = lastPrompt;
      estCard.hidden = false;
      if (!painCard.contains(document.activeElement)) estButtons.firstChild.focus();
    } else if (!asking) {
      estCard.hidden = true;
    }
    // the running exercise / assessment step
    nowCard.hidden = pg.phase === "done";
    if (pg.mode === "baseline" && pg.baseline) {
      const b = pg.baseline;
      $("pp-title").textContent = `Assessment: ${b.step_name || "getting ready"}`;
      $("pp-sub").textContent = b.step ? `Step ${b.step_number} of ${b.steps} · movement ${Math.min(b.count + 1, b.of)} of ${b.of}` : "";
      $("pp-instructions").textContent = b.instructions || "";
    } else if (cur) {
      const kind = pg.stage_kind === "retention" ? "Test without feedback" : "Practice";
      $("pp-title").textContent = `${cur.name} – level ${cur.level}`;
      const block = pv ? (pv.block_kind === "set" ? `set ${pv.block_index} of ${pv.sets}` : "test block") : "";
      $("pp-sub").textContent = `${kind}${block ? " · " + block : ""}${pv ? ` · movement ${Math.min(pv.rep_count + 1, pv.reps_in_block)} of ${pv.reps_in_block}` : ""}`;
      $("pp-instructions").textContent = pg.instructions || "";
    } else if (pg.phase === "calibrating") {
      $("pp-title").textContent = "Getting ready";
      $("pp-sub").textContent = "Calibration first";
      $("pp-instructions").textContent = "Stand tall and still, then bend forward slowly once, as far as is comfortable, and come back up.";
    } else if (pg.phase === "blocked" || pg.phase === "failed") {
      $("pp-title").textContent = "Waiting for your therapist";
      $("pp-sub").textContent = "";
      $("pp-instructions").textContent = pg.message;
    }
    const rest = pv && pv.phase === "rest" ? pv.rest_remaining_s : null;
    $("pp-rest").hidden = rest === null;
    if (rest !== null) $("pp-rest").textContent = `Rest: ${Math.ceil(rest)} s`;
    $("pp-skip-rest").hidden = rest === null;
    $("pp-request").hidden = !awaiting.includes("feedback_available");
    // live view
    const hidden = pg.mode === "baseline" || (!!pv && pv.phase !== "rest" && pv.feedback !== "continuous" && !pv.guide_on);
    document.body.classList.toggle("pp-hidden-live", hidden);
    document.body.classList.toggle("pp-bar-mode", !!cur && !P.usesGauge(cur));
    const al = $("angle-label");
    if (al) al.textContent = cur && !P.usesGauge(cur) ? (P.ANGLE_WORDS[cur.angle] || "Angle") : "Bending angle";
    $("pp-hidden-text").textContent = hidden ? hiddenText(pg, pv) : "";
    if (!P.usesGauge(cur)) renderBar(pg, hidden ? null : pv, cur);
    // summary
    summaryCard.hidden = !(pg.phase === "done" && pg.summary);
    if (!summaryCard.hidden) renderSummary(pg);
  }
  function schedule() { if (!dirty) { dirty = true; requestAnimationFrame(render); } }

  // ---------------------------------------------------------------- events
  function evKey(e) {
    return [e.type, e.time_s, e.rep_number ?? "", e.exercise_id ?? "", e.when ?? "", e.step ?? "",
      e.cue ? e.cue.text : ""].join("|");
  }
  function showCue(cue, speak = true) {
    if (!cue) return;
    $("pp-cue").textContent = cue.text;
    if (speak) P.say(cue.audio);
  }
  function handleEvents(events) {
    for (const e of events || []) {
      if (e.audience === "therapist") continue;
      const k = evKey(e);
      if (seen.has(k)) continue;
      seen.add(k);
      if (seen.size > 500) seen.delete(seen.values().next().value);
      switch (e.type) {
        case "self_estimate_prompt":
          lastPrompt = e.cue && e.cue.text;
          $("pp-estimate-title").textContent = lastPrompt || $("pp-estimate-title").textContent;
          P.say(e.cue && e.cue.audio);
          break;
        case "repetition_feedback": {
          $("pp-cue").textContent = e.cue.text;
          $("pp-perf").textContent = e.performance ? e.performance.text : "";
          const lr = $("lastrep"); if (lr) lr.textContent = `Movement ${e.rep_number}: ${e.cue.text}`;
          P.say(e.cue.audio + (e.performance ? ". " + e.performance.audio : ""));
          break;
        }
        case "pain_prompt":
          P.say(e.cue && e.cue.audio);
          break;
        case "baseline_step_started": // the instructions are on screen already
          $("pp-cue").textContent = "Stand still for a moment, then start.";
          P.say(e.cue && e.cue.audio);
          break;
        case "program_started": case "repetition_started": case "exercise_completed": case "rest_skipped":
          break;
        default:
          if (e.cue) showCue(e.cue);
      }
    }
  }

  // ---------------------------------------------------------------- actions
  function setMsg(id, text, error) {
    const m = $(id); if (!m) return;
    m.textContent = text; m.classList.toggle("error", !!error);
  }
  async function act(method, path, body, msgId) {
    try {
      const res = await P.api(method, path, body);
      if (res && res.events) handleEvents(res.events);
      if (res && res.practice) { prog = res.practice.program || prog; if (res.practice.patient_id) pid = res.practice.patient_id; }
      schedule();
      return res;
    } catch (e) {
      if (msgId) setMsg(msgId, `Could not do that: ${e.message}`, true);
      else { const b = $("action-error"); if (b) { b.textContent = `Could not do that: ${e.message}`; b.hidden = false; } }
      return null;
    }
  }
  startBtn.addEventListener("click", () => {
    P.say("Starting today's exercises", true);
    seen.clear();
    act("POST", "/api/practice/start", { mode: "program" });
  });
  painScale.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button"); if (!b) return;
    const when = painCard.dataset.when || "before";
    for (const x of painScale.children) x.setAttribute("aria-pressed", x === b ? "true" : "false");
    const res = await act("POST", "/api/practice/pain", { when, value: Number(b.dataset.value) }, "pp-pain-msg");
    if (res) {
      setMsg("pp-pain-msg", `Thank you: pain ${when} ${b.dataset.value}.`);
      P.say("Thank you");
      for (const x of painScale.children) x.setAttribute("aria-pressed", "false");
      if (when === "after") loadTrends();
    }
  });
  painScale.addEventListener("keydown", (ev) => { // arrows move along the scale
    const b = ev.target.closest("button"); if (!b) return;
    const i = Number(b.dataset.value);
    const to = ev.key === "ArrowRight" ? i + 1 : ev.key === "ArrowLeft" ? i - 1 : null;
    if (to !== null && to >= 0 && to <= 10) { ev.preventDefault(); painScale.children[to].focus(); }
  });
  estButtons.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button"); if (!b) return;
    estCard.hidden = true;
    try {
      const res = await P.api("POST", "/api/practice/self-estimate", { estimate: b.dataset.kind });
      handleEvents(res.events);
      if (res.practice && res.practice.program) prog = res.practice.program;
      schedule();
    } catch (e) { // the next movement had started: the question lapsed
      $("pp-cue").textContent = "That question has passed – the next movement had started.";
    }
  });
  $("pp-estimate-skip").addEventListener("click", () => { estCard.hidden = true; act("POST", "/api/practice/self-estimate/skip"); });
  $("pp-skip-rest").addEventListener("click", () => act("POST", "/api/practice/skip-rest"));
  $("pp-pain-later").addEventListener("click", () => { painLater = painCard.dataset.when || "before"; schedule(); $("pp-pain-open").focus(); });
  $("pp-pain-open").addEventListener("click", () => { painLater = null; schedule(); requestAnimationFrame(() => { const b = painScale.querySelector("button"); if (b) b.focus(); }); });
  $("pp-request").addEventListener("click", () => act("POST", "/api/practice/request-feedback"));

  // ---------------------------------------------------------------- RMDQ and trends
  async function loadRmdq() {
    if (!pid) return;
    let r;
    try { r = await P.api("GET", `/api/practice/patients/${encodeURIComponent(pid)}/rmdq`); } catch (e) { return; }
    const st = r.status;
    rmdqCard.hidden = !st.due;
    $("pp-rmdq-text").textContent = st.due
      ? `This week's questionnaire is due (week ${st.week} of the programme). It has ${st.items} yes/no questions about your back today.`
      : "";
    $("pp-rmdq-note").textContent = r.note;
    const list = $("pp-rmdq-list");
    list.textContent = "";
    rmdqAnswers = r.items.map(() => null);
    r.items.forEach((text, i) => {
      const yes = el("button", { type: "button", "aria-pressed": "false", "data-i": i, "data-a": "yes", text: "Yes" });
      const no = el("button", { type: "button", "aria-pressed": "false", "data-i": i, "data-a": "no", text: "No" });
      list.append(el("li", {}, el("span", { text: `${i + 1}. ${text}` }), el("span", { class: "pp-row", role: "group", "aria-label": `Statement ${i + 1}` }, yes, no)));
    });
  }
  $("pp-rmdq-open").addEventListener("click", () => { $("pp-rmdq-form").hidden = false; $("pp-rmdq-open").hidden = true; });
  $("pp-rmdq-list").addEventListener("click", (ev) => {
    const b = ev.target.closest("button"); if (!b) return;
    const i = Number(b.dataset.i);
    rmdqAnswers[i] = b.dataset.a === "yes";
    for (const x of b.parentNode.children) x.setAttribute("aria-pressed", x === b ? "true" : "false");
  });
  $("pp-rmdq-submit").addEventListener("click", async () => {
    const missing = rmdqAnswers.map((a, i) => (a === null ? i + 1 : null)).filter((x) => x);
    if (missing.length) { setMsg("pp-rmdq-msg", `Please answer statement ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? " …" : ""}.`, true); return; }
    try {
      const r = await P.api("POST", `/api/practice/patients/${encodeURIComponent(pid)}/rmdq`, { answers: rmdqAnswers });
      setMsg("pp-rmdq-msg", `Thank you. Your score: ${r.score} of 24.`);
      $("pp-rmdq-form").hidden = true;
      drawTrends(r.trends);
    } catch (e) { setMsg("pp-rmdq-msg", `Could not send: ${e.message}`, true); }
  });

  let trendData = null;
  function drawTrends(t) {
    trendData = t || trendData;
    if (!trendData || !trends.open) return;
    P.drawTrends(trendData, $("pp-chart-pain"), $("pp-chart-rmdq"));
    const pt = trendData.pain_trend;
    const o = pt && pt.overall;
    $("pp-trends-text").textContent = o
      ? (o.important_improvement ? "Your pain before practice has fallen by 30 % or more since the start: an important change." : "Your pain before practice: no important change yet. Control and confidence often come first.")
      : `${(trendData.pain || []).length} sessions with a pain rating so far.`;
  }
  async function loadTrends() {
    if (!pid) return;
    try { drawTrends(await P.api("GET", `/api/practice/patients/${encodeURIComponent(pid)}/trends`)); } catch (e) { /* shown next time */ }
  }
  trends.addEventListener("toggle", () => drawTrends());

  // ---------------------------------------------------------------- live data
  function onMessage(msg) {
    if (msg.type === "frame") {
      const before = prog && prog.phase;
      prog = msg.program || null;
      active = true;
      if (prog) handleEvents(msg.program_events);
      if (prog && before !== "done" && prog.phase === "done") loadTrends();
      schedule();
    } else if (msg.type === "status" || msg.type === "heartbeat") {
      const st = msg.type === "status" ? msg.session && msg.session.state : msg.state;
      const now = ["starting", "calibrating", "running", "stopping"].includes(st);
      if (now !== active) { active = now; refresh(); }
    }
  }
  async function refresh() {
    try {
      const s = await P.api("GET", "/api/practice/state");
      pid = s.patient_id;
      if (s.program) prog = s.program;
      if (!s.program && !prog) {
        const v = await P.api("GET", `/api/practice/patients/${encodeURIComponent(pid)}`);
        renderItems(null, v);
      }
      schedule();
    } catch (e) { /* signed out or server restarting: the page's banners say so */ }
  }

  window.lumboPractice = { state: () => prog, refresh };
  refresh().then(() => { loadRmdq(); loadTrends(); });
  if (window.lumboConnection && window.lumboConnection.addListener) window.lumboConnection.addListener(onMessage);
})();
