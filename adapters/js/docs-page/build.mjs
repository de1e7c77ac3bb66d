// Builds the API docs page (/v1/docs/) into the Python package: type-checks src/ (tsc),
// bundles src/main.ts with esbuild into docs.js, and copies index.html and docs.css.
// The output is committed (pip install needs no Node); tests/app/test_docs_bundle.py
// rebuilds it into a temporary directory and compares, so the two cannot drift.
//
//   node docs-page/build.mjs [OUT_DIR]     (default: app/static/docs of the repository)
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = dirname(here);
export const DEFAULT_OUT = resolve(packageRoot, "..", "..", "app", "static", "docs");

/** Type-check and bundle the page into `outDir` (emptied first). */
export async function buildDocsPage(outDir = DEFAULT_OUT) {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(here, "tsconfig.json")], { stdio: "inherit" });
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await esbuild.build({
    // Paths in the bundle's comments are relative to the package, wherever the checkout is.
    absWorkingDir: packageRoot,
    entryPoints: ["docs-page/src/main.ts"],
    outfile: join(outDir, "docs.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    charset: "utf8",
    legalComments: "none",
    logLevel: "warning",
  });
  for (const file of ["index.html", "docs.css"]) copyFileSync(join(here, file), join(outDir, file));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await buildDocsPage(process.argv[2] === undefined ? DEFAULT_OUT : resolve(process.argv[2]));
}
