// dashboard.js - the ThothOS dashboard's page (docs/DASHBOARD.md).
// Live data: Server-Sent Events from thothd's /events, one object a second.
// Charts: drawn on <canvas> here (no library), all on one time axis: the
// server's CLOCK_MONOTONIC (t_ns), the last WINDOW_S seconds.  A click on a
// chart downloads +-1 s around that instant as a Chrome JSON trace
// (/trace.json, thothd's OBS-1 exporter).
"use strict";

const WINDOW_S = 120;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") +
                                   "token=" + encodeURIComponent(token) : url;

// What tests and curious users can read: ticks received, last object, charts.
const state = { ticks: 0, last: null, charts: {}, latestNs: 0 };
window.thothDashboard = state;

class Chart {
  constructor(id, unit, opts = {}) {
    this.canvas = document.getElementById(id);
    this.ctx = this.canvas.getContext("2d");
    this.unit = unit;
    this.series = new Map();        // name -> [[t_ns, value], ...]
    this.fixedMax = opts.max;       // e.g. 1 for fractions
    this.points = 0;
    this.canvas.addEventListener("click", (ev) => this.onClick(ev));
    state.charts[id] = this;
  }
  add(name, tNs, value) {
    if (value === null || value === undefined || !isFinite(value)) return;
    if (!this.series.has(name)) this.series.set(name, []);
    const s = this.series.get(name);
    s.push([tNs, value]);
    this.points++;
    const oldest = tNs - WINDOW_S * 1e9;
    while (s.length && s[0][0] < oldest) s.shift();
  }
  xOf(tNs, w) {
    const right = state.latestNs, left = right - WINDOW_S * 1e9;
    return 50 + (w - 60) * (tNs - left) / (right - left);
  }
  draw() {
    const c = this.canvas, g = this.ctx, w = c.width, h = c.height;
    g.clearRect(0, 0, w, h);
    let max = this.fixedMax || 0;
    if (!this.fixedMax)
      for (const s of this.series.values()) for (const p of s) max = Math.max(max, p[1]);
    if (max <= 0) max = 1;
    const top = 8, bottom = h - 18, yOf = (v) => bottom - (bottom - top) * v / max;
    g.strokeStyle = "#c9ced6"; g.fillStyle = "#6a7180"; g.font = "11px sans-serif";
    g.beginPath(); g.moveTo(50, top); g.lineTo(50, bottom); g.lineTo(w - 10, bottom); g.stroke();
    g.fillText(fmt(max) + " " + this.unit, 2, top + 8);
    g.fillText("0", 38, bottom);
    for (let s = 0; s <= WINDOW_S; s += 30)
      g.fillText("-" + (WINDOW_S - s) + " s", this.xOf(state.latestNs - (WINDOW_S - s) * 1e9, w) - 12, h - 4);
    let i = 0, legendX = 60;
    for (const [name, pts] of this.series) {
      const color = COLORS[i++ % COLORS.length];
      g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
      pts.forEach((p, k) => {
        const x = this.xOf(p[0], w), y = yOf(Math.min(p[1], max));
        if (k) g.lineTo(x, y); else g.moveTo(x, y);
      });
      g.stroke();
      g.fillStyle = color; g.fillText(name, legendX, top + 10);
      legendX += g.measureText(name).width + 14;
    }
  }
  onClick(ev) {
    if (!state.latestNs) return;
    const r = this.canvas.getBoundingClientRect();
    const x = (ev.clientX - r.left) * this.canvas.width / r.width;
    const right = state.latestNs, left = right - WINDOW_S * 1e9;
    const t = left + (x - 50) / (this.canvas.width - 60) * (right - left);
    exportWindow(Math.max(0, Math.round(t - 1e9)), Math.round(t + 1e9));
  }
}

function fmt(v) {
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

async function exportWindow(fromNs, toNs) {
  const url = withToken("trace.json?from_ns=" + fromNs + "&to_ns=" + toNs);
  const resp = await fetch(url);
  if (!resp.ok) { setStatus("export failed: " + resp.status, "down"); return; }
  const blob = await resp.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "thoth-" + fromNs + ".json";
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function setStatus(text, cls) {
  const el = document.getElementById("status");
  el.textContent = text; el.className = "status " + (cls || "");
}
function note(id, text) { document.getElementById(id).textContent = text || ""; }
function fillTable(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    return tr;
  }));
}

const charts = {
  cpuidle: new Chart("c-cpuidle", "of time", { max: 1 }),
  pstate: new Chart("c-pstate", "MHz"),
  power: new Chart("c-power", "mW"),
  wakeups: new Chart("c-wakeups", "/s"),
  latency: new Chart("c-latency", "µs"),
  rings: new Chart("c-rings", "fill", { max: 1 }),
  pm: new Chart("c-pm", "level"),
  energy: new Chart("c-energy", "mJ/req"),
  locks: new Chart("c-locks", "ms wait/s"),
};
const lockPrev = new Map();      // "pid address" -> [t_ns, wait_ns_total]

function onTick(d) {
  state.ticks++; state.last = d; state.latestNs = d.t_ns;
  const t = d.t_ns;
  document.getElementById("clock").textContent =
    "t = " + (t / 1e9).toFixed(1) + " s (monotonic), " + d.events + " trace events";

  const ci = d.cpuidle;
  note("cpuidle-note", ci.available ? "" :
       "No source: " + ci.why + " (cpuidle driver: " + ci.driver + ").");
  for (const cpu of ci.cpus)
    for (const s of cpu.states) charts.cpuidle.add("cpu" + cpu.cpu + " " + s.name, t, s.residency);
  // P-state: cpufreq where the host has it; otherwise each governed
  // service's modelled choice (SCHED-1), labelled "modelled".
  const ps = d.pstate, src = document.getElementById("pstate-source");
  src.textContent = ps.source === "none" ? "no source" : ps.source;
  src.className = "badge " + (ps.source === "modelled" ? "modelled" : "");
  note("pstate-note", ps.available ? (ps.source === "modelled" ? ps.why + "." : "") :
       "No source: " + ps.why + ".");
  const pstateRows = [];
  for (const cpu of ci.cpus)
    if (cpu.freq_khz !== null) {
      charts.pstate.add("cpu" + cpu.cpu, t, cpu.freq_khz / 1e3);
      pstateRows.push(["cpu" + cpu.cpu + " (cpufreq)", "", fmt(cpu.freq_khz / 1e3), "", "", ""]);
    }
  for (const m of ps.modelled || []) {
    charts.pstate.add(m.name + " " + m.pid + " (modelled)", t, m.avg_khz / 1e3);
    pstateRows.push([m.name + " (modelled)", m.pid, fmt(m.khz / 1e3), m.opp, fmt(m.avg_khz / 1e3),
                     fmt(m.changes_per_s)]);
  }
  fillTable("t-pstate", pstateRows);

  // Modelled CPU power of each governed service (SCHED-1): its requests'
  // handler CPU time priced at their OPP's busy power in the model its
  // trace names: a published table (kernel/pm/energy.c) or the machine's
  // own energy model, which thothd reads from sysfs too. Never measured
  // here; a model thothd cannot read is shown unpriced with the reason.
  const pp = d.pm_power || { available: false, why: "thothd sends no modelled power", services: [] };
  note("power-note", pp.available ? pp.why + "." : "No source: " + pp.why + ".");
  for (const s of pp.services)
    if (s.model) charts.power.add(s.name + " " + s.pid + " (" + s.model + ", modelled)", t, s.power_mw);
  fillTable("t-power", pp.services.map((s) => [s.name, s.pid,
    s.model || "unpriced: " + (s.unpriced_why || "no model known"),
    s.opp, s.model ? s.opp_busy_mw : "", s.model ? fmt(s.power_mw) : "",
    fmt(s.requests_per_s), (100 * s.cpu_share).toFixed(2) + " %",
    s.mj_per_request === null ? "" : fmt(s.mj_per_request), s.model ? fmt(s.energy_mj_total / 1e3) : ""]));

  for (const p of d.procs) charts.wakeups.add(p.name + " " + p.pid, t, p.wakeups_per_s.all);
  fillTable("t-wakeups", d.procs.map((p) => [p.name, p.pid, fmt(p.wakeups_per_s.all),
    fmt(p.wakeups_per_s.fd), fmt(p.wakeups_per_s.doorbell), fmt(p.wakeups_per_s.socket_message),
    fmt(p.wakeups_per_s.timer), fmt(p.wakeups_per_s.signal),
    fmt(p.wakeups_per_s.deferred), fmt(p.timers_per_s)]));

  note("latency-note", d.channels.length ? "" :
       "No round trip seen yet: the histograms fill as traced calls complete.");
  // Interfaces by name where thothd knows it (its compiled schemas, or the
  // service's registered claim), else by wire id; methods likewise.
  const ifaceOf = (c) => c.interface_name || c.interface;
  const methodOf = (c) => c.method_name || "#" + c.method;
  for (const c of d.channels)
    if (c.rate > 0) charts.latency.add(c.service + " " + c.pid + " " + ifaceOf(c) + "." + methodOf(c), t, c.p99_us);
  fillTable("t-latency", d.channels.map((c) => [c.service, c.pid, ifaceOf(c), methodOf(c),
    c.transport, fmt(c.rate), fmt(c.p50_us), fmt(c.p99_us), fmt(c.queue_p50_us),
    fmt(c.wakeups_per_s)]));

  for (const r of d.rings) charts.rings.add(r.name + " " + r.pid, t, r.fill);
  fillTable("t-rings", d.rings.map((r) => [r.name, r.pid, (100 * r.fill).toFixed(1) + " %", r.read, r.lost]));

  const pm = d.pm;
  note("pm-note", !pm.available ? "No source: the power broker did not answer." :
       pm.elements.length ? "" : "No PM element declared (the power broker runs; no driver declared one).");
  for (const e of pm.elements) charts.pm.add(e.name, t, e.level);
  fillTable("t-pm", pm.elements.map((e) => [e.name, e.level + " " + e.level_name, e.target,
    e.leases, fmt(e.energy_mj)]));

  // Two modelled sources: the PM elements' energy over all round trips, and
  // each governed service's CPU energy over its own requests.
  const perService = pp.services.filter((s) => s.model && s.mj_per_request !== null);
  note("energy-note", (d.energy.available ? "" : "PM elements: " + d.energy.why + ". ") +
       (pp.available ? "Governed services: CPU energy of their requests (see the CPU power panel)." :
        "Governed services: " + pp.why + "."));
  if (d.energy.available) charts.energy.add("PM elements, all services", t, d.energy.mj_per_request);
  for (const s of perService)
    charts.energy.add(s.name + " " + s.pid + " CPU (" + s.model + ")", t, s.mj_per_request);

  note("locks-note", d.locks.available ? "" : "No source: " + d.locks.why + ".");
  const locks = (d.locks.available && d.locks.report && d.locks.report.locks) || [];
  for (const k of locks) {
    const key = k.pid + " " + k.address, prev = lockPrev.get(key);
    // The report is refreshed every few seconds: a rate between refreshes.
    if (prev && k.wait_ns_total !== prev[1])
      charts.locks.add((k.name || k.storage || k.address) + " " + k.pid, t,
                       (k.wait_ns_total - prev[1]) / 1e6 / ((t - prev[0]) / 1e9));
    if (!prev || k.wait_ns_total !== prev[1]) lockPrev.set(key, [t, k.wait_ns_total]);
  }
  fillTable("t-locks", locks.map((k) => [k.name || k.storage || k.address, k.pid, k.contentions,
    fmt(k.wait_ns_total / 1e6), fmt(k.wait_ns_max / 1e3),
    (k.call_sites && k.call_sites[0] && ((k.call_sites[0].function || "") + " " + (k.call_sites[0].location || k.call_sites[0].address))) || ""]));
  for (const c of Object.values(charts)) c.draw();
}

function connect() {
  const es = new EventSource(withToken("events"));
  es.addEventListener("open", () => setStatus("live", "live"));
  es.addEventListener("tick", (ev) => onTick(JSON.parse(ev.data)));
  es.addEventListener("error", () => setStatus("disconnected: retrying", "down"));
}
connect();

// OBS-2: kernel probes' maps (sched_switch counts beside the IPC events),
// read by thothd when asked (/probes.json): polled, not part of the tick.
async function pollProbes() {
  try {
    const resp = await fetch(withToken("probes.json"));
    const doc = await resp.json();
    const kernel = doc.probes.filter((p) => p.kernel && p.state.startsWith("running"));
    const rows = [];
    for (const p of kernel)
      for (const m of p.maps)
        for (const e of m.entries.slice(0, 32)) rows.push([p.id, p.object, m.name, e.key, e.value]);
    note("kprobes-note", kernel.length ? "" : "no kernel probe attached");
    fillTable("t-kprobes", rows);
  } catch (e) {
    note("kprobes-note", "cannot read probes.json: " + e);
  }
}
pollProbes();
setInterval(pollProbes, 2000);

// SCALE-2: the counters of every serving process, each per-CPU service's
// workers folded by thothd from its trace buffer (/serve.json): polled.
async function pollServe() {
  try {
    const resp = await fetch(withToken("serve.json"));
    const doc = await resp.json();
    note("serve-note", doc.services.length ? "" :
      "no connected process serves (a service needs a trace buffer: thoth_trace_init_process)");
    // A process that serves nothing is listed for its dropped oneway
    // calls (workers 0, no refusal): one line saying so, no empty cells.
    fillTable("t-serve", doc.services.map((s) => (!s.workers && !s.why)
      ? [s.pid, s.process, "serves nothing; oneway calls dropped " + s.oneways_dropped,
         "", "", "", "", "", "", ""]
      : [s.pid, s.process, s.iface, s.workers, s.clients,
         s.calls, s.turns, s.handed_over, s.worker_calls.join(" "), s.why]));
  } catch (e) {
    note("serve-note", "cannot read serve.json: " + e);
  }
}
pollServe();
setInterval(pollServe, 2000);

// OBS-3: thothd's lifecycle history (/lifecycle.json, the same events as
// `thothctl status`): polled.  Names are a peer's: textContent only.
function agoText(ns) {
  const s = ns / 1e9;
  if (s < 1) return Math.round(ns / 1e6) + " ms";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
  return Math.floor(s / 3600) + " h " + String(Math.floor(s / 60 % 60)).padStart(2, "0") + " min";
}
function lifecycleDetail(e) {
  if (e.kind === "started")
    return e.predecessor_pid ? "replaced pid " + e.predecessor_pid + " (started " +
      (e.predecessor_started_unix_ns ? new Date(e.predecessor_started_unix_ns / 1e6).toISOString() : "?") +
      "), which did not stop cleanly" : "";
  if (e.kind === "lost") return "connection closed while registered; process " + e.pid_state;
  if (e.kind === "reregistered") return agoText(e.gap_ns) + " after pid " + e.previous_pid + " was lost";
  return "";
}
async function pollLifecycle() {
  try {
    const resp = await fetch(withToken("lifecycle.json"));
    const doc = await resp.json();
    note("lifecycle-note", "thothd keeps the last " + doc.capacity + " events" +
      (doc.dropped ? "; " + doc.dropped + " older dropped" : ""));
    fillTable("t-lifecycle", doc.events.map((e) => [
      new Date(e.at_unix_ns / 1e6).toISOString(), agoText(Math.max(0, doc.now_ns - e.at_ns)),
      e.kind, e.service, e.version, e.pid, lifecycleDetail(e)]));
  } catch (e) {
    note("lifecycle-note", "cannot read lifecycle.json: " + e);
  }
}
pollLifecycle();
setInterval(pollLifecycle, 2000);

// SCALE-3: the registered instances and the load each last reported
// (/services.json, as `thothctl services`'s "(load: X% busy, Q qps)").
// Names, versions and addresses may be another host's: textContent only.
function loadText(s) {
  if (!s.utilization_permille && !s.qps) return "no report";
  return Math.floor(s.utilization_permille / 10) + "." + (s.utilization_permille % 10) + "% busy, " +
    s.qps + " qps";
}
async function pollServices() {
  try {
    const resp = await fetch(withToken("services.json"));
    const doc = await resp.json();
    note("services-note", doc.total ? (doc.services.length < doc.total
      ? "the first " + doc.services.length + " of " + doc.total + " instances" : "") :
      "no service registered");
    fillTable("t-services", doc.services.map((s) => [s.name, s.version, s.endpoint, s.locality, s.pid,
      loadText(s)]));
  } catch (e) {
    note("services-note", "cannot read services.json: " + e);
  }
}
pollServices();
setInterval(pollServices, 2000);

// SCALE-3: the federation (/federation.json, as `thothctl status`'s):
// etcd, this host's lease, the other hosts.  Host ids are a peer's:
// textContent only (fillTable, note).
async function pollFederation() {
  try {
    const resp = await fetch(withToken("federation.json"));
    const f = await resp.json();
    if (!f.enabled) {
      note("federation-note", "off: thothd runs without --etcd (this host's services only)");
      fillTable("t-federation", []);
      return;
    }
    note("federation-note", "host " + f.host_id + ", etcd " + f.etcd + " " +
      (f.etcd_up ? "answers" : "DOES NOT ANSWER" +
        (f.etcd_down_for_ns ? " for " + agoText(f.etcd_down_for_ns) : "") +
        " (serving this host's services only, retrying)") +
      "; lease TTL " + f.lease_ttl_s + " s " + (f.lease_alive ? "alive" : "NONE") +
      "; watch " + (f.watching ? "open" : "NOT OPEN") + "; " + f.local_instances + " local mirrored, " +
      f.remote_instances + " remote from " + f.hosts_total + " hosts; left out: " + f.conflicts +
      " conflicting with a local instance, " + f.left_out + " keys not taken");
    const rows = f.hosts.map((h) => [h.id, h.instances, agoText(h.last_seen_ago_ns) + " ago"]);
    if (f.hosts.length < f.hosts_total)
      rows.push(["... and " + (f.hosts_total - f.hosts.length) + " more, not listed (the first " +
        f.hosts.length + " by id are)", "", ""]);
    fillTable("t-federation", rows);
  } catch (e) {
    note("federation-note", "cannot read federation.json: " + e);
  }
}
pollFederation();
setInterval(pollFederation, 2000);
