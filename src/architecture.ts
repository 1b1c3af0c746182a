/**
 * Architectures as a researcher writes them: a sequence of PyTorch-like modules (Conv2d, ReLU,
 * MaxPool2d, Flatten, Linear, ...) on an input of a given shape, turned into a ModelSpec (the
 * parametric layers with their activation and pooling, src/model.ts) and back.
 *
 * Rules, as the engine evaluates nets (Dinh et al. 2017 Definition 3 extended to convolutions):
 * every parametric layer but the last is followed by the one activation (ReLU or leaky ReLU, the
 * same everywhere), and the last by none; a hidden convolution may be followed by one pooling
 * (after its activation; max pooling before the activation is the same function for a monotone
 * activation and is moved after it); Flatten stands where convolutions meet linear layers (as in
 * PyTorch) or first (image input to an MLP).
 *
 * Text form (`flatness train --arch`), modules separated by commas, arguments in parentheses:
 *   conv(8, 3, stride=1, padding=1, dilation=1, groups=1, bias=true)   out channels, kernel
 *   maxpool(2, stride=2, padding=0)   avgpool(2, stride=2, padding=0, count_include_pad=true)
 *   relu   leaky_relu(0.01)   flatten   linear(10, bias=true)
 * e.g. "conv(8,3,padding=1),relu,maxpool(2),conv(16,3),relu,maxpool(2),flatten,linear(10)".
 * Kernel, stride, padding and dilation take one number or "HxW" (e.g. 3x5).
 */
import { InputError } from "./errors.ts";
import {
  type Activation,
  type Conv2dLayerSpec,
  isConv,
  type LayerSpec,
  layerOutputShape,
  type ModelSpec,
  type Pair,
  type Pool2dSpec,
  validateSpec,
} from "./model.ts";

/** One module of a sequential architecture (PyTorch's names and defaults). */
export type ModuleSpec =
  | { type: "linear"; outFeatures: number; bias?: boolean }
  | {
    type: "conv2d";
    outChannels: number;
    kernel: number | Pair;
    stride?: number | Pair;
    padding?: number | Pair;
    dilation?: number | Pair;
    groups?: number;
    bias?: boolean;
  }
  | { type: "maxpool2d" | "avgpool2d"; kernel: number | Pair; stride?: number | Pair; padding?: number | Pair; countIncludePad?: boolean }
  | { type: "flatten" }
  | { type: "relu" }
  | { type: "leaky_relu"; slope?: number };

/** An architecture: the per-sample input shape ([d], or [C, H, W] for images) and its modules. */
export interface Architecture {
  /** Per-sample input shape: [features] or [channels, height, width]. */
  input: number[];
  /** The modules, input first. */
  modules: ModuleSpec[];
}

function pair(v: number | Pair | undefined, fallback: Pair, what: string): Pair {
  if (v === undefined) return fallback;
  const p: Pair = typeof v === "number" ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x))) {
    throw new InputError(`${what} must be an integer or a pair of integers, got ${JSON.stringify(v)}`);
  }
  return [p[0], p[1]];
}

/** The keys each module type takes (besides "type"); any other key is refused, never ignored. */
const MODULE_KEYS: Record<ModuleSpec["type"], { required: string[]; optional: string[] }> = {
  linear: { required: ["outFeatures"], optional: ["bias"] },
  conv2d: { required: ["outChannels", "kernel"], optional: ["stride", "padding", "dilation", "groups", "bias"] },
  maxpool2d: { required: ["kernel"], optional: ["stride", "padding"] },
  avgpool2d: { required: ["kernel"], optional: ["stride", "padding", "countIncludePad"] },
  flatten: { required: [], optional: [] },
  relu: { required: [], optional: [] },
  leaky_relu: { required: [], optional: ["slope"] },
};

/**
 * Refuses a module with an unknown type, a missing required key, an unknown key (PyTorch's
 * "kernel_size" or "ceil_mode" would otherwise change the net silently) or a key of the wrong
 * type; `what` names it.
 */
function checkModule(m: ModuleSpec, what: string): void {
  if (typeof m !== "object" || m === null) throw new InputError(`${what}: a module must be an object with a "type", got ${JSON.stringify(m)}`);
  const keys = MODULE_KEYS[m.type as ModuleSpec["type"]];
  if (!keys) throw new InputError(`${what}: unknown module type ${JSON.stringify(m.type)} (use ${Object.keys(MODULE_KEYS).join(", ")})`);
  const record = m as unknown as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== "type" && record[key] !== undefined && !keys.required.includes(key) && !keys.optional.includes(key)) {
      throw new InputError(`${what}: unknown key "${key}" (${m.type} takes ${[...keys.required, ...keys.optional].join(", ") || "no keys"})`);
    }
  }
  for (const key of keys.required) {
    if (record[key] === undefined) throw new InputError(`${what}: "${key}" is required`);
  }
  for (const key of ["bias", "countIncludePad"]) {
    if (record[key] !== undefined && typeof record[key] !== "boolean") throw new InputError(`${what}: "${key}" must be true or false, got ${JSON.stringify(record[key])}`);
  }
  for (const key of ["outFeatures", "outChannels", "groups", "slope"]) {
    if (record[key] !== undefined && (typeof record[key] !== "number" || !Number.isFinite(record[key]))) {
      throw new InputError(`${what}: "${key}" must be a number, got ${JSON.stringify(record[key])}`);
    }
  }
}

function activationOf(m: ModuleSpec): Activation | null {
  if (m.type === "relu") return { kind: "relu" };
  if (m.type === "leaky_relu") return { kind: "leaky_relu", slope: m.slope ?? 0.01 };
  return null;
}

function sameActivation(a: Activation, b: Activation): boolean {
  return a.kind === b.kind && (a.kind !== "leaky_relu" || a.slope === (b as { slope: number }).slope);
}

/**
 * The ModelSpec of a sequential architecture; throws InputError naming the module (by its index)
 * that breaks the rules above.
 */
export function specFromArchitecture(arch: Architecture, options: { activation?: Activation } = {}): ModelSpec {
  const { input, modules } = arch;
  if (!Array.isArray(input) || !(input.length === 1 || input.length === 3) || !input.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new InputError(`the input shape must be [features] or [channels, height, width] of positive integers, got ${JSON.stringify(input)}`);
  }
  let shape = [...input];
  const layers: LayerSpec[] = [];
  let activation: Activation | null = null;
  // What may come next: after a parametric layer, its activation (or the end); after the activation, a pooling.
  let state = "start" as "start" | "layer" | "activated" | "pooled";
  const where = (i: number, m: ModuleSpec) => `module ${i} (${m.type})`;
  if (!Array.isArray(modules)) throw new InputError(`the architecture's modules must be a list, got ${JSON.stringify(modules)}`);
  // A leading Flatten of an image input (PyTorch's Sequential(Flatten, Linear, ...)): kept so the tensor names match.
  let inputShape: [number, number, number] | undefined;
  // A max pooling met before its activation and moved after it: only a monotone activation allows that.
  let movedPool = -1;
  modules.forEach((m, i) => {
    checkModule(m, `module ${i}`);
    const act = activationOf(m);
    if (act) {
      if (state !== "layer") throw new InputError(`${where(i, m)}: an activation must follow a linear or conv2d layer`);
      if (activation && !sameActivation(activation, act)) throw new InputError(`${where(i, m)}: every hidden layer must use the same activation`);
      activation = act;
      state = "activated";
      return;
    }
    if (m.type === "flatten") {
      if (shape.length === 3) {
        if (layers.length === 0) inputShape = [shape[0], shape[1], shape[2]];
        shape = [shape[0] * shape[1] * shape[2]];
      }
      return;
    }
    if (m.type === "maxpool2d" || m.type === "avgpool2d") {
      const last = layers[layers.length - 1];
      if (!last || !isConv(last) || shape.length !== 3) throw new InputError(`${where(i, m)}: pooling must follow a conv2d layer`);
      if (last.pool) throw new InputError(`${where(i, m)}: one pooling per layer is supported`);
      if (state === "layer" && m.type === "avgpool2d") {
        throw new InputError(`${where(i, m)}: average pooling before the activation is not supported (put it after the activation)`);
      }
      if (state !== "layer" && state !== "activated") throw new InputError(`${where(i, m)}: pooling must follow a conv2d layer or its activation`);
      const kernel = pair(m.kernel, [0, 0], `${where(i, m)} kernel`);
      const pool: Pool2dSpec = {
        kind: m.type === "maxpool2d" ? "max" : "avg",
        kernel,
        stride: pair(m.stride, kernel, `${where(i, m)} stride`),
        padding: pair(m.padding, [0, 0], `${where(i, m)} padding`),
      };
      if (m.type === "avgpool2d" && m.countIncludePad === false) pool.countIncludePad = false;
      last.pool = pool;
      shape = layerOutputShape(last);
      if (!shape.every((v) => v >= 1)) throw new InputError(`${where(i, m)}: a ${pool.kernel.join("x")} window does not fit the ${layerOutputShape({ ...last, pool: undefined }).slice(1).join("x")} feature map`);
      // Max pooling before the activation: phi(max(z)) = max(phi(z)) for monotone phi; the activation comes next.
      if (state === "layer") {
        movedPool = i;
        return;
      }
      state = "pooled";
      return;
    }
    if (state === "layer" && layers.length > 0) throw new InputError(`${where(i, m)}: the layer before it has no activation (only the last layer may be linear)`);
    let layer: LayerSpec;
    if (m.type === "linear") {
      if (shape.length !== 1) throw new InputError(`${where(i, m)}: a linear layer needs a flat input, got ${shape.join("x")} (add flatten)`);
      layer = { inFeatures: shape[0], outFeatures: m.outFeatures, bias: m.bias ?? true };
    } else if (m.type === "conv2d") {
      if (shape.length !== 3) throw new InputError(`${where(i, m)}: a conv2d layer needs a [channels, height, width] input, got [${shape.join(", ")}]`);
      const conv: Conv2dLayerSpec = {
        kind: "conv2d",
        inChannels: shape[0],
        inHeight: shape[1],
        inWidth: shape[2],
        outChannels: m.outChannels,
        kernel: pair(m.kernel, [0, 0], `${where(i, m)} kernel`),
        stride: pair(m.stride, [1, 1], `${where(i, m)} stride`),
        padding: pair(m.padding, [0, 0], `${where(i, m)} padding`),
        dilation: pair(m.dilation, [1, 1], `${where(i, m)} dilation`),
        groups: m.groups ?? 1,
        bias: m.bias ?? true,
      };
      layer = conv;
    } else {
      throw new InputError(`${where(i, m as ModuleSpec)}: unsupported module`);
    }
    layers.push(layer);
    try {
      validateSpec({ layers, activation: activation ?? { kind: "relu" } });
    } catch (e) {
      throw e instanceof InputError ? new InputError(`${where(i, m)}: ${e.message}`) : e;
    }
    shape = layerOutputShape(layer);
    state = "layer";
  });
  if (layers.length === 0) throw new InputError("the architecture has no linear or conv2d layer");
  if (state !== "layer") throw new InputError("the last module must be a linear or conv2d layer (the output layer has no activation or pooling)");
  const spec: ModelSpec = { layers, activation: options.activation ?? activation ?? { kind: "relu" } };
  if (inputShape && !isConv(layers[0])) spec.inputShape = inputShape;
  const act: Activation = spec.activation;
  if (movedPool >= 0 && act.kind === "leaky_relu" && act.slope < 0) {
    throw new InputError(`module ${movedPool} (maxpool2d): max pooling before a leaky ReLU with a negative slope (${act.slope}) is a different function from pooling after it (the activation is not monotone): not supported`);
  }
  validateSpec(spec);
  return spec;
}

/** The sequential modules of a spec, as specFromArchitecture reads them (Flatten where convolutions meet linear layers). */
export function architectureOf(spec: ModelSpec): Architecture {
  const first = spec.layers[0];
  const input = isConv(first) ? [first.inChannels, first.inHeight, first.inWidth] : spec.inputShape ? [...spec.inputShape] : [first.inFeatures];
  const modules: ModuleSpec[] = spec.inputShape && !isConv(first) ? [{ type: "flatten" }] : [];
  const K = spec.layers.length;
  spec.layers.forEach((l, k) => {
    if (isConv(l)) {
      modules.push({ type: "conv2d", outChannels: l.outChannels, kernel: l.kernel, stride: l.stride, padding: l.padding, dilation: l.dilation, groups: l.groups, bias: l.bias });
    } else {
      modules.push({ type: "linear", outFeatures: l.outFeatures, bias: l.bias });
    }
    if (k + 1 < K) modules.push(spec.activation.kind === "relu" ? { type: "relu" } : { type: "leaky_relu", slope: spec.activation.slope });
    if (isConv(l) && l.pool) {
      const p = l.pool;
      modules.push({
        type: p.kind === "max" ? "maxpool2d" : "avgpool2d",
        kernel: p.kernel,
        stride: p.stride,
        padding: p.padding,
        ...(p.countIncludePad === false ? { countIncludePad: false } : {}),
      });
    }
    if (isConv(l) && k + 1 < K && !isConv(spec.layers[k + 1])) modules.push({ type: "flatten" });
  });
  return { input, modules };
}

const NUMBER = /^-?\d+(\.\d+)?(e-?\d+)?$/i;

function parseValue(text: string, what: string): number | Pair | boolean {
  const t = text.trim().toLowerCase();
  if (t === "true" || t === "false") return t === "true";
  const hw = t.split("x");
  if (hw.length === 2 && hw.every((v) => /^\d+$/.test(v))) return [Number(hw[0]), Number(hw[1])];
  if (NUMBER.test(t)) return Number(t);
  throw new InputError(`${what}: cannot read ${JSON.stringify(text)} (a number, HxW, true or false)`);
}

/**
 * Reads the text form (module comment), e.g. "conv(8,3,padding=1),relu,maxpool(2),flatten,linear(10)",
 * on an input of shape `input`. Errors name the module and what was expected.
 */
export function parseArchitecture(text: string, input: number[]): ModelSpec {
  const modules: ModuleSpec[] = [];
  const parts = text.match(/[a-z_0-9]+\s*(\([^)]*\))?/gi) ?? [];
  const leftover = text.replace(/[a-z_0-9]+\s*(\([^)]*\))?/gi, "").replace(/[\s,]/g, "");
  if (leftover || parts.length === 0) throw new InputError(`cannot read the architecture ${JSON.stringify(text)}: write modules like conv(8,3,padding=1),relu,maxpool(2),flatten,linear(10)`);
  parts.forEach((part, i) => {
    const m = part.match(/^([a-z_0-9]+)\s*(?:\((.*)\))?$/i)!;
    const name = m[1].toLowerCase();
    const what = `architecture module ${i} (${part.trim()})`;
    const positional: (number | Pair | boolean)[] = [];
    const named: Record<string, number | Pair | boolean> = {};
    for (const arg of (m[2] ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
      const eq = arg.indexOf("=");
      if (eq >= 0) named[arg.slice(0, eq).trim().toLowerCase()] = parseValue(arg.slice(eq + 1), what);
      else positional.push(parseValue(arg, what));
    }
    const num = (v: unknown, key: string): number => {
      if (typeof v !== "number" || !Number.isFinite(v)) throw new InputError(`${what}: ${key} must be a number, got ${JSON.stringify(v)}`);
      return v;
    };
    const size = (v: unknown, key: string): number | Pair | undefined => {
      if (v === undefined) return undefined;
      if (typeof v === "number" || Array.isArray(v)) return v as number | Pair;
      throw new InputError(`${what}: ${key} must be a number or HxW, got ${JSON.stringify(v)}`);
    };
    const flag = (v: unknown, key: string): boolean | undefined => {
      if (v === undefined || typeof v === "boolean") return v;
      throw new InputError(`${what}: ${key} must be true or false, got ${JSON.stringify(v)}`);
    };
    const allowed: Record<string, string[]> = {
      conv: ["stride", "padding", "dilation", "groups", "bias"],
      conv2d: ["stride", "padding", "dilation", "groups", "bias"],
      maxpool: ["stride", "padding"],
      maxpool2d: ["stride", "padding"],
      avgpool: ["stride", "padding", "count_include_pad"],
      avgpool2d: ["stride", "padding", "count_include_pad"],
      linear: ["bias"],
      leaky_relu: ["slope", "negative_slope"],
      relu: [],
      flatten: [],
    };
    if (!(name in allowed)) throw new InputError(`${what}: unknown module ${name} (use conv, maxpool, avgpool, relu, leaky_relu, flatten, linear)`);
    for (const key of Object.keys(named)) {
      if (!allowed[name].includes(key)) throw new InputError(`${what}: unknown argument ${key} (${name} takes ${allowed[name].join(", ") || "none"})`);
    }
    if (name === "conv" || name === "conv2d") {
      if (positional.length !== 2) throw new InputError(`${what}: conv takes (out_channels, kernel), got ${positional.length} positional arguments`);
      modules.push({
        type: "conv2d",
        outChannels: num(positional[0], "out_channels"),
        kernel: size(positional[1], "kernel")!,
        stride: size(named.stride, "stride"),
        padding: size(named.padding, "padding"),
        dilation: size(named.dilation, "dilation"),
        groups: named.groups === undefined ? undefined : num(named.groups, "groups"),
        bias: flag(named.bias, "bias"),
      });
    } else if (name.startsWith("maxpool") || name.startsWith("avgpool")) {
      if (positional.length !== 1) throw new InputError(`${what}: pooling takes (kernel), got ${positional.length} positional arguments`);
      modules.push({
        type: name.startsWith("max") ? "maxpool2d" : "avgpool2d",
        kernel: size(positional[0], "kernel")!,
        stride: size(named.stride, "stride"),
        padding: size(named.padding, "padding"),
        countIncludePad: flag(named.count_include_pad, "count_include_pad"),
      });
    } else if (name === "linear") {
      if (positional.length !== 1) throw new InputError(`${what}: linear takes (out_features), got ${positional.length} positional arguments`);
      modules.push({ type: "linear", outFeatures: num(positional[0], "out_features"), bias: flag(named.bias, "bias") });
    } else if (name === "leaky_relu") {
      const slope = positional[0] ?? named.slope ?? named.negative_slope;
      modules.push({ type: "leaky_relu", slope: slope === undefined ? undefined : num(slope, "slope") });
    } else {
      if (positional.length) throw new InputError(`${what}: ${name} takes no arguments`);
      modules.push({ type: name as "relu" | "flatten" });
    }
  });
  return specFromArchitecture({ input, modules });
}

/** The text form of a spec's architecture (parseArchitecture reads it back). */
export function formatArchitecture(spec: ModelSpec): string {
  const size = (p: Pair) => (p[0] === p[1] ? `${p[0]}` : `${p[0]}x${p[1]}`);
  return architectureOf(spec).modules.map((m) => {
    switch (m.type) {
      case "conv2d": {
        const extra = [
          (m.stride as Pair)[0] !== 1 || (m.stride as Pair)[1] !== 1 ? `stride=${size(m.stride as Pair)}` : "",
          (m.padding as Pair).some((v) => v !== 0) ? `padding=${size(m.padding as Pair)}` : "",
          (m.dilation as Pair).some((v) => v !== 1) ? `dilation=${size(m.dilation as Pair)}` : "",
          m.groups !== 1 ? `groups=${m.groups}` : "",
          m.bias === false ? "bias=false" : "",
        ].filter(Boolean);
        return `conv(${[m.outChannels, size(m.kernel as Pair), ...extra].join(",")})`;
      }
      case "maxpool2d":
      case "avgpool2d": {
        const k = m.kernel as Pair;
        const s = m.stride as Pair;
        const extra = [
          s[0] !== k[0] || s[1] !== k[1] ? `stride=${size(s)}` : "",
          (m.padding as Pair).some((v) => v !== 0) ? `padding=${size(m.padding as Pair)}` : "",
          m.countIncludePad === false ? "count_include_pad=false" : "",
        ].filter(Boolean);
        return `${m.type === "maxpool2d" ? "maxpool" : "avgpool"}(${[size(k), ...extra].join(",")})`;
      }
      case "linear":
        return `linear(${m.outFeatures}${m.bias === false ? ",bias=false" : ""})`;
      case "leaky_relu":
        return `leaky_relu(${m.slope})`;
      default:
        return m.type;
    }
  }).join(",");
}
