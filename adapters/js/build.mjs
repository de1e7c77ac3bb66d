// Builds everything the package and the relay ship, then the tests:
//   dist/    the library: ES modules and .d.ts files (tsc), dependencies left as imports
//   build/   src and test compiled for Node's test runner (tsc)
// Browser bundles (the demo and the API docs page) are added by their own entries below.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildDemo } from "./demo/build.mjs";
import { buildDocsPage } from "./docs-page/build.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

function run(cmd, args) {
  execFileSync(cmd, args, { cwd: here, stdio: "inherit" });
}

rmSync(join(here, "dist"), { recursive: true, force: true });
rmSync(join(here, "build"), { recursive: true, force: true });
run(process.execPath, [tsc, "-p", "tsconfig.dist.json"]);
run(process.execPath, [tsc, "-p", "tsconfig.json"]);

// Browser bundles, written into the Python package (app/static/) and committed.
await buildDocsPage(); // the API docs page, /v1/docs/
await buildDemo(); // the storefront demo, /demo/
