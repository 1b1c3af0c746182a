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

describe("flatness releases its GPU device on Ctrl-C", () => {
  it("SIGINT during a long command: a one-line message, exit 130, no orphaned Deno", async () => {
    const child = spawn(process.execPath, [join(root, "bin/flatness.mjs"), "reproduce", "--claims", "5,7"], { cwd: root });
    let stderr = "";
    const started = new Promise<void>((resolve) => {
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
        // Interrupt once the GPU is in use (the first claim's progress line).
        if (/\[claim|adapter/i.test(stderr)) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    await started;
    child.kill("SIGINT");
    const code = await exited;
    expect(stderr).toMatch(/flatness reproduce: interrupted \(SIGINT\); GPU device released/);
    expect(code).toBe(130);
  }, 120_000);
});
