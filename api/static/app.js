// The live page: feed states from /api/v1/feeds (polled every 2 s), and a candlestick chart with volume
// loaded from /api/v1/bars and updated over the WebSocket /api/v1/ws/bars. Plain JS, no build step.
// The page keeps its state on window.cryptostock (tests and curious people can read it).
"use strict";

const TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d"];
const FEED_POLL_MS = 2000;
const BAR_LIMIT = 500;
const UP = "#26a69a";
const DOWN = "#ef5350";

const page = {
  selection: { exchange: null, symbol: null, timeframe: "1m" },
  symbols: [], // [{exchange, symbol, raw_symbol, base, quote}]
  feeds: [], // the last /api/v1/feeds answer, each with its trades_per_s
  rates: new Map(), // "exchange:symbol" -> {received, updatedMs, perSecond}
  loaded: false, // bars of the current selection are on the chart
  barsPushed: 0, // bars received over the WebSocket and drawn
  wsState: "connecting",
  chart: null,
  candles: null,
  volume: null,
};
window.cryptostock = page;

const $ = (id) => document.getElementById(id);

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return body;
}

// ---- formatting ----------------------------------------------------------------------------------

function formatAge(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 10) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 120) return `${Math.round(seconds)} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

const formatCount = (n) => n.toLocaleString("en-US");
const formatRate = (r) => (r === null || r === undefined ? "—" : r < 10 ? r.toFixed(1) : Math.round(r).toString());

function decimals(text) {
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

// ---- feeds ---------------------------------------------------------------------------------------

// Trades/s from two successive reports of one collector: the change in trades received over the change
// in its report time (the collector's clock, so polling jitter does not count).
function updateRate(feed) {
  const key = `${feed.exchange}:${feed.symbol}`;
  const updatedMs = Date.parse(feed.updated);
  const previous = page.rates.get(key);
  let perSecond = previous ? previous.perSecond : null;
  if (previous && updatedMs - previous.updatedMs >= 500) {
    const delta = feed.trades_received - previous.received;
    perSecond = delta >= 0 ? (delta * 1000) / (updatedMs - previous.updatedMs) : null; // restarted
  }
  if (!previous || updatedMs - previous.updatedMs >= 500) {
    page.rates.set(key, { received: feed.trades_received, updatedMs, perSecond });
  }
  return feed.reporting ? perSecond : 0;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function feedRow(feed) {
  const tr = document.createElement("tr");
  tr.dataset.exchange = feed.exchange;
  tr.dataset.symbol = feed.symbol;
  const state = document.createElement("span");
  state.className = `state ${feed.state}`;
  state.textContent = feed.state;
  const stateCell = cell("");
  stateCell.appendChild(state);
  tr.append(
    cell(feed.exchange),
    cell(feed.symbol),
    stateCell,
    cell(formatAge(feed.last_trade_age_s), "num"),
    cell(formatRate(feed.trades_per_s), "num"),
    cell(formatCount(feed.trades_received), "num"),
    cell(formatCount(feed.gaps), feed.gaps ? "num warn" : "num"),
    cell(formatCount(feed.missing), feed.missing ? "num warn" : "num"),
    cell(formatCount(feed.repaired), "num"),
    cell(formatCount(feed.abandoned), feed.abandoned ? "num bad" : "num"),
  );
  const sel = page.selection;
  if (feed.exchange === sel.exchange && feed.symbol === sel.symbol) tr.classList.add("selected");
  tr.addEventListener("click", () => select({ exchange: feed.exchange, symbol: feed.symbol }));
  return tr;
}

function renderFeeds() {
  const rows = page.feeds.map(feedRow);
  $("feeds").querySelector("tbody").replaceChildren(...rows);
  const total = page.feeds.reduce((sum, f) => sum + (f.trades_per_s || 0), 0);
  const byState = {};
  for (const f of page.feeds) byState[f.state] = (byState[f.state] || 0) + 1;
  const states = Object.entries(byState).map(([s, n]) => `${n} ${s}`).join(", ");
  $("summary").innerHTML = page.feeds.length
    ? `<b>${formatRate(total)}</b> trades/s · ${page.feeds.length} feeds: ${states}`
    : "";
}

async function pollFeeds() {
  try {
    const body = await getJson("/api/v1/feeds");
    page.feeds = body.feeds.map((f) => ({ ...f, trades_per_s: updateRate(f) }));
    $("feeds-note").textContent = page.feeds.length ? "" : "No collector has reported yet.";
  } catch (error) {
    page.feeds = [];
    $("feeds-note").textContent = `Feeds unavailable: ${error.message}`;
  }
  renderFeeds();
  setTimeout(pollFeeds, FEED_POLL_MS);
}

// ---- chart ---------------------------------------------------------------------------------------

function createChart() {
  const { createChart: create, CandlestickSeries, HistogramSeries } = window.LightweightCharts;
  page.chart = create($("chart"), {
    autoSize: true,
    layout: { background: { color: "#161b22" }, textColor: "#c7d0d9" },
    grid: { vertLines: { color: "#1f262e" }, horzLines: { color: "#1f262e" } },
    rightPriceScale: { borderColor: "#262d36" },
    timeScale: { borderColor: "#262d36", timeVisible: true, secondsVisible: false },
  });
  page.candles = page.chart.addSeries(CandlestickSeries, {
    upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN, borderVisible: false,
  });
  page.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.28 } });
  page.volume = page.chart.addSeries(HistogramSeries, {
    priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false,
  });
  page.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.78, bottom: 0 } });
}

const candleOf = (bar) => ({
  time: bar.open_time_ms / 1000,
  open: Number(bar.open),
  high: Number(bar.high),
  low: Number(bar.low),
  close: Number(bar.close),
});

const volumeOf = (bar) => ({
  time: bar.open_time_ms / 1000,
  value: Number(bar.volume), // served as an exact decimal string; the chart draws numbers
  color: Number(bar.close) >= Number(bar.open) ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)",
});

function setPrecision(bars) {
  const digits = Math.min(8, Math.max(0, ...bars.map((b) => decimals(b.close))));
  page.candles.applyOptions({ priceFormat: { type: "price", precision: digits, minMove: 10 ** -digits } });
}

function showLast(bar) {
  if (!bar) {
    $("last").textContent = "";
    return;
  }
  const up = Number(bar.close) >= Number(bar.open);
  const when = bar.open_time.replace("T", " ").replace(".000Z", " UTC");
  $("last").innerHTML = `<span class="${up ? "up" : "down"}">${bar.close}</span> · ${when}`;
}

function noteBars(sel) {
  const count = page.candles.data().length;
  $("chart-note").textContent = count
    ? `${count} closed ${sel.timeframe} bars of ${sel.symbol} on ${sel.exchange}`
    : `No closed ${sel.timeframe} bars of ${sel.symbol} yet: the first appears when its interval ends.`;
}

function drawBar(bar) {
  const data = page.candles.data();
  const last = data.length ? data[data.length - 1].time : -Infinity;
  if (bar.open_time_ms / 1000 < last) return false; // a closed bar is never revised
  page.candles.update(candleOf(bar));
  page.volume.update(volumeOf(bar));
  showLast(bar);
  noteBars(page.selection);
  return true;
}

async function loadBars(sel) {
  const query = new URLSearchParams({ ...sel, limit: BAR_LIMIT, indicators: "false" });
  const body = await getJson(`/api/v1/bars?${query}`);
  if (sel !== page.selection) return; // the user chose something else meanwhile
  page.candles.setData(body.bars.map(candleOf));
  page.volume.setData(body.bars.map(volumeOf));
  if (body.bars.length) setPrecision(body.bars);
  page.chart.timeScale().applyOptions({ secondsVisible: /s$/.test(sel.timeframe) });
  page.chart.timeScale().fitContent();
  showLast(body.bars[body.bars.length - 1]);
  noteBars(sel);
  page.loaded = true;
}

// ---- bar stream ----------------------------------------------------------------------------------

let socket = null;
let retryMs = 1000;

function setWsState(state, text) {
  page.wsState = state;
  const el = $("ws-status");
  el.className = `ws-status ${state === "live" ? "live" : state === "closed" ? "down" : ""}`;
  el.textContent = `● ${text}`;
}

// Subscribe first, then load: a bar that closes while the history loads is not missed (drawBar skips
// anything older than what is drawn).
function connect(sel) {
  if (socket) socket.close(1000);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams(sel);
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws/bars?${query}`);
  socket = ws;
  const pending = [];
  let loaded = false;
  ws.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "subscribed") {
      setWsState("live", "live");
      retryMs = 1000;
      await loadBars(sel).catch((e) => ($("chart-note").textContent = e.message));
      loaded = true;
      pending.splice(0).forEach((bar) => drawBar(bar) && page.barsPushed++);
    } else if (message.type === "bar") {
      if (!loaded) pending.push(message.data);
      else if (drawBar(message.data)) page.barsPushed++;
    }
  };
  ws.onclose = (event) => {
    if (ws !== socket) return; // replaced by a newer subscription
    if (event.code === 1008) {
      setWsState("closed", "refused");
      $("chart-note").textContent = event.reason;
      return;
    }
    setWsState("closed", `reconnecting in ${retryMs / 1000} s`);
    setTimeout(() => ws === socket && connect(page.selection), retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  };
}

// ---- selection -----------------------------------------------------------------------------------

function fillSelect(el, values, chosen) {
  el.replaceChildren(...values.map((v) => new Option(v, v, false, v === chosen)));
}

function renderControls() {
  const sel = page.selection;
  const exchanges = [...new Set(page.symbols.map((s) => s.exchange))];
  fillSelect($("exchange"), exchanges, sel.exchange);
  const symbols = page.symbols.filter((s) => s.exchange === sel.exchange).map((s) => s.symbol);
  fillSelect($("symbol"), symbols, sel.symbol);
  const frames = TIMEFRAMES.includes(sel.timeframe) ? TIMEFRAMES : [sel.timeframe, ...TIMEFRAMES];
  $("timeframes").replaceChildren(
    ...frames.map((tf) => {
      const button = document.createElement("button");
      button.textContent = tf;
      button.className = tf === sel.timeframe ? "active" : "";
      button.addEventListener("click", () => select({ timeframe: tf }));
      return button;
    }),
  );
}

function select(change) {
  const next = { ...page.selection, ...change };
  if (change.exchange && !change.symbol) {
    const first = page.symbols.find((s) => s.exchange === next.exchange);
    next.symbol = first ? first.symbol : null;
  }
  page.selection = next;
  page.loaded = false;
  history.replaceState(null, "", `?${new URLSearchParams(next)}`);
  renderControls();
  renderFeeds();
  if (next.exchange && next.symbol) connect(next);
}

async function start() {
  createChart();
  $("exchange").addEventListener("change", (e) => select({ exchange: e.target.value }));
  $("symbol").addEventListener("change", (e) => select({ symbol: e.target.value }));
  pollFeeds();
  try {
    page.symbols = (await getJson("/api/v1/symbols")).symbols;
  } catch (error) {
    $("chart-note").textContent = `Symbols unavailable: ${error.message}`;
    return;
  }
  const asked = Object.fromEntries(new URLSearchParams(location.search));
  const known = page.symbols.find((s) => s.exchange === asked.exchange && s.symbol === asked.symbol);
  const first = known || page.symbols[0];
  if (!first) {
    $("chart-note").textContent = "No symbols yet: start a collector (make run starts everything).";
    return;
  }
  select({ exchange: first.exchange, symbol: first.symbol, timeframe: asked.timeframe || "1m" });
}

start();
