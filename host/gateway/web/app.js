/* otalink infotainment screen: plain JS, no build step, no external assets.
 * Driven by the agent's SSE stream (/api/v1/events) plus a slow poll as a fallback; every
 * action is one call of the local API. Each screen sets <body data-screen="..."> (tests use it).
 */
"use strict";

const API = "/api/v1";
const params = new URLSearchParams(location.search);
const COUNTDOWN_S = Math.max(0, Math.min(30, parseInt(params.get("countdown") || "5", 10) || 0));

const S = {
  status: null, details: null, pre: [], signals: {}, history: [],
  view: null,          // local sub-view: "details" on top of "available"
  countdown: null,     // seconds left before the install starts, or null
  dismissed: "",       // key of a finished/stopped screen the driver closed
  problem: null,       // last refused action (problem+json) shown on the screen
  busy: false,
};

// ---- helpers ----------------------------------------------------------------------------
const $ = (sel) => document.querySelector(sel);
function esc(v) {
  return String(v == null ? "" : v).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function mb(bytes) {
  const b = Math.max(0, bytes || 0);
  if (b >= 1e6) return (b / 1e6).toFixed(1) + " MB";
  return (b / 1e3).toFixed(b >= 1e5 ? 0 : 1) + " kB";
}
function duration(s) {
  if (s == null || !isFinite(s)) return "–";
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + " s";
  const m = Math.round(s / 60);
  if (m < 60) return m + " min";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}
function eta(s) {
  if (s == null || !isFinite(s)) return "calculating…";
  s = Math.max(0, Math.round(s));
  return s < 60 ? s + " s left" : Math.floor(s / 60) + " min " + (s % 60) + " s left";
}
function toDate(at) { return typeof at === "number" ? new Date(at * 1000) : new Date(at); }
function hhmm(iso) {
  const d = toDate(iso);
  if (isNaN(d)) return String(iso || "");
  const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  const today = new Date();
  const tomorrow = new Date(); tomorrow.setDate(today.getDate() + 1);
  if (d.toDateString() === today.toDateString()) return t;
  if (d.toDateString() === tomorrow.toDateString()) return "tomorrow " + t;
  return d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" }) + " " + t;
}
function human(code) {
  if (!code) return "";
  const pc = /^precondition:(\w+)/.exec(String(code));
  if (pc) return REASONS[pc[1]] || human(pc[1]);
  const u = /^ecu_unreachable:([^;]+)/.exec(String(code));
  if (u) return `ECU “${u[1]}” did not come back after restarting.`;
  const m = /^ecu_failed:([^:]+):([^;]+)/.exec(String(code));
  if (m) return `ECU “${m[1]}”: ${REASONS[m[2]] || m[2].replace(/_/g, " ")}.`;
  return REASONS[code] || (String(code).charAt(0).toUpperCase() + String(code).slice(1)).replace(/_/g, " ");
}
function pct(n) { return Math.max(0, Math.min(100, Math.round(n || 0))); }
function bar(p, small) {
  return `<div class="progress${small ? " small" : ""}" role="progressbar" aria-valuenow="${pct(p)}"
    aria-valuemin="0" aria-valuemax="100"><div style="width:${pct(p)}%"></div></div>`;
}

const REASONS = {
  no_connection: "A stable Wi-Fi or cellular connection is required to download the update.",
  unstable_connection: "The connection is not stable enough to download the update.",
  metered: "The car is on a cellular (metered) connection.",
  paused_by_user: "You paused the download.",
  user: "You stopped the installation.",
  cancelled: "You stopped the installation.",
  cancelled_by_user: "You stopped the installation.",
  precondition_lost: "A condition for installing was no longer met.",
  preconditions_not_met: "Some conditions for installing are not met.",
  point_of_no_return: "The ECUs are already switching to the new software. Stopping now could leave the car without working software, so the installation finishes by itself.",
  schedule_missed: "The scheduled installation could not start.",
  self_test_failed: "An ECU failed its self-test with the new software.",
  selftest: "the new software failed its self-test", self_test: "the new software failed its self-test",
  "rejected:50": "the new software failed its self-test", "rejected:51": "the new software crashed at start",
  "rejected:52": "the new software was not confirmed",
  battery: "The battery charge is too low (and the car is not plugged in).",
  park: "The car was shifted out of Park.",
  speed: "The car started moving.",
  driver_assistance: "Driver assistance was switched on.",
  navigation: "Navigation guidance was started.",
  connectivity: "The car lost its connection.",
  account: "No registered account.",
  consent: "OTA updates are not enabled in your account.",
};
const BENIGN = /^(unscheduled|declined?|confirmation_required|download(ed|_done)|done|ok|schedule_missed|withdrawn)$/;
const PRE_LABELS = {
  battery: "Battery charged or plugged in", park: "Car in Park", speed: "Car stationary",
  driver_assistance: "Driver assistance off", navigation: "Navigation ended",
  connectivity: "Connected (Wi-Fi or cellular)", account: "Registered account",
  consent: "OTA updates enabled", download_incomplete: "Update downloaded",
};
const PRE_HINTS = {
  battery: "Charge or plug in", park: "Shift to Park", speed: "Stop the vehicle",
  driver_assistance: "Turn off driver assistance", navigation: "End navigation",
  connectivity: "Connect to Wi-Fi or enable cellular data", account: "Register your account",
  consent: "Enable OTA updates in your account", download_incomplete: "The download had not finished",
};
function preValue(p) {
  const v = p.value;
  if (v == null) return p.status === "stale" ? "no recent signal" : "unknown";
  switch (p.id) {
    case "battery": {
      const parts = [];
      if (v.soc_percent != null) parts.push(Math.round(v.soc_percent) + " %");
      if (v.charging) parts.push("charging");
      else if (v.cable_connected) parts.push("plugged in");
      return parts.join(", ") || "unknown";
    }
    case "park": return v === 126 ? "P" : v === 127 ? "D" : v === 0 ? "N" : v < 0 ? "R" : String(v);
    case "speed": return Math.round(v) + " km/h";
    case "driver_assistance": return Object.values(v).some((x) => x === true) ? "on" : "off";
    case "navigation": return v ? "guidance active" : "off";
    case "connectivity": return v.available && v.network && v.network !== "none" ? (v.network === "wifi" ? "Wi-Fi" : "cellular") : "offline";
    case "account": return v ? "registered" : "not registered";
    case "consent": return v ? "given" : "not given";
    default: return typeof v === "object" ? JSON.stringify(v) : String(v);
  }
}
const PHASES = {
  waiting: "Waiting", pending: "Waiting", transferring: "Sending software", receiving: "Sending software",
  erasing: "Preparing memory", verifying: "Checking", verified: "Ready", activating: "Switching to new software",
  activated: "Switched", restarting: "Restarting", trial: "Starting new software", confirming: "Confirming",
  confirmed: "Done", done: "Done", reverted: "Restored previous software", failed: "Failed",
  up_to_date: "Already up to date", deferred: "Waiting for the ECU",
};

// ---- API ------------------------------------------------------------------------------------
async function api(method, path, body) {
  // X-Otalink: every request that changes something must carry it (a page of another origin
  // cannot send it without a CORS preflight, which the API never allows; docs/ui.md)
  const init = { method, headers: { Accept: "application/json", "X-Otalink": "1" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const r = await fetch(API + path, init);
    const data = await r.json().catch(() => null);
    return r.ok ? { ok: true, data } : { ok: false, problem: data || { code: "api.http_" + r.status, detail: r.statusText } };
  } catch (e) {
    return { ok: false, problem: { code: "api.unreachable", detail: "The update service is not responding." } };
  }
}

async function refresh() {
  const st = await api("GET", "/status");
  if (!st.ok) { S.status = null; render(); return; }
  S.status = st.data;
  const state = S.status.state;
  const needDetails = state !== "idle";
  const [det, pre, sig] = await Promise.all([
    needDetails ? api("GET", "/update") : Promise.resolve({ ok: false }),
    ["downloaded", "awaiting_confirmation", "scheduled", "available", "downloading", "download_paused"].includes(state)
      ? api("GET", "/preconditions") : Promise.resolve({ ok: true, data: S.pre }),
    api("GET", "/signals"),
  ]);
  if (det.ok) S.details = det.data; else if (needDetails === false) S.details = S.details;
  if (pre.ok && Array.isArray(pre.data)) S.pre = pre.data;
  if (sig.ok && sig.data) S.signals = sig.data.signals || {};
  render();
}

let refreshTimer = null;
function soon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 80);
}

async function act(method, path, body) {
  S.busy = true; render();
  const r = await api(method, path, body);
  S.busy = false;
  if (!r.ok) {
    S.problem = Object.assign({ path }, r.problem);
    toast(r.problem.detail || human(r.problem.code));
  } else {
    S.problem = null;
    if (r.data && r.data.state) S.status = r.data;
  }
  await refresh();
  return r;
}

function toast(text) {
  const t = $("#toast");
  t.textContent = text; t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

// ---- screens ----------------------------------------------------------------------------
function pickScreen() {
  const st = S.status;
  if (!st) return ["offline", offlineScreen()];
  if (S.countdown !== null) return ["countdown", countdownScreen()];
  const state = st.state, reason = st.reason || "";
  const key = state + ":" + reason + ":" + ((st.update && st.update.version) || "");
  switch (state) {
    case "idle": return ["up-to-date", upToDateScreen()];
    case "available":
      if (S.problem && /connection/.test(S.problem.code || "")) return ["no-connection", noConnectionScreen(S.problem)];
      return S.view === "details" ? ["details", detailsScreen()] : ["available", availableScreen()];
    case "downloading": return ["downloading", downloadingScreen()];
    case "download_paused":
      if (/metered|cellular/.test(reason)) return ["cellular", cellularScreen()];
      if (/connection|network|offline|unstable|unreachable/.test(reason)) return ["no-connection", noConnectionScreen()];
      return ["paused", pausedScreen()];
    case "downloaded": case "awaiting_confirmation": {
      if (missed(st) && S.dismissed !== key) return ["missed-schedule", missedScreen(key)];
      if (reason && stoppedReason(reason) && S.dismissed !== key) return ["stopped", stoppedScreen(key)];
      const failing = S.pre.filter((p) => !p.ok);
      return failing.length ? ["preconditions", confirmScreen(failing)] : ["confirm", confirmScreen([])];
    }
    case "scheduled":
      if (missed(st) && S.dismissed !== key + ":" + misses(st).length) return ["missed-schedule", missedScreen(key + ":" + misses(st).length)];
      return ["scheduled", scheduledScreen()];
    case "installing": case "installing_committed": return ["installing", installingScreen()];
    case "restarting": return ["restarting", restartingScreen()];
    case "verifying": return ["verifying", verifyingScreen()];
    case "succeeded":
      return S.dismissed === key ? ["up-to-date", upToDateScreen()] : ["complete", completeScreen(key)];
    case "failed_rolled_back":
      return S.dismissed === key ? ["up-to-date", upToDateScreen()] : ["rolled-back", rolledBackScreen(key)];
    case "failed_needs_service": return ["needs-service", needsServiceScreen()];
    default: return ["unknown", `<section class="card"><h1>${esc(human(state))}</h1></section>`];
  }
}

function misses(st) { const sc = st.schedule || {}; return Array.isArray(sc.misses) ? sc.misses : []; }
function missed(st) { return /missed/.test(st.reason || "") || misses(st).length > 0; }
function stoppedReason(reason) { return !BENIGN.test(reason) && !/missed/.test(reason); }
function update() { return S.details || (S.status && S.status.update) || {}; }
function title() {
  const u = update();
  return esc(u.title || "Software update") + (u.version ? ` <span class="muted">${esc(u.version)}</span>` : "");
}
function btn(action, label, cls, extra) {
  return `<button class="btn ${cls || "secondary"}" data-action="${action}"${S.busy ? " disabled" : ""}${extra || ""}>${esc(label)}</button>`;
}
function facts() {
  const u = update();
  return `<div class="facts">
    <div class="fact"><span>Download</span><b>${esc(mb(u.download_size))}</b></div>
    <div class="fact"><span>Installation takes about</span><b>${esc(duration(u.est_install_s))}</b></div>
    <div class="fact"><span>ECUs updated</span><b>${esc((u.ecus || []).length || "–")}</b></div>
  </div>`;
}
function unavailable() {
  const list = update().unavailable_functions || [];
  if (!list.length) return "";
  return `<h3>Unavailable while installing</h3><ul class="tags">${list.map((f) => `<li>${esc(human(f))}</li>`).join("")}</ul>`;
}
function notes() {
  const n = update().release_notes;
  return n ? `<h3>What's new</h3><div class="notes">${esc(n)}</div>` : "";
}
function checklist(items) {
  return `<ul class="checklist" id="checklist">${items.map((p) => {
    const label = p.label || PRE_LABELS[p.id] || human(p.id);
    const val = preValue(p);
    return `<li class="${p.ok ? "ok" : "bad"}" data-pre="${esc(p.id)}">
      <span class="mark">${p.ok ? "✓" : "✗"}</span>
      <span>${esc(label)}${p.ok ? "" : `<span class="fix">${esc(p.hint || PRE_HINTS[p.id] || "")}</span>`}</span>
      <span class="val">${esc(val)}</span></li>`;
  }).join("")}</ul>`;
}

function offlineScreen() {
  return `<section class="card"><span class="icon bad">⚠</span><h1>Update service not responding</h1>
    <p class="muted">Trying again…</p></section>`;
}
function upToDateScreen() {
  const last = S.history.length ? S.history[S.history.length - 1] : null;
  return `<section class="card"><span class="icon ok">✓</span><h1>Your car is up to date</h1>
    ${last && last.version ? `<p class="muted">Last update: ${esc(last.version)}</p>` : ""}
    <div class="actions">${btn("check", "Check for updates", "secondary")}</div></section>`;
}
function availableScreen() {
  return `<section class="card notice"><span class="icon">⬇</span><div>
    <h1>Software update available</h1><p class="lead">${title()}</p>
    <p class="muted">${esc(mb(update().download_size))} · installs in about ${esc(duration(update().est_install_s))}</p></div></section>
    <div class="actions">${btn("details", "View details", "primary")}${btn("install-update", "Install Update", "secondary")}</div>`;
}
function deliveries() {
  // what each ECU really downloads and installs: a patch ("12 kB, delta from 2.0.0") or the image
  const list = update().ecus || [];
  if (!list.length) return "";
  return `<h3>What is sent</h3><ul class="tags" id="deliveries">${list.map((e) =>
    `<li data-ecu="${esc(e.ecu_id)}">${esc(e.ecu_id)}: ${esc(e.delivery || mb(e.size))}</li>`).join("")}</ul>`;
}
function detailsScreen() {
  return `<section class="card"><h1>${title()}</h1>${facts()}${deliveries()}${notes()}${unavailable()}
    <p class="muted">The update downloads in the background — you can keep driving.
    You confirm the installation when it is ready.</p>
    <div class="actions">${btn("install-update", "Install Update", "primary")}${btn("back", "Not now", "ghost")}</div></section>`;
}
function downloadingScreen() {
  const d = S.status.download || {};
  const p = d.total ? (100 * d.bytes) / d.total : 0;
  return `<section class="card"><h2>Downloading ${title()}</h2>
    <div class="row"><span class="big-number" id="dl-percent">${pct(p)} %</span>
      <span class="lead" id="dl-mb">${esc(mb(d.bytes))} of ${esc(mb(d.total))}</span></div>
    ${bar(p)}
    <div class="row"><span class="muted" id="dl-eta">${esc(eta(d.eta_s))}</span>
      <span class="muted">${d.rate ? esc(mb(d.rate)) + "/s" : ""}</span></div>
    <p><span class="drivable">The car stays drivable while the update downloads.</span></p>
    <div class="actions">${btn("pause", "Pause", "secondary")}${btn("cancel-download", "Cancel download", "ghost")}</div></section>`;
}
function progressLine() {
  const d = (S.status && S.status.download) || {};
  return d.total ? `<p class="muted">${esc(mb(d.bytes))} of ${esc(mb(d.total))} downloaded so far.</p>` : "";
}
function noConnectionScreen(problem) {
  return `<section class="card"><span class="icon bad">⚠</span>
    <h1>No stable connection</h1>
    <p class="lead">${esc((problem && problem.detail) || REASONS.no_connection)}</p>
    <p>Connect the car to Wi-Fi or make sure cellular data is on. The download continues by
    itself as soon as the connection returns.</p>${progressLine()}
    <div class="actions">${btn("retry", "Retry", "primary")}${btn("schedule-open", "Schedule for later", "secondary")}</div></section>`;
}
function cellularScreen() {
  const d = S.status.download || {};
  const left = d.total ? d.total - (d.bytes || 0) : update().download_size;
  return `<section class="card"><span class="icon warn">⚠</span>
    <h1>Download over cellular?</h1>
    <p class="lead">The car is not on Wi-Fi. Downloading the rest of the update uses about
    <b>${esc(mb(left))}</b> of mobile data.</p>
    <div class="actions">${btn("allow-cellular", "Download over cellular", "primary")}${btn("wait-wifi", "Wait for Wi-Fi", "secondary")}</div></section>`;
}
function pausedScreen() {
  const d = S.status.download || {};
  const p = d.total ? (100 * d.bytes) / d.total : 0;
  return `<section class="card"><h1>Download paused</h1><p class="muted">${esc(human(S.status.reason))}</p>
    ${bar(p)}<p>${esc(mb(d.bytes))} of ${esc(mb(d.total))}</p>
    <div class="actions">${btn("resume", "Resume", "primary")}${btn("cancel-download", "Cancel download", "ghost")}</div></section>`;
}
function confirmScreen(failing) {
  const ok = failing.length === 0 && S.pre.length > 0;
  return `<section class="card split"><div>
    <h1>Ready to install ${title()}</h1>
    <p class="lead">Installation takes about <b>${esc(duration(update().est_install_s))}</b>.
    The car cannot be driven during the installation.</p>${unavailable()}
    ${failing.length ? `<div class="banner warn" id="not-met">${failing.length === 1 ? "1 condition is" : failing.length + " conditions are"} not met. Fix ${failing.length === 1 ? "it" : "them"} to install now, or schedule the installation.</div>` : `<div class="banner ok" id="all-met">Everything is ready.</div>`}
    <div class="actions">${btn("install-now", "Confirm installation", "primary", ok ? "" : " disabled")}${btn("schedule-open", "Schedule", "secondary")}</div>
    </div><div><h3>Before installing</h3>${checklist(S.pre)}</div></section>`;
}
function countdownScreen() {
  return `<section class="card"><h1>Installation starts in</h1>
    <div class="countdown" id="countdown">${S.countdown}</div>
    <p class="lead" style="text-align:center">Stay in Park. The car cannot be driven until the update is complete.</p>
    <div class="actions" style="justify-content:center">${btn("countdown-cancel", "Cancel", "secondary")}</div></section>`;
}
function scheduledScreen() {
  const sc = S.status.schedule || {};
  return `<section class="card split"><div><span class="icon">◷</span><h1 id="scheduled-title">Installation scheduled for ${esc(hhmm(sc.at))}</h1>
    <p class="lead">${title()}</p>
    <p>Leave the car in Park, charged or plugged in, and connected. It installs by itself;
    the car cannot be driven for about ${esc(duration(update().est_install_s))}.</p>
    <div class="actions">${btn("schedule-open", "Change time", "secondary")}${btn("unschedule", "Cancel schedule", "ghost")}${btn("install-now", "Install now instead", "ghost", S.pre.length && S.pre.every((p) => p.ok) ? "" : " disabled")}</div>
    </div><div><h3>Conditions right now</h3>${checklist(S.pre)}</div></section>`;
}
function missedScreen(key) {
  const st = S.status, sc = st.schedule || {};
  const ms = misses(st);
  let reasons = ms.length ? (ms[ms.length - 1].reasons || []) : (st.missed_reasons || []);
  if (!reasons.length) reasons = S.pre.filter((p) => !p.ok).map((p) => p.id);
  const items = reasons.map((r) => (typeof r === "string" ? (PRE_LABELS[r] ? PRE_LABELS[r] + " — " + PRE_HINTS[r] : human(r)) : (r.hint || r.detail || human(r.id || r.code))));
  const retry = st.state === "scheduled" && sc.next_at ? `<p class="lead">Next try at <b>${esc(hhmm(sc.next_at))}</b>.</p>` : "";
  return `<section class="card"><span class="icon warn">◷</span><h1>Scheduled installation missed</h1>
    <p class="lead">The update was not installed${sc.at ? " at " + esc(hhmm(sc.at)) : ""} because:</p>
    <ul class="reasons" id="missed-reasons">${items.map((t) => `<li>${esc(t)}</li>`).join("")}</ul>
    <p class="muted">Nothing was changed. Your car works as before.</p>${retry}
    <div class="actions">${btn("schedule-open", "Schedule again", "primary")}${btn("dismiss", "Install later", "secondary", ` data-key="${esc(key)}"`)}</div></section>`;
}
function stoppedScreen(key) {
  return `<section class="card"><span class="icon warn">▮▮</span><h1>Installation stopped</h1>
    <p class="lead">Nothing was changed. Your car works as before.</p>
    <p class="muted" id="stop-reason">${esc(human(S.status.reason))}</p>
    ${S.pre.some((p) => !p.ok) ? `<h3>To install</h3>${checklist(S.pre.filter((p) => !p.ok))}` : ""}
    <div class="actions">${btn("dismiss", "OK", "primary", ` data-key="${esc(key)}"`)}</div></section>`;
}
function installingScreen() {
  const ins = S.status.install || {};
  const ponr = !!ins.point_of_no_return || S.status.state === "installing_committed";
  const ecus = ins.ecus || {};
  const rows = Object.keys(ecus).map((id) => {
    const e = ecus[id] || {};
    return `<li data-ecu="${esc(id)}"><div class="row"><b>${esc(id)}</b>
      <span class="phase">${esc(PHASES[e.phase] || human(e.phase))}${e.reason ? ` (${esc(e.reason)})` : ""} · ${pct(e.percent)} %</span></div>${bar(e.percent, true)}</li>`;
  }).join("");
  return `<section class="card"><div class="row"><h1>Installing ${title()}</h1><span class="dnd">DO NOT DRIVE</span></div>
    <div class="row"><span class="big-number" id="inst-percent">${pct(ins.overall_percent)} %</span>
    <span class="muted">about ${esc(duration(update().est_install_s))} in total</span></div>${bar(ins.overall_percent)}
    <ul class="ecus">${rows}</ul>
    ${ponr ? ponrBanner() : `<div class="actions">${btn("cancel-install", "Stop installation", "danger")}</div>`}
  </section>`;
}
function ponrBanner() {
  return `<div class="banner info" id="ponr">The installation can no longer be stopped: ${esc(REASONS.point_of_no_return)}</div>`;
}
function restartingScreen() {
  return `<section class="card"><span class="icon">↻</span><h1>Restarting vehicle systems…</h1>
    <p class="lead"><span class="dnd">DO NOT DRIVE</span> The screen may go dark for a moment.</p>${bar(S.status.install && S.status.install.overall_percent)}${ponrBanner()}</section>`;
}
function verifyingScreen() {
  return `<section class="card"><span class="icon">✓</span><h1>Checking the new software…</h1>
    <p class="lead"><span class="dnd">DO NOT DRIVE</span> Almost done.</p>${ponrBanner()}</section>`;
}
function completeScreen(key) {
  return `<section class="card"><span class="icon ok">✓</span><h1>Update complete</h1>
    <p class="lead">${title()} is installed. Your car is ready to drive.</p>${notes()}
    <div class="actions">${btn("acknowledge", "Done", "primary", ` data-key="${esc(key)}"`)}</div></section>`;
}
function rolledBackScreen(key) {
  return `<section class="card"><span class="icon bad">↺</span><h1>Update not installed</h1>
    <p class="lead">The new software did not pass its checks, so your car was restored to the
    previous software. Everything works as before; you can drive.</p>
    <p class="muted" id="fail-reason">${esc(human(S.status.reason))}</p>
    <div class="actions">${btn("acknowledge", "OK", "primary", ` data-key="${esc(key)}"`)}</div></section>`;
}
function needsServiceScreen() {
  return `<section class="card"><span class="icon bad">⚙</span><h1>Service needed</h1>
    <p class="lead">The update could not be completed and the previous software could not be
    fully restored. Please contact service before driving.</p>
    <p class="muted" id="fail-reason">${esc(human(S.status.reason))}</p></section>`;
}

// ---- rendering --------------------------------------------------------------------------
let lastHtml = "";
function render() {
  const [id, html] = pickScreen();
  document.body.dataset.screen = id;
  if (html !== lastHtml) { $("#screen").innerHTML = html; lastHtml = html; }
  renderChip();
  renderBar();
}
function renderChip() {
  const st = S.status, chip = $("#chip");
  const at = st && st.schedule && st.schedule.at && !["installing", "installing_committed", "restarting", "verifying"].includes(st.state) && st.schedule.at;
  chip.hidden = !at;
  if (at) $("#chip-text").textContent = "Scheduled for " + hhmm(st.schedule.next_at || at);
}
function sig(path) { const s = S.signals[path]; return s ? s.value : null; }
function renderBar() {
  const gear = sig("Vehicle.Powertrain.Transmission.SelectedGear");
  const g = $("#sig-gear");
  g.textContent = gear == null ? "–" : gear === 126 ? "P" : gear === 127 ? "D" : gear === 0 ? "N" : gear < 0 ? "R" : "D" + gear;
  g.className = "pill " + (gear === 126 ? "good" : gear == null ? "" : "bad");
  const soc = sig("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current");
  const plug = sig("Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected");
  $("#sig-soc").textContent = soc == null ? "–" : Math.round(soc) + " %" + (plug ? " ⚡" : "");
  const net = (S.status && S.status.network) || sig("Vehicle.Connectivity.Network");
  const n = $("#sig-net");
  n.textContent = net === "wifi" ? "Wi-Fi" : net === "cellular" ? "LTE" : net === "none" ? "Offline" : (net || "–");
  n.className = "pill " + (net === "none" ? "bad" : net ? "good" : "");
  const now = new Date();
  $("#clock").textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

// ---- actions ----------------------------------------------------------------------------
let countdownTimer = null;
function startCountdown() {
  if (COUNTDOWN_S === 0) { act("POST", "/install", { confirm: true }); return; }
  S.countdown = COUNTDOWN_S; render();
  countdownTimer = setInterval(() => {
    S.countdown -= 1;
    if (S.countdown <= 0) {
      clearInterval(countdownTimer); countdownTimer = null; S.countdown = null;
      act("POST", "/install", { confirm: true });
      return;
    }
    render();
  }, 1000);
}
function nextAt(hhmmStr) {
  const [h, m] = hhmmStr.split(":").map((x) => parseInt(x, 10));
  const d = new Date(); d.setSeconds(0, 0); d.setHours(h, m);
  if (d <= new Date()) d.setDate(d.getDate() + 1);
  return d;
}
function isoLocal(d) {
  const off = -d.getTimezoneOffset(), sign = off >= 0 ? "+" : "-";
  const p = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${sign}${p(off / 60)}:${p(off % 60)}`;
}
async function schedule(d) {
  $("#picker").hidden = true;
  await act("PUT", "/schedule", { at: isoLocal(d) });
}

const ACTIONS = {
  check: () => act("POST", "/check"),
  details: () => { S.view = "details"; render(); },
  back: () => { S.view = null; render(); },
  "install-update": () => act("POST", "/download"),
  pause: () => act("POST", "/download/pause"),
  resume: () => act("POST", "/download/resume"),
  "cancel-download": () => act("POST", "/download/cancel"),
  retry: async () => {
    S.problem = null;
    const state = S.status && S.status.state;
    await act("POST", state === "available" ? "/download" : "/download/resume");
  },
  "allow-cellular": async () => {
    await act("PUT", "/network/cellular", { allowed: true });
    if (S.status && S.status.state === "download_paused") await act("POST", "/download/resume");
  },
  "wait-wifi": () => { toast("The download continues when the car is on Wi-Fi."); },
  "install-now": () => startCountdown(),
  "countdown-cancel": () => { clearInterval(countdownTimer); countdownTimer = null; S.countdown = null; render(); },
  "cancel-install": () => act("POST", "/cancel"),
  unschedule: () => act("DELETE", "/schedule"),
  "schedule-open": () => { $("#picker").hidden = false; },
  "picker-close": () => { $("#picker").hidden = true; },
  pick: (el) => schedule(el.dataset.in ? new Date(Date.now() + 1000 * parseInt(el.dataset.in, 10)) : nextAt(el.dataset.time)),
  "pick-custom": () => schedule(nextAt($("#picker-time").value || "02:00")),
  dismiss: (el) => { S.dismissed = el.dataset.key || ""; S.problem = null; render(); },
  acknowledge: async (el) => {
    S.dismissed = el.dataset.key || "";
    await act("POST", "/acknowledge");
    loadHistory();
  },
};

document.addEventListener("click", (ev) => {
  const el = ev.target.closest("[data-action]");
  if (!el || el.disabled) return;
  const fn = ACTIONS[el.dataset.action];
  if (fn) { ev.preventDefault(); fn(el); }
});

// ---- live updates -----------------------------------------------------------------------
function connect() {
  const es = new EventSource(API + "/events");
  es.onmessage = () => soon();
  es.onerror = () => { /* EventSource reconnects by itself with Last-Event-ID */ };
}
async function loadHistory() {
  const h = await api("GET", "/history");
  if (h.ok && Array.isArray(h.data)) S.history = h.data;
}
loadHistory().then(refresh);
connect();
setInterval(refresh, 1500);
