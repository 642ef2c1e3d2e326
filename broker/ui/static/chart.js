// A step-line price chart in plain SVG: one line per series, a dot per returned point, shaded polling gaps,
// a crosshair tooltip and a legend that hides/shows series. No dependencies.
//
// A point {t, value} is the aggregate over the step [t, t + step): the line holds its value for the whole step
// (prices hold until they change) and breaks where points are missing or null, so gaps are never bridged.

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2563eb", "#ea580c", "#059669", "#db2777", "#7c3aed", "#ca8a04", "#0891b2", "#dc2626",
  "#4d7c0f", "#64748b", "#9333ea", "#0f766e"];
const HOUR = 3600e3;
const DAY = 24 * HOUR;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function el(tag, attrs = {}, parent = null, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

export function fmtUsd(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  return "$" + v.toFixed(v >= 10 ? 2 : 3);
}

const pad2 = (n) => String(n).padStart(2, "0");
export function fmtTime(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
}

export function seriesLabel(key) {
  return Object.values(key || {}).filter((v) => v !== null && v !== "").join(" · ") || "all";
}

// Distinct colours within one chart, stable across charts where possible (the name's hash picks first).
export function assignColours(labels) {
  const used = new Set();
  const out = new Map();
  for (const label of [...labels].sort()) {
    let h = 0;
    for (const c of label) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    let i = h % PALETTE.length;
    for (let n = 0; n < PALETTE.length && used.has(i); n++) i = (i + 1) % PALETTE.length;
    used.add(i);
    out.set(label, PALETTE[i]);
  }
  return out;
}

// Round axis bounds and ticks: steps of 1, 2, 2.5 or 5 times a power of ten.
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.05 || 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(Number(v.toFixed(10)));
  // cents at least, more only where the step needs them ($0.125 steps)
  const decimals = Math.max(2, Math.ceil(-Math.log10(step) - 1e-9) + (step / mag === 2.5 ? 1 : 0));
  return { lo: start, hi: end, ticks, decimals };
}

// UTC-aligned time ticks: hours, days, weeks (Mondays) or months, about `want` of them.
export function timeTicks(from, to, want = 7) {
  const span = to - from;
  const fixed = [HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY];
  const every = fixed.find((s) => span / s <= want);
  const ticks = [];
  if (every !== undefined) {
    // weeks start on Monday: the epoch was a Thursday, 3 days later is a Monday
    const offset = every >= 7 * DAY ? 4 * DAY : 0;
    for (let t = Math.ceil((from - offset) / every) * every + offset; t <= to; t += every) ticks.push(t);
    return { ticks, every };
  }
  const months = Math.max(1, Math.ceil(span / (30 * DAY) / want));
  const d = new Date(from);
  let y = d.getUTCFullYear();
  let m = d.getUTCMonth() + 1;
  for (;;) {
    const t = Date.UTC(y, m, 1);
    if (t > to) break;
    if (m % months === 0) ticks.push(t);
    m += 1;
    if (m === 12) { m = 0; y += 1; }
  }
  return { ticks, every: 30 * DAY };
}

function tickLabel(t, every) {
  const d = new Date(t);
  const day = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
  if (every >= 30 * DAY) return d.getUTCMonth() === 0 ? String(d.getUTCFullYear()) : MONTHS[d.getUTCMonth()];
  if (every >= DAY) return day;
  const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  return d.getUTCHours() === 0 && d.getUTCMinutes() === 0 ? day : hm;
}

const toMs = (t) => (typeof t === "number" ? (t < 1e11 ? t * 1000 : t) : Date.parse(t));
const toNum = (v) => (v === null || v === undefined || v === "" ? null : Number(v));

// API answer -> [{label, colour, points: [{t(ms), v}]}], points sorted by time.
export function prepareSeries(series) {
  const labelled = (series || []).map((s) => ({
    label: seriesLabel(s.key),
    points: (s.points || []).map((p) => ({ t: toMs(p.t), v: toNum(p.value) }))
      .filter((p) => Number.isFinite(p.t)).sort((a, b) => a.t - b.t),
  }));
  const colours = assignColours(labelled.map((s) => s.label));
  return labelled.map((s) => ({ ...s, colour: colours.get(s.label) }));
}

function valueAt(points, t, stepMs) {
  // the point whose step contains t (binary search on start times)
  let lo = 0;
  let hi = points.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].t <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (found < 0) return null;
  const p = points[found];
  return t < p.t + stepMs ? p.v : null;
}

/**
 * Draw the chart into `container` (replacing its content).
 * opts: {series (from prepareSeries), gaps (as the API gives them), from, to (ms), stepMs, unit (axis title),
 *        hidden: Set of labels not to draw}
 */
export function renderChart(container, opts) {
  const { series, gaps = [], from, to, stepMs, unit, hidden = new Set() } = opts;
  container.replaceChildren();
  const width = Math.max(320, container.clientWidth || 800);
  const height = 340;
  const m = { top: 14, right: 18, bottom: 30, left: 64 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;

  const shown = series.filter((s) => !hidden.has(s.label));
  const values = shown.flatMap((s) => s.points.map((p) => p.v)).filter((v) => v !== null && Number.isFinite(v));
  const y = niceTicks(values.length ? Math.min(...values) : 0, values.length ? Math.max(...values) : 1);
  const X = (t) => m.left + ((t - from) / (to - from)) * pw;
  const Y = (v) => m.top + (1 - (v - y.lo) / (y.hi - y.lo)) * ph;
  const clampX = (t) => X(Math.min(Math.max(t, from), to));

  const root = el("svg", {
    class: "chart-svg", width, height, viewBox: `0 0 ${width} ${height}`,
    "data-from": new Date(from).toISOString(), "data-to": new Date(to).toISOString(),
  }, container);
  el("title", {}, root, `Price history, ${unit}`);

  // polling gaps: shaded bands; withdrawn offers: a strip along the time axis in their provider's colour
  const gapLayer = el("g", { class: "gaps" }, root);
  const colourOf = new Map(series.map((s) => [s.label, s.colour]));
  for (const g of gaps) {
    const a = toMs(g.from);
    const b = toMs(g.to);
    if (!(b > from && a < to)) continue;
    const span = `from ${fmtTime(a)} to ${fmtTime(b)} UTC`;
    const x = clampX(a);
    const w = Math.max(2, clampX(b) - x);
    if (g.kind === "withdrawn") {
      const rect = el("rect", { class: "withdrawn", x, y: m.top + ph - 4, width: w, height: 4,
        fill: colourOf.get(g.provider) || "currentColor" }, gapLayer);
      el("title", {}, rect, `${g.provider} ${g.region} ${g.instance_type} (${g.purchase}) not offered ${span}`);
    } else {
      const rect = el("rect", { class: "gap", x, y: m.top, width: w, height: ph, "data-source": g.source }, gapLayer);
      el("title", {}, rect, `${g.source}: no poll ${span}; prices in this stretch are not known`);
    }
  }

  // axes and grid
  const grid = el("g", { class: "grid" }, root);
  for (const v of y.ticks) {
    el("line", { x1: m.left, x2: m.left + pw, y1: Y(v), y2: Y(v) }, grid);
    el("text", { class: "tick", x: m.left - 8, y: Y(v) + 4, "text-anchor": "end" }, grid, `$${v.toFixed(y.decimals)}`);
  }
  const tt = timeTicks(from, to, Math.max(3, Math.floor(pw / 110)));
  for (const t of tt.ticks) {
    el("line", { class: "vgrid", x1: X(t), x2: X(t), y1: m.top, y2: m.top + ph }, grid);
    el("text", { class: "tick", x: X(t), y: m.top + ph + 18, "text-anchor": "middle" }, grid, tickLabel(t, tt.every));
  }
  el("line", { class: "axis", x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph }, root);
  el("text", { class: "axis-title", x: 12, y: m.top + ph / 2, transform: `rotate(-90 12 ${m.top + ph / 2})`,
    "text-anchor": "middle" }, root, unit);

  // lines and dots
  const plot = el("g", { class: "series" }, root);
  for (const s of shown) {
    const g = el("g", { "data-series": s.label, "data-points": s.points.filter((p) => p.v !== null).length }, plot);
    let d = "";
    let end = null;
    for (const p of s.points) {
      if (p.v === null) { end = null; continue; }
      const stop = Math.min(p.t + stepMs, to);
      d += end !== null && p.t <= end + 1 ? `V${Y(p.v).toFixed(1)}` : `M${clampX(p.t).toFixed(1)},${Y(p.v).toFixed(1)}`;
      d += `H${clampX(stop).toFixed(1)}`;
      end = p.t + stepMs;
    }
    el("path", { class: "line", d, stroke: s.colour }, g);
    const dense = s.points.length > 120;
    for (const p of s.points) {
      if (p.v === null) continue;
      el("circle", {
        class: dense ? "dot dense" : "dot", cx: clampX(p.t).toFixed(1), cy: Y(p.v).toFixed(1), r: dense ? 1.6 : 2.8,
        fill: s.colour, "data-t": new Date(p.t).toISOString(), "data-value": p.v,
      }, g);
    }
  }

  // crosshair + tooltip
  const cross = el("line", { class: "crosshair", x1: 0, x2: 0, y1: m.top, y2: m.top + ph, visibility: "hidden" }, root);
  const tip = document.createElement("div");
  tip.className = "tooltip";
  tip.hidden = true;
  container.appendChild(tip);
  const hit = el("rect", { class: "hit", x: m.left, y: m.top, width: pw, height: ph }, root);
  hit.addEventListener("pointermove", (ev) => {
    const box = root.getBoundingClientRect();
    const px = ev.clientX - box.left;
    const t = from + ((px - m.left) / pw) * (to - from);
    const bucket = Math.floor((t - from) / stepMs) * stepMs + from;
    const rows = shown.map((s) => ({ s, v: valueAt(s.points, t, stepMs) }))
      .sort((a, b) => (a.v ?? Infinity) - (b.v ?? Infinity));
    cross.setAttribute("x1", px);
    cross.setAttribute("x2", px);
    cross.setAttribute("visibility", "visible");
    tip.replaceChildren();
    const head = document.createElement("div");
    head.className = "tip-time";
    head.textContent = `${fmtTime(bucket)} UTC`;
    tip.appendChild(head);
    for (const { s, v } of rows) {
      const row = document.createElement("div");
      row.className = "tip-row";
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = s.colour;
      const name = document.createElement("span");
      name.textContent = s.label;
      const val = document.createElement("span");
      val.className = "tip-val";
      val.textContent = v === null ? "no data" : fmtUsd(v);
      row.append(sw, name, val);
      tip.appendChild(row);
    }
    tip.hidden = false;
    const left = px + 14 + tip.offsetWidth > width ? px - 14 - tip.offsetWidth : px + 14;
    tip.style.left = `${left}px`;
    tip.style.top = `${m.top + 4}px`;
  });
  hit.addEventListener("pointerleave", () => {
    cross.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });
  return root;
}

/** Legend buttons: colour, name and latest value; clicking one calls onToggle(label). */
export function renderLegend(container, series, hidden, onToggle) {
  container.replaceChildren();
  const latest = (s) => [...s.points].reverse().find((p) => p.v !== null)?.v ?? null;
  for (const s of [...series].sort((a, b) => (latest(a) ?? Infinity) - (latest(b) ?? Infinity))) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = hidden.has(s.label) ? "legend-item off" : "legend-item";
    b.setAttribute("aria-pressed", String(!hidden.has(s.label)));
    b.dataset.series = s.label;
    b.title = hidden.has(s.label) ? "Show this line" : "Hide this line";
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = s.colour;
    const name = document.createElement("span");
    name.textContent = s.label;
    const val = document.createElement("span");
    val.className = "legend-val";
    val.textContent = fmtUsd(latest(s));
    b.append(sw, name, val);
    b.addEventListener("click", () => onToggle(s.label));
    container.appendChild(b);
  }
}
