// The Switchyard dashboard: polls GET /admin/v1/stats every 2 s and draws it. The admin key
// comes from the login field or a #key= fragment (removed from the address bar at once) and is
// kept in sessionStorage only: it is gone when the tab closes.
"use strict";

const REFRESH_MS = 2000;
const KEY_SLOT = "switchyard.admin_key";
const $ = (id) => document.getElementById(id);
let plots = null;

function takeKeyFromFragment() {
  const m = location.hash.match(/(?:^#|&)key=([^&]+)/);
  if (m) {
    sessionStorage.setItem(KEY_SLOT, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function text(tag, content, cls) {
  const el = document.createElement(tag);
  if (content !== undefined && content !== null) el.textContent = String(content);
  if (cls) el.className = cls;
  return el;
}

function table(caption, headers, rows) {
  const t = document.createElement("table");
  if (caption) t.append(text("caption", caption));
  const head = document.createElement("tr");
  headers.forEach(([label, num]) => head.append(text("th", label, num ? "num" : "")));
  t.append(head);
  rows.forEach((cells) => {
    const tr = document.createElement("tr");
    cells.forEach((c, i) => {
      const td = c instanceof Node ? Object.assign(document.createElement("td"), {}) : text("td", c);
      if (c instanceof Node) td.append(c);
      if (headers[i][1]) td.className = "num";
      tr.append(td);
    });
    t.append(tr);
  });
  return t;
}

const fmt = {
  int: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US")),
  usd: (s) => "$" + Number(s).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 }),
  uptime: (s) => {
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m";
  },
  count: (c) => (c ? fmt.int(c.count) + (c.complete ? "" : "+") : "–"),
};

function drawTiles(s) {
  // The last minute: six whole slots and the one still filling, over the time they cover.
  const last = (a) => a.slice(-7);
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  const reqs = sum(last(s.series.requests));
  const errs = sum(last(s.series.server_errors));
  const covered = 6 * s.series.step_s + Math.max(1, s.now - s.series.at[s.series.at.length - 1]);
  const rps = reqs / covered;
  const routes = s.models.flatMap((m) => m.routes);
  const down = routes.filter((r) => r.health !== "healthy" || !r.provider_up).length;
  const tiles = [
    [rps.toFixed(1), "requests / s (last minute)"],
    [reqs ? ((100 * errs) / reqs).toFixed(2) + " %" : "0 %", "server errors (last minute)"],
    [routes.length - down + " / " + routes.length, "routes healthy"],
    [fmt.count(s.sessions), "active sessions"],
    [fmt.count(s.responses), "stored responses"],
  ];
  $("tiles").replaceChildren(
    ...tiles.map(([v, label]) => {
      const d = text("div", null, "tile");
      d.append(text("b", v), text("span", label));
      return d;
    })
  );
}

function drawPlots(s) {
  const x = s.series.at;
  const per = s.series.step_s;
  const rate = s.series.requests.map((n) => n / per);
  const pct = (a) => a.map((n, i) => (s.series.requests[i] ? (100 * n) / s.series.requests[i] : null));
  const data = {
    rate: [x, rate],
    errors: [x, pct(s.series.server_errors), pct(s.series.client_errors)],
    latency: [x, s.series.p50_ms, s.series.p99_ms],
  };
  if (!plots) {
    const width = (id) => Math.max(320, $(id).clientWidth || 400);
    // Gaps (slots without requests) are bridged, and points shown, so sparse traffic is visible.
    const line = (s) => ({ spanGaps: true, points: { show: true, size: 4 }, width: 1.5, ...s });
    const opts = (id, series, extra) => ({
      width: width(id), height: 200, legend: { live: false },
      scales: { x: { time: true } }, series: [{}, ...series.map(line)], ...extra,
    });
    plots = {
      rate: new uPlot(opts("plot-rate", [{ label: "req/s", stroke: "#2f6fde", fill: "rgba(47,111,222,0.12)" }]), data.rate, $("plot-rate")),
      errors: new uPlot(opts("plot-errors", [
        { label: "5xx %", stroke: "#d0342c" },
        { label: "4xx %", stroke: "#c98a00" },
      ]), data.errors, $("plot-errors")),
      latency: new uPlot(opts("plot-latency", [
        { label: "p50", stroke: "#1f9d55" },
        { label: "p99", stroke: "#7a3fd1" },
      ], { scales: { x: { time: true }, y: { distr: 3 } } }), data.latency, $("plot-latency")),
    };
  } else {
    plots.rate.setData(data.rate);
    plots.errors.setData(data.errors);
    plots.latency.setData(data.latency);
  }
}

function drawModels(s) {
  const blocks = s.models.map((m) => {
    const tierWeight = {};
    m.routes.forEach((r) => (tierWeight[r.priority] = (tierWeight[r.priority] || 0) + r.weight));
    const rows = m.routes.map((r) => {
      const state = r.provider_up ? r.health : "down";
      const label = { healthy: "healthy", half_open: "half-open", ejected: "ejected", down: "provider down" }[state];
      const badge = text("span", label + (r.ejected_for_s ? " " + r.ejected_for_s + "s" : ""), "badge " + state);
      const share = ((100 * r.weight) / tierWeight[r.priority]).toFixed(0) + " %";
      const ceiling = [r.max_rps && r.max_rps + " (route)", r.provider_max_rps && r.provider_max_rps + " (provider)"]
        .filter(Boolean).join(", ") || "–";
      return [r.provider, r.upstream_model, r.priority, r.weight, share, badge, ceiling];
    });
    const t = table(m.name + " (" + m.type + ")", [
      ["provider"], ["upstream model"], ["priority", 1], ["weight", 1], ["share of tier", 1], ["health"], ["max rps", 1],
    ], rows);
    t.dataset.model = m.name;
    t.classList.add("model");
    return t;
  });
  $("models").replaceChildren(...(blocks.length ? blocks : [text("p", "No models.", "muted")]));
}

function drawUsage(s) {
  if (!s.usage) {
    $("usage").replaceChildren(text("p", "No ledger (usage.sink: none), or it is unavailable.", "muted"));
    return;
  }
  const grid = text("div", null, "usage-grid");
  for (const [period, title] of [["today", "Today (UTC)"], ["month", "This month"]]) {
    for (const [group, what] of [["by_key", "key"], ["by_model", "model"]]) {
      const byModel = group === "by_model";
      // The share of input read from a prompt cache, and (per model) what that saved; the
      // requests the result cache answered, and what their answers had cost.
      const cached = (r) => (r.input_tokens ? Math.round((100 * (r.cached_input_tokens || 0)) / r.input_tokens) + "%" : "–");
      const hits = (r) => (r.cache_hits ? fmt.int(r.cache_hits) + " (" + Math.round(100 * (r.cache_hit_ratio || 0)) + "%)" : "–");
      const rows = (s.usage[period][group] || [])
        .slice()
        .sort((a, b) => Number(b.cost) - Number(a.cost) || b.requests - a.requests)
        .map((r) => [r.name || "(no key)", fmt.int(r.requests), fmt.int(r.input_tokens), cached(r), fmt.int(r.output_tokens), fmt.usd(r.cost)]
          .concat(byModel ? [fmt.usd(r.saved || "0")] : [])
          .concat([hits(r), fmt.usd(r.cache_saved_cost || "0")]));
      const columns = [[what], ["requests", 1], ["input tokens", 1], ["cached", 1], ["output tokens", 1], ["cost", 1]]
        .concat(byModel ? [["cache saved", 1]] : [])
        .concat([["result cache hits", 1], ["hits saved", 1]]);
      grid.append(table(title + " by " + what, columns, rows));
    }
  }
  $("usage").replaceChildren(grid);
}

async function refresh() {
  const key = sessionStorage.getItem(KEY_SLOT);
  const headers = key ? { Authorization: "Bearer " + key } : {};
  let response;
  try {
    response = await fetch("/admin/v1/stats", { headers, cache: "no-store" });
  } catch (e) {
    $("live").textContent = "unreachable";
    $("live").className = "live bad";
    return;
  }
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(KEY_SLOT);
    $("board").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = key ? "That key is not an admin key." : "";
    $("live").textContent = "signed out";
    $("live").className = "live bad";
    return;
  }
  if (!response.ok) {
    $("live").textContent = "error " + response.status;
    $("live").className = "live bad";
    return;
  }
  const s = await response.json();
  $("login").hidden = true;
  $("board").hidden = false;
  $("meta").textContent = "v" + s.version + " · up " + fmt.uptime(s.uptime_s);
  $("live").textContent = "live · " + new Date(s.now * 1000).toLocaleTimeString();
  $("live").className = "live ok";
  drawTiles(s);
  drawPlots(s);
  drawModels(s);
  drawUsage(s);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY_SLOT, $("key").value.trim());
  $("key").value = "";
  refresh();
});
window.addEventListener("hashchange", () => { takeKeyFromFragment(); refresh(); });

takeKeyFromFragment();
refresh();
setInterval(refresh, REFRESH_MS);
