// Voice-profile enrolment in the page: the paragraph is shown, `seconds` of the microphone are
// recorded at 16 kHz (through the capture worklet) with a countdown, and sent as a WAV file.
import { openMicrophone } from "./audio.js";

const SAMPLE_RATE = 16000;

/** A 16-bit mono PCM WAV file of int16 samples. */
export function wavBlob(samples, rate = SAMPLE_RATE) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, value) => [...value].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  const bytes = samples.length * 2;
  text(0, "RIFF");
  header.setUint32(4, 36 + bytes, true);
  text(8, "WAVE");
  text(12, "fmt ");
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, rate, true);
  header.setUint32(28, rate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, "data");
  header.setUint32(40, bytes, true);
  return new Blob([header.buffer, samples.buffer], { type: "audio/wav" });
}

/** Record `seconds` of the microphone; `onTick(secondsLeft)` about 10 times a second. Uses the
 * browser-mode microphone when it is open (the server hears silence meanwhile), else its own. */
export async function record(seconds, onTick, browserAudio) {
  const wanted = Math.round(seconds * SAMPLE_RATE);
  const samples = new Int16Array(wanted);
  let filled = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const onFrame = (buffer) => {
    if (filled >= wanted) return;
    const frame = new Int16Array(buffer.slice(0));
    const take = Math.min(frame.length, wanted - filled);
    samples.set(frame.subarray(0, take), filled);
    filled += take;
    if (filled >= wanted) done();
  };
  let own = null;
  if (browserAudio && browserAudio.active) {
    browserAudio.listeners.add(onFrame);
    browserAudio.silence(true);
  } else {
    own = await openMicrophone(onFrame);
  }
  const timer = setInterval(() => onTick(Math.max(0, (wanted - filled) / SAMPLE_RATE)), 100);
  onTick(seconds);
  try {
    await finished;
  } finally {
    clearInterval(timer);
    if (own) await own.close();
    else {
      browserAudio.listeners.delete(onFrame);
      browserAudio.silence(false);
    }
  }
  onTick(0);
  return wavBlob(samples);
}
