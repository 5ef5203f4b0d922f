// The demo page: a live conversation with the avatar over the WebSocket GET /v1/stream
// (docs/protocol.md). Typed text or the microphone (PCM16 16 kHz from pcm-worklet.js) in;
// events, reply text and the avatar's fragmented-MP4 video (Media Source Extensions) out.
// No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const video = $("avatar");

const KIND_AUDIO = 1;
const KIND_VIDEO_INIT = 2;
const KIND_VIDEO_MEDIA = 3;
const HEADER_BYTES = 12;

// What the page has seen, for people in the console and for the end-to-end test.
const demo = {
  sessionId: null,
  avatar: null,         // session.started avatar: id and the live video size
  events: [],           // types of the JSON events received, in order
  errors: [],           // error messages shown
  stats: { initSegments: 0, mediaSegments: 0, audioFrames: 0, appended: 0, micFrames: 0 },
  bufferedEnd: () => (player?.sourceBuffer?.buffered.length
    ? player.sourceBuffer.buffered.end(player.sourceBuffer.buffered.length - 1) : 0),
};
window.talkDemo = demo;

let ws = null;
let started = false;      // session.started seen on the current socket
let reconnectDelay = 500;
let reconnectTimer = null;
let running = null;       // response_id of the response in progress
const replies = new Map(); // response_id -> {el, text}

// --- log ----------------------------------------------------------------------------------

function add(cls, text) {
  const el = document.createElement("div");
  el.className = "msg " + cls;
  el.textContent = text;
  $("log").appendChild(el);
  el.scrollIntoView({ block: "end" });
  return el;
}

function showError(message) {
  demo.errors.push(message);
  add("error", message);
}

function setStatus(text) { $("status").textContent = text; }

function setVad(state, label) {
  $("vad").dataset.state = state;
  $("vad").textContent = label;
}

function apiKey() { return $("key").value.trim(); }

// --- video: Media Source Extensions ---------------------------------------------------------

// One MediaSource per session; every response's init and media segments are appended in the
// order received, in "sequence" mode, so responses play back to back on one timeline.
let player = null;

function createPlayer(mime) {
  if (player) URL.revokeObjectURL(player.url);
  player = null;
  if (!mime) {
    $("video-state").textContent = "video off";
    return;
  }
  if (!window.MediaSource || !MediaSource.isTypeSupported(mime)) {
    $("video-state").textContent = "this browser cannot play " + mime;
    return;
  }
  const mediaSource = new MediaSource();
  const p = { mediaSource, sourceBuffer: null, queue: [], flushAt: null, restart: false, url: URL.createObjectURL(mediaSource) };
  player = p;
  mediaSource.addEventListener("sourceopen", () => {
    if (player !== p) return;
    p.sourceBuffer = mediaSource.addSourceBuffer(mime);
    p.sourceBuffer.mode = "sequence";
    p.sourceBuffer.addEventListener("updateend", () => pump(p));
    p.sourceBuffer.addEventListener("error", () => showError("video: the browser could not append a segment"));
    pump(p);
  }, { once: true });
  video.src = p.url;
  $("video-state").textContent = "";
}

function appendSegment(bytes) {
  if (!player) return;
  player.queue.push(bytes);
  pump(player);
}

// Drops the video not yet played (a cancelled response), so the next one starts now.
function flushVideo() {
  if (!player) return;
  player.queue.length = 0;
  player.flushAt = video.currentTime;
  pump(player);
}

function pump(p) {
  const sb = p.sourceBuffer;
  if (!sb || sb.updating || p.mediaSource.readyState !== "open") return;
  const buffered = sb.buffered;
  const end = buffered.length ? buffered.end(buffered.length - 1) : 0;
  if (p.flushAt !== null) {
    const at = p.flushAt;
    if (end > at + 0.04) {
      sb.remove(at, end);
      return; // updateend calls pump again, with flushAt still set
    }
    p.flushAt = null;
    p.restart = true;
  }
  // Keep the buffer bounded in a long conversation: drop what played more than 30 s ago.
  if (buffered.length && video.currentTime - buffered.start(0) > 60) {
    sb.remove(buffered.start(0), video.currentTime - 30);
    return;
  }
  const next = p.queue.shift();
  if (!next) return;
  if (p.restart) {
    // In sequence mode the next response would follow the removed media; start it where the
    // playhead is when it arrives, so it plays from its first frame.
    p.restart = false;
    sb.timestampOffset = video.currentTime;
  }
  try {
    sb.appendBuffer(next);
    demo.stats.appended += 1;
  } catch (e) {
    showError("video: " + e.message);
  }
  if (video.paused) video.play().catch(() => {});
}

// The avatar's size gives the black box its aspect ratio before any video arrives.
async function loadAvatar() {
  const headers = apiKey() ? { Authorization: "Bearer " + apiKey() } : {};
  const res = await fetch("/v1/avatar", { headers }).catch(() => null);
  if (!res?.ok) return;
  const a = await res.json();
  if (a.width > 0 && a.height > 0) $("screen").style.aspectRatio = `${a.width} / ${a.height}`;
}

// --- the WebSocket ------------------------------------------------------------------------

function send(obj) {
  if (ws?.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(obj));
  return true;
}

function connect() {
  clearTimeout(reconnectTimer);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = apiKey() ? "?api_key=" + encodeURIComponent(apiKey()) : "";
  const socket = new WebSocket(`${scheme}//${location.host}/v1/stream${query}`);
  socket.binaryType = "arraybuffer";
  ws = socket;
  started = false;
  setStatus("connecting…");
  let opened = false;
  socket.onopen = () => {
    opened = true;
    const start = { type: "session.start" };
    if (demo.sessionId) start.session_id = demo.sessionId; // carry the conversation on
    socket.send(JSON.stringify(start));
  };
  socket.onmessage = (ev) => {
    if (ws !== socket) return;
    if (typeof ev.data === "string") onEvent(JSON.parse(ev.data));
    else onBinary(ev.data);
  };
  socket.onclose = (ev) => {
    if (ws !== socket) return;
    ws = null;
    // Refused without session.started: perhaps the session to resume is gone; start anew.
    if (opened && !started) demo.sessionId = null;
    started = false;
    endResponse();
    if (opened) retryLater(ev.code === 1006 ? "connection lost" : `closed ${ev.code}${ev.reason ? ": " + ev.reason : ""}`);
    else explainRefusal(socket);
  };
}

function retryLater(why) {
  setStatus(`${why}; reconnecting in ${(reconnectDelay / 1000).toFixed(1)} s`);
  reconnectTimer = setTimeout(connect, reconnectDelay);
  reconnectDelay = Math.min(reconnectDelay * 2, 10_000);
}

// A browser does not see why a WebSocket upgrade failed; ask over HTTP whether it was the key.
async function explainRefusal(socket) {
  const headers = apiKey() ? { Authorization: "Bearer " + apiKey() } : {};
  const res = await fetch("/v1/avatar", { headers }).catch(() => null);
  if (ws !== null && ws !== socket) return; // reconnected meanwhile (a new key)
  if (res?.status === 401) {
    setStatus(apiKey() ? "the API key was refused: check it in Settings" : "this server needs an API key: set it in Settings");
    $("settings").open = true;
    return; // changing the key reconnects
  }
  retryLater(res ? "could not connect" : "server unreachable");
}

function onEvent(e) {
  demo.events.push(e.type);
  switch (e.type) {
    case "session.started": {
      started = true;
      reconnectDelay = 500;
      demo.sessionId = e.session_id;
      demo.avatar = e.avatar ?? null;  // the live video's size (talk.stream_size)
      setStatus(`live (${e.avatar?.id ?? "avatar"}, session ${e.session_id})`);
      if (e.avatar?.width > 0) $("screen").style.aspectRatio = `${e.avatar.width} / ${e.avatar.height}`;
      createPlayer(e.video?.mime ?? null);
      $("mic").disabled = e.vad === false;
      $("mic").title = e.vad === false ? "the server has no voice activity detector" : "Microphone";
      break;
    }
    case "vad.speech_start": setVad("speech", "speaking…"); break;
    case "vad.speech_end": setVad("silence", "listening"); break;
    case "transcript.final": add("user spoken", e.text); break;
    case "response.started":
      running = e.response_id;
      $("stop").disabled = false;
      replies.set(e.response_id, { el: add("assistant", ""), text: "" });
      break;
    case "reply.delta": {
      const r = replies.get(e.response_id);
      if (!r) break;
      r.text += e.text;
      r.el.textContent = r.text.trimStart();
      r.el.scrollIntoView({ block: "end" });
      break;
    }
    case "reply.done": {
      const r = replies.get(e.response_id);
      if (r) r.el.textContent = (r.text = e.text).trimStart();
      break;
    }
    case "response.done": {
      const r = replies.get(e.response_id);
      const t = e.timings ?? {};
      if (r) {
        const meta = document.createElement("div");
        meta.className = "meta";
        const ms = (v) => (typeof v === "number" ? Math.round(v) + " ms" : "-");
        meta.textContent = `first audio ${ms(t.first_audio_ms)}, first video ${ms(t.first_video_ms)}, ` +
          `${(e.audio_seconds ?? 0).toFixed(1)} s of speech`;
        r.el.appendChild(meta);
      }
      endResponse(e.response_id);
      break;
    }
    case "response.cancelled": {
      const r = replies.get(e.response_id);
      if (r) {
        r.el.classList.add("cancelled");
        const meta = document.createElement("div");
        meta.className = "meta";
        meta.textContent = e.reason === "barge_in" ? "interrupted" : "stopped";
        r.el.appendChild(meta);
      }
      flushVideo();
      endResponse(e.response_id);
      break;
    }
    case "error":
      showError(e.error?.message ?? "error");
      if (e.response_id !== undefined) endResponse(e.response_id);
      break;
    default:
      break; // events added to the protocol later are ignored
  }
}

function endResponse(id) {
  if (id !== undefined && id !== running) return;
  running = null;
  $("stop").disabled = true;
}

function onBinary(buf) {
  if (buf.byteLength < HEADER_BYTES) return;
  const kind = new DataView(buf).getUint8(0);
  if (kind === KIND_AUDIO) {
    demo.stats.audioFrames += 1; // the video carries the same speech
  } else if (kind === KIND_VIDEO_INIT || kind === KIND_VIDEO_MEDIA) {
    demo.stats[kind === KIND_VIDEO_INIT ? "initSegments" : "mediaSegments"] += 1;
    appendSegment(new Uint8Array(buf, HEADER_BYTES));
  }
}

// --- the microphone -----------------------------------------------------------------------

let mic = null; // {stream, context}

async function startMic() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule("pcm-worklet.js");
  const node = new AudioWorkletNode(context, "pcm16-downsampler", {
    numberOfOutputs: 0,
    processorOptions: { targetRate: 16000, frameMs: 40 },
  });
  node.port.onmessage = (ev) => {
    if (started && ws?.readyState === WebSocket.OPEN) {
      ws.send(ev.data);
      demo.stats.micFrames += 1;
    }
  };
  context.createMediaStreamSource(stream).connect(node);
  mic = { stream, context };
  setVad("silence", "listening");
}

function stopMic() {
  if (!mic) return;
  for (const t of mic.stream.getTracks()) t.stop();
  mic.context.close();
  mic = null;
  setVad("off", "mic off");
}

$("mic").addEventListener("click", async () => {
  const btn = $("mic");
  if (mic) {
    stopMic();
    btn.setAttribute("aria-pressed", "false");
    return;
  }
  btn.disabled = true;
  try {
    await startMic();
    btn.setAttribute("aria-pressed", "true");
  } catch (e) {
    showError("microphone: " + (e.message ?? e));
  } finally {
    btn.disabled = false;
  }
});

// --- typed input, stop, settings ------------------------------------------------------------

$("ask").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  if (!started || !send({ type: "input.text", text })) {
    showError("not connected yet");
    return;
  }
  $("text").value = "";
  add("user", text);
  if (video.paused) video.play().catch(() => {}); // inside the click: lets the sound play
});

$("stop").addEventListener("click", () => send({ type: "response.cancel" }));

$("key").value = localStorage.getItem("talkserve.api_key") ?? "";
$("key").addEventListener("change", () => {
  localStorage.setItem("talkserve.api_key", apiKey());
  demo.sessionId = null;
  loadAvatar();
  if (ws) ws.close(1000, "new key");
  connect();
});

loadAvatar();
connect();
