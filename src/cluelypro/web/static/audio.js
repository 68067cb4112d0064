// Browser mode: this page is the microphone and the earpiece, over /ws/audio.
// Microphone → capture worklet (16 kHz int16, 20 ms frames) → binary frames to the server.
// Server's binary frames → playback worklet (jitter buffer) → speakers, and through a
// MediaStreamAudioDestinationNode → meter worklet: the page measures its own output.
// {"type": "flush"} empties the playback buffer at once. A second page gets close 4409.
import { CLIENT_ID, socketUrl } from "./api.js";

const SAMPLE_RATE = 16000;
const MAX_QUEUED_FRAMES = 100; // 2 s of microphone while the socket is not ready
const STATIC = new URL(".", import.meta.url).href;

function flag(params, name, fallback) {
  const value = params.get(name);
  if (value === null) return fallback;
  return !["0", "false", "off", "no"].includes(value.toLowerCase());
}

/** getUserMedia constraints from the URL: ?aec=0&ns=0&agc=0 turn the browser's processing off. */
export function microphoneConstraints(params = new URLSearchParams(location.search)) {
  return {
    audio: {
      channelCount: 1,
      echoCancellation: flag(params, "aec", true),
      noiseSuppression: flag(params, "ns", true),
      autoGainControl: flag(params, "agc", true),
    },
    video: false,
  };
}

/** An audio context with the worklets loaded, the microphone opened and a capture node on it;
 * `onStamp` gets the capture worklet's timing stamps (capture-worklet.js). */
export async function openMicrophone(onFrame, params, onStamp) {
  const context = new AudioContext({ latencyHint: "interactive" });
  await context.audioWorklet.addModule(`${STATIC}capture-worklet.js`);
  await context.audioWorklet.addModule(`${STATIC}playback-worklet.js`);
  const stream = await navigator.mediaDevices.getUserMedia(microphoneConstraints(params));
  const source = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "cluelypro-capture", {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1], processorOptions: { frameMs: 20 },
  });
  capture.port.onmessage = (message) => {
    if (message.data instanceof ArrayBuffer) onFrame(message.data);
    else if (onStamp) onStamp(message.data);
  };
  source.connect(capture);
  capture.connect(context.destination); // silent; keeps the node pulled
  if (context.state !== "running") await context.resume().catch(() => {});
  return {
    context, stream, capture,
    close() {
      for (const track of stream.getTracks()) track.stop();
      capture.port.onmessage = null;
      return context.close().catch(() => {});
    },
  };
}

export class BrowserAudio {
  constructor({ onState, onReadOnly, onNotBrowser }) {
    this.onState = onState || (() => {});
    this.onReadOnly = onReadOnly || (() => {});
    this.onNotBrowser = onNotBrowser || (() => {});
    this.mic = null;
    this.socket = null;
    this.ready = false;
    this.wanted = false;
    this.queued = [];
    this.listeners = new Set(); // extra consumers of microphone frames (enrolment)
    this.seq = 0;
    this.silenced = false;
    this.received = new Map(); // seq → performance.now() when it came
    this.flushes = new Map(); // seq → performance.now() when the flush came
    this.delay = 500;
    // pageDelays: ms from a chunk after silence received to audible (worklet start + output
    // latency); audibleWalls: unix time (s) it became audible; flushDelays: ms from a flush
    // message to the worklet's first silent quantum. capture: unix time (s) the capture worklet
    // had its first input ("first") and its first loud sample ("sound"), and when the first
    // frame reached this page's thread ("firstFrame"); receivedWalls: unix time (s) each chunk
    // after silence came.
    this.stats = { framesSent: 0, framesReceived: 0, bytesReceived: 0, pageDelays: [], audibleWalls: [], receivedWalls: [], flushDelays: [], starts: 0, capture: {} };
    this.level = { sum: 0, n: 0, peak: 0 }; // running totals of the page's own output
    this.marks = new Map();
  }

  get active() {
    return this.wanted && this.mic !== null;
  }

  async start(params = new URLSearchParams(location.search)) {
    if (this.wanted) return;
    this.wanted = true;
    this.onState("starting");
    try {
      const stamp = (message) => {
        if (message.type === "stamp") this.stats.capture[message.what] = { wall: message.wall / 1000, frame: message.frame };
      };
      this.mic = await openMicrophone((buffer) => this.frame(buffer), params, stamp);
    } catch (error) {
      this.wanted = false;
      this.onState("error", error);
      throw error;
    }
    const context = this.mic.context;
    const jitterMs = Number(params.get("jitter") ?? 30); // the server sends 150 ms ahead: this is only the start
    this.playback = new AudioWorkletNode(context, "cluelypro-playback", {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1], processorOptions: { jitterMs },
    });
    this.playback.port.onmessage = (message) => this.fromPlayback(message.data);
    this.playback.connect(context.destination);
    const recorded = context.createMediaStreamDestination();
    this.playback.connect(recorded);
    this.meter = new AudioWorkletNode(context, "cluelypro-meter", { numberOfInputs: 1, numberOfOutputs: 1 });
    this.meter.port.onmessage = (message) => {
      const { sum, n, peak } = message.data;
      this.level.sum += sum;
      this.level.n += n;
      this.level.peak = Math.max(this.level.peak, peak);
      this.level.lastPeak = peak;
    };
    context.createMediaStreamSource(recorded.stream).connect(this.meter);
    this.meter.connect(context.destination); // silent
    this.connect();
  }

  connect() {
    if (!this.wanted) return;
    const socket = new WebSocket(socketUrl("ws/audio"));
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.ready = false;
    socket.onopen = () => socket.send(JSON.stringify({ type: "hello", rate: SAMPLE_RATE, client: CLIENT_ID }));
    socket.onmessage = (message) => {
      if (typeof message.data === "string") this.control(message.data);
      else this.pcm(message.data);
    };
    socket.onclose = (event) => {
      this.ready = false;
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === 4409) {
        this.stop();
        this.onReadOnly(event.reason);
        return;
      }
      if (event.code === 4400) {
        this.stop();
        this.onNotBrowser(event.reason);
        return;
      }
      this.onState("reconnecting");
      if (this.wanted) setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(10_000, this.delay * 2);
    };
  }

  control(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "ready") {
      this.ready = true;
      this.delay = 500;
      this.onState("on");
      for (const buffer of this.queued) this.socket.send(buffer);
      this.stats.framesSent += this.queued.length;
      this.queued = [];
    } else if (message.type === "flush") {
      this.flush();
    }
  }

  flush() {
    const seq = ++this.seq;
    this.flushes.set(seq, performance.now());
    if (this.playback) this.playback.port.postMessage({ type: "flush", seq });
  }

  pcm(buffer) {
    if (!this.playback) return;
    const seq = ++this.seq;
    this.received.set(seq, performance.now());
    if (this.received.size > 2000) this.received.delete(this.received.keys().next().value);
    this.stats.framesReceived += 1;
    this.stats.bytesReceived += buffer.byteLength;
    this.playback.port.postMessage({ type: "pcm", seq, data: buffer }, [buffer]);
  }

  fromPlayback(message) {
    const now = performance.now();
    if (message.type === "started") {
      const came = this.received.get(message.seq);
      this.stats.starts += 1;
      if (came !== undefined) {
        const context = this.mic.context;
        const outputMs = 1000 * (context.outputLatency || context.baseLatency || 0);
        this.stats.pageDelays.push(now - came + outputMs);
        this.stats.audibleWalls.push((performance.timeOrigin + now + outputMs) / 1000);
        this.stats.receivedWalls.push((performance.timeOrigin + came) / 1000);
      }
    } else if (message.type === "silent") {
      const came = this.flushes.get(message.seq);
      if (came !== undefined) this.stats.flushDelays.push(now - came);
      this.flushes.delete(message.seq);
    }
  }

  frame(microphone) {
    if (this.stats.capture.firstFrame === undefined) this.stats.capture.firstFrame = { wall: Date.now() / 1000 };
    for (const listener of this.listeners) listener(microphone);
    const buffer = this.silenced ? new ArrayBuffer(microphone.byteLength) : microphone;
    if (this.socket && this.ready && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(buffer);
      this.stats.framesSent += 1;
    } else if (this.wanted) {
      this.queued.push(buffer);
      if (this.queued.length > MAX_QUEUED_FRAMES) this.queued.shift();
    }
  }

  /** Send silence instead of the microphone (while a profile is recorded). */
  silence(on) {
    this.silenced = Boolean(on);
  }

  stop() {
    this.wanted = false;
    this.ready = false;
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "page closed the audio");
    if (this.mic) this.mic.close();
    this.mic = null;
    this.playback = null;
    this.onState("off");
  }

  /** Remember the output level totals now, under `name`. */
  mark(name = "default") {
    this.marks.set(name, { sum: this.level.sum, n: this.level.n });
    return name;
  }

  /** RMS of what the page played since mark `name` (0 when nothing was measured). */
  outputRms(name = "default") {
    const mark = this.marks.get(name) || { sum: 0, n: 0 };
    const n = this.level.n - mark.n;
    return n > 0 ? Math.sqrt(Math.max(0, this.level.sum - mark.sum) / n) : 0;
  }
}
