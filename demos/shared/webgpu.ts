/// <reference lib="dom" />
/**
 * Choosing the page's compute backend: requireBackend opens WebGPU where the browser has it and
 * the WebAssembly engine (src/wasm/) where it does not (or where `?backend=wasm` asks for it), with
 * a short note on how to turn WebGPU on; requireWebGPU is for parts that cannot do without WebGPU.
 * describeAdapter / backendLine / backendLabel name what runs, for the page's texts.
 */
import { type Backend, openBackend, type OpenBackendOptions } from "../../src/backend/mod.ts";
import { el } from "./dom.ts";
import { installErrorHandlers, showError } from "./errors.ts";
import { choiceParam } from "./params.ts";
import { errorMessage, publishError } from "./record.ts";

/** Where users learn to turn WebGPU on. */
export const WEBGPU_HELP_URL = "https://github.com/gpuweb/gpuweb/wiki/Implementation-Status";

/** The backends a page can run on: `?backend=webgpu|wasm` (default: WebGPU where there is one, else wasm). */
export const PAGE_BACKENDS = ["webgpu", "wasm"] as const;
export type PageBackend = (typeof PAGE_BACKENDS)[number];

/** How to turn WebGPU on, per browser. */
function webgpuHelp(): HTMLElement[] {
  const link = (href: string, text: string) => el("a", { href, target: "_blank", rel: "noopener" }, text);
  return [
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
  ];
}

function webgpuMissingBox(reason: string): HTMLElement {
  return el("div", { class: "demo-error webgpu-missing", role: "alert" }, [el("h2", {}, "This page needs WebGPU"), el("p", {}, reason), ...webgpuHelp()]);
}

/** The note above a page that runs on the WebAssembly engine because WebGPU is missing. */
function webgpuFallbackNote(reason: string): HTMLElement {
  return el("div", { class: "demo-note webgpu-missing", role: "status" }, [
    el("p", {}, [
      el("strong", {}, "No WebGPU here: this page runs on the WebAssembly engine (CPU) instead. "),
      `${reason} The numbers agree to float32 rounding; larger settings are slower. `,
    ]),
    el("details", {}, [el("summary", {}, "How to turn WebGPU on"), ...webgpuHelp()]),
  ]);
}

/** Why WebGPU cannot be had here, or the adapter when it can. */
async function findAdapter(options: OpenBackendOptions): Promise<{ gpu: GPU; adapter: GPUAdapter } | { reason: string }> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    return {
      reason: window.isSecureContext
        ? "This browser does not expose WebGPU (navigator.gpu is missing)."
        : "This page was not opened from a secure origin (http://localhost, 127.0.0.1 or https), so the browser hides WebGPU.",
    };
  }
  let adapter: GPUAdapter | null = options.adapter ?? null;
  // requestAdapter is tried twice, as SwiftShader rarely returns null the first time.
  for (let attempt = 0; !adapter && attempt < 2; attempt++) {
    try {
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
    } catch {
      adapter = null;
    }
  }
  if (!adapter) return { reason: "navigator.gpu is there but requestAdapter() returned no adapter: WebGPU is disabled or blocked for this GPU or driver." };
  return { gpu, adapter };
}

/** Opens WebGPU on `adapter`; a lost device later shows a message. */
async function openWebGPU(gpu: GPU, adapter: GPUAdapter, options: OpenBackendOptions): Promise<Backend> {
  const backend = await openBackend("webgpu", { ...options, adapter, gpu });
  backend.gpu!.device.lost.then((info) => {
    if (info.reason !== "destroyed") showError(new Error(`the GPU device was lost (${info.message || info.reason}); reload the page`));
  });
  return backend;
}

/**
 * Opens the page's WebGPU backend (src/backend/), or shows why there is none. Installs the error
 * handlers. Without navigator.gpu, or when no adapter or device comes, it puts a message with the
 * way to enable WebGPU at the top of `root`, publishes the error and returns null.
 */
export async function requireWebGPU(root: HTMLElement, options: OpenBackendOptions = {}): Promise<Backend | null> {
  installErrorHandlers(root);
  const found = await findAdapter(options);
  if ("reason" in found) {
    root.prepend(webgpuMissingBox(found.reason));
    publishError(`WebGPU unavailable: ${found.reason}`);
    return null;
  }
  try {
    return await openWebGPU(found.gpu, found.adapter, options);
  } catch (e) {
    root.prepend(webgpuMissingBox(`The WebGPU device could not be created: ${errorMessage(e)}`));
    publishError(e);
    return null;
  }
}

/**
 * Opens the page's backend and installs the error handlers. `?backend=webgpu` is requireWebGPU
 * (a message and null without WebGPU); `?backend=wasm` opens the WebAssembly engine (worker
 * threads where the page is cross-origin isolated, else one thread). Without the parameter:
 * WebGPU where the browser gives a device (software adapters included, as before), else the
 * WebAssembly engine with a note at the top of `root` on how to turn WebGPU on. Null (with an
 * error box) only when no engine can be opened.
 */
export async function requireBackend(root: HTMLElement, options: OpenBackendOptions = {}): Promise<Backend | null> {
  installErrorHandlers(root);
  let choice: PageBackend | null;
  try {
    choice = choiceParam<PageBackend | "">("backend", "", PAGE_BACKENDS) || null;
  } catch (e) {
    showError(e, root);
    return null;
  }
  if (choice === "webgpu") return await requireWebGPU(root, options);
  let missing: string | null = null;
  if (choice === null) {
    const found = await findAdapter(options);
    if ("reason" in found) missing = found.reason;
    else {
      try {
        return await openWebGPU(found.gpu, found.adapter, options);
      } catch (e) {
        missing = `The WebGPU device could not be created: ${errorMessage(e)}.`;
      }
    }
  }
  try {
    const backend = await openBackend("wasm", options);
    if (missing !== null) root.prepend(webgpuFallbackNote(missing));
    return backend;
  } catch (e) {
    const why = `The WebAssembly engine could not be started either (${errorMessage(e)}).`;
    root.prepend(webgpuMissingBox(missing === null ? why : `${missing} ${why}`));
    publishError(missing === null ? e : `WebGPU unavailable: ${missing} ${why}`);
    return null;
  }
}

/**
 * One line naming what computes: the adapter, with "(software …)" on SwiftShader / lavapipe, or
 * the WebAssembly engine with its SIMD level and threads.
 */
export function describeAdapter(backend: Backend): string {
  if (backend.name === "wasm") return backend.describe().replace("(WebAssembly ", "(");
  return `${backend.gpu?.describe() ?? backend.describe()}${backend.isSoftware ? " (software WebGPU: slow but exact; a real GPU is much faster)" : ""}`;
}

/** The page's adapter line: "WebGPU adapter: …" or "Engine: WebAssembly CPU engine (relaxed SIMD, 2 threads)…". */
export function backendLine(backend: Backend): string {
  if (backend.gpu) return `WebGPU adapter: ${describeAdapter(backend)}`;
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  return `Engine: ${describeAdapter(backend)}${isolated ? "" : "; this page is not cross-origin isolated, so no worker threads"}.`;
}

/** What the page's texts call the backend: "WebGPU" or "the WebAssembly engine". */
export function backendLabel(backend: Backend): string {
  return backend.gpu ? "WebGPU" : backend.name === "wasm" ? "the WebAssembly engine" : "the CPU";
}

/** The adapter (WebGPU) or engine description the pages publish in window.__demo.numbers. */
export function backendAdapter(backend: Backend): string {
  return backend.gpu?.describe() ?? describeAdapter(backend);
}
