/**
 * The one place where an engine is chosen. `openBackend("webgpu" | "cpu" | "auto")` returns a
 * Backend (types.ts) that owns its device; the command line, the demos, training, the metric suite
 * and reproduce take a Backend and never choose for themselves.
 *
 * "auto" picks WebGPU where the runtime has it and an adapter comes (Deno, browsers with WebGPU,
 * Node given a `gpu` object) and the float64 CPU engine elsewhere (plain Node, no driver).
 */
import { InputError, WebGPUUnavailableError } from "../errors.ts";
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
  if (choice === "auto") {
    if (!webgpuPresent(options)) return cpuBackend() as Backend;
    try {
      return await openBackend("webgpu", options);
    } catch (e) {
      // navigator.gpu without an adapter (no driver): the float64 engine still answers.
      if (e instanceof WebGPUUnavailableError) return cpuBackend() as Backend;
      throw e;
    }
  }
  const name = choice;
  if (name === "cpu") return cpuBackend() as Backend;
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
