// One build for each browser page the relay serves from the Python package (the demo, the API
// docs page): type-check its sources (tsc), bundle its entry with esbuild, copy its static files.
// The output is committed (pip install needs no Node); tests/app/test_page_bundles.py rebuilds
// each page into a temporary directory and compares.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as esbuild from "esbuild";

/**
 * Build the page whose sources are in `pageDir` (its tsconfig.json, its `entry` relative to the
 * package, its `files` to copy) into `outDir` (emptied first) as `bundle`; `options` add to esbuild's.
 */
export async function buildPage({ pageDir, entry, bundle, files, outDir, options = {} }) {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(pageDir, "tsconfig.json")], { stdio: "inherit" });
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await esbuild.build({
    // Paths in the bundle's comments are relative to the package, wherever the checkout is.
    absWorkingDir: dirname(pageDir),
    entryPoints: [entry],
    outfile: join(outDir, bundle),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    charset: "utf8",
    legalComments: "none",
    logLevel: "warning",
    ...options,
  });
  for (const file of files) copyFileSync(join(pageDir, file), join(outDir, file));
}
