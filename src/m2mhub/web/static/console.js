// The console's behaviour in the browser; everything else is rendered by the server.
// - every htmx request and API call carries the session's CSRF token;
// - forms with data-api call the REST API with JSON and show its error message;
// - one EventSource per page ([data-stream]) patches live values and tells sections
//   (hx-trigger="m2m:<event> from:body") to reload;
// - times are shown in the reader's time zone.
(() => {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

  function localTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach((t) => {
      t.title = t.textContent;
      t.textContent = timeFormat.format(new Date(t.dateTime));
      t.dataset.local = "";
    });
  }

  function setTime(el, ms) {
    const t = document.createElement("time");
    t.dateTime = new Date(ms).toISOString();
    t.textContent = timeFormat.format(new Date(ms));
    el.replaceChildren(t);
  }

  function formatValue(v) {
    if (typeof v === "number" && !Number.isInteger(v)) return String(Number(v.toPrecision(6)));
    return String(v);
  }

  function toast(text) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.classList.add("shown");
    clearTimeout(box.timer);
    box.timer = setTimeout(() => box.classList.remove("shown"), 3000);
  }

  document.addEventListener("htmx:configRequest", (e) => {
    e.detail.headers["X-CSRF-Token"] = csrf();
  });

  // A section the reader is working in (focus inside, an open <details>) is not reloaded
  // under their hands; the next event reloads it.
  document.addEventListener("htmx:beforeRequest", (e) => {
    const el = e.detail.elt;
    if (el.hasAttribute("data-keep-while-editing") &&
        (el.contains(document.activeElement) || el.querySelector("details[open]"))) {
      e.preventDefault();
    }
  });

  document.addEventListener("htmx:afterSettle", (e) => {
    localTimes(e.target);
    connect();
  });

  // -- forms that call the REST API --------------------------------------------------
  // An input with data-in="params" goes into body.params (a declared command method's
  // form): numbers as numbers, checkboxes as booleans, as the method declares them.
  function formBody(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      const into = el.dataset.in ? (body[el.dataset.in] ??= {}) : body;
      if (el.type === "checkbox") into[el.name] = el.checked;
      else if (el.value.trim() === "") continue;
      else if (el.type === "number") into[el.name] = Number(el.value);
      else if ("json" in el.dataset) {
        try {
          into[el.name] = JSON.parse(el.value);
        } catch {
          throw new Error(`${el.labels[0]?.textContent.trim() || el.name}: this is not valid JSON`);
        }
      } else into[el.name] = el.value;
    }
    return body;
  }

  document.addEventListener("submit", async (e) => {
    const form = e.target;
    const api = e.submitter?.dataset.api || form.dataset.api;
    if (!api) return;
    e.preventDefault();
    const alert = form.querySelector('[role="alert"]');
    if (alert) alert.textContent = "";
    const buttons = [...form.querySelectorAll("button")];
    try {
      const body = formBody(form);
      buttons.forEach((b) => (b.disabled = true));
      const response = await fetch(api, {
        method: form.dataset.method || "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(body),
      });
      if (response.status === 401) {
        location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        throw new Error(answer?.error?.message || `The server answered ${response.status}`);
      }
      form.closest("details")?.removeAttribute("open");
      if (form.contains(document.activeElement)) document.activeElement.blur();
      if (form.dataset.reset !== "false") form.reset();
      toast(form.dataset.done || "Done");
      if (form.dataset.refresh) htmx.trigger(document.body, form.dataset.refresh);
      if ("reload" in form.dataset) location.reload();
    } catch (err) {
      if (alert) alert.textContent = err.message;
      else toast(err.message);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });

  // -- live events ---------------------------------------------------------------------
  const KINDS = ["readings_stored", "attributes_reported", "device_event", "connection_changed",
    "presence_changed", "command_changed", "twin_changed", "alarm_changed"];
  let source = null;
  let sourceUrl = "";

  // Sections reload on these events: at once, then at most once a second, the last event of
  // the second included. (htmx's own throttle drops the events of its window: a command's
  // final state, a few milliseconds after "sent", was never shown.)
  const RELOAD_WINDOW_MS = 1000;
  const waiting = new Map(); // event name -> the latest data not yet triggered, or null
  function notify(name, data) {
    if (waiting.has(name)) {
      waiting.set(name, data);
      return;
    }
    htmx.trigger(document.body, name, data);
    waiting.set(name, null);
    const flush = () => {
      const last = waiting.get(name);
      if (last === null) return waiting.delete(name);
      waiting.set(name, null);
      htmx.trigger(document.body, name, last);
      setTimeout(flush, RELOAD_WINDOW_MS);
    };
    setTimeout(flush, RELOAD_WINDOW_MS);
  }

  function setLive(state, text) {
    const live = document.getElementById("live");
    if (!live) return;
    live.dataset.state = state;
    live.textContent = text;
  }

  function setStatus(container, status) {
    container.querySelectorAll("[data-status]").forEach((badge) => {
      badge.className = `badge status-${status}`;
      badge.textContent = status.replace("_", " ");
    });
  }

  function applyReadings(data) {
    const containers = document.querySelectorAll(`[data-device="${CSS.escape(data.device_id)}"]`);
    if (!containers.length) return;
    const latest = {};
    for (const [ts, values] of data.readings) {
      for (const [key, value] of Object.entries(values)) {
        if (!latest[key] || latest[key][0] <= ts) latest[key] = [ts, value];
      }
    }
    let unseen = false;
    containers.forEach((container) => {
      for (const [key, [ts, value]] of Object.entries(latest)) {
        const cells = container.querySelectorAll(`[data-key="${CSS.escape(key)}"]`);
        if (!cells.length && container.querySelector("#values")) unseen = true;
        cells.forEach((cell) => {
          cell.textContent = formatValue(value);
          cell.classList.remove("flash");
          void cell.offsetWidth; // restart the highlight
          cell.classList.add("flash");
        });
        container.querySelectorAll(`[data-key-ts="${CSS.escape(key)}"]`).forEach((c) => setTime(c, ts));
      }
      container.querySelectorAll("[data-last-seen]").forEach((c) => setTime(c, Date.now()));
      setStatus(container, "online");
    });
    if (unseen) notify("m2m:values", {});
  }

  function handle(kind, data) {
    if (kind === "readings_stored") applyReadings(data);
    if (kind === "presence_changed") {
      document.querySelectorAll(`[data-device="${CSS.escape(data.device_id)}"]`)
        .forEach((c) => setStatus(c, data.online ? "online" : "offline"));
    }
    // Every reading reaches the chart (it has its own pace); sections reload through notify.
    if (kind === "readings_stored") htmx.trigger(document.body, `m2m:${kind}`, data);
    else notify(`m2m:${kind}`, data);
  }

  function connect() {
    const url = document.querySelector("[data-stream]")?.dataset.stream || "";
    if (url === sourceUrl) return;
    source?.close();
    source = null;
    sourceUrl = url;
    if (!url) return setLive("idle", "");
    let opened = false;
    source = new EventSource(url);
    source.addEventListener("ready", () => {
      setLive("live", "live");
      // After a reconnection, what happened meanwhile was missed: reload the sections.
      if (opened) KINDS.forEach((kind) => notify(`m2m:${kind}`, {}));
      opened = true;
    });
    source.addEventListener("error", () => {
      setLive("down", source.readyState === EventSource.CLOSED ? "offline" : "reconnecting…");
    });
    KINDS.forEach((kind) => source.addEventListener(kind, (e) => handle(kind, JSON.parse(e.data))));
  }

  addEventListener("pagehide", () => source?.close());
  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    connect();
  });
})();
