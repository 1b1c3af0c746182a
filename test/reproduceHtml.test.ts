/**
 * The `flatness reproduce` HTML report and its inline SVG plots: well-formed markup (balanced tags,
 * no NaN / undefined / Infinity leaking into attributes or text), log axes that put decades where
 * they belong, legends, escaping, empty and degenerate data, and a page that names every claim,
 * its verdict and the pass count. The sample report is also written to test-artifacts/ to look at.
 */
import { describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { claimStands, formatNumber, renderReport, type PlotSpec, type ReproduceRecord } from "../src/reproduce/html.ts";
import { escapeXml, formatTick } from "../src/format.ts";
import { axisScale, logTicks, niceTicks, svgPlot } from "../src/reproduce/svgPlot.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** HTML void elements: never closed. */
const VOID = new Set(["meta", "br", "hr", "img", "input", "link", "wbr", "col", "source"]);

/**
 * Checks that every element opened is closed in order (a regex-level parser: markup we emit has no
 * `<` or `>` inside text or attributes, since both are escaped) and returns the element names seen.
 */
function checkBalanced(markup: string): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  const body = markup.replace(/<!DOCTYPE[^>]*>/i, "").replace(/<style>[\s\S]*?<\/style>/, "<style></style>");
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+(?:="[^"<>]*")?)*)\s*(\/?)>/g)) {
    const [, close, name, , selfClose] = m;
    const tag = name.toLowerCase();
    seen.push(tag);
    if (close) {
      const open = stack.pop();
      if (open !== tag) throw new Error(`</${tag}> closes <${open}> at offset ${m.index}`);
    } else if (!selfClose && !VOID.has(tag)) stack.push(tag);
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(" > ")}`);
  // Every `<` must start a tag we parsed (anything else is unescaped text).
  const stray = body.replace(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+(?:="[^"<>]*")?)*)\s*(\/?)>/g, "");
  if (/[<>]/.test(stray)) throw new Error(`stray < or >: ${stray.slice(Math.max(0, stray.search(/[<>]/) - 40), stray.search(/[<>]/) + 40)}`);
  return seen;
}

/** The note under a plot, its wrapped lines joined again. */
function noteText(svg: string): string {
  return [...svg.matchAll(/<text class="note"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]).join(" ");
}

function expectClean(markup: string) {
  expect(markup).not.toMatch(/NaN|undefined|Infinity/);
  checkBalanced(markup);
}

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

const samplePlots: PlotSpec[] = [
  {
    id: "spectrum",
    title: "Top Hessian eigenvalue under T_alpha",
    xLabel: "alpha",
    yLabel: "lambda_max",
    xLog: true,
    yLog: true,
    series: [
      { name: "measured", x: range(9, (i) => 10 ** (i / 2 - 2)), y: range(9, (i) => 3 * 10 ** (-(i / 2 - 2) * 2)) },
      { name: "predicted alpha^-2", x: range(9, (i) => 10 ** (i / 2 - 2)), y: range(9, (i) => 3.3 * 10 ** (-(i / 2 - 2) * 2)), points: true },
    ],
    caption: "The largest eigenvalue scales as alpha^-2, as Theorem 3 predicts.",
  },
  {
    id: "loss",
    title: "Loss along a line",
    xLabel: "t",
    yLabel: "loss",
    series: [{ name: "loss", x: range(41, (i) => i / 20 - 1), y: range(41, (i) => (i / 20 - 1) ** 2 - 0.2) }],
  },
];

const sample: ReproduceRecord = {
  tool: "flatness",
  version: "0.1.0",
  date: "2025-01-02T03:04:05Z",
  adapter: "NVIDIA H100 (vulkan)",
  quick: true,
  seed: 7,
  wallMs: 83_456,
  claims: [
    {
      id: 1,
      claim: "T_alpha keeps the function of a ReLU net",
      measured: "max |f_after - f_before| = 3.1e-7",
      expected: "< 1e-5",
      pass: true,
      wallMs: 812,
      details: { maxDiff: 3.1234567e-7, alphas: [0.01, 0.1, 1, 10, 100], nested: { a: 1.23456789, b: "x" }, note: "float32" },
      plots: samplePlots,
    },
    {
      id: 2,
      claim: "epsilon-sharpness can be made arbitrarily large",
      measured: "ratio 12.5",
      expected: "> 100",
      pass: false,
      wallMs: 15_300,
      error: "Lanczos did not converge <tol & budget>",
      details: { ratio: 12.5, long: range(40, (i) => i * 0.5) },
      plots: [{
        id: "bars",
        title: "Sharpness by transform",
        xLabel: "",
        yLabel: "sharpness",
        kind: "bar",
        categories: ["identity", "T_alpha (alpha=10)", "neuron-wise rescale"],
        series: [
          { name: "before", x: [0, 1, 2], y: [1.2, 1.2, 1.2] },
          { name: "after", x: [0, 1, 2], y: [1.2, 12.5, 4.1] },
        ],
      }, {
        id: "ratios",
        title: "Sharpness ratio against alpha, with two runs that hit zero",
        xLabel: "alpha",
        yLabel: "ratio",
        xLog: true,
        yLog: true,
        series: [
          { name: "run 1", x: [0.1, 1, 10, 100], y: [0.5, 1, 12.5, 0] },
          { name: "run 2", x: [0.1, 1, 10, 100], y: [0.4, 1.1, -1, 130] },
          { name: "bound", x: [0.1, 1, 10, 100], y: [0.01, 1, 100, 1e4], points: true },
        ],
        caption: "Zero and negative ratios cannot be drawn on a log axis and are counted in the note.",
      }, {
        id: "cats",
        title: "Relative change of each measure under the strongest transform",
        xLabel: "measure",
        yLabel: "after / before",
        kind: "bar",
        categories: ["spectral norm", "Hessian trace", "epsilon-sharpness", "Fisher-Rao norm", "path norm", "relative flatness", "normalized sharpness"],
        series: [{ name: "ratio", x: [0, 1, 2, 3, 4, 5, 6], y: [100, 57, 12.5, 1, 1, 1, 1.3] }],
      }],
    },
  ],
};

describe("axis scales and ticks", () => {
  it("maps decades to evenly spaced pixels on a log axis", () => {
    const s = axisScale([1e-3, 1e3], [50, 650], true);
    for (let k = -3; k <= 3; k++) expect(s(10 ** k)).toBeCloseTo(50 + (k + 3) * 100, 9);
    expect(s(Math.sqrt(10))).toBeCloseTo(350 + 50, 9); // half a decade
    const down = axisScale([1, 1000], [300, 0], true); // y axes run upward
    expect(down(10)).toBeCloseTo(200, 9);
    expect(down(100)).toBeCloseTo(100, 9);
  });

  it("maps linearly and survives a degenerate domain", () => {
    const s = axisScale([-1, 3], [0, 400]);
    expect(s(0)).toBeCloseTo(100, 12);
    expect(s(3)).toBeCloseTo(400, 12);
    expect(axisScale([2, 2], [0, 100])(2)).toBe(50);
  });

  it("chooses nice linear ticks", () => {
    const cases: Array<[number, number]> = [[0, 1], [-0.37, 2.9], [0.1, 0.3], [1e-7, 3e-7], [123, 98765], [5, 5], [0, 0], [-4, -4]];
    for (const [lo, hi] of cases) {
      const t = niceTicks(lo, hi);
      expect(t.domain[0]).toBeLessThanOrEqual(Math.min(lo, hi));
      expect(t.domain[1]).toBeGreaterThanOrEqual(Math.max(lo, hi));
      expect(t.domain[1]).toBeGreaterThan(t.domain[0]);
      const mant = t.step / 10 ** Math.floor(Math.log10(t.step) + 1e-9);
      expect([1, 2, 5, 10].some((m) => Math.abs(mant - m) < 1e-9)).toBe(true);
      expect(t.ticks.length).toBeGreaterThanOrEqual(2);
      expect(t.ticks.length).toBeLessThanOrEqual(12);
    }
    expect(niceTicks(0.1, 0.3).ticks.map((v) => formatTick(v, niceTicks(0.1, 0.3).step))).toEqual(["0.10", "0.15", "0.20", "0.25", "0.30"]);
    expect(formatTick(-2e-6, 1e-6)).toBe("−2e-6");
  });

  it("puts log ticks on whole decades with minor ticks", () => {
    const t = logTicks(0.03, 420);
    expect(t.domain).toEqual([0.01, 1000]);
    expect(t.decades).toEqual([-2, -1, 0, 1, 2, 3]);
    expect(t.minor).toContain(2 * 0.01);
    expect(t.minor).toContain(900);
    const wide = logTicks(1e-20, 1e20);
    expect(wide.labelled.length).toBeLessThanOrEqual(9);
    expect(wide.minor).toEqual([]);
    expect(logTicks(1, 1).domain).toEqual([0.1, 10]);
  });
});

describe("svgPlot", () => {
  it("emits a well-formed SVG for lines, points, bars and log axes", () => {
    for (const spec of [...samplePlots, sample.claims[1].plots![0]]) {
      const svg = svgPlot(spec);
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
      expectClean(svg);
    }
  });

  it("places log-axis decade ticks at the scale's pixel positions", () => {
    const svg = svgPlot({ id: "d", title: "decades", xLabel: "x", yLabel: "y", xLog: true, series: [{ name: "s", x: [1, 1000], y: [0, 1] }] }, { width: 600, height: 300 });
    const labels = [...svg.matchAll(/<text x="([\d.]+)" y="[\d.]+" text-anchor="middle" fill="#333">(1|10|100|1000)<\/text>/g)]
      .map((m) => [m[2], Number(m[1])] as const);
    expect(labels.map((l) => l[0])).toEqual(["1", "10", "100", "1000"]);
    const gap = labels[1][1] - labels[0][1];
    expect(gap).toBeGreaterThan(50);
    for (let i = 1; i < labels.length; i++) expect(labels[i][1] - labels[i - 1][1]).toBeCloseTo(gap, 1);
  });

  it("labels decades as powers of ten when they span far", () => {
    const svg = svgPlot({ id: "p", title: "t", xLabel: "", yLabel: "", yLog: true, series: [{ name: "s", x: [0, 1], y: [1e-8, 1e4] }] });
    expect(svg).toContain("10⁻⁸");
    expect(svg).toContain("10⁴");
  });

  it("draws a legend for two or more series only, in distinct colours", () => {
    const two = svgPlot(samplePlots[0]);
    expect(two).toContain('class="legend-item"');
    expect(two).toContain(">measured</text>");
    expect(two).toContain(">predicted alpha^-2</text>");
    const colours = new Set([...two.matchAll(/fill="(#[0-9A-F]{6})"/g)].map((m) => m[1]));
    expect(colours.size).toBeGreaterThanOrEqual(2);
    expect(svgPlot(samplePlots[1])).not.toContain("legend-item");
  });

  it("escapes <&> in titles, labels, series and categories", () => {
    const svg = svgPlot({
      id: "e<&>",
      title: "a <b> & c",
      xLabel: "x<1",
      yLabel: "y>2",
      kind: "bar",
      categories: ["<script>"],
      series: [{ name: "s&t", x: [0], y: [1] }, { name: "u", x: [0], y: [2] }],
    });
    expectClean(svg);
    expect(svg).toContain("a &lt;b&gt; &amp; c");
    expect(svg).toContain("&lt;script&gt;");
    expect(svg).toContain("s&amp;t");
    expect(svg).not.toContain("<b>");
  });

  it("handles empty, single-point, constant and non-finite data", () => {
    const specs: PlotSpec[] = [
      { id: "empty", title: "empty", xLabel: "x", yLabel: "y", series: [] },
      { id: "empty2", title: "empty series", xLabel: "x", yLabel: "y", series: [{ name: "a", x: [], y: [] }] },
      { id: "one", title: "one point", xLabel: "x", yLabel: "y", series: [{ name: "a", x: [3], y: [4] }] },
      { id: "const", title: "constant", xLabel: "x", yLabel: "y", series: [{ name: "a", x: [1, 2, 3], y: [0, 0, 0] }] },
      { id: "constlog", title: "constant log", xLabel: "x", yLabel: "y", xLog: true, yLog: true, series: [{ name: "a", x: [5, 5], y: [2, 2] }] },
      { id: "nan", title: "gaps", xLabel: "x", yLabel: "y", series: [{ name: "a", x: [0, 1, 2, 3, 4], y: [1, NaN, 3, Infinity, -Infinity] }] },
      { id: "bar0", title: "zero bars", xLabel: "", yLabel: "y", kind: "bar", series: [{ name: "a", x: [0, 1], y: [0, 0] }] },
      { id: "barneg", title: "negative bars", xLabel: "", yLabel: "y", kind: "bar", categories: ["p", "q"], series: [{ name: "a", x: [0, 1], y: [-1, 2] }] },
    ];
    for (const spec of specs) expectClean(svgPlot(spec));
    expect(svgPlot(specs[0])).toContain("no data");
    expect(noteText(svgPlot(specs[1]))).toContain("no plottable data");
    expect(noteText(svgPlot(specs[5]))).toContain("3 non-finite values skipped");
  });

  it("skips non-positive values on log axes with a note under the plot", () => {
    const svg = svgPlot({
      id: "neg",
      title: "log",
      xLabel: "x",
      yLabel: "y",
      xLog: true,
      yLog: true,
      series: [{ name: "a", x: [0, 1, 10, 100, -5], y: [1, -2, 10, 100, 3] }],
    });
    expectClean(svg);
    expect(noteText(svg)).toContain("2 non-positive x values skipped (log x axis)");
    expect(noteText(svg)).toContain("1 non-positive y value skipped (log y axis)");
    const allBad = svgPlot({ id: "bad", title: "t", xLabel: "", yLabel: "", yLog: true, series: [{ name: "a", x: [1, 2], y: [0, -1] }] });
    expectClean(allBad);
    expect(noteText(allBad)).toContain("2 non-positive y values skipped");
  });
});

describe("renderReport", () => {
  const html = renderReport(sample);
  mkdirSync(join(root, "test-artifacts"), { recursive: true });
  writeFileSync(join(root, "test-artifacts/reproduce-report.html"), html);

  it("is a complete, well-formed, self-contained document", () => {
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expectClean(html);
    expect(html).not.toMatch(/<script|<link|src="|href="(?!#)|url\(/i); // no scripts, no external requests
  });

  it("names every claim with its verdict and the pass count", () => {
    expect(html).toContain("1 of 2 claims pass");
    for (const c of sample.claims) {
      expect(html).toContain(`id="claim-${c.id}"`);
      expect(html).toContain(`href="#claim-${c.id}"`);
    }
    expect(html.match(/class="badge pass">PASS</g)!.length).toBe(2); // summary + section
    expect(html.match(/class="badge fail">FAIL</g)!.length).toBe(2);
    for (const s of ["flatness", "0.1.0", "2025-01-02T03:04:05Z", "NVIDIA H100 (vulkan)", "quick", ">7<", "1 min 23 s"]) expect(html).toContain(s);
  });

  it("shows errors escaped, plots with captions, and details compactly", () => {
    expect(html).toContain("Lanczos did not converge &lt;tol &amp; budget&gt;");
    expect(html.match(/<svg /g)!.length).toBe(5);
    expect(html).toContain("<figcaption>The largest eigenvalue scales as alpha^-2");
    expect(html).toContain(">3.123e-7<");
    expect(html).toContain("{&quot;a&quot;: 1.235, &quot;b&quot;: &quot;x&quot;}");
    expect(html).toContain("… 28 more");
  });

  it("shows each claim's negative controls, their verdicts and whether they hold", () => {
    const controlled: ReproduceRecord = {
      ...sample,
      claims: [
        {
          ...sample.claims[0],
          controls: [
            { id: "bias-single-alpha", breaks: "T_alpha scales biases <wrongly>", measured: "outputs moved 0.3", pass: false, holds: true, wallMs: 40 },
            { id: "lanczos-one-step", breaks: "Lanczos stops after one step", measured: "lambda_max 1.2e4", pass: true, holds: false, wallMs: 12 },
          ],
        },
        { ...sample.claims[1], controls: [] },
      ],
    };
    const page = renderReport(controlled);
    expectClean(page);
    expect(page).toContain("1 of 2 claims pass; 1 of 2 negative controls fail as they must");
    expect(page).toContain("T_alpha scales biases &lt;wrongly&gt;");
    expect(page).toContain("<code>bias-single-alpha</code>");
    expect(page).toContain(">HOLDS<");
    expect(page).toContain(">DOES NOT HOLD<");
    expect(page).toContain("1 of 2 fail"); // summary column of claim 1
    expect(page).toMatch(/Negative controls:<\/strong> none/); // claim 2 has none
    expect(page).toContain('class="verdict fail"');
    // Every claim passing and every control holding makes the page's verdict PASS.
    const good = renderReport({ ...controlled, claims: [{ ...controlled.claims[0], controls: [controlled.claims[0].controls![0]] }] });
    expect(good).toContain("1 of 1 claims pass; 1 of 1 negative controls fail as they must");
    expect(good).toContain('class="verdict pass"');
    expect(claimStands(controlled.claims[0])).toBe(false); // a control that does not hold
    expect(claimStands(controlled.claims[1])).toBe(false); // no control at all
    expect(claimStands({ ...controlled.claims[0], controls: [controlled.claims[0].controls![0]] })).toBe(true);
  });

  it("renders a record with no claims and full mode", () => {
    const empty = renderReport({ ...sample, quick: false, claims: [] });
    expectClean(empty);
    expect(empty).toContain("0 of 0 claims pass");
    expect(empty).toContain(">full<");
  });

  it("formats numbers to 4 significant digits", () => {
    expect(formatNumber(3.14159265)).toBe("3.142");
    expect(formatNumber(0.5)).toBe("0.5");
    expect(formatNumber(1.23456e-7)).toBe("1.235e-7");
    expect(formatNumber(2.5e9 + 0.5)).toBe("2.5e9");
    expect(formatNumber(42)).toBe("42");
    expect(escapeXml(`<&>"'`)).toBe("&lt;&amp;&gt;&quot;&#39;");
  });
});
