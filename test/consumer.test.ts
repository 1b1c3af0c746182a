/**
 * The package as a user gets it: `npm pack`, installed into an empty project, imported by its name
 * ("flatness") from Node (the float64 engine) and from Deno (WebGPU) by examples/top-eigenvalue.mjs,
 * which is also the README's library example (checked word for word). The two runtimes must agree
 * on the loss and the top eigenvalues to f32 precision.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// @ts-ignore: a plain .mjs module (typed by JSDoc)
import { denoEnvironment } from "../bin/deno-env.mjs";
import { bundleLibrary } from "../build.mjs";
import { writeModel } from "../src/io/modelFile.ts";
import { writeNpy } from "../src/io/npy.ts";
import { initParameters, randomDataset } from "../src/init.ts";
import { mlpSpec, parameterLayout } from "../src/model.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
/** The project that installed the packed package (set by the first describe's beforeAll). */
let consumerProject = "";

interface ExampleOutput {
  backend: string;
  device: string;
  loss: number;
  topEigenvalues: number[];
}

describe("the packed package, imported by name", () => {
  let project: string;
  let packed: string[];

  beforeAll(async () => {
    project = consumerProject = mkdtempSync(join(tmpdir(), "flatness-consumer-"));
    const packDir = mkdtempSync(join(tmpdir(), "flatness-pack-"));
    // What `prepack` builds, but only dist/lib (the library and its declarations): the rest of dist/
    // holds the browser bundles other test files load while this one runs.
    await bundleLibrary();
    const json = execFileSync(npm, ["pack", "--json", "--ignore-scripts", "--pack-destination", packDir], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    const info = JSON.parse(json.slice(json.indexOf("["))) as { filename: string; files: { path: string }[] }[];
    packed = info[0].files.map((f) => f.path);
    const tarball = join(packDir, readdirSync(packDir).find((f) => f.endsWith(".tgz"))!);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    execFileSync(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], { cwd: project, stdio: ["ignore", "ignore", "inherit"] });
    // A model and data the user brings: a seeded [6, 16, 16, 3] ReLU net as safetensors, 64 samples as .npy.
    const spec = mlpSpec([6, 16, 16, 3]);
    const data = randomDataset(spec, 64, "ce", 5);
    const theta = Float64Array.from(Float32Array.from(initParameters(spec, 6)));
    const names = parameterLayout(spec).views.map((v) => v.name);
    writeFileSync(join(project, "net.safetensors"), writeModel({ model: { spec, theta }, format: "safetensors", tensorNames: names, metadata: {} }, theta));
    writeFileSync(join(project, "x.npy"), writeNpy(data.x, [data.n, data.features]));
    writeFileSync(join(project, "y.npy"), writeNpy(Int32Array.from(data.labels!), [data.n]));
    copyFileSync(join(root, "examples/top-eigenvalue.mjs"), join(project, "top-eigenvalue.mjs"));
  }, 300_000);

  it("ships the library, its declarations and the command line, without tests or demo sources", () => {
    for (const f of ["dist/lib/mod.js", "dist/lib/cli.js", "dist/lib/types/mod.d.ts", "src/mod.ts", "bin/flatness.mjs", "deno.json", "README.md", "CHANGELOG.md", "LICENSE"]) {
      expect(packed, f).toContain(f);
    }
    expect(packed.filter((f) => /^(test|demos|scripts)\//.test(f))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(project, "node_modules/flatness/package.json"), "utf8"));
    expect(Object.keys(manifest.dependencies).sort()).toEqual(["@webgpu/types", "deno", "onnx-proto"]);
  });

  it("the README shows the example this test runs, word for word", () => {
    const example = readFileSync(join(root, "examples/top-eigenvalue.mjs"), "utf8");
    const body = example.split("\n").filter((l) => !l.startsWith("//")).join("\n").trim();
    expect(readFileSync(join(root, "README.md"), "utf8")).toContain(body);
  });

  it("Node and Deno import it by name, each picks its fastest backend (auto: WebGPU on a hardware GPU, else WebAssembly), and they agree on the top eigenvalues", () => {
    const args = ["top-eigenvalue.mjs", "net.safetensors", "x.npy", "y.npy"];
    const node = spawnSync(process.execPath, args, { cwd: project, encoding: "utf8" });
    expect(node.status, node.stderr).toBe(0);
    const fromNode = JSON.parse(node.stdout.trim()) as ExampleOutput;
    const deno = join(project, "node_modules/deno/deno");
    const env = denoEnvironment();
    const run = spawnSync(deno, ["run", "-A", ...args], { cwd: project, encoding: "utf8", env });
    expect(run.status, run.stderr).toBe(0);
    const fromDeno = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as ExampleOutput;
    console.log(`consumer: node ${fromNode.backend} ${JSON.stringify(fromNode.topEigenvalues)}; deno ${fromDeno.backend} (${fromDeno.device}) ${JSON.stringify(fromDeno.topEigenvalues)}`);
    // Node has no WebGPU: the WebAssembly engine. Deno here has only a software adapter: WebAssembly too; on a GPU, WebGPU.
    expect(fromNode.backend).toBe("wasm");
    expect(["webgpu", "wasm"]).toContain(fromDeno.backend);
    expect(Math.abs(fromDeno.loss - fromNode.loss)).toBeLessThan(1e-5 * Math.abs(fromNode.loss));
    expect(fromNode.topEigenvalues).toHaveLength(2);
    fromNode.topEigenvalues.forEach((l, i) => expect(Math.abs(fromDeno.topEigenvalues[i] - l)).toBeLessThan(1e-4 * Math.abs(fromNode.topEigenvalues[0])));
  });

  it("a TypeScript user gets the declarations: the example type-checks against the installed package", () => {
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
      // No skipLibCheck and no "types": the package's declarations must check and find WebGPU's types themselves.
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, lib: ["ES2022", "DOM"] },
      files: ["check.ts"],
    }));
    writeFileSync(join(project, "check.ts"), [
      'import { type Backend, mlpSpec, openBackend, parameterLayout } from "flatness";',
      "const spec = mlpSpec([2, 4, 1]);",
      "const dim: number = parameterLayout(spec).dim;",
      'const backend: Promise<Backend> = openBackend("cpu");',
      "export { backend, dim };",
    ].join("\n"));
    const r = spawnSync(process.execPath, [tsc, "-p", project], { cwd: project, encoding: "utf8" });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});

describe("the installed command line", () => {
  it("runs from the installed package: the WebGPU demo passes its checks; measure --backend cpu (float64) gives the example's eigenvalues to f32 rounding", () => {
    const flatness = (args: string[]) => spawnSync(process.execPath, [join(consumerProject, "node_modules/flatness/bin/flatness.mjs"), ...args], { cwd: consumerProject, encoding: "utf8" });
    const demo = flatness(["demo", "--json"]);
    expect(demo.status, demo.stderr).toBe(0);
    expect((JSON.parse(demo.stdout) as { checks: { pass: boolean }[] }).checks.every((c) => c.pass)).toBe(true);
    const measure = flatness(["measure", "--model", "net.safetensors", "--data", "x.npy", "--labels", "y.npy", "--loss", "ce", "--metrics", "spectrum", "--top-k", "2", "--seed", "0", "--backend", "cpu", "--json"]);
    expect(measure.status, measure.stderr).toBe(0);
    const example = spawnSync(process.execPath, ["top-eigenvalue.mjs", "net.safetensors", "x.npy", "y.npy"], { cwd: consumerProject, encoding: "utf8" });
    const fromCli = JSON.parse(measure.stdout).topEigenvalues as number[];
    const fromExample = JSON.parse(example.stdout).topEigenvalues as number[];
    fromExample.forEach((l, i) => expect(Math.abs(fromCli[i] - l)).toBeLessThan(1e-4 * Math.abs(fromExample[0])));
  });
});

describe("the public entry for Deno and JSR (offline checks)", () => {
  const deno = join(root, "node_modules/deno/deno");
  const run = (args: string[]) => spawnSync(deno, args, { cwd: root, encoding: "utf8", env: { ...denoEnvironment(), NO_COLOR: "1" } });

  it("every exported symbol is documented and no public type refers to a private one (deno doc --lint src/mod.ts)", () => {
    const r = run(["doc", "--lint", "src/mod.ts"]);
    expect(r.status, (r.stdout + r.stderr).slice(0, 4000)).toBe(0);
  });

  it("deno.json publishes src/mod.ts without slow types (deno publish --dry-run)", () => {
    const r = run(["publish", "--dry-run", "--allow-dirty"]);
    expect(r.status, (r.stdout + r.stderr).slice(-4000)).toBe(0);
  });
});
