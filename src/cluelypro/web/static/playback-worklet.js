// AudioWorklets of the earpiece side.
// "cluelypro-playback": a jitter buffer of 16 kHz int16 PCM from the server, played at the
//   context's rate (linear interpolation). After being idle it waits `jitterMs` from the first
//   chunk before it starts (the server sends each chunk ~150 ms ahead of its time, so the next
//   chunk arrives about when the one before ends: the wait is the margin). {type: "flush"}
//   empties it at once. It tells the page {type: "started", seq} when a chunk after silence
//   becomes audible, {type: "silent", seq} at the first quantum after a flush, {type: "idle"}.
// "cluelypro-meter": sums of squares of what the page plays (recorded through a
//   MediaStreamAudioDestinationNode), posted every ~50 ms, for the page's own output level.
const SOURCE_RATE = 16000;

class Playback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.jitter = Math.round((Math.max(0, opts.jitterMs ?? 30) / 1000) * sampleRate);
    this.step = SOURCE_RATE / sampleRate;
    this.chunks = []; // Float32Array at 16 kHz
    this.seqs = [];
    this.pos = 0; // fractional read position in chunks[0]
    this.playing = false;
    this.startAt = null; // frame at which to start after idle
    this.flushed = null; // seq of the flush to report silent
    this.port.onmessage = (message) => this.onMessage(message.data);
  }

  onMessage(data) {
    if (!data) return;
    if (data.type === "pcm") {
      const pcm = new Int16Array(data.data);
      const chunk = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) chunk[i] = pcm[i] / 32768;
      this.chunks.push(chunk);
      this.seqs.push(data.seq);
      if (!this.playing && this.startAt === null) this.startAt = currentFrame + this.jitter;
    } else if (data.type === "flush") {
      this.chunks = [];
      this.seqs = [];
      this.pos = 0;
      this.playing = false;
      this.startAt = null;
      this.flushed = data.seq;
    }
  }

  sample() {
    // linear interpolation between the sample at pos and the next (which may be in the next chunk)
    const chunk = this.chunks[0];
    const i = Math.floor(this.pos);
    const frac = this.pos - i;
    const a = chunk[i];
    let b = a;
    if (i + 1 < chunk.length) b = chunk[i + 1];
    else if (this.chunks.length > 1) b = this.chunks[1][0];
    return a + frac * (b - a);
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    out.fill(0);
    if (this.flushed !== null) {
      this.port.postMessage({ type: "silent", seq: this.flushed });
      this.flushed = null;
    }
    if (!this.playing) {
      if (this.startAt === null || currentFrame + out.length <= this.startAt || this.chunks.length === 0) return true;
      this.playing = true;
      this.startAt = null;
      this.port.postMessage({ type: "started", seq: this.seqs[0] });
    }
    for (let n = 0; n < out.length; n++) {
      if (this.chunks.length === 0) {
        this.playing = false;
        this.port.postMessage({ type: "idle" });
        break;
      }
      out[n] = this.sample();
      this.pos += this.step;
      while (this.chunks.length && this.pos >= this.chunks[0].length) {
        this.pos -= this.chunks[0].length;
        this.chunks.shift();
        this.seqs.shift();
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

class Meter extends AudioWorkletProcessor {
  constructor() {
    super();
    this.sum = 0;
    this.n = 0;
    this.peak = 0;
    this.every = Math.round(sampleRate / 20);
  }

  process(inputs, outputs) {
    if (outputs[0]) for (const channel of outputs[0]) channel.fill(0);
    const input = inputs[0];
    if (input && input.length && input[0].length) {
      const samples = input[0];
      for (let i = 0; i < samples.length; i++) {
        const v = samples[i];
        this.sum += v * v;
        if (Math.abs(v) > this.peak) this.peak = Math.abs(v);
      }
      this.n += samples.length;
    } else {
      this.n += 128; // an input with nothing connected is silence
    }
    if (this.n >= this.every) {
      this.port.postMessage({ sum: this.sum, n: this.n, peak: this.peak });
      this.sum = 0;
      this.n = 0;
      this.peak = 0;
    }
    return true;
  }
}

registerProcessor("cluelypro-playback", Playback);
registerProcessor("cluelypro-meter", Meter);
