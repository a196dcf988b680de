// journeygraph web page: plain JS, no build step, no external requests.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const kid of kids) node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return node;
};
const SVG = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs = {}, text) => {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
};
const fmtP = (x) => (typeof x !== "number" ? String(x) : x === 0 ? "0" : x < 0.001 ? x.toExponential(1) : fmt(x, 4));
const asPct = (x) => (100 * x).toFixed(1) + "%";
const asPts = (x) => (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + " pts";
const fmt = (x, d = 3) => (typeof x === "number" ? (Math.round(x * 10 ** d) / 10 ** d).toString() : String(x));

// `serve --token`: the token comes from the address (#token=…, dropped from it at once) or is asked
// for on the first 401, and is kept for this tab only (sessionStorage); every API call sends it.
const TOKEN_KEY = "journeygraph-token";
(() => {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

async function api(path, options = {}, busyRetries = 8) {
  const sent = sessionStorage.getItem(TOKEN_KEY);
  const headers = new Headers(options.headers || {});
  if (sent) headers.set("authorization", "Bearer " + sent);
  const res = await fetch(path, { ...options, headers });
  if (res.status === 503 && busyRetries > 0) {  // a run is writing the workspace: wait as the server asks, then retry
    const wait = Math.min(30, Number(res.headers.get("retry-after")) || 1);
    await new Promise((done) => setTimeout(done, wait * 1000));
    return api(path, options, busyRetries - 1);
  }
  if (res.status === 401) {
    // another call may have been given the token meanwhile; otherwise ask once
    const now = sessionStorage.getItem(TOKEN_KEY);
    const entered = now !== sent ? now : window.prompt("This journeygraph server needs its access token (serve --token):");
    if (entered && entered.trim() && entered.trim() !== sent) {
      sessionStorage.setItem(TOKEN_KEY, entered.trim());
      return api(path, options);
    }
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

// --- feed -----------------------------------------------------------------------------------
let feedItems = [];

// An empty feed says why (GET /api/status): what was measured, the sample floors, the power.
async function explainEmpty(list) {
  let status;
  try { status = await api("/api/status"); } catch (err) { return; }
  for (const line of status.lines || []) list.append(el("li", { class: "why-empty" }, line));
}

async function loadFeed() {
  const params = new URLSearchParams();
  const type = $("#f-type").value, seg = $("#f-segment").value.trim(), score = $("#f-score").value;
  if (type) params.set("type", type);
  if (seg) params.set("segment", seg.replace(/^segment:/, ""));
  if (score) params.set("min_score", score);
  const list = $("#feed");
  try { feedItems = await api("/api/feed?" + params.toString()); } catch (err) {
    feedItems = [];
    list.replaceChildren(el("li", { class: "bad" }, err.message));  // e.g. an unknown segment, with the known ones
    return;
  }
  list.replaceChildren();
  if (!feedItems.length) {
    const filtered = Boolean(type || seg || score);
    list.append(el("li", {}, filtered ? "No insights match." : "No insights yet."));
    if (!filtered) await explainEmpty(list);
  }
  for (const item of feedItems) {
    const f = item.finding;
    const first = (item.narrative && item.narrative.sentences && item.narrative.sentences[0]) ? item.narrative.sentences[0].text : "";
    const btn = el("button", { class: "item", type: "button", "data-insight": item.insight_id,
                               onclick: () => openInsight(item.insight_id) },
      el("span", { class: "rank" }, "#" + item.rank),
      el("strong", {}, titleFor(f)),
      el("span", { class: "label " + f.confidence_label }, f.confidence_label),
      el("span", { class: "summary" }, first),
      el("span", { class: "summary measure" }, item.labels ? item.labels.measure : ""),
      el("span", { class: "summary" }, `score ${fmt(item.score)} · n ${item.labels ? item.labels.n : f.n} · q ${fmtP(f.q_value)}`));
    list.append(el("li", { id: "item-" + item.insight_id }, btn));
  }
}

// Entity ids as words. Edge and path ids percent-encode their names' own "%" and ">" (ontology/names.py),
// so every ">" separates; invisible characters are shown as \uXXXX so look-alike names stay apart.
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;
const visible = (p) => p.replace(INVISIBLE, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
const decoded = (p) => visible(p.replace(/%(25|3E)/g, (_, c) => (c === "25" ? "%" : ">")));
function entityWords(s) {
  const m = /^([a-z]+):([\s\S]*)$/.exec(s || "");
  if (!m) return visible(s || "");
  const [, kind, rest] = m, cut = rest.indexOf(">");
  if (kind === "edge" && cut >= 0) return decoded(rest.slice(0, cut).replace(/-$/, "")) + " → " + decoded(rest.slice(cut + 1));
  if (kind === "path") return rest.split(">").map(decoded).join(" → ");
  return visible(rest);
}

function titleFor(f) {
  const name = entityWords;
  const seg = f.segment ? ` [${name(f.segment)}]` : "";
  const rel = f.release ? ` after ${name(f.release)}` : "";
  return `${f.type.replaceAll("_", " ")}: ${name(f.subject)}${seg}${rel}`;
}

async function fillTypes() {
  const all = await api("/api/feed?limit=500");
  const types = [...new Set(all.map((i) => i.finding.type))].sort();
  for (const t of types) $("#f-type").append(el("option", { value: t }, t));
}

// --- insight + trace -------------------------------------------------------------------------
let current = null;
let opening = 0;  // only the latest click renders (an older, slower answer must not overwrite it)

async function openInsight(id) {
  const token = ++opening;
  document.querySelectorAll("#feed li").forEach((li) => li.classList.toggle("active", li.id === "item-" + id));
  const data = await api("/api/insights/" + encodeURIComponent(id));
  if (token !== opening) return;
  current = data;
  const item = data.feed_item || {};
  const f = item.finding || {};
  $("#insight").hidden = false;
  $("#insight-title").textContent = titleFor(f);
  $("#insight-meta").textContent = `confidence ${f.confidence_label} (${fmt(f.confidence)}) · p ${fmtP(f.p_value)} · q ${fmtP(f.q_value)} · narrated by ${data.narrative ? data.narrative.backend : "?"}`;
  const narrative = $("#narrative");
  narrative.replaceChildren();
  const facts = await factsFor(data);
  if (token !== opening) return;
  const para = el("p");
  (data.narrative.sentences || []).forEach((s, i) => {
    const span = el("span", { class: "sentence", tabindex: "0", "data-facts": (s.fact_ids || []).join(" "),
                              "aria-label": `Sentence ${i + 1}, cites ${(s.fact_ids || []).length} fact(s)` }, s.text);
    const on = () => highlight(s.fact_ids || [], true), off = () => highlight(s.fact_ids || [], false);
    span.addEventListener("mouseenter", on); span.addEventListener("mouseleave", off);
    span.addEventListener("focus", on); span.addEventListener("blur", off);
    para.append(span, " ");
  });
  narrative.append(para);
  const box = el("div", { class: "facts" }, el("strong", {}, "Facts cited"));
  for (const fact of facts) {
    box.append(el("div", { class: "fact", id: "fact-" + fact.fact_id },
      el("code", {}, fact.fact_id.slice(0, 10)), " ",
      `${fact.subject} ${fact.predicate} ${fact.object} · confidence ${fmt(fact.confidence)}`));
  }
  narrative.append(box);
  $("#trace").hidden = true;
  $("#trace").replaceChildren();
}

async function factsFor(data) {
  const ids = [...new Set((data.narrative.sentences || []).flatMap((s) => s.fact_ids || []))];
  const bundleFacts = (data.bundle && data.bundle.facts) || [];
  const byId = Object.fromEntries(bundleFacts.map((f) => [f.fact_id, f]));
  return ids.map((id) => byId[id] || { fact_id: id, subject: "?", predicate: "?", object: "?", confidence: 0 });
}

function highlight(ids, on) {
  for (const id of ids) { const node = document.getElementById("fact-" + id); if (node) node.classList.toggle("hl", on); }
}

async function showTrace() {
  if (!current) return;
  const token = opening, shown = current;  // a trace that arrives after another insight was opened is dropped
  const box = $("#trace");
  box.hidden = false;
  box.replaceChildren(el("p", {}, "Tracing…"));
  let t;
  try {
    t = await api(`/api/insights/${encodeURIComponent(shown.insight_id)}/trace`);
  } catch (err) {
    if (token === opening && shown === current) box.replaceChildren(el("p", { class: "bad" }, "The trace failed: " + err.message));
    return;
  }
  if (token !== opening || shown !== current) return;
  box.replaceChildren();
  const rec = t.recomputation || {};
  box.append(el("p", {}, el("strong", {}, "Audit trace "),
    `${rec.matched} of ${rec.numbers} numbers in ${rec.facts} facts recompute from the stored derived events`));
  const byId = Object.fromEntries((t.facts || []).map((f) => [f.fact.fact_id, f]));
  for (const s of t.sentences || []) {
    box.append(el("p", {}, el("em", {}, s.text)));
    for (const id of s.fact_ids || []) {
      const entry = byId[id];
      if (!entry) continue;
      const fact = entry.fact;
      const table = el("table", {}, el("tr", {}, el("th", {}, "evidence"), el("th", {}, "stored"), el("th", {}, "recomputed"), el("th", {}, "")));
      for (const r of (entry.recompute && entry.recompute.entries) || []) {
        if (!r.number) continue;
        table.append(el("tr", {}, el("td", {}, r.key), el("td", {}, fmt(r.stored, 6)), el("td", {}, fmt(r.recomputed, 6)),
          el("td", { class: r.match ? "ok" : "bad" }, r.match ? "match" : "MISMATCH")));
      }
      const snap = entry.snapshot || {};
      box.append(el("div", { class: "fact" }, el("code", {}, fact.fact_id.slice(0, 10)),
        ` ${entry.summary || fact.subject + " " + fact.predicate + " " + fact.object}`,
        el("div", { class: "meta" }, `snapshot ${String(snap.snapshot_id || "").slice(0, 10)} · ${snap.scope || ""} · ${snap.journeys || "?"} journeys`),
        table,
        el("div", { class: "meta" }, "sample events: " + (entry.events || []).map((e) => `${e.event_id} (${e.event_name})`).join(", "))));
    }
  }
}

// --- ask -------------------------------------------------------------------------------------
async function ask(ev) {
  ev.preventDefault();
  const q = $("#ask-input").value.trim();
  if (!q) return;
  const out = $("#answer");
  out.replaceChildren(el("p", {}, "Thinking over the facts…"));
  try {
    const a = await api("/api/ask", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ question: q }) });
    out.replaceChildren(el("p", { class: "answer-text" }, a.answer));
    const list = el("ul", { class: "facts" });
    for (const f of a.facts || []) list.append(el("li", {}, el("code", {}, f.fact_id.slice(0, 10)), " ", f.summary || `${f.subject} ${f.predicate} ${f.object}`));
    out.append(list);
  } catch (err) { out.replaceChildren(el("p", { class: "bad" }, err.message)); }
}

// --- journey graph and charts ----------------------------------------------------------------
async function loadGraph() {
  let snap;
  try { snap = await api("/api/graph"); } catch (err) { $("#graph").textContent = err.message; return; }
  $("#graph-meta").textContent = `${snap.journey} · ${snap.journeys} journeys · ${snap.censored} censored`;
  drawGraph(snap);
  const conv = snap.conversion_outcome || Object.keys(snap.states[0] ? snap.states[0].absorption : {})[0];
  $("#cap-b").textContent = `Chance of ending in "${conv}" from each step`;
  $("#cap-r").textContent = `How much ending in "${conv}" depends on each step (removal effect: points lost without the step)`;
  bars("#chart-b", snap.states.map((s) => [s.state, s.absorption[conv] || 0]), asPct);
  bars("#chart-r", snap.states.map((s) => [s.state, (s.removal_effect || {})[conv] || 0]), asPts);
  loadIntervals(snap, conv);
}

// Bootstrap intervals cost a few hundred ms on the server, so the plain chart comes first and
// is replaced by a forest plot (estimate, 95% interval, zero line) when they arrive.
async function loadIntervals(snap, conv) {
  let full;
  try { full = await api(`/api/snapshots/${encodeURIComponent(snap.snapshot_id)}?intervals=200`); } catch (err) { return; }
  const block = full.intervals;
  if (!block || !block.states) return;
  const byState = Object.fromEntries(block.states.map((s) => [s.state, s]));
  const rows = snap.states.filter((s) => (s.removal_effect || {})[conv] != null).map((s) => {
    const ci = ((byState[s.state] || {}).removal_effect || {})[conv];
    return [s.state, s.removal_effect[conv], ci ? ci[0] : null, ci ? ci[1] : null];
  });
  forest("#chart-r", rows);
  $("#chart-r").append(el("p", { class: "meta" },
    `Lines: ${Math.round(block.level * 100)}% bootstrap intervals, ${block.replicates} replicates (first-order chain).`));
}

function forest(sel, rows, show = asPts) {
  rows.sort((a, b) => b[1] - a[1]);
  const vals = rows.flatMap((r) => r.slice(1).filter((v) => v != null)).concat([0]);
  const lo = Math.min(...vals), hi = Math.max(...vals), span = hi - lo || 1;
  const W = 360, rowH = 18, H = rows.length * rowH + 10, x = (v) => 126 + ((v - lo) / span) * (W - 190);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
  svg.append(svgEl("line", { x1: x(0), y1: 0, x2: x(0), y2: H, stroke: "#99a", "stroke-dasharray": "3 3" }));
  rows.forEach(([name, v, low, high], i) => {
    const y = 5 + i * rowH + 8;
    svg.append(svgEl("text", { x: 120, y: y + 4, "text-anchor": "end" }, name.length > 18 ? name.slice(0, 17) + "…" : name));
    if (low != null && high != null) {
      const line = svgEl("line", { class: "interval", x1: x(low), y1: y, x2: x(high), y2: y, stroke: "#2457c5", "stroke-width": 2 });
      line.append(svgEl("title", {}, `${show(low)} to ${show(high)}`));
      svg.append(line);
    }
    svg.append(svgEl("circle", { cx: x(v), cy: y, r: 3.5, fill: v < 0 ? "#c55" : "#1c2b8f" }));
    svg.append(svgEl("text", { x: Math.max(x(v), high != null ? x(high) : x(v)) + 6, y: y + 4 }, show(v)));
  });
  $(sel).replaceChildren(svg);
}

// The layout (boxes, edge paths, label spots) comes from the server (engine/app/render/layout.py), the same
// one the HTML feed draws; minor edges' labels show on hover (graph.css), every edge has a tooltip.
function drawGraph(snap) {
  const g = snap.layout;
  const svg = svgEl("svg", { class: "journey-graph", viewBox: `0 0 ${g.width} ${g.height}`, width: "100%",
                             style: `max-width:${g.width}px;height:auto`, role: "img", "aria-label": "Journey graph with the share of moves on each edge" });
  const marker = svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "8", markerHeight: "8",
                                   markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
  marker.append(svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: "#556" }));
  const defs = svgEl("defs");
  defs.append(marker);
  svg.append(defs);
  for (const e of g.edges) {
    const group = svgEl("g", { class: `edge ${e.kind}${e.label.shown ? "" : " minor"}` });
    group.append(svgEl("title", {}, `${e.from} → ${e.to}: ${e.label.text} of the moves out of ${e.from} (${e.count.toLocaleString("en")} moves)`));
    group.append(svgEl("path", { d: e.d, class: "line", "stroke-width": e.stroke, "marker-end": "url(#arrow)" }));
    group.append(svgEl("path", { d: e.d, class: "hit" }));
    group.append(svgEl("text", { x: e.label.x, y: e.label.y + 4, class: "label" }, e.label.text));
    svg.append(group);
  }
  for (const n of g.nodes) {
    const group = svgEl("g", { class: `node ${n.kind}` });
    group.append(svgEl("title", {}, n.name));
    group.append(svgEl("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: n.kind === "converted" || n.kind === "lost" ? 16 : 6 }));
    group.append(svgEl("text", { x: n.x + n.w / 2, y: n.y + n.h / 2 + 4.5 }, n.text));
    svg.append(group);
  }
  $("#graph").replaceChildren(svg);
  $("#graph-caption").textContent = g.caption;
}

// --- detection power -------------------------------------------------------------------------
// What the data could have shown per release and for the latest period (GET /api/power), so that
// "no regression" in the feed has a stated meaning: each edge's n and the smallest detectable change.
async function loadPower() {
  const box = $("#power");
  let power;
  try { power = await api("/api/power"); } catch (err) { box.replaceChildren(el("p", { class: "bad" }, err.message)); return; }
  box.replaceChildren();
  for (const c of power.comparisons) {
    box.append(el("p", { class: "power-head" }, c.headline));
    const table = el("table", {}, el("tr", {}, ...["busiest edges", "n before", "n after", "detectable change", "status"].map((h) => el("th", {}, h))));
    for (const r of c.busiest) {
      table.append(el("tr", {}, el("td", {}, visible(r.edge_words)), el("td", {}, r.n_before.toLocaleString("en")),
        el("td", {}, r.n_after.toLocaleString("en")), el("td", {}, r.detectable_words), el("td", {}, r.status_words)));
    }
    box.append(table);
  }
  box.append(el("p", { class: "meta" }, power.note));
}

function bars(sel, rows, show = (v) => fmt(v, 3)) {
  rows.sort((a, b) => b[1] - a[1]);
  const W = 360, rowH = 18, H = rows.length * rowH + 10, max = Math.max(0.0001, ...rows.map((r) => Math.abs(r[1])));
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
  rows.forEach(([name, v], i) => {
    const y = 5 + i * rowH, w = (Math.abs(v) / max) * (W - 200);
    svg.append(svgEl("text", { x: 120, y: y + 12, "text-anchor": "end" }, name.length > 18 ? name.slice(0, 17) + "…" : name));
    svg.append(svgEl("rect", { x: 126, y: y + 2, width: Math.max(1, w), height: rowH - 5, fill: v < 0 ? "#c55" : "#2457c5" }));
    svg.append(svgEl("text", { x: 130 + w, y: y + 12 }, show(v)));
  });
  $(sel).replaceChildren(svg);
}

// --- wiring ----------------------------------------------------------------------------------
$("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadFeed(); });
$("#ask-form").addEventListener("submit", ask);
$("#trace-btn").addEventListener("click", showTrace);
(async () => {
  await Promise.all([fillTypes(), loadFeed(), loadGraph(), loadPower()]);
  // open the top item only if the reader has not opened one while the page was loading
  if (feedItems.length && opening === 0) openInsight(feedItems[0].insight_id);
})();
