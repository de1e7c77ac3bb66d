/**
 * The entry of the API docs page (`/v1/docs/`): fetch the OpenAPI document named by the
 * root element's `data-spec` (relative to the page) and render it, or say why it could not.
 */
import type { OpenApiDocument } from "./openapi.js";
import { renderDocument } from "./render.js";

async function start(): Promise<void> {
  const root = document.getElementById("docs");
  if (root === null) return;
  const spec = new URL(root.dataset["spec"] ?? "../openapi.json", document.baseURI);
  try {
    const response = await fetch(spec, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${spec.pathname} answered ${response.status}`);
    renderDocument(root, (await response.json()) as OpenApiDocument);
    root.dataset["state"] = "ready";
    // The section an address like /v1/docs/#operation-addCartItem names exists only now.
    if (location.hash.length > 1) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.scrollIntoView();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const failure = document.createElement("p");
    failure.className = "failure";
    failure.dataset["testid"] = "docs-failure";
    failure.textContent = `The API description could not be shown: ${message}`;
    root.replaceChildren(failure);
    root.dataset["state"] = "failed";
  }
}

void start();
