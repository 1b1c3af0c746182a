#!/usr/bin/env node
// `npm run demos [-- --port N] [-- --host H] [-- --no-build]`: builds (node build.mjs: shaders and
// the esbuild bundles under dist/) and serves the repository root over HTTP, so the demos open at
// http://127.0.0.1:8080/demos/index.html, each page in its folder (/demos/same-function/ etc.: a
// folder is served as its index.html). WebGPU needs a secure context: 127.0.0.1 / localhost
// qualify. Ctrl-C stops it.
import { spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".json": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".wgsl": "text/plain; charset=utf-8",
};

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith("--")) {
    console.error(`--${name} needs a value`);
    process.exit(2);
  }
  return v;
}

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log("usage: npm run demos [-- --port 8080] [-- --host 127.0.0.1] [-- --no-build]");
  process.exit(0);
}
const port = Number(option("port", "8080"));
const host = option("host", "127.0.0.1");
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be an integer in [0, 65535], got ${option("port")}`);
  process.exit(2);
}

if (!process.argv.includes("--no-build")) {
  const built = spawnSync(process.execPath, [join(root, "build.mjs")], { stdio: "inherit", cwd: root });
  if (built.status !== 0) {
    console.error("build failed: node build.mjs exited with", built.status);
    process.exit(1);
  }
}

const server = createServer((req, res) => {
  let path;
  let url;
  try {
    url = new URL(req.url ?? "/", "http://x");
    path = decodeURIComponent(url.pathname);
  } catch {
    res.writeHead(400).end("bad request");
    return;
  }
  if (path === "/") {
    res.writeHead(302, { location: "/demos/index.html" }).end();
    return;
  }
  let file = join(root, normalize(path));
  if (file !== root && !file.startsWith(root + sep)) {
    res.writeHead(403).end("forbidden");
    return;
  }
  if (existsSync(file) && statSync(file).isDirectory()) {
    // A page's folder without its slash: redirect, so that its relative links (../style.css) resolve.
    if (!path.endsWith("/")) {
      res.writeHead(301, { location: `${url.pathname}/${url.search}` }).end();
      return;
    }
    file = join(file, "index.html");
  }
  if (!existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}`);
    return;
  }
  // Cross-origin isolation (COOP + COEP) gives the pages SharedArrayBuffer, so the wasm engine runs
  // on worker threads there; without it, it runs on one thread.
  res.writeHead(200, {
    "content-type": TYPES[extname(file)] ?? "application/octet-stream",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
  });
  res.end(readFileSync(file));
});

server.on("error", (e) => {
  console.error(e.code === "EADDRINUSE" ? `port ${port} is in use: try --port ${port + 1}` : String(e));
  process.exit(1);
});
server.listen(port, host, () => {
  const address = server.address();
  const shownHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  console.log(`demos: http://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${address.port}/demos/index.html  (Ctrl-C stops)`);
  console.log("needs a browser with WebGPU; on Linux start Chrome/Chromium with --enable-unsafe-webgpu");
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
