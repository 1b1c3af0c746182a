/** The backend seam: open a backend ("webgpu", "wasm" or "cpu") and build everything on it. */
export type { Backend, BackendName, BatchLossOptions, ObjectiveOptions } from "./types.ts";
export { BACKEND_NAMES } from "./types.ts";
export { cpuBackend } from "./cpu.ts";
export { type BackendChoice, openBackend, type OpenBackendOptions, parseBackendChoice, probeAdapter, webgpuPresent, withBackend } from "./open.ts";
