/** The demo's entry: read the address, then render the storefront (or say how to open it). */
import { createRoot } from "react-dom/client";
import { App } from "./app.js";
import { readSettings } from "./settings.js";

const root = createRoot(document.getElementById("root")!);
const settings = readSettings(window.location);
root.render(
  settings ? (
    <App settings={settings} />
  ) : (
    <p className="banner">
      This page needs a token in its address: open the link <code>syncline serve</code> prints
      (<code>/demo/#token=TOKEN&amp;tenant=demo</code>).
    </p>
  ),
);
// The address holds the settings: a new hash (another cart, another token) is a new page.
window.addEventListener("hashchange", () => window.location.reload());
