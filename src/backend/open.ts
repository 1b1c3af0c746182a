/**
 * The one place where an engine is chosen. `openBackend("webgpu" | "cpu" | "auto")` returns a
 * Backend (types.ts) that owns its device; the command line, the demos, training, the metric suite
 * and reproduce take a Backend and never choose for themselves.
 *
 * "auto" picks the fastest engine available: WebGPU on a hardware adapter (Deno, browsers with
 * WebGPU, Node given a `gpu` object); the WebAssembly SIMD engine ("wasm") where the only adapter
 * is a software one (lavapipe, llvmpipe, SwiftShader, WARP, or one that says isFallbackAdapter),
 * where there is none, or where WebGPU is missing (plain Node); the float64 CPU engine only where
 * WebAssembly SIMD is missing too.
 */
import { InputError, WebGPUUnavailableError } from "../errors.ts";
import type { ContextOptions, GpuContext } from "../gpu/context.ts";
import { wasmSimdAvailable } from "../wasm/runtime.ts";
import { cpuBackend } from "./cpu.ts";
import { BACKEND_NAMES, type Backend, type BackendName } from "./types.ts";

/** A backend name, or "auto": WebGPU on a hardware adapter, else the wasm engine (else the float64 one). */
export type BackendChoice = BackendName | "auto";

/** Options of openBackend and withBackend: the GPU context options, or a context to reuse. */
export interface OpenBackendOptions extends ContextOptions {
  /** Use this GPU context instead of creating one; close() then leaves it open (its owner closes it). */
  context?: GpuContext;
  /** The wasm engine's threads (default: the hardware concurrency, at most 8; 1 where memory cannot be shared). */
  threads?: number;
}

/** Adapter names of WebGPU emulated on CPU cores. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software|warp/i;

/**
 * Asks for an adapter without opening a device: null when none comes, else the adapter and
 * whether it is a software one (isFallbackAdapter, or a known CPU rasterizer's name).
 */
export async function probeAdapter(options: OpenBackendOptions = {}): Promise<{ adapter: GPUAdapter; software: boolean } | null> {
  const gpu = options.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
  let adapter: GPUAdapter | null = options.adapter ?? null;
  if (!adapter && gpu) {
    try {
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
    } catch {
      adapter = null;
    }
  }
  if (!adapter) return null;
  const a = adapter as GPUAdapter & { isFallbackAdapter?: boolean; info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } };
  const info = a.info;
  const text = info ? [info.vendor, info.architecture, info.device, info.description].join(" ") : "";
  return { adapter, software: Boolean(a.isFallbackAdapter || info?.isFallbackAdapter) || SOFTWARE_ADAPTER.test(text) };
}

/** True where WebGPU can be asked for: navigator.gpu, or a `gpu` object passed in. */
export function webgpuPresent(options: OpenBackendOptions = {}): boolean {
  return Boolean(options.context || options.gpu || options.adapter || (globalThis.navigator as Navigator | undefined)?.gpu);
}

/** Opens a backend; WebGPUUnavailableError (from GpuContext.create) when "webgpu" cannot be had. */
export async function openBackend(choice: BackendChoice = "auto", options: OpenBackendOptions = {}): Promise<Backend> {
  if (choice === "auto") {
    if (options.context) return await openBackend("webgpu", options);
    if (webgpuPresent(options)) {
      const probe = await probeAdapter(options);
      if (probe && !probe.software) {
        try {
          return await openBackend("webgpu", { ...options, adapter: probe.adapter });
        } catch (e) {
          // An adapter that gives no device: the CPU engines still answer.
          if (!(e instanceof WebGPUUnavailableError)) throw e;
        }
      }
    }
    return wasmSimdAvailable() ? await openBackend("wasm", options) : (cpuBackend() as Backend);
  }
  const name = choice;
  if (name === "cpu") return cpuBackend() as Backend;
  if (name === "wasm") {
    // Loaded on demand, like the WebGPU engine.
    const { wasmBackend } = await import("./wasm.ts");
    return (await wasmBackend({ threads: options.threads })) as Backend;
  }
  if (name !== "webgpu") throw new InputError(`unknown backend '${String(choice)}' (choose ${[...BACKEND_NAMES, "auto"].join(", ")})`);
  // Loaded on demand: a bundle may leave it out where only the CPU engine is wanted.
  const { webgpuBackend } = await import("./webgpu.ts");
  if (options.context) return webgpuBackend(options.context, false) as Backend;
  const { GpuContext } = await import("../gpu/context.ts");
  return webgpuBackend(await GpuContext.create(options), true) as Backend;
}

/** Runs `work` on a backend opened for it and closes the backend after (also when `work` throws). */
export async function withBackend<T>(choice: BackendChoice, work: (backend: Backend) => Promise<T>, options: OpenBackendOptions = {}): Promise<T> {
  const backend = await openBackend(choice, options);
  let result: T;
  try {
    result = await work(backend);
  } catch (e) {
    // The work's own error is the one to report, not a failure to release after it.
    await backend.close().catch(() => {});
    throw e;
  }
  await backend.close();
  return result;
}

/**
 * The backend a command line asked for: `--backend webgpu|wasm|cpu|auto` (default `fallback`:
 * auto, the fastest available), with `--cpu` kept as a short form of `--backend cpu`.
 */
export function parseBackendChoice(backend: string | undefined, cpu: boolean | undefined, fallback: BackendChoice = "auto"): BackendChoice {
  if (cpu && backend !== undefined && backend !== "cpu") throw new InputError(`--cpu and --backend ${backend} disagree: give one`);
  if (cpu) return "cpu";
  if (backend === undefined) return fallback;
  if (backend === "auto" || (BACKEND_NAMES as readonly string[]).includes(backend)) return backend as BackendChoice;
  throw new InputError(`--backend must be one of ${[...BACKEND_NAMES, "auto"].join(", ")}, got '${backend}'`);
}
