// A vehicle's day on the map: the route as a line, each trip's start and end, each stop
// with its duration. The lists beside the map zoom to a trip or a stop.
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("day-data").textContent);
  const map = L.map(document.getElementById("map"), { zoomSnap: 0.5 });
  if (data.tiles.url) {
    L.tileLayer(data.tiles.url, { attribution: data.tiles.attribution, maxZoom: 19 }).addTo(map);
  }
  map.attributionControl.setPrefix(false);
  L.control.scale().addTo(map);

  const minutes = (ms) => {
    const m = Math.round(ms / 60000);
    return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min`;
  };
  // The day is the vehicle's local day: its times are shown in its time zone too.
  const time = (ts) => new Date(ts).toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", timeZone: data.timezone,
  });

  const bounds = L.latLngBounds([]);
  if (data.route.length) {
    const line = L.polyline(data.route, { className: "route", weight: 4 }).addTo(map);
    bounds.extend(line.getBounds());
  }
  const tripMarks = data.trips.map((t) => {
    const marks = [];
    if (t.start_lat !== null) {
      marks.push(L.circleMarker([t.start_lat, t.start_lon], { radius: 6, className: "trip-start" })
        .bindTooltip(`Trip start ${time(t.start_ts)}`).addTo(map));
    }
    if (t.end_lat !== null) {
      marks.push(L.circleMarker([t.end_lat, t.end_lon], { radius: 6, className: "trip-end" })
        .bindTooltip(`Trip end ${time(t.end_ts)}, ${(t.distance_m / 1000).toFixed(1)} km`).addTo(map));
    }
    marks.forEach((m) => bounds.extend(m.getLatLng()));
    return marks;
  });
  const stopMarks = data.stops.map((s) => {
    if (s.lat === null) return null;
    const mark = L.circleMarker([s.lat, s.lon], { radius: 9, className: "stop" })
      .bindTooltip(`Stop ${time(s.start_ts)}, ${minutes(s.duration_ms)}`).addTo(map);
    bounds.extend(mark.getLatLng());
    return mark;
  });
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16 });
  else map.setView([0, 0], 2);

  document.querySelectorAll("[data-trip]").forEach((button) => {
    button.addEventListener("click", () => {
      const marks = tripMarks[Number(button.dataset.trip)];
      if (marks.length) map.fitBounds(L.latLngBounds(marks.map((m) => m.getLatLng())), { padding: [40, 40], maxZoom: 16 });
    });
  });
  document.querySelectorAll("[data-stop]").forEach((button) => {
    button.addEventListener("click", () => {
      const mark = stopMarks[Number(button.dataset.stop)];
      if (mark) { map.setView(mark.getLatLng(), 16); mark.openTooltip(); }
    });
  });
})();
