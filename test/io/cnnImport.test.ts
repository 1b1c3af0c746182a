/**
 * Convolutional nets from files: ONNX graphs as torch.onnx.export (PyTorch 1.13, opset 13) writes
 * them, safetensors state dicts with the architecture in __metadata__, the JSON format's version 2,
 * and image .npy data. The fixtures under test/fixtures/cnn/ were written by make_fixtures.py there;
 * every imported model is evaluated by the float64 ReferenceObjective and compared with PyTorch's
 * float64 outputs on the same inputs. Unsupported operators and attributes, misplaced
 * BatchNormalization and shapes that do not fit give FileFormatErrors naming the file and the problem.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import { architectureOf, formatArchitecture } from "../../src/architecture.ts";
import type { Dataset } from "../../src/data.ts";
import { FileFormatError, InputError } from "../../src/errors.ts";
import { datasetFromBytes } from "../../src/io/dataset.ts";
import { type LoadedModel, readModel, readParameterVector, writeModel, writeParameterVector } from "../../src/io/modelFile.ts";
import { npyToFeatures, parseNpy, writeNpy } from "../../src/io/npy.ts";
import { parseSafetensors, writeSafetensors } from "../../src/io/safetensors.ts";
import { isConv, isMlp, type ModelSpec, outputWidth } from "../../src/model.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";
import { assertClose } from "../support/numeric.ts";

const { onnx } = onnxProto as unknown as { onnx: typeof OnnxTypes };
const DIR = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "fixtures", "cnn");
const file = (name: string) => new Uint8Array(readFileSync(join(DIR, name)));

/** The model's float64 outputs on the fixture inputs NAME_x.npy, and PyTorch's (NAME_y.npy). */
async function outputsOn(spec: ModelSpec, theta: Float64Array, name: string): Promise<{ got: Float64Array; want: Float64Array }> {
  const f = npyToFeatures(parseNpy(file(`${name}_x.npy`), `${name}_x.npy`), `${name}_x.npy`);
  const data: Dataset = { n: f.n, features: f.features, x: f.x, labels: new Int32Array(f.n), imageShape: f.imageShape };
  const got = await new ReferenceObjective(spec, data, "ce").outputs(theta);
  const y = parseNpy(file(`${name}_y.npy`), `${name}_y.npy`);
  expect(y.shape).toEqual([f.n, outputWidth(spec)]);
  return { got, want: Float64Array.from(y.data) };
}

function expectFileError(fn: () => unknown, path: string, ...parts: string[]) {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error, `expected a FileFormatError containing ${parts.join(" / ")}`).toBeInstanceOf(FileFormatError);
  const message = (error as Error).message;
  expect(message.startsWith(`${path}: `), message).toBe(true);
  for (const p of parts) expect(message, message).toContain(p);
}

/** A fixture ONNX file with its graph edited. */
function editOnnx(name: string, edit: (g: OnnxTypes.IGraphProto) => void): Uint8Array {
  const m = onnx.ModelProto.decode(file(name));
  edit(m.graph!);
  return onnx.ModelProto.encode(m).finish();
}

const nodeOf = (g: OnnxTypes.IGraphProto, op: string, nth = 0) => g.node!.filter((n) => n.opType === op)[nth];
const setInts = (n: OnnxTypes.INodeProto, name: string, ints: number[]) => {
  n.attribute!.find((a) => a.name === name)!.ints = ints;
};

describe("ONNX convolutional nets exported by PyTorch", () => {
  it("basic (Conv, Relu, MaxPool, Conv, Relu, Pad + AveragePool, Flatten, Gemm) on [N, H, W] images matches PyTorch", async () => {
    const m = readModel(file("basic.onnx"), "basic.onnx");
    const spec = m.model.spec;
    expect(spec.layers.map((l) => (isConv(l) ? "conv2d" : "linear"))).toEqual(["conv2d", "conv2d", "linear"]);
    expect(formatArchitecture(spec)).toBe("conv(3,3,padding=1),relu,maxpool(2),conv(4,2),relu,avgpool(2,stride=1),flatten,linear(5)");
    // PyTorch's state-dict names, as the nn.Sequential had them.
    expect(m.tensorNames).toEqual(["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]);
    const { got, want } = await outputsOn(spec, m.model.theta, "basic");
    assertClose("basic outputs", got, want, 1e-9, 1e-12);
  });

  it("leaky (LeakyRelu 0.2, groups, dilation, rectangular kernel/stride, padded AveragePool without the pads, padded MaxPool) matches PyTorch", async () => {
    const m = readModel(file("leaky.onnx"), "leaky.onnx");
    const spec = m.model.spec;
    // ONNX float attributes are float32: the slope is Math.fround(0.2).
    expect(spec.activation).toEqual({ kind: "leaky_relu", slope: Math.fround(0.2) });
    const [c0, c1] = spec.layers;
    if (!isConv(c0) || !isConv(c1)) throw new Error("expected two convolutions");
    expect([c0.groups, c0.dilation, c0.padding]).toEqual([2, [2, 2], [2, 2]]);
    expect(c0.pool).toEqual({ kind: "avg", kernel: [3, 3], stride: [2, 2], padding: [1, 1], countIncludePad: false });
    expect([c1.kernel, c1.stride, c1.padding]).toEqual([[2, 3], [1, 2], [1, 0]]);
    expect(c1.pool).toEqual({ kind: "max", kernel: [2, 1], stride: [1, 1], padding: [1, 0] });
    const { got, want } = await outputsOn(spec, m.model.theta, "leaky");
    assertClose("leaky outputs", got, want, 1e-9, 1e-12);
  });

  it("bn: eval-mode BatchNormalization after a bias-free Conv and after a Gemm is folded into those layers", async () => {
    const m = readModel(file("bn.onnx"), "bn.onnx");
    const spec = m.model.spec;
    expect(spec.layers.length).toBe(3);
    expect(spec.layers.map((l) => l.bias)).toEqual([true, true, true]); // the folded conv gains a bias
    expect(m.metadata.onnx_folded_batchnorm).toContain("BatchNormalization");
    const { got, want } = await outputsOn(spec, m.model.theta, "bn");
    assertClose("bn outputs", got, want, 1e-9, 1e-12);
  });

  it("x.view(x.size(0), -1): Shape/Gather/Unsqueeze/Concat + Reshape with a symbolic batch, and a constant [2, -1] Reshape", async () => {
    for (const name of ["view.onnx", "view_static.onnx"]) {
      const m = readModel(file(name), name);
      expect(formatArchitecture(m.model.spec)).toBe("conv(2,3),relu,flatten,linear(3)");
      const { got, want } = await outputsOn(m.model.spec, m.model.theta, "view");
      assertClose(`${name} outputs`, got, want, 1e-9, 1e-12);
    }
  });
});

describe("unsupported ONNX graphs name the problem", () => {
  it("ceil_mode, asymmetric pads, auto_pad SAME, pooling dilations", () => {
    expectFileError(() => readModel(file("ceil.onnx"), "ceil.onnx"), "ceil.onnx", "MaxPool", "ceil_mode = 1 is not supported");
    const asym = editOnnx("basic.onnx", (g) => setInts(nodeOf(g, "Conv"), "pads", [1, 1, 0, 0]));
    expectFileError(() => readModel(asym, "a.onnx"), "a.onnx", "(Conv)", "asymmetric pads [1, 1, 0, 0]");
    const asymPool = editOnnx("leaky.onnx", (g) => setInts(nodeOf(g, "AveragePool"), "pads", [1, 0, 1, 1]));
    expectFileError(() => readModel(asymPool, "p.onnx"), "p.onnx", "(AveragePool)", "asymmetric pads [1, 0, 1, 1]");
    const same = editOnnx("basic.onnx", (g) => {
      nodeOf(g, "Conv").attribute!.push({ name: "auto_pad", type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode("SAME_UPPER") });
    });
    expectFileError(() => readModel(same, "s.onnx"), "s.onnx", "auto_pad SAME_UPPER is not supported");
    const dilated = editOnnx("basic.onnx", (g) => {
      nodeOf(g, "MaxPool").attribute!.push({ name: "dilations", type: onnx.AttributeProto.AttributeType.INTS, ints: [2, 2] });
    });
    expectFileError(() => readModel(dilated, "d.onnx"), "d.onnx", "(MaxPool)", "dilations [2, 2] are not supported for pooling");
  });

  it("an unsupported operator (Sigmoid) is named with its node", () => {
    const sigmoid = editOnnx("basic.onnx", (g) => {
      nodeOf(g, "Relu").opType = "Sigmoid";
    });
    expectFileError(() => readModel(sigmoid, "sig.onnx"), "sig.onnx", "unsupported operator Sigmoid", "/1/Relu");
  });

  it("BatchNormalization after an activation, or first in the graph, is refused", () => {
    // Conv -> Relu -> BatchNormalization -> MaxPool instead of Conv -> BatchNormalization -> Relu -> MaxPool.
    const afterRelu = editOnnx("bn.onnx", (g) => {
      const conv = nodeOf(g, "Conv");
      const bn = nodeOf(g, "BatchNormalization");
      const relu = nodeOf(g, "Relu");
      const pool = nodeOf(g, "MaxPool");
      relu.input = [conv.output![0]];
      bn.input = [relu.output![0], ...bn.input!.slice(1)];
      pool.input = [bn.output![0]];
      const nodes = g.node!.filter((n) => n !== bn);
      nodes.splice(nodes.indexOf(relu) + 1, 0, bn);
      g.node = nodes;
    });
    expectFileError(() => readModel(afterRelu, "bn.onnx"), "bn.onnx", "(BatchNormalization)", "only right after a Conv, Gemm or MatMul", "activation");
    const training = editOnnx("bn.onnx", (g) => {
      nodeOf(g, "BatchNormalization").output!.push("running_mean_out");
    });
    expectFileError(() => readModel(training, "t.onnx"), "t.onnx", "running mean / variance outputs (training mode)");
  });

  it("a missing Flatten, a Reshape that is not [N, features], and a mismatched Gemm are named", () => {
    const noFlatten = editOnnx("basic.onnx", (g) => {
      const flatten = nodeOf(g, "Flatten");
      nodeOf(g, "Gemm").input![0] = flatten.input![0];
      g.node = g.node!.filter((n) => n !== flatten);
    });
    expectFileError(() => readModel(noFlatten, "f.onnx"), "f.onnx", "(Gemm) takes images of 4x2x2 per sample", "Flatten");
    const rank3 = editOnnx("view_static.onnx", (g) => {
      const shape = g.node!.find((n) => n.opType === "Constant")!.attribute![0].t!;
      shape.dims = [3];
      shape.rawData = new Uint8Array(BigInt64Array.from([2n, 2n, -1n]).buffer);
    });
    expectFileError(() => readModel(rank3, "r.onnx"), "r.onnx", "(Reshape)", "only a reshape to [N, features]", "[2, 2, -1]");
    const wrongIn = editOnnx("basic.onnx", (g) => {
      const w = g.initializer!.find((t) => t.name === "7.weight")!;
      w.dims = [4, 20];
    });
    expectFileError(() => readModel(wrongIn, "w.onnx"), "w.onnx", "weight '7.weight' takes 20 inputs but layer 1 gives 16 outputs");
    const wrongConv = editOnnx("basic.onnx", (g) => {
      nodeOf(g, "Conv", 1).attribute!.find((a) => a.name === "group")!.i = 3;
    });
    expectFileError(() => readModel(wrongConv, "g.onnx"), "g.onnx", "weight '3.weight' has shape [4, 3, 2, 2] with group 3", "its input has 3");
  });
});

describe("safetensors state dicts with the architecture in __metadata__", () => {
  it("read the same net as the ONNX export, from the JSON architecture and from the text form", async () => {
    for (const name of ["basic", "leaky"]) {
      const st = readModel(file(`${name}.safetensors`), `${name}.safetensors`);
      const ox = readModel(file(`${name}.onnx`), `${name}.onnx`);
      // Equal but for the slope: 0.2 in the architecture, float32 0.2 in the ONNX attribute.
      expect({ ...st.model.spec, activation: null }).toEqual({ ...ox.model.spec, activation: null });
      expect(Math.fround((st.model.spec.activation as { slope?: number }).slope ?? 0)).toBe((ox.model.spec.activation as { slope?: number }).slope ?? 0);
      expect(Array.from(st.model.theta)).toEqual(Array.from(ox.model.theta));
      const { got, want } = await outputsOn(st.model.spec, st.model.theta, name);
      assertClose(`${name}.safetensors outputs`, got, want, 1e-9, 1e-12);
    }
    const parsed = parseSafetensors(file("basic.safetensors"), "basic.safetensors");
    const tensors = [...parsed.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
    const spec = readModel(file("basic.onnx"), "basic.onnx").model.spec;
    const text = writeSafetensors(tensors, { architecture: formatArchitecture(spec), input_shape: "1,9,9" });
    expect(readModel(text, "text.safetensors").model.spec).toEqual(spec);
    // The architecture may also come beside the file (a small JSON spec), as an option.
    const bare = writeSafetensors(tensors);
    expectFileError(() => readModel(bare, "bare.safetensors"), "bare.safetensors", "tensor '0.weight' has shape [3, 1, 3, 3], a Conv2d weight", "needs its architecture");
    expect(readModel(bare, "bare.safetensors", { architecture: JSON.stringify(architectureOf(spec)) }).model.spec).toEqual(spec);
  });

  it("tensors that do not fit the architecture, and bad architectures, are named", () => {
    const parsed = parseSafetensors(file("basic.safetensors"), "basic.safetensors");
    const tensors = [...parsed.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
    const arch = JSON.parse(parsed.metadata.architecture);
    const withArch = (a: unknown, ts = tensors) => writeSafetensors(ts, { architecture: typeof a === "string" ? a : JSON.stringify(a) });
    const wider = structuredClone(arch);
    wider.modules[0].outChannels = 4;
    expectFileError(() => readModel(withArch(wider), "m.safetensors"), "m.safetensors", "tensor '0.weight' has shape [3, 1, 3, 3] but the architecture's layer 0 (conv2d) needs [4, 1, 3, 3]");
    const noBias = structuredClone(arch);
    noBias.modules[3].bias = false;
    expectFileError(() => readModel(withArch(noBias), "m.safetensors"), "m.safetensors", "tensor '3.bias' is present but the architecture's layer 1 (conv2d) has no bias");
    expectFileError(() => readModel(withArch(arch, tensors.filter((t) => t.name !== "7.bias")), "m.safetensors"), "m.safetensors", "tensor '7.bias' is missing");
    expectFileError(() => readModel(withArch(arch, tensors.slice(0, 4)), "m.safetensors"), "m.safetensors", "the architecture has 3 parametric layers (conv2d, conv2d, linear) but the file has 2 weight tensors");
    expectFileError(() => readModel(withArch("{not json"), "m.safetensors"), "m.safetensors", "__metadata__ 'architecture': not valid JSON");
    const badModule = structuredClone(arch);
    badModule.modules[2] = { type: "maxpool2d", kernel: 20 };
    expectFileError(() => readModel(withArch(badModule), "m.safetensors"), "m.safetensors", "__metadata__ 'architecture'", "module 2 (maxpool2d)");
    expectFileError(() => readModel(withArch("conv(3,3,padding=1),relu,flatten,linear(5)"), "m.safetensors"), "m.safetensors", "needs the per-sample input shape in __metadata__ 'input_shape'");
    const disagree = writeSafetensors(tensors, { architecture: JSON.stringify(arch), activation: "leaky_relu" });
    expectFileError(() => readModel(disagree, "m.safetensors"), "m.safetensors", "disagrees with the architecture's relu");
  });
});

describe("round trips of convolutional nets", () => {
  const fromOnnx = () => readModel(file("leaky.onnx"), "leaky.onnx");
  const asJson = (m: LoadedModel): LoadedModel => ({ ...m, format: "json", metadata: { source: "leaky.onnx" }, dtype: undefined });

  it("an ONNX import is written as self-describing safetensors (architecture in __metadata__) and reads back identically", () => {
    const m = fromOnnx();
    const bytes = writeModel(m);
    const file2 = parseSafetensors(bytes, "out.safetensors");
    expect(JSON.parse(file2.metadata.architecture)).toEqual(architectureOf(m.model.spec));
    const back = readModel(bytes, "out.safetensors");
    expect(back.model.spec).toEqual(m.model.spec);
    expect(Array.from(back.model.theta)).toEqual(Array.from(m.model.theta));
    expect(back.tensorNames).toEqual(m.tensorNames);
    expect(writeModel(back)).toEqual(bytes);
  });

  it("JSON version 2 (\"architecture\", weights nested to their shape) round-trips exactly; MLPs stay version 1", () => {
    const m = asJson(fromOnnx());
    const bytes = writeModel(m);
    const doc = JSON.parse(new TextDecoder().decode(bytes));
    expect([doc.format, doc.version]).toEqual(["flatness-mlp", 2]);
    expect(doc.architecture).toEqual(architectureOf(m.model.spec));
    expect([doc.layers[0].weight.length, doc.layers[0].weight[0].length, doc.layers[0].weight[0][0].length, doc.layers[0].weight[0][0][0].length]).toEqual([4, 1, 3, 3]);
    const back = readModel(bytes, "m.json");
    expect(back.model.spec).toEqual(m.model.spec);
    expect(Array.from(back.model.theta)).toEqual(Array.from(m.model.theta));
    expect(writeModel(back)).toEqual(bytes);
    // Shape errors name the layer; a version-1 reader's layout with 4-D weights asks for version 2.
    doc.layers[1].weight[0][1].pop();
    expectFileError(() => readModel(new TextEncoder().encode(JSON.stringify(doc)), "m.json"), "m.json", "layers[1].weight[0][1] has 1 entries but layers[1].weight has shape [6, 4, 2, 3]");
    const v1 = JSON.parse(new TextDecoder().decode(bytes));
    v1.version = 1;
    delete v1.architecture;
    expectFileError(() => readModel(new TextEncoder().encode(JSON.stringify(v1)), "m.json"), "m.json", "layers[0].weight has shape [4, 1, 3, 3]", "needs version 2");
    const mlp = readModel(new TextEncoder().encode(JSON.stringify({ format: "flatness-mlp", version: 1, layers: [{ weight: [[1, 2]] }] })), "mlp.json");
    expect(isMlp(mlp.model.spec)).toBe(true);
    expect(JSON.parse(new TextDecoder().decode(writeModel(mlp))).version).toBe(1);
  });

  it("parameter vectors of a CNN round-trip as safetensors and JSON, and misshapen ones are named", () => {
    for (const m of [fromOnnx(), asJson(fromOnnx())]) {
      const v = Float64Array.from(m.model.theta, (_, i) => Math.fround(Math.sin(i)));
      const bytes = writeParameterVector(m, v);
      expect(Array.from(readParameterVector(bytes, "v", m))).toEqual(Array.from(v));
    }
    const m = fromOnnx();
    const layout = writeParameterVector(m, m.model.theta);
    const tensors = [...parseSafetensors(layout, "v").tensors].map(([name, t]) => ({ name, shape: name === "3.weight" ? [6, 4, 3, 2] : t.shape, data: t.data }));
    expectFileError(() => readParameterVector(writeSafetensors(tensors), "v.safetensors", m), "v.safetensors", "tensor '3.weight' has shape [6, 4, 3, 2] but the model's is [6, 4, 2, 3]");
  });
});

describe("image data", () => {
  const model = () => readModel(file("leaky.onnx"), "leaky.onnx");
  const labels = (n: number) => ({ name: "y.npy", bytes: writeNpy(new Int32Array(n), [n]) });

  it("[N, C, H, W] and [N, H, W] .npy become flat rows with imageShape; flat rows of C·H·W take the model's shape", () => {
    const d4 = datasetFromBytes({ name: "leaky_x.npy", bytes: file("leaky_x.npy") }, labels(3), "ce", model());
    expect([d4.n, d4.features, d4.imageShape]).toEqual([3, 162, [2, 9, 9]]);
    const raw = parseNpy(file("leaky_x.npy"), "x");
    expect(Array.from(d4.x)).toEqual(Array.from(raw.data));
    const basic = readModel(file("basic.onnx"), "basic.onnx");
    const d3 = datasetFromBytes({ name: "basic_x.npy", bytes: file("basic_x.npy") }, labels(4), "ce", basic);
    expect([d3.n, d3.features, d3.imageShape]).toEqual([4, 81, [1, 9, 9]]);
    const flat = datasetFromBytes({ name: "flat.npy", bytes: writeNpy(d4.x, [3, 162]) }, labels(3), "ce", model());
    expect(flat.imageShape).toEqual([2, 9, 9]);
  });

  it("images of the wrong shape (NHWC, other sizes) and other ranks are named", () => {
    const x = new Float32Array(3 * 162);
    expect(() => datasetFromBytes({ name: "nhwc.npy", bytes: writeNpy(x, [3, 9, 9, 2]) }, labels(3), "ce", model()))
      .toThrow(/nhwc\.npy: images of shape \[9, 9, 2\] per sample but the model takes \[2, 9, 9\].*NHWC/);
    expect(() => datasetFromBytes({ name: "small.npy", bytes: writeNpy(new Float32Array(3 * 2 * 8 * 8), [3, 2, 8, 8]) }, labels(3), "ce", model()))
      .toThrow(InputError);
    expectFileError(() => datasetFromBytes({ name: "x5.npy", bytes: writeNpy(x, [3, 1, 2, 9, 9]) }, labels(3), "ce", model()), "x5.npy", "[N, C, H, W]", "[3, 1, 2, 9, 9]");
  });
});
