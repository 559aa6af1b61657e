/* Lifeline console: plain ES2020, no build step, no library. It talks only to the API's JSON endpoints (and the
 * SSE stream, read with fetch() because EventSource cannot send the Authorization header). Every text from the
 * API goes into the page as text (textContent), never as HTML; every listener is attached here, none inline.
 *
 * Other scripts add views through `window.Lifeline` (set before boot; load them with <script defer> after this one):
 *
 *   window.Lifeline.addView({
 *     id: "district-view",            // the <section>'s id (created in <main> if the page has none)
 *     label: ["District", "辖区"],     // the tab's text [English, Chinese], or a string key of the catalogue
 *     roles: ["admin", "viewer"],     // who sees the tab (omit: every role)
 *     after: "overview-view",         // the tab comes after this one (omit: last)
 *     render(section, L) {},          // draw into the section: on show, on a language switch, on new data
 *     onShow(section, L) {},          // optional: the tab was opened
 *   });
 *   window.Lifeline.on("reading" | "status" | "alert" | "sites" | "alerts" | "lang" | "login", (data) => {});
 *
 * `L` is window.Lifeline: L.t(key | [en, zh], vars), L.h(tag, attrs, ...children), L.api(method, path, body),
 * L.fmtTime, L.fmtAge, L.fmtValue, L.fmtNumber, L.pointLabel, L.stateOf(device), L.stateBadge(device), L.lang(),
 * L.state (read-only by convention: sites, devices, latest, alerts, user), L.show(viewId), L.openSite(site). */
"use strict";

(() => {
  // -- constants -------------------------------------------------------------------------------------------------
  const BASE = new URL("../", document.baseURI); // the console lives at <prefix>/console/, the API at <prefix>/
  const TZ = "Asia/Shanghai";
  const TOKEN_KEY = "lifeline.token";
  const STALE_MS = 5 * 60000; // a device not heard from for this long is shown as stale (when the API says nothing)
  // Test knobs (localStorage, seconds): the stream watchdog (the API sends a keepalive every 15 s: no byte for this
  // long and the stream is stalled) and how long a request may take before it counts as failed.
  const knob = (name, fallback) => {
    const v = Number(localStorage.getItem(`lifeline.${name}`));
    return Number.isFinite(v) && v > 0 ? v * 1000 : fallback;
  };
  const WATCHDOG_MS = knob("watchdog_s", 40000);
  const REQUEST_MS = knob("request_s", 20000);
  const CHART_POINTS = 288; // one point every 5 minutes over 24 hours
  const GATE_PROFILE = "sluice_gate_plc";
  const GATE_ROLES = new Set(["gate_operator", "admin"]);
  const ENV_ROLES = new Set(["environment_officer", "admin"]); // who may read the stored valid means and indices
  const ENV_PROFILES = new Set(["water_quality_station", "air_quality_station", "flue_gas_cems", "noise_meter",
    "wastewater_outlet_hj212", "flue_gas_cems_hj212"]);
  const ALERT_ROLES = new Set(["gate_operator", "environment_officer", "safety_inspector", "admin"]);
  const ROLE_NAMES = {
    viewer: "viewer", gate_operator: "gate operator", environment_officer: "environment officer",
    safety_inspector: "work-safety inspector", admin: "admin",
  };
  // Each role starts on its own work (the other views stay one click away).
  const ROLE_VIEW = {
    gate_operator: { tab: "devices-view", kind: "water" },
    environment_officer: { tab: "devices-view", kind: "" }, // CEMS stations too: "environment" hid them
    safety_inspector: { tab: "devices-view", kind: "safety" },
    viewer: { tab: "overview-view", kind: "" },
    admin: { tab: "overview-view", kind: "" },
  };
  // The catalogue profiles' `domain` tag, for the device filter (an unknown profile shows under "every device").
  const PROFILE_DOMAIN = {
    sluice_gate_plc: "water", water_quality_station: "environment", air_quality_station: "environment",
    noise_meter: "environment", flue_gas_cems: "emissions", gas_detector: "safety", fire_detector: "safety",
    toxic_gas_detector: "safety", oxygen_detector: "safety",
  };
  const STATE_NAMES = {
    active_unack: "active, unacknowledged", active_ack: "active, acknowledged",
    cleared_unack: "cleared, unacknowledged", normal: "normal",
  };

  // -- state -----------------------------------------------------------------------------------------------------
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    user: null,
    sites: [],
    means: null, // the open station's stored hourly means and limits
    district: new Map(), // site -> its river, area and place along the river (from the district layout)
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
    checked: new Set(), // alert ids ticked for a bulk acknowledge
    seen: new Map(), // alert id -> the severity this page last saw (a new critical one, or a raise, sounds)
    seenReady: false,
    lostAt: null, // when the stream went down
    limits: null, // the open gate's limits
    rangeMs: 86400000, // the device chart's time range
    profiles: new Map(), // profile name -> {points: {name: {unit, decimals, states}}} (or a pending promise)
  };

  /** A point's value as its profile says: the state's label for coded values, else its decimals and unit. `key`:
   *  the device's own specs (profileKey), when its site file changes its points. */
  function fmtPoint(profile, point, value, unit, key) {
    const p = state.profiles.get(key || profile) || state.profiles.get(profile);
    const spec = p && p.points ? p.points[point] : null;
    if (spec && spec.states && typeof value === "number" && spec.states[value] != null) {
      return `${stateWord(profile, point, value, spec.states[value])} (${value})`;
    }
    return fmtValue(value, unitLabel(unit || (spec && spec.unit) || ""), spec ? spec.decimals : null);
  }

  // A coded value's label (a profile point's `states`) in the catalogue's language (api/i18n.py POINT_STATES).
  function stateWord(profile, point, value, label) {
    return cat("point_states", `${profile}.${point}.${value}`) || cat("point_states", label) || label;
  }

  const ROMAN = ["", "I", "II", "III", "IV", "V", "worse than V"];

  /** The environment bureau's indices of the site's stations: the hourly AQI (HJ 633) and the daily water class
   *  (GB 3838-2002), as the rules service stores them; a station without one yet shows nothing. */
  async function loadEnv(site, devices) {
    state.env = new Map();
    const wanted = (p) => devices.some((d) => d.profile === p);
    const asks = [];
    if (wanted("air_quality_station")) asks.push(api("GET", `/api/sites/${enc(site)}/aqi`).then((rows) => {
      for (const a of rows) state.env.set(a.device, { ...(state.env.get(a.device) || {}), aqi: a });
    }));
    if (wanted("water_quality_station")) asks.push(api("GET", `/api/sites/${enc(site)}/water-class`).then((rows) => {
      for (const w of rows) state.env.set(w.device, { ...(state.env.get(w.device) || {}), water: w });
    }));
    await Promise.allSettled(asks); // an index not stored yet (or InfluxDB away) leaves the row as it is
    if (state.site === site) renderDevices();
  }

  function envBadges(device) {
    const e = state.env && state.env.get(device);
    if (!e) return [];
    const out = [];
    if (e.aqi && e.aqi.aqi != null) {
      const badge = h("span", { class: "badge env", title: `${fmtTime(e.aqi.period_start_ms)} · ${e.aqi.edition}` },
        `AQI ${fmtNumber(e.aqi.aqi, 0)} ${lang === "zh" ? e.aqi.category || "" : e.aqi.category_en || ""}`
        + `${e.aqi.primary.length ? ` · ${e.aqi.primary.join(", ")}` : ""}`);
      const hj633 = window.LifelineViews && window.LifelineViews.AQI_LEVELS[window.LifelineViews.aqiLevel(e.aqi.aqi)];
      if (hj633) Object.assign(badge.style, { background: hj633.bg, color: hj633.fg }); // HJ 633 colours (views.js)
      out.push(badge, " ");
    }
    if (e.water) {
      const roman = (n) => ROMAN[Math.round(n)] || String(n);
      const target = e.water.target_class != null // the class the water body must meet (its functional zone)
        ? ` / ${lang === "zh" ? "目标" : "target"} ${roman(e.water.target_class)}` : "";
      out.push(h("span", { class: `badge env${e.water.target_missed ? " missed" : ""}`,
        title: e.water.deciding.join(", ") }, `${lang === "zh" ? "水质类别" : "class"} ${roman(e.water.water_class)}${target}`),
      " ");
    }
    return out;
  }

  /** Where a device's point specs are kept: its profile's, or its own when its site file changes them. */
  const profileKey = (d) => (d.own_profile ? `@${d.site}/${d.device}` : d.profile);

  function loadProfiles(devices) {
    for (const d of devices) {
      const key = profileKey(d);
      if (state.profiles.has(key)) continue;
      state.profiles.set(key, {});
      const url = d.own_profile ? `/api/sites/${enc(d.site)}/devices/${enc(d.device)}/profile`
        : `/api/profiles/${enc(d.profile)}`;
      api("GET", url).then((p) => {
        state.profiles.set(key, p);
        debounce("render-devices", 100, renderDevices);
        if (state.device) debounce("render-device", 100, renderDevice);
      }).catch(() => state.profiles.delete(key));
    }
  }

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
      else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child != null && child !== false) el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  // Replaces a table body's rows and keeps keyboard focus on the same row's control: live updates re-render the
  // rows every few seconds, and focus on a removed element falls back to the page body.
  function replaceRows(body, key, rows) {
    const active = document.activeElement;
    const row = active && body.contains(active) ? active.closest(`tr[data-${key}]`) : null;
    const cls = row && active.classList.length ? active.classList[0] : null;
    body.replaceChildren(...rows);
    if (!row) return;
    const again = body.querySelector(`tr[data-${key}="${CSS.escape(row.dataset[key])}"]${cls ? ` .${cls}` : ""}`);
    if (again) again.focus();
  }

  function debounce(name, ms, fn) {
    clearTimeout(state.timers[name]);
    state.timers[name] = setTimeout(fn, ms);
  }

  // -- languages: every string of the page in one table (Simplified Chinese and English) --------------------------
  const STRINGS = {
    title: ["Lifeline console", "生命线控制台"],
    tab_overview: ["Overview", "总览"], tab_devices: ["Sites & devices", "站点与设备"], tab_alerts: ["Alerts", "告警"],
    tab_admin: ["Users & audit", "用户与审计"],
    live: ["live", "实时"], offline: ["offline", "离线"], logout: ["Log out", "退出"],
    lang_switch: ["中文", "English"],
    login: ["Log in", "登录"], username: ["User name", "用户名"], password: ["Password", "密码"],
    pw_title: ["Change your one-time password", "修改一次性密码"],
    pw_hint: ["Your password was set for one use: choose your own before anything else.",
      "当前密码仅可使用一次：请先设置您自己的密码。"],
    pw_old: ["Current password", "当前密码"], pw_new: ["New password", "新密码"],
    pw_again: ["New password again", "再次输入新密码"], pw_change: ["Change password", "修改密码"],
    pw_differ: ["the two new passwords differ (field: confirm)", "两次输入的新密码不一致（字段：confirm）"],
    sites: ["Sites", "站点"], devices: ["Devices", "设备"], show: ["Show", "显示"],
    kind_all: ["every device", "全部设备"], kind_water: ["water (sluice gates)", "水利（闸门）"],
    kind_env: ["environment (air, water quality, noise)", "环境（空气、水质、噪声）"],
    kind_emis: ["emissions (CEMS)", "排放（烟气在线监测）"], kind_safety: ["work safety (gas, fire)", "安全生产（气体、火灾）"],
    th_status: ["Status", "状态"], th_device: ["Device", "设备"], th_profile: ["Profile", "型号"],
    th_last: ["Last seen", "最后上报"], th_quality: ["Quality", "质量"], th_values: ["Latest values", "最新数值"],
    no_devices: ["No devices known at this site yet.", "该站点暂无已知设备。"],
    online: ["online", "在线"], unknown: ["unknown", "未知"], stale: ["stale", "数据过期"],
    st_online: ["online", "在线"], st_stale: ["stale", "数据过期"], st_offline: ["offline", "离线"],
    st_unknown: ["unknown", "未知"], st_unconfirmed: ["not confirmed", "未确认"],
    since_age: ["since {age}", "自{age}"], sample_age: ["sample {age}", "数据{age}"],
    q_good: ["good", "正常"], q_uncertain: ["uncertain", "可疑"], q_bad: ["bad", "无效"], q_unknown: ["unknown", "未知"],
    point: ["Point", "测点"], value: ["Value", "数值"], time: ["Time", "时间"],
    range: ["Range", "时间范围"], h1: ["1 hour", "1 小时"], h6: ["6 hours", "6 小时"], h24: ["24 hours", "24 小时"],
    d7: ["7 days", "7 天"],
    gate_control: ["Gate control", "闸门控制"], open: ["Open", "开启"], close: ["Close", "关闭"], stop: ["Stop", "停止"],
    opening: ["Opening", "开度"], target: ["target", "目标"], set_opening: ["Set opening", "设定开度"],
    gate_hint: ["Targets are a percentage of the gate's full opening.", "目标为闸门全开度的百分比。"],
    gate_range: ["Targets {min} % to {max} % of the full opening ({full} m).", "目标范围 {min} % 至 {max} %（全开度 {full} m）。"],
    confirm: ["Confirm", "确认"], cancel: ["Cancel", "取消"], opening_after: ["Opening after", "执行后开度"],
    steps: ["{n} steps", "{n} 步"],
    upstream: ["Upstream level", "闸上水位"], downstream: ["Downstream level", "闸下水位"],
    head: ["Head across the gate", "上下游水位差"], mode: ["Mode", "控制方式"], movement: ["Movement", "运行"],
    faults: ["Faults", "故障"], as_of: ["As of", "数据时间"], none: ["none", "无"],
    remote: ["remote", "远程"], local_mode: ["LOCAL: commands are refused", "现地：拒绝远程命令"],
    at_rest: ["at rest", "静止"], opening_now: ["opening", "开启中"], closing_now: ["closing", "关闭中"],
    alerts: ["Alerts", "告警"], all_audiences: ["all audiences", "全部受众"], active_only: ["active only", "仅活动"],
    refresh: ["Refresh", "刷新"], severity: ["Severity", "级别"], any: ["any", "全部"], site: ["Site", "站点"],
    state: ["State", "状态"], audience: ["Audience", "受众"],
    th_prio: ["Severity", "级别"], th_alert: ["Alert", "告警"], th_where: ["Where", "位置"],
    th_count: ["Count", "次数"], th_assignee: ["Assignee", "负责人"],
    ack_selected: ["Acknowledge selected", "确认所选"], ack: ["Acknowledge", "确认"], shelve: ["Shelve", "搁置"],
    unshelve: ["Unshelve", "取消搁置"], add_note: ["Add note", "添加备注"], assign: ["Assign", "指派"],
    note_opt: ["note (optional)", "备注（可选）"], shelve_reason: ["reason for shelving", "搁置原因"],
    reason_opt: ["reason (optional)", "原因（可选）"], a_note: ["add a note", "添加备注"], assignee: ["user name", "用户名"],
    history: ["History", "历史"], notes: ["Notes", "备注"], who: ["Who", "操作人"], action: ["Action", "操作"],
    reason: ["Reason", "原因"], no_alerts: ["No alerts in this view.", "当前视图无告警。"],
    active_unack: ["active, unacknowledged", "活动，未确认"], active_ack: ["active, acknowledged", "活动，已确认"],
    cleared_unack: ["cleared, unacknowledged", "已恢复，未确认"], normal: ["normal", "正常"],
    shelved: ["shelved", "已搁置"],
    session_ended: ["Your session has ended: log in again.", "会话已结束：请重新登录。"],
    ask_open: ["Open gate {device} at {site}?", "开启 {site} 的闸门 {device}？"],
    ask_close: ["Close gate {device} at {site}?", "关闭 {site} 的闸门 {device}？"],
    ask_stop: ["Stop gate {device} at {site}?", "停止 {site} 的闸门 {device}？"],
    ask_set_opening: ["Set the opening of gate {device} at {site} to {target} % of full opening?",
      "将 {site} 的闸门 {device} 开度设为全开的 {target} %？"],
    warn_local: ["the gate is in local mode", "闸门处于现地模式"], warn_faults: ["the gate reports {faults}", "闸门报告 {faults}"],
    warn_offline: ["the device is offline", "设备离线"], expect_refusal: ["Expect a refusal: {why}.", "预计会被拒绝：{why}。"],
    fault_code: ["fault code {code}", "故障代码 {code}"], fault_estop: ["emergency stop", "急停"],
    fault_overload: ["overload", "过载"], fault_power: ["no power", "失电"],
    status_unknown: ["status unknown", "状态未知"], never: ["never", "从未"], offline: ["offline", "离线"],
    last_seen_at: ["last seen {time} ({age})", "最后上报 {time}（{age}）"], values_from: ["values from {source}", "数值来源 {source}"],
    no_numeric: ["no numeric values known yet", "尚无数值"],
    means_title: ["Hourly means against limits", "小时均值与限值"], th_mean: ["Last hourly mean", "最近小时均值"],
    th_hour: ["Hour", "时段"], th_limit: ["Limit", "限值"], th_verdict: ["Verdict", "判定"],
    exceeded: ["exceeded", "超标"], complies: ["complies", "达标"], invalid_mean: ["no valid mean", "无有效均值"],
    no_means: ["no stored hourly means yet", "尚无小时均值"], exceedances: ["Exceedances", "超标记录"],
    no_exceedances: ["none in this period", "本时段无超标"],
    means_note: ["{n} hours, {start} – {end}; limit lines in the chart", "{n} 个小时，{start} – {end}；图中虚线为限值"],
    shelved_until: ["shelved until {time}", "搁置至 {time}"], out_of_service: ["out of service", "停用"],
    f_rule: ["Rule", "规则"],
    aud_water_ops: ["gate operations", "闸门运行"], aud_environment: ["environment", "环境"],
    aud_safety: ["work safety", "安全生产"], aud_default: ["everyone", "通用"], aud_mine: ["my role's", "本岗位"],
    cmd_line: ["Command {id}: {action}{target} by {who}, issued {time}", "指令 {id}：{action}{target}，{who} 于 {time} 下达"],
    cmd_final: ["final", "最终"], refused_by: ["Refused by interlock {interlock}: {reason}", "联锁 {interlock} 拒绝：{reason}"],
    f_value: ["Value", "数值"], f_reason: ["Reason", "原因"],
    f_first: ["First", "首次"], f_last: ["Last", "最近"], f_escalation: ["Escalation level", "升级级别"],
    no_notes: ["no notes", "无备注"], disabled: ["disabled", "已停用"],
    overview: ["District overview", "辖区总览"], area: ["Area", "区域"], no_area: ["no area", "未分区"],
    ov_counts: ["{online} of {devices} devices online", "{devices} 台设备中 {online} 台在线"],
    ov_totals: ["{sites} sites · {online} devices online · {stale} stale · {offline} offline or unknown · {active} active alerts",
      "{sites} 个站点 · {online} 台在线 · {stale} 台数据停滞 · {offline} 台离线或未知 · {active} 条活动告警"],
    worst_none: ["no active alert", "无活动告警"],
    off_river: ["off the rivers", "非沿河站点"],
    schematic_label: ["Schematic of the district's sites by river and area", "辖区站点示意图（按河道与区域）"],
    unreachable: ["The API is not reachable since {time}: the values shown are from before then.",
      "自 {time} 起无法连接 API：所显示的数值均为此前数据。"],
    critical_new: ["New critical alarm: {title} at {where}", "新的紧急告警：{title}（{where}）"],
    critical_up: ["Alarm raised to critical: {title} at {where}", "告警升级为紧急：{title}（{where}）"],
    warning_up: ["Alarm raised to warning: {title} at {where}", "告警升级为警告：{title}（{where}）"],
    stalled: ["Live data stalled since {time}: nothing from the API's stream for {s} s; the values shown are from before then.",
      "实时数据自 {time} 起中断：{s} 秒未收到 API 数据流；所显示的数值均为此前数据。"],
    no_answer: ["no answer within {s} s", "{s} 秒内无应答"],
    api_unreachable: ["the API is not reachable ({why})", "无法连接 API（{why}）"],
    devices_failed: ["The devices of this site could not be read: {why}", "无法读取该站点的设备：{why}"],
    loading: ["loading…", "加载中…"],     stalled_live: ["stalled", "中断"],
    warn_stale: ["the gate's data is not fresh (last sample {age}): the gate's interlocks refuse a command on stale data",
      "闸门数据已过期（最近数据 {age}）：联锁将因数据过期拒绝命令"],
    to_target: [" to {pct} %", "至 {pct} %"], interlock_x: ["interlock {name}", "联锁 {name}"], late: ["late", "迟到"],
    act_raise: ["raised", "触发"], act_reraise: ["raised again", "再次触发"], act_severity: ["severity changed", "级别变化"],
    act_clear: ["cleared", "恢复"], act_ack: ["acknowledged", "确认"], act_shelve: ["shelved", "搁置"],
    act_unshelve: ["unshelved", "取消搁置"], act_shelve_expired: ["shelving ended", "搁置到期"],
    act_out_of_service: ["out of service", "停用"], act_return_to_service: ["back in service", "恢复使用"],
    act_assign: ["assigned", "指派"], act_note: ["note", "备注"], act_escalate: ["escalated", "升级"],
    act_chattering: ["chattering", "频繁抖动"], act_chattering_end: ["chattering ended", "抖动结束"],
    target_range: ["the target must be a percentage from 0 to 100", "目标须为 0 至 100 之间的百分比"],
    n_of_total: ["{n} of {total}", "{total} 条中的 {n} 条"],
    last_sample_at: ["last sample {time}", "最近数据 {time}"],
    warn_stalled: ["this page is not receiving live data", "本页面未收到实时数据"],
    src_live: ["the live stream", "实时数据流"], src_influxdb: ["the database", "数据库"], src_none: ["nowhere yet", "暂无"], field: ["field", "字段"],
    value_at_change: ["value at the last change", "最近一次变化时的数值"], now_value: ["now {value}", "当前 {value}"],
    unacked_n: ["{n} unacknowledged", "{n} 条未确认"], chattering: ["chattering", "频繁抖动"],
    shelved_alerts: ["Shelved alerts", "已搁置告警"],
    users: ["Users", "用户"], role: ["Role", "角色"],
    one_time_pw: ["One-time password", "一次性密码"], create_user: ["Create user", "创建用户"],
    tokens: ["API tokens", "API 令牌"], token_name: ["Name", "名称"], token_for: ["For user", "所属用户"],
    token_days: ["Days valid", "有效天数"], create_token: ["Create token", "创建令牌"], created: ["Created", "创建时间"],
    expires: ["Expires", "到期"], last_used: ["Last used", "最近使用"], never_expires: ["never", "永不"],
    revoked: ["revoked", "已吊销"], revoke: ["Revoke", "吊销"], token_revoked: ["Token {name} revoked.", "令牌 {name} 已吊销。"],
    token_created: ["Token {name} created.", "令牌 {name} 已创建。"],
    token_once: ["Copy this token now, it is shown once: {token}", "请立即复制此令牌，仅显示一次：{token}"],
    role_of: ["role of {user}", "{user} 的角色"], areas_of: ["areas of {user}", "{user} 的区域"],
    reset_pw_of: ["new one-time password for {user}", "{user} 的新一次性密码"], all_areas: ["(none: every area)", "（未选：全部区域）"],
    enabled: ["enabled", "已启用"], must_change: ["must change password", "须修改密码"], save: ["Save", "保存"],
    saved: ["{user} saved.", "{user} 已保存。"], enable: ["Enable", "启用"], disable: ["Disable", "停用"],
    enabled_user: ["{user} enabled.", "{user} 已启用。"], disabled_user: ["{user} disabled.", "{user} 已停用。"],
    reset_pw: ["Reset password", "重置密码"], pw_needed: ["enter the new one-time password first", "请先输入新的一次性密码"],
    pw_reset: ["The password of {user} was reset: they must change it at their next login.",
      "{user} 的密码已重置：下次登录时须修改。"], created_user: ["{user} created.", "{user} 已创建。"],
    audit_auth_login: ["logged in", "登录"], audit_auth_logout: ["logged out", "退出"],
    audit_auth_login_failed: ["login failed", "登录失败"], audit_auth_login_blocked: ["login blocked", "登录被阻止"],
    audit_auth_password_changed: ["password changed", "修改密码"], audit_gate_command: ["gate command", "闸门命令"],
    audit_gate_command_refused: ["gate command refused", "闸门命令被拒绝"], audit_gate_select: ["gate selected", "选择闸门"],
    audit_user_create: ["user created", "创建用户"],
    audit_user_update: ["user changed", "修改用户"], audit_user_delete: ["user deleted", "删除用户"],
    audit_token_create: ["token created", "创建令牌"], audit_token_revoke: ["token revoked", "吊销令牌"],
    notifications: ["Notification log", "通知记录"], tab_notify: ["Notifications", "通知"],
    notify_waiting: ["Waiting or failed", "待发送或失败"], notify_sent: ["Sent (newest first)", "已发送（最新在前）"],
    channel: ["Channel", "渠道"], notify_status: ["Status", "状态"], attempts: ["Attempts", "尝试次数"],
    next_try: ["Next try", "下次尝试"], last_error: ["Last error", "最近错误"], notify_to: ["To", "接收方"],
    notify_text: ["Message", "内容"], ns_pending: ["pending", "待发送"], ns_failed: ["failed", "失败"], ns_sent: ["sent", "已发送"],
    channel_counts: ["{channel}: {pending} pending, {failed} failed", "{channel}：{pending} 条待发送，{failed} 条失败"],
    no_channels: ["no notification channels", "无通知渠道"], notify_none_waiting: ["nothing waiting", "无待发送通知"],
    notify_none_sent: ["nothing sent yet", "尚未发送通知"], areas: ["Areas", "区域"], audit: ["Audit log", "审计日志"],
    foot: ["Times are China Standard Time (Asia/Shanghai, UTC+8).", "时间为北京时间（Asia/Shanghai，UTC+8）。"],
    role_viewer: ["viewer", "访客"], role_gate_operator: ["gate operator", "闸门操作员"],
    role_environment_officer: ["environment officer", "环保专员"], role_safety_inspector: ["work-safety inspector", "安全生产检查员"],
    role_admin: ["admin", "管理员"],
    prio_critical: ["critical", "紧急"], prio_warning: ["warning", "警告"], prio_info: ["info", "提示"],
    enterprises: ["Enterprises and their detectors", "企业及其探测器"], no_enterprise: ["other detectors", "其他探测器"],
    ent_counts: ["{n} detectors, {alarms} in alarm", "{n} 台探测器，{alarms} 台报警"],
    stations: ["Stations and their latest values", "监测站及最新数值"],
    gates: ["Gates", "闸门"],
  };
  const LANGS = ["en", "zh"];
  const LANG_KEY = "lifeline.lang";
  /** Chinese where the browser asks for it first (navigator.languages), else English; a choice is remembered. */
  function pickLang() {
    const saved = localStorage.getItem(LANG_KEY);
    if (LANGS.includes(saved)) return saved;
    const asked = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language])
      .map((l) => String(l || "").toLowerCase());
    for (const l of asked) {
      if (l.startsWith("zh")) return "zh";
      if (l.startsWith("en")) return "en";
    }
    return "en";
  }
  let lang = pickLang();
  const locale = () => (lang === "zh" ? "zh-CN" : "en-GB");

  /** The string ``key`` in the page's language, with {name} filled from ``vars``. */
  function t(key, vars) {
    const entry = STRINGS[key];
    let text = entry ? entry[LANGS.indexOf(lang)] || entry[0] : key;
    for (const [k, v] of Object.entries(vars || {})) text = text.split(`{${k}}`).join(String(v));
    return text;
  }

  /** A pair [English, Chinese] in the page's language, with {name} filled from ``vars``. */
  function tr(pair, vars) {
    let text = pair[LANGS.indexOf(lang)] || pair[0];
    for (const [k, v] of Object.entries(vars || {})) text = text.split(`{${k}}`).join(String(v));
    return text;
  }

  // The API's catalogue of names (i18n/en.json, i18n/zh-CN.json: points, units, states, command states, error
  // codes, rule titles). Read once per language; until it has come (or when it has no entry), names show as sent.
  const catalogues = new Map(); // "en" | "zh" -> object
  async function loadCatalogue(which) {
    if (catalogues.has(which)) return;
    catalogues.set(which, {});
    try {
      const response = await fetch(new URL(`i18n/${which === "zh" ? "zh-CN" : "en"}.json`, document.baseURI),
        { cache: "no-cache" });
      if (response.ok) catalogues.set(which, await response.json());
    } catch (err) {
      // no catalogue: the names stay as the API sends them
    }
  }

  /** The catalogue's text for ``key`` of ``kind`` ("points", "units", "states", "commands", "errors", "rules",
   *  "profiles", "quality", "reasons"), nested ({kind: {key}}) or flat ("kind.key"); null when it has none. */
  function cat(kind, key) {
    const c = catalogues.get(lang) || {};
    const group = c[kind];
    let v = group && typeof group === "object" ? group[key] : undefined;
    if (v == null) v = c[`${kind}.${key}`];
    if (v && typeof v === "object") v = v.label ?? v.name ?? v.title ?? v.message ?? null;
    return typeof v === "string" ? v : null;
  }

  /** A point's name for people: the catalogue's label (per profile first), else the name as sent. */
  function pointLabel(profile, point) {
    return cat("points", `${profile}.${point}`) || cat("points", point) || point;
  }
  const unitLabel = (unit) => (unit ? cat("units", unit) || unit : unit);
  const profileLabel = (profile) => cat("profiles", profile) || profile;
  const qualityLabel = (q) => cat("quality", q) || t(`q_${q}`);
  const stateLabel = (st) => cat("device_states", st) || t(`st_${st}`);
  /** A state or quality reason in the page's language: by its code, or by the catalogue's patterns. */
  function reasonLabel(code) {
    if (!code) return "";
    const direct = cat("state_reasons", code) || cat("quality_reasons", code);
    if (direct) return direct;
    for (const [pattern, template] of (catalogues.get(lang) || {}).quality_reason_patterns || []) {
      const m = new RegExp(pattern).exec(code);
      if (m) {
        return Object.entries(m.groups || {}).reduce((s, [k, v]) => s.split(`{${k}}`).join(reasonLabel(v) || v),
          template);
      }
    }
    return code;
  }
  const severityLabel = (s) => cat("severities", s) || t(`prio_${s}`);
  const commandLabel = (c) => cat("command_states", c) || c;

  const numberFormats = new Map();
  /** A number for the page's language (Intl): ``digits`` decimals, or up to 3 significant places when null. */
  function fmtNumber(value, digits) {
    const key = `${lang}/${digits}`;
    if (!numberFormats.has(key)) {
      numberFormats.set(key, new Intl.NumberFormat(locale(), digits == null
        ? { maximumFractionDigits: 3, maximumSignificantDigits: 4 }
        : { minimumFractionDigits: digits, maximumFractionDigits: digits }));
    }
    return numberFormats.get(key).format(value);
  }

  /** Every element with data-i18n gets its text, data-i18n-ph its placeholder; <html lang> follows. */
  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = state.alarmTitle ? `${state.alarmTitle} · ${t("title")}` : t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-ph]")) el.placeholder = t(el.dataset.i18nPh);
    $("lang").textContent = t("lang_switch");
    $("lang").setAttribute("aria-label", lang === "zh" ? "Switch to English" : "切换到中文");
  }

  function switchLang() {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, lang);
    timeFormats.clear();
    applyLang();
    if (state.user) rerender();
    emit("lang", lang);
  }

  const timeFormats = new Map();
  function timeFormat(name, options) {
    if (!timeFormats.has(name)) timeFormats.set(name, new Intl.DateTimeFormat(locale(), { timeZone: TZ, ...options }));
    return timeFormats.get(name);
  }

  /** A readable date and time in the page's language, China Standard Time ("2 Dec 2026, 14:03:09"). */
  function fmtTime(ms) {
    if (ms == null) return "—";
    return timeFormat("full", { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23" }).format(new Date(ms));
  }

  function fmtShort(ms) {
    return timeFormat("short", { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23" }).format(new Date(ms));
  }

  function fmtAge(ms) {
    if (ms == null) return "";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: "always", style: "short" });
    if (s < 90) return rtf.format(-s, "second");
    if (s < 5400) return rtf.format(-Math.round(s / 60), "minute");
    if (s < 172800) return rtf.format(-Math.round(s / 3600), "hour");
    return rtf.format(-Math.round(s / 86400), "day");
  }

  /** A value with its unit; ``digits`` the point's decimals when known (else up to 4 significant places). */
  function fmtValue(value, unit, digits) {
    if (value == null) return "—";
    if (typeof value === "boolean") return value ? "✓" : "✗";
    if (typeof value === "number") {
      const text = Number.isInteger(value) && digits == null ? fmtNumber(value, 0) : fmtNumber(value, digits);
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
        let coded = e.code ? cat("errors", e.code) : null;
        if (coded) {
          for (const [k, v] of Object.entries({ field, ...(e.params || {}) })) coded = coded.split(`{${k}}`).join(String(v));
          return field && !coded.includes(field) ? `${coded} (${t("field")}: ${field})` : coded;
        }
        return field ? `${e.msg} (${t("field")}: ${field})` : e.msg;
      }).join("; ");
    }
    if (detail && typeof detail === "object" && detail.code && cat("errors", detail.code)) {
      let text = cat("errors", detail.code);
      for (const [k, v] of Object.entries(detail.params || {})) text = text.split(`{${k}}`).join(String(v));
      return prefix + text;
    }
    if (detail && typeof detail === "object") {
      let text = detail.reason || "refused";
      if (detail.interlock) text = `refused by interlock ${detail.interlock}: ${text}`;
      if (detail.field) text += ` (${t("field")}: ${detail.field})`;
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
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(), REQUEST_MS);
    init.signal = timer.signal;
    try {
      response = await fetch(url(path), init);
    } catch (err) {
      const why = timer.signal.aborted ? t("no_answer", { s: Math.round(REQUEST_MS / 1000) }) : err.message;
      throw new ApiError(0, { code: "unreachable", reason: t("api_unreachable", { why }) });
    } finally {
      clearTimeout(timeout);
    }
    reachable();
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
      if (response.status === 401 && state.token) sessionEnded(t("session_ended"));
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

  function banner(err, force) {
    // the stalled banner already says the API is not answering: a request that timed out meanwhile adds nothing
    if (!force && state.stalledAt != null && err instanceof ApiError && err.status === 0
      && $("banner").dataset.kind === "stalled" && !$("banner").hidden) return;
    $("banner-text").textContent = err instanceof Error ? err.message : String(err);
    $("banner").dataset.kind = err instanceof ApiError && err.status === 0 ? "offline" : "error";
    $("banner").hidden = false;
  }

  /** The API answered: a "not reachable" banner is no longer true, unless the live stream is still down (an
   *  answer to a request sent before the API stopped says nothing about now). */
  function reachable() {
    const kind = $("banner").dataset.kind;
    if ((kind === "offline" || kind === "stalled") && state.lostAt == null) $("banner").hidden = true;
  }

  // -- session ---------------------------------------------------------------------------------------------------
  const VIEWS = ["login-view", "password-view", "overview-view", "devices-view", "alerts-view", "admin-view"];
  const extraViews = new Map(); // id -> the view another script registered (window.Lifeline.addView)
  const listeners = new Map(); // event name -> [fn]
  let current = null; // the view shown

  function emit(name, data) {
    for (const fn of listeners.get(name) || []) {
      try {
        fn(data);
      } catch (err) {
        console.error(`a "${name}" listener failed`, err); // one broken view never stops the console
      }
    }
  }

  function renderExtra(id) {
    const v = extraViews.get(id);
    if (!v || !state.user || !v.render || $(id).hidden) return;
    try {
      v.render($(id), window.Lifeline);
    } catch (err) {
      console.error(`the view ${id} failed to draw`, err);
    }
  }

  function show(view) {
    current = view;
    for (const id of VIEWS) $(id).hidden = id !== view;
    if (view === "admin-view") loadAdmin();
    for (const b of document.querySelectorAll("#tabs [data-tab]")) {
      const on = b.dataset.tab === view;
      b.classList.toggle("active", on);
      b.setAttribute("aria-selected", String(on));
      b.tabIndex = on ? 0 : -1;
    }
    const v = extraViews.get(view);
    if (v && v.onShow) {
      try {
        v.onShow($(view), window.Lifeline);
      } catch (err) {
        console.error(`the view ${view} failed to open`, err);
      }
    }
    renderExtra(view);
  }

  /** The tabs a user's role may see (a registered view names its roles). */
  function tabsForRole() {
    for (const [id, v] of extraViews) {
      const tab = document.querySelector(`#tabs [data-tab="${id}"]`);
      if (tab) tab.hidden = !state.user || (v.roles && !v.roles.includes(state.user.role));
    }
  }

  function addView(spec) {
    if (!spec || !spec.id || extraViews.has(spec.id)) throw new Error("addView: a new view needs its own id");
    extraViews.set(spec.id, spec);
    let section = document.getElementById(spec.id);
    if (!section) {
      section = h("section", { id: spec.id, class: "card" });
      document.querySelector("main").append(section);
    }
    section.hidden = true;
    section.setAttribute("role", "tabpanel");
    section.setAttribute("aria-labelledby", `tab-${spec.id}`);
    VIEWS.push(spec.id);
    const key = Array.isArray(spec.label) ? null : spec.label;
    if (Array.isArray(spec.label)) STRINGS[`tab_${spec.id}`] = spec.label;
    const tab = h("button", {
      type: "button", role: "tab", id: `tab-${spec.id}`, "data-tab": spec.id, "aria-controls": spec.id,
      "aria-selected": "false", tabindex: -1, "data-i18n": key || `tab_${spec.id}`,
      onclick: () => show(spec.id),
    }, t(key || `tab_${spec.id}`));
    const after = spec.after && document.querySelector(`#tabs [data-tab="${spec.after}"]`);
    if (after) after.after(tab);
    else $("admin-tab").before(tab);
    tabsForRole();
    return section;
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
    $("user-role").textContent = state.user ? t(`role_${state.user.role}`) : "";
    $("whoami").hidden = !state.user;
  }

  function may(roles) {
    return Boolean(state.user) && roles.has(state.user.role);
  }

  async function boot() {
    applyLang(); // the page's language at once; the catalogue's names once it has come
    await Promise.all([loadCatalogue("en"), loadCatalogue("zh")]);
    wire();
    setInterval(() => {
      tickAges();
      watchdog();
    }, 1000);
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
    $("admin-tab").hidden = state.user.role !== "admin";
    tabsForRole();
    emit("login", state.user);
    show(view.tab);
    startStream();
    loadSites();
    loadAlerts();
    loadAdmin();
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
      showError("password-error", t("pw_differ"));
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
      token: null, user: null, sites: [], district: new Map(), site: null, devices: new Map(), latest: new Map(), device: null,
      chart: null, alerts: [], alert: null, pending: null, checked: new Set(), seen: new Map(), seenReady: false,
      lostAt: null, limits: null, means: null,
    });
    document.body.classList.remove("disconnected");
    $("device-panel").hidden = true;
    $("alert-panel").hidden = true;
    $("banner").hidden = true;
    showLogin(message);
  }

  // -- the district overview: sites by area, each coloured by its worst active alert --------------------------------
  function worstBySite() {
    const worst = new Map();
    for (const a of state.alerts) {
      if (!isActive(a) || isShelved(a) || !a.site) continue;
      const w = worst.get(a.site);
      if (!w || PRIO_RANK[a.severity] < PRIO_RANK[w]) worst.set(a.site, a.severity);
    }
    return worst;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child != null && child !== false) el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  /** The district drawn as a schematic, not a map (no outside tiles): one column per area, one blue line per river
   * across them (its mouth on the left), each site a dot on its river in its area's column, coloured by its worst
   * active alert; sites off the rivers in a row of their own below. A click opens the site. */
  function renderRiverSchematic(worst) {
    const place = (s) => state.district.get(s.site) || { river: "", area: s.area || "", km: null, title: "" };
    const areaOf = (s) => place(s).area || s.area || "";
    const areas = [...new Set(state.sites.map(areaOf))].sort();
    const rivers = [...new Set(state.sites.map((s) => place(s).river))].filter(Boolean).sort();
    const rows = [...rivers, ""]; // the last row: off the rivers
    const colW = 190, rowH = 96, left = 12, top = 34;
    const width = left * 2 + Math.max(1, areas.length) * colW, height = top + rows.length * rowH;
    const cells = new Map();
    for (const s of state.sites) {
      const key = `${rows.indexOf(place(s).river)}|${areas.indexOf(areaOf(s))}`;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(s);
    }
    const parts = [];
    areas.forEach((a, i) => {
      const x = left + i * colW;
      parts.push(svg("rect", { x: x + 2, y: 4, width: colW - 4, height: height - 8, rx: 8, class: "sch-area" }),
        svg("text", { x: x + colW / 2, y: 22, class: "sch-area-name", "text-anchor": "middle" }, a || t("no_area")));
    });
    rows.forEach((r, j) => {
      const y = top + j * rowH + 30;
      if (r) {
        parts.push(svg("line", { x1: left, y1: y, x2: width - left, y2: y, class: "sch-river" }),
          svg("text", { x: left + 6, y: y - 8, class: "sch-river-name" }, r));
      } else {
        parts.push(svg("text", { x: left + 6, y: y - 8, class: "sch-river-name off" }, t("off_river")));
      }
    });
    for (const [key, sites] of cells) {
      const [j, i] = key.split("|").map(Number);
      sites.sort((p, q) => (place(p).km ?? 1e9) - (place(q).km ?? 1e9) || p.site.localeCompare(q.site));
      const step = (colW - 20) / sites.length;
      sites.forEach((s, k) => {
        const cx = left + i * colW + 10 + step * (k + 0.5), cy = top + j * rowH + 30;
        const w = worst.get(s.site);
        const label = place(s).title || s.site;
        const km = place(s).km;
        parts.push(svg("g", {
          class: `sch-site worst-${w || "none"}${s.devices && s.online === 0 ? " offline" : ""}`, "data-site": s.site,
          tabindex: 0, role: "button",
          onclick: () => { show("devices-view"); selectSite(s.site); },
          onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); show("devices-view"); selectSite(s.site); } },
        }, svg("title", null, `${label}: ${w ? t(`prio_${w}`) : t("worst_none")}; ${t("ov_counts", { online: s.online, devices: s.devices })}`
            + (km != null ? `; ${fmtNumber(km, 1)} km` : "")),
        svg("circle", { cx, cy, r: 11 }),
        svg("text", { x: cx, y: cy + 28, "text-anchor": "middle", class: "sch-label" }, label.length > 22 ? `${label.slice(0, 21)}…` : label),
        svg("text", { x: cx, y: cy + 44, "text-anchor": "middle", class: "sch-count" },
          `${fmtNumber(s.online, 0)}/${fmtNumber(s.devices, 0)}`)));
      });
    }
    const drawing = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": t("schematic_label"),
      preserveAspectRatio: "xMinYMin meet",
    }, parts);
    // at most its own size on a wall screen; on a phone no smaller than legible (its box scrolls sideways)
    drawing.style.maxWidth = `${width}px`;
    drawing.style.minWidth = `${Math.min(width, 480)}px`;
    $("river-schematic").replaceChildren(drawing);
  }

  /** A site's devices by state: "3 of 4 devices online · 1 stale" (the API's counts). */
  function siteCounts(s) {
    const parts = [t("ov_counts", { online: s.online, devices: s.devices })];
    for (const st of ["stale", "offline"]) {
      const n = s.states && s.states[st];
      if (n) parts.push(`${fmtNumber(n, 0)} ${stateLabel(st)}`);
    }
    return parts.join(" · ");
  }

  function renderOverview() {
    if (!state.user) return;
    const worst = worstBySite();
    const areas = new Map();
    for (const s of state.sites) {
      const key = s.area || "";
      if (!areas.has(key)) areas.set(key, []);
      areas.get(key).push(s);
    }
    const online = state.sites.reduce((n, s) => n + s.online, 0);
    const total = state.sites.reduce((n, s) => n + s.devices, 0);
    const stale = state.sites.reduce((n, s) => n + ((s.states && s.states.stale) || 0), 0);
    $("overview-totals").textContent = t("ov_totals", { sites: state.sites.length, online, stale,
      offline: total - online - stale,
      active: state.alerts.filter((a) => isActive(a) && !isShelved(a)).length });
    renderRiverSchematic(worst);
    // The same sites as a list by area: large targets on a phone, and readable without the drawing.
    $("schematic").replaceChildren(...[...areas.entries()].sort().map(([area, sites]) => h("div", { class: "area" },
      h("h3", null, area || t("no_area")),
      h("div", { class: "area-sites" }, sites.map((s) => {
        const w = worst.get(s.site);
        return h("button", {
          type: "button", class: `site-tile worst-${w || "none"}`, "data-site": s.site,
          title: w ? t(`prio_${w}`) : t("worst_none"),
          onclick: () => { show("devices-view"); selectSite(s.site); },
        }, h("b", null, s.site), h("small", null, siteCounts(s)),
        h("small", null, w ? t(`prio_${w}`) : t("worst_none")));
      })))));
    const f = $("f-site");
    const sites = state.sites.map((s) => s.site);
    if (Array.from(f.options, (o) => o.value).slice(1).join() !== sites.join()) {
      const chosen = f.value;
      f.replaceChildren(h("option", { value: "", "data-i18n": "any" }, t("any")),
        ...sites.map((x) => h("option", { value: x }, x)));
      f.value = chosen;
    }
  }

  // -- admin: users (create, role, areas, disable, reset password), API tokens, the audit log ---------------------
  const ROLES = ["viewer", "gate_operator", "environment_officer", "safety_inspector", "admin"];
  // the configured areas (the areas route, admin), and those of the sites heard, for an API that has none configured
  const knownAreas = () => [...new Set([...(state.areas || []), ...state.sites.map((s) => s.area).filter(Boolean)])].sort();

  function adminSay(error, done) {
    showError("admin-error", error || "");
    $("admin-done").textContent = done || "";
    $("admin-done").hidden = !done;
  }

  function roleSelect(value, label) {
    return h("select", { name: "role", "aria-label": label || t("role") },
      ROLES.map((r) => h("option", { value: r, selected: r === value }, t(`role_${r}`))));
  }
  function areaSelect(values, label) {
    const areas = [...new Set([...knownAreas(), ...(values || [])])];
    return h("select", { name: "areas", multiple: true, size: Math.min(4, Math.max(2, areas.length)),
      "aria-label": label || t("areas") }, areas.map((a) => h("option", { value: a, selected: (values || []).includes(a) }, a)));
  }
  const chosen = (select) => Array.from(select.selectedOptions, (o) => o.value);

  async function adminDo(method, path, body, done) {
    adminSay("", "");
    try {
      const out = await api(method, path, body);
      adminSay("", done);
      await loadAdmin();
      return out;
    } catch (err) {
      adminSay(err.message, "");
      return undefined;
    }
  }

  function userRow(u) {
    const role = roleSelect(u.role, t("role_of", { user: u.username }));
    const areas = areaSelect(u.areas, t("areas_of", { user: u.username }));
    const pw = h("input", { type: "password", name: "password", maxlength: 256, autocomplete: "new-password",
      placeholder: t("one_time_pw"), "aria-label": t("reset_pw_of", { user: u.username }) });
    return h("tr", { "data-user": u.username },
      h("td", null, h("b", null, u.username)), h("td", null, role), h("td", null, areas, h("small", { class: "hint" },
        u.areas.length ? "" : ` ${t("all_areas")}`)),
      h("td", null, u.disabled ? t("disabled") : t("enabled"), u.must_change_password ? ` · ${t("must_change")}` : ""),
      h("td", { class: "admin-acts" },
        h("button", { type: "button", "data-act": "save", onclick: () => adminDo("PATCH", `/api/users/${enc(u.username)}`,
          { role: role.value, areas: chosen(areas) }, t("saved", { user: u.username })) }, t("save")),
        h("button", { type: "button", "data-act": "disable", onclick: () => adminDo("PATCH", `/api/users/${enc(u.username)}`,
          { disabled: !u.disabled }, t(u.disabled ? "enabled_user" : "disabled_user", { user: u.username })) },
        t(u.disabled ? "enable" : "disable")),
        h("span", { class: "reset" }, pw, h("button", { type: "button", "data-act": "reset", onclick: () => {
          if (!pw.value) { adminSay(t("pw_needed"), ""); pw.focus(); return; }
          adminDo("PATCH", `/api/users/${enc(u.username)}`, { password: pw.value }, t("pw_reset", { user: u.username }));
        } }, t("reset_pw")))));
  }

  async function loadAdmin() {
    if (!state.user || state.user.role !== "admin") return;
    try {
      const [users, audit, tokens, areas] = await Promise.all([api("GET", "/api/users"), api("GET", "/api/audit?limit=100"),
        api("GET", "/api/tokens"), api("GET", "/api/areas")]);
      state.areas = areas.map((a) => a.area);
      const form = $("user-form");
      if (!form.elements.role.options.length) form.elements.role.replaceWith(roleSelect("viewer"));
      const areasNow = chosen(form.elements.areas);
      form.elements.areas.replaceWith(areaSelect(areasNow));
      const forUser = $("token-form").elements.username;
      const picked = forUser.value;
      forUser.replaceChildren(...users.map((u) => h("option", { value: u.username }, u.username)));
      if (picked) forUser.value = picked;
      $("user-rows").replaceChildren(...users.map(userRow));
      $("token-rows").replaceChildren(...tokens.map((k) => h("tr", { "data-token": k.id },
        h("td", null, k.name), h("td", null, k.username), h("td", null, fmtTime(k.created_ms)),
        h("td", null, k.expires_ms ? fmtTime(k.expires_ms) : t("never_expires")),
        h("td", null, k.last_used_ms ? fmtTime(k.last_used_ms) : t("never")),
        h("td", null, k.revoked ? t("revoked") : h("button", { type: "button",
          onclick: () => adminDo("DELETE", `/api/tokens/${k.id}`, undefined, t("token_revoked", { name: k.name })) },
        t("revoke"))))));
      $("audit-rows").replaceChildren(...audit.map((r) => h("tr", null, h("td", null, fmtTime(r.ts_ms)),
        h("td", null, r.who || "—"), h("td", null, STRINGS[`audit_${r.action.replace(/\./g, "_")}`] ? t(`audit_${r.action.replace(/\./g, "_")}`) : h("code", { translate: "no" }, r.action)),
        h("td", null, r.target || ""))));
    } catch (err) {
      banner(err);
    }
  }

  async function onCreateUser(ev) {
    ev.preventDefault();
    const form = ev.currentTarget;
    const f = form.elements;
    const name = f.username.value.trim();
    const out = await adminDo("POST", "/api/users", { username: name, password: f.password.value, role: f.role.value,
      areas: chosen(f.areas) }, t("created_user", { user: name }));
    if (out) form.reset();
  }

  async function onCreateToken(ev) {
    ev.preventDefault();
    const form = ev.currentTarget;
    const f = form.elements;
    const out = await adminDo("POST", "/api/tokens", { name: f.name.value.trim(), username: f.username.value || null,
      lifetime_days: Number(f.lifetime_days.value) || null }, t("token_created", { name: f.name.value.trim() }));
    if (out) {
      $("token-secret").textContent = t("token_once", { token: out.token });
      $("token-secret").hidden = false;
      form.elements.name.value = "";
    }
  }

  // -- the notification log: what was sent to whom and when, and what waits or failed (a view of its own) -----------
  const NOTIFY_ROLES = ["safety_inspector", "environment_officer", "gate_operator", "admin"];
  async function renderNotifications(section) {
    const q = (id) => section.querySelector(`#${id}`);
    if (!section.dataset.built) {
      section.dataset.built = "1";
      section.replaceChildren(h("div", { class: "toolbar" }, h("h2", null, t("notifications")),
        h("button", { type: "button", id: "notify-refresh", onclick: () => renderNotifications(section) }, t("refresh"))),
      h("p", { id: "notify-error", class: "error", role: "alert", hidden: true }),
      h("div", { id: "notify-channels", class: "hint" }),
      h("h3", null, t("notify_waiting")),
      h("div", { class: "scroll" }, h("table", { class: "grid compact" }, h("thead", null, h("tr", null,
        [t("time"), t("channel"), t("th_alert"), t("notify_status"), t("attempts"), t("next_try"), t("last_error")]
          .map((x) => h("th", null, x)))), h("tbody", { id: "notify-queue" }))),
      h("h3", null, t("notify_sent")),
      h("div", { class: "scroll" }, h("table", { class: "grid compact" }, h("thead", null, h("tr", null,
        [t("time"), t("channel"), t("notify_to"), t("th_alert"), t("notify_status"), t("attempts"), t("notify_text")]
          .map((x) => h("th", null, x)))), h("tbody", { id: "notify-sent" }))));
    }
    try {
      const out = await api("GET", "/api/alerts/notifications?limit=200");
      q("notify-error").hidden = true;
      q("notify-channels").textContent = out.channels.map((c) => t("channel_counts", { channel: c.channel,
        pending: fmtNumber(c.pending, 0), failed: fmtNumber(c.failed, 0) })).join(" · ") || t("no_channels");
      const alertLink = (id) => (id ? h("button", { type: "button", class: "rowlink",
        onclick: () => { show("alerts-view"); openAlert(id); } }, `#${id}`) : "—");
      q("notify-queue").replaceChildren(...(out.notifications.length ? out.notifications.map((n) => h("tr", {
        class: n.status === "failed" ? "exceeded" : null, "data-status": n.status },
      h("td", null, fmtTime(n.created_ms)), h("td", null, n.channel), h("td", null, alertLink(n.alert_id), " ", n.title),
      h("td", null, t(`ns_${n.status}`)), h("td", null, fmtNumber(n.attempts, 0)),
      h("td", null, n.next_ms ? fmtTime(n.next_ms) : "—"), h("td", null, n.last_error || "")))
        : [h("tr", null, h("td", { colspan: 7, class: "hint" }, t("notify_none_waiting")))]));
      q("notify-sent").replaceChildren(...(out.sent.length ? out.sent.map((n) => h("tr", { "data-ok": String(n.ok) },
        h("td", null, fmtTime(n.ts_ms)), h("td", null, n.channel), h("td", null, n.target),
        h("td", null, alertLink(n.alert_id)), h("td", null, n.ok ? t("ns_sent") : `${t("ns_failed")}: ${n.error}`),
        h("td", null, fmtNumber(n.attempts, 0)), h("td", null, n.text)))
        : [h("tr", null, h("td", { colspan: 7, class: "hint" }, t("notify_none_sent")))]));
    } catch (err) {
      q("notify-error").textContent = err.message;
      q("notify-error").hidden = false;
    }
  }

  // -- sites and devices -----------------------------------------------------------------------------------------
  async function loadSites() {
    try {
      // the district's layout (each site's river, area and place) with each site's device counts
      const district = await api("GET", "/api/district");
      state.sites = district.sites;
      state.district = new Map(district.sites.map((x) => [x.site, x]));
    } catch (err) {
      banner(err);
      return;
    }
    renderSites();
    renderOverview();
    emit("sites", state.sites);
    renderExtra(current);
    if (!state.site && state.sites.length) selectSite(state.sites[0].site);
  }

  function renderSites() {
    $("site-list").replaceChildren(...state.sites.map((s) => h("li", null,
      h("button", { type: "button", class: s.site === state.site ? "active" : "", onclick: () => selectSite(s.site) },
        h("span", null, s.site),
        h("small", null, `${s.area || t("no_area")} · ${siteCounts(s)}`)))));
  }

  async function selectSite(site) {
    if (site !== state.site) {
      state.device = null;
      state.devices = new Map();
      state.latest = new Map();
      state.devicesError = null;
      state.devicesLoading = true;
      $("device-panel").hidden = true;
      state.site = site;
      renderDevices();
    }
    state.site = site;
    renderSites();
    $("site-title").textContent = site;
    $("site-title").dataset.site = site;
    try {
      const devices = await api("GET", `/api/sites/${enc(site)}/devices`);
      if (state.site !== site) return;
      state.devices = new Map(devices.map((d) => [d.device, d]));
      state.devicesError = null;
      state.devicesLoading = false;
      loadProfiles(devices);
      renderDevices();
      loadEnv(site, devices);
    } catch (err) {
      if (state.site !== site) return;
      state.devicesLoading = false;
      state.devicesError = err; // said as an error: never "no devices" for a request that failed
      renderDevices();
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
    return h("span", { class: `badge q-${quality || "unknown"}` }, qualityLabel(quality || "unknown"));
  }

  /** A device's state, the same in every view: the API's `state` (online | stale | offline | unknown) when it sends
   *  one, else judged here from what it sends; and when the page itself has stopped hearing (stream or API stalled)
   *  nothing is "online": it is what the page last heard. {state, since_ms, sample_ms, stalled}. */
  function deviceState(d) {
    const sample = d.last_sample_ms ?? d.last_seen_ms ?? null;
    let st = d.state;
    let since = d.since_ms ?? null;
    if (!["online", "stale", "offline", "unknown"].includes(st)) {
      if (d.online === false) st = "offline";
      else if (sample == null) st = "unknown";
      else if (Date.now() - sample > STALE_MS) {
        st = "stale";
        since = sample + STALE_MS;
      } else st = d.online === true ? "online" : "unknown";
    }
    const stalled = document.body.classList.contains("disconnected");
    return { state: st, since_ms: since, sample_ms: sample, stalled };
  }

  /** An element whose text is an age and moves with the clock (the page's ticker rewrites it every second). */
  function ageEl(ms, key) {
    return h("span", { class: "age", "data-age-ms": ms == null ? null : ms, "data-age-key": key || null },
      ageText(ms, key));
  }
  function ageText(ms, key) {
    if (ms == null) return key ? "" : t("never");
    return key ? t(key, { age: fmtAge(ms) }) : fmtAge(ms);
  }
  function tickAges() {
    for (const el of document.querySelectorAll("[data-age-ms]")) {
      el.textContent = ageText(Number(el.dataset.ageMs), el.dataset.ageKey || null);
    }
  }

  /** The state as a dot, its name, and for how long / the last sample's age: in a cell (``tag`` "td") or inline. */
  function stateCell(d, tag) {
    const s = deviceState(d);
    const name = s.stalled && s.state === "online" ? "unconfirmed" : s.state;
    const reason = [reasonLabel(d.state_reason), d.status_reason].filter(Boolean).join("; ") || null;
    return h(tag || "td", { class: `dev-state st-${name}`, "data-state": name, title: reason },
      h("span", { class: `dot ${name}`, "aria-hidden": "true" }),
      h("span", { class: "st-name" }, name === "unconfirmed" ? t("st_unconfirmed") : stateLabel(name)),
      " ", h("small", null, s.since_ms != null && s.state !== "online" ? ageEl(s.since_ms, "since_age")
        : ageEl(s.sample_ms, "sample_age")));
  }

  function statusCell(d) {
    return stateCell(d, "td");
  }

  // Points a list row shows first: what each kind of device is watched for; command coils and limit switches last.
  const KEY_POINTS = ["gate_opening", "level_up", "level_down", "fault_code", "remote_mode", "ph", "do", "nh3_n",
    "codmn", "pm25", "pm10", "o3", "aqi", "so2", "nox", "dust", "lel", "alarm_level", "fire_alarm", "leq", "la"];

  const LEL_ALARM = 50; // %LEL, the second-level set point of GB/T 50493-2019 (the catalogue's gas_detector notes)

  function summary(latest, profile, key) {
    if (!latest || !latest.values) return [];
    const rank = (name) => {
      const i = KEY_POINTS.indexOf(name);
      return i >= 0 ? i : name.startsWith("cmd_") || name.startsWith("limit_") ? 1000 : 100;
    };
    const entries = Object.entries(latest.values).sort((a, b) => rank(a[0]) - rank(b[0]));
    return entries.slice(0, 5).map(([name, value]) => h("span", null, `${pointLabel(profile, name)} `,
      h("b", { class: name === "lel" && typeof value === "number" && value >= LEL_ALARM ? "lel-high" : null },
        fmtPoint(profile, name, value, latest.units[name], key)), "  "));
  }

  /** A detector's enterprise: its id up to "-gas-" or "-fire" (ent007-gas-2 -> ent007); "" for none. */
  function enterpriseOf(device) {
    const m = /^(.+?)-(gas|fire|tox|o2)\b/.exec(device); // the simulated district's ids: entNNN-<kind>-K
    return m ? m[1] : "";
  }

  function renderDevices() {
    const kind = $("kind-filter").value;
    const rows = [];
    const alarms = new Map(); // device -> its worst unacknowledged active alert
    for (const a of state.alerts) {
      if (a.site !== state.site || !a.device || !canAck(a)) continue;
      const w = alarms.get(a.device);
      if (!w || alertOrder(a, w) < 0) alarms.set(a.device, a);
    }
    // The safety inspector's view: by enterprise, the enterprises with a detector in alarm first, and in each its
    // detectors in alarm first (then by name); elsewhere by name.
    const safety = kind === "safety";
    const entAlarm = new Set([...alarms.keys()].map(enterpriseOf));
    const devices = [...state.devices.values()].sort((a, b) => (safety
      ? Number(!entAlarm.has(enterpriseOf(a.device))) - Number(!entAlarm.has(enterpriseOf(b.device)))
        || enterpriseOf(a.device).localeCompare(enterpriseOf(b.device))
        || Number(!alarms.has(a.device)) - Number(!alarms.has(b.device)) : 0) || a.device.localeCompare(b.device));
    let group = null;
    for (const d of devices) {
      if (kind && PROFILE_DOMAIN[d.profile] !== kind) continue;
      if (safety && enterpriseOf(d.device) !== group) {
        group = enterpriseOf(d.device);
        const members = devices.filter((x) => enterpriseOf(x.device) === group && PROFILE_DOMAIN[x.profile] === kind);
        const inAlarm = members.filter((x) => alarms.has(x.device)).length;
        rows.push(h("tr", { class: `group-row${inAlarm ? " alarm-group" : ""}`, "data-enterprise": group },
          h("th", { colspan: 7 }, group || t("no_enterprise"), " ",
            h("small", null, t("ent_counts", { n: fmtNumber(members.length, 0), alarms: fmtNumber(inAlarm, 0) })))));
      }
      const alarm = alarms.get(d.device);
      const stale = deviceState(d).state !== "online";
      rows.push(h("tr", {
        class: `clickable${d.device === state.device ? " selected" : ""}${alarm ? " alarm-row" : ""}`,
        onclick: () => openDevice(d.device), "data-device": d.device,
      },
      statusCell(d),
      h("td", null, h("button", { type: "button", class: "rowlink", "aria-label": `${d.device}: ${t(`st_${deviceState(d).state}`)}`,
        onclick: (ev) => { ev.stopPropagation(); openDevice(d.device); } }, d.device)),
      h("td", null, profileLabel(d.profile)),
      h("td", { class: stale ? "stale" : null }, fmtTime(deviceState(d).sample_ms), " ",
        h("small", null, ageEl(deviceState(d).sample_ms))),
      h("td", null, qualityBadge(d.quality)),
      h("td", { class: "values" }, envBadges(d.device), summary(state.latest.get(d.device), d.profile, profileKey(d))),
      ...(alarm && kind === "safety" ? [h("td", { onclick: (ev) => ev.stopPropagation() },
        h("button", { type: "button", class: "primary ack-one", onclick: () => ackOne(alarm) }, t("ack")))] : [])));
    }
    replaceRows($("device-rows"), "device", rows);
    const empty = $("devices-empty");
    empty.classList.toggle("error", Boolean(state.devicesError));
    empty.setAttribute("role", state.devicesError ? "alert" : "status");
    empty.textContent = state.devicesError ? t("devices_failed", { why: state.devicesError.message })
      : state.devicesLoading ? t("loading") : t("no_devices");
    empty.dataset.kind = state.devicesError ? "error" : state.devicesLoading ? "loading" : "empty";
    empty.hidden = rows.length > 0 && !state.devicesError;
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
    const sample = deviceState(d).sample_ms;
    $("device-meta").replaceChildren(stateCell(d, "span"), " · ", [
      profileLabel(d.profile), d.area ? `${t("area")} ${d.area}` : t("no_area"),
      t("last_sample_at", { time: fmtTime(sample) }),
    ].join(" · "), " ", h("small", null, ageEl(sample)),
    latest ? ` · ${t("values_from", { source: STRINGS[`src_${latest.source}`] ? t(`src_${latest.source}`) : latest.source })}` : "");
    const rows = Object.entries((latest && latest.values) || {}).map(([name, value]) => {
      const q = latest.quality[name] || "good";
      const why = latest.reasons[name] ? reasonLabel(latest.reasons[name]) : "";
      return h("tr", { "data-point": name }, h("td", null, pointLabel(d.profile, name)),
        h("td", null, h("b", null, fmtPoint(d.profile, name, value, latest.units[name], profileKey(d)))),
        h("td", null, fmtTime(latest.times_ms[name])),
        h("td", null, qualityBadge(q), why ? ` ${why}` : ""));
    });
    $("device-values").replaceChildren(...rows);

    const select = $("chart-point");
    const points = numericPoints(latest);
    const chosen = state.chart ? state.chart.point
      : points.includes("gate_opening") ? "gate_opening" : points[0];
    if (Array.from(select.options, (o) => o.value).join() !== points.join()) { // keep an open list open
      select.replaceChildren(...points.map((p) => h("option", { value: p }, pointLabel(d.profile, p))));
    }
    if (chosen) select.value = chosen;
    if (chosen && (!state.chart || state.chart.point !== chosen)) loadChart(d.site, d.device, chosen);
    if (!chosen) {
      clearChart(t("no_numeric"));
    }
    loadMeans(d);
    $("gate-panel").hidden = !(d.profile === GATE_PROFILE && may(GATE_ROLES));
    if (!$("gate-panel").hidden) {
      renderGateState();
      loadGateLimits(d);
    }
  }

  /** The gate's limits (targets are % of full_opening_m; the gate reports metres): asked once per gate. */
  async function loadGateLimits(d) {
    const key = `${d.site}/${d.device}`;
    if (state.limits && state.limits.key === key) return;
    state.limits = { key, full_opening_m: null };
    try {
      const g = await api("GET", `/api/gates/${enc(d.site)}/${enc(d.device)}/limits`);
      if (state.limits.key !== key) return;
      state.limits = { key, ...g };
      $("gate-target").min = String(g.min_pct);
      $("gate-target").max = String(g.max_pct);
      $("gate-range").textContent = t("gate_range", {
        min: fmtNumber(g.min_pct, 1), max: fmtNumber(g.max_pct, 1), full: fmtNumber(g.full_opening_m, 2) });
      renderGateState();
    } catch (err) {
      $("gate-range").textContent = err.message;
    }
  }

  /** "3.25 m (50 %)": an opening in metres with its percentage of the gate's full opening, when known. */
  function openingText(m) {
    if (m == null) return "—";
    const full = state.limits && state.limits.full_opening_m;
    const pct = full ? ` (${fmtNumber((100 * m) / full, 1)} %)` : "";
    return `${fmtNumber(m, 2)} m${pct}`;
  }

  // -- an environment station's stored valid hourly means against the limits that apply --------------------------
  /** Asked when the device opens and every 5 minutes after (an hour's mean lands once an hour). */
  async function loadMeans(d) {
    const show = ENV_PROFILES.has(d.profile) && may(ENV_ROLES);
    $("means").hidden = !show;
    const key = `${d.site}/${d.device}`;
    if (!show) { state.means = null; return; }
    if (state.means && state.means.key === key && Date.now() - state.means.asked_ms < 300000) return;
    state.means = { key, asked_ms: Date.now(), out: null };
    try {
      const out = await api("GET", `/api/env/sites/${enc(d.site)}/devices/${enc(d.device)}/means?period=hour`);
      if (!state.means || state.means.key !== key) return;
      state.means.out = out;
      renderMeans();
      if (state.plot) drawChart(); // the limit lines
    } catch (err) {
      $("means-rows").replaceChildren(h("tr", null, h("td", { colspan: 5, class: "empty" }, err.message)));
      $("exceedances").replaceChildren();
    }
  }

  /** Whether a mean breaks a limit (a strict limit: a mean equal to it complies). */
  function breaks(value, lim) {
    if (lim.direction === "high") return lim.strict ? value > lim.value : value >= lim.value;
    return lim.strict ? value < lim.value : value <= lim.value;
  }

  /** The limits of a point that apply to a plain hourly mean, the tightest first. */
  function limitsOf(point) {
    const out = state.means && state.means.out;
    return out ? out.limits.filter((l) => l.point === point && l.stat === "mean") : [];
  }

  function renderMeans() {
    const out = state.means && state.means.out;
    if (!out) return;
    const units = (state.latest.get(out.device) || {}).units || {};
    const points = [...new Set([...out.rows.flatMap((r) => Object.keys(r.values)), ...out.rows.flatMap((r) => Object.keys(r.invalid))])].sort();
    const lastOf = (p) => [...out.rows].reverse().find((r) => p in r.values || p in r.invalid);
    const rows = points.map((p) => {
      const r = lastOf(p);
      const v = r && r.values[p];
      const lims = limitsOf(p);
      const broken = v != null && lims.some((l) => breaks(v, l));
      const limText = lims.map((l) => `${l.direction === "high" ? "≤" : "≥"} ${fmtPoint(out.profile, p, l.value, units[p])}`).join(", ");
      return h("tr", { class: broken ? "exceeded" : null, "data-point": p }, h("td", null, pointLabel(null, p)),
        h("td", null, v != null ? h("b", null, fmtPoint(out.profile, p, v, units[p])) : h("span", { class: "hint", title: r && r.invalid[p] }, t("invalid_mean"))),
        h("td", null, r ? fmtTime(r.time_ms) : "—"), h("td", { title: lims.map((l) => `${l.title} (${l.source})`).join("; ") || null }, limText || "—"),
        h("td", null, lims.length && v != null ? h("span", { class: `badge ${broken ? "bad" : "good"}` }, t(broken ? "exceeded" : "complies")) : ""));
    });
    $("means-rows").replaceChildren(...(rows.length ? rows : [h("tr", null, h("td", { colspan: 5, class: "empty" }, t("no_means")))]));
    $("means-note").textContent = t("means_note", { start: fmtTime(out.start_ms), end: fmtTime(out.end_ms), n: fmtNumber(out.rows.length, 0) });
    const ex = [];
    for (const r of out.rows) {
      for (const [p, v] of Object.entries(r.values)) {
        for (const l of limitsOf(p)) {
          if (breaks(v, l)) ex.push(h("li", null, `${fmtTime(r.time_ms)} · ${p} ${fmtPoint(out.profile, p, v, units[p])} `
            + `${l.direction === "high" ? ">" : "<"} ${fmtPoint(out.profile, p, l.value, units[p])} (${l.title || l.source})`));
        }
      }
    }
    $("exceedances").replaceChildren(...(ex.length ? ex.reverse() : [h("li", { class: "hint" }, t("no_exceedances"))]));
  }

  // -- the device chart (uPlot, shipped in vendor/) -------------------------------------------------------------
  async function loadChart(site, device, point) {
    const span = state.rangeMs;
    state.chart = { site, device, point, start_ms: Date.now() - span, end_ms: Date.now(), points: [] };
    $("chart-note").textContent = "…";
    const q = new URLSearchParams({ points: point, max_points: String(CHART_POINTS),
      start_ms: String(Date.now() - span) });
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
    if (state.plot) state.plot.destroy();
    state.plot = null;
    $("chart").replaceChildren(h("p", { class: "empty" }, message));
    $("chart-note").textContent = "";
  }

  function drawChart() {
    const c = state.chart;
    const latest = state.latest.get(c.device);
    const unit = (latest && latest.units[c.point]) || "";
    const data = c.points.filter((p) => typeof p.values[c.point] === "number");
    if (!data.length) {
      clearChart(t("none"));
      return;
    }
    if (typeof window.uPlot !== "function") {
      clearChart("uPlot did not load");
      return;
    }
    const xs = data.map((p) => p.time_ms / 1000);
    const ys = data.map((p) => p.values[c.point]);
    const width = Math.max(260, $("chart").clientWidth || 600);
    // limit lines: the levels that apply to this point's hourly means (dashed red), in the drawing's y range
    const lims = limitsOf(c.point).map((l) => l.value);
    const opts = {
      hooks: { draw: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#c62828";
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
        for (const v of lims) {
          const y = u.valToPos(v, "y", true);
          ctx.beginPath();
          ctx.moveTo(u.bbox.left, y);
          ctx.lineTo(u.bbox.left + u.bbox.width, y);
          ctx.stroke();
        }
        ctx.restore();
      }] },
      width, height: 220, legend: { show: false }, cursor: { drag: { x: false } },
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), TZ), // China Standard Time, whatever the browser's
      scales: { x: { time: true }, y: { range: (u, min, max) => {
        const lo = Math.min(min, ...lims), hi = Math.max(max, ...lims), pad = (hi - lo) * 0.05 || 1;
        return [lo - pad, hi + pad];
      } } },
      axes: [{ values: (u, ticks) => ticks.map((v) => fmtShort(v * 1000)) }, { values: (u, ticks) => ticks.map((v) => fmtNumber(v, null)), size: 60 }],
      series: [{}, { label: pointLabel(state.devices.get(c.device)?.profile, c.point), stroke: "#1d6fb8", width: 1.5, spanGaps: false,
        value: (u, v) => (v == null ? "—" : fmtValue(v, unit)) }],
    };
    if (state.plot) state.plot.destroy();
    $("chart").replaceChildren();
    state.plot = new window.uPlot(opts, [xs, ys], $("chart"));
    const last = data[data.length - 1];
    $("chart-note").textContent = `${pointLabel(state.devices.get(c.device)?.profile, c.point)}${unit ? ` (${unitLabel(unit)})` : ""}: ${fmtTime(c.start_ms)} – `
      + `${fmtTime(Math.max(c.end_ms, last.time_ms))}; ${fmtValue(last.values[c.point], unit)} @ `
      + `${fmtTime(last.time_ms)}; n = ${data.length}`;
  }

  // -- gate control ----------------------------------------------------------------------------------------------
  function gateFacts(latest) {
    const v = (latest && latest.values) || {};
    const num = (p) => (typeof v[p] === "number" ? v[p] : null);
    const up = num("level_up"), down = num("level_down");
    const faults = [];
    if (num("fault_code")) faults.push(t("fault_code", { code: v.fault_code }));
    if (v.estop === true) faults.push(t("fault_estop"));
    if (v.overload === true) faults.push(t("fault_overload"));
    if (v.power_ok === false) faults.push(t("fault_power"));
    return {
      opening: num("gate_opening"), up, down, head: up != null && down != null ? Math.abs(up - down) : null,
      remote: typeof v.remote_mode === "boolean" ? v.remote_mode : null,
      moving: v.moving_open === true ? "opening_now" : v.moving_close === true ? "closing_now" : "at_rest",
      faults, time: latest ? latest.time_ms : null,
    };
  }

  function factsList(f) {
    const mode = f.remote === true ? t("remote") : f.remote === false ? t("local_mode") : t("unknown");
    const rows = [
      [t("opening"), openingText(f.opening)], [t("upstream"), fmtValue(f.up, "m", 2)],
      [t("downstream"), fmtValue(f.down, "m", 2)], [t("head"), fmtValue(f.head, "m", 2)],
      [t("mode"), mode], [t("movement"), t(f.moving)], [t("faults"), f.faults.length ? f.faults.join(", ") : t("none")],
      [t("as_of"), [fmtTime(f.time), " ", h("small", null, ageEl(f.time))]],
    ];
    return rows.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]);
  }

  function renderGateState() {
    $("gate-state").replaceChildren(...factsList(gateFacts(state.latest.get(state.device))));
  }



  async function askGate(action) {
    const d = state.devices.get(state.device);
    if (!d) return;
    let target = null;
    if (action === "set_opening") {
      target = Number($("gate-target").value);
      if ($("gate-target").value === "" || !(target >= 0 && target <= 100)) {
        renderGateError(t("target_range"));
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
    $("gate-confirm-text").textContent = t(`ask_${action}`, { device: d.device, site: d.site,
      target: target != null ? fmtNumber(target, null) : "" });
    $("gate-confirm-state").replaceChildren(...factsList(f));
    const warnings = [];
    if (f.remote === false) warnings.push(t("warn_local"));
    if (f.faults.length) warnings.push(t("warn_faults", { faults: f.faults.join(", ") }));
    const ds = deviceState(d);
    if (ds.state === "offline") warnings.push(t("warn_offline"));
    else if (ds.state !== "online") warnings.push(t("warn_stale", { age: fmtAge(ds.sample_ms) || t("never") }));
    if (ds.stalled) warnings.push(t("warn_stalled"));
    showError("gate-confirm-warning", warnings.length && action !== "stop"
      ? t("expect_refusal", { why: warnings.join("; ") }) : "");
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
    const target = v.target_pct != null ? t("to_target", { pct: fmtNumber(v.target_pct, null) }) : "";
    const interlockLabel = (name) => cat("interlocks", name) || name;
    const reasonOf = (x) => (x.code && cat("errors", x.code)
      ? Object.entries(x.params || {}).reduce((s, [k, p]) => s.split(`{${k}}`).join(String(p)), cat("errors", x.code))
      : x.reason);
    const steps = v.steps || [];
    const s = steps.length ? steps[steps.length - 1] : null; // the newest step, on one line that is rewritten
    const line = s ? h("p", { id: "gate-step", class: "step-line" },
      `${fmtTime(s.ts)} · ${commandLabel(s.state)}`,
      s.opening_m != null ? ` · ${t("opening")} ${openingText(s.opening_m)}` : "",
      s.target_m != null ? ` · ${t("target")} ${openingText(s.target_m)}` : "",
      s.interlock ? ` · ${t("interlock_x", { name: interlockLabel(s.interlock) })}` : "",
      s.reason ? ` · ${reasonOf(s)}` : "", s.late ? ` (${t("late")})` : "", ` · ${t("steps", { n: steps.length })}`) : null;
    const full = state.limits && state.limits.full_opening_m;
    const now = s && s.opening_m != null ? s.opening_m : null;
    const bar = full && now != null ? h("progress", { max: "100", value: String(Math.max(0, Math.min(100,
      (100 * now) / full))), "aria-label": t("opening") }) : null;
    const afterM = v.after ? (v.after.opening_m != null ? v.after.opening_m : v.after.gate_opening) : null;
    const after = afterM != null ? `${t("opening_after")}: ${openingText(afterM)}` : "";
    $("gate-progress").replaceChildren(h("div", null, // h() skips the parts that are null
      h("p", null, `${t("cmd_line", { id: v.id, action: commandLabel(v.action), target, who: v.operator,
        time: fmtTime(v.issued_ms) })} · `,
        h("span", { class: `cmd-state cmd-${v.state}`, "data-state": v.state }, commandLabel(v.state)),
        v.final ? ` (${t("cmd_final")})` : " …"),
      v.interlock ? h("p", { class: "error" }, t("refused_by", { interlock: interlockLabel(v.interlock), reason: reasonOf(v) }))
        : v.reason ? h("p", { class: v.state === "completed" ? "ok-text" : "error" }, reasonOf(v)) : null,
      after ? h("p", { class: "ok-text" }, after) : null,
      line, bar));
  }

  // -- alerts ----------------------------------------------------------------------------------------------------
  async function loadAlerts() {
    const q = new URLSearchParams({ limit: "200" });
    if ($("all-audiences").checked) q.set("all_audiences", "true");
    if ($("active-only").checked) q.set("active_only", "true");
    if ($("f-priority").value) q.set("min_severity", $("f-priority").value);
    if ($("f-site").value) q.set("site", $("f-site").value);
    if ($("f-state").value) q.set("state", $("f-state").value);
    if ($("f-audience").value) q.set("audience", $("f-audience").value);
    try {
      const out = await api("GET", `/api/alerts?${q}`);
      state.alerts = out.alerts;
      noticeCritical(out.alerts);
      $("alert-total").textContent = out.total > out.alerts.length
        ? `(${t("n_of_total", { n: fmtNumber(out.alerts.length, 0), total: fmtNumber(out.total, 0) })})`
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
    return [h("span", { class: `badge state-${a.state}` }, cat("alert_states", a.state) || t(a.state)),
      isShelved(a) ? h("span", { class: "badge shelved" }, ` ${t("shelved_until", { time: fmtTime(a.shelved_until_ms) })}`) : null,
      a.out_of_service ? h("span", { class: "badge shelved" }, ` ${t("out_of_service")}`) : null];
  }

  const AUDIENCES = ["water_ops", "environment", "safety", "default"];
  const STATE_RANK = { active_unack: 0, active_ack: 1, cleared_unack: 2, normal: 3 };
  const PRIO_RANK = { critical: 0, warning: 1, info: 2 };  // the one severity scale

  /** Active first (unacknowledged before acknowledged), then by priority, then the newest first. */
  function alertOrder(a, b) {
    return (STATE_RANK[a.state] ?? 9) - (STATE_RANK[b.state] ?? 9)
      || (PRIO_RANK[a.severity] ?? 9) - (PRIO_RANK[b.severity] ?? 9) || b.last_ms - a.last_ms;
  }

  const isActive = (a) => a.state === "active_unack" || a.state === "active_ack";
  const canAck = (a) => a.state === "active_unack" || a.state === "cleared_unack";

  /** An alert's title for people: the catalogue's title of its rule, else the title the API sent. */
  function alertTitle(a) {
    return cat("rules", a.rule) || cat("rules", `${a.rule}.title`) || a.title || a.rule;
  }
  const whereOf = (a) => [a.site, a.device, a.point ? pointLabel(null, a.point) : null].filter(Boolean).join(" / ");

  /** The value at the alert's last change, and beside it the point's value now (the API's current_value). */
  function valueCell(a) {
    const parts = [h("span", { class: "v-change", title: t("value_at_change") }, fmtValue(a.value, null, 2))];
    if (a.current_value !== undefined && a.current_value !== null) {
      parts.push(" ", h("span", { class: "v-now" }, t("now_value", { value: fmtValue(a.current_value, null, 2) })));
    }
    return parts;
  }

  /** A sound, a flashing bar and the page title for an alarm that is new to this page at critical, or whose severity
   *  was raised (info -> warning -> critical) since the page last saw it; a shelved alert stays quiet. */
  function noticeCritical(alerts) {
    const raised = [];
    for (const a of alerts) {
      const before = state.seen.get(a.id);
      const active = isActive(a) && !isShelved(a);
      if (state.seenReady && active) {
        if (before == null && a.severity === "critical" && a.state === "active_unack") raised.push([a, "critical_new"]);
        else if (before != null && (PRIO_RANK[a.severity] ?? 9) < (PRIO_RANK[before] ?? 9)) {
          raised.push([a, a.severity === "critical" ? "critical_up" : "warning_up"]);
        }
      }
      state.seen.set(a.id, a.severity);
    }
    state.seenReady = true; // the alarms there were at login are not new
    if (!raised.length) return;
    raised.sort((p, q) => (PRIO_RANK[p[0].severity] ?? 9) - (PRIO_RANK[q[0].severity] ?? 9));
    const [a, key] = raised[0];
    const text = t(key, { title: alertTitle(a), where: whereOf(a) });
    $("critical-text").textContent = text;
    $("critical").dataset.alert = a.id;
    $("critical").dataset.severity = a.severity;
    $("critical").hidden = false;
    state.alarmTitle = `⚠ ${text}`;
    document.title = `${state.alarmTitle} · ${t("title")}`;
    document.body.classList.add("flash");
    setTimeout(() => document.body.classList.remove("flash"), 3000);
    beep();
  }

  function dismissAlarm() {
    $("critical").hidden = true;
    state.alarmTitle = null;
    document.title = t("title");
  }

  function beep() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      state.audio = state.audio || new Ctx();
      const ctx = state.audio;
      for (let i = 0; i < 3; i += 1) { // three short 880 Hz tones
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.value = 0.15;
        osc.connect(gain).connect(ctx.destination);
        osc.start(ctx.currentTime + i * 0.3);
        osc.stop(ctx.currentTime + i * 0.3 + 0.18);
      }
    } catch (err) {
      // no audio output (a headless browser, or the user has not touched the page yet): the bar is the cue
    }
  }

  async function ackOne(a) {
    try {
      replaceAlert(await api("POST", ALERT_ACTIONS.ack(a.id), { note: "" }));
    } catch (err) {
      banner(err);
    }
    renderDevices();
  }

  async function ackSelected() {
    const ids = [...state.checked];
    $("ack-selected").disabled = true;
    const problems = [];
    for (const id of ids) {
      try {
        replaceAlert(await api("POST", ALERT_ACTIONS.ack(id), { note: "" }));
        state.checked.delete(id);
      } catch (err) {
        problems.push(`#${id}: ${err.message}`);
      }
    }
    renderAlerts();
    if (problems.length) banner(problems.join("; "));
  }

  function renderAlerts() {
    state.alerts.sort(alertOrder);
    const known = new Set(state.alerts.map((a) => a.id));
    for (const id of [...state.checked]) if (!known.has(id)) state.checked.delete(id);
    const rows = state.alerts.map((a) => h("tr", {
      class: `clickable alert-row state-${a.state}${isShelved(a) ? " is-shelved" : ""}`
        + `${a.id === state.alert ? " selected" : ""}`,
      onclick: () => openAlert(a.id), "data-alert": a.id,
    },
    h("td", { onclick: (ev) => ev.stopPropagation() }, canAck(a) && may(ALERT_ROLES) ? h("input", {
      type: "checkbox", class: "pick", "aria-label": `select #${a.id}`, checked: state.checked.has(a.id),
      onchange: (ev) => {
        if (ev.currentTarget.checked) state.checked.add(a.id);
        else state.checked.delete(a.id);
        $("ack-selected").disabled = state.checked.size === 0;
      },
    }) : null),
    h("td", null, h("span", { class: `badge prio-${a.severity}` }, severityLabel(a.severity))),
    h("td", null, stateBadge(a)),
    h("td", null, h("button", { type: "button", class: "rowlink",
      onclick: (ev) => { ev.stopPropagation(); openAlert(a.id); } }, alertTitle(a)),
    a.chattering ? ` (${t("chattering")})` : ""),
    h("td", null, whereOf(a)),
    h("td", { class: "alert-value" }, valueCell(a)),
    h("td", { title: `first ${fmtTime(a.first_ms)}` }, fmtTime(a.last_ms)),
    h("td", null, a.count),
    h("td", null, a.assignee || ""),
    h("td", { class: "row-act" }, canAck(a) && may(ALERT_ROLES) ? h("button", { type: "button", class: "primary ack-one",
      onclick: (ev) => { ev.stopPropagation(); ackOne(a); } }, t("ack")) : null)));
    // shelved alerts apart: below the list, not counted in the badge, never red at the top
    const open = [], shelved = [];
    state.alerts.forEach((a, i) => (isShelved(a) ? shelved : open).push(rows[i]));
    replaceRows($("alert-rows"), "alert", open);
    replaceRows($("shelved-rows"), "alert", shelved);
    $("shelved-box").hidden = shelved.length === 0;
    $("shelved-count").textContent = `(${fmtNumber(shelved.length, 0)})`;
    $("alerts-empty").hidden = open.length > 0;
    const unacked = state.alerts.filter((a) => a.state === "active_unack" && !isShelved(a)).length;
    $("alert-count").textContent = unacked ? fmtNumber(unacked, 0) : "";
    $("alert-count").setAttribute("aria-label", t("unacked_n", { n: unacked }));
    $("ack-selected").disabled = state.checked.size === 0;
    renderOverview();
    if (state.user && state.user.role === "safety_inspector") renderDevices();
    emit("alerts", state.alerts);
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
    $("alert-title").textContent = `#${a.id} ${alertTitle(a)}`;
    const facts = [
      [t("state"), stateBadge(a)], [t("th_prio"), severityLabel(a.severity)],
      [t("f_rule"), h("code", { translate: "no" }, a.rule)],
      [t("th_where"), [a.site, a.device, a.point].filter(Boolean).join(" / ")], [t("area"), a.area || "—"],
      [t("audience"), AUDIENCES.includes(a.audience) ? t(`aud_${a.audience}`) : a.audience], [t("f_value"), valueCell(a)], [t("f_reason"), a.reason || "—"],
      [t("f_first"), fmtTime(a.first_ms)], [t("f_last"), fmtTime(a.last_ms)], [t("th_count"), fmtNumber(a.count, 0)],
      [t("th_assignee"), a.assignee || "—"],
    ];
    if (isShelved(a)) facts.push([t("shelved"), `${t("shelved_until", { time: fmtTime(a.shelved_until_ms) })}: ${a.shelve_reason || ""}`]);
    if (a.escalation_level) facts.push([t("f_escalation"), fmtNumber(a.escalation_level, 0)]);
    $("alert-facts").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
    $("alert-history").replaceChildren(...a.history.slice().reverse().map((e) => h("tr", null,
      h("td", null, fmtTime(e.ts_ms)), h("td", null, e.who || "—"),
      h("td", null, STRINGS[`act_${e.action}`] ? t(`act_${e.action}`) : e.action),
      h("td", null, `${STRINGS[e.from_state] ? t(e.from_state) : e.from_state} → ${STRINGS[e.to_state] ? t(e.to_state) : e.to_state}`),
      h("td", null, readableReason(e.reason)))));
    $("alert-notes").replaceChildren(...(a.notes.length ? a.notes.map((n) => h("li", null, n.text, " ",
      h("small", null, `${n.who}, ${fmtTime(n.ts_ms)}`))) : [h("li", { class: "hint" }, t("no_notes"))]));
    $("alert-actions").hidden = !may(ALERT_ROLES);
    $("ack-form").hidden = !(a.state === "active_unack" || a.state === "cleared_unack");
    $("shelve-form").hidden = isShelved(a);
    $("unshelve-form").hidden = !isShelved(a);
  }

  /** A reason with epoch milliseconds in it ("until 1764650000000") reads as a time. */
  function readableReason(text) {
    return String(text || "").replace(/\b1\d{12}\b/g, (ms) => fmtTime(Number(ms)));
  }

  const ALERT_ACTIONS = { // one literal path each: the console's test checks them against the OpenAPI spec
    ack: (id) => `/api/alerts/${id}/ack`,
    shelve: (id) => `/api/alerts/${id}/shelve`,
    unshelve: (id) => `/api/alerts/${id}/unshelve`,
    notes: (id) => `/api/alerts/${id}/notes`,
    assign: (id) => `/api/alerts/${id}/assign`,
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
    const stalled = !on && state.stalledAt != null;
    $("live").textContent = on ? t("live") : stalled ? t("stalled_live") : t("offline");
    $("live").className = `live ${on ? "on" : "off"}`;
    $("live").dataset.state = on ? "live" : stalled ? "stalled" : "offline";
    const was = document.body.classList.contains("disconnected");
    document.body.classList.toggle("disconnected", !on && Boolean(state.user));
    if (was !== document.body.classList.contains("disconnected") && state.user) renderDevices();
    if (on) {
      state.lostAt = null;
      reachable();
    } else if (state.user && state.stalledAt != null) {
      state.lostAt = state.lostAt ?? state.stalledAt;
      banner(new ApiError(0, { reason: t("stalled", { time: fmtTime(state.stalledAt), s: Math.round(WATCHDOG_MS / 1000) }) }), true);
      $("banner").dataset.kind = "stalled";
    } else if (state.user && state.lostAt == null) {
      state.lostAt = Date.now();
      banner(new ApiError(0, { reason: t("unreachable", { time: fmtTime(state.lostAt) }) }));
    }
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
          sessionEnded(t("session_ended"));
          return;
        }
        if (!response.ok || !response.body) throw new Error(`the stream answered ${response.status}`);
        state.heardAt = Date.now();
        state.stalledAt = null;
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

  /** The stream watchdog: no byte for WATCHDOG_MS (events or the API's keepalive) and the page stops saying
   *  "live", shows since when, and drops the connection so that the loop reconnects (a frozen API or proxy keeps a
   *  connection open without sending anything). */
  function watchdog() {
    if (!state.user || !state.stream || state.heardAt == null) return;
    if (state.stalledAt == null && Date.now() - state.heardAt > WATCHDOG_MS) {
      state.stalledAt = state.heardAt;
      if (state.reader) state.reader.cancel().catch(() => {});
      setLive(false);
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
    state.reader = reader;
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      state.heardAt = Date.now(); // any byte (an event or the keepalive) says the stream is alive
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
    if (data && data.site && state.sites.length && !state.sites.some((x) => x.site === data.site)) {
      debounce("sites", 1000, loadSites); // a site that came after the page loaded its list: on the overview too
    }
    if (kind === "reading") applyReading(data);
    else if (kind === "status") applyStatus(data);
    else if (kind === "alert") applyAlert(data);
    else if (kind === "command") applyCommand(data);
    else if (kind === "state") applyState(data);
    emit(kind, data);
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
        c.start_ms = c.end_ms - state.rangeMs;
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

  /** The API decided a device's state anew (a message, its agent's death, or time): every view shows it. */
  function applyState(s) {
    debounce("sites", 2000, loadSites);
    if (s.site !== state.site) return;
    const d = state.devices.get(s.device);
    if (!d) return;
    for (const k of ["state", "state_reason", "since_ms", "last_sample_ms", "stale_after_ms", "offline_after_ms"]) {
      if (k in s) d[k] = s[k];
    }
    debounce("render-devices", 250, renderDevices);
    if (s.device === state.device) debounce("render-device", 500, renderDevice);
  }

  function applyAlert(a) {
    // The stream sends every alert of the user's areas; the list's filters (audience, active) are the API's,
    // so a change to an alert not in the list reloads the list rather than guessing.
    noticeCritical([a]);
    if (!replaceAlert(a)) debounce("alerts", 1000, loadAlerts);
    if (a.id === state.alert) debounce("alert-panel", 300, () => openAlert(a.id));
  }

  function applyCommand(c) {
    if (state.poll && state.poll.id === c.id) { // poll now rather than at the next tick
      clearTimeout(state.poll.timer);
      state.poll.tick();
    }
  }

  function rerender() {
    setLive($("live").classList.contains("on"));
    renderSites();
    renderOverview();
    renderDevices();
    renderAlerts();
    if (state.device) {
      renderDevice();
      if (state.chart && state.chart.points.length) drawChart();
    }
    if (state.alert) openAlert(state.alert);
    loadAdmin();
    renderExtra(current);
  }

  function resync() {
    loadSites();
    if (state.site) selectSite(state.site);
    loadAlerts();
  }

  // -- wiring ----------------------------------------------------------------------------------------------------
  function wire() {
    applyLang();
    $("lang").addEventListener("click", switchLang);
    $("critical-close").addEventListener("click", dismissAlarm);
    $("critical-text").addEventListener("click", () => {
      const id = Number($("critical").dataset.alert);
      if (id) { show("alerts-view"); openAlert(id); }
    });
    for (const id of ["f-priority", "f-site", "f-state"]) $(id).addEventListener("change", loadAlerts);
    $("ack-selected").addEventListener("click", ackSelected);
    $("select-all").addEventListener("change", (ev) => {
      for (const a of state.alerts) if (canAck(a)) (ev.currentTarget.checked ? state.checked.add(a.id) : state.checked.delete(a.id));
      renderAlerts();
    });
    $("assign-form").addEventListener("submit", alertForm("assign", (f) => ({ assignee: f.assignee.value.trim() || null })));
    $("chart-range").addEventListener("change", (ev) => {
      state.rangeMs = Number(ev.currentTarget.value);
      const d = state.devices.get(state.device);
      if (d && state.chart) loadChart(d.site, d.device, state.chart.point);
    });
    $("login-form").addEventListener("submit", onLogin);
    $("user-form").addEventListener("submit", onCreateUser);
    document.addEventListener("keydown", (ev) => { // Escape closes the innermost open thing: the dialog, then a panel
      if (ev.key !== "Escape" || !state.user) return;
      if (!$("gate-confirm").hidden) {
        state.pending = null;
        $("gate-confirm").hidden = true;
        document.querySelector("[data-gate=set_opening]").focus();
      } else if (!$("alert-panel").hidden && !$("alerts-view").hidden) {
        const id = state.alert;
        closeAlert();
        const link = document.querySelector(`#alert-rows tr[data-alert="${id}"] button.rowlink`);
        if (link) link.focus();
      } else if (!$("device-panel").hidden && !$("devices-view").hidden) {
        const id = state.device;
        closeDevice();
        const link = document.querySelector(`#device-rows tr[data-device="${id}"] button.rowlink`);
        if (link) link.focus();
      }
    });
    $("token-form").addEventListener("submit", onCreateToken);
    $("password-form").addEventListener("submit", onPassword);
    $("logout").addEventListener("click", logout);
    $("banner-close").addEventListener("click", () => { $("banner").hidden = true; });
    for (const b of document.querySelectorAll("#tabs button")) {
      if (!extraViews.has(b.dataset.tab)) b.addEventListener("click", () => show(b.dataset.tab));
    }
    $("tabs").addEventListener("keydown", (ev) => { // the ARIA tabs pattern: arrows, Home and End move between tabs
      const tabs = [...document.querySelectorAll("#tabs [role=tab]")].filter((b) => !b.hidden);
      let i = tabs.indexOf(document.activeElement);
      if (i < 0) return;
      if (ev.key === "ArrowRight") i = (i + 1) % tabs.length;
      else if (ev.key === "ArrowLeft") i = (i - 1 + tabs.length) % tabs.length;
      else if (ev.key === "Home") i = 0;
      else if (ev.key === "End") i = tabs.length - 1;
      else return;
      ev.preventDefault();
      tabs[i].focus();
      show(tabs[i].dataset.tab);
    });
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
    $("f-audience").addEventListener("change", loadAlerts);
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

  window.Lifeline = Object.freeze({
    addView,
    on: (name, fn) => {
      if (!listeners.has(name)) listeners.set(name, []);
      listeners.get(name).push(fn);
    },
    t: (key, vars) => (Array.isArray(key) ? tr(key, vars) : t(key, vars)),
    h, svg, api, fmtTime, fmtAge, fmtValue, fmtNumber, fmtPoint,
    pointLabel: (profile, point) => pointLabel(profile, point),
    enterpriseOf, // a detector's enterprise from its id ("" when it names none)
    domainOf: (profile) => PROFILE_DOMAIN[profile] || "",
    stateOf: (d) => deviceState(d),
    stateBadge: (d) => stateCell(d, "span"),
    lang: () => lang,
    state,
    show,
    current: () => current,
    openSite: (site) => { show("devices-view"); selectSite(site); },
    rerender: (id) => renderExtra(id || current),
  });

  // the console's own view in a tab of its own, registered as any other script's would be
  addView({ id: "notify-view", label: "tab_notify", roles: NOTIFY_ROLES, after: "alerts-view",
    render: (section) => renderNotifications(section) });

  // the registered views draw after the page's own (a script loaded after this one registers before boot runs)
  document.addEventListener("DOMContentLoaded", boot);
})();
