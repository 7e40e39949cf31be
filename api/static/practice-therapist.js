// Therapist page, graded practice: start the patient's program or baseline, follow it live
// (everything the patient does not see too: the position in blocks without feedback, every
// repetition's result), edit the day's program, set and lock levels, read every progression
// decision with its rule and reason, and the trends (pain per session, RMDQ).
"use strict";

(function () {
  const P = LumboPractice, el = P.el, fmt = Lumbo.fmt;
  const $ = (id) => document.getElementById(id);
  let pid = null, prog = null, library = [], view = null, dirty = false;
  let draft = []; // program rows being edited

  // ---------------------------------------------------------------- elements
  const metric = (id, k) => el("div", { class: "metric" }, el("div", { class: "k", text: k }), el("div", { class: "v", id, text: "–" }));
  const live = el("section", { class: "panel pt", id: "pt-practice", "aria-labelledby": "pt-practice-title" },
    el("h2", { id: "pt-practice-title" }, "Graded practice – ", el("span", { id: "pt-patient", text: "…" })),
    el("div", { class: "pt-row" },
      el("button", { id: "pt-start-program", class: "btn small primary", type: "button" }, el("span", { "aria-hidden": "true", text: "▶ " }), "Start today's program"),
      el("button", { id: "pt-start-baseline", class: "btn small", type: "button", text: "Start baseline assessment" }),
      el("span", { id: "pt-msg", class: "msg", role: "status", "aria-live": "polite" })),
    el("div", { class: "pt-grid", style: "margin-top:10px" },
      metric("pt-m-phase", "Phase"), metric("pt-m-stage", "Stage"), metric("pt-m-ex", "Exercise"),
      metric("pt-m-block", "Block"), metric("pt-m-reps", "Repetitions"), metric("pt-m-value", "Position"),
      metric("pt-m-band", "Target band"), metric("pt-m-zone", "Zone"), metric("pt-m-await", "Waiting for"),
      metric("pt-m-pain", "Pain before / after")),
    el("h3", { text: "Practice events" }),
    el("ul", { id: "pt-events", class: "pt-events" }));

  const programPanel = el("section", { class: "panel pt", id: "pt-program-panel", "aria-labelledby": "pt-program-title" },
    el("h2", { id: "pt-program-title", text: "Day's program" }),
    el("table", { id: "pt-program" }, el("thead", {}, el("tr", {},
      ...["#", "Exercise", "Level", "Sets", "Test block", "Rest after (s)", ""].map((h) => el("th", { scope: "col", text: h })))), el("tbody")),
    el("div", { class: "pt-row" },
      el("label", { class: "visually-hidden", for: "pt-add-ex", text: "Exercise to add" }),
      el("select", { id: "pt-add-ex", class: "sel" }),
      el("button", { id: "pt-add", class: "btn small", type: "button", text: "Add exercise" })),
    el("div", { class: "pt-row" },
      el("label", { class: "visually-hidden", for: "pt-program-reason", text: "Reason" }),
      el("input", { id: "pt-program-reason", class: "pt-reason", placeholder: "Reason for the change (kept with the decisions)" })),
    el("div", { class: "pt-row" },
      el("button", { id: "pt-save-program", class: "btn small primary", type: "button", text: "Save program" }),
      el("span", { id: "pt-program-msg", class: "msg", role: "status", "aria-live": "polite" })));
  const levelsPanel = el("section", { class: "panel pt", id: "pt-levels-panel", "aria-labelledby": "pt-levels-title" },
    el("h2", { id: "pt-levels-title", text: "Levels" }),
    el("div", { id: "pt-levels", class: "pt-levels" }),
    el("div", { class: "pt-row" },
      el("label", { class: "visually-hidden", for: "pt-level-reason", text: "Reason for a level change" }),
      el("input", { id: "pt-level-reason", class: "pt-reason", placeholder: "Reason for a level change or lock" })),
    el("div", { id: "pt-level-msg", class: "msg", role: "status", "aria-live": "polite" }));

  const decisionsPanel = el("section", { class: "panel pt", id: "pt-decisions-panel", "aria-labelledby": "pt-decisions-title" },
    el("h2", { id: "pt-decisions-title", text: "Progression decisions" }),
    el("div", { class: "pt-log" }, el("table", { id: "pt-decisions" }, el("thead", {}, el("tr", {},
      ...["When", "Exercise", "Rule", "Outcome", "Level", "Reason"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, el("tr", {}, el("td", { colspan: 6, text: "No decisions yet." }))))));

  const trendsPanel = el("section", { class: "panel pt", id: "pt-trends-panel", "aria-labelledby": "pt-trends-title" },
    el("h2", { id: "pt-trends-title", text: "Trends" }),
    el("div", { class: "legend" },
      el("span", {}, el("span", { class: "sw", style: "border-color:#0b57a4" }), "● pain before"),
      el("span", {}, el("span", { class: "sw", style: "border-color:#a04400;border-top-style:dashed" }), "▲ pain after")),
    el("canvas", { id: "pt-chart-pain", class: "pt-chart", role: "img", "aria-label": "Pain per session" }),
    el("canvas", { id: "pt-chart-rmdq", class: "pt-chart", role: "img", "aria-label": "RMDQ by week" }),
    el("p", { id: "pt-trends-text", text: "" }),
    el("h3", { text: "Baseline" }),
    el("p", { id: "pt-baseline", text: "No baseline yet: targets come from the calibration's forward range." }));

  const stacks = document.querySelectorAll("main.therapist > .stack");
  stacks[0].insertBefore(live, stacks[0].firstChild);
  stacks[0].insertBefore(programPanel, live.nextSibling);
  stacks[1].insertBefore(levelsPanel, stacks[1].firstChild);
  stacks[0].append(decisionsPanel, trendsPanel);

  const msg = (id, text, error = false) => { const m = $(id); m.textContent = text; m.className = "msg" + (error ? " error" : ""); };

  // ---------------------------------------------------------------- live
  function describe(e) {
    const r = e.result;
    switch (e.type) {
      case "exercise_started": return `▶ ${e.name}, level ${e.level} (${e.kind})`;
      case "block_started": return `${e.kind === "set" ? "Set " + e.index : "Retention block"}: ${e.reps} reps, feedback ${e.feedback}`;
      case "repetition_recorded":
        return `${e.kind === "set" ? "Set " + e.index : "Retention"} rep ${e.rep_number}: ${r.pattern === "functional" ? "" : "value " + fmt(r.value_deg, 1) + "°, "}error ${fmt(r.error_deg, 1)}° ${r.in_tolerance ? "✔ in tolerance" : "✕ outside"}${r.tempo ? ", tempo " + r.tempo : ""}`;
      case "repetition_interrupted": return `Rep ${e.rep_number} interrupted (${e.reason})`;
      case "self_estimate_result": return `Self-estimate rep ${e.rep_number}: said ${e.estimate}, was ${e.actual} ${e.matched ? "✔" : "✕"}`;
      case "block_completed": return `■ ${e.cue.text}`;
      case "pain_recorded": return `Pain ${e.when}: ${e.value}`;
      case "level_changed": return `Level of ${e.exercise_id}: ${e.from_level} → ${e.level}${e.restarted ? " (exercise restarted)" : ""}`;
      case "progression_decided": { const d = e.decision; return `Decision ${d.exercise_id}: ${d.rule_id} → ${d.outcome} (${d.from_level ?? "–"} → ${d.to_level ?? "–"})`; }
      case "program_completed": return "✔ Program completed";
      case "program_blocked": case "practice_failed": return `✕ ${e.message}`;
      case "baseline_step_completed": return `Baseline ${e.step}: ${e.measure ? fmt(e.measure.range_deg, 1) + "°" : fmt(e.mean_abs_error_deg, 1) + "° error"}`;
      case "baseline_completed": return "✔ Baseline complete";
      case "rest_skipped": return "Rest skipped by the patient";
      default: return null;
    }
  }
  function onEvents(events) {
    let reload = false;
    for (const e of events || []) {
      if (["progression_decided", "level_changed", "program_completed", "baseline_completed", "pain_recorded"].includes(e.type)) reload = true;
      const text = describe(e);
      if (!text) continue;
      const list = $("pt-events");
      list.prepend(el("li", { text }));
      while (list.children.length > 80) list.lastChild.remove();
    }
    if (reload) loadPatient();
  }
  function render() {
    dirty = false;
    const pg = prog;
    if (!pg) return;
    $("pt-m-phase").textContent = pg.mode === "baseline" ? `baseline: ${pg.phase}` : pg.phase;
    $("pt-m-stage").textContent = pg.stages ? `${pg.stage} / ${pg.stages}${pg.stage_kind ? " " + pg.stage_kind : ""}` : "–";
    const cur = (pg.items || []).find((i) => i.status === "current");
    const ex = pg.exercise;
    if (pg.mode === "baseline" && pg.baseline) {
      const b = pg.baseline;
      $("pt-m-ex").textContent = b.step_name || "–";
      $("pt-m-block").textContent = `${b.phase}`;
      $("pt-m-reps").textContent = `${b.count} / ${b.of}`;
      $("pt-m-value").textContent = fmt(b.value_deg, 1, "°");
      $("pt-m-band").textContent = "–"; $("pt-m-zone").textContent = "–";
    } else {
      $("pt-m-ex").textContent = cur ? `${cur.name} (L${cur.level})` : "–";
      $("pt-m-block").textContent = ex ? `${ex.block_kind} ${ex.block_index} · ${ex.feedback}${ex.phase === "rest" ? " · rest " + Math.ceil(ex.rest_remaining_s || 0) + " s" : ""}` : "–";
      $("pt-m-reps").textContent = ex ? `${ex.rep_count} / ${ex.reps_in_block}` : "–";
      $("pt-m-value").textContent = ex ? fmt(ex.value_deg, 1, "°") : "–";
      $("pt-m-band").textContent = ex && ex.low_deg !== null && ex.low_deg !== undefined ? `${fmt(ex.low_deg, 1)}–${fmt(ex.high_deg, 1)}°` : "–";
      const kind = ex ? P.zoneKind(ex.zone) : "neutral";
      $("pt-m-zone").textContent = ex && ex.zone ? `${P.ZONE_WORDS[kind][0]} ${ex.zone}` : "–";
      $("pt-m-zone").dataset.kind = kind;
    }
    $("pt-m-await").textContent = (pg.awaiting || []).join(", ") || "–";
    $("pt-m-pain").textContent = `${pg.pain_before ?? "–"} / ${pg.pain_after ?? "–"}`;
    $("pt-m-pain").title = "not entered: –";
  }
  const schedule = () => { if (!dirty) { dirty = true; requestAnimationFrame(render); } };

  // ---------------------------------------------------------------- program editor and levels
  function exOption(ex, selected) {
    return el("option", { value: ex.id, selected: ex.id === selected, text: ex.name });
  }
  function levelSelect(exId, level, id) {
    const ex = library.find((e) => e.id === exId);
    const s = el("select", { id, "aria-label": `Level of ${ex ? ex.name : exId}` });
    (ex ? ex.levels : [{}]).forEach((lv, i) => {
      const n = i + 1;
      const what = lv.changed ? ` (${lv.changed})` : "";
      s.append(el("option", { value: n, selected: n === level, text: `${n}${what}` }));
    });
    return s;
  }
  function renderProgram() {
    const tbody = $("pt-program").tBodies[0];
    tbody.textContent = "";
    draft.forEach((row, i) => {
      const exSel = el("select", { "aria-label": `Exercise ${i + 1}` }, ...library.map((ex) => exOption(ex, row.exercise_id)));
      exSel.addEventListener("change", () => { row.exercise_id = exSel.value; row.level = 1; renderProgram(); });
      const lvSel = levelSelect(row.exercise_id, row.level, `pt-prog-level-${i}`);
      lvSel.addEventListener("change", () => { row.level = Number(lvSel.value); });
      const sets = el("input", { type: "number", min: 1, max: 10, value: row.sets ?? "", placeholder: "level", "aria-label": `Sets of exercise ${i + 1}` });
      sets.addEventListener("change", () => { row.sets = sets.value === "" ? null : Number(sets.value); });
      const ret = el("input", { type: "checkbox", checked: row.retention !== false, "aria-label": `Test block for exercise ${i + 1}` });
      ret.addEventListener("change", () => { row.retention = ret.checked; });
      const rest = el("input", { type: "number", min: 0, max: 600, value: row.rest_after_s ?? 30, "aria-label": `Rest after exercise ${i + 1}` });
      rest.addEventListener("change", () => { row.rest_after_s = Number(rest.value); });
      const del = el("button", { class: "btn small", type: "button", text: "Remove", "aria-label": `Remove exercise ${i + 1}` });
      del.addEventListener("click", () => { draft.splice(i, 1); renderProgram(); });
      const tr = el("tr", {}, el("td", { text: String(i + 1) }), el("td", {}, exSel), el("td", {}, lvSel),
        el("td", {}, sets), el("td", {}, ret), el("td", {}, rest), el("td", {}, del));
      tbody.append(tr);
    });
  }
  function renderLevels() {
    const box = $("pt-levels");
    box.textContent = "";
    for (const lv of (view && view.levels) || []) {
      const sel = levelSelect(lv.exercise_id, lv.level, `pt-level-${lv.exercise_id}`);
      const apply = el("button", { class: "btn small primary", type: "button", id: `pt-apply-${lv.exercise_id}`, text: "Set level" });
      apply.addEventListener("click", () => setLevel(lv.exercise_id, { level: Number(sel.value) }));
      const lock = el("input", { type: "checkbox", checked: lv.locked, id: `pt-lock-${lv.exercise_id}` });
      lock.addEventListener("change", () => setLevel(lv.exercise_id, { locked: lock.checked }));
      const params = lv.parameters || {};
      const changed = lv.changed_parameter ? `${lv.changed_parameter} = ${params[lv.changed_parameter]}` : "first level";
      box.append(el("div", { class: "pt-level", "data-exercise": lv.exercise_id },
        el("div", { class: "pt-level-name", text: lv.name + (lv.in_program ? "" : " (not in the program)") }),
        el("span", { class: "pt-small", text: `level ${lv.level} of ${lv.levels}: ${changed}; targets from ${lv.range_from || "–"}` }),
        el("div", { class: "pt-row" }, sel,
          el("label", { class: "inline", for: `pt-lock-${lv.exercise_id}` }, lock, "Lock"), apply)));
    }
  }
  async function setLevel(exId, body) {
    body.reason = $("pt-level-reason").value || "";
    try {
      const r = await P.api("PUT", `/api/practice/patients/${encodeURIComponent(pid)}/levels/${encodeURIComponent(exId)}`, body);
      msg("pt-level-msg", r.decisions.map((d) => d.reason).join(" ") || "Saved.");
      view = r.patient; renderLevels(); resetDraft(); loadDecisions();
    } catch (e) { msg("pt-level-msg", e.message, true); renderLevels(); }
  }
  function resetDraft() {
    draft = ((view && view.program.items) || []).map((it) => ({ exercise_id: it.exercise_id, level: it.level, sets: it.sets, retention: it.retention, rest_after_s: it.rest_after_s }));
    renderProgram();
  }
  $("pt-add").addEventListener("click", () => {
    const id = $("pt-add-ex").value; if (!id) return;
    const known = (view && view.levels || []).find((l) => l.exercise_id === id);
    draft.push({ exercise_id: id, level: known ? known.level : 1, sets: null, retention: true, rest_after_s: 30 });
    renderProgram();
  });
  $("pt-save-program").addEventListener("click", async () => {
    try {
      const r = await P.api("PUT", `/api/practice/patients/${encodeURIComponent(pid)}/program`, {
        items: draft.map((d) => ({ exercise_id: d.exercise_id, level: d.level, sets: d.sets ?? null, retention: d.retention !== false, rest_after_s: d.rest_after_s ?? 30 })),
        reason: $("pt-program-reason").value || "",
      });
      view = r.patient; resetDraft(); renderLevels(); loadDecisions();
      msg("pt-program-msg", r.applies === "now" ? "Program saved." : "Program saved: it applies from the next session.");
    } catch (e) { msg("pt-program-msg", e.message, true); }
  });

  // ---------------------------------------------------------------- decisions, trends
  async function loadDecisions() {
    let list;
    try { list = await P.api("GET", `/api/practice/patients/${encodeURIComponent(pid)}/decisions`); } catch (e) { return; }
    const tbody = $("pt-decisions").tBodies[0];
    tbody.textContent = "";
    if (!list.length) { tbody.append(el("tr", {}, el("td", { colspan: 6, text: "No decisions yet." }))); return; }
    for (const d of list.slice().reverse()) {
      tbody.append(el("tr", { "data-rule": d.rule_id },
        el("td", { text: (d.at || "").replace("T", " ").slice(0, 16) }), el("td", { text: d.exercise_id }),
        el("td", { text: d.rule_id }), el("td", { class: d.outcome === "advance" ? "ok" : d.outcome === "step_back" ? "bad" : "", text: d.outcome }),
        el("td", { text: d.from_level === null ? "–" : `${d.from_level} → ${d.to_level}` }), el("td", { text: d.reason })));
    }
  }
  async function loadTrends() {
    let t;
    try { t = await P.api("GET", `/api/practice/patients/${encodeURIComponent(pid)}/trends`); } catch (e) { return; }
    P.drawTrends(t, $("pt-chart-pain"), $("pt-chart-rmdq"));
    const o = t.pain_trend && t.pain_trend.overall;
    const r = t.rmdq_change;
    const st = t.rmdq_status;
    $("pt-trends-text").textContent = [
      `${t.pain.length} sessions with pain ratings.`,
      o ? `Pain before practice ${fmt(o.first, 1)} → ${fmt(o.latest, 1)} (${o.important_improvement ? "important fall, ≥ 30 %" : "no important change"}).` : "",
      r ? `RMDQ ${r.first} → ${r.latest} (${r.important_improvement ? "important improvement" : "no important change"}).` : "",
      st ? `RMDQ ${st.due ? "due this week" : "next due in week " + (st.next_due_week ?? "–")} (programme week ${st.week}).` : "",
    ].filter(Boolean).join(" ");
  }
  async function loadPatient() {
    if (!pid) return;
    try { view = await P.api("GET", `/api/practice/patients/${encodeURIComponent(pid)}`); } catch (e) { msg("pt-msg", e.message, true); return; }
    renderLevels(); resetDraft(); loadDecisions(); loadTrends();
    const b = view.baseline;
    $("pt-baseline").textContent = b
      ? `Taken ${b.taken_on || "–"}: ` + Object.entries(b.directions).map(([k, m]) => `${k.replace(/_/g, " ")} ${fmt(m.range_deg, 0)}°`).join(", ")
      : "No baseline yet: targets come from the calibration's forward range.";
  }

  // ---------------------------------------------------------------- start, live data
  async function start(mode) {
    const speed = $("start-speed") ? Number($("start-speed").value) : 1;
    try {
      $("pt-events").textContent = "";
      const r = await P.api("POST", "/api/practice/start", { mode, session: { speed } });
      prog = r.practice.program; schedule();
      msg("pt-msg", mode === "program" ? "Program started." : "Baseline assessment started.");
    } catch (e) { msg("pt-msg", e.message, true); }
  }
  $("pt-start-program").addEventListener("click", () => start("program"));
  $("pt-start-baseline").addEventListener("click", () => start("baseline"));

  function onMessage(m) {
    if (m.type === "frame") {
      if (m.program) { prog = m.program; onEvents(m.program_events); schedule(); }
    } else if (m.type === "status") {
      const active = ["starting", "calibrating", "running", "stopping"].includes(m.session && m.session.state);
      $("pt-start-program").disabled = active; $("pt-start-baseline").disabled = active;
    }
  }

  async function init() {
    try {
      library = await P.api("GET", "/api/practice/library");
      const add = $("pt-add-ex");
      for (const ex of library) add.append(exOption(ex, null));
      const s = await P.api("GET", "/api/practice/state");
      pid = s.patient_id; prog = s.program;
      $("pt-patient").textContent = s.patient_name || pid;
      schedule();
      await loadPatient();
    } catch (e) { msg("pt-msg", e.message, true); }
  }
  window.lumboPracticeTherapist = { state: () => prog, reload: loadPatient };
  init();
  if (window.lumboConnection && window.lumboConnection.addListener) window.lumboConnection.addListener(onMessage);
})();
