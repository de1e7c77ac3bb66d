// Builds the API docs page (/v1/docs/) into the Python package: type-checks src/ (tsc),
// bundles src/main.ts with esbuild into docs.js, and copies index.html and docs.css.
// The output is committed (pip install needs no Node); tests/app/test_page_bundles.py
// rebuilds it into a temporary directory and compares, so the two cannot drift.
//
//   node docs-page/build.mjs [OUT_DIR]     (default: app/static/docs of the repository)
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildPage } from "../page-build.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_OUT = resolve(here, "..", "..", "..", "app", "static", "docs");

/** Type-check and bundle the page into `outDir` (emptied first). */
export async function buildDocsPage(outDir = DEFAULT_OUT) {
  await buildPage({
    pageDir: here, entry: "docs-page/src/main.ts", bundle: "docs.js", files: ["index.html", "docs.css"], outDir,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await buildDocsPage(process.argv[2] === undefined ? DEFAULT_OUT : resolve(process.argv[2]));
}
