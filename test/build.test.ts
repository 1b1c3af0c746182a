/** The embedded WGSL module must match shaders/*.wgsl (Deno runs the sources directly). */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateShaderModule } from "../build.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("build", () => {
  it("src/gpu/shaders.generated.ts is up to date with shaders/ (run `npm run build` if not)", () => {
    expect(readFileSync(join(root, "src/gpu/shaders.generated.ts"), "utf8")).toBe(generateShaderModule());
  });
  it("every WGSL file states its bindings and its CPU twin or stage", () => {
    const module = generateShaderModule();
    for (const match of module.matchAll(/^  (\w+): "(.*)",$/gm)) {
      const text = JSON.parse(`"${match[2]}"`) as string;
      expect(text, match[1]).toMatch(/Bindings:/);
      expect(text.includes("@group(0)"), match[1]).toBe(true);
    }
  });
});
