// Builds the storefront demo (/demo/) into the Python package: type-checks src/ (with the
// package's sources it imports), bundles src/main.tsx with React and the client into
// app.js, and copies index.html and app.css. The output is committed (pip install needs no
// Node); tests/app/test_page_bundles.py rebuilds it into a temporary directory and compares.
//
//   node demo/build.mjs [OUT_DIR]     (default: app/static/demo of the repository)
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildPage } from "../page-build.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_OUT = resolve(here, "..", "..", "..", "app", "static", "demo");

/** Type-check and bundle the page into `outDir` (emptied first). */
export async function buildDemo(outDir = DEFAULT_OUT) {
  await buildPage({
    pageDir: here, entry: "demo/src/main.tsx", bundle: "app.js", files: ["index.html", "app.css"], outDir,
    options: {
      jsx: "automatic",
      minify: true,
      define: { "process.env.NODE_ENV": '"production"' },  // React's production build
    },
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await buildDemo(process.argv[2] === undefined ? DEFAULT_OUT : resolve(process.argv[2]));
}
