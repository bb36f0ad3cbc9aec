// The String Hashr page: one socket.io connection back to the frontend that served it.
// Server events: frequency, frequency_error, hashes, routing, watcher, stats; the page sends
// frequency and received (see page/pages.py).
"use strict";

(() => {
  const MAX_SHOWN = 50; // hashes kept in the list
  const CHART_SECONDS = 60;
  const STALL_MS = 3000; // no hashes for this long while sending: say so
  const SEND_EVERY_MS = 150; // slider drags send at most this often

  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const fmt = (n) => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1));

  const range = $("freq-range");
  const number = $("freq-number");
  const errorBox = $("freq-error");

  const state = {
    connected: false,
    reconnectAttempt: 0,
    frequency: Number(range.value),
    lastHashAt: 0,
    received: 0,
    dragging: false,
  };

  // ---- the socket ---------------------------------------------------------------------------
  // WebSocket first (no sticky sessions needed); long-polling only if WebSocket cannot connect.
  const socket = io({ transports: ["websocket", "polling"], tryAllTransports: true });

  socket.on("connect", () => {
    state.connected = true;
    state.reconnectAttempt = 0;
    showConnection();
  });
  socket.on("disconnect", () => {
    state.connected = false;
    showConnection();
  });
  socket.on("connect_error", () => {
    state.connected = false;
    showConnection();
  });
  socket.io.on("reconnect_attempt", (attempt) => {
    state.reconnectAttempt = attempt;
    showConnection();
  });

  function showConnection() {
    const badge = $("connection");
    let text;
    let look;
    if (!state.connected) {
      text = state.reconnectAttempt ? `disconnected: reconnecting (try ${state.reconnectAttempt})…` : "disconnected: reconnecting…";
      look = "text-bg-danger";
    } else if (state.frequency > 0 && Date.now() - state.lastHashAt > STALL_MS) {
      const since = state.lastHashAt ? `for ${Math.round((Date.now() - state.lastHashAt) / 1000)} s` : "yet";
      text = `connected: no hashes ${since}`;
      look = "text-bg-warning";
    } else {
      text = "connected";
      look = "text-bg-success";
    }
    badge.textContent = text;
    badge.className = `badge connection-badge ${look}`;
    badge.dataset.state = look.replace("text-bg-", "");
  }

  // ---- the frequency --------------------------------------------------------------------------
  let sendTimer = null;
  let lastSent = 0;

  function sendFrequency(raw) {
    clearTimeout(sendTimer);
    sendTimer = null;
    lastSent = Date.now();
    const value = Number(raw);
    // The server validates; a value that is not a number goes as typed so it can say why.
    socket.emit("frequency", { freq: raw === "" || Number.isNaN(value) ? raw : value });
  }

  function sendSoon(raw) {
    const wait = SEND_EVERY_MS - (Date.now() - lastSent);
    clearTimeout(sendTimer);
    if (wait <= 0) sendFrequency(raw);
    else sendTimer = setTimeout(() => sendFrequency(raw), wait);
  }

  range.addEventListener("pointerdown", () => { state.dragging = true; });
  range.addEventListener("input", () => {
    number.value = range.value;
    sendSoon(range.value);
  });
  range.addEventListener("change", () => {
    state.dragging = false;
    sendFrequency(range.value);
  });
  number.addEventListener("change", () => sendFrequency(number.value.trim()));
  number.addEventListener("keydown", (event) => {
    if (event.key === "Enter") sendFrequency(number.value.trim());
  });

  socket.on("frequency", (data) => {
    state.frequency = Number(data.freq);
    if (!state.dragging) range.value = String(state.frequency);
    if (document.activeElement !== number) number.value = String(state.frequency);
    if (data.shared === false) {
      // Redis is away: the rate in force stays, but a change could not reach the other frontends.
      errorBox.textContent = `Changes cannot be shared with the other frontends right now (Redis is away); the rate stays at ${fmt(state.frequency)} requests/s.`;
      errorBox.classList.remove("d-none");
    } else hideError();
    showConnection();
  });

  let errorTimer = null;
  function hideError() {
    errorBox.classList.add("d-none");
  }
  socket.on("frequency_error", (data) => {
    errorBox.textContent = `Not changed: ${data.detail}`;
    errorBox.classList.remove("d-none");
    clearTimeout(errorTimer);
    errorTimer = setTimeout(hideError, 6000);
    range.value = String(data.freq);
    number.value = String(data.freq);
  });

  // ---- hashes ---------------------------------------------------------------------------------
  const list = $("hashes");

  function hashItem(hash) {
    const burst = hash.cluster === "burst" || hash.value.startsWith("bursty-");
    const item = el("li", burst ? "hash-burst" : "hash-primary");
    item.append(el("span", `badge ${burst ? "bg-burst" : "text-bg-primary"}`, burst ? "burst" : "primary"));
    item.append(document.createTextNode(hash.value));
    item.title = `from ${hash.worker} (${hash.cluster})`;
    return item;
  }

  // Tell the server which batch this page has handled, about every ACK_EVERY_MS: a page that
  // falls behind is then sent the newest hashes and the counts, never a growing queue.
  const ACK_EVERY_MS = 200;
  let ackTimer = null;
  let handledSeq = 0;
  function acknowledge() {
    ackTimer = null;
    socket.emit("received", { seq: handledSeq });
  }

  socket.on("hashes", (batch) => {
    handledSeq = batch.seq;
    if (ackTimer === null) ackTimer = setTimeout(acknowledge, ACK_EVERY_MS);
    const fragment = document.createDocumentFragment();
    // The batch is oldest first and holds at most the newest few; the list shows newest first.
    for (let i = batch.hashes.length - 1; i >= 0 && fragment.childNodes.length < MAX_SHOWN; i--) {
      fragment.append(hashItem(batch.hashes[i]));
    }
    list.prepend(fragment);
    while (list.childElementCount > MAX_SHOWN) list.lastElementChild.remove();
    state.received += batch.count;
    state.lastHashAt = Date.now();
    for (const [cluster, n] of Object.entries(batch.counts)) countForChart(cluster, n);
    $("hash-counts").textContent = `${state.received.toLocaleString()} received since this page opened; the newest ${list.childElementCount} shown`;
    showConnection();
  });

  // ---- the chart: hashes per second by cluster, one point a second ----------------------------
  const COLORS = { primary: "#0d6efd", burst: "#fd7e14" };
  const current = new Map(); // cluster -> count in the second being filled
  const labels = Array.from({ length: CHART_SECONDS }, (_, i) => (i === CHART_SECONDS - 1 ? "now" : `-${CHART_SECONDS - 1 - i}s`));

  function dataset(cluster) {
    const color = COLORS[cluster] || "#6c757d";
    return {
      label: cluster,
      data: new Array(CHART_SECONDS).fill(0),
      borderColor: color,
      backgroundColor: `${color}33`,
      fill: true,
      pointRadius: 0,
      tension: 0.2,
      cubicInterpolationMode: "monotone",
    };
  }

  const chart = new Chart($("rate-chart"), {
    type: "line",
    data: { labels, datasets: [dataset("primary"), dataset("burst")] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { ticks: { maxTicksLimit: 7, autoSkip: true } },
        y: { beginAtZero: true, suggestedMax: 10, title: { display: true, text: "hashes/s" } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });

  function countForChart(cluster, n) {
    current.set(cluster, (current.get(cluster) || 0) + n);
  }

  setInterval(() => {
    for (const cluster of current.keys()) {
      if (!chart.data.datasets.some((d) => d.label === cluster)) chart.data.datasets.push(dataset(cluster));
    }
    for (const d of chart.data.datasets) {
      d.data.push(current.get(d.label) || 0);
      d.data.shift();
    }
    recent.push(Object.fromEntries(current));
    while (recent.length > SPLIT_SECONDS) recent.shift();
    showMeasuredSplit();
    current.clear();
    chart.update("none");
    showConnection();
  }, 1000);

  // ---- routing: the weights the watcher reports, and the split the hashes show -----------------
  const APPLIED_BY = { haproxy: "HAProxy", istio: "the Istio VirtualService", "gateway-api": "the Gateway API HTTPRoute" };
  // Whether the weights written are in force, as the data plane reports it (watcher `routing`).
  const ACCEPTANCE = {
    applied: "accepted by the data plane",
    pending: "pending: not yet accepted by the data plane",
    refused: "refused by the data plane",
    not_accepted: "not accepted by the data plane in time",
  };

  function showAcceptance(routing) {
    const line = $("routing-acceptance");
    const said = routing && ACCEPTANCE[routing.state];
    line.hidden = !said;
    line.dataset.state = said ? routing.state : "";
    const trouble = said && routing.state !== "applied" && routing.state !== "pending";
    line.textContent = said ? `${said}${trouble && routing.detail ? `: ${routing.detail}` : ""}` : "";
  }

  function showWeights(weights) {
    for (const name of ["primary", "burst"]) {
      const bar = $(`weight-${name}`);
      const weight = weights ? weights[name] : 0;
      bar.style.width = `${weight}%`;
      if (weights) bar.setAttribute("aria-valuenow", String(weight));
      else bar.removeAttribute("aria-valuenow");
    }
  }

  socket.on("routing", (r) => {
    if (!r || !r.reported) {
      // Never a default shown as fact: the weights are simply not known.
      showWeights(null);
      $("routing-text").textContent = "no watcher has reported yet: the weights in force are not known";
      showAcceptance(null);
      return;
    }
    showWeights(r);
    const who = APPLIED_BY[r.actuator] || (r.actuator ? `the ${r.actuator} actuator` : "the watcher's actuator");
    const where = r.target ? `: ${r.target}` : "";
    const when = typeof r.at === "number" && r.at > 1e9 ? ` at ${new Date(r.at * 1000).toLocaleTimeString()}` : "";
    const dry = r.dry_run ? "; dry run: not applied" : "";
    $("routing-text").textContent = `primary ${r.primary} % / burst ${r.burst} %, reported by the watcher${when}; applied by ${who}${where}${dry}`;
    showAcceptance(r.routing);
  });

  const SPLIT_SECONDS = Number($("measured-split").dataset.seconds);
  const recent = []; // per second: {primary, burst}, newest last

  function showMeasuredSplit() {
    let primary = 0;
    let burst = 0;
    for (const second of recent) {
      primary += second.primary || 0;
      burst += second.burst || 0;
    }
    const total = primary + burst;
    const text = $("measured-split");
    if (!total) {
      text.textContent = "no hashes";
      return;
    }
    const p = Math.round((100 * primary) / total);
    text.textContent = `primary ${p} % · burst ${100 - p} % (of ${total.toLocaleString()})`;
  }

  // ---- the watcher's state: the main keys in front, every other one under "all fields" ---------
  const MAIN = ["mode", "decision", "reason", "reading", "weights", "ready", "not_ready_reason", "at"];
  const CHARTED = ["history", "decisions"];

  function describe(key, value) {
    if (value === null || value === undefined || value === "") return "—";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if ((key === "at" || key.endsWith("_at")) && typeof value === "number" && value > 1e9) {
      return new Date(value * 1000).toLocaleTimeString();
    }
    if (typeof value === "number") return fmt(value);
    if (typeof value === "object" && typeof value.primary === "number" && typeof value.burst === "number") {
      return `primary ${value.primary} % / burst ${value.burst} %`;
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function field(list, key, value) {
    list.append(el("dt", "col-5 text-truncate fw-semibold", key.replaceAll("_", " ")));
    list.append(el("dd", "col-7 mb-1", describe(key, value)));
  }

  // The kinds of trouble the watcher reports (its ActuatorErrorKind and ReadingKind), in words.
  const ACTUATOR_TROUBLE = {
    unreachable: "cannot reach",
    timeout: "gets no answer in time from",
    forbidden: "is not allowed to change",
    not_found: "cannot find",
    invalid: "cannot use (or was refused by)",
    conflict: "keeps finding a change by someone else in",
    server_error: "gets server errors from",
    config: "has no usable credentials for",
  };
  const READING_TROUBLE = {
    empty: "Prometheus found no series for the query",
    nan_inf: "the query gives no number (NaN or Inf)",
    multiple_series: "the query gives several series, not one",
    unreachable: "cannot reach Prometheus",
    timeout: "Prometheus does not answer in time",
    http_error: "Prometheus answers with an error",
    redirect: "Prometheus answers with a redirect",
    malformed: "Prometheus's answer is not a reading",
  };

  function showProblems(s) {
    const lines = [];
    if (s && s.actuator_error_kind) {
      const words = ACTUATOR_TROUBLE[s.actuator_error_kind] || `has trouble (${s.actuator_error_kind}) with`;
      lines.push(`The watcher ${words} ${s.target || "the routing"}: ${s.actuator_error || "no detail"}`);
    }
    if (s && s.reading_error_kind) {
      const words = READING_TROUBLE[s.reading_error_kind] || `unusable reading (${s.reading_error_kind})`;
      lines.push(`No usable reading: ${words}${s.reading_detail ? ` (${s.reading_detail})` : ""}`);
    }
    const box = $("watcher-problems");
    box.replaceChildren(...lines.map((line) => el("div", "", line)));
    box.classList.toggle("d-none", lines.length === 0);
  }

  // ---- the watcher's chart: its reading with the thresholds, the burst weight, a marker at each
  // decision, and shaded bands while an override or an outage policy is in force ---------------
  const BAND_COLORS = { override: "rgba(111, 66, 193, 0.15)", outage: "rgba(220, 53, 69, 0.15)" };
  const BAND_WORDS = { override: "override", outage: "readings unusable (outage policy)" };
  const reasonWords = (reason) => reason.replace(/(?<!^)(?=[A-Z])/g, " ").toLowerCase();
  const weightWords = (w) => `${w.primary}/${w.burst}`;

  function decisionWords(r) {
    const when = new Date(r.at * 1000).toLocaleTimeString();
    const change = weightWords(r.before) !== weightWords(r.after) ? `${weightWords(r.before)} → ${weightWords(r.after)}` : "";
    const outcome = r.outcome === "none" ? "" : r.outcome.replace("_", " ") + (r.error_kind ? `: ${r.error_kind}` : "");
    const tail = [change, outcome].filter(Boolean).join(", ");
    const repeats = r.count > 1 ? ` ×${r.count}` : "";
    return `${when} ${reasonWords(r.reason)}: ${r.detail}${tail ? ` (${tail})` : ""}${repeats}`;
  }

  const bandsPlugin = {
    id: "watcherBands",
    beforeDatasetsDraw(chart) {
      const { ctx, chartArea, scales } = chart;
      ctx.save();
      for (const run of chart.$bands || []) {
        const left = Math.max(chartArea.left, scales.x.getPixelForValue(run.from));
        const right = Math.min(chartArea.right, scales.x.getPixelForValue(run.to));
        if (right <= left) continue;
        ctx.fillStyle = BAND_COLORS[run.band] || "rgba(108, 117, 125, 0.15)";
        ctx.fillRect(left, chartArea.top, right - left, chartArea.bottom - chartArea.top);
      }
      ctx.restore();
    },
  };

  const line = (label, color, extra) => ({ label, data: [], borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2, ...extra });
  const watcherChart = new Chart($("watcher-chart"), {
    type: "line",
    data: {
      datasets: [
        line("reading (req/s)", "#198754", { spanGaps: false }),
        line("HIGH", "#dc3545", { borderDash: [6, 4], borderWidth: 1 }),
        line("LOW", "#0dcaf0", { borderDash: [6, 4], borderWidth: 1 }),
        line("burst weight (%)", COLORS.burst, { yAxisID: "weight", stepped: true, borderWidth: 1 }),
        { type: "scatter", label: "decisions", data: [], pointStyle: "triangle", pointRadius: 7, borderColor: "#212529", backgroundColor: "#ffc107" },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: "linear", ticks: { callback: (v) => (v === 0 ? "now" : `${v}s`), maxTicksLimit: 6 } },
        y: { beginAtZero: true, suggestedMax: 20, title: { display: true, text: "req/s" } },
        weight: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "burst %" } },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12, font: { size: 10 } } },
        tooltip: { callbacks: { label: (item) => item.raw.words || `${item.dataset.label}: ${item.formattedValue}` } },
      },
    },
    plugins: [bandsPlugin],
  });

  // The state carries the last minute; the page keeps up to CHART_HISTORY_S of what it was sent.
  const CHART_HISTORY_S = 180;
  const kept = new Map(); // at -> sample

  function remember(history) {
    for (const p of Array.isArray(history) ? history : []) kept.set(p.at, p);
    const ats = [...kept.keys()].sort((a, b) => a - b);
    const newest = ats.length ? ats[ats.length - 1] : 0;
    for (const at of ats) if (at < newest - CHART_HISTORY_S) kept.delete(at);
    return [...kept.keys()].sort((a, b) => a - b).map((at) => kept.get(at));
  }

  function showWatcherChart(s) {
    const samples = remember(s && s.history);
    const records = Array.isArray(s && s.decisions) ? s.decisions : [];
    const now = samples.length ? samples[samples.length - 1].at : (s && s.at) || 0;
    const from = samples.length ? Math.floor(samples[0].at - now) : -60;
    const rel = (at) => Math.round((at - now) * 10) / 10;
    const [reading, high, low, burst, marks] = watcherChart.data.datasets;
    reading.data = samples.map((p) => ({ x: rel(p.at), y: p.reading }));
    burst.data = samples.map((p) => ({ x: rel(p.at), y: p.burst }));
    const t = (s && s.thresholds) || {};
    // Overflow decides against primary's capacity; switch against HIGH and LOW.
    const upper = s && s.mode === "overflow" ? t.primary_capacity : t.high;
    high.label = s && s.mode === "overflow" ? "primary capacity" : "HIGH";
    high.data = typeof upper === "number" ? [{ x: from, y: upper }, { x: 0, y: upper }] : [];
    low.hidden = !(s && s.mode !== "overflow" && typeof t.low === "number");
    low.data = low.hidden ? [] : [{ x: from, y: t.low }, { x: 0, y: t.low }];
    marks.data = records
      .filter((r) => r.last_at - now >= from)
      .map((r) => ({ x: rel(Math.max(r.at, now + from)), y: r.reading ?? 0, words: decisionWords(r), reason: r.reason }));
    const runs = [];
    samples.forEach((p, i) => {
      const end = i + 1 < samples.length ? rel(samples[i + 1].at) : 0;
      const last = runs[runs.length - 1];
      if (p.band && last && last.band === p.band && last.to === rel(p.at)) last.to = end;
      else if (p.band) runs.push({ band: p.band, from: rel(p.at), to: end });
    });
    watcherChart.$bands = runs;
    watcherChart.options.scales.x.min = from;
    watcherChart.options.scales.x.max = 0;
    watcherChart.update("none");
    $("watcher-bands").textContent = runs.length
      ? "Shaded: " + runs.map((r) => `${BAND_WORDS[r.band] || r.band} from ${-r.from} s ago${r.to < 0 ? ` to ${-r.to} s ago` : " until now"}`).join("; ")
      : "";

    const list = $("decisions");
    const newest = records.slice(-10).reverse();
    list.replaceChildren(...(newest.length ? newest.map((r) => {
      const look = r.warning ? "decision-warning"
        : r.reason.startsWith("Override") ? "decision-override" : "";
      const item = el("li", look, decisionWords(r));
      item.dataset.reason = r.reason;
      return item;
    }) : [el("li", "text-body-secondary", "none yet")]));
  }

  socket.on("watcher", (data) => {
    const main = $("watcher");
    const more = $("watcher-more");
    main.replaceChildren();
    more.replaceChildren();
    const s = data && data.state;
    $("watcher-all").classList.toggle("d-none", !s);
    showProblems(s);
    showWatcherChart(s && typeof s === "object" ? s : null);
    if (!s || typeof s !== "object" || Array.isArray(s)) {
      main.append(el("dt", "col-12 fw-normal text-body-secondary", "no state published yet"));
      return;
    }
    for (const key of MAIN) {
      if (!(key in s) || (key === "not_ready_reason" && (s.ready || !s[key]))) continue;
      field(main, key, s[key]);
    }
    // The history and the decisions are the chart and the list above; the rest is raw.
    const rest = Object.keys(s).filter((k) => !MAIN.includes(k) && !CHARTED.includes(k)).sort();
    for (const key of rest) field(more, key, s[key]);
    $("watcher-count").textContent = String(rest.length);
  });

  // ---- the load driver's figures --------------------------------------------------------------
  socket.on("stats", (s) => {
    const sending = s.frequency > 0 ? `sending ${fmt(s.achieved)} of ${fmt(s.frequency)} requests/s` : "stopped (frequency 0)";
    $("driver-summary").textContent = `${sending}; ${s.in_flight} of at most ${s.max_in_flight} in flight; ${s.pages} page(s) open` +
      (s.replicas > 1 ? ` across ${s.replicas} frontends (this one sends ${fmt(s.replica.achieved)}/s)` : "");
    const targets = $("targets");
    targets.replaceChildren();
    for (const [name, t] of Object.entries(s.targets)) {
      const failing = t.failed_rate > 0 || t.skipped_rate > 0;
      const row = el("li", failing ? "text-danger" : "text-body-secondary");
      row.dataset.target = name;
      row.append(el("strong", "", `${name}: `));
      row.append(document.createTextNode(`${fmt(t.ok_rate)} ok/s, ${fmt(t.failed_rate)} failed/s, ${fmt(t.skipped_rate)} skipped/s (total ${t.ok} ok, ${t.failed} failed, ${t.skipped} skipped)`));
      if (t.error) row.append(el("div", "target-error", `the worker is not answering: ${t.error}`));
      targets.append(row);
    }
    const redis = $("redis-status");
    redis.classList.toggle("d-none", s.redis.up);
    redis.textContent = s.redis.up ? "" : `Redis unavailable (${s.redis.reason || "unknown"}): no hashes can arrive`;
  });

  showConnection();
})();
