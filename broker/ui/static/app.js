// The dashboard: reads GET /v1/offers (cheapest now), GET /v1/prices/history (chart) and GET /v1/providers
// (source health), refreshes them every two minutes, and keeps the chart's choices in the URL fragment so a view can
// be bookmarked or shared.
import { fmtTime, fmtUsd, prepareSeries, renderChart, renderLegend } from "./chart.js";

const REFRESH_MS = 120e3; // sources poll every 10 minutes or slower
const PAGE = 1000; // the offers endpoint's largest page
const MAX_PAGES = 50;
const DAY = 864e5;
// range -> [span, step]: a few hundred points at most, so every step stays visible
const RANGES = {
  "24h": [DAY, "15m"], "7d": [7 * DAY, "1h"], "30d": [30 * DAY, "6h"], "90d": [90 * DAY, "1d"],
  "365d": [365 * DAY, "1d"],
};
const STEP_MS = { "15m": 15 * 60e3, "1h": 3600e3, "6h": 6 * 3600e3, "1d": DAY };
const COMMITTED = new Set(["reserved", "savings_plan", "committed_use", "contract"]);
const UNIT_LABEL = { gpu_hour: "USD per GPU-hour", instance_hour: "USD per instance-hour" };

const $ = (sel) => document.querySelector(sel);
const state = { rows: [], history: null, hidden: new Set(), seq: 0, sort: { key: "gpu", dir: 1 }, timer: null };

// --- helpers -------------------------------------------------------------------------------------------------

class ApiError extends Error {}
class AuthError extends ApiError {}

const KEY_STORE = "broker.dashboard.apiKey";
const storedKey = () => { try { return localStorage.getItem(KEY_STORE); } catch { return null; } };

async function getJSON(path) {
  const headers = { Accept: "application/json" };
  const key = storedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const res = await fetch(path, { headers });
  let body = null;
  try { body = await res.json(); } catch { /* not JSON: reported below */ }
  if (!res.ok) {
    // RFC 9457 problem details: say what the broker said
    const detail = body && (body.detail || body.title);
    const text = `${path.split("?")[0]} answered ${res.status}${detail ? `: ${detail}` : ""}`;
    throw res.status === 401 || res.status === 403 ? new AuthError(text) : new ApiError(text);
  }
  return body;
}

function askForKey(err) {
  const form = $("#key-form");
  const had = storedKey();
  $("#key-why").firstChild.textContent = had
    ? `The broker refused the stored key (${err.message}). Paste a key with the `
    : "This broker needs an API key. Paste a key with the ";
  form.hidden = false;
}

function ago(iso) {
  if (!iso) return "–";
  return age((Date.now() - Date.parse(iso)) / 1000) + " ago";
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 2 * 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function cell(tr, text, cls = "", title = "") {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (title) td.title = title;
  if (text instanceof Node) td.appendChild(text); else td.textContent = text;
  tr.appendChild(td);
  return td;
}

function emptyRow(tbody, cols, text, cls = "empty") {
  const tr = document.createElement("tr");
  const td = cell(tr, text, cls);
  td.colSpan = cols;
  tbody.replaceChildren(tr);
}

function badge(text, kind, title = "") {
  const b = document.createElement("span");
  b.className = `badge badge-${kind}`;
  b.textContent = text;
  if (title) b.title = title;
  return b;
}

// --- cheapest now ----------------------------------------------------------------------------------------------

async function loadOffers() {
  const offers = [];
  for (let page = 0; page < MAX_PAGES; page++) {
    const body = await getJSON(`v1/offers?limit=${PAGE}&offset=${page * PAGE}`);
    offers.push(...body.items);
    if (offers.length >= body.total || body.items.length === 0) return { offers, truncated: false };
  }
  return { offers, truncated: true };
}

function better(cur, o) {
  return cur === null || o.gpu_hourly_usd < cur.gpu_hourly_usd ? o : cur;
}

function summarise(offers) {
  const by = new Map();
  let unknown = 0;
  for (const o of offers) {
    if (!o.gpu_known) { unknown += 1; continue; }
    let s = by.get(o.gpu_model);
    if (!s) {
      s = { gpu: o.gpu_model, od: null, spot: null, committed: null, providers: new Set(), offers: 0 };
      by.set(o.gpu_model, s);
    }
    s.offers += 1;
    s.providers.add(o.provider);
    if (o.purchase === "on_demand") s.od = better(s.od, o);
    else if (o.purchase === "spot") s.spot = better(s.spot, o);
    else if (COMMITTED.has(o.purchase)) s.committed = better(s.committed, o);
  }
  const rows = [...by.values()].map((s) => ({
    ...s,
    providers: s.providers.size,
    discount: s.od && s.spot ? 1 - s.spot.gpu_hourly_usd / s.od.gpu_hourly_usd : null,
  }));
  return { rows, unknown };
}

function where(o) {
  if (!o) return "";
  const zone = o.zone ? ` (${o.zone})` : "";
  return `${o.provider} · ${o.region}${zone} · ${o.instance_type} ×${o.gpu_count}`;
}

function priceCell(tr, o) {
  const td = cell(tr, o ? fmtUsd(o.gpu_hourly_usd) : "–", "num price");
  if (o) td.title = `${fmtUsd(o.hourly_usd)} per instance-hour; this price since ${fmtTime(Date.parse(o.observed_at))} UTC`;
  return td;
}

const SORTS = {
  gpu: (r) => r.gpu,
  od: (r) => r.od?.gpu_hourly_usd ?? Infinity,
  spot: (r) => r.spot?.gpu_hourly_usd ?? Infinity,
  discount: (r) => -(r.discount ?? -Infinity),
  committed: (r) => r.committed?.gpu_hourly_usd ?? Infinity,
  providers: (r) => -r.providers,
  offers: (r) => -r.offers,
};

function renderCheapest() {
  const tbody = $("#cheapest tbody");
  const filter = $("#gpu-filter").value.trim().toLowerCase();
  const key = SORTS[state.sort.key];
  const rows = state.rows.filter((r) => r.gpu.toLowerCase().includes(filter))
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * state.sort.dir);
  for (const th of document.querySelectorAll("#cheapest th[data-sort]")) {
    th.setAttribute("aria-sort", th.dataset.sort === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
  if (!rows.length) {
    emptyRow(tbody, 9, state.rows.length ? "No GPU model matches the filter." : "No offers yet: no source has been polled.");
    return;
  }
  const selected = $("#gpu").value;
  tbody.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.gpu = r.gpu;
    if (r.gpu === selected) tr.className = "selected";
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "link";
    pick.textContent = r.gpu;
    pick.title = "Show this model's price history";
    pick.addEventListener("click", () => { selectGpu(r.gpu); $("#history-card").scrollIntoView({ behavior: "smooth" }); });
    cell(tr, pick, "gpu");
    priceCell(tr, r.od);
    cell(tr, where(r.od), "where");
    priceCell(tr, r.spot);
    cell(tr, where(r.spot), "where");
    if (r.discount === null) cell(tr, "–", "num");
    else if (r.discount < 0) cell(tr, "none", "num muted", "the cheapest spot offer costs more than the cheapest on-demand one");
    else cell(tr, `${Math.round(r.discount * 100)}%`, "num");
    const c = priceCell(tr, r.committed);
    if (r.committed) c.title = `${where(r.committed)}, ${r.committed.purchase.replace("_", " ")}${r.committed.term ? ` ${r.committed.term}` : ""}`;
    cell(tr, String(r.providers), "num");
    cell(tr, String(r.offers), "num");
    return tr;
  }));
}

// --- source health --------------------------------------------------------------------------------------------

function health(p) {
  if (!p.configured) return badge("skipped", "muted", p.skipped_reason || "");
  if (!p.last_poll) return badge("never polled", "muted");
  const outcome = p.last_poll.outcome;
  const stale = p.data_age_seconds !== null && p.data_age_seconds > 2 * 60 * p.interval_minutes;
  if (outcome === "failed") return badge("failed", "bad");
  if (outcome === "running") return badge("polling", "muted");
  if (stale) return badge("stale", "warn", `no fresh data for over twice the ${p.interval_minutes} min interval`);
  if (outcome === "ok") return badge("ok", "ok");
  return badge(outcome, "warn");
}

function problems(p) {
  if (!p.configured) return p.skipped_reason || "";
  const run = p.last_poll;
  if (!run) return "";
  const parts = [];
  if (run.error) parts.push(run.error);
  const rejected = Object.entries(run.rejected || {});
  if (rejected.length) parts.push("rejected: " + rejected.map(([why, n]) => `${n} ${why}`).join(", "));
  parts.push(...(run.warnings || []));
  return parts.join("; ");
}

function renderHealth(providers) {
  const tbody = $("#health tbody");
  if (!providers.length) { emptyRow(tbody, 9, "No sources are configured."); return; }
  tbody.replaceChildren(...providers.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.source = p.source;
    const run = p.last_poll;
    cell(tr, p.source, "strong");
    cell(tr, p.kind);
    cell(tr, health(p));
    cell(tr, run ? ago(run.finished_at || run.started_at) : "–", "", run ? `${fmtTime(Date.parse(run.finished_at || run.started_at))} UTC` : "");
    cell(tr, age(p.data_age_seconds), "num", p.newest_data_at ? `newest data ${fmtTime(Date.parse(p.newest_data_at))} UTC` : "");
    cell(tr, String(p.offers), "num");
    cell(tr, run ? String(run.prices_changed) : "–", "num", run ? `${run.offers_new} new, ${run.offers_withdrawn} withdrawn in the last poll` : "");
    cell(tr, p.next_run_at ? fmtTime(Date.parse(p.next_run_at)) : "–");
    const text = problems(p);
    cell(tr, text, text && run && (run.error || run.outcome !== "ok") ? "problem bad" : "problem", text);
    return tr;
  }));
}

// --- price history --------------------------------------------------------------------------------------------

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  for (const name of ["purchase", "range", "unit"]) {
    const sel = $(`#${name}`);
    if (h.has(name) && [...sel.options].some((o) => o.value === h.get(name))) sel.value = h.get(name);
  }
  return h.get("gpu");
}

function writeHash() {
  const h = new URLSearchParams();
  for (const name of ["gpu", "purchase", "range", "unit"]) h.set(name, $(`#${name}`).value);
  history.replaceState(null, "", `#${h}`);
}

function fillGpus(wanted) {
  const sel = $("#gpu");
  const current = wanted || sel.value;
  const models = state.rows.map((r) => r.gpu).sort();
  const byProviders = [...state.rows].sort((a, b) => b.providers - a.providers || b.offers - a.offers);
  sel.replaceChildren(...models.map((g) => new Option(g, g)));
  if (models.includes(current)) sel.value = current;
  else if (models.includes("H100-SXM")) sel.value = "H100-SXM";
  else if (byProviders.length) sel.value = byProviders[0].gpu;
}

function selectGpu(gpu) {
  $("#gpu").value = gpu;
  onControlsChanged();
}

function onControlsChanged() {
  state.hidden.clear();
  writeHash();
  renderCheapest();
  loadHistory();
}

function chartMessage(stateName, text) {
  const chart = $("#chart");
  chart.dataset.state = stateName;
  const p = document.createElement("p");
  p.className = stateName === "error" ? "chart-msg bad" : "chart-msg";
  p.textContent = text;
  chart.replaceChildren(p);
  $("#legend").replaceChildren();
}

async function loadHistory() {
  const gpu = $("#gpu").value;
  const purchase = $("#purchase").value;
  const unit = $("#unit").value;
  const [span, step] = RANGES[$("#range").value];
  const seq = ++state.seq;
  if (!gpu) { chartMessage("empty", "No GPU models yet: the chart appears once a source has been polled."); return; }
  const to = new Date(Math.ceil(Date.now() / STEP_MS[step]) * STEP_MS[step]);
  const from = new Date(to.getTime() - span);
  const q = new URLSearchParams({ gpu, group_by: "provider", agg: "min", step, unit,
    from: from.toISOString(), to: to.toISOString() });
  if (purchase) q.set("purchase", purchase);
  $("#chart").dataset.state = "loading";
  $("#chart").setAttribute("aria-busy", "true");
  try {
    const body = await getJSON(`v1/prices/history?${q}`);
    if (seq !== state.seq) return; // a newer choice was made meanwhile
    // the broker aligns the start down to a whole step: draw the range it answered for
    const start = Date.parse(body.from) || from.getTime();
    const end = Date.parse(body.to) || to.getTime();
    state.history = { body, gpu, purchase, unit, from: start, to: end, stepMs: STEP_MS[step], step };
    drawHistory();
  } catch (err) {
    if (seq !== state.seq) return;
    state.history = null;
    chartMessage("error", err instanceof ApiError ? err.message : `Could not load the price history: ${err}`);
  } finally {
    if (seq === state.seq) $("#chart").removeAttribute("aria-busy");
  }
}

function drawHistory() {
  const h = state.history;
  if (!h) return;
  const chart = $("#chart");
  const series = prepareSeries(h.body.series);
  const gaps = h.body.gaps || [];
  const what = `${h.gpu}, ${h.purchase ? $("#purchase").selectedOptions[0].textContent.toLowerCase() : "any purchase option"}`;
  $("#history-sub").textContent = `${what} · lowest price per provider in each ${h.step} step`;
  if (!series.some((s) => s.points.length)) {
    chartMessage("empty", `No ${what} prices recorded in this range.`);
    chart.dataset.gpu = h.gpu;
    $("#chart-note").textContent = "";
    return;
  }
  renderChart(chart, { series, gaps, from: h.from, to: h.to, stepMs: h.stepMs, unit: h.body.unit || UNIT_LABEL[h.unit], hidden: state.hidden });
  chart.dataset.gpu = h.gpu;
  chart.dataset.purchase = h.purchase;
  chart.dataset.state = "ready";
  renderLegend($("#legend"), series, state.hidden, (label) => {
    if (state.hidden.has(label)) state.hidden.delete(label); else state.hidden.add(label);
    drawHistory();
  });
  const n = series.reduce((acc, s) => acc + s.points.length, 0);
  const polling = gaps.filter((g) => g.kind !== "withdrawn").length;
  const withdrawn = gaps.length - polling;
  const notes = [`${series.length} provider${series.length === 1 ? "" : "s"}, ${n} points`];
  if (polling) notes.push(`${polling} polling gap${polling === 1 ? "" : "s"} shaded`);
  if (withdrawn) notes.push(`${withdrawn} withdrawn period${withdrawn === 1 ? "" : "s"} marked on the time axis`);
  if (h.body.gaps_truncated) notes.push("more gaps than shown");
  $("#chart-note").textContent = `${notes.join("; ")}. Hover for values; click a provider to hide or show its line.`;
}

// --- refresh cycle ----------------------------------------------------------------------------------------------

async function refresh() {
  const button = $("#refresh");
  button.disabled = true;
  const [offers, providers] = await Promise.allSettled([loadOffers(), getJSON("v1/providers")]);
  const errors = [];
  if (offers.status === "fulfilled") {
    const { rows, unknown } = summarise(offers.value.offers);
    state.rows = rows;
    $("#demo-badge").hidden = !offers.value.offers.some((o) => o.demo);
    const notes = [];
    if (unknown) notes.push(`${unknown} offer${unknown === 1 ? "" : "s"} with a GPU the catalog does not know are left out.`);
    if (offers.value.truncated) notes.push(`Only the first ${MAX_PAGES * PAGE} offers are summarised.`);
    notes.push("Hover a price for its instance-hour price and since when it holds.");
    $("#cheapest-note").textContent = notes.join(" ");
    fillGpus(state.pendingGpu);
    state.pendingGpu = null;
    renderCheapest();
  } else {
    errors.push(offers.reason.message);
    emptyRow($("#cheapest tbody"), 9, `Could not load offers: ${offers.reason.message}`, "empty bad");
  }
  if (providers.status === "fulfilled") renderHealth(providers.value.providers);
  else {
    errors.push(providers.reason.message);
    emptyRow($("#health tbody"), 9, `Could not load sources: ${providers.reason.message}`, "empty bad");
  }
  const denied = [offers, providers].find((r) => r.status === "rejected" && r.reason instanceof AuthError);
  if (denied) askForKey(denied.reason);
  else $("#key-form").hidden = true;
  $("#forget-key").hidden = !storedKey();
  writeHash();
  await loadHistory();
  const now = new Date().toISOString().slice(11, 19);
  $("#updated").textContent = errors.length ? `Update failed at ${now} UTC` : `Updated ${now} UTC · every ${REFRESH_MS / 60e3} min`;
  $("#updated").className = errors.length ? "bad" : "";
  button.disabled = false;
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    // a hidden tab need not poll; it refreshes when shown again
    if (!document.hidden) await refresh();
    schedule();
  }, REFRESH_MS);
}

function init() {
  state.pendingGpu = readHash();
  for (const name of ["gpu", "purchase", "range", "unit"]) $(`#${name}`).addEventListener("change", onControlsChanged);
  $("#controls").addEventListener("submit", (ev) => ev.preventDefault());
  $("#refresh").addEventListener("click", () => { refresh(); schedule(); });
  $("#gpu-filter").addEventListener("input", renderCheapest);
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    try { localStorage.setItem(KEY_STORE, $("#key").value.trim()); } catch { /* storage off: nothing kept */ }
    $("#key").value = "";
    refresh();
  });
  $("#forget-key").addEventListener("click", () => {
    try { localStorage.removeItem(KEY_STORE); } catch { /* storage off */ }
    refresh();
  });
  for (const th of document.querySelectorAll("#cheapest th[data-sort]")) {
    th.tabIndex = 0;
    const sort = () => {
      const key = th.dataset.sort;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
      renderCheapest();
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sort(); } });
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) { refresh(); schedule(); } });
  let width = $("#chart").clientWidth;
  new ResizeObserver(() => {
    const w = $("#chart").clientWidth;
    if (w !== width) { width = w; requestAnimationFrame(drawHistory); }
  }).observe($("#chart"));
  refresh().then(schedule);
}

init();
