/**
 * Minimal reproduction of the heap corruption at Deno's exit (issue 10; see
 * docs/deno-exit-abort.md): threads holding libglvnd (libGLdispatch) state end while exit() runs
 * libGLdispatch's destructor on the main thread.
 *
 * The main thread requests an adapter first (so its instance keeps the driver libraries loaded and
 * a worker's teardown unloads nothing); then W workers, one at a time, each request an adapter
 * (wgpu's GL backend gives their threads libglvnd state); then all are told to close and the
 * process exits at once, while their threads are ending.
 *
 *   deno run -A test/deno/repro/exit_race.ts          wgpu's default backends (Vulkan and GL)
 *   deno run -A test/deno/repro/exit_race.ts --fix    the project's fix: Vulkan only (src/gpu/denoBackend.ts)
 *
 * node scripts/exit-race-rate.mjs runs both many times and prints the abort rates. Not named
 * *_test.ts, so `deno test test/deno/` leaves it alone.
 */
import { preferVulkanOnLinux } from "../../../src/gpu/denoBackend.ts";

const W = Number(Deno.env.get("EXIT_RACE_WORKERS") ?? 12);
if (Deno.args.includes("--fix")) preferVulkanOnLinux();
if (!(await navigator.gpu.requestAdapter())) throw new Error("no WebGPU adapter");
const url = new URL("./exit_race_worker.ts", import.meta.url).href;
const workers: Worker[] = [];
for (let i = 0; i < W; i++) {
  const w = new Worker(url, { type: "module" });
  await new Promise((resolve, reject) => {
    w.onmessage = resolve;
    w.onerror = reject;
  });
  workers.push(w);
}
for (const w of workers) w.postMessage("close");
Deno.exit(0);
