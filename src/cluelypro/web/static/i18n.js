// Page texts in Russian and English: by navigator.language, or ?lang=ru|en.
const TEXTS = {
  ru: {
    connecting: "подключение…", live: "на связи", offline: "нет связи",
    readOnly: "Только просмотр: микрофон и наушник держит другая страница.",
    start: "Слушать", stop: "Стоп", mute: "Без звука", unmute: "Звук", repeat: "Повтор", skip: "Дальше",
    connectAudio: "Подключить микрофон и звук этой страницы",
    plan: "Ответ", noPlan: "Вопроса пока не было.", latency: "Задержка", utterances: "Реплики",
    engines: "Движки", keys: "Ключи", settings: "Настройки", profiles: "Профили голоса",
    enrol: "Запись профиля", profileName: "Имя профиля", record: "Записать", log: "События",
    advancePolicy: "Переход к следующему тезису", policyRepeat: "повторять", policyUntilSaid: "пока не скажу",
    commentary: "Режим комментариев", filterMode: "Фильтр вопросов", filterHeuristic: "эвристика",
    filterAll: "все реплики", voice: "Голос", speed: "Скорость", save: "Сохранить", saved: "Сохранено",
    listening: "слушает", stopped: "остановлен", muted: "без звука",
    modeLocal: "микрофон компьютера", modeBrowser: "микрофон страницы", modeInput: "запись",
    audioOn: "звук страницы: вкл", audioOff: "звук страницы: выкл",
    own: "я", other: "собеседник", accepted: "вопрос", ignored: "пропущено",
    pending: "ждёт", speaking: "звучит", said: "сказано", times: "раз", depth: "глубина",
    p50: "p50", p95: "p95", count: "вопросов", set: "задан", notSet: "не задан",
    use: "Выбрать", delete: "Удалить", active: "активный", threshold: "порог",
    confirmDelete: "Удалить профиль", readAloud: "Прочитайте вслух:", recording: "запись…",
    uploading: "отправка…", enrolled: "Профиль записан", spread: "разброс", noProfiles: "Профилей нет.",
    input: "вход", output: "выход", interrupted: "прерван", error: "ошибка", device: "устройство",
    skipped: "пропущен", stage_asr: "распознавание", stage_llm_first_token: "первый токен",
    stage_tts_first_audio: "первый звук", stage_playback_start: "в наушнике",
  },
  en: {
    connecting: "connecting…", live: "live", offline: "offline",
    readOnly: "Read-only: another page holds the microphone and earpiece.",
    start: "Listen", stop: "Stop", mute: "Mute", unmute: "Unmute", repeat: "Repeat", skip: "Skip",
    connectAudio: "Use this page's microphone and sound",
    plan: "Answer", noPlan: "No question yet.", latency: "Latency", utterances: "Utterances",
    engines: "Engines", keys: "Keys", settings: "Settings", profiles: "Voice profiles",
    enrol: "Record a profile", profileName: "Profile name", record: "Record", log: "Events",
    advancePolicy: "Next thesis", policyRepeat: "repeat", policyUntilSaid: "until said",
    commentary: "Commentary mode", filterMode: "Question filter", filterHeuristic: "heuristic",
    filterAll: "every utterance", voice: "Voice", speed: "Speed", save: "Save", saved: "Saved",
    listening: "listening", stopped: "stopped", muted: "muted",
    modeLocal: "computer's microphone", modeBrowser: "page's microphone", modeInput: "recording",
    audioOn: "page audio: on", audioOff: "page audio: off",
    own: "me", other: "other", accepted: "question", ignored: "ignored",
    pending: "pending", speaking: "speaking", said: "said", times: "times", depth: "depth",
    p50: "p50", p95: "p95", count: "questions", set: "set", notSet: "not set",
    use: "Use", delete: "Delete", active: "active", threshold: "threshold",
    confirmDelete: "Delete profile", readAloud: "Read aloud:", recording: "recording…",
    uploading: "uploading…", enrolled: "Profile recorded", spread: "spread", noProfiles: "No profiles.",
    input: "input", output: "output", interrupted: "interrupted", error: "error", device: "device",
    skipped: "skipped", stage_asr: "ASR", stage_llm_first_token: "first token",
    stage_tts_first_audio: "first audio", stage_playback_start: "in earpiece",
  },
};

function pickLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked && asked in TEXTS) return asked;
  const languages = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "ru"];
  for (const language of languages) {
    const base = String(language).toLowerCase().split("-")[0];
    if (base in TEXTS) return base;
  }
  return "en";
}

export const LANG = pickLanguage();

export function t(key) {
  return TEXTS[LANG][key] ?? TEXTS.en[key] ?? key;
}

/** Fill every [data-i18n] element's text (textContent: never markup). */
export function translatePage(root = document) {
  document.documentElement.lang = LANG;
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
}
