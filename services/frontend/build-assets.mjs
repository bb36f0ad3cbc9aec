// Copies the page's third-party assets from node_modules (installed by `npm ci` from the lock
// file) into the frontend package, where the frontend serves them itself: the page needs no CDN.
//
//   npm ci --no-audit --no-fund && npm run build
//
// Output: src/istio_burst/frontend/static/vendor/ (gitignored), or $ASSETS_OUT when set.
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.env.ASSETS_OUT ?? join(here, "../../src/istio_burst/frontend/static/vendor"));
const modules = join(here, "node_modules");

// [package, file inside the package, name served under /static/vendor/]
const ASSETS = [
  ["bootstrap", "dist/css/bootstrap.min.css", "bootstrap.min.css"],
  ["bootstrap", "dist/css/bootstrap.min.css.map", "bootstrap.min.css.map"],
  ["bootstrap", "LICENSE", "LICENSE.bootstrap"],
  ["socket.io-client", "dist/socket.io.min.js", "socket.io.min.js"],
  ["socket.io-client", "dist/socket.io.min.js.map", "socket.io.min.js.map"],
  ["socket.io-client", "LICENSE", "LICENSE.socket.io-client"],
  ["chart.js", "dist/chart.umd.min.js", "chart.umd.min.js"],
  ["chart.js", "dist/chart.umd.min.js.map", "chart.umd.min.js.map"],
  ["chart.js", "LICENSE.md", "LICENSE.chart.js"],
];

const missing = ASSETS.filter(([pkg, file]) => !existsSync(join(modules, pkg, file)));
if (missing.length > 0) {
  const list = missing.map(([pkg, file]) => `${pkg}/${file}`).join(", ");
  console.error(`build-assets: missing in node_modules: ${list}. Run \`npm ci\` in ${here} first.`);
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const [pkg, file, name] of ASSETS) {
  copyFileSync(join(modules, pkg, file), join(out, name));
}
console.log(`build-assets: ${ASSETS.length} files -> ${out}`);
