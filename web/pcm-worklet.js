// AudioWorklet processor: the microphone at the context's rate in, PCM16 mono at 16 kHz out,
// posted to the page in frames of about 40 ms (the Int16Array's buffer is transferred).
//
// Downsampling averages the input samples that fall into each output sample's period (a box
// filter): crude, but it removes most of what would alias into the speech band, which is what
// the voice activity detector and the recogniser need.
"use strict";

class Pcm16Downsampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, frameMs = 40 } = options.processorOptions ?? {};
    this.ratio = sampleRate / targetRate; // input samples per output sample
    this.frameSamples = Math.round((targetRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.phase = 0; // input samples taken into the current output sample
    this.sum = 0;
    this.count = 0;
    this.last = 0;
  }

  emit(value) {
    const s = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.filled === this.frameSamples) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]); // detaches this.frame
      this.frame = new Int16Array(this.frameSamples);
      this.filled = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    for (let i = 0; i < n; ++i) {
      let x = 0;
      for (const ch of channels) x += ch[i];
      this.sum += x / channels.length;
      this.count += 1;
      this.phase += 1;
      // Below 16 kHz (ratio < 1) one input sample yields several output samples.
      while (this.phase >= this.ratio) {
        if (this.count > 0) this.last = this.sum / this.count;
        this.emit(this.last);
        this.phase -= this.ratio;
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);
