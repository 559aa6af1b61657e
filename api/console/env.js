/* The environment officer's views (a tab of its own, for environment officers and admins): each air station's hourly
 * AQI beside its daily AQI of the last week in the HJ 633 colours, each water station's class beside its target
 * class, one station's hourly and daily valid means side by side (O2-corrected values beside measured ones, the
 * limits that apply, why a period has no valid mean written out), its hourly means charted, and the bureau's
 * reports as CSV, XLSX or PDF. From the API's env routes (docs/api.md) and GET /api/reports/{kind} (docs/reports.md).
 * Uses views.js and charts.js (window.LifelineViews). */
"use strict";

(() => {
  const V = window.LifelineViews;
  const { h, tr, num } = V;
  const ENV_PROFILES = ["water_quality_station", "air_quality_station", "flue_gas_cems", "noise_meter",
    "wastewater_outlet_hj212", "flue_gas_cems_hj212"];
  const DAY_MS = 86400000;
  const enc = encodeURIComponent;

  let root = null;
  const el = {};
  let stations = []; // [{site, device, profile}]
  let chosen = ""; // "site/device"
  let chartBox = null;
  let busy = false;

  function build(section) {
    root = section;
    el.status = h("p", { class: "v-hint", role: "status" });
    el.air = h("div", { class: "v-scroll" });
    el.water = h("div", { class: "v-scroll" });
    el.pick = h("select", { id: "env-station", onchange: () => { chosen = el.pick.value; loadStation(); } });
    el.station = h("div", { class: "v-scroll" });
    el.chart = h("div", { class: "v-env-chart" });
    el.reports = h("div", { class: "v-reports" });
    el.h = {
      title: h("h2"), air: h("h3"), water: h("h3"), station: h("h3"), pickLabel: h("span"), reports: h("h3"),
    };
    section.append(
      h("div", { class: "v-toolbar" }, el.h.title, el.status),
      h("section", { class: "v-block", "data-block": "air" }, el.h.air, el.air),
      h("section", { class: "v-block", "data-block": "water" }, el.h.water, el.water),
      h("section", { class: "v-block", "data-block": "station" }, el.h.station,
        h("label", { class: "v-field" }, el.h.pickLabel, " ", el.pick), el.station, el.chart),
      h("section", { class: "v-block", "data-block": "reports" }, el.h.reports, el.reports));
    labels();
  }

  function labels() {
    el.h.title.textContent = tr(["The environment officer's day", "环境管理"]);
    el.h.air.textContent = tr(["Air quality: hourly and daily AQI (HJ 633)", "环境空气质量：小时与日 AQI（HJ 633）"]);
    el.h.water.textContent = tr(["Surface water: daily class and target (GB 3838-2002)", "地表水：日水质类别与目标（GB 3838-2002）"]);
    el.h.station.textContent = tr(["A station's hourly and daily means", "站点小时均值与日均值"]);
    el.h.pickLabel.textContent = tr(["Station", "站点"]);
    renderReports();
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    el.status.textContent = tr(["Loading…", "正在加载…"]);
    try {
      await Promise.all([loadStations(), loadAir(), loadWater()]);
      el.status.textContent = tr(["as of {t}", "数据时间 {t}"], { t: V.time(Date.now(), false) });
      await loadStation();
    } catch (err) {
      el.status.textContent = tr(["Not loaded: {e}", "未能加载：{e}"], { e: err.message });
    } finally {
      busy = false;
    }
  }

  async function loadStations() {
    const sites = await V.api("/api/sites");
    const lists = await Promise.all(sites.map((s) => V.api(`/api/sites/${enc(s.site)}/devices`).catch(() => [])));
    stations = lists.flat().filter((d) => ENV_PROFILES.includes(d.profile) || /cems|hj212|outlet/.test(d.profile))
      .map((d) => ({ site: d.site, device: d.device, profile: d.profile }));
    const keys = stations.map((s) => `${s.site}/${s.device}`);
    if (!keys.includes(chosen)) chosen = keys[0] || "";
    el.pick.replaceChildren(...stations.map((s) => h("option", { value: `${s.site}/${s.device}` },
      `${s.device} (${s.site})`)));
    el.pick.value = chosen;
  }

  // -- air: hourly AQI beside the last week's daily AQI -----------------------------------------------------------
  async function loadAir() {
    const hourly = await V.api("/api/env/aqi/latest");
    const start = Date.now() - 8 * DAY_MS;
    const daily = await Promise.all(hourly.map((a) =>
      V.api(`/api/env/sites/${enc(a.site)}/devices/${enc(a.device)}/aqi?period=day&start_ms=${start}`)
        .then((r) => r.points).catch(() => [])));
    if (!hourly.length) {
      el.air.replaceChildren(h("p", { class: "v-hint" }, tr(["No air station has an AQI yet.", "尚无空气站的 AQI。"])));
      return;
    }
    const cols = [["station", "站点"], ["hourly AQI", "小时 AQI"], ["hour", "时段"], ["primary pollutant", "首要污染物"],
      ["daily AQI (last days)", "日 AQI（近几日）"], ["missing", "缺测"]];
    el.air.replaceChildren(h("table", { class: "v-table v-stack", "data-table": "aqi" },
      h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, tr(c))))),
      h("tbody", null, hourly.map((a, i) => h("tr", { "data-station": a.device },
        h("td", { "data-label": tr(cols[0]) }, h("b", null, a.device), h("br"), h("small", null, a.site)),
        h("td", { "data-label": tr(cols[1]), "data-aqi": "hour" }, V.aqiBadge(a.aqi, a.level)),
        h("td", { "data-label": tr(cols[2]) }, V.time(a.time_ms)),
        h("td", { "data-label": tr(cols[3]) }, a.primary.map(V.pointName).join(", ") || "—"),
        h("td", { "data-label": tr(cols[4]), "data-aqi": "day", class: "v-days" },
          daily[i].length ? daily[i].slice(-7).reverse().map((d) => h("span", { class: "v-day" },
            h("small", null, V.day(d.time_ms)), " ", V.aqiBadge(d.aqi, d.level),
            d.aqi == null && d.missing.length ? h("small", null, ` ${tr(["NA: missing", "NA：缺测"])} ${d.missing.map(V.pointName).join(", ")}`) : null))
            : h("span", { class: "v-hint" }, tr(["no daily AQI stored yet (after the first full day)", "尚无日 AQI（满一整天后计算）"]))),
        h("td", { "data-label": tr(cols[5]) }, a.missing.map(V.pointName).join(", ") || "—"))))));
  }

  // -- water: class beside target ----------------------------------------------------------------------------------
  async function loadWater() {
    const rows = await V.api("/api/env/water/classes");
    if (!rows.length) {
      el.water.replaceChildren(h("p", { class: "v-hint" }, tr(["No water class stored yet (one per day).", "尚无水质类别（每日一次）。"])));
      return;
    }
    const cols = [["station", "站点"], ["day", "日期"], ["class", "水质类别"], ["target", "目标类别"], ["verdict", "评价"],
      ["deciding parameters (daily mean)", "定类指标（日均值）"]];
    el.water.replaceChildren(h("table", { class: "v-table v-stack", "data-table": "water" },
      h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, tr(c))))),
      h("tbody", null, rows.map((w) => h("tr", { "data-station": w.device },
        h("td", { "data-label": tr(cols[0]) }, h("b", null, w.device), h("br"), h("small", null, w.site)),
        h("td", { "data-label": tr(cols[1]) }, V.day(w.time_ms)),
        h("td", { "data-label": tr(cols[2]) }, h("span", { class: "v-badge v-class" }, V.classLabel(w.water_class))),
        h("td", { "data-label": tr(cols[3]) }, w.target_class != null ? V.classLabel(w.target_class) : tr(["none set", "未设定"])),
        h("td", { "data-label": tr(cols[4]) }, w.target_missed == null ? "—"
          : h("span", { class: `v-badge ${w.target_missed ? "v-missed" : "v-met"}` },
            w.target_missed ? tr(["off target", "未达标"]) : tr(["on target", "达标"]))),
        h("td", { "data-label": tr(cols[5]) }, w.deciding.map((p) => `${V.pointName(p)} ${num(w.deciding_values[p])}`).join(", ") || "—"))))));
  }

  // -- one station: measured, O2-corrected, hourly and daily means, limits, validity ------------------------------
  async function loadStation() {
    const s = stations.find((x) => `${x.site}/${x.device}` === chosen);
    if (!s) {
      el.station.replaceChildren(h("p", { class: "v-hint" }, tr(["No station in your areas.", "您的区域内没有站点。"])));
      return;
    }
    const base = `/api/env/sites/${enc(s.site)}/devices/${enc(s.device)}/means`;
    const [latest, hour, dayMeans] = await Promise.all([
      V.api(`/api/sites/${enc(s.site)}/devices/${enc(s.device)}/latest`).catch(() => null),
      V.api(`${base}?period=hour`).catch((e) => ({ error: e.message, rows: [], limits: [] })),
      V.api(`${base}?period=day&start_ms=${Date.now() - 8 * DAY_MS}`).catch((e) => ({ error: e.message, rows: [], limits: [] })),
    ]);
    if (chosen !== `${s.site}/${s.device}`) return;
    const lastH = hour.rows.length ? hour.rows[hour.rows.length - 1] : null;
    const lastD = dayMeans.rows.length ? dayMeans.rows[dayMeans.rows.length - 1] : null;
    const values = (latest && latest.values) || {};
    const names = new Set([
      ...Object.keys(values).filter((p) => typeof values[p] === "number"),
      ...(lastH ? [...Object.keys(lastH.values), ...Object.keys(lastH.invalid)] : []),
      ...(lastD ? [...Object.keys(lastD.values), ...Object.keys(lastD.invalid)] : []),
    ]);
    // a pollutant and its O2-corrected value on one row; its load and the bookkeeping points left out
    const points = [...names].filter((p) => !p.endsWith("_zs") && !p.endsWith("_load") && !/^(quality|status|flag)/.test(p)).sort();
    const limitText = (p, lims) => lims.filter((l) => l.point === p || l.point === `${p}_zs`)
      .map((l) => `${l.source === "permit" ? `${tr(["permit", "许可"])} ` : ""}${l.direction === "high" ? "≤" : "≥"} `
        + `${num(l.value)}${l.point.endsWith("_zs") ? ` ${tr(["(corrected)", "（折算）"])}` : ""} · ${l.title || l.source}`)
      .join("; ");
    const meanCell = (row, p) => {
      if (!row) return "—";
      const parts = [];
      for (const q of [p, `${p}_zs`]) {
        if (typeof row.values[q] === "number") parts.push(h("div", null, num(row.values[q]), q.endsWith("_zs") ? h("small", null, ` ${tr(["corrected", "折算"])}`) : null));
        else if (row.invalid[q]) parts.push(h("div", { class: "v-invalid" }, `${tr(["no valid mean: ", "无有效均值："])}${row.invalid[q]}`));
      }
      return parts.length ? parts : "—";
    };
    const unit = (p) => (latest && latest.units && latest.units[p]) || "";
    const cols = [["point", "监测项"], ["measured (now)", "实测值（当前）"], ["O₂-corrected (now)", "折算值（当前）"],
      ["hourly mean", "小时均值"], ["daily mean", "日均值"], ["limit / permit", "限值 / 许可"], ["quality now", "当前数据质量"]];
    const quality = (p) => {
      if (!latest) return "—";
      const q = latest.quality[p];
      if (!q) return tr(["valid", "有效"]);
      return `${q === "bad" ? tr(["invalid", "无效"]) : tr(["uncertain", "存疑"])}${latest.reasons[p] ? `: ${latest.reasons[p]}` : ""}`;
    };
    el.station.replaceChildren(...[
      h("p", { class: "v-hint" }, tr(["Hour {h} · day {d} · {n} hourly means in the last day", "小时 {h} · 日 {d} · 近一日 {n} 个小时均值"],
        { h: lastH ? V.time(lastH.time_ms) : "—", d: lastD ? V.day(lastD.time_ms) : "—", n: hour.rows.length })),
      hour.error ? h("p", { class: "v-hint" }, tr(["Hourly means: {e}", "小时均值：{e}"], { e: hour.error })) : null,
      h("table", { class: "v-table v-stack", "data-table": "means" },
        h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, tr(c))))),
        h("tbody", null, points.map((p) => h("tr", { "data-point": p },
          h("td", { "data-label": tr(cols[0]) }, h("b", null, V.pointName(p, s.profile)), unit(p) ? h("small", null, ` ${unit(p)}`) : null),
          h("td", { "data-label": tr(cols[1]), class: "v-num" }, num(values[p])),
          h("td", { "data-label": tr(cols[2]), class: "v-num", "data-zs": `${p}_zs` },
            typeof values[`${p}_zs`] === "number" ? num(values[`${p}_zs`]) : "—"),
          h("td", { "data-label": tr(cols[3]), "data-period": "hour" }, meanCell(lastH, p)),
          h("td", { "data-label": tr(cols[4]), "data-period": "day" }, meanCell(lastD, p)),
          h("td", { "data-label": tr(cols[5]) }, limitText(p, [...hour.limits, ...dayMeans.limits]) || "—"),
          h("td", { "data-label": tr(cols[6]) }, quality(p))))))].filter(Boolean));
    // the hourly means charted: several series, zoom, CSV export
    if (chartBox) chartBox.destroy();
    const series = [...new Set(hour.rows.flatMap((r) => Object.keys(r.values)))].filter((p) => !p.endsWith("_load")).sort();
    chartBox = V.chart({
      title: tr(["Hourly means of {d}", "{d} 的小时均值"], { d: s.device }),
      series: series.map((p) => ({ label: V.pointName(p, s.profile), unit: unit(p.replace(/_zs$/, "")) })),
      times_ms: hour.rows.map((r) => r.time_ms),
      values: series.map((p) => hour.rows.map((r) => r.values[p])),
      file: `${s.device}-hourly-means`,
    });
    el.chart.replaceChildren(chartBox);
  }

  // -- reports -----------------------------------------------------------------------------------------------------
  function renderReports() {
    const kind = h("select", { name: "kind" },
      h("option", { value: "source" }, tr(["pollution sources", "污染源排放"])),
      h("option", { value: "air" }, tr(["ambient air", "环境空气质量"])),
      h("option", { value: "water" }, tr(["surface water", "地表水水质"])));
    const period = h("select", { name: "period" },
      h("option", { value: "day" }, tr(["day", "日报"])), h("option", { value: "month" }, tr(["month", "月报"])));
    const date = h("input", { name: "date", type: "date", value: V.isoDay(Date.now() - DAY_MS), required: true });
    const note = h("p", { class: "v-hint", role: "status" });
    const get = async (format) => {
      const d = period.value === "month" ? date.value.slice(0, 7) : date.value;
      const path = `/api/reports/${kind.value}?period=${period.value}&date=${enc(d)}&format=${format}`;
      note.textContent = tr(["Preparing the report…", "正在生成报表…"]);
      try {
        await V.download(path, `${kind.value}-${d}.${format}`);
        note.textContent = tr(["Downloaded.", "已下载。"]);
      } catch (err) {
        note.textContent = tr(["The report failed: {e}", "报表生成失败：{e}"], { e: err.message });
      }
    };
    el.h.reports.textContent = tr(["Reports and exports", "报表与导出"]);
    el.reports.replaceChildren(
      h("div", { class: "v-report-form" },
        h("label", null, tr(["Report", "报表"]), " ", kind), h("label", null, tr(["Period", "周期"]), " ", period),
        h("label", null, tr(["Date", "日期"]), " ", date),
        ...["csv", "xlsx", "pdf"].map((f) => h("button", { type: "button", "data-report": f, onclick: () => get(f) },
          f.toUpperCase()))),
      note);
  }

  V.register({
    id: "env-view", tab: ["Environment", "环境"], roles: ["environment_officer", "admin"], className: "v-env",
    build, refresh, relabel: () => { labels(); refresh(); },
  });
})();
