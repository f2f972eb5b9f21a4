// The rule editor: save through the rules API with its error shown under the text, and
// "test against history" through POST /api/v1/rules/test with what would have fired.
(() => {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  class ApiError extends Error {
    constructor(message, field) {
      super(message);
      this.field = field;
    }
  }

  async function call(url, method, body, type = "application/json") {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": type, Accept: "application/json", "X-CSRF-Token": csrf() },
      body: type === "application/json" ? JSON.stringify(body) : body,
    });
    if (response.status === 401) {
      location.assign("/console/login?next=" + encodeURIComponent(location.pathname));
      throw new ApiError("Signed out");
    }
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(answer?.error?.message || `The server answered ${response.status}`,
        answer?.error?.field);
    }
    return answer;
  }

  const editor = document.getElementById("definition");
  // The editor's YAML (or JSON) as the rule object the API reads.
  const definition = () => call("/console/rules/parse", "POST", editor.value, "text/plain");

  function showError(box, err) {
    box.replaceChildren();
    let message = err.message;
    if (err.field) {
      const field = document.createElement("code");
      field.textContent = err.field;
      box.append("In ", field, ": ");
      message = message.replace(`${err.field}: `, "").replace(/^Value error, /, "");
    }
    box.append(message);
  }

  const form = document.getElementById("rule-form");
  form?.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!form.dataset.save) return;
    const box = document.getElementById("rule-error");
    const button = form.querySelector("button");
    box.replaceChildren();
    editor.removeAttribute("aria-invalid");
    button.disabled = true;
    try {
      const rule = await definition();
      const saved = await call(form.dataset.save, form.dataset.method, rule);
      location.assign(`/console/rules/${encodeURIComponent(saved.name)}`);
    } catch (err) {
      editor.setAttribute("aria-invalid", "true");
      showError(box, err);
    } finally {
      button.disabled = false;
    }
  });

  // -- test against history --------------------------------------------------------------
  const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const el = (tag, text, attrs = {}) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    return node;
  };
  const when = (ms) => el("time", timeFormat.format(new Date(ms)), { datetime: new Date(ms).toISOString() });

  function report(result) {
    const out = [el("p", `From ${timeFormat.format(new Date(result.from))} to ${timeFormat.format(new Date(result.to))}; nothing was changed.`, { class: "muted small" })];
    result.notes.forEach((note) => out.push(el("p", note, { class: "warn" })));
    if (!result.devices.length && !result.notes.length) out.push(el("p", "No device of the rule's scope.", { class: "empty" }));
    for (const d of result.devices) {
      const raised = d.fired.filter((f) => f.event === "raised").length;
      const head = el("h3", `${d.device}: `);
      head.append(`${d.evaluated} evaluated, ${raised} raised, ${d.fired.length - raised} cleared, ${d.active ? "on" : "off"} at the end`);
      out.push(head);
      if (!d.fired.length) {
        out.push(el("p", "It would not have fired.", { class: "empty" }));
        continue;
      }
      const table = el("table", undefined, { class: "compact fired" });
      const headRow = el("tr");
      ["Time", "Event", "Trigger", "Values", "Would run"].forEach((h) => headRow.append(el("th", h, { scope: "col" })));
      table.append(el("thead"), el("tbody"));
      table.tHead.append(headRow);
      for (const f of d.fired) {
        const row = el("tr");
        const time = el("td");
        time.append(when(f.ts));
        const values = Object.entries(f.values).map(([k, v]) => `${k}=${v}`).join(" ");
        row.append(time, el("td", f.event), el("td", f.trigger), el("td", values, { class: "num" }),
          el("td", f.actions.join("; "), { class: "small" }));
        table.tBodies[0].append(row);
      }
      const scroll = el("div", undefined, { class: "scroll" });
      scroll.append(table);
      out.push(scroll);
    }
    return out;
  }

  const test = document.getElementById("test-form");
  test?.addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = document.getElementById("test-error");
    const results = document.getElementById("test-results");
    const button = test.querySelector("button");
    box.replaceChildren();
    button.disabled = true;
    results.replaceChildren(el("p", "Replaying…", { class: "muted" }));
    try {
      const rule = await definition();
      const body = { rules: [rule], from: test.from.value.trim(), to: test.to.value.trim() };
      if (test.device.value.trim()) body.device = test.device.value.trim();
      results.replaceChildren(...report(await call("/api/v1/rules/test", "POST", body)));
    } catch (err) {
      results.replaceChildren();
      showError(box, err);
    } finally {
      button.disabled = false;
    }
  });
})();
