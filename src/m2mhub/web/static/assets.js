// Importing assets: the chosen file (CSV or an Excel workbook) goes to POST
// /api/v1/assets/import as it is, bytes and all; the server tells them apart by their content.
// The errors of a refused file are listed by row and column under the form.
(() => {
  "use strict";
  const form = document.getElementById("import-form");
  if (!form) return;
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = document.getElementById("import-error");
    const button = form.querySelector("button");
    box.replaceChildren();
    button.disabled = true;
    const file = form.file.files[0];
    try {
      const response = await fetch("/api/v1/assets/import", {
        method: "POST",
        headers: {
          "Content-Type": file.type || "application/octet-stream",
          Accept: "application/json",
          "X-CSRF-Token": csrf(),
        },
        body: file,
      });
      const answer = await response.json().catch(() => null);
      if (!response.ok) {
        box.append(answer?.error?.message || `The server answered ${response.status}`);
        const rows = answer?.error?.rows || [];
        if (rows.length) {
          const list = document.createElement("ul");
          for (const r of rows) {
            const item = document.createElement("li");
            item.textContent = `row ${r.row}, ${r.field}: ${r.message}`;
            list.append(item);
          }
          box.append(list);
        }
        return;
      }
      form.reset();
      box.textContent = "";
      const toast = document.getElementById("toast");
      toast.textContent = `${answer.length} asset(s) imported`;
      toast.classList.add("shown");
      setTimeout(() => toast.classList.remove("shown"), 3000);
      htmx.trigger(document.body, "m2m:assets");
    } finally {
      button.disabled = false;
    }
  });
})();
