/**
 * The `flatness` command line (runs under Deno: bin/flatness.mjs starts it with the Deno that
 * the npm `deno` package installs). Results go to stdout, progress to stderr; a FlatnessError
 * prints one clear line and exits 2.
 */
import { FlatnessError } from "../errors.ts";
import { GpuContext } from "../gpu/context.ts";
import { runAudit } from "./audit.ts";
import { runBenchCommand } from "./bench.ts";
import { runDemo } from "./demo.ts";
import { runHvp } from "./hvp.ts";
import { runLandscape } from "./landscape.ts";
import { runMeasure } from "./measure.ts";
import { runReproduce } from "./reproduce.ts";
import { runTrain } from "./train.ts";
import { runTransform } from "./transform.ts";

const HELP = `flatness: Hessians, flatness and sharpness of ReLU nets on WebGPU (Dinh et al., ICML 2017)

Usage: flatness <command> [options]      (flatness <command> --help for each)

Commands:
  reproduce  every claim of the paper checked on built-in problems, with a report (the main job)
  demo     built-in check: loss, gradient norm and an exact HVP on a small net, each checked
           against the float64 reference, finite differences and the T_alpha identity (default)
  hvp      Hessian-vector product and gradient of a model file over a dataset
  measure  flatness and sharpness metrics: spectrum, trace, density, epsilon-sharpness, volume,
           adaptive sharpness and the reparametrization-invariant measures
  landscape  1-D and 2-D loss slices along random, filter-normalized, eigenvector or T_alpha
           directions, many points per GPU dispatch; CSV/JSON and an SVG plot
  train    train a ReLU net on WebGPU (SGD with momentum, Adam) on a data file or a built-in dataset
  transform  function-preserving transforms and the constructions of the proofs: alpha, neuron,
           sharpen, sharpen-count, flatten, eps-construction (a model file in, the same format out)
  audit    each metric before and after T_alpha, neuron-wise rescaling, weight normalization,
           a radial map and input whitening, beside the function check
  bench    timings of forward, gradient, HVP and block HVP, beside @jax-js/jax
`;

export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => console.log(s);
  const err = (s: string) => console.error(s);
  const [command = "demo", ...rest] = argv;
  try {
    switch (command) {
      case "demo": {
        if (rest.includes("--help") || rest.includes("-h")) {
          out("flatness demo [--json]: the built-in engine check: loss, gradient and an exact HVP of a small seeded net,\n" +
            "each checked against the float64 reference, central differences and the T_alpha identity.\n\nExample:\n  flatness demo --json");
          return 0;
        }
        const result = await runDemo(rest.includes("--json") ? err : out);
        if (rest.includes("--json")) out(JSON.stringify(result));
        return result.checks.every((c) => c.pass) ? 0 : 1;
      }
      case "reproduce":
        return await runReproduce(rest, out, err);
      case "hvp":
        return await runHvp(rest, out, err);
      case "measure":
        return await runMeasure(rest, out, err);
      case "landscape":
        return await runLandscape(rest, out, err);
      case "train":
        return await runTrain(rest, out, err);
      case "transform":
        return await runTransform(rest, out, err);
      case "audit":
        return await runAudit(rest, out, err);
      case "bench":
        return await runBenchCommand(rest, out, err);
      case "help":
      case "--help":
      case "-h":
        out(HELP);
        return 0;
      default:
        err(`flatness: unknown command '${command}'\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof FlatnessError) {
      err(`flatness ${command}: ${e.name}: ${e.message}`);
      return 2;
    }
    if (e instanceof TypeError && /Unknown option|Option '.*' argument|Unexpected argument/.test(e.message)) {
      err(`flatness ${command}: ${e.message.replace(/\s*\n\s*/g, " ")} (see flatness ${command} --help)`);
      return 2;
    }
    throw e;
  }
}

/**
 * Runs a command and leaves nothing behind: every GPU context still alive is closed on the way out
 * (after success, a typed error or an unexpected one). While a GPU device is open, Ctrl-C or
 * SIGTERM destroys it before exiting with 130 or 143, the shell's codes for those signals; with no
 * device open the signals keep their default effect, so float64 work, which never yields to the
 * event loop where a listener would run, is still stopped at once.
 */
async function runAndRelease(argv: string[]): Promise<number> {
  const signals: [Deno.Signal, number][] = Deno.build.os === "windows" ? [["SIGINT", 130]] : [["SIGINT", 130], ["SIGTERM", 143]];
  const handlers = signals.map(([signal, code]) => [signal, () => {
    GpuContext.destroyAll();
    console.error(`flatness ${argv[0] ?? "demo"}: interrupted (${signal}); GPU device released`);
    Deno.exit(code);
  }] as const);
  let listening = false;
  const listen = (on: boolean) => {
    if (on === listening) return;
    listening = on;
    for (const [signal, handler] of handlers) on ? Deno.addSignalListener(signal, handler) : Deno.removeSignalListener(signal, handler);
  };
  const unwatch = GpuContext.watchLive((live) => listen(live > 0));
  try {
    return await main(argv);
  } finally {
    await GpuContext.closeAll();
    unwatch();
    listen(false);
  }
}

if (import.meta.main) {
  Deno.exit(await runAndRelease(Deno.args));
}
