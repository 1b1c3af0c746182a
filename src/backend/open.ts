/**
 * The one place where an engine is chosen. `openBackend("webgpu" | "cpu" | "auto")` returns a
 * Backend (types.ts) that owns its device; the command line, the demos, training, the metric suite
 * and reproduce take a Backend and never choose for themselves.
 *
 * "auto" picks WebGPU where the runtime has it (Deno, browsers with WebGPU, Node given a `gpu`
 * object) and the float64 CPU engine elsewhere (plain Node).
 */
import { InputError } from "../errors.ts";
import type { ContextOptions, GpuContext } from "../gpu/context.ts";
import { cpuBackend } from "./cpu.ts";
import { BACKEND_NAMES, type Backend, type BackendName } from "./types.ts";

/** A backend name, or "auto": WebGPU where present, else the float64 CPU engine. */
export type BackendChoice = BackendName | "auto";

/** Options of openBackend and withBackend: the GPU context options, or a context to reuse. */
export interface OpenBackendOptions extends ContextOptions {
  /** Use this GPU context instead of creating one; close() then leaves it open (its owner closes it). */
  context?: GpuContext;
}

/** True where WebGPU can be asked for: navigator.gpu, or a `gpu` object passed in. */
export function webgpuPresent(options: OpenBackendOptions = {}): boolean {
  return Boolean(options.context || options.gpu || options.adapter || (globalThis.navigator as Navigator | undefined)?.gpu);
}

/** Opens a backend; WebGPUUnavailableError (from GpuContext.create) when "webgpu" cannot be had. */
export async function openBackend(choice: BackendChoice = "auto", options: OpenBackendOptions = {}): Promise<Backend> {
  const name = choice === "auto" ? (webgpuPresent(options) ? "webgpu" : "cpu") : choice;
  if (name === "cpu") return cpuBackend() as Backend;
  if (name !== "webgpu") throw new InputError(`unknown backend '${String(choice)}' (choose ${[...BACKEND_NAMES, "auto"].join(", ")})`);
  // Loaded on demand: plain Node and CPU-only callers never load the WGSL engine.
  const { webgpuBackend } = await import("./webgpu.ts");
  if (options.context) return webgpuBackend(options.context, false) as Backend;
  const { GpuContext } = await import("../gpu/context.ts");
  return webgpuBackend(await GpuContext.create(options), true) as Backend;
}

/** Runs `work` on a backend opened for it and closes the backend after (also when `work` throws). */
export async function withBackend<T>(choice: BackendChoice, work: (backend: Backend) => Promise<T>, options: OpenBackendOptions = {}): Promise<T> {
  const backend = await openBackend(choice, options);
  try {
    return await work(backend);
  } finally {
    await backend.close();
  }
}

/**
 * The backend a command line asked for: `--backend webgpu|cpu|auto` (default `fallback`), with
 * `--cpu` kept as a short form of `--backend cpu`.
 */
export function parseBackendChoice(backend: string | undefined, cpu: boolean | undefined, fallback: BackendChoice = "webgpu"): BackendChoice {
  if (cpu && backend !== undefined && backend !== "cpu") throw new InputError(`--cpu and --backend ${backend} disagree: give one`);
  if (cpu) return "cpu";
  if (backend === undefined) return fallback;
  if (backend === "auto" || (BACKEND_NAMES as readonly string[]).includes(backend)) return backend as BackendChoice;
  throw new InputError(`--backend must be one of ${[...BACKEND_NAMES, "auto"].join(", ")}, got '${backend}'`);
}
