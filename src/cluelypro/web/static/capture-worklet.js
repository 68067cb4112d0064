// AudioWorklet: the microphone at the context's rate → 16 kHz mono int16 frames (20–40 ms),
// posted to the page as transferable ArrayBuffers. A windowed-sinc low-pass (7.2 kHz) keeps
// what is above 8 kHz from folding down; output samples fall between input samples, so two
// neighbouring filtered values are interpolated.
// Two stamps for the latency measurements (scripts/web_route_cost.py), posted once each as
// {type: "stamp", what, wall, frame}: the first quantum that carries input ("first") and the first
// sample louder than MARK ("sound"); `wall` is Date.now() (ms) when the worklet had it.
const TARGET = 16000;
const MARK = 0.05;
const HALF = 24; // taps on each side of the centre

class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameMs = Math.min(40, Math.max(20, (options.processorOptions || {}).frameMs || 20));
    this.frame = Math.round((TARGET * frameMs) / 1000);
    this.step = sampleRate / TARGET; // input samples per output sample
    const fc = Math.min(7200, 0.45 * sampleRate) / sampleRate; // cut-off, cycles per input sample
    this.kernel = new Float32Array(2 * HALF + 1);
    let sum = 0;
    for (let k = -HALF; k <= HALF; k++) {
      const x = 2 * fc * k;
      const sinc = k === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const window = 0.42 + 0.5 * Math.cos((Math.PI * k) / (HALF + 1)) + 0.08 * Math.cos((2 * Math.PI * k) / (HALF + 1));
      this.kernel[k + HALF] = sinc * window;
      sum += sinc * window;
    }
    for (let i = 0; i < this.kernel.length; i++) this.kernel[i] /= sum;
    this.history = new Float32Array(16384);
    this.filled = HALF; // zeros before the first sample
    this.pos = HALF; // next output position, in input samples from history[0]
    this.out = new Int16Array(this.frame);
    this.outN = 0;
    this.stamped = { first: false, sound: false };
  }

  stamp(input) {
    if (!this.stamped.first) {
      this.stamped.first = true;
      this.port.postMessage({ type: "stamp", what: "first", wall: Date.now(), frame: currentFrame });
    }
    if (this.stamped.sound) return;
    const samples = input[0];
    for (let i = 0; i < samples.length; i++) {
      if (Math.abs(samples[i]) > MARK) {
        this.stamped.sound = true;
        this.port.postMessage({ type: "stamp", what: "sound", wall: Date.now(), frame: currentFrame + i });
        return;
      }
    }
  }

  filtered(centre) {
    const h = this.history;
    const kernel = this.kernel;
    let acc = 0;
    for (let k = 0; k < kernel.length; k++) acc += kernel[k] * h[centre - HALF + k];
    return acc;
  }

  process(inputs, outputs) {
    const input = inputs[0];
    if (outputs[0]) for (const channel of outputs[0]) channel.fill(0);
    if (!input || input.length === 0 || input[0].length === 0) return true;
    this.stamp(input);
    const n = input[0].length;
    if (this.filled + n > this.history.length) {
      // keep what the filter still needs, from the sample before the next output position
      const keepFrom = Math.max(0, Math.floor(this.pos) - HALF - 1);
      this.history.copyWithin(0, keepFrom, this.filled);
      this.filled -= keepFrom;
      this.pos -= keepFrom;
    }
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (let c = 0; c < input.length; c++) v += input[c][i];
      this.history[this.filled + i] = v / input.length;
    }
    this.filled += n;
    while (Math.floor(this.pos) + 1 + HALF < this.filled) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = this.filtered(i);
      const value = frac === 0 ? a : a + frac * (this.filtered(i + 1) - a);
      const clipped = Math.max(-1, Math.min(1, value));
      this.out[this.outN++] = Math.round(clipped * 32767);
      this.pos += this.step;
      if (this.outN === this.frame) {
        const buffer = this.out.buffer;
        this.port.postMessage(buffer, [buffer]);
        this.out = new Int16Array(this.frame);
        this.outN = 0;
      }
    }
    return true;
  }
}

registerProcessor("cluelypro-capture", Capture);
