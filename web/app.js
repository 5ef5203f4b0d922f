// The demo page: a chat over POST /v1/chat/completions with stream: true, reading the
// server-sent events as they arrive. No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const history = [];
let controller = null;

function add(cls, text) {
  const el = document.createElement("div");
  el.className = "msg " + cls;
  el.textContent = text;
  $("log").appendChild(el);
  el.scrollIntoView({ block: "end" });
  return el;
}

async function checkReady() {
  try {
    const r = await fetch("/readyz");
    $("status").textContent = r.ok ? "ready" : "loading models…";
    if (!r.ok) setTimeout(checkReady, 1000);
  } catch {
    $("status").textContent = "server unreachable";
    setTimeout(checkReady, 2000);
  }
}

// Yields the JSON payloads of an SSE body ("data: {...}\n\n" ... "data: [DONE]").
async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

async function send(text) {
  history.push({ role: "user", content: text });
  add("user", text);
  const out = add("assistant", "");
  const headers = { "Content-Type": "application/json" };
  if ($("key").value) headers.Authorization = "Bearer " + $("key").value;
  controller = new AbortController();
  $("stop").disabled = false;
  $("send").disabled = true;
  const started = performance.now();
  let first = null;
  let usage = null;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers,
      signal: controller.signal,
      body: JSON.stringify({
        messages: history,
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: Number($("max").value),
        temperature: Number($("temp").value),
      }),
    });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      throw new Error(`${res.status}: ${err.error?.message ?? res.statusText}`);
    }
    for await (const chunk of sseEvents(res.body)) {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices?.[0]?.delta?.content;
      if (delta) {
        if (first === null) first = performance.now();
        out.textContent += delta;
      }
    }
    history.push({ role: "assistant", content: out.textContent });
    const meta = document.createElement("div");
    meta.className = "meta";
    const ttft = first === null ? "-" : Math.round(first - started) + " ms";
    meta.textContent = `first token ${ttft}` + (usage ? `, ${usage.completion_tokens} tokens` : "");
    out.appendChild(meta);
  } catch (e) {
    if (e.name !== "AbortError") add("error", String(e.message ?? e));
    history.pop();
  } finally {
    controller = null;
    $("stop").disabled = true;
    $("send").disabled = false;
  }
}

$("ask").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text || controller) return;
  $("text").value = "";
  send(text);
});
$("stop").addEventListener("click", () => controller?.abort());
checkReady();
