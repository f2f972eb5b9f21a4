// The meter page: a bar per interval from the page's JSON (#meter-data), coloured by
// quality: actual solid blue, estimated hatched orange, edited purple; a missing interval
// has no bar and a shaded band, so a gap never reads as zero. The legend is HTML beside
// the chart (#chart-legend); hovering a bar names its interval in #chart-info.
// Each "Edit" button of the interval list fills the edit form with its interval.
(() => {
  "use strict";
  const COLOURS = {
    actual: "#1f5fa8",
    estimated: "#d2571b",
    edited: "#7b3fa8",
    missing: "rgba(176, 32, 32, 0.13)",
  };
  const HEIGHT = 300;

  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-edit-start]");
    const form = document.getElementById("edit-form");
    if (!button || !form) return;
    form.querySelector("#edit-start").value = button.dataset.editStart;
    form.querySelector("#edit-register").value = button.dataset.editRegister;
    const quantity = form.querySelector("#edit-quantity");
    quantity.value = button.dataset.editQuantity;
    form.scrollIntoView({ block: "center" });
    quantity.focus();
    quantity.select();
  });

  const el = document.getElementById("meter-chart");
  const source = document.getElementById("meter-data");
  if (!el || !source || !window.uPlot) return;
  const data = JSON.parse(source.textContent);
  const info = document.getElementById("chart-info");
  const summary = info.textContent;
  const n = data.x.length;
  const timeFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium", timeStyle: "short", timeZone: data.tz,
  });

  // Diagonal stripes, repeated: estimated bars read as estimated in grey print too.
  function hatch(colour) {
    const tile = document.createElement("canvas");
    tile.width = tile.height = 8;
    const c = tile.getContext("2d");
    c.fillStyle = "rgba(210, 87, 27, 0.25)";
    c.fillRect(0, 0, 8, 8);
    c.strokeStyle = colour;
    c.lineWidth = 2;
    c.beginPath();
    c.moveTo(0, 8); c.lineTo(8, 0);
    c.moveTo(-2, 2); c.lineTo(2, -2);
    c.moveTo(6, 10); c.lineTo(10, 6);
    c.stroke();
    return tile;
  }
  const stripes = hatch(COLOURS.estimated);

  const bars = uPlot.paths.bars({ size: [1, Infinity], align: 1, gap: 1 });
  const QUALITIES = ["actual", "estimated", "edited"];
  const series = [
    {},
    { label: "actual", fill: COLOURS.actual, stroke: COLOURS.actual, width: 0, paths: bars, points: { show: false } },
    {
      label: "estimated",
      fill: (u) => u.ctx.createPattern(stripes, "repeat"),
      stroke: COLOURS.estimated,
      width: 1,
      paths: bars,
      points: { show: false },
    },
    { label: "edited", fill: COLOURS.edited, stroke: COLOURS.edited, width: 0, paths: bars, points: { show: false } },
  ];
  const end = n ? data.x[n - 1] + data.widths[n - 1] : 0;

  function shadeMissing(u) {
    const { ctx } = u;
    ctx.save();
    ctx.fillStyle = COLOURS.missing;
    for (let i = 0; i < n; i++) {
      if (data.missing[i] !== 1) continue;
      const left = u.valToPos(data.x[i], "x", true);
      const right = u.valToPos(data.x[i] + data.widths[i], "x", true);
      ctx.fillRect(left, u.bbox.top, Math.max(1, right - left), u.bbox.height);
    }
    ctx.restore();
  }

  function describe(u) {
    const i = u.cursor.idx;
    if (i == null) {
      info.textContent = summary;
      return;
    }
    const at = timeFormat.format(new Date(data.x[i] * 1000));
    const quality = data.missing[i] === 1 ? "missing" : QUALITIES.find((q) => data[q][i] !== null);
    const value = quality === "missing" ? "no data" : `${data[quality][i]} ${data.unit}`;
    info.textContent = `${at}: ${value} (${quality})`;
  }

  const width = () => Math.max(280, el.clientWidth);
  const plot = new uPlot({
    width: width(),
    height: HEIGHT,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), data.tz),
    scales: {
      x: { time: true, min: data.x[0], max: end },
      y: { range: (u, min, max) => [Math.min(0, min ?? 0), Math.max(0, max ?? 1) * 1.08 || 1] },
    },
    series,
    axes: [{}, { label: data.unit, size: 60 }],
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    hooks: { drawClear: [shadeMissing], setCursor: [describe] },
  }, [data.x, data.actual, data.estimated, data.edited], el);
  el.dataset.drawn = String(n);
  addEventListener("resize", () => plot.setSize({ width: width(), height: HEIGHT }));
})();
