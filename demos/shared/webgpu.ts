/// <reference lib="dom" />
/**
 * WebGPU detection: opens the page's backend (requireWebGPU) or shows a message a user can act on
 * (how to turn WebGPU on in their browser), and names the adapter (describeAdapter).
 */
import { type Backend, openBackend, type OpenBackendOptions } from "../../src/backend/mod.ts";
import { el } from "./dom.ts";
import { installErrorHandlers, showError } from "./errors.ts";
import { errorMessage, publishError } from "./record.ts";

/** Where users learn to turn WebGPU on. */
export const WEBGPU_HELP_URL = "https://github.com/gpuweb/gpuweb/wiki/Implementation-Status";

function webgpuMissingBox(reason: string): HTMLElement {
  const link = (href: string, text: string) => el("a", { href, target: "_blank", rel: "noopener" }, text);
  return el("div", { class: "demo-error webgpu-missing", role: "alert" }, [
    el("h2", {}, "This page needs WebGPU"),
    el("p", {}, reason),
    el("ul", {}, [
      el("li", {}, "Chrome and Edge 113 or newer on Windows, macOS and ChromeOS: on by default (check that hardware acceleration is on)."),
      el("li", {}, [
        "Chrome / Chromium on Linux: open ",
        el("code", {}, "chrome://flags/#enable-unsafe-webgpu"),
        ", enable it and restart, or start the browser with ",
        el("code", {}, "--enable-unsafe-webgpu --enable-features=Vulkan"),
        ". Without a GPU, Chromium falls back to SwiftShader (slow but correct).",
      ]),
      el("li", {}, "Safari 26 or newer (macOS, iOS); Firefox 141 or newer on Windows (elsewhere: dom.webgpu.enabled in about:config)."),
      el("li", {}, "The page must come from http://localhost / 127.0.0.1 or https (WebGPU needs a secure context): run npm run demos."),
    ]),
    el("p", {}, ["Browser support, up to date: ", link(WEBGPU_HELP_URL, "WebGPU implementation status"), "."]),
  ]);
}

/**
 * Opens the page's WebGPU backend (src/backend/), or shows why there is none. Installs the error handlers. Without
 * navigator.gpu, or when no adapter comes (requestAdapter is tried twice, as SwiftShader rarely
 * returns null the first time), it puts a message with the way to enable WebGPU at the top of
 * `root`, publishes the error and returns null. A lost device later shows a message too.
 */
export async function requireWebGPU(root: HTMLElement, options: OpenBackendOptions = {}): Promise<Backend | null> {
  installErrorHandlers(root);
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    const reason = window.isSecureContext
      ? "This browser does not expose WebGPU (navigator.gpu is missing)."
      : "This page was not opened from a secure origin (http://localhost, 127.0.0.1 or https), so the browser hides WebGPU.";
    root.prepend(webgpuMissingBox(reason));
    publishError(`WebGPU unavailable: ${reason}`);
    return null;
  }
  let adapter: GPUAdapter | null = options.adapter ?? null;
  for (let attempt = 0; !adapter && attempt < 2; attempt++) {
    try {
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
    } catch {
      adapter = null;
    }
  }
  if (!adapter) {
    const reason = "navigator.gpu is there but requestAdapter() returned no adapter: WebGPU is disabled or blocked for this GPU or driver.";
    root.prepend(webgpuMissingBox(reason));
    publishError(`WebGPU unavailable: ${reason}`);
    return null;
  }
  try {
    const backend = await openBackend("webgpu", { ...options, adapter, gpu });
    backend.gpu!.device.lost.then((info) => {
      if (info.reason !== "destroyed") showError(new Error(`the GPU device was lost (${info.message || info.reason}); reload the page`));
    });
    return backend;
  } catch (e) {
    root.prepend(webgpuMissingBox(`The WebGPU device could not be created: ${errorMessage(e)}`));
    publishError(e);
    return null;
  }
}

/** One line naming the adapter, and "(software)" on SwiftShader / lavapipe. */
export function describeAdapter(backend: Backend): string {
  return `${backend.gpu?.describe() ?? backend.describe()}${backend.isSoftware ? " (software WebGPU: slow but exact; a real GPU is much faster)" : ""}`;
}
