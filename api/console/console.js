/* Lifeline console: plain ES2020, no build step, no library. It talks only to the API's JSON endpoints (and the
 * SSE stream, read with fetch() because EventSource cannot send the Authorization header). Every text from the
 * API goes into the page as text (textContent), never as HTML; every listener is attached here, none inline. */
"use strict";

(() => {
  // -- constants -------------------------------------------------------------------------------------------------
  const BASE = new URL("../", document.baseURI); // the console lives at <prefix>/console/, the API at <prefix>/
  const TZ = "Asia/Shanghai";
  const TOKEN_KEY = "lifeline.token";
  const DAY_MS = 86400000;
  const HOUR_MS = 3600000;
  const STALE_MS = 5 * 60000; // a device not heard from for this long is shown as stale
  const CHART_POINTS = 288; // one point every 5 minutes over 24 hours
  const GATE_PROFILE = "sluice_gate_plc";
  const GATE_ROLES = new Set(["gate_operator", "admin"]);
  const ALERT_ROLES = new Set(["gate_operator", "environment_officer", "safety_inspector", "admin"]);
  const ROLE_NAMES = {
    viewer: "viewer", gate_operator: "gate operator", environment_officer: "environment officer",
    safety_inspector: "work-safety inspector", admin: "admin",
  };
  // Each role starts on its own work (the other views stay one click away).
  const ROLE_VIEW = {
    gate_operator: { tab: "devices-view", kind: "water" },
    environment_officer: { tab: "alerts-view", kind: "environment" },
    safety_inspector: { tab: "alerts-view", kind: "safety" },
    viewer: { tab: "devices-view", kind: "" },
    admin: { tab: "devices-view", kind: "" },
  };
  // The catalogue profiles' `domain` tag, for the device filter (an unknown profile shows under "every device").
  const PROFILE_DOMAIN = {
    sluice_gate_plc: "water", water_quality_station: "environment", air_quality_station: "environment",
    noise_meter: "environment", flue_gas_cems: "emissions", gas_detector: "safety", fire_detector: "safety",
  };
  const STATE_NAMES = {
    active_unack: "active, unacknowledged", active_ack: "active, acknowledged",
    cleared_unack: "cleared, unacknowledged", normal: "normal",
  };
  const QUALITY_CODES = { 1: "uncertain", 2: "bad" };

  // -- state -----------------------------------------------------------------------------------------------------
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    user: null,
    sites: [],
    site: null,
    devices: new Map(), // device id -> DeviceOut, of the selected site
    latest: new Map(), // device id -> LatestOut
    device: null, // the device in the panel
    chart: null, // {device, point, start_ms, end_ms, points}
    alerts: [],
    alert: null, // the id of the alert in the panel
    stream: null, // AbortController of the live stream
    pending: null, // the gate command waiting for confirmation
    poll: null, // {id, timer} of the command being followed
    timers: {},
  };

  // -- small helpers ---------------------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const url = (path) => new URL(path.slice(1), BASE).toString();
  const sleep = (ms, signal) => new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child != null && child !== false) el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function svg(tag, attrs, text) {
    const el = document.createElementNS($("chart").namespaceURI, tag); // the page's <svg>: no namespace literal here
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    if (text != null) el.textContent = text;
    return el;
  }

  function debounce(name, ms, fn) {
    clearTimeout(state.timers[name]);
    state.timers[name] = setTimeout(fn, ms);
  }

  const timeParts = new Intl.DateTimeFormat("en-GB", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23",
  });

  function parts(ms) {
    const out = {};
    for (const p of timeParts.formatToParts(new Date(ms))) out[p.type] = p.value;
    return out;
  }

  /** "2026-05-12 14:03:09", China Standard Time. */
  function fmtTime(ms) {
    if (ms == null) return "—";
    const p = parts(ms);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }

  function fmtClock(ms) {
    const p = parts(ms);
    return `${p.hour}:${p.minute}`;
  }

  function fmtAge(ms) {
    if (ms == null) return "";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 90) return `${s} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function fmtValue(value, unit) {
    if (value == null) return "—";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "number") {
      const text = Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) >= 100 ? 1 : 3);
      return unit ? `${text} ${unit}` : text;
    }
    return String(value);
  }

  // -- the API ---------------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail, body) {
      super(describe(status, detail));
      this.status = status;
      this.detail = detail;
      this.body = body;
    }
  }

  /** The API's error body as one line: its reason, the interlock that refused, and the field at fault. */
  function describe(status, detail) {
    const prefix = status ? `${status}: ` : "";
    if (Array.isArray(detail)) { // FastAPI's request validation: a list of {loc, msg}
      return prefix + detail.map((e) => {
        const field = (e.loc || []).filter((p) => p !== "body" && p !== "query" && p !== "path").join(".");
        return field ? `${e.msg} (field: ${field})` : e.msg;
      }).join("; ");
    }
    if (detail && typeof detail === "object") {
      let text = detail.reason || "refused";
      if (detail.interlock) text = `refused by interlock ${detail.interlock}: ${text}`;
      if (detail.field) text += ` (field: ${detail.field})`;
      return prefix + text;
    }
    return prefix + (detail || "the request failed");
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url(path), init);
    } catch (err) {
      throw new ApiError(0, { reason: `the API is not reachable (${err.message})` });
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = text; // not JSON (a proxy's error page): shown as it is
    }
    if (!response.ok) {
      const detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
      const error = new ApiError(response.status, detail, data);
      if (response.status === 401 && state.token) sessionEnded("Your session has ended: log in again.");
      else if (response.status === 403 && String(detail && detail.reason).startsWith("change the one-time")) {
        showPassword();
      }
      throw error;
    }
    return data;
  }

  function showError(id, message) {
    const el = $(id);
    el.textContent = message || "";
    el.hidden = !message;
  }

  function banner(err) {
    $("banner-text").textContent = err instanceof Error ? err.message : String(err);
    $("banner").hidden = false;
  }

  // -- session ---------------------------------------------------------------------------------------------------
  const VIEWS = ["login-view", "password-view", "devices-view", "alerts-view"];

  function show(view) {
    for (const id of VIEWS) $(id).hidden = id !== view;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === view);
  }

  function showLogin(message) {
    $("tabs").hidden = true;
    $("whoami").hidden = true;
    showError("login-error", message);
    show("login-view");
    $("login-form").elements.username.focus();
  }

  function showPassword() {
    $("tabs").hidden = true;
    showWho();
    show("password-view");
    $("password-form").elements.old_password.focus();
  }

  function showWho() {
    $("user-name").textContent = state.user ? state.user.username : "";
    $("user-role").textContent = state.user ? ROLE_NAMES[state.user.role] || state.user.role : "";
    $("whoami").hidden = !state.user;
  }

  function may(roles) {
    return Boolean(state.user) && roles.has(state.user.role);
  }

  async function boot() {
    wire();
    if (!state.token) {
      showLogin("");
      return;
    }
    try {
      state.user = await api("GET", "/api/auth/me");
    } catch (err) {
      if (err.status !== 401) showLogin(err.message);
      return;
    }
    enter();
  }

  function enter() {
    showWho();
    if (state.user.must_change_password) {
      showPassword();
      return;
    }
    const view = ROLE_VIEW[state.user.role] || ROLE_VIEW.viewer;
    $("kind-filter").value = view.kind;
    $("tabs").hidden = false;
    show(view.tab);
    startStream();
    loadSites();
    loadAlerts();
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const form = ev.currentTarget;
    showError("login-error", "");
    try {
      const out = await api("POST", "/api/auth/login", {
        username: form.elements.username.value.trim(), password: form.elements.password.value,
      });
      state.token = out.token;
      state.user = out.user;
      sessionStorage.setItem(TOKEN_KEY, out.token);
      form.reset();
      enter();
    } catch (err) {
      showError("login-error", err.message);
    }
  }

  async function onPassword(ev) {
    ev.preventDefault();
    const element = ev.currentTarget; // gone from the event once it has been dispatched: kept for after the await
    const form = element.elements;
    showError("password-error", "");
    if (form.new_password.value !== form.confirm.value) {
      showError("password-error", "the two new passwords differ (field: confirm)");
      return;
    }
    try {
      const username = state.user.username;
      await api("POST", "/api/auth/password", {
        old_password: form.old_password.value, new_password: form.new_password.value,
      });
      // a new password ends every session of the user, this one too: log in again with it
      const out = await api("POST", "/api/auth/login", { username, password: form.new_password.value });
      state.token = out.token;
      state.user = out.user;
      sessionStorage.setItem(TOKEN_KEY, out.token);
      element.reset();
      enter();
    } catch (err) {
      showError("password-error", err.message);
    }
  }

  async function logout() {
    try {
      await api("POST", "/api/auth/logout");
    } catch (err) {
      // the session ends in this browser whatever the API answered (an expired token is already gone)
    }
    sessionEnded("");
  }

  function sessionEnded(message) {
    stopStream();
    stopPolling();
    for (const timer of Object.values(state.timers)) clearTimeout(timer);
    sessionStorage.removeItem(TOKEN_KEY);
    Object.assign(state, {
      token: null, user: null, sites: [], site: null, devices: new Map(), latest: new Map(), device: null,
      chart: null, alerts: [], alert: null, pending: null,
    });
    $("device-panel").hidden = true;
    $("alert-panel").hidden = true;
    $("banner").hidden = true;
    showLogin(message);
  }

  // -- sites and devices -----------------------------------------------------------------------------------------
  async function loadSites() {
    try {
      state.sites = await api("GET", "/api/sites");
    } catch (err) {
      banner(err);
      return;
    }
    renderSites();
    if (!state.site && state.sites.length) selectSite(state.sites[0].site);
  }

  function renderSites() {
    $("site-list").replaceChildren(...state.sites.map((s) => h("li", null,
      h("button", { type: "button", class: s.site === state.site ? "active" : "", onclick: () => selectSite(s.site) },
        h("span", null, s.site),
        h("small", null, `${s.area || "no area"} · ${s.online}/${s.devices} online`)))));
  }

  async function selectSite(site) {
    if (site !== state.site) {
      state.device = null;
      $("device-panel").hidden = true;
    }
    state.site = site;
    renderSites();
    $("site-title").textContent = site;
    try {
      const devices = await api("GET", `/api/sites/${enc(site)}/devices`);
      if (state.site !== site) return;
      state.devices = new Map(devices.map((d) => [d.device, d]));
      renderDevices();
    } catch (err) {
      banner(err);
      return;
    }
    try { // the newest values: live ones, else InfluxDB's (which may be unreachable: devices still show)
      const latest = await api("GET", `/api/sites/${enc(site)}/latest`);
      if (state.site !== site) return;
      state.latest = new Map(latest.map((l) => [l.device, l]));
    } catch (err) {
      banner(err);
    }
    renderDevices();
    if (state.device) renderDevice();
  }

  function qualityBadge(quality) {
    return h("span", { class: `badge q-${quality || "unknown"}` }, quality || "unknown");
  }

  function statusCell(d) {
    const cls = d.online === true ? "online" : d.online === false ? "offline" : "";
    const text = d.online === true ? "online" : d.online === false ? "offline" : "unknown";
    return h("td", { title: d.status_reason || null }, h("span", { class: `dot ${cls}` }), text);
  }

  // Points a list row shows first: what each kind of device is watched for; command coils and limit switches last.
  const KEY_POINTS = ["gate_opening", "level_up", "level_down", "fault_code", "remote_mode", "ph", "do", "nh3_n",
    "codmn", "pm25", "pm10", "o3", "aqi", "so2", "nox", "dust", "lel", "alarm_level", "fire_alarm", "leq", "la"];

  function summary(latest) {
    if (!latest || !latest.values) return [];
    const rank = (name) => {
      const i = KEY_POINTS.indexOf(name);
      return i >= 0 ? i : name.startsWith("cmd_") || name.startsWith("limit_") ? 1000 : 100;
    };
    const entries = Object.entries(latest.values).sort((a, b) => rank(a[0]) - rank(b[0]));
    return entries.slice(0, 5).map(([name, value]) => h("span", null,
      `${name} `, h("b", null, fmtValue(value, latest.units[name])), "  "));
  }

  function renderDevices() {
    const kind = $("kind-filter").value;
    const rows = [];
    for (const d of state.devices.values()) {
      if (kind && PROFILE_DOMAIN[d.profile] !== kind) continue;
      const stale = d.last_seen_ms != null && Date.now() - d.last_seen_ms > STALE_MS;
      rows.push(h("tr", {
        class: `clickable${d.device === state.device ? " selected" : ""}`, onclick: () => openDevice(d.device),
      },
      statusCell(d),
      h("td", null, h("b", null, d.device)),
      h("td", null, d.profile),
      h("td", { class: stale ? "stale" : null, title: fmtAge(d.last_seen_ms) }, fmtTime(d.last_seen_ms)),
      h("td", null, qualityBadge(d.quality)),
      h("td", { class: "values" }, summary(state.latest.get(d.device)))));
    }
    $("device-rows").replaceChildren(...rows);
    $("devices-empty").hidden = rows.length > 0;
  }

  function openDevice(device) {
    const changed = device !== state.device;
    state.device = device;
    if (changed) {
      state.chart = null;
      state.pending = null;
      stopPolling();
      $("gate-confirm").hidden = true;
      $("gate-progress").replaceChildren();
    }
    $("device-panel").hidden = false;
    renderDevices();
    renderDevice();
  }

  function closeDevice() {
    state.device = null;
    state.chart = null;
    state.pending = null;
    stopPolling();
    $("device-panel").hidden = true;
    renderDevices();
  }

  function numericPoints(latest) {
    if (!latest || !latest.values) return [];
    return Object.keys(latest.values).filter((p) => typeof latest.values[p] === "number");
  }

  function renderDevice() {
    const d = state.devices.get(state.device);
    if (!d) return;
    const latest = state.latest.get(d.device);
    $("device-title").textContent = `${d.site} / ${d.device}`;
    $("device-meta").textContent = [
      d.profile, d.area ? `area ${d.area}` : "no area",
      d.online === true ? "online" : d.online === false ? `offline${d.status_reason ? ` (${d.status_reason})` : ""}`
        : "status unknown",
      `last seen ${fmtTime(d.last_seen_ms)} (${fmtAge(d.last_seen_ms) || "never"})`,
      latest ? `values from ${latest.source}` : "",
    ].filter(Boolean).join(" · ");
    const rows = Object.entries((latest && latest.values) || {}).map(([name, value]) => {
      const q = latest.quality[name] || "good";
      return h("tr", null, h("td", null, name), h("td", null, h("b", null, fmtValue(value, latest.units[name]))),
        h("td", null, fmtTime(latest.times_ms[name])),
        h("td", { title: latest.reasons[name] || null }, qualityBadge(q),
          latest.reasons[name] ? ` ${latest.reasons[name]}` : ""));
    });
    $("device-values").replaceChildren(...rows);

    const select = $("chart-point");
    const points = numericPoints(latest);
    const chosen = state.chart ? state.chart.point
      : points.includes("gate_opening") ? "gate_opening" : points[0];
    if (Array.from(select.options, (o) => o.value).join() !== points.join()) { // keep an open list open
      select.replaceChildren(...points.map((p) => h("option", { value: p }, p)));
    }
    if (chosen) select.value = chosen;
    if (chosen && (!state.chart || state.chart.point !== chosen)) loadChart(d.site, d.device, chosen);
    if (!chosen) {
      clearChart("no numeric values known yet");
    }
    $("gate-panel").hidden = !(d.profile === GATE_PROFILE && may(GATE_ROLES));
    if (!$("gate-panel").hidden) renderGateState();
  }

  // -- the 24-hour chart (inline SVG) ----------------------------------------------------------------------------
  async function loadChart(site, device, point) {
    state.chart = { site, device, point, start_ms: Date.now() - DAY_MS, end_ms: Date.now(), points: [] };
    $("chart-note").textContent = "loading…";
    const q = new URLSearchParams({ points: point, max_points: String(CHART_POINTS) });
    try {
      const out = await api("GET", `/api/sites/${enc(site)}/devices/${enc(device)}/history?${q}`);
      if (!state.chart || state.chart.device !== device || state.chart.point !== point) return;
      Object.assign(state.chart, { start_ms: out.start_ms, end_ms: out.end_ms, points: out.points });
      drawChart();
    } catch (err) {
      clearChart(err.message);
    }
  }

  function clearChart(message) {
    $("chart").replaceChildren(svg("text", { x: 320, y: 120, "text-anchor": "middle", class: "empty" }, message));
    $("chart-note").textContent = "";
  }

  function drawChart() {
    const c = state.chart;
    const chart = $("chart");
    const latest = state.latest.get(c.device);
    const unit = (latest && latest.units[c.point]) || "";
    const data = c.points.filter((p) => typeof p.values[c.point] === "number");
    if (!data.length) {
      clearChart("no data in the last 24 hours");
      return;
    }
    const W = 640, H = 240, L = 58, R = 14, T = 12, B = 26;
    const start = c.start_ms, end = Math.max(c.end_ms, data[data.length - 1].time_ms);
    let lo = Math.min(...data.map((p) => p.values[c.point]));
    let hi = Math.max(...data.map((p) => p.values[c.point]));
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
    const x = (t) => L + ((t - start) / (end - start)) * (W - L - R);
    const y = (v) => T + ((hi - v) / (hi - lo)) * (H - T - B);
    const nodes = [];
    for (let i = 0; i <= 4; i += 1) { // five value lines
      const v = lo + ((hi - lo) * i) / 4;
      nodes.push(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "gridline" }));
      nodes.push(svg("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", class: "tick" }, fmtValue(+v.toFixed(2))));
    }
    // Time lines every 6 hours of Shanghai time (UTC+8 all year: its hours fall on UTC hours)
    const offset = 8 * HOUR_MS, step = 6 * HOUR_MS;
    for (let t = Math.ceil((start + offset) / step) * step - offset; t <= end; t += step) {
      nodes.push(svg("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, class: "gridline" }));
      nodes.push(svg("text", { x: x(t), y: H - 8, "text-anchor": "middle", class: "tick" }, fmtClock(t)));
    }
    nodes.push(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
    nodes.push(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
    // One polyline per run of points: a gap of more than three buckets is drawn as a gap, not a straight line
    const gap = (3 * (end - start)) / CHART_POINTS;
    let run = [];
    const flush = () => {
      if (run.length) nodes.push(svg("polyline", { points: run.join(" "), class: "series" }));
      run = [];
    };
    let previous = null;
    for (const p of data) {
      if (previous != null && p.time_ms - previous > gap) flush();
      run.push(`${x(p.time_ms).toFixed(1)},${y(p.values[c.point]).toFixed(1)}`);
      previous = p.time_ms;
      const q = QUALITY_CODES[p.quality[c.point]];
      if (q) nodes.push(svg("circle", { cx: x(p.time_ms), cy: y(p.values[c.point]), r: 2.5, class: `mark-${q}` }));
    }
    flush();
    chart.replaceChildren(...nodes);
    const last = data[data.length - 1];
    $("chart-note").textContent = `${c.point}${unit ? ` (${unit})` : ""}: ${fmtTime(start)} to ${fmtTime(end)}; `
      + `last ${fmtValue(last.values[c.point], unit)} at ${fmtTime(last.time_ms)}; ${data.length} points`
      + `${data.some((p) => p.quality[c.point]) ? "; dots mark uncertain or bad values" : ""}`;
  }

  // -- gate control ----------------------------------------------------------------------------------------------
  function gateFacts(latest) {
    const v = (latest && latest.values) || {};
    const num = (p) => (typeof v[p] === "number" ? v[p] : null);
    const up = num("level_up"), down = num("level_down");
    const faults = [];
    if (num("fault_code")) faults.push(`fault code ${v.fault_code}`);
    if (v.estop === true) faults.push("emergency stop");
    if (v.overload === true) faults.push("overload");
    if (v.power_ok === false) faults.push("no power");
    return {
      opening: num("gate_opening"), up, down, head: up != null && down != null ? Math.abs(up - down) : null,
      remote: typeof v.remote_mode === "boolean" ? v.remote_mode : null,
      moving: v.moving_open === true ? "opening" : v.moving_close === true ? "closing" : "at rest",
      faults, time: latest ? latest.time_ms : null,
    };
  }

  function factsList(f) {
    const mode = f.remote === true ? "remote" : f.remote === false ? "LOCAL: commands are refused" : "unknown";
    const rows = [
      ["Opening", fmtValue(f.opening, "m")], ["Upstream level", fmtValue(f.up, "m")],
      ["Downstream level", fmtValue(f.down, "m")], ["Head across the gate", fmtValue(f.head, "m")],
      ["Mode", mode], ["Movement", f.moving], ["Faults", f.faults.length ? f.faults.join(", ") : "none"],
      ["As of", `${fmtTime(f.time)} (${fmtAge(f.time) || "no data"})`],
    ];
    return rows.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]);
  }

  function renderGateState() {
    $("gate-state").replaceChildren(...factsList(gateFacts(state.latest.get(state.device))));
  }

  const ACTION_TEXT = { open: "Open", close: "Close", stop: "Stop", set_opening: "Set the opening of" };

  async function askGate(action) {
    const d = state.devices.get(state.device);
    if (!d) return;
    let target = null;
    if (action === "set_opening") {
      target = Number($("gate-target").value);
      if ($("gate-target").value === "" || !(target >= 0 && target <= 100)) {
        renderGateError("the target must be a percentage from 0 to 100 (field: target_pct)");
        return;
      }
    }
    let latest;
    try { // the confirmation shows the gate as it is now, not as the page last drew it
      latest = await api("GET", `/api/sites/${enc(d.site)}/devices/${enc(d.device)}/latest`);
      state.latest.set(d.device, latest);
      renderGateState();
    } catch (err) {
      renderGateError(err.message);
      return;
    }
    state.pending = { site: d.site, device: d.device, action, target };
    const f = gateFacts(latest);
    $("gate-confirm-text").textContent = `${ACTION_TEXT[action]} gate ${d.device} at ${d.site}`
      + `${target != null ? ` to ${target} % of full opening` : ""}?`;
    $("gate-confirm-state").replaceChildren(...factsList(f));
    const warnings = [];
    if (f.remote === false) warnings.push("the gate is in local mode");
    if (f.faults.length) warnings.push(`the gate reports ${f.faults.join(", ")}`);
    if (d.online === false) warnings.push("the device is offline");
    showError("gate-confirm-warning", warnings.length && action !== "stop"
      ? `Expect a refusal: ${warnings.join("; ")}.` : "");
    $("gate-confirm").hidden = false;
    $("gate-confirm-yes").focus();
  }

  function commandId() {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    return `c-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  async function sendCommand(p, body) {
    const path = `/api/gates/${enc(p.site)}/${enc(p.device)}/commands`;
    try {
      return await api("POST", path, body);
    } catch (err) {
      if (err.status !== 0) throw err;
      // The answer was lost: the id is the command's idempotency key, so sending it again cannot run it twice
      return api("POST", path, body);
    }
  }

  async function confirmGate() {
    const p = state.pending;
    $("gate-confirm").hidden = true;
    state.pending = null;
    if (!p) return;
    setGateButtons(false);
    const body = { id: commandId(), action: p.action };
    if (p.target != null) body.target_pct = p.target;
    let view;
    try {
      if (p.action !== "stop") { // select before operate (stop always goes through, without a selection)
        const sel = await api("POST", `/api/gates/${enc(p.site)}/${enc(p.device)}/select`);
        body.selection = sel.selection;
      }
      view = await sendCommand(p, body);
    } catch (err) {
      if (err.status === 503 && err.body && err.body.id) {
        view = err.body; // the broker did not take it: the body is the failed command
      } else {
        renderGateError(err.message);
        setGateButtons(true);
        return;
      }
    }
    setGateButtons(true);
    renderCommand(view);
    if (!view.final) followCommand(view.id);
  }

  function setGateButtons(enabled) {
    for (const b of document.querySelectorAll("[data-gate]")) b.disabled = !enabled;
  }

  function followCommand(id) {
    stopPolling();
    const poll = { id, timer: null };
    state.poll = poll;
    const tick = async () => {
      if (state.poll !== poll) return;
      try {
        const view = await api("GET", `/api/commands/${enc(id)}`);
        if (state.poll !== poll) return;
        renderCommand(view);
        if (view.final) {
          state.poll = null;
          refreshDeviceLatest();
          return;
        }
      } catch (err) {
        if (state.poll !== poll) return;
        renderGateError(err.message);
        if (err.status === 401 || err.status === 404) return;
      }
      poll.timer = setTimeout(tick, 1000);
    };
    poll.tick = tick;
    poll.timer = setTimeout(tick, 500);
  }

  function stopPolling() {
    if (state.poll) clearTimeout(state.poll.timer);
    state.poll = null;
  }

  async function refreshDeviceLatest() {
    const d = state.devices.get(state.device);
    if (!d) return;
    try {
      state.latest.set(d.device, await api("GET", `/api/sites/${enc(d.site)}/devices/${enc(d.device)}/latest`));
      renderDevice();
    } catch (err) {
      banner(err);
    }
  }

  function renderGateError(message) {
    $("gate-progress").replaceChildren(h("p", { class: "error" }, message));
  }

  function renderCommand(v) {
    const target = v.target_pct != null ? ` to ${v.target_pct} %` : "";
    const steps = (v.steps || []).map((s) => h("li", null,
      `${fmtTime(s.ts)} ${s.state}`,
      s.opening_m != null ? ` · opening ${fmtValue(s.opening_m, "m")}` : "",
      s.target_m != null ? ` · target ${fmtValue(s.target_m, "m")}` : "",
      s.interlock ? ` · interlock ${s.interlock}` : "", s.reason ? ` · ${s.reason}` : "",
      s.late ? " (late)" : ""));
    const after = v.after && v.after.gate_opening != null
      ? `Opening after: ${fmtValue(v.after.gate_opening, "m")}` : "";
    $("gate-progress").replaceChildren(h("div", null, // h() skips the parts that are null
      h("p", null, `Command ${v.id}: ${v.action}${target} by ${v.operator}, issued ${fmtTime(v.issued_ms)} · `,
        h("span", { class: `cmd-state cmd-${v.state}` }, v.state), v.final ? " (final)" : " …"),
      v.interlock ? h("p", { class: "error" }, `Refused by interlock ${v.interlock}: ${v.reason}`)
        : v.reason ? h("p", { class: v.state === "completed" ? "ok-text" : "error" }, v.reason) : null,
      after ? h("p", { class: "ok-text" }, after) : null,
      steps.length ? h("ol", { class: "step-list" }, steps) : null));
  }

  // -- alerts ----------------------------------------------------------------------------------------------------
  async function loadAlerts() {
    const q = new URLSearchParams({ limit: "200" });
    if ($("all-audiences").checked) q.set("all_audiences", "true");
    if ($("active-only").checked) q.set("active_only", "true");
    try {
      const out = await api("GET", `/api/alerts?${q}`);
      state.alerts = out.alerts;
      $("alert-total").textContent = out.total > out.alerts.length ? `(${out.alerts.length} of ${out.total})`
        : `(${out.total})`;
    } catch (err) {
      banner(err);
      return;
    }
    renderAlerts();
  }

  function isShelved(a) {
    return a.shelved_until_ms != null && a.shelved_until_ms > Date.now();
  }

  function stateBadge(a) {
    return [h("span", { class: `badge state-${a.state}` }, STATE_NAMES[a.state] || a.state),
      isShelved(a) ? h("span", { class: "badge shelved" }, ` shelved until ${fmtTime(a.shelved_until_ms)}`) : null,
      a.out_of_service ? h("span", { class: "badge shelved" }, " out of service") : null];
  }

  function renderAlerts() {
    const rows = state.alerts.map((a) => h("tr", {
      class: `clickable alert-row state-${a.state}${isShelved(a) ? " is-shelved" : ""}`
        + `${a.id === state.alert ? " selected" : ""}`,
      onclick: () => openAlert(a.id),
    },
    h("td", null, h("span", { class: `badge prio-${a.priority}` }, `${a.priority} (${a.severity})`)),
    h("td", null, stateBadge(a)),
    h("td", null, h("b", null, a.title || a.rule), a.chattering ? " (chattering)" : ""),
    h("td", null, [a.site, a.device, a.point].filter(Boolean).join(" / ")),
    h("td", null, fmtValue(a.value)),
    h("td", { title: `first ${fmtTime(a.first_ms)}` }, fmtTime(a.last_ms)),
    h("td", null, a.count),
    h("td", null, a.assignee || "")));
    $("alert-rows").replaceChildren(...rows);
    $("alerts-empty").hidden = rows.length > 0;
    const unacked = state.alerts.filter((a) => a.state === "active_unack").length;
    $("alert-count").textContent = unacked ? String(unacked) : "";
  }

  async function openAlert(id) {
    state.alert = id;
    renderAlerts();
    showError("alert-error", "");
    $("alert-panel").hidden = false;
    let a;
    try {
      a = await api("GET", `/api/alerts/${id}`);
    } catch (err) {
      showError("alert-error", err.message);
      return;
    }
    if (state.alert !== id) return;
    $("alert-title").textContent = `#${a.id} ${a.title || a.rule}`;
    const facts = [
      ["State", stateBadge(a)], ["Priority", `${a.priority} (severity ${a.severity})`], ["Rule", a.rule],
      ["Where", [a.site, a.device, a.point].filter(Boolean).join(" / ")], ["Area", a.area || "—"],
      ["Audience", a.audience], ["Value", fmtValue(a.value)], ["Reason", a.reason || "—"],
      ["First", fmtTime(a.first_ms)], ["Last", fmtTime(a.last_ms)], ["Count", String(a.count)],
      ["Assignee", a.assignee || "—"],
    ];
    if (isShelved(a)) facts.push(["Shelved", `until ${fmtTime(a.shelved_until_ms)}: ${a.shelve_reason || ""}`]);
    if (a.escalation_level) facts.push(["Escalation level", String(a.escalation_level)]);
    $("alert-facts").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
    $("alert-history").replaceChildren(...a.history.slice().reverse().map((e) => h("tr", null,
      h("td", null, fmtTime(e.ts_ms)), h("td", null, e.who || "—"), h("td", null, e.action),
      h("td", null, `${e.from_state} → ${e.to_state}`), h("td", null, e.reason || ""))));
    $("alert-notes").replaceChildren(...(a.notes.length ? a.notes.map((n) => h("li", null, n.text, " ",
      h("small", null, `${n.who}, ${fmtTime(n.ts_ms)}`))) : [h("li", { class: "hint" }, "no notes")]));
    $("alert-actions").hidden = !may(ALERT_ROLES);
    $("ack-form").hidden = !(a.state === "active_unack" || a.state === "cleared_unack");
    $("shelve-form").hidden = isShelved(a);
    $("unshelve-form").hidden = !isShelved(a);
  }

  const ALERT_ACTIONS = { // one literal path each: the console's test checks them against the OpenAPI spec
    ack: (id) => `/api/alerts/${id}/ack`,
    shelve: (id) => `/api/alerts/${id}/shelve`,
    unshelve: (id) => `/api/alerts/${id}/unshelve`,
    notes: (id) => `/api/alerts/${id}/notes`,
  };

  function alertForm(action, body) {
    return async (ev) => {
      ev.preventDefault();
      const form = ev.currentTarget;
      const id = state.alert;
      showError("alert-error", "");
      try {
        const a = await api("POST", ALERT_ACTIONS[action](id), body(form.elements));
        form.reset();
        replaceAlert(a);
        if (state.alert === id) openAlert(id);
      } catch (err) {
        showError("alert-error", err.message);
      }
    };
  }

  function replaceAlert(a) {
    const i = state.alerts.findIndex((x) => x.id === a.id);
    if (i >= 0) {
      state.alerts[i] = a;
      renderAlerts();
    }
    return i >= 0;
  }

  function closeAlert() {
    state.alert = null;
    $("alert-panel").hidden = true;
    renderAlerts();
  }

  // -- the live stream (SSE over fetch, so that it carries the Authorization header) -------------------------------
  function setLive(on) {
    $("live").textContent = on ? "live" : "offline";
    $("live").className = `live ${on ? "on" : "off"}`;
  }

  async function startStream() {
    stopStream();
    const ctrl = new AbortController();
    state.stream = ctrl;
    let retryMs = 3000;
    let backoff = 1000;
    let first = true;
    while (!ctrl.signal.aborted) {
      try {
        const response = await fetch(url("/api/stream"), {
          headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
          signal: ctrl.signal, cache: "no-store",
        });
        if (response.status === 401) {
          sessionEnded("Your session has ended: log in again.");
          return;
        }
        if (!response.ok || !response.body) throw new Error(`the stream answered ${response.status}`);
        setLive(true);
        backoff = 1000;
        if (!first) resync(); // what changed while the stream was down
        first = false;
        await readEvents(response.body, onEvent, (ms) => { retryMs = ms; });
      } catch (err) {
        if (ctrl.signal.aborted) return;
        // the network or the API went away: try again after a growing pause
      }
      setLive(false);
      first = false;
      await sleep(Math.max(retryMs, backoff), ctrl.signal);
      backoff = Math.min(backoff * 2, 30000);
    }
  }

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
    setLive(false);
  }

  /** Reads an SSE body (the WHATWG event-stream format): dispatches each event's name and data. */
  async function readEvents(body, dispatch, setRetry) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl = buffer.indexOf("\n");
      while (nl >= 0) {
        let line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf("\n");
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (data.length) dispatch(event, data.join("\n"));
          event = "message";
          data = [];
        } else if (!line.startsWith(":")) { // a line starting with ":" is a comment (keepalive)
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "event") event = text;
          else if (field === "data") data.push(text);
          else if (field === "retry" && /^\d+$/.test(text)) setRetry(Number(text));
        }
      }
    }
  }

  function onEvent(kind, text) {
    let data;
    try {
      data = JSON.parse(text);
    } catch (err) {
      return; // not an event this console knows how to read
    }
    if (kind === "reading") applyReading(data);
    else if (kind === "status") applyStatus(data);
    else if (kind === "alert") applyAlert(data);
    else if (kind === "command") applyCommand(data);
  }

  function applyReading(r) {
    if (r.site !== state.site) return;
    const latest = state.latest.get(r.device) || {
      site: r.site, device: r.device, source: "live", time_ms: null, values: {}, times_ms: {}, quality: {},
      reasons: {}, units: {},
    };
    latest.source = "live";
    const fresh = [];
    for (const s of (r.samples || []).slice().sort((a, b) => a.ts - b.ts)) {
      for (const [point, value] of Object.entries(s.values || {})) {
        if (s.ts < (latest.times_ms[point] || -1)) continue;
        latest.values[point] = value;
        latest.times_ms[point] = s.ts;
        const q = s.quality && s.quality[point];
        if (q) {
          latest.quality[point] = q.q;
          latest.reasons[point] = q.reason;
        } else {
          delete latest.quality[point];
          delete latest.reasons[point];
        }
      }
      latest.time_ms = Math.max(latest.time_ms || 0, s.ts);
      fresh.push(s);
    }
    state.latest.set(r.device, latest);
    const d = state.devices.get(r.device);
    if (d) {
      d.last_seen_ms = Math.max(d.last_seen_ms || 0, latest.time_ms || 0);
      d.quality = Object.values(latest.quality).includes("bad") ? "bad"
        : Object.keys(latest.quality).length ? "uncertain" : "good";
    } else {
      debounce("devices", 1000, () => selectSite(state.site)); // a device the page has not seen yet
    }
    debounce("render-devices", 250, renderDevices);
    if (r.device === state.device) {
      const c = state.chart;
      if (c && c.device === r.device) { // extend the chart with the new samples
        for (const s of fresh) {
          if (typeof s.values[c.point] === "number" && s.ts > c.end_ms - 1) {
            c.points.push({ time_ms: s.ts, values: { [c.point]: s.values[c.point] },
              quality: { [c.point]: s.quality && s.quality[c.point] ? (s.quality[c.point].q === "bad" ? 2 : 1) : 0 } });
          }
        }
        c.end_ms = Math.max(c.end_ms, latest.time_ms || 0);
        c.start_ms = c.end_ms - DAY_MS;
        c.points = c.points.filter((p) => p.time_ms >= c.start_ms);
      }
      debounce("render-device", 500, () => {
        renderDevice();
        if (state.chart && state.chart.points.length) drawChart();
      });
    }
  }

  function applyStatus(s) {
    debounce("sites", 2000, async () => {
      try {
        state.sites = await api("GET", "/api/sites");
        renderSites();
      } catch (err) {
        banner(err);
      }
    });
    if (s.site !== state.site) return;
    const d = state.devices.get(s.device);
    if (!d) {
      debounce("devices", 1000, () => selectSite(state.site));
      return;
    }
    d.online = s.online;
    d.status_reason = s.reason || "";
    debounce("render-devices", 250, renderDevices);
    if (s.device === state.device) debounce("render-device", 500, renderDevice);
  }

  function applyAlert(a) {
    // The stream sends every alert of the user's areas; the list's filters (audience, active) are the API's,
    // so a change to an alert not in the list reloads the list rather than guessing.
    if (!replaceAlert(a)) debounce("alerts", 1000, loadAlerts);
    if (a.id === state.alert) debounce("alert-panel", 300, () => openAlert(a.id));
  }

  function applyCommand(c) {
    if (state.poll && state.poll.id === c.id) { // poll now rather than at the next tick
      clearTimeout(state.poll.timer);
      state.poll.tick();
    }
  }

  function resync() {
    loadSites();
    if (state.site) selectSite(state.site);
    loadAlerts();
  }

  // -- wiring ----------------------------------------------------------------------------------------------------
  function wire() {
    $("login-form").addEventListener("submit", onLogin);
    $("password-form").addEventListener("submit", onPassword);
    $("logout").addEventListener("click", logout);
    $("banner-close").addEventListener("click", () => { $("banner").hidden = true; });
    for (const b of document.querySelectorAll("#tabs button")) {
      b.addEventListener("click", () => show(b.dataset.tab));
    }
    $("kind-filter").addEventListener("change", renderDevices);
    $("device-close").addEventListener("click", closeDevice);
    $("chart-point").addEventListener("change", (ev) => {
      const d = state.devices.get(state.device);
      if (d) loadChart(d.site, d.device, ev.currentTarget.value);
    });
    for (const b of document.querySelectorAll("[data-gate]")) {
      b.addEventListener("click", () => askGate(b.dataset.gate));
    }
    $("gate-confirm-yes").addEventListener("click", confirmGate);
    $("gate-confirm-no").addEventListener("click", () => {
      state.pending = null;
      $("gate-confirm").hidden = true;
    });
    $("all-audiences").addEventListener("change", loadAlerts);
    $("active-only").addEventListener("change", loadAlerts);
    $("alerts-refresh").addEventListener("click", loadAlerts);
    $("alert-close").addEventListener("click", closeAlert);
    $("ack-form").addEventListener("submit", alertForm("ack", (f) => ({ note: f.note.value })));
    $("shelve-form").addEventListener("submit", alertForm("shelve", (f) => ({
      reason: f.reason.value, duration_s: Number(f.duration_s.value),
    })));
    $("unshelve-form").addEventListener("submit", alertForm("unshelve", (f) => ({ reason: f.reason.value })));
    $("note-form").addEventListener("submit", alertForm("notes", (f) => ({ text: f.text.value })));
    setInterval(() => { // ages ("12 s ago") and staleness move with the clock
      if (state.user && !$("devices-view").hidden) renderDevices();
    }, 15000);
  }

  boot();
})();
