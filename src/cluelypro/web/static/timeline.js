// The event timeline (SPEC §3a) folded into what the page shows. Pure data: no DOM here.
// The replay after a (re)connect rebuilds it from scratch: `reset()` then every line again.

export const STAGES = ["asr", "llm_first_token", "tts_first_audio", "playback_start"];
const MAX_UTTERANCES = 60;
const MAX_QUESTIONS = 12;
const MAX_LOG = 80;

export class TimelineModel {
  constructor() {
    this.reset();
  }

  reset() {
    this.utterances = new Map(); // utt → {utt, role, score, text, engine, ms, accepted, reason, speechEnd}
    this.questions = new Map(); // q → {q, utt, stages: {speech_end, asr, ...}: t, interrupted}
    this.plans = new Map(); // q → Map(index → {index, text, depth, engine, state, times_spoken})
    this.writers = new Map(); // q → LLM provider
    this.currentQ = null;
    this.log = [];
    this.count = 0;
    this.lastT = null;
  }

  /** Fold one timeline line in; returns true when it changed what is shown. */
  add(line) {
    if (!line || typeof line !== "object" || typeof line.event !== "string") return false;
    this.count += 1;
    if (typeof line.t === "number") this.lastT = line.t;
    const { utt, q } = line;
    switch (line.event) {
      case "speech_end":
        this._utt(utt).speechEnd = line.t;
        break;
      case "speaker": {
        const u = this._utt(utt);
        u.role = line.role;
        u.score = line.score;
        break;
      }
      case "asr": {
        const u = this._utt(utt);
        u.text = line.text;
        u.engine = line.engine;
        u.ms = line.ms;
        u.asrT = line.t;
        break;
      }
      case "question": {
        const u = this._utt(utt);
        u.accepted = Boolean(line.accepted);
        u.reason = line.reason;
        if (line.accepted && q != null) {
          u.q = q;
          const question = this._question(q);
          question.utt = utt;
          question.text = u.text || "";
          if (u.speechEnd != null) question.stages.speech_end = u.speechEnd;
          if (u.asrT != null) question.stages.asr = u.asrT;
        }
        break;
      }
      case "llm_first_token":
        if (q != null) {
          this._stage(q, "llm_first_token", line.t);
          this.writers.set(q, line.provider);
        }
        break;
      case "tts_first_audio":
        if (q != null) {
          this._stage(q, "tts_first_audio", line.t);
          this._thesis(q, line.index);
        }
        break;
      case "thesis":
        if (q != null) {
          const thesis = this._thesis(q, line.index);
          thesis.text = line.text;
          thesis.depth = line.depth;
        }
        break;
      case "playback_start":
        if (q != null) {
          this._stage(q, "playback_start", line.t);
          this._thesis(q, line.index).state = "speaking";
        }
        break;
      case "playback_end":
        if (q != null) {
          const thesis = this._thesis(q, line.index);
          thesis.state = "said";
          thesis.times_spoken += 1;
        }
        break;
      case "matched":
        if (q != null) this._thesis(q, line.index).state = "said";
        break;
      case "interrupted":
        if (line.old_q != null && this.questions.has(line.old_q)) this.questions.get(line.old_q).interrupted = true;
        this._log(line, "warn");
        break;
      case "error":
      case "provider_skipped":
      case "device":
        this._log(line, line.event === "error" ? "error" : "info");
        break;
      default:
        return false;
    }
    return true;
  }

  _utt(utt) {
    const key = utt ?? 0;
    let u = this.utterances.get(key);
    if (!u) {
      u = { utt: key, role: null, score: null, text: null, engine: null, ms: null, accepted: null, reason: null };
      this.utterances.set(key, u);
      while (this.utterances.size > MAX_UTTERANCES) this.utterances.delete(this.utterances.keys().next().value);
    }
    return u;
  }

  _question(q) {
    let question = this.questions.get(q);
    if (!question) {
      question = { q, utt: null, text: "", stages: {}, interrupted: false };
      this.questions.set(q, question);
      while (this.questions.size > MAX_QUESTIONS) this.questions.delete(this.questions.keys().next().value);
    }
    return question;
  }

  _stage(q, stage, t) {
    const question = this._question(q);
    if (question.stages[stage] == null) question.stages[stage] = t; // the first one counts
  }

  _thesis(q, index) {
    if (this.currentQ == null || q > this.currentQ) this.currentQ = q;
    let plan = this.plans.get(q);
    if (!plan) {
      plan = new Map();
      this.plans.set(q, plan);
      for (const old of [...this.plans.keys()]) if (old < q - 2) this.plans.delete(old);
    }
    let thesis = plan.get(index);
    if (!thesis) {
      thesis = { index, text: null, depth: 0, engine: this.writers.get(q) ?? null, state: "pending", times_spoken: 0 };
      plan.set(index, thesis);
    }
    return thesis;
  }

  _log(line, level) {
    this.log.push({ level, line });
    if (this.log.length > MAX_LOG) this.log.shift();
  }

  /** The current answer: {q, text, theses: [...] by index} or null. */
  plan() {
    if (this.currentQ == null) return null;
    const plan = this.plans.get(this.currentQ);
    const question = this.questions.get(this.currentQ);
    const theses = [...plan.values()].sort((a, b) => a.index - b.index);
    return { q: this.currentQ, text: question ? question.text : "", theses };
  }

  /** Each question's stage times relative to its speech end (s), newest first. */
  waterfall() {
    const rows = [];
    for (const question of this.questions.values()) {
      const zero = question.stages.speech_end;
      if (zero == null) continue;
      const offsets = {};
      for (const stage of STAGES) if (question.stages[stage] != null) offsets[stage] = question.stages[stage] - zero;
      rows.push({ q: question.q, text: question.text, offsets, interrupted: question.interrupted,
        voiceToVoice: offsets.playback_start ?? null });
    }
    return rows.reverse();
  }

  /** Running p50/p95 of voice-to-voice from the questions kept here. */
  percentiles() {
    const values = this.waterfall().map((row) => row.voiceToVoice).filter((v) => v != null).sort((a, b) => a - b);
    const at = (p) => (values.length ? values[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)] : null);
    return { p50: at(50), p95: at(95), count: values.length };
  }
}
