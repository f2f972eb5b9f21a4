// The device chart: aggregates (min, avg, max per bucket) from the REST API, with the
// bucket chosen from the visible range so that a chart never holds more points than it has
// pixels for. Drag across it to zoom in, down to a minute; it follows live data while the
// range ends now.
(() => {
  "use strict";
  const el = document.getElementById("chart");
  if (!el || !window.uPlot) return;
  const device = el.closest("[data-device]").dataset.device;
  const units = JSON.parse(el.dataset.units || "{}");
  const keySelect = document.getElementById("chart-key");
  const info = document.getElementById("chart-info");
  const reset = document.getElementById("chart-reset");
  const rangeButtons = [...document.querySelectorAll("[data-range]")];
  // Bucket widths the API accepts, shortest first.
  const BUCKETS = [["1s", 1e3], ["5s", 5e3], ["10s", 1e4], ["30s", 3e4], ["1m", 6e4], ["5m", 3e5],
    ["10m", 6e5], ["15m", 9e5], ["30m", 18e5], ["1h", 36e5], ["3h", 108e5], ["6h", 216e5],
    ["12h", 432e5], ["1d", 864e5]];
  const HEIGHT = 280;
  const MIN_SPAN = 60e3;

  let range = 864e5; // the chosen range button
  let span = range; // what is shown: [end - span, end)
  let end = null; // null: up to now, following live data
  let plot = null;
  let loading = null;
  let lastLoad = 0;
  let again = null;

  const width = () => Math.max(280, el.clientWidth);
  const bucketFor = (ms) => BUCKETS.find(([, b]) => ms / b <= width() / 3) || BUCKETS[BUCKETS.length - 1];

  function draw(data, from, to, key) {
    plot?.destroy();
    plot = new uPlot({
      width: width(),
      height: HEIGHT,
      scales: { x: { time: true, min: from / 1000, max: to / 1000 } },
      series: [
        {},
        { label: "min", stroke: "#7fa6cf", width: 1 },
        { label: "avg", stroke: "#1f5fa8", width: 2 },
        { label: "max", stroke: "#7fa6cf", width: 1 },
      ],
      bands: [{ series: [3, 1], fill: "rgba(31, 95, 168, 0.12)" }],
      axes: [{}, { label: units[key] || key, size: 70 }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width > 4) {
            zoom(u.posToVal(u.select.left, "x") * 1000, u.posToVal(u.select.left + u.select.width, "x") * 1000);
          }
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        }],
      },
    }, data, el);
  }

  async function load() {
    if (loading) return loading;
    const to = end ?? Date.now();
    const from = to - span;
    const [bucket] = bucketFor(span);
    const key = keySelect.value;
    const query = new URLSearchParams({ key, bucket, fn: "min,avg,max", from: String(Math.floor(from)), to: String(Math.ceil(to)) });
    lastLoad = Date.now();
    loading = (async () => {
      try {
        const response = await fetch(`/api/v1/devices/${encodeURIComponent(device)}/aggregates?${query}`,
          { headers: { Accept: "application/json" } });
        const body = await response.json().catch(() => null);
        if (!response.ok) {
          info.textContent = body?.error?.message || `The server answered ${response.status}`;
          return;
        }
        const data = [[], [], [], []];
        for (const b of body.buckets) {
          data[0].push(b.ts / 1000);
          data[1].push(b.min);
          data[2].push(b.avg);
          data[3].push(b.max);
        }
        draw(data, from, to, key);
        info.textContent = body.buckets.length
          ? `${body.buckets.length} bucket${body.buckets.length === 1 ? "" : "s"} of ${bucket}: minimum, average and maximum. Drag across the chart to zoom in.`
          : `No values of ${key} in this range.`;
      } catch (err) {
        info.textContent = `The chart could not load: ${err.message}`;
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  function zoom(from, to) {
    span = Math.max(MIN_SPAN, to - from);
    const [, bucketMs] = bucketFor(span);
    end = Date.now() - to < bucketMs ? null : from + span;
    reset.hidden = false;
    load();
  }

  function choose(button) {
    rangeButtons.forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    range = span = Number(button.dataset.range);
    end = null;
    reset.hidden = true;
    load();
  }

  rangeButtons.forEach((b) => b.addEventListener("click", () => choose(b)));
  keySelect.addEventListener("change", load);
  reset.addEventListener("click", () => choose(rangeButtons.find((b) => Number(b.dataset.range) === range)));
  addEventListener("resize", () => plot?.setSize({ width: width(), height: HEIGHT }));

  // Live: reload at most once per bucket (and every 2 s at most) while the range ends now.
  document.body.addEventListener("m2m:readings_stored", (e) => {
    if (end !== null || e.detail.device_id !== device) return;
    if (!e.detail.readings.some(([, values]) => keySelect.value in values)) return;
    const wait = Math.max(2000, bucketFor(span)[1]) - (Date.now() - lastLoad);
    clearTimeout(again);
    if (wait <= 0) load();
    else again = setTimeout(load, wait);
  });

  load();
})();
