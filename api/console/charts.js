/* Lifeline console charts: several series on one time axis (uPlot), drag to zoom (double-click: back to all),
 * tick labels spaced so they never overlap, and a CSV export of exactly what is shown (the zoomed range). Times are
 * China Standard Time. Uses views.js (window.LifelineViews). */
"use strict";

(() => {
  const V = window.LifelineViews;
  const { h, tr } = V;
  const COLOURS = ["#1f5fa8", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#4b5563"];

  /** Time ticks in China Standard Time, 24 h: "HH:mm" with the date ("MM-DD") under the first tick of each day;
   *  "MM-DD" alone when the ticks are days apart. */
  function timeTicks(u, splits) {
    const parts = (ts) => {
      const f = new Intl.DateTimeFormat("en-CA", { timeZone: V.TZ, month: "2-digit", day: "2-digit", hour: "2-digit",
        minute: "2-digit", hourCycle: "h23" }).formatToParts(new Date(ts * 1000));
      const get = (t) => (f.find((p) => p.type === t) || {}).value || "";
      return { md: `${get("month")}-${get("day")}`, hm: `${get("hour")}:${get("minute")}` };
    };
    const step = splits.length > 1 ? splits[1] - splits[0] : 0;
    let lastDay = "";
    return splits.map((ts) => {
      const p = parts(ts);
      if (step >= 86400) return p.md;
      const label = p.md !== lastDay ? `${p.hm}\n${p.md}` : p.hm;
      lastDay = p.md;
      return label;
    });
  }

  /** `{title, series: [{label, unit}], times_ms: [...], values: [[...] per series], file}` -> an element holding
   *  the chart and its tools; `.destroy()` frees it. A null value is a gap (never joined across). */
  function chart(spec) {
    const box = h("div", { class: "v-chart" });
    const plotBox = h("div", { class: "v-chart-plot", role: "img", "aria-label": spec.title || tr(["chart", "图表"]) });
    const note = h("p", { class: "v-hint v-chart-note" });
    const resetBtn = h("button", { type: "button", class: "v-small", disabled: true }, tr(["Show all", "显示全部"]));
    const csvBtn = h("button", { type: "button", class: "v-small", "data-export": "csv" }, tr(["Export CSV", "导出 CSV"]));
    box.append(h("div", { class: "v-chart-tools" },
      spec.title ? h("h4", null, spec.title) : null,
      h("span", { class: "v-hint" }, tr(["drag across the chart to zoom", "在图上拖动可放大"])), resetBtn, csvBtn),
    plotBox, note);
    const xs = spec.times_ms.map((ms) => ms / 1000);
    const data = [xs, ...spec.values.map((ys) => ys.map((v) => (typeof v === "number" && Number.isFinite(v) ? v : null)))];
    let plot = null;

    /** The rows in the chart's current x range: what the user sees. */
    function shown() {
      let lo = -Infinity, hi = Infinity;
      if (plot && plot.scales.x.min != null) {
        lo = plot.scales.x.min;
        hi = plot.scales.x.max;
      }
      const rows = [];
      for (let i = 0; i < xs.length; i++) if (xs[i] >= lo && xs[i] <= hi) rows.push(i);
      return rows;
    }

    function csv() {
      const q = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
      const head = [tr(["time (China Standard Time)", "时间（北京时间）"]),
        ...spec.series.map((s) => (s.unit ? `${s.label} (${s.unit})` : s.label))];
      const lines = [head.map(q).join(",")];
      for (const i of shown()) {
        lines.push([V.isoDay(xs[i] * 1000) + " " + V.time(xs[i] * 1000, false),
          ...spec.values.map((ys) => (typeof ys[i] === "number" ? String(ys[i]) : ""))].map(q).join(","));
      }
      return "\ufeff" + lines.join("\r\n") + "\r\n"; // a BOM: spreadsheet programs then read the Chinese
    }
    csvBtn.addEventListener("click", () => {
      V.saveBlob(new Blob([csv()], { type: "text/csv;charset=utf-8" }), `${spec.file || "chart"}.csv`);
    });
    resetBtn.addEventListener("click", () => {
      if (plot) plot.setScale("x", { min: xs[0], max: xs[xs.length - 1] });
    });

    function draw() {
      if (plot) plot.destroy();
      plot = null;
      plotBox.hidden = !xs.length;
      csvBtn.disabled = !xs.length;
      if (!xs.length) {
        note.textContent = tr(["No data in this range.", "此时段没有数据。"]);
        return;
      }
      if (typeof window.uPlot !== "function") {
        note.textContent = tr(["The chart library did not load.", "图表库未能加载。"]);
        return;
      }
      const width = Math.max(260, Math.floor(plotBox.clientWidth || box.clientWidth || 600));
      const units = [...new Set(spec.series.map((s) => s.unit || ""))];
      const opts = {
        width, height: width < 500 ? 200 : 260,
        tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), V.TZ),
        cursor: { drag: { x: true, y: false, setScale: true } },
        legend: { show: true, live: true },
        scales: { x: { time: true } },
        series: [{ label: tr(["time", "时间"]) }, ...spec.series.map((s, i) => ({
          label: s.unit ? `${s.label} (${s.unit})` : s.label, stroke: COLOURS[i % COLOURS.length], width: 1.5,
          scale: units.length <= 2 ? `u${units.indexOf(s.unit || "")}` : "y", spanGaps: false,
          points: { show: xs.length < 60 },
        }))],
        // at least 70 px between time labels and 36 px between value labels: never overlapping
        axes: [
          { space: width < 500 ? 90 : 70, size: 46, values: timeTicks },
          { scale: units.length <= 2 ? "u0" : "y", space: 36, size: 56, label: units.length <= 2 ? units[0] || "" : "" },
          ...(units.length === 2 ? [{ scale: "u1", side: 1, space: 36, size: 56, label: units[1] || "",
            grid: { show: false } }] : []),
        ],
        hooks: {
          setScale: [(u, key) => {
            if (key !== "x") return;
            resetBtn.disabled = u.scales.x.min <= xs[0] && u.scales.x.max >= xs[xs.length - 1];
            note.textContent = tr(["{n} points shown", "显示 {n} 个点"], { n: shown().length });
          }],
        },
      };
      plot = new window.uPlot(opts, data, plotBox);
      note.textContent = tr(["{n} points shown", "显示 {n} 个点"], { n: xs.length });
    }
    // drawn once the box is in the page and has its width (and again when that width changes)
    let lastWidth = 0;
    const ro = new ResizeObserver(() => {
      const w = Math.floor(plotBox.clientWidth);
      if (w && Math.abs(w - lastWidth) > 8) {
        lastWidth = w;
        draw();
      }
    });
    ro.observe(plotBox);
    if (!xs.length) draw();
    box.destroy = () => {
      ro.disconnect();
      if (plot) plot.destroy();
    };
    box.csv = csv;
    return box;
  }

  V.chart = chart;

  // -- the device panel: several of the device's points on one chart (below console.js's one-point chart) ---------
  const GATE_DEFAULT = ["level_up", "level_down", "gate_opening"];
  let panelKey = "";
  let picked = new Set();
  let current = null;
  let seq = 0;

  function numericPoints(latest) {
    const v = (latest && latest.values) || {};
    return Object.keys(v).filter((p) => typeof v[p] === "number" && !/^(cmd_|target_)/.test(p)).sort();
  }

  async function drawPanel() {
    const L = window.Lifeline;
    const host = document.getElementById("multi-chart");
    const panel = document.getElementById("device-panel");
    if (!L || !host || !panel || panel.hidden || !L.state.device) return;
    const d = L.state.devices.get(L.state.device);
    if (!d) return;
    const points = numericPoints(L.state.latest.get(d.device));
    const key = `${d.site}/${d.device}`;
    if (key !== panelKey) {
      panelKey = key;
      const gate = points.filter((p) => GATE_DEFAULT.includes(p));
      picked = new Set(gate.length ? gate : points.slice(0, 3));
    }
    const rangeSel = document.getElementById("chart-range");
    const rangeMs = Number((rangeSel && rangeSel.value) || 86400000);
    const boxes = h("fieldset", { class: "v-points" }, h("legend", null, tr(["Points on the chart", "图中测点"])),
      points.map((p) => h("label", null, h("input", {
        type: "checkbox", value: p, checked: picked.has(p),
        onchange: (ev) => {
          if (ev.currentTarget.checked) picked.add(p);
          else picked.delete(p);
          drawPanel();
        },
      }), " ", V.pointName(p, d.profile))));
    const mine = ++seq;
    const wanted = points.filter((p) => picked.has(p));
    let body = null;
    if (wanted.length) {
      const end = Date.now();
      const q = new URLSearchParams({ start_ms: String(end - rangeMs), end_ms: String(end), max_points: "300" });
      for (const p of wanted) q.append("points", p); // the API takes them repeated
      try {
        const out = await V.api(`/api/sites/${encodeURIComponent(d.site)}/devices/${encodeURIComponent(d.device)}/history?${q}`);
        const latest = L.state.latest.get(d.device);
        const units = (latest && latest.units) || {};
        body = chart({
          title: tr(["{d}: several points", "{d}：多测点"], { d: d.device }),
          series: wanted.map((p) => ({ label: V.pointName(p, d.profile), unit: units[p] || "" })),
          times_ms: out.points.map((r) => r.time_ms),
          values: wanted.map((p) => out.points.map((r) => r.values[p])),
          file: `${d.device}-${V.isoDay(end)}`,
        });
      } catch (err) {
        body = h("p", { class: "v-hint" }, tr(["The chart did not load: {e}", "图表未能加载：{e}"], { e: err.message }));
      }
    }
    if (mine !== seq) return; // a newer draw started meanwhile
    if (current && current.destroy) current.destroy();
    current = body;
    host.replaceChildren(...[boxes, body].filter(Boolean));
  }

  function hookPanel() {
    const note = document.getElementById("chart-note");
    const panel = document.getElementById("device-panel");
    const title = document.getElementById("device-title");
    if (!note || !panel || !title) return;
    const host = h("div", { id: "multi-chart", class: "v-view v-multi" });
    note.after(host);
    let timer = null;
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(drawPanel, 300);
    };
    new MutationObserver(later).observe(title, { childList: true, characterData: true, subtree: true });
    new MutationObserver(later).observe(panel, { attributes: true, attributeFilter: ["hidden"] });
    const range = document.getElementById("chart-range");
    if (range) range.addEventListener("change", later);
    V.onLang(later);
  }
  hookPanel();
})();
