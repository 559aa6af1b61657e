/* Lifeline console views: the small core the view scripts (district.js, env.js, charts.js) share. Plain ES2020, no
 * build step. Loaded after console.js (every script is `defer`, so they run in order, before console.js boots): a
 * view with a tab of its own registers through console.js's window.Lifeline.addView; the district view lives in
 * the overview's section. Every text from the API goes in as text, never as HTML. */
"use strict";

(() => {
  const BASE = new URL("../", document.baseURI);
  const TOKEN_KEY = "lifeline.token";
  const TZ = "Asia/Shanghai";
  const views = []; // {id, el, host, roles, refresh, relabel}
  const langListeners = [];

  const lang = () => (String(document.documentElement.lang || "en").toLowerCase().startsWith("zh") ? "zh" : "en");
  /** `[en, zh]` in the page's language, with {name} filled from `vars`. */
  function tr(pair, vars) {
    let text = lang() === "zh" ? pair[1] : pair[0];
    for (const [k, v] of Object.entries(vars || {})) text = text.split(`{${k}}`).join(String(v));
    return text;
  }

  class ViewError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function request(method, path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(new URL(path.replace(/^\//, ""), BASE), { method, headers, cache: "no-store" });
    } catch (err) {
      throw new ViewError(0, tr(["the API is not reachable", "无法连接 API"]));
    }
    if (!response.ok) {
      let detail = "";
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : (body.detail && (body.detail.message || body.detail.reason)) || "";
      } catch (err) {
        detail = "";
      }
      throw new ViewError(response.status, `${response.status} ${detail}`.trim());
    }
    return response;
  }

  const api = async (path) => (await request("GET", path)).json();

  /** Download what `path` answers (the reports need the bearer token, so a plain link cannot fetch them). */
  async function download(path, fallbackName) {
    const response = await request("GET", path);
    const cd = response.headers.get("content-disposition") || "";
    const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
    saveBlob(await response.blob(), m ? decodeURIComponent(m[1]) : fallbackName);
  }

  function saveBlob(blob, name) {
    const href = URL.createObjectURL(blob);
    const a = h("a", { href, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
  }

  // the console's own element builders (console.js loads first): one copy of each
  const { h, svg } = window.Lifeline;

  const locale = () => (lang() === "zh" ? "zh-CN" : "en-GB");
  function num(value, digits) {
    if (typeof value !== "number" || !Number.isFinite(value)) return "—";
    return new Intl.NumberFormat(locale(), digits == null
      ? { maximumFractionDigits: 3, maximumSignificantDigits: 4 }
      : { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
  }
  function time(ms, withDate) {
    if (ms == null) return "—";
    const opts = withDate === false ? { hour: "2-digit", minute: "2-digit" }
      : { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" };
    return new Intl.DateTimeFormat(locale(), { timeZone: TZ, hour12: false, ...opts }).format(new Date(ms));
  }
  function day(ms) {
    if (ms == null) return "—";
    return new Intl.DateTimeFormat(locale(), { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date(ms));
  }
  /** YYYY-MM-DD of `ms` in China Standard Time. */
  function isoDay(ms) {
    return new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date(ms));
  }

  // HJ 633 Table 1 / Appendix A: each AQI level's colour; black text on the light ones, white on the dark ones
  // (contrast at least 4.5:1 both ways).
  const AQI_LEVELS = [
    null,
    { bg: "#00e400", fg: "#000000", en: "excellent", zh: "优" },
    { bg: "#ffff00", fg: "#000000", en: "good", zh: "良" },
    { bg: "#ff7e00", fg: "#000000", en: "lightly polluted", zh: "轻度污染" },
    { bg: "#ff0000", fg: "#000000", en: "moderately polluted", zh: "中度污染" },
    { bg: "#99004c", fg: "#ffffff", en: "heavily polluted", zh: "重度污染" },
    { bg: "#7e0023", fg: "#ffffff", en: "severely polluted", zh: "严重污染" },
  ];
  /** The HJ 633 level (1-6) of an AQI value (an AQI of 0 is level I). */
  function aqiLevel(aqi) {
    if (typeof aqi !== "number") return null;
    return aqi <= 50 ? 1 : aqi <= 100 ? 2 : aqi <= 150 ? 3 : aqi <= 200 ? 4 : aqi <= 300 ? 5 : 6;
  }
  /** A badge for an AQI in its HJ 633 category colour, the category named in the page's language. */
  function aqiBadge(aqi, level) {
    const lv = level || aqiLevel(aqi);
    const c = AQI_LEVELS[lv];
    if (aqi == null || !c) return h("span", { class: "v-badge v-na" }, tr(["no AQI", "无 AQI"]));
    return h("span", { class: "v-badge v-aqi", "data-level": lv, style: { background: c.bg, color: c.fg } },
      `${num(aqi, 0)} ${lang() === "zh" ? c.zh : c.en}`);
  }

  const ROMAN = ["", "I", "II", "III", "IV", "V", "劣V"];
  const classLabel = (c) => (c == null ? "—" : ROMAN[c] === "劣V" && lang() === "en" ? "worse than V" : ROMAN[c] || String(c));

  // Names of the points these views show, in both languages (the API's catalogue translations, where present,
  // come first: a profile's `labels`).
  const POINTS = {
    so2: ["SO₂", "二氧化硫"], nox: ["NOx", "氮氧化物"], dust: ["dust", "颗粒物"], o2: ["O₂", "氧含量"],
    co: ["CO", "一氧化碳"], no2: ["NO₂", "二氧化氮"], o3: ["O₃", "臭氧"], pm25: ["PM2.5", "PM2.5"],
    pm10: ["PM10", "PM10"], o3_8h: ["O₃ 8 h", "臭氧8小时"], cod: ["COD", "化学需氧量"], codmn: ["CODMn", "高锰酸盐指数"],
    nh3_n: ["NH₃-N", "氨氮"], tp: ["TP", "总磷"], tn: ["TN", "总氮"], do: ["DO", "溶解氧"], ph: ["pH", "pH"],
    turbidity: ["turbidity", "浊度"], temperature: ["temperature", "温度"], flow: ["flow", "流量"],
    flue_temp: ["flue temperature", "烟气温度"], moisture: ["moisture", "湿度"], pressure: ["pressure", "压力"],
    velocity: ["velocity", "流速"], load: ["load", "负荷"], laeq: ["LAeq", "等效声级"], ld: ["Ld", "昼间等效声级"],
    ln: ["Ln", "夜间等效声级"], level_up: ["level upstream", "闸上水位"], level_down: ["level downstream", "闸下水位"],
    gate_opening: ["opening", "闸门开度"], lel: ["%LEL", "%LEL"], conductivity: ["conductivity", "电导率"],
  };
  /** A point's name: the API's catalogue first (console.js's pointLabel), else these; `so2_zs` is
   *  "SO₂ (O₂-corrected)", `so2_load` "SO₂ load". */
  function pointName(p, profile) {
    const L = window.Lifeline;
    const fromCatalogue = (name) => {
      const label = L && L.pointLabel ? L.pointLabel(profile || "", name) : name;
      return label && label !== name ? label : null;
    };
    const whole = fromCatalogue(p);
    if (whole) return whole;
    const base = (name) => fromCatalogue(name) || (POINTS[name] ? tr(POINTS[name]) : name);
    if (p.endsWith("_zs")) return `${base(p.slice(0, -3))} ${tr(["(O₂-corrected)", "（折算）"])}`;
    if (p.endsWith("_load")) return `${base(p.slice(0, -5))} ${tr(["load", "排放量"])}`;
    return base(p);
  }

  /** A device's state: console.js's (the API's decision, one rule for every view), else from `online` and age. */
  function deviceState(d, now) {
    if (window.Lifeline && window.Lifeline.stateOf) return window.Lifeline.stateOf(d).state;
    if (d.state && ["online", "stale", "offline", "unknown"].includes(d.state)) return d.state;
    if (d.online === false) return "offline";
    if (d.online == null) return "unknown";
    if (d.last_seen_ms != null && (now || Date.now()) - d.last_seen_ms > 5 * 60000) return "stale";
    return "online";
  }
  const STATE_NAMES = {
    online: ["online", "在线"], stale: ["stale", "数据陈旧"], offline: ["offline", "离线"], unknown: ["unknown", "未知"],
  };

  const isShelved = (a, now) => a.shelved_until_ms != null && a.shelved_until_ms > (now || Date.now());
  const isActive = (a) => a.state === "active_unack" || a.state === "active_ack";
  const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
  const SEVERITY_NAMES = { critical: ["critical", "紧急"], warning: ["warning", "警告"], info: ["info", "提示"] };

  // -- views: through console.js's registry (window.Lifeline.addView), or inside one of its sections -------------
  const L = () => window.Lifeline;
  const signedIn = () => Boolean(L() && L().state && L().state.user);
  const user = () => (signedIn() ? L().state.user : null);
  const visible = (v) => signedIn() && !v.el.hidden && !(v.host && v.host.hidden);

  /** A view with its own tab: `{id, tab: [en, zh], roles, after, build(section), refresh(), relabel()}`. */
  function register(view) {
    let lastLang = null;
    const entry = { ...view };
    entry.el = L().addView({
      id: view.id, label: view.tab, roles: view.roles, after: view.after,
      onShow: () => view.refresh(),
      render: () => { // console.js redraws its views (a language switch, new sites): ours relabel, no fetch
        if (lastLang !== lang()) {
          lastLang = lang();
          if (view.relabel) view.relabel();
        }
      },
    });
    entry.el.classList.add("v-view");
    if (view.className) entry.el.classList.add(view.className);
    view.build(entry.el, entry);
    lastLang = lang();
    views.push(entry);
    return entry;
  }

  /** A view that lives inside one of console.js's sections: refreshed when that section shows. */
  function attach(view) {
    const host = document.getElementById(view.host);
    const el = h("div", { id: view.id, class: `v-view ${view.className || ""}` });
    const before = view.before && document.getElementById(view.before);
    if (before && before.parentNode === host) host.insertBefore(el, before);
    else host.append(el);
    const entry = { ...view, el, host };
    views.push(entry);
    view.build(el, entry);
    new MutationObserver(() => { if (visible(entry)) view.refresh(); })
      .observe(host, { attributes: true, attributeFilter: ["hidden"] });
    return entry;
  }

  function allowed(v) {
    const u = user();
    return Boolean(u) && (!v.roles || v.roles.includes(u.role));
  }

  function start() {
    const Lf = L();
    Lf.on("login", () => { for (const v of views) if (visible(v) && allowed(v)) v.refresh(); });
    Lf.on("lang", () => {
      for (const v of views) if (visible(v) && v.relabel) v.relabel();
      for (const f of langListeners) f();
    });
    let pending = null; // an alert changed: the views showing alarms fetch again (once per second at most)
    Lf.on("alert", () => {
      if (pending) return;
      pending = setTimeout(() => {
        pending = null;
        for (const v of views) if (v.onAlert && visible(v) && allowed(v)) v.refresh();
      }, 1000);
    });
    setInterval(() => {
      if (document.hidden) return;
      for (const v of views) if (visible(v) && allowed(v) && v.refresh) v.refresh();
    }, 15000);
  }

  /** Open a site in console.js's device view. */
  function openSite(site) {
    if (L() && L().openSite) L().openSite(site);
  }

  window.LifelineViews = {
    api, download, saveBlob, h, svg, tr, lang, num, time, day, isoDay, aqiBadge, aqiLevel, AQI_LEVELS, classLabel,
    pointName, deviceState, STATE_NAMES, isShelved, isActive, SEVERITY_RANK, SEVERITY_NAMES, register, attach,
    openSite, onLang: (f) => langListeners.push(f), user, TZ,
  };
  if (!window.Lifeline) throw new Error("views.js needs console.js loaded before it (window.Lifeline)");
  start();
})();
