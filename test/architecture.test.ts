/**
 * Architectures as a user writes them (src/architecture.ts): PyTorch's tensor names, a round trip
 * through the text and JSON forms, and refusals of what would otherwise build a different net than
 * the one written (a PyTorch key name, a missing kernel, a bias given as a string, a max pooling
 * moved past a non-monotone activation).
 */
import { describe, expect, it } from "vitest";
import { architectureOf, formatArchitecture, parseArchitecture, specFromArchitecture } from "../src/architecture.ts";
import { parameterLayout } from "../src/model.ts";

describe("architectures", () => {
  it("tensor names are nn.Sequential's: a leading Flatten counts as module 0, as a Flatten between convolution and linear does", () => {
    const mlp = parseArchitecture("flatten,linear(8),relu,linear(10)", [1, 4, 4]);
    expect(parameterLayout(mlp).views.map((v) => v.name)).toEqual(["1.weight", "1.bias", "3.weight", "3.bias"]);
    expect(architectureOf(mlp)).toEqual({ input: [1, 4, 4], modules: [{ type: "flatten" }, { type: "linear", outFeatures: 8, bias: true }, { type: "relu" }, { type: "linear", outFeatures: 10, bias: true }] });
    // Negative control: the same layers on a flat input start at 0.
    expect(parameterLayout(parseArchitecture("linear(8),relu,linear(10)", [16])).views[0].name).toBe("0.weight");
    const cnn = parseArchitecture("conv(2,3),relu,maxpool(2),flatten,linear(10)", [1, 8, 8]);
    expect(parameterLayout(cnn).views.map((v) => v.name)).toEqual(["0.weight", "0.bias", "4.weight", "4.bias"]);
  });

  it("text and JSON forms round-trip", () => {
    for (const text of ["conv(4,3x2,stride=2,padding=1x0,dilation=2,groups=2,bias=false),leaky_relu(0.1),avgpool(2,stride=1,padding=1,count_include_pad=false),flatten,linear(3)", "flatten,linear(5),relu,linear(2)"]) {
      const spec = parseArchitecture(text, [2, 9, 9]);
      expect(formatArchitecture(spec)).toBe(text);
      expect(specFromArchitecture(JSON.parse(JSON.stringify(architectureOf(spec))))).toEqual(spec);
    }
  });

  it("refuses, naming the module, what would silently build another net", () => {
    const refused: [unknown[], RegExp][] = [
      [[{ type: "conv2d", outChannels: 2, kernel_size: 3 }], /module 0: unknown key "kernel_size"/],
      [[{ type: "conv2d", outChannels: 2 }], /module 0: "kernel" is required/],
      [[{ type: "conv2d", outChannels: 2, kernel: 3 }, { type: "relu" }, { type: "maxpool2d", kernel: 2, ceil_mode: true }], /module 2: unknown key "ceil_mode"/],
      [[{ type: "conv2d", outChannels: 2, kernel: 3, bias: "false" }], /module 0: "bias" must be true or false/],
      [[{ type: "conv2d", outChannels: 2, kernel: 3 }, { type: "leaky_relu", slope: "0.2" }], /module 1: "slope" must be a number/],
      [[{ type: "dense", units: 3 }], /module 0: unknown module type "dense"/],
    ];
    for (const [modules, message] of refused) {
      expect(() => specFromArchitecture({ input: [1, 6, 6], modules: modules as never })).toThrow(message);
    }
    // Max pooling before a monotone activation is moved after it; before a non-monotone one it is refused.
    expect(parseArchitecture("conv(2,3),maxpool(2),leaky_relu(0.1),flatten,linear(3)", [1, 6, 6]).layers[0]).toMatchObject({ pool: { kind: "max" } });
    expect(() => parseArchitecture("conv(2,3),maxpool(2),leaky_relu(-0.5),flatten,linear(3)", [1, 6, 6])).toThrow(/module 1 \(maxpool2d\).*not monotone/);
    // Max pooling after a leaky ReLU with a negative slope is still positively homogeneous: allowed.
    expect(() => parseArchitecture("conv(2,3),leaky_relu(-0.5),maxpool(2),flatten,linear(3)", [1, 6, 6])).not.toThrow();
  });
});
