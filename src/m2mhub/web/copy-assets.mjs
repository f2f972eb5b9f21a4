// Copies the files the console serves from node_modules/ into static/vendor/ (not committed).
// Runs after `npm ci` (the postinstall script of package.json).
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "static", "vendor");
const files = {
  "htmx.org/dist/htmx.min.js": "htmx.min.js",
  "uplot/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
  "uplot/dist/uPlot.min.css": "uPlot.min.css",
  "leaflet/dist/leaflet.js": "leaflet.js",
  "leaflet/dist/leaflet.css": "leaflet.css",
  "htmx.org/LICENSE": "htmx.LICENSE",
  "uplot/LICENSE": "uPlot.LICENSE",
  "leaflet/LICENSE": "leaflet.LICENSE",
};
rmSync(vendor, { recursive: true, force: true });
mkdirSync(vendor, { recursive: true });
for (const [source, target] of Object.entries(files)) {
  copyFileSync(join(here, "node_modules", source), join(vendor, target));
}
console.log(`copied ${Object.keys(files).length} files to ${vendor}`);
