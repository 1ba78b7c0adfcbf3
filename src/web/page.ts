/**
 * The console's one page, as strings served from memory (no build step): plain HTML and CSS, and a script that
 * polls the JSON API. Four views behind tabs (`#nodes`, `#cameras`, `#recordings`, `#timeline`); every update
 * replaces text with `textContent`, never HTML, since sensor and node names come off the bus.
 * @module
 */

/** The page. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>msight-edge console</title>
<style>
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --muted: #6e7781; --rec: #2f81f7; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; }
header { display: flex; gap: 1rem; align-items: center; padding: .5rem 1rem; border-bottom: 1px solid #8884; }
header h1 { font-size: 1rem; margin: 0; }
nav a { margin-right: .75rem; text-decoration: none; padding: .25rem .5rem; border-radius: 4px; }
nav a[aria-current="page"] { background: #8883; font-weight: 600; }
main { padding: 1rem; }
section[hidden] { display: none; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: .25rem .4rem; border-bottom: 1px solid #8883; vertical-align: top; }
td { white-space: nowrap; }
.status-RUNNING { color: var(--ok); font-weight: 600; }
.status-STOPPED, .status-ERROR { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
.cams { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1rem; }
.cams figure { margin: 0; }
.cams img { width: 100%; aspect-ratio: 4/3; object-fit: contain; background: #0002; }
.cams figure[data-stale="true"] img { opacity: .4; }
.cams figure[data-stale="true"] figcaption { color: var(--bad); }
.rec { display: grid; grid-template-columns: minmax(260px, 1fr) 2fr; gap: 1rem; }
.rec ul { list-style: none; padding: 0; margin: 0; max-height: 70vh; overflow: auto; }
.rec li button { width: 100%; text-align: left; }
.rec h3 { font-size: .9rem; margin: .5rem 0 .25rem; }
video { width: 100%; max-height: 50vh; background: #000; }
pre { max-height: 30vh; overflow: auto; background: #8881; padding: .5rem; font-size: 12px; }
.bar { position: relative; height: 28px; background: #8882; margin: .25rem 0 1rem; }
.bar .span { position: absolute; top: 0; bottom: 0; background: var(--rec); min-width: 2px; cursor: pointer; border: 0; padding: 0; }
.bar .gap { position: absolute; top: 0; bottom: 0; background: repeating-linear-gradient(45deg, #cf222e55 0 4px, transparent 4px 8px); }
.notice { color: var(--bad); }
</style>
</head>
<body>
<header><h1>msight-edge console</h1>
<nav aria-label="views">
<a href="#nodes" data-view="nodes">Nodes</a><a href="#cameras" data-view="cameras">Cameras</a><a href="#recordings" data-view="recordings">Recordings</a><a href="#timeline" data-view="timeline">Timeline</a>
</nav><span id="clock" class="muted"></span></header>
<main>
<section id="view-nodes" aria-labelledby="h-nodes"><h2 id="h-nodes">Nodes</h2>
<table><thead><tr><th>Node</th><th>Type</th><th>Device</th><th>Status</th><th>Heartbeat</th><th>Topics (in → out)</th><th>In f/s</th><th>Out f/s</th><th>Segments</th><th>Dropped</th><th>Malformed</th><th>Outbox</th><th>Reconnects</th></tr></thead>
<tbody id="nodes"></tbody></table><p id="nodes-note" class="muted"></p></section>
<section id="view-cameras" aria-labelledby="h-cameras" hidden><h2 id="h-cameras">Cameras</h2>
<div id="cams" class="cams"></div><p id="cams-note" class="muted"></p></section>
<section id="view-recordings" aria-labelledby="h-rec" hidden><h2 id="h-rec">Recordings</h2>
<div class="rec"><div><p id="rec-note" class="muted"></p><ul id="rec-list"></ul></div>
<div><h3 id="player-title">Choose a segment</h3><p id="player-notice" class="notice" role="status"></p>
<video id="player" controls muted playsinline preload="metadata"></video>
<p><a id="download" hidden>Download the .mp4</a></p><pre id="meta" aria-label="segment metadata"></pre></div></div></section>
<section id="view-timeline" aria-labelledby="h-tl" hidden><h2 id="h-tl">Timeline</h2>
<label>Window <select id="tl-window"><option value="600">10 min</option><option value="3600">1 h</option><option value="21600">6 h</option><option value="86400" selected>24 h</option></select></label>
<p class="muted">Blue: recorded; hatched red: a gap (nothing recorded: an outage). Click a span to play it.</p>
<div id="timeline"></div></section>
</main>
<script src="/app.js"></script>
</body>
</html>
`;

/** The page's script. */
export const APP_JS = `"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => { const e = document.createElement(tag); Object.assign(e, props); e.append(...kids); return e; };
const fmtTime = (s) => new Date(s * 1000).toISOString().replace("T", " ").replace(/\\.\\d+Z$/, "Z");
const num = (v, d = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
const getJson = async (path) => { const r = await fetch(path, { cache: "no-store" }); if (!r.ok) throw new Error(path + ": HTTP " + r.status + ": " + (await r.text()).trim()); return r.json(); };
let config = { previewFps: 2 };
let view = "nodes";

function show() {
  view = (location.hash || "#nodes").slice(1);
  if (!["nodes", "cameras", "recordings", "timeline"].includes(view)) view = "nodes";
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "view-" + view;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (view === "recordings") refreshRecordings();
  if (view === "timeline") refreshTimeline();
}

async function refreshNodes() {
  let rows;
  try {
    rows = await getJson("/api/nodes");
  } catch (err) {
    $("nodes-note").textContent = err.message; // the registry away (503): say so where the rows would be
    throw err;
  }
  const body = $("nodes");
  body.replaceChildren(...rows.map((n) => {
    const f = n.figures;
    const dropped = f ? Object.entries(f.dropped).map(([k, v]) => k + ": " + v).join(", ") || "0" : "–";
    const tr = el("tr", {},
      el("td", { textContent: n.name }), el("td", { textContent: n.type }), el("td", { textContent: n.device }),
      el("td", { textContent: n.status, className: "status-" + n.status }),
      el("td", { textContent: num(n.heartbeatAgeS) + " s ago" }),
      el("td", { textContent: (n.subscribeTopic ?? "–") + " → " + (n.publishTopic ?? "–") }),
      el("td", { textContent: f ? num(f.fpsIn) : "–" }), el("td", { textContent: f ? num(f.fpsOut) : "–" }),
      el("td", { textContent: f ? String(f.segments) : "–" }), el("td", { textContent: dropped }),
      el("td", { textContent: f ? String(f.malformed) : "–" }), el("td", { textContent: f ? num(f.outboxDepth, 0) : "–" }),
      el("td", { textContent: f ? num(f.reconnects, 0) : "–" }));
    tr.dataset.node = n.name;
    tr.dataset.status = n.status;
    if (f && f.error) tr.title = f.error;
    return tr;
  }));
  $("nodes-note").textContent = rows.length + " node(s) in MSIGHT:NODES. Figures come from each node's /metrics where the console knows its address (--metrics-urls).";
}

const camEls = new Map();
async function refreshCameras() {
  if (view !== "cameras") return; // nobody looks: ask for nothing
  const cams = await getJson("/api/cameras");
  $("cams-note").textContent = cams.length ? "" : "No camera frames on the bus yet (ImageData topics of MSIGHT:TOPICS).";
  for (const c of cams) {
    const key = c.topic + "\\u0000" + c.sensor;
    let e = camEls.get(key);
    if (!e) {
      const img = el("img", { alt: "latest frame of " + c.sensor + " on " + c.topic });
      const cap = el("figcaption");
      const fig = el("figure", {}, img, cap);
      fig.dataset.sensor = c.sensor;
      fig.dataset.topic = c.topic;
      $("cams").append(fig);
      e = { img, cap, fig, frameId: "" };
      camEls.set(key, e);
    }
    if (e.frameId !== c.frameId) {
      e.frameId = c.frameId;
      e.img.src = "/api/preview?" + new URLSearchParams({ topic: c.topic, sensor: c.sensor, f: c.frameId });
      e.fig.dataset.frameId = c.frameId;
    }
    const age = Date.now() / 1000 - c.captureTimestamp;
    e.fig.dataset.stale = String(age > 5);
    e.cap.textContent = c.sensor + " (" + c.topic + ", " + c.device + "): " + fmtTime(c.captureTimestamp) + ", " +
      num(c.fps) + " fps, " + c.width + "×" + c.height + (c.encoded ? " JPEG" : " raw") +
      (age > 5 ? " — no new frame for " + num(age, 0) + " s" : "");
  }
}

let recordings = [];
async function refreshRecordings() {
  const r = await getJson("/api/recordings");
  recordings = r.segments;
  if (config.saveDirs === 0 && !config.s3) { $("rec-note").textContent = "No --save-dir or --s3-bucket given: nothing to browse."; return; }
  $("rec-note").textContent = r.total + " segment(s)" + (r.total > r.segments.length ? ", newest " + r.segments.length + " listed" : "") +
    (r.s3Error ? ". " + r.s3Error : config.s3 ? " (with " + config.s3 + ")" : "");
  const list = $("rec-list");
  const items = [];
  let group = "";
  // Newest hour first, and within it one group per sensor (and per source): the list from the API is by time only,
  // so several cameras' segments interleave there.
  const hour = (s) => Math.floor(s.start / 3600);
  const shown = [...recordings].sort((a, b) =>
    hour(b) - hour(a) || a.sensor.localeCompare(b.sensor) || (a.dir < 0) - (b.dir < 0) || b.start - a.start);
  for (const s of shown) {
    const g = s.sensor + " · " + fmtTime(s.start).slice(0, 13) + ":00Z" + (s.dir < 0 ? " · S3" : "");
    if (g !== group) { group = g; items.push(el("li", {}, el("h3", { textContent: g }))); }
    const label = fmtTime(s.start).slice(11) + " · " + num(s.end - s.start) + " s · " + (s.codec ?? "?") + " · " + Math.round(s.bytes / 1024) + " KiB";
    const b = el("button", { type: "button", textContent: label });
    b.dataset.id = s.id;
    b.addEventListener("click", () => play(s));
    items.push(el("li", {}, b));
  }
  list.replaceChildren(...items);
}

async function play(s) {
  const v = $("player");
  $("player-title").textContent = s.sensor + " · " + fmtTime(s.start);
  const hevc = s.codec === "hevc" || s.codec === "h265";
  const canHevc = v.canPlayType('video/mp4; codecs="hvc1"') !== "";
  $("player-notice").textContent = hevc && !canHevc
    ? "This segment is HEVC (H.265): this browser cannot play it. Download it to watch it in a player that can." : "";
  v.dataset.id = s.id;
  v.src = s.video;
  v.play().catch(() => {}); // refused or interrupted: the "error" listener below tells the user what failed
  const a = $("download");
  a.href = s.video + "?download";
  a.hidden = false;
  $("meta").textContent = s.meta ? await (await fetch(s.meta)).text() : "(no .json beside this segment)";
}
$("player").addEventListener("error", () => {
  const e = $("player").error;
  if (e && !$("player-notice").textContent) $("player-notice").textContent = "The browser cannot play this segment (media error " + e.code + ").";
});

async function refreshTimeline() {
  const t = await getJson("/api/timeline?window=" + $("tl-window").value);
  const w = t.to - t.from;
  const pct = (x) => (100 * (x - t.from) / w).toFixed(4) + "%";
  const rows = t.rows.map((r) => {
    const bar = el("div", { className: "bar" });
    bar.dataset.sensor = r.sensor;
    for (const g of r.gaps) {
      const d = el("div", { className: "gap", title: "gap " + fmtTime(g.start) + " – " + fmtTime(g.end) + " (" + num(g.end - g.start) + " s)" });
      d.style.left = pct(g.start); d.style.width = pct(t.from + g.end - g.start);
      d.dataset.start = g.start; d.dataset.end = g.end;
      bar.append(d);
    }
    for (const s of r.spans) {
      const b = el("button", { type: "button", className: "span", title: "recorded " + fmtTime(s.start) + " – " + fmtTime(s.end) + " (" + s.segments.length + " segments)" });
      b.style.left = pct(Math.max(s.start, t.from)); b.style.width = pct(t.from + s.end - Math.max(s.start, t.from));
      b.dataset.start = s.start; b.dataset.end = s.end;
      b.addEventListener("click", async (ev) => {
        const rect = b.getBoundingClientRect();
        const at = s.start + (s.end - s.start) * (ev.clientX - rect.left) / Math.max(1, rect.width);
        const seg = s.segments.reduce((best, x) => (Math.abs(x.start - at) < Math.abs(best.start - at) && x.start <= at ? x : best), s.segments[0]);
        location.hash = "#recordings";
        let full = recordings.find((x) => x.id === seg.id);
        if (!full) await refreshRecordings(), (full = recordings.find((x) => x.id === seg.id));
        if (full) play(full);
      });
      bar.append(b);
    }
    return el("div", {}, el("h3", { textContent: r.sensor + " — " + r.spans.length + " span(s), " + r.gaps.length + " gap(s)" }), bar);
  });
  $("timeline").replaceChildren(...(rows.length ? rows : [el("p", { className: "muted", textContent: "No recordings in this window." })]));
}
$("tl-window").addEventListener("change", () => refreshTimeline());

function every(ms, fn) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await fn(); } catch (err) { console.warn(err.message); } finally { busy = false; }
  };
  tick();
  return setInterval(tick, ms);
}

(async () => {
  try { config = await getJson("/api/config"); } catch (err) { console.warn(err.message); }
  addEventListener("hashchange", show);
  show();
  every(1000, refreshNodes);
  every(1000 / config.previewFps, refreshCameras);
  every(5000, async () => { if (view === "recordings" || view === "timeline") await refreshRecordings(); });
  every(5000, async () => { if (view === "timeline") await refreshTimeline(); });
  every(1000, async () => { $("clock").textContent = fmtTime(Date.now() / 1000); });
})();
`;
