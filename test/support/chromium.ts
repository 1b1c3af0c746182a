/**
 * Headless Chromium with WebGPU for tests: Debian's /usr/bin/chromium through puppeteer-core
 * (puppeteer's own Chrome download cannot work here), pages served from the repository root on
 * 127.0.0.1 (WebGPU needs a secure context).
 */
import { createServer, type Server } from "node:http";
import { existsSync, readFileSync, statSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";

const TYPES: Record<string, string> = {
  ".html": "text/html", ".js": "text/javascript", ".map": "application/json", ".json": "application/json", ".css": "text/css",
};

export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new Error("no Chromium found: run `npm run setup` (installs Debian's chromium) or set CHROMIUM_PATH");
  return found;
}

/**
 * Serves `root`. With `isolated`, every response carries the COOP/COEP headers that make the page
 * cross-origin isolated (SharedArrayBuffer, hence the WebAssembly engine's threads), as the demo
 * server sends them.
 */
export async function serveDirectory(root: string, options: { isolated?: boolean } = {}): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    const file = join(root, path);
    if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    const isolation = options.isolated ? { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" } : {};
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", ...isolation }).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { server, url: `http://127.0.0.1:${port}` };
}

export async function launchChromium(): Promise<Browser> {
  return await puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--enable-unsafe-webgpu",
      "--enable-features=Vulkan",
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}
