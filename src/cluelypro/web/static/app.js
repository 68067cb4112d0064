// The CluelyPro page: the live timeline (/ws/events), status polled every 2 s, controls with
// keyboard shortcuts, settings, voice profiles, and in browser mode the page's own microphone
// and earpiece. window.cluelypro exposes state and measurements (tests, scripts/web_latency.py).
import { api, ApiError, CLIENT_ID, EventStream } from "./api.js";
import { BrowserAudio } from "./audio.js";
import { record } from "./enroll.js";
import { t, translatePage } from "./i18n.js";
import { TimelineModel } from "./timeline.js";
import * as views from "./views.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const model = new TimelineModel();
const state = { status: null, readOnly: false, connected: false, lines: 0, voices: null, enrolling: false };
let renderQueued = false;

function render() {
  renderQueued = false;
  views.renderPlan(model.plan() ?? state.status?.plan ?? null);
  const summary = model.percentiles();
  const server = state.status?.latency;
  views.renderWaterfall(model.waterfall(), server && server.count >= summary.count ? server : summary);
  views.renderUtterances(model.utterances.values());
  views.renderLog(model.log);
}

function queueRender() {
  if (!renderQueued) {
    renderQueued = true;
    requestAnimationFrame(render);
  }
}

function showError(error) {
  const box = $("error");
  if (!error) {
    box.classList.add("hidden");
    return;
  }
  box.textContent = error instanceof ApiError ? error.message : String(error.message || error);
  box.classList.remove("hidden");
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => box.classList.add("hidden"), 6000);
}

// --- audio (browser mode) ------------------------------------------------------------------------

const audio = new BrowserAudio({
  onState: (value) => {
    const badge = $("audio-state");
    badge.classList.toggle("hidden", value === "off" && state.status?.mode !== "browser");
    badge.textContent = value === "on" ? t("audioOn") : value === "off" ? t("audioOff") : `${t("audioOff")} (${value})`;
    badge.className = `badge ${value === "on" ? "on" : value === "error" ? "off" : "warn"}`;
    updateAudioButton();
  },
  onReadOnly: () => setReadOnly(true),
  onNotBrowser: () => refreshStatus(),
});

function updateAudioButton() {
  const mode = state.status?.mode;
  $("btn-audio").classList.toggle("hidden", !(mode === "browser" && !audio.wanted && !state.readOnly));
}

async function startAudio() {
  try {
    await audio.start(params);
  } catch (error) {
    showError(error);
  }
}

function setReadOnly(on) {
  state.readOnly = on;
  document.body.classList.toggle("read-only", on);
  $("readonly").classList.toggle("hidden", !on);
  for (const node of document.querySelectorAll("#controls button, #settings button, #settings select, #settings input, #enrol button, #profiles button")) {
    node.disabled = on;
  }
  updateAudioButton();
}

// --- status --------------------------------------------------------------------------------------

function applyStatus(status) {
  state.status = status;
  const mode = $("mode");
  mode.textContent = { local: t("modeLocal"), browser: t("modeBrowser"), input: t("modeInput") }[status.mode] ?? status.mode;
  mode.dataset.mode = status.mode;
  const listening = $("listening");
  listening.textContent = status.muted ? `${status.listening ? t("listening") : t("stopped")} · ${t("muted")}` : status.listening ? t("listening") : t("stopped");
  listening.className = `badge ${status.listening ? "on" : "off"}`;
  const start = $("btn-start");
  start.firstElementChild.textContent = status.listening ? t("stop") : t("start");
  start.dataset.action = status.listening ? "stop" : "start";
  const mute = $("btn-mute");
  mute.firstElementChild.textContent = status.muted ? t("unmute") : t("mute");
  mute.dataset.action = status.muted ? "unmute" : "mute";
  mute.classList.toggle("active", Boolean(status.muted));
  views.renderChains(status.chains, status.keys, status.devices);
  if (status.settings && !state.settingsShown) fillSettings(status.settings);
  const heldElsewhere = status.read_only || (status.mode === "browser" && status.audio_client && !audio.active && !audio.wanted);
  if (heldElsewhere !== state.readOnly) setReadOnly(heldElsewhere);
  if (status.mode === "browser" && params.get("autostart") === "1" && !audio.wanted && !state.readOnly && !state.autostarted) {
    state.autostarted = true;
    startAudio();
  }
  if (status.mode !== "browser" && audio.wanted) audio.stop();
  updateAudioButton();
  queueRender();
}

async function refreshStatus() {
  try {
    applyStatus(await api.status());
  } catch (error) {
    if (error instanceof ApiError) showError(error);
  }
}

// --- controls ------------------------------------------------------------------------------------

async function control(action) {
  if (state.readOnly) return;
  try {
    applyStatus(await api.control(action));
    showError(null);
  } catch (error) {
    showError(error);
    if (error instanceof ApiError && error.message.startsWith("read-only")) setReadOnly(true);
  }
}

for (const button of document.querySelectorAll("#controls button[data-action]")) {
  button.addEventListener("click", () => control(button.dataset.action));
}
$("btn-audio").addEventListener("click", startAudio);

const SHORTCUTS = {
  " ": () => $("btn-start").dataset.action,
  m: () => $("btn-mute").dataset.action,
  r: () => "repeat",
  n: () => "skip",
};

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target.closest && event.target.closest("input, select, textarea, button")) {
    if (!(event.target.tagName === "BUTTON" && event.key !== " " && event.key !== "Enter")) return;
  }
  const shortcut = SHORTCUTS[event.key.toLowerCase()];
  if (!shortcut) return;
  event.preventDefault();
  control(shortcut());
});

// --- settings ------------------------------------------------------------------------------------

const form = $("settings");

function fillSettings(settings) {
  state.settingsShown = true;
  const voices = settings.voices ?? state.voices ?? [settings.tts_voice];
  if (settings.voices) state.voices = settings.voices;
  const select = form.elements.tts_voice;
  select.replaceChildren(...[...new Set([...voices, settings.tts_voice])].filter(Boolean).map((voice) => views.el("option", { value: voice, text: voice })));
  form.elements.advance_policy.value = settings.advance_policy;
  form.elements.commentary_mode.checked = Boolean(settings.commentary_mode);
  form.elements.question_filter_mode.value = settings.question_filter_mode;
  select.value = settings.tts_voice;
  form.elements.tts_speed.value = settings.tts_speed;
  state.settings = settings;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const wanted = {
    advance_policy: form.elements.advance_policy.value,
    commentary_mode: form.elements.commentary_mode.checked,
    question_filter_mode: form.elements.question_filter_mode.value,
    tts_voice: form.elements.tts_voice.value,
    tts_speed: Number(form.elements.tts_speed.value),
  };
  const changes = Object.fromEntries(Object.entries(wanted).filter(([key, value]) => !state.settings || state.settings[key] !== value));
  try {
    fillSettings({ voices: state.voices, ...(await api.patchSettings(changes)) });
    views.showMessage("settings-message", t("saved"), true);
  } catch (error) {
    views.showMessage("settings-message", error.message, false);
  }
});

// --- profiles ------------------------------------------------------------------------------------

async function refreshProfiles() {
  try {
    views.renderProfiles(await api.profiles(), {
      use: (name) => api.useProfile(name).then(applyStatus).then(refreshProfiles).catch(showError),
      remove: (name) => {
        if (!params.has("noconfirm") && !confirm(`${t("confirmDelete")} ${name}?`)) return;
        api.deleteProfile(name).then(refreshProfiles).catch(showError);
      },
    });
    if (state.readOnly) setReadOnly(true);
  } catch (error) {
    showError(error);
  }
}

const enrolForm = $("enrol");
let enrolSeconds = 25;

enrolForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (state.enrolling || state.readOnly) return;
  const name = enrolForm.elements.name.value.trim();
  state.enrolling = true;
  $("enrol-start").disabled = true;
  views.showMessage("enrol-result", t("recording"));
  try {
    const seconds = Number(params.get("enrolseconds")) || enrolSeconds;
    const wav = await record(seconds, (left) => ($("enrol-countdown").textContent = `${Math.ceil(left)} s`), audio);
    views.showMessage("enrol-result", t("uploading"));
    const result = await api.enrol(name, wav);
    const spread = Object.entries(result.spread || {}).map(([k, v]) => `${k} ${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : v}`).join(", ");
    const threshold = typeof result.threshold === "number" ? result.threshold.toFixed(3) : result.threshold;
    views.showMessage("enrol-result",
      `${t("enrolled")}: ${result.name} · ${t("threshold")} ${threshold} · ${t("spread")}: ${spread}${result.warning ? ` — ${result.warning}` : ""}`,
      !result.warning);
    refreshProfiles();
  } catch (error) {
    views.showMessage("enrol-result", error.message || String(error), false);
  } finally {
    state.enrolling = false;
    $("enrol-start").disabled = state.readOnly;
    $("enrol-countdown").textContent = "";
  }
});

// --- start ---------------------------------------------------------------------------------------

translatePage();
views.renderLegend();
render();

new EventStream({
  onOpen: () => {
    model.reset(); // the replay that follows rebuilds everything
    queueRender();
  },
  onLine: (line) => {
    state.lines += 1;
    if (model.add(line)) queueRender();
  },
  onState: (connected) => {
    state.connected = connected;
    const badge = $("connection");
    badge.textContent = connected ? t("live") : t("offline");
    badge.className = `badge ${connected ? "on" : "off"}`;
    if (connected) refreshStatus();
  },
});

refreshStatus();
setInterval(refreshStatus, 2000);
refreshProfiles();
api.settings().then(fillSettings).catch(() => {});
api.enrolText().then((info) => {
  $("enrol-text").textContent = `${t("readAloud")} ${info.text}`;
  enrolSeconds = info.seconds || enrolSeconds;
}).catch(() => {});

window.cluelypro = {
  clientId: CLIENT_ID,
  model,
  state,
  audio,
  startAudio,
  mark: (name) => audio.mark(name),
  outputRms: (name) => audio.outputRms(name),
  stats: () => ({ ...audio.stats, level: { ...audio.level }, lines: state.lines, readOnly: state.readOnly,
    audioReady: audio.ready, context: audio.mic ? { rate: audio.mic.context.sampleRate, state: audio.mic.context.state,
      baseLatency: audio.mic.context.baseLatency, outputLatency: audio.mic.context.outputLatency } : null }),
};
