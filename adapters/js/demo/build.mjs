// Builds the storefront demo (/demo/) into the Python package: type-checks src/ (tsc, with
// the package's sources it imports), bundles src/main.tsx with React and the client into
// app.js, and copies index.html and app.css. The output is committed (pip install needs no
// Node); tests/app/test_demo_bundle.py rebuilds it into a temporary directory and compares.
//
//   node demo/build.mjs [OUT_DIR]     (default: app/static/demo of the repository)
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = dirname(here);
export const DEFAULT_OUT = resolve(packageRoot, "..", "..", "app", "static", "demo");

/** Type-check and bundle the demo into `outDir` (emptied first). */
export async function buildDemo(outDir = DEFAULT_OUT) {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(here, "tsconfig.json")], { stdio: "inherit" });
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await esbuild.build({
    absWorkingDir: packageRoot,
    entryPoints: ["demo/src/main.tsx"],
    outfile: join(outDir, "app.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    jsx: "automatic",
    minify: true,
    charset: "utf8",
    legalComments: "none",
    define: { "process.env.NODE_ENV": '"production"' },  // React's production build
    logLevel: "warning",
  });
  for (const file of ["index.html", "app.css"]) copyFileSync(join(here, file), join(outDir, file));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await buildDemo(process.argv[2] === undefined ? DEFAULT_OUT : resolve(process.argv[2]));
}
