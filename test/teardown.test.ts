/**
 * Issue 10: what every Deno process of this package gets on the way in (Vulkan only on Linux, see
 * src/gpu/denoBackend.ts and docs/deno-exit-abort.md) and on the way out (every GPU context
 * released, also on Ctrl-C).
 */
import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { denoCommand, denoEnvironment } from "../bin/deno-env.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("the Deno environment (bin/deno-env.mjs)", () => {
  it("restricts WebGPU to Vulkan on Linux and keeps a backend the user chose", () => {
    const env = denoEnvironment({ PATH: "/usr/bin" });
    expect(env.DENO_WEBGPU_BACKEND).toBe(process.platform === "linux" ? "vulkan" : undefined);
    expect(env.DENO_NO_UPDATE_CHECK).toBe("1");
    expect(env.XDG_RUNTIME_DIR).toBeTruthy();
    expect(denoEnvironment({ DENO_WEBGPU_BACKEND: "gl" }).DENO_WEBGPU_BACKEND).toBe("gl");
  });

  it("starts the Deno binary itself, so signals and exit statuses reach it", () => {
    const [command, lead] = denoCommand()!;
    expect(command).toMatch(/deno(\.exe)?$/);
    expect(lead).toEqual([]);
  });
});

describe.runIf(process.platform === "linux")("Deno's WebGPU never loads libglvnd (the exit race of docs/deno-exit-abort.md)", () => {
  const [deno, lead] = denoCommand()!;
  const loadedGl = (backend: string | undefined) => {
    const env = denoEnvironment();
    if (backend === undefined) delete env.DENO_WEBGPU_BACKEND;
    else env.DENO_WEBGPU_BACKEND = backend;
    const r = spawnSync(deno, [...lead, "run", "-A", join(root, "test/deno/repro/loaded_gl.ts")], { cwd: root, env, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { backend: string | null; gl: string[] };
  };

  it("GpuContext.create chooses Vulkan by itself when nobody set DENO_WEBGPU_BACKEND: no libEGL/libGLdispatch", () => {
    expect(loadedGl(undefined)).toEqual({ backend: "vulkan", gl: [] });
  });

  it("negative control: with wgpu's GL backend allowed the check sees libglvnd loaded", () => {
    const r = loadedGl("vulkan,gl");
    expect(r.backend).toBe("vulkan,gl");
    expect(r.gl.some((p) => /libGLdispatch/.test(p))).toBe(true);
  });
});

describe("flatness stops on Ctrl-C", () => {
  /** Starts `flatness args`, sends SIGINT once stderr matches `ready`, and returns the exit code and stderr. */
  async function interrupt(args: string[], ready: RegExp): Promise<{ code: number | null; stderr: string; ms: number }> {
    const child = spawn(process.execPath, [join(root, "bin/flatness.mjs"), ...args], { cwd: root });
    let stderr = "";
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
        if (ready.test(stderr)) resolve();
      });
      void exited.then(() => resolve());
    });
    const t0 = performance.now();
    child.kill("SIGINT");
    const code = await exited;
    return { code, stderr, ms: performance.now() - t0 };
  }

  it("on WebGPU: the device is released, one line says so, exit 130", async () => {
    const r = await interrupt(["reproduce", "--claims", "5,7", "--backend", "webgpu"], /adapter/);
    expect(r.stderr).toMatch(/flatness reproduce: interrupted \(SIGINT\); GPU device released/);
    expect(r.code).toBe(130);
  }, 120_000);

  it("on the WebAssembly engine (worker threads, no device): stopped at once, exit 130", async () => {
    const r = await interrupt(["reproduce", "--claims", "4,17", "--backend", "wasm"], /adapter: WebAssembly/);
    expect(r.code).toBe(130);
    expect(r.ms).toBeLessThan(10_000);
    expect(r.stderr).not.toMatch(/claims pass/);
  }, 120_000);

  it("on the float64 engine (no device open, no handler): stopped at once, exit 130", async () => {
    const r = await interrupt(["reproduce", "--claims", "5,7", "--backend", "cpu"], /adapter: float64/);
    expect(r.code).toBe(130);
    expect(r.ms).toBeLessThan(10_000);
    expect(r.stderr).not.toMatch(/claims pass/);
  }, 120_000);
});
