// Sign-in on the patient and therapist pages: who is signed in, a Sign out button (#logout),
// and for a therapist with several patients a choice of patient (?patient_id=..., which
// live.js passes on to the API and the WebSocket). 401 anywhere -> the login page (live.js).
"use strict";

const LumboAuth = {
  toLogin() {
    if (window.lumboSigningOut || window.lumboToLogin) return;
    window.lumboToLogin = true; // one navigation: several 401s at once must not abort it
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  },

  async signOut() {
    window.lumboSigningOut = true; // the live connection closing now is expected
    try {
      await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
    } finally {
      location.assign("/login");
    }
  },

  async init() {
    const btn = document.getElementById("logout");
    if (btn) btn.addEventListener("click", () => LumboAuth.signOut());
    let me;
    try {
      const res = await fetch("/api/auth/me", { credentials: "same-origin" });
      if (res.status === 401) { LumboAuth.toLogin(); return; }
      if (!res.ok) return;
      me = await res.json();
    } catch (e) { return; }
    const who = document.getElementById("whoami");
    if (who) who.textContent = me.account.display_name || me.account.username;
    if (me.account.role === "therapist") await LumboAuth.patientChoice();
  },

  /** a therapist with several patients chooses one; the page reloads for that patient */
  async patientChoice() {
    const params = new URLSearchParams(location.search);
    let patients = [];
    try {
      const res = await fetch("/api/patients", { credentials: "same-origin" });
      if (res.ok) patients = await res.json();
    } catch (e) { return; }
    if (patients.length === 0) {
      const note = document.createElement("div");
      note.className = "banner info";
      note.setAttribute("role", "status");
      note.textContent = "You have no patients yet. Add one (POST /api/patients, or " +
        "`lumbo create-patient NAME --therapist YOU`), then reload this page.";
      document.querySelector("header").after(note);
      return;
    }
    if (patients.length < 2) return;
    const current = params.get("patient_id") || "";
    const label = document.createElement("label");
    label.htmlFor = "patient-select";
    label.className = "whoami";
    label.textContent = "Patient";
    const select = document.createElement("select");
    select.id = "patient-select";
    select.className = "sel";
    const none = new Option("Choose…", "");
    none.disabled = true;
    select.add(none);
    for (const p of patients) select.add(new Option(p.display_name || p.username, p.id));
    select.value = current;
    select.addEventListener("change", () => {
      params.set("patient_id", select.value);
      location.assign(location.pathname + "?" + params.toString());
    });
    const anchor = document.getElementById("logout");
    anchor.parentNode.insertBefore(label, anchor);
    anchor.parentNode.insertBefore(select, anchor);
  },
};

LumboAuth.init();
