/* The district at a glance (the information centre's view), on the overview: the figures a duty officer asks first,
 * the district drawn as an SVG schematic (no map tiles) with every gate along its river, every station, pollution
 * source and enterprise with its live state and active alarms, and all gates of each river in one table (levels,
 * head, opening, flow, mode). From GET /api/district (the deployment's site attributes), each site's devices and
 * latest values, and the active alerts. Uses views.js (window.LifelineViews). */
"use strict";

(() => {
  const V = window.LifelineViews;
  const { h, svg, tr, num } = V;

  const KINDS = {
    gate: ["gate", "闸门"], station: ["station", "监测站"], source: ["pollution source", "污染源"],
    enterprise: ["enterprise", "企业"], other: ["device", "设备"],
  };
  const STATION_PROFILES = new Set(["water_quality_station", "air_quality_station", "noise_meter"]);
  const SOURCE_PROFILES = new Set(["flue_gas_cems", "flue_gas_cems_hj212", "wastewater_outlet_hj212"]);

  function kindOf(d) {
    if (d.profile === "sluice_gate_plc") return "gate";
    if (STATION_PROFILES.has(d.profile)) return "station";
    if (SOURCE_PROFILES.has(d.profile) || /cems|hj212|outlet/.test(d.profile)) return "source";
    if (window.Lifeline.domainOf(d.profile) === "safety") return "enterprise";
    return "other";
  }
  /** A detector's enterprise (ent007-gas-2 -> ent007): the console's, or the id itself when it names none. */
  const enterpriseOf = (device) => window.Lifeline.enterpriseOf(device) || device;

  let data = null; // {district, devices: Map site -> [DeviceOut], latest: Map "site/device" -> LatestOut, alerts, water}
  let loading = false;
  let error = "";
  let root = null;

  async function load() {
    if (loading) return;
    loading = true;
    try {
      const user = V.user();
      const envRole = user && ["environment_officer", "admin"].includes(user.role);
      const [district, alerts, water] = await Promise.all([
        V.api("/api/district"),
        V.api("/api/alerts?active_only=true&all_audiences=true&limit=500").catch(() => null),
        envRole ? V.api("/api/env/water/classes").catch(() => null) : Promise.resolve(null),
      ]);
      const devices = new Map(), latest = new Map();
      await Promise.all(district.sites.map(async (s) => {
        const [ds, ls] = await Promise.all([
          V.api(`/api/sites/${encodeURIComponent(s.site)}/devices`),
          V.api(`/api/sites/${encodeURIComponent(s.site)}/latest`).catch(() => []),
        ]);
        devices.set(s.site, ds);
        for (const l of ls) latest.set(`${s.site}/${l.device}`, l);
      }));
      data = { district, devices, latest, alerts: alerts ? alerts.alerts : null, water, at: Date.now() };
      error = "";
    } catch (err) {
      error = err.message; // what was shown stays, marked as not current
    } finally {
      loading = false;
    }
    render();
  }

  /** Active, not shelved alerts by "site/device" (worst first) and by severity. */
  function alarmIndex() {
    const byDevice = new Map();
    const counts = { critical: 0, warning: 0, info: 0 };
    const shelved = { n: 0 };
    for (const a of data.alerts || []) {
      if (!V.isActive(a)) continue;
      if (V.isShelved(a)) {
        shelved.n += 1;
        continue;
      }
      counts[a.severity] = (counts[a.severity] || 0) + 1;
      const key = `${a.site}/${a.device}`;
      if (!byDevice.has(key)) byDevice.set(key, []);
      byDevice.get(key).push(a);
    }
    for (const list of byDevice.values()) list.sort((p, q) => V.SEVERITY_RANK[p.severity] - V.SEVERITY_RANK[q.severity]);
    return { byDevice, counts, shelved: shelved.n };
  }

  /** The things drawn: each gate, station and source on its own; an enterprise's detectors as one. */
  function members(site, alarms) {
    const out = [];
    const enterprises = new Map();
    for (const d of data.devices.get(site) || []) {
      const kind = kindOf(d);
      const state = V.deviceState(d);
      const al = alarms.byDevice.get(`${site}/${d.device}`) || [];
      if (kind === "enterprise") {
        const id = enterpriseOf(d.device);
        if (!enterprises.has(id)) {
          enterprises.set(id, { id, kind, devices: [], states: [], alarms: [] });
          out.push(enterprises.get(id));
        }
        const e = enterprises.get(id);
        e.devices.push(d);
        e.states.push(state);
        e.alarms.push(...al);
      } else out.push({ id: d.device, kind, devices: [d], states: [state], alarms: al });
    }
    for (const m of out) {
      // an enterprise is as bad as its worst detector: offline before stale before unknown before online
      const order = ["offline", "stale", "unknown", "online"];
      m.state = order.find((s) => m.states.includes(s)) || "unknown";
      m.alarms.sort((p, q) => V.SEVERITY_RANK[p.severity] - V.SEVERITY_RANK[q.severity]);
      m.worst = m.alarms.length ? m.alarms[0].severity : null;
    }
    return out;
  }

  function figures(alarms) {
    let total = 0;
    const states = { online: 0, stale: 0, offline: 0, unknown: 0 };
    const sources = new Set();
    for (const [site, ds] of data.devices) {
      for (const d of ds) {
        total += 1;
        states[V.deviceState(d)] += 1;
        if (kindOf(d) === "source" && (alarms.byDevice.get(`${site}/${d.device}`) || []).length) sources.add(`${site}/${d.device}`);
      }
    }
    const offTarget = data.water ? data.water.filter((w) => w.target_missed === true) : null;
    const fig = (key, label, value, detail, cls) => h("div", { class: `v-fig ${cls || ""}`, "data-fig": key },
      h("span", { class: "v-fig-value" }, value), h("span", { class: "v-fig-label" }, label),
      detail ? h("span", { class: "v-fig-detail" }, detail) : null);
    const a = alarms.counts;
    return h("div", { class: "v-figures", role: "group", "aria-label": tr(["the district's figures", "区域概况"]) },
      fig("online", tr(["devices online", "设备在线"]), `${num(states.online, 0)} / ${num(total, 0)}`,
        tr(["stale {s} · offline {o} · unknown {u}", "数据陈旧 {s} · 离线 {o} · 未知 {u}"],
          { s: states.stale, o: states.offline, u: states.unknown }),
        states.offline || states.stale ? "v-warn" : ""),
      fig("alarms", tr(["active alarms", "活动报警"]), data.alerts ? num(a.critical + a.warning + a.info, 0) : "—",
        data.alerts ? tr(["critical {c} · warning {w} · info {i} · shelved apart {s}", "紧急 {c} · 警告 {w} · 提示 {i} · 另有搁置 {s}"],
          { c: a.critical, w: a.warning, i: a.info, s: alarms.shelved }) : tr(["alerts not readable", "无法读取报警"]),
        a.critical ? "v-crit" : a.warning ? "v-warn" : ""),
      fig("sources", tr(["sources in exceedance", "超标污染源"]), num(sources.size, 0),
        tr(["with an active alarm", "有活动报警"]), sources.size ? "v-warn" : ""),
      fig("stations", tr(["stations off target", "未达标断面"]), offTarget ? num(offTarget.length, 0) : "—",
        offTarget ? offTarget.map((w) => w.device).join(", ") || tr(["every water station on target", "水质断面均达标"])
          : tr(["for environment officers", "环境管理人员可见"]), offTarget && offTarget.length ? "v-warn" : ""));
  }

  // -- the schematic --------------------------------------------------------------------------------------------
  function glyph(m, x, y, site) {
    const r = 9;
    const cls = `v-g v-g-${m.kind} v-s-${m.state}${m.worst ? ` v-a-${m.worst}` : ""}`;
    const label = m.kind === "enterprise" ? m.id : m.id;
    const title = `${tr(KINDS[m.kind])} ${label}: ${tr(V.STATE_NAMES[m.state])}`
      + (m.alarms.length ? `; ${m.alarms.length} ${tr(["active alarm(s)", "条活动报警"])}: ${m.alarms.map((a) => a.title).join("; ")}` : "");
    let shape;
    if (m.kind === "gate") shape = svg("rect", { x: x - 5, y: y - 13, width: 10, height: 26, rx: 2 });
    else if (m.kind === "source") shape = svg("path", { d: `M${x} ${y - r - 1} L${x + r + 1} ${y + r} L${x - r - 1} ${y + r} Z` });
    else if (m.kind === "enterprise") shape = svg("rect", { x: x - r + 1, y: y - r + 1, width: 2 * r - 2, height: 2 * r - 2 });
    else shape = svg("circle", { cx: x, cy: y, r: r - 1 });
    const open = () => V.openSite(site);
    if (!site) return svg("g", { class: cls, "aria-hidden": "true" }, shape);
    return svg("g", {
      class: cls, tabindex: 0, role: "button", "data-site": site, "data-device": m.id, "data-state": m.state, "data-alarm": m.worst || "",
      "aria-label": title, onclick: open,
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } },
    }, svg("title", null, title),
    m.worst ? svg("circle", { cx: x, cy: y, r: r + 6, class: "v-ring" }) : null, shape,
    m.state !== "online" ? svg("text", { x, y: y + 4, "text-anchor": "middle", class: "v-g-mark" },
      m.state === "offline" ? "×" : m.state === "stale" ? "!" : "?") : null);
  }

  function schematic(alarms) {
    const sites = data.district.sites;
    const rivers = [...new Set(sites.map((s) => s.river).filter(Boolean))].sort();
    const off = sites.filter((s) => !s.river);
    // drawn at the width it is shown (no scaling: its text stays legible on a phone as on a wall screen)
    const W = Math.max(340, Math.min(1400, Math.floor(((root && root.clientWidth) || 1100) - 4)));
    const narrow = W < 640;
    const left = narrow ? 16 : 120, right = 24, laneH = narrow ? 150 : 124, step = 26;
    const parts = [];
    let y = 10;
    for (const river of rivers) {
      const on = sites.filter((s) => s.river === river).sort((p, q) => (p.km ?? 0) - (q.km ?? 0));
      const maxKm = Math.max(1, ...on.map((s) => s.km ?? 0)) * 1.15;
      const ry = y + (narrow ? 74 : 50);
      parts.push(svg("line", { x1: left, y1: ry, x2: W - right, y2: ry, class: "v-river" }),
        svg("text", { x: 8, y: narrow ? y + 16 : ry + 5, class: "v-river-name" }, river),
        svg("text", { x: left, y: ry + 24, class: "v-hint-svg" }, tr(["mouth", "河口"])));
      let lastEnd = left - step;
      for (const s of on) {
        const ms = members(s.site, alarms);
        const gates = ms.filter((m) => m.kind === "gate"), rest = ms.filter((m) => m.kind !== "gate");
        const span = Math.max(gates.length, rest.length) * step;
        const want = left + 12 + ((s.km ?? 0) / maxKm) * Math.max(0, W - left - right - span - 24);
        const x0 = Math.min(Math.max(want, lastEnd + step), Math.max(left + 12, W - right - span));
        gates.forEach((m, i) => {
          parts.push(glyph(m, x0 + i * step, ry, s.site));
          if (!narrow || gates.length <= 6) {
            parts.push(svg("text", { x: x0 + i * step, y: ry + 24, "text-anchor": "middle", class: "v-gate-label" },
              m.id.replace(/^.*-gate-?/, "#")));
          }
        });
        rest.forEach((m, i) => parts.push(glyph(m, x0 + i * step, ry + 44, s.site)));
        const name = `${s.title || s.site}${s.km != null ? ` · ${num(s.km, 1)} km` : ""}`;
        const nameX = Math.max(8, Math.min(x0 - 8, W - right - name.length * 7));
        parts.push(svg("text", { x: nameX, y: ry - 22, class: "v-site-name" }, name));
        lastEnd = x0 + span + 80;
      }
      y += laneH;
    }
    if (off.length) {
      parts.push(svg("text", { x: 8, y: y + 14, class: "v-river-name off" }, tr(["off the rivers", "不在河道上"])));
      y += 24;
      for (const s of off) {
        const ms = members(s.site, alarms);
        const perRow = Math.max(1, Math.floor((W - 40) / step));
        const rows = Math.max(1, Math.ceil(ms.length / perRow));
        parts.push(svg("text", { x: 8, y: y + 14, class: "v-site-name" }, s.title || s.site,
          s.area ? svg("tspan", { class: "v-hint-svg" }, ` · ${s.area}`) : null));
        ms.forEach((m, i) => parts.push(glyph(m, 24 + (i % perRow) * step, y + 36 + Math.floor(i / perRow) * step, s.site)));
        y += 36 + rows * step;
      }
    }
    // the legend, wrapped to the width
    const items = [...["gate", "station", "source", "enterprise"].map((kind) => [kind, tr(KINDS[kind]), null]),
      ["stale", tr(V.STATE_NAMES.stale), "v-s-stale"], ["offline", tr(V.STATE_NAMES.offline), "v-s-offline"],
      ["alarm", tr(["active alarm", "活动报警"]), "ring"]];
    let lx = 8, ly = y + 16;
    for (const [key, label, cls] of items) {
      const w = 36 + label.length * (V.lang() === "zh" ? 13 : 7);
      if (lx + w > W) {
        lx = 8;
        ly += 28;
      }
      if (!cls) parts.push(glyph({ id: "", kind: key, state: "online", alarms: [], worst: null }, lx + 10, ly, ""));
      else if (cls === "ring") parts.push(svg("circle", { cx: lx + 10, cy: ly, r: 10, class: "v-ring v-legend-ring" }));
      else parts.push(svg("circle", { cx: lx + 10, cy: ly, r: 8, class: `v-g ${cls}` }));
      parts.push(svg("text", { x: lx + 24, y: ly + 4, class: "v-legend" }, label));
      lx += w;
    }
    const height = ly + 20;
    return svg("svg", { viewBox: `0 0 ${W} ${height}`, width: W, height, class: "v-district-svg", role: "group",
      "aria-label": tr(["the district's gates, stations, sources and enterprises", "区域闸门、监测站、污染源和企业示意图"]) },
    parts);
  }

  // -- all gates of a river in one table ------------------------------------------------------------------------
  function gateTables(alarms) {
    const out = [];
    const byRiver = new Map();
    for (const s of data.district.sites) {
      for (const d of data.devices.get(s.site) || []) {
        if (kindOf(d) !== "gate") continue;
        const river = s.river || s.title || s.site;
        if (!byRiver.has(river)) byRiver.set(river, []);
        byRiver.get(river).push({ s, d });
      }
    }
    const cols = [["gate", "闸门"], ["state", "状态"], ["level up (m)", "闸上水位 (m)"], ["level down (m)", "闸下水位 (m)"],
      ["head (m)", "水位差 (m)"], ["opening (m)", "开度 (m)"], ["flow (m³/s)", "流量 (m³/s)"], ["mode", "模式"],
      ["alarms", "报警"]];
    for (const [river, gates] of [...byRiver.entries()].sort()) {
      const rows = gates.map(({ s, d }) => {
        const l = data.latest.get(`${s.site}/${d.device}`);
        const v = (l && l.values) || {};
        const n = (p) => (typeof v[p] === "number" ? v[p] : null);
        const up = n("level_up"), down = n("level_down");
        const st = V.deviceState(d);
        const al = alarms.byDevice.get(`${s.site}/${d.device}`) || [];
        const mode = [v.remote_mode === true ? tr(["remote", "远程"]) : v.remote_mode === false ? tr(["local", "就地"]) : "—",
          v.moving_open === true ? tr(["opening", "正在开启"]) : v.moving_close === true ? tr(["closing", "正在关闭"]) : "",
          v.estop === true ? tr(["E-stop", "急停"]) : "", n("fault_code") ? tr(["fault {c}", "故障 {c}"], { c: v.fault_code }) : ""]
          .filter(Boolean).join(" · ");
        const cell = (label, value, cls) => h("td", { "data-label": tr(label), class: cls || null }, value);
        return h("tr", { "data-gate": d.device, "data-state": st, tabindex: 0,
          onclick: () => V.openSite(s.site),
          onkeydown: (e) => { if (e.key === "Enter") V.openSite(s.site); } },
        cell(cols[0], h("b", null, d.device)),
        cell(cols[1], h("span", { class: `v-state v-state-${st}` }, tr(V.STATE_NAMES[st]),
          d.last_seen_ms ? ` · ${V.time(d.last_seen_ms, false)}` : "")),
        cell(cols[2], num(up, 2), "v-num"), cell(cols[3], num(down, 2), "v-num"),
        cell(cols[4], up != null && down != null ? num(up - down, 2) : "—", "v-num"),
        cell(cols[5], num(n("gate_opening"), 2), "v-num"), cell(cols[6], num(n("flow"), 1), "v-num"),
        cell(cols[7], mode),
        cell(cols[8], al.length ? h("span", { class: `v-sev v-sev-${al[0].severity}` },
          `${tr(V.SEVERITY_NAMES[al[0].severity] || ["?", "?"])} ${al[0].title}${al.length > 1 ? ` +${al.length - 1}` : ""}`) : "—"));
      });
      out.push(h("div", { class: "v-gates", "data-river": river },
        h("h3", null, tr(gates.length === 1 ? ["{river}: 1 gate", "{river}：1 座闸门"] : ["{river}: {n} gates", "{river}：{n} 座闸门"],
          { river, n: gates.length })),
        h("table", { class: "v-table v-stack" },
          h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, tr(c))))),
          h("tbody", null, rows))));
    }
    return out;
  }

  function render() {
    if (!root) return;
    if (!data) {
      root.replaceChildren(h("p", { class: "v-hint" }, error ? tr(["Not loaded: {e}", "未能加载：{e}"], { e: error })
        : tr(["Loading the district…", "正在加载区域…"])));
      return;
    }
    const alarms = alarmIndex();
    root.replaceChildren(
      h("div", { class: "v-district-head" },
        h("h3", null, data.district.title || tr(["The district", "区域"])),
        h("span", { class: `v-hint${error ? " v-stale-note" : ""}`, role: error ? "alert" : null },
          error ? tr(["not current: {e}; as of {t}", "非最新：{e}；数据时间 {t}"], { e: error, t: V.time(data.at, false) })
            : tr(["as of {t}", "数据时间 {t}"], { t: V.time(data.at, false) }))),
      figures(alarms),
      h("div", { class: "v-district-map" }, schematic(alarms)),
      ...gateTables(alarms));
  }

  let lastWidth = 0;
  window.addEventListener("resize", () => {
    const w = root ? root.clientWidth : 0;
    if (data && w && Math.abs(w - lastWidth) > 20) {
      lastWidth = w;
      render();
    }
  });

  V.attach({
    id: "district-glance", host: "overview-view", before: "river-schematic", className: "v-district",
    build: (el) => { root = el; render(); },
    refresh: load,
    relabel: render,
    onAlert: true,
  });
})();
