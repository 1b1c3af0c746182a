/// <reference lib="dom" />
/**
 * Page 2, the loss landscape: 1-D and 2-D slices L(theta + a d1 + b d2) of a seeded teacher-student
 * net along random, filter-normalized, top-eigenvector and T_alpha directions, computed by
 * computeLandscape with the batched WebGPU evaluator (GpuBatchLoss: many parameter vectors per
 * data pass), shown as a line plot (1-D) or as a 3-D surface (WebGPU render pipeline, orbit
 * camera) beside a contour map (2-D). The numbers are those of `flatness landscape` on the same
 * files (downloadable here) and settings. On the WebAssembly engine (?backend=wasm, or where
 * WebGPU is missing) the losses come one vector at a time and the 3-D surface, which needs a
 * WebGPU render pipeline, gives way to a note; the 1-D plot and the contour map are drawn as ever.
 */
import type { Backend } from "../../src/backend/mod.ts";
import type { Objective } from "../../src/objective.ts";
import { DIRECTION_KINDS, type DirectionKind } from "../../src/landscape/directions.ts";
import type { BatchLoss } from "../../src/landscape/batchLoss.ts";
import { computeLandscape, type LandscapeResult } from "../../src/landscape/landscape.ts";
import { byId, el } from "../shared/dom.ts";
import { isAbortError, showError } from "../shared/errors.ts";
import { formatNumber } from "../shared/format.ts";
import { choiceParam, numberParam } from "../shared/params.ts";
import { linePlot, type LinePlot, type PlotSeries } from "../shared/plots.ts";
import { markBusy, publish } from "../shared/record.ts";
import { runTask, yieldToBrowser } from "../shared/tasks.ts";
import { backendAdapter, backendLabel, backendLine, requireBackend } from "../shared/webgpu.ts";
import { ChunkedBatchLoss, ProgressObjective } from "./batch.ts";
import { colorBar, ContourView } from "./contour.ts";
import { cliCommand, DEFAULT_SETTINGS, landscapeOptions, landscapeProblem, type LandscapeSettings, problemFiles } from "./problem.ts";
import { heightScale, SurfaceView } from "./surface.ts";

const problem = landscapeProblem();

const DIRECTION_NAMES: Record<DirectionKind, string> = {
  filter: "filter-normalized random (Li et al. 2018)",
  random: "random Gaussian",
  eigen: "top Hessian eigenvectors (Lanczos)",
  alpha: "T_α orbit tangent (Dinh et al., Definition 5)",
};

function axisLabel(r: LandscapeResult, i: number): string {
  const d = r.directionInfo[i];
  const name = i === 0 ? "a" : "b";
  switch (d.kind) {
    case "eigen":
      return `${name}: eigenvector ${i + 1} (λ = ${formatNumber(d.eigenvalue!)})`;
    case "alpha":
      return `${name}: T_α tangent (layer ${r.orbit!.up} up, ${r.orbit!.down} down)`;
    case "filter":
      return `${name}: filter-normalized direction (seed ${r.seed + i})`;
    default:
      return `${name}: random direction (seed ${r.seed + i})`;
  }
}

function readSettings(): LandscapeSettings {
  const value = (id: string) => byId<HTMLInputElement | HTMLSelectElement>(id).value;
  const num = (id: string) => Number(value(id));
  const s: LandscapeSettings = {
    directions: value("directions") as DirectionKind,
    dims: num("dims") === 1 ? 1 : 2,
    from: num("from"),
    to: num("to"),
    steps: Math.round(num("steps")),
    seed: Math.round(num("seed")),
    bias: value("bias") === "include" ? "include" : "ignore",
  };
  if (!(Number.isFinite(s.from) && Number.isFinite(s.to) && s.to > s.from)) throw new RangeError(`the range must go from a smaller to a larger number, got ${value("from")} to ${value("to")}`);
  const maxSteps = s.dims === 2 ? 81 : 401;
  if (!(s.steps >= 2 && s.steps <= maxSteps)) throw new RangeError(`steps must be an integer from 2 to ${maxSteps} for a ${s.dims}-D slice, got ${value("steps")}`);
  if (!(s.seed >= 0)) throw new RangeError(`the seed must be a non-negative integer, got ${value("seed")}`);
  return s;
}

function writeSettings(s: LandscapeSettings): void {
  const set = (id: string, v: string | number) => {
    byId<HTMLInputElement | HTMLSelectElement>(id).value = String(v);
  };
  set("directions", s.directions);
  set("dims", s.dims);
  set("from", s.from);
  set("to", s.to);
  set("steps", s.steps);
  set("seed", s.seed);
  set("bias", s.bias);
}

function initialSettings(): LandscapeSettings {
  const dims = numberParam("dims", DEFAULT_SETTINGS.dims, { min: 1, max: 2, integer: true }) as 1 | 2;
  return {
    directions: choiceParam("directions", DEFAULT_SETTINGS.directions, DIRECTION_KINDS),
    dims,
    from: numberParam("from", DEFAULT_SETTINGS.from),
    to: numberParam("to", DEFAULT_SETTINGS.to),
    steps: numberParam("steps", dims === 1 ? 41 : DEFAULT_SETTINGS.steps, { min: 2, max: 401, integer: true }),
    seed: numberParam("seed", DEFAULT_SETTINGS.seed, { min: 0, integer: true }),
    bias: choiceParam("bias", DEFAULT_SETTINGS.bias, ["ignore", "include"] as const),
  };
}

function downloadLinks(host: HTMLElement): void {
  const links = problemFiles(problem).map(({ name, bytes }) => {
    const type = name.endsWith(".json") ? "application/json" : "application/octet-stream";
    const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
    return el("a", { href: url, download: name, class: "download" }, name);
  });
  host.replaceChildren("Download the problem: ", ...links.flatMap((a, i) => (i ? [", ", a] : [a])));
}

class LandscapePage {
  private evaluator: BatchLoss | null = null;
  private objective: Objective<unknown> | null = null;
  private surface: SurfaceView | null = null;
  private contour: ContourView | null = null;
  private line: LinePlot | null = null;
  private last: Record<string, unknown> | null = null;
  private running = false;

  constructor(private readonly backend: Backend) {}

  private async gpuEvaluator(): Promise<BatchLoss> {
    this.evaluator ??= await this.backend.batchLoss(problem.spec, problem.data, problem.loss);
    return this.evaluator;
  }

  private async gpuObjective(): Promise<Objective<unknown>> {
    this.objective ??= await this.backend.objective(problem.spec, problem.data, problem.loss);
    return this.objective;
  }

  async compute(): Promise<void> {
    if (this.running) return;
    let settings: LandscapeSettings;
    try {
      settings = readSettings();
    } catch (e) {
      showError(e);
      return;
    }
    this.running = true;
    markBusy();
    const button = byId<HTMLButtonElement>("compute");
    button.disabled = true;
    byId("cli").textContent = cliCommand(settings);
    const points = settings.steps ** settings.dims;
    try {
      const result = await runTask(byId("tasks"), `${settings.dims}-D slice, ${points} grid points`, async (task) => {
        task.progress(0, `preparing the evaluator on ${backendLabel(this.backend)}`);
        const evaluator = new ChunkedBatchLoss(await this.gpuEvaluator(), task, yieldToBrowser);
        const objective = settings.directions === "eigen" ? new ProgressObjective(await this.gpuObjective(), task) : undefined;
        return await computeLandscape(evaluator, problem.spec, problem.theta, landscapeOptions(settings), objective);
      });
      if (result) {
        await this.show(result, settings);
      } else {
        // Cancelled: the previous slice stays; tests see the page idle again.
        publish({ ...(this.last ?? {}), cancelled: true });
      }
    } catch (e) {
      if (!isAbortError(e)) showError(e);
    } finally {
      button.disabled = false;
      this.running = false;
    }
  }

  private async show(r: LandscapeResult, s: LandscapeSettings): Promise<void> {
    const f = formatNumber;
    const info = r.directionInfo;
    const rows: [string, string][] = [
      ["L(θ)", f(r.center, 6)],
      ["minimum on the grid", `${f(r.min.loss, 6)} at a = ${f(r.min.a)}${r.b ? `, b = ${f(r.min.b)}` : ""}`],
      ["maximum on the grid", `${f(r.max.loss, 6)} at a = ${f(r.max.a)}${r.b ? `, b = ${f(r.max.b)}` : ""}`],
      ["directions", `${DIRECTION_NAMES[r.directions]}; ‖d‖ = ${info.map((d) => f(d.norm)).join(", ")}; ‖θ‖ = ${f(r.thetaNorm)}`],
    ];
    if (r.directions === "eigen") {
      rows.push(["eigenvalues", info.map((d) => `λ = ${f(d.eigenvalue!, 6)} (residual ${f(d.residual!)}${d.converged ? "" : ", not converged"})`).join("; ") + `; ${r.hvps} HVPs`]);
    }
    if (r.orbit) {
      rows.push(["T_α orbit", r.orbit.orbitMaxDeviation !== null
        ? `along the orbit the loss stays within ${f(r.orbit.orbitMaxDeviation)} of L(θ); along the straight tangent line it moves by up to ${f(r.orbit.lineMaxDeviation)}`
        : `along the tangent line (b = 0) the loss moves by up to ${f(r.orbit.lineMaxDeviation)}`]);
    }
    rows.push(["evaluation", `${r.points} parameter vectors in ${f(Math.round(r.wallMs))} ms (${f((r.points / Math.max(r.wallMs, 1e-9)) * 1000, 3)} per second), ${this.evaluator!.maxBatch ?? 1} per data pass at most`]);
    byId("summary").replaceChildren(...rows.map(([k, v]) => el("tr", {}, [el("th", { scope: "row" }, k), el("td", {}, v)])));

    const oneD = r.dims === 1;
    byId("view-1d").hidden = !oneD;
    byId<HTMLButtonElement>("reset-view").disabled = oneD || !this.backend.gpu;
    byId("view-2d").hidden = oneD;
    let surfacePixels: { covered: number; colours: number } | null = null;
    if (oneD) {
      const series: PlotSeries[] = [{ name: r.orbitValues ? "L(θ + a·d), the straight tangent line" : "L(θ + a·d)", x: r.a, y: r.values, style: "both" }];
      if (r.orbitValues) series.push({ name: "L(T_α(a) θ), along the orbit", x: r.a, y: r.orbitValues, style: "both", dash: true });
      this.line?.destroy();
      this.line = linePlot(byId("plot-1d"), { title: `${problem.loss} loss along ${DIRECTION_NAMES[r.directions]}`, xLabel: axisLabel(r, 0), yLabel: "loss", series, height: 340 });
      this.valuesTable1d(r);
    } else {
      const b = r.b!;
      const labels = { title: `${problem.loss} loss, ${DIRECTION_NAMES[r.directions]}`, x: axisLabel(r, 0), y: axisLabel(r, 1) };
      // The 3-D surface is a WebGPU render pipeline; without WebGPU the contour map stands alone.
      const gpu = this.backend.gpu;
      const scale = gpu ? (this.surface ??= new SurfaceView(gpu.device, byId<HTMLCanvasElement>("surface"), byId("surface-labels"))).setSurface(r.a, b, r.values) : heightScale(r.values);
      if (this.surface) {
        const a0 = r.a[0], a1 = r.a[r.a.length - 1], b0 = b[0], b1 = b[b.length - 1];
        const centre = r.values[b.indexOf(0) * r.a.length + r.a.indexOf(0)];
        const x0 = -1 + (2 * (0 - a0)) / (a1 - a0);
        const y0 = -1 + (2 * (0 - b0)) / (b1 - b0);
        this.surface.setLabels([
          { text: `a ∈ [${f(a0)}, ${f(a1)}]`, at: [0, -1.2, 0] },
          { text: `b ∈ [${f(b0)}, ${f(b1)}]`, at: [1.2, 0, 0] },
          { text: `L = ${f(scale.log ? 10 ** scale.hi : scale.hi, 3)}`, at: [-1, -1, 1.06] },
          ...(Number.isFinite(centre) ? [{ text: "θ", at: [x0, y0, scale.unit(centre) + 0.1] as [number, number, number], className: "theta" }] : []),
        ]);
        surfacePixels = await this.surface.pixelStats();
      }
      this.contour ??= new ContourView(byId("contour"));
      this.contour.set(r.a, b, r.values, scale, labels);
      colorBar(byId("colorbar"), scale, `${problem.loss} loss`);
      if (gpu) byId("surface-axes").textContent = `${labels.x}; ${labels.y}; height and colour: the loss${scale.log ? " (log scale)" : ""}. The red post marks θ.`;
      this.valuesTable2d(r);
    }
    const numbers = {
      settings: s,
      parameters: r.parameters,
      samples: problem.data.n,
      dims: r.dims,
      directions: r.directions,
      a: r.a,
      b: r.b,
      values: r.values,
      orbitValues: r.orbitValues ?? null,
      center: r.center,
      min: r.min,
      max: r.max,
      directionInfo: r.directionInfo,
      orbit: r.orbit ?? null,
      points: r.points,
      wallMs: r.wallMs,
      surfacePixels,
      adapter: backendAdapter(this.backend),
      backend: this.backend.name,
    };
    this.last = numbers;
    publish(numbers);
  }

  resetCamera(): void {
    this.surface?.resetCamera();
  }

  private valuesTable1d(r: LandscapeResult): void {
    const head = ["a", "L(θ + a·d)", ...(r.orbitValues ? ["L(T_α(a) θ)"] : [])];
    const body = r.a.map((a, i) =>
      el("tr", {}, [el("th", { scope: "row" }, formatNumber(a)), el("td", {}, formatNumber(r.values[i], 6)), ...(r.orbitValues ? [el("td", {}, formatNumber(r.orbitValues[i], 6))] : [])])
    );
    byId("values").replaceChildren(el("table", { class: "metrics values", id: "values-table" }, [el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, body)]));
  }

  private valuesTable2d(r: LandscapeResult): void {
    const b = r.b!;
    const head = el("tr", {}, [el("th", {}, "b \\ a"), ...r.a.map((a) => el("th", {}, formatNumber(a)))]);
    const body = b.map((bj, j) =>
      el("tr", {}, [el("th", { scope: "row" }, formatNumber(bj)), ...r.a.map((_, i) => el("td", {}, formatNumber(r.values[j * r.a.length + i], 6)))])
    );
    byId("values").replaceChildren(el("table", { class: "metrics values", id: "values-table" }, [el("thead", {}, head), el("tbody", {}, body)]));
  }
}

async function main() {
  const root = byId("main");
  byId("problem").textContent = problem.description;
  downloadLinks(byId("downloads"));
  const settings = initialSettings();
  writeSettings(settings);
  byId("cli").textContent = cliCommand(settings);
  const ctx = await requireBackend(root);
  if (!ctx) {
    byId<HTMLButtonElement>("compute").disabled = true;
    return;
  }
  byId("adapter").textContent = backendLine(ctx);
  if (!ctx.gpu) {
    // Said once, in place of the 3-D view: the render pipeline needs WebGPU.
    byId("surface-panel").replaceChildren(
      el("h2", {}, "3-D surface"),
      el("p", { class: "hint", id: "surface-missing" }, [
        "The 3-D surface is drawn by a WebGPU render pipeline, and this page runs on the WebAssembly engine. ",
        "The contour map shows the same values; open the page with WebGPU (and without ?backend=wasm) for the 3-D view.",
      ]),
    );
  }
  const page = new LandscapePage(ctx);
  byId("compute").addEventListener("click", () => void page.compute());
  byId("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    void page.compute();
  });
  byId("reset-view").addEventListener("click", () => page.resetCamera());
  byId("dims").addEventListener("change", () => {
    const dims = Number(byId<HTMLSelectElement>("dims").value);
    byId<HTMLInputElement>("steps").value = String(dims === 1 ? 41 : 25);
  });
  await page.compute();
}

main().catch((e) => showError(e));
