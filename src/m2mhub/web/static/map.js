// The map: positions (clustered on a pixel grid), a device's track from the history API, and
// geofences, which admins reshape (drag the handles or type the numbers) or create (a circle
// at the map's centre) and save through the rules API. Without a tile URL the map is a plain
// background with a scale.
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("map-data").textContent);
  const box = document.getElementById("map");
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  const CELL = 56; // px: points closer than this on screen are drawn as one cluster

  const map = L.map(box, { worldCopyJump: true, zoomSnap: 0.5 });
  if (data.tiles.url) {
    L.tileLayer(data.tiles.url, { attribution: data.tiles.attribution, maxZoom: 19 }).addTo(map);
  }
  map.attributionControl.setPrefix(false);
  L.control.scale().addTo(map);

  // -- points and clusters -------------------------------------------------------------
  const pointLayer = L.layerGroup().addTo(map);
  function popup(p) {
    const div = document.createElement("div");
    const link = document.createElement("a");
    link.href = p.kind === "asset" ? `/console/assets?q=${encodeURIComponent(p.id)}`
      : `/console/devices/${encodeURIComponent(p.id)}`;
    link.textContent = p.name;
    const status = document.createElement("div");
    status.className = "small";
    status.textContent = p.kind === "asset" ? `${p.status}, at ${p.device}` : p.status.replace("_", " ");
    const when = document.createElement("div");
    when.className = "muted small";
    when.textContent = new Date(p.ts).toLocaleString();
    div.append(link, status, when);
    return div;
  }
  const markers = new Map();
  function drawPoints() {
    pointLayer.clearLayers();
    markers.clear();
    const cells = new Map();
    data.points.forEach((p, i) => {
      if (p.kind === "asset") {
        // An asset sits where its device is: a ring around it, never merged into a cluster.
        const ring = L.circleMarker([p.lat, p.lon], { radius: 12, className: "pt-asset" })
          .bindPopup(() => popup(p)).bindTooltip(p.name).addTo(pointLayer);
        markers.set(i, ring);
        return;
      }
      const at = map.project([p.lat, p.lon]);
      const key = `${Math.floor(at.x / CELL)}:${Math.floor(at.y / CELL)}`;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(i);
    });
    for (const members of cells.values()) {
      if (members.length === 1) {
        const p = data.points[members[0]];
        const marker = L.circleMarker([p.lat, p.lon], { radius: 7, className: `pt pt-device pt-${p.status}` }).bindPopup(() => popup(p)).bindTooltip(p.name);
        marker.addTo(pointLayer);
        markers.set(members[0], marker);
        continue;
      }
      const bounds = L.latLngBounds(members.map((i) => [data.points[i].lat, data.points[i].lon]));
      const icon = L.divIcon({ className: "cluster", html: String(members.length), iconSize: [34, 34] });
      L.marker(bounds.getCenter(), { icon, title: `${members.length} places`, alt: `${members.length} places` })
        .on("click", () => map.fitBounds(bounds.pad(0.3), { maxZoom: map.getZoom() + 3 }))
        .addTo(pointLayer);
    }
  }
  map.on("zoomend", drawPoints);

  // -- geofences -------------------------------------------------------------------------
  const fenceLayer = L.layerGroup().addTo(map);
  const shapes = [];
  function shapeOf(f) {
    const options = { className: `fence fence-${f.trigger}${f.enabled ? "" : " fence-off"}` };
    return f.circle
      ? L.circle([f.circle.lat, f.circle.lon], { radius: f.circle.radius_m, ...options })
      : L.polygon(f.polygon, options);
  }
  data.fences.forEach((f, i) => {
    shapes[i] = shapeOf(f).bindTooltip(f.rule).addTo(fenceLayer);
  });

  // -- the first view: everything there is -----------------------------------------------
  const all = L.latLngBounds([]);
  data.points.forEach((p) => all.extend([p.lat, p.lon]));
  data.fences.forEach((f) => {
    if (f.circle) all.extend(L.latLng(f.circle.lat, f.circle.lon).toBounds(f.circle.radius_m * 2));
    else f.polygon.forEach((p) => all.extend(p));
  });
  if (all.isValid()) map.fitBounds(all.pad(0.15), { maxZoom: 15 });
  else map.setView([20, 0], 2);
  drawPoints();

  document.addEventListener("click", (e) => {
    const point = e.target.closest("[data-show-point]");
    if (point) {
      const i = Number(point.dataset.showPoint);
      const p = data.points[i];
      map.setView([p.lat, p.lon], Math.max(map.getZoom(), 16));
      drawPoints();
      markers.get(i)?.openPopup();
      box.scrollIntoView({ block: "nearest" });
    }
    const fence = e.target.closest("[data-show-fence]");
    if (fence) map.fitBounds(shapes[Number(fence.dataset.showFence)].getBounds().pad(0.3));
    const edit = e.target.closest("[data-edit-fence]");
    if (edit) startEdit(Number(edit.dataset.editFence));
  });

  // -- a device's track, from the history API ------------------------------------------------
  const trackLayer = L.layerGroup().addTo(map);
  const trackForm = document.getElementById("track-form");
  const MAX_PAGES = 10;
  async function history(device, from, to) {
    const byTs = new Map();
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page++) {
      const params = new URLSearchParams({ keys: "lat,lon", from, to, limit: "10000" });
      if (cursor) params.set("cursor", cursor);
      const response = await fetch(`/api/v1/devices/${encodeURIComponent(device)}/telemetry?${params}`,
        { headers: { Accept: "application/json" } });
      const answer = await response.json().catch(() => null);
      if (!response.ok) throw new Error(answer?.error?.message || `The server answered ${response.status}`);
      for (const item of answer.items) {
        if (!byTs.has(item.ts)) byTs.set(item.ts, {});
        byTs.get(item.ts)[item.key] = item.value;
      }
      cursor = answer.next_cursor;
      if (!cursor) break;
    }
    return [...byTs.entries()].filter(([, v]) => typeof v.lat === "number" && typeof v.lon === "number")
      .map(([ts, v]) => ({ ts, at: [v.lat, v.lon] }));
  }
  trackForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const info = document.getElementById("track-info");
    const error = document.getElementById("track-error");
    error.textContent = "";
    info.textContent = "Loading…";
    trackLayer.clearLayers();
    try {
      const device = trackForm.device.value.trim();
      const points = await history(device, trackForm.from.value.trim(), trackForm.to.value.trim());
      if (!points.length) {
        info.textContent = `${device} reported no position in this range.`;
        return;
      }
      const line = L.polyline(points.map((p) => p.at), { className: "track" }).addTo(trackLayer);
      L.circleMarker(points[0].at, { radius: 5, className: "track-start" }).bindTooltip(`start ${new Date(points[0].ts).toLocaleString()}`).addTo(trackLayer);
      const last = points[points.length - 1];
      L.circleMarker(last.at, { radius: 6, className: "track-end" }).bindTooltip(`end ${new Date(last.ts).toLocaleString()}`).addTo(trackLayer);
      map.fitBounds(line.getBounds().pad(0.2), { maxZoom: 17 });
      info.textContent = `${device}: ${points.length} positions, ${new Date(points[0].ts).toLocaleString()} to ${new Date(last.ts).toLocaleString()}.`;
    } catch (err) {
      info.textContent = "";
      error.textContent = err.message;
    }
  });
  document.getElementById("track-clear").addEventListener("click", () => {
    trackLayer.clearLayers();
    document.getElementById("track-info").textContent = "";
  });

  // -- reshaping a geofence (admins; saved with PUT /api/v1/rules/{name}) -----------------------
  const form = document.getElementById("fence-form");
  const handles = L.layerGroup().addTo(map);
  let editing = null; // { index, shape }
  const handleIcon = L.divIcon({ className: "handle", iconSize: [16, 16] });
  const round = (x) => Math.round(x * 1e6) / 1e6;

  function readForm() {
    if (data.fences[editing.index].circle) {
      return { circle: { lat: Number(form.lat.value), lon: Number(form.lon.value), radius_m: Number(form.radius_m.value) } };
    }
    const polygon = form.points.value.split("\n").map((l) => l.trim()).filter(Boolean)
      .map((l) => l.split(/[,\s]+/).map(Number));
    return { polygon };
  }
  function showShape() {
    const shape = readForm();
    if (shape.circle && [shape.circle.lat, shape.circle.lon, shape.circle.radius_m].every(Number.isFinite)) {
      editing.shape.setLatLng([shape.circle.lat, shape.circle.lon]).setRadius(shape.circle.radius_m);
    } else if (shape.polygon && shape.polygon.every((p) => p.length === 2 && p.every(Number.isFinite))) {
      editing.shape.setLatLngs(shape.polygon);
    }
    drawHandles();
  }
  function drawHandles() {
    handles.clearLayers();
    const f = data.fences[editing.index];
    const spots = f.circle ? [editing.shape.getLatLng()] : editing.shape.getLatLngs()[0];
    spots.forEach((at, i) => {
      L.marker(at, { icon: handleIcon, draggable: true, keyboard: false, title: f.circle ? "centre" : `point ${i + 1}` })
        .on("drag", (e) => {
          const ll = e.target.getLatLng();
          if (f.circle) {
            form.lat.value = round(ll.lat);
            form.lon.value = round(ll.lng);
            editing.shape.setLatLng(ll);
          } else {
            const lines = form.points.value.split("\n").map((l) => l.trim()).filter(Boolean);
            lines[i] = `${round(ll.lat)}, ${round(ll.lng)}`;
            form.points.value = lines.join("\n");
            const latlngs = editing.shape.getLatLngs()[0];
            latlngs[i] = ll;
            editing.shape.setLatLngs(latlngs);
          }
        })
        .addTo(handles);
    });
  }
  function startEdit(index) {
    stopEdit();
    const f = data.fences[index];
    editing = { index, shape: shapes[index] };
    editing.shape.getElement()?.classList.add("fence-editing");
    form.hidden = false;
    document.getElementById("fence-title").textContent = `Geofence of ${f.rule}`;
    form.querySelector("[data-circle]").hidden = !f.circle;
    form.querySelector("[data-polygon]").hidden = !f.polygon;
    if (f.circle) {
      form.lat.value = f.circle.lat;
      form.lon.value = f.circle.lon;
      form.radius_m.value = f.circle.radius_m;
    } else {
      form.points.value = f.polygon.map((p) => p.join(", ")).join("\n");
    }
    map.fitBounds(editing.shape.getBounds().pad(0.3));
    drawHandles();
    (f.circle ? form.lat : form.points).focus();
  }
  function stopEdit() {
    if (!editing) return;
    const f = data.fences[editing.index];
    editing.shape.getElement()?.classList.remove("fence-editing");
    if (f.circle) editing.shape.setLatLng([f.circle.lat, f.circle.lon]).setRadius(f.circle.radius_m);
    else editing.shape.setLatLngs(f.polygon);
    handles.clearLayers();
    editing = null;
    form.hidden = true;
    document.getElementById("fence-error").textContent = "";
  }
  form.addEventListener("input", () => editing && showShape());
  document.getElementById("fence-cancel").addEventListener("click", stopEdit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = document.getElementById("fence-error");
    error.textContent = "";
    const f = data.fences[editing.index];
    const rule = structuredClone(f.definition);
    const fence = { ...rule.condition.geofence, circle: undefined, polygon: undefined, ...readForm() };
    rule.condition.geofence = JSON.parse(JSON.stringify(fence));
    const response = await fetch(`/api/v1/rules/${encodeURIComponent(f.rule)}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(rule),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      error.textContent = answer?.error?.message || `The server answered ${response.status}`;
      return;
    }
    location.reload();
  });

  // -- a new circular geofence at the map's centre (admins; POST /api/v1/rules) -------------
  const create = document.getElementById("new-fence-form");
  if (create) {
    let preview = null;
    const drawPreview = () => {
      const [lat, lon, r] = [create.lat.value, create.lon.value, create.radius_m.value].map(Number);
      if (![lat, lon, r].every(Number.isFinite) || r <= 0) return;
      if (preview) preview.setLatLng([lat, lon]).setRadius(r);
      else preview = L.circle([lat, lon], { radius: r, className: "fence fence-editing" }).addTo(fenceLayer);
    };
    const closeNew = () => {
      preview?.remove();
      preview = null;
      create.hidden = true;
      document.getElementById("new-fence-error").textContent = "";
    };
    document.getElementById("new-fence").addEventListener("click", () => {
      stopEdit();
      const centre = map.getCenter();
      const bounds = map.getBounds();
      // A quarter of the visible width, in round metres.
      const width = map.distance([centre.lat, bounds.getWest()], [centre.lat, bounds.getEast()]);
      create.lat.value = round(centre.lat);
      create.lon.value = round(centre.lng);
      create.radius_m.value = Math.max(1, Math.round(width / 4));
      create.hidden = false;
      drawPreview();
      create.name.focus();
    });
    create.addEventListener("input", drawPreview);
    document.getElementById("new-fence-cancel").addEventListener("click", closeNew);
    create.addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = document.getElementById("new-fence-error");
      error.textContent = "";
      const rule = {
        name: create.name.value.trim(),
        scope: { [create.scope.value]: create.target.value.trim() },
        condition: {
          geofence: {
            circle: { lat: Number(create.lat.value), lon: Number(create.lon.value), radius_m: Number(create.radius_m.value) },
            trigger: create.trigger.value,
          },
        },
        actions: [{ alarm: { severity: create.severity.value, message: create.message.value.trim() } }],
      };
      const response = await fetch("/api/v1/rules", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(rule),
      });
      const answer = await response.json().catch(() => null);
      if (!response.ok) {
        error.textContent = answer?.error?.message || `The server answered ${response.status}`;
        return;
      }
      location.reload();
    });
  }
})();
