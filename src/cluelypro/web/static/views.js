// Rendering: DOM built with createElement + textContent only (event text is never markup).
import { t } from "./i18n.js";
import { STAGES } from "./timeline.js";

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child != null) node.append(child instanceof Node ? child : String(child));
  return node;
}

const $ = (id) => document.getElementById(id);

export function fmtSeconds(value) {
  return value == null ? "—" : `${value.toFixed(2)} s`;
}

export function renderPlan(plan) {
  const list = $("plan");
  list.replaceChildren();
  $("plan-empty").classList.toggle("hidden", Boolean(plan && plan.theses.length));
  $("plan-question").textContent = plan && plan.text ? `«${plan.text}»` : "";
  if (!plan) return;
  for (const thesis of plan.theses) {
    const meta = [`${t(thesis.state)}`, `${t("times")}: ${thesis.times_spoken}`, `${t("depth")}: ${thesis.depth ?? 0}`];
    if (thesis.engine) meta.push(thesis.engine);
    list.append(
      el("li", { class: `thesis ${thesis.state} depth-${Math.min(1, thesis.depth || 0)}`, dataset: { index: thesis.index, state: thesis.state } },
        el("span", { class: `state ${thesis.state}`, text: t(thesis.state) }),
        el("span", { class: "text", text: thesis.text ?? "…" }),
        el("span", { class: "meta", text: meta.slice(1).join(" · ") })),
    );
  }
}

export function renderLegend() {
  $("legend").replaceChildren(...STAGES.map((stage) => el("span", {}, el("i", { class: `s-${stage}` }), t(`stage_${stage}`))));
}

export function renderWaterfall(rows, summary) {
  const box = $("waterfall");
  const scale = Math.max(1, ...rows.flatMap((row) => Object.values(row.offsets)));
  box.replaceChildren();
  for (const row of rows) {
    const track = el("div", { class: "wf-track", title: row.text || "" });
    let previous = 0;
    for (const stage of STAGES) {
      const at = row.offsets[stage];
      if (at == null) continue;
      const bar = el("div", { class: `wf-bar s-${stage}`, title: `${t(`stage_${stage}`)}: ${fmtSeconds(at)}`, dataset: { stage } });
      bar.style.left = `${(100 * Math.max(0, previous)) / scale}%`;
      bar.style.width = `${(100 * Math.max(0, at - previous)) / scale}%`;
      track.append(bar);
      previous = Math.max(previous, at);
    }
    box.append(el("div", { class: "wf-row", dataset: { q: row.q } },
      el("span", { text: `#${row.q}${row.interrupted ? "✕" : ""}` }), track,
      el("span", { class: "wf-total", text: fmtSeconds(row.voiceToVoice) })));
  }
  $("latency-summary").textContent =
    `${t("p50")} ${fmtSeconds(summary.p50)} · ${t("p95")} ${fmtSeconds(summary.p95)} · ${t("count")}: ${summary.count}`;
}

export function renderUtterances(utterances) {
  const list = $("utterances");
  list.replaceChildren();
  for (const u of [...utterances].reverse()) {
    if (u.text == null && u.role == null) continue;
    const who = u.role ? el("span", { class: `who ${u.role}`, text: `${t(u.role)}${u.score != null ? ` ${Number(u.score).toFixed(2)}` : ""}` }) : null;
    let verdict = null;
    if (u.accepted != null) {
      verdict = el("span", { class: `verdict ${u.accepted ? "accepted" : "ignored"}`,
        text: `${u.accepted ? t("accepted") : t("ignored")}${u.reason ? `: ${u.reason}` : ""}` });
    }
    const asr = u.engine ? el("span", { class: "verdict", text: `${u.engine}${u.ms != null ? `, ${u.ms} ms` : ""}` }) : null;
    list.append(el("li", { class: "utt", dataset: { utt: u.utt } }, who, el("span", { class: "text", text: u.text ?? "…" }), verdict, asr));
  }
}

export function renderChains(chains, keys, devices) {
  const box = $("chains");
  box.replaceChildren();
  for (const [stage, engines] of Object.entries(chains || {})) {
    const row = el("div", { class: "stage" }, el("b", { text: stage }));
    for (const engine of engines) {
      const kind = engine.state === "ready" ? "" : engine.state === "skipped" ? "skipped" : "cooling";
      const label = engine.state === "ready" ? engine.engine : `${engine.engine} (${engine.state === "skipped" ? t("skipped") : engine.state})`;
      row.append(el("span", { class: `engine ${kind}`, title: engine.reason || engine.state, text: label }));
      if (engine.reason && engine.state !== "ready") row.append(el("span", { class: "muted reason", text: ` ${engine.reason}` }), el("br"));
    }
    box.append(row);
  }
  $("keys").replaceChildren(...Object.entries(keys || {}).map(([name, state]) =>
    el("li", { class: state === "set" ? "set" : "unset", text: `${name}: ${state === "set" ? t("set") : t("notSet")}` })));
  const d = devices || {};
  $("devices").textContent = `${t("input")}: ${d.input ?? "—"} · ${t("output")}: ${d.output ?? "—"}`;
}

export function renderLog(entries) {
  $("log").replaceChildren(...[...entries].reverse().map(({ level, line }) => {
    const { t: time, wall, utt, q, event, ...fields } = line;
    const text = `${time != null ? Number(time).toFixed(1) : "?"} s ${t(event)} ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(" ")}`;
    return el("li", { class: level, text });
  }));
}

export function renderProfiles(profiles, handlers) {
  const list = $("profiles");
  list.replaceChildren();
  if (!profiles.length) list.append(el("li", { class: "muted", text: t("noProfiles") }));
  for (const profile of profiles) {
    list.append(el("li", { dataset: { name: profile.name } },
      el("span", { class: "name", text: `${profile.name}${profile.active ? ` — ${t("active")}` : ""}` }),
      el("span", { class: "muted", text: `${t("threshold")} ${profile.threshold != null ? Number(profile.threshold).toFixed(2) : "—"}` }),
      el("button", { type: "button", class: "use", disabled: profile.active, onclick: () => handlers.use(profile.name), text: t("use") }),
      el("button", { type: "button", class: "delete", onclick: () => handlers.remove(profile.name), text: t("delete") })));
  }
}

export function showMessage(id, text, good) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("good", good === true);
  node.classList.toggle("bad", good === false);
}
