/// <reference lib="dom" />
/**
 * The 3-D view of a 2-D loss slice: a WebGPU render pipeline (not a compute kernel, so its WGSL
 * lives here rather than in shaders/) drawing the grid L(theta + a d1 + b d2) as a lit triangle
 * mesh coloured by height (viridis, the colour scale of the contour view), with grid lines, a floor
 * frame and a marker at theta, seen through an orbit camera (wgpu-matrix): drag to rotate, wheel
 * to zoom, double-click to reset. Frames are drawn on demand, never in a loop.
 *
 * Frames are rendered into an offscreen texture (4x multisampled, resolved), copied to a mapped
 * buffer and put on a 2-D canvas, rather than presented through a "webgpu" canvas context: headless
 * Chromium on SwiftShader (the tests, and machines without a GPU) loses the whole device at the
 * first getCurrentTexture(), which would take the page's compute engine down with it. The copy
 * costs a few hundred kilobytes per frame, nothing beside an orbit camera's frame rate.
 */
import { mat4, vec3, vec4 } from "wgpu-matrix";
import { trackAsyncView } from "../shared/record.ts";

const vec4Transform = (v: number[], m: Float32Array) => vec4.transformMat4(v, m);

const SHADER = /* wgsl */ `
struct Uniforms {
  mvp: mat4x4f,
  // xyz: direction towards the light (world space).
  light: vec4f,
};
@group(0) @binding(0) var<uniform> u: Uniforms;

struct VertexOut {
  @builtin(position) position: vec4f,
  @location(0) color: vec3f,
  @location(1) normal: vec3f,
};

@vertex fn vs(@location(0) p: vec3f, @location(1) n: vec3f, @location(2) c: vec3f) -> VertexOut {
  var out: VertexOut;
  out.position = u.mvp * vec4f(p, 1.0);
  out.color = c;
  out.normal = n;
  return out;
}

// The surface: ambient plus two-sided diffuse light (the underside is visible from below).
@fragment fn fsLit(v: VertexOut) -> @location(0) vec4f {
  let d = abs(dot(normalize(v.normal), normalize(u.light.xyz)));
  return vec4f(v.color * (0.45 + 0.55 * d), 1.0);
}

// Lines: their own colour, unlit.
@fragment fn fsFlat(v: VertexOut) -> @location(0) vec4f {
  return vec4f(v.color, 1.0);
}
`;

// Viridis, 9 stops (as src/landscape/plot.ts), as RGB in [0, 1].
const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"].map((h) =>
  [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16) / 255)
);

/** Viridis at u in [0, 1] as [r, g, b] in [0, 1]. */
export function viridisRgb(u: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, Number.isFinite(u) ? u : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t));
  const f = t - i;
  return [0, 1, 2].map((k) => VIRIDIS[i][k] * (1 - f) + VIRIDIS[i + 1][k] * f) as [number, number, number];
}

/** How loss values map to [0, 1]: log10 when they span more than two decades (as the contour view). */
export interface HeightScale {
  log: boolean;
  lo: number;
  hi: number;
  /** Value -> [0, 1]. */
  unit(v: number): number;
}

export function heightScale(values: number[]): HeightScale {
  const finite = values.filter(Number.isFinite);
  const vmin = Math.min(...finite);
  const vmax = Math.max(...finite);
  const log = vmin > 0 && vmax / vmin > 100;
  const f = (v: number) => (log ? Math.log10(v) : v);
  const lo = f(vmin);
  const hi = f(vmax) > lo ? f(vmax) : lo + 1e-12;
  return { log, lo, hi, unit: (v: number) => Math.min(1, Math.max(0, (f(v) - lo) / (hi - lo))) };
}

const FLOATS_PER_VERTEX = 9; // position, normal, colour
const HEIGHT = 1.1; // world height of the whole loss range; a and b span [-1, 1]
const BACKGROUND = { r: 1, g: 1, b: 1, a: 1 };
const SAMPLES = 4;

/** A text label pinned to a point of the scene: x (a) and y (b) in [-1, 1], z in [0, 1] (the colour scale's unit). */
export interface SceneLabel {
  text: string;
  at: [number, number, number];
  className?: string;
}

interface Camera {
  yaw: number;
  pitch: number;
  distance: number;
}
const DEFAULT_CAMERA: Camera = { yaw: -0.75, pitch: 0.42, distance: 4.4 };

export class SurfaceView {
  private readonly context: CanvasRenderingContext2D;
  private readonly format: GPUTextureFormat = "rgba8unorm";
  private readonly lit: GPURenderPipeline;
  private readonly flat: GPURenderPipeline;
  private readonly uniforms: GPUBuffer;
  private readonly bindGroup: GPUBindGroup;
  private vertices: GPUBuffer | null = null;
  private triangles: GPUBuffer | null = null;
  private triangleCount = 0;
  private lines: GPUBuffer | null = null;
  private lineVertexCount = 0;
  private depth: GPUTexture | null = null;
  private msaa: GPUTexture | null = null;
  private resolved: GPUTexture | null = null;
  private staging: GPUBuffer | null = null;
  private image: ImageData | null = null;
  private rendering: Promise<void> | null = null;
  private dirty = false;
  private disposed = false;
  private camera: Camera = { ...DEFAULT_CAMERA };
  private readonly detach: () => void;
  private labels: { node: HTMLElement; at: [number, number, number] }[] = [];
  /** Frames drawn so far. */
  frames = 0;

  /**
   * `overlay`: a positioned element over the canvas (same box) where scene labels go; the world's
   * a runs along x, b along y, the loss up z.
   */
  constructor(readonly device: GPUDevice, readonly canvas: HTMLCanvasElement, private readonly overlay?: HTMLElement) {
    const context = canvas.getContext("2d");
    if (!context) throw new Error("this browser gives the canvas no 2-D context");
    this.context = context;
    const module = device.createShaderModule({ label: "landscape surface", code: SHADER });
    const layout = device.createBindGroupLayout({
      label: "landscape surface uniforms",
      entries: [{ binding: 0, visibility: GPUShaderStage.VERTEX | GPUShaderStage.FRAGMENT, buffer: { type: "uniform" } }],
    });
    const pipelineLayout = device.createPipelineLayout({ label: "landscape surface", bindGroupLayouts: [layout] });
    const vertex: GPUVertexState = {
      module,
      entryPoint: "vs",
      buffers: [{
        arrayStride: FLOATS_PER_VERTEX * 4,
        attributes: [
          { shaderLocation: 0, offset: 0, format: "float32x3" },
          { shaderLocation: 1, offset: 12, format: "float32x3" },
          { shaderLocation: 2, offset: 24, format: "float32x3" },
        ],
      }],
    };
    const pipeline = (label: string, entryPoint: string, topology: GPUPrimitiveTopology, depthBias: number) =>
      device.createRenderPipeline({
        label,
        layout: pipelineLayout,
        vertex,
        fragment: { module, entryPoint, targets: [{ format: this.format }] },
        primitive: { topology },
        // The surface is pushed back a little so the grid lines drawn on it stay visible.
        depthStencil: { format: "depth24plus", depthWriteEnabled: true, depthCompare: "less-equal", depthBias, depthBiasSlopeScale: depthBias ? 1 : 0 },
        multisample: { count: SAMPLES },
      });
    this.lit = pipeline("landscape surface mesh", "fsLit", "triangle-list", 2);
    this.flat = pipeline("landscape surface lines", "fsFlat", "line-list", 0);
    this.uniforms = device.createBuffer({ label: "landscape surface uniforms", size: 80, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.bindGroup = device.createBindGroup({ label: "landscape surface", layout, entries: [{ binding: 0, resource: { buffer: this.uniforms } }] });
    this.detach = this.attachCamera();
  }

  /** Replaces the surface by the grid values [b_j][a_i] (row-major), a and b the grid axes. */
  setSurface(a: number[], b: number[], values: number[]): HeightScale {
    const nx = a.length;
    const ny = b.length;
    const scale = heightScale(values);
    const x = (i: number) => -1 + (2 * i) / (nx - 1);
    const y = (j: number) => -1 + (2 * j) / (ny - 1);
    const h = (i: number, j: number) => HEIGHT * scale.unit(values[j * nx + i]);
    const data = new Float32Array(nx * ny * FLOATS_PER_VERTEX);
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        // Normal from central differences of the height field.
        const dx = (h(Math.min(i + 1, nx - 1), j) - h(Math.max(i - 1, 0), j)) / (x(Math.min(i + 1, nx - 1)) - x(Math.max(i - 1, 0)));
        const dy = (h(i, Math.min(j + 1, ny - 1)) - h(i, Math.max(j - 1, 0))) / (y(Math.min(j + 1, ny - 1)) - y(Math.max(j - 1, 0)));
        const n = vec3.normalize([-dx, -dy, 1]);
        const c = viridisRgb(scale.unit(values[j * nx + i]));
        data.set([x(i), y(j), h(i, j), n[0], n[1], n[2], ...c], (j * nx + i) * FLOATS_PER_VERTEX);
      }
    }
    const index = new Uint32Array((nx - 1) * (ny - 1) * 6);
    let k = 0;
    for (let j = 0; j + 1 < ny; j++) {
      for (let i = 0; i + 1 < nx; i++) {
        const p = j * nx + i;
        index.set([p, p + 1, p + nx + 1, p, p + nx + 1, p + nx], k);
        k += 6;
      }
    }
    // Lines: every few grid lines on the surface, the floor frame, and a marker at theta (a = b = 0).
    const line: number[] = [];
    const push = (p: number[], c: number[]) => line.push(p[0], p[1], p[2], 0, 0, 1, c[0], c[1], c[2]);
    const wire = [0.15, 0.15, 0.2];
    const every = Math.max(1, Math.round(Math.max(nx, ny) / 12));
    for (let j = 0; j < ny; j += every) {
      for (let i = 0; i + 1 < nx; i++) {
        push([x(i), y(j), h(i, j)], wire);
        push([x(i + 1), y(j), h(i + 1, j)], wire);
      }
    }
    for (let i = 0; i < nx; i += every) {
      for (let j = 0; j + 1 < ny; j++) {
        push([x(i), y(j), h(i, j)], wire);
        push([x(i), y(j + 1), h(i, j + 1)], wire);
      }
    }
    const frame = [0.55, 0.55, 0.6];
    const corners = [[-1, -1], [1, -1], [1, 1], [-1, 1]];
    for (let c = 0; c < 4; c++) {
      const [p, q] = [corners[c], corners[(c + 1) % 4]];
      push([p[0], p[1], 0], frame);
      push([q[0], q[1], 0], frame);
      push([p[0], p[1], 0], frame);
      push([p[0], p[1], HEIGHT], frame);
    }
    const i0 = a.findIndex((v) => v === 0);
    const j0 = b.findIndex((v) => v === 0);
    if (a[0] <= 0 && a[nx - 1] >= 0 && b[0] <= 0 && b[ny - 1] >= 0) {
      const cx = -1 + (2 * (0 - a[0])) / (a[nx - 1] - a[0]);
      const cy = -1 + (2 * (0 - b[0])) / (b[ny - 1] - b[0]);
      const top = i0 >= 0 && j0 >= 0 ? h(i0, j0) : 0;
      const red = [0.9, 0.1, 0.1];
      push([cx, cy, 0], red);
      push([cx, cy, top + 0.08], red);
    }
    this.vertices?.destroy();
    this.triangles?.destroy();
    this.lines?.destroy();
    const upload = (label: string, array: Float32Array | Uint32Array, usage: number) => {
      const buffer = this.device.createBuffer({ label, size: Math.max(16, array.byteLength), usage: usage | GPUBufferUsage.COPY_DST });
      this.device.queue.writeBuffer(buffer, 0, array);
      return buffer;
    };
    this.vertices = upload(`landscape surface vertices ${nx}x${ny}`, data, GPUBufferUsage.VERTEX);
    this.triangles = upload(`landscape surface triangles ${nx}x${ny}`, index, GPUBufferUsage.INDEX);
    this.triangleCount = index.length;
    const lineData = Float32Array.from(line);
    this.lines = upload(`landscape surface lines ${nx}x${ny}`, lineData, GPUBufferUsage.VERTEX);
    this.lineVertexCount = lineData.length / FLOATS_PER_VERTEX;
    this.requestFrame();
    return scale;
  }

  /** Replaces the scene labels (axis names, theta's marker). */
  setLabels(labels: SceneLabel[]): void {
    if (!this.overlay) return;
    this.labels = labels.map((l) => {
      const node = document.createElement("span");
      node.className = `scene-label ${l.className ?? ""}`;
      node.textContent = l.text;
      return { node, at: l.at };
    });
    this.overlay.replaceChildren(...this.labels.map((l) => l.node));
    this.requestFrame();
  }

  private placeLabels(mvp: Float32Array): void {
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    for (const { node, at } of this.labels) {
      const p = vec4Transform([at[0], at[1], at[2] * HEIGHT, 1], mvp);
      const visible = p[3] > 0;
      node.style.display = visible ? "" : "none";
      if (!visible) continue;
      node.style.left = `${(((p[0] / p[3]) + 1) / 2) * w}px`;
      node.style.top = `${((1 - p[1] / p[3]) / 2) * h}px`;
    }
  }

  resetCamera(): void {
    this.camera = { ...DEFAULT_CAMERA };
    this.requestFrame();
  }

  /** Draws a frame soon (coalesced: at most one frame in flight, then the latest camera). */
  requestFrame(): void {
    this.dirty = true;
    if (!this.rendering) void this.render().catch(() => {});
  }

  /** Draws frames until the view is up to date; resolves when the canvas shows the latest. */
  render(): Promise<void> {
    this.dirty = true;
    this.rendering ??= (async () => {
      try {
        while (this.dirty && !this.disposed) {
          this.dirty = false;
          await this.drawFrame();
        }
      } finally {
        this.rendering = null;
      }
    })();
    return this.rendering;
  }

  private resize(width: number, height: number): void {
    for (const t of [this.depth, this.msaa, this.resolved]) t?.destroy();
    this.staging?.destroy();
    const size = [width, height];
    this.depth = this.device.createTexture({ label: "landscape surface depth", size, format: "depth24plus", sampleCount: SAMPLES, usage: GPUTextureUsage.RENDER_ATTACHMENT });
    this.msaa = this.device.createTexture({ label: "landscape surface colour (multisampled)", size, format: this.format, sampleCount: SAMPLES, usage: GPUTextureUsage.RENDER_ATTACHMENT });
    this.resolved = this.device.createTexture({ label: "landscape surface colour", size, format: this.format, usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.COPY_SRC });
    const bytesPerRow = Math.ceil((width * 4) / 256) * 256;
    this.staging = this.device.createBuffer({ label: "landscape surface readback", size: bytesPerRow * height, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.canvas.width = width;
    this.canvas.height = height;
    this.image = new ImageData(width, height);
  }

  private async drawFrame(): Promise<void> {
    const canvas = this.canvas;
    const ratio = Math.min(2, globalThis.devicePixelRatio || 1);
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (!this.image || this.image.width !== width || this.image.height !== height) this.resize(width, height);
    const { yaw, pitch, distance } = this.camera;
    const target = [0, 0, HEIGHT * 0.42];
    const eye = [
      target[0] + distance * Math.cos(pitch) * Math.cos(yaw),
      target[1] + distance * Math.cos(pitch) * Math.sin(yaw),
      target[2] + distance * Math.sin(pitch),
    ];
    const projection = mat4.perspective((40 * Math.PI) / 180, width / height, 0.05, 50);
    const view = mat4.lookAt(eye, target, [0, 0, 1]);
    const mvp = mat4.multiply(projection, view);
    const light = vec3.normalize([eye[0] - target[0] + 0.8, eye[1] - target[1] - 0.5, eye[2] - target[2] + 2]);
    const u = new Float32Array(20);
    u.set(mvp, 0);
    u.set([light[0], light[1], light[2], 0], 16);
    this.device.queue.writeBuffer(this.uniforms, 0, u);
    const encoder = this.device.createCommandEncoder({ label: "landscape surface frame" });
    const pass = encoder.beginRenderPass({
      label: "landscape surface",
      colorAttachments: [{ view: this.msaa!.createView(), resolveTarget: this.resolved!.createView(), clearValue: BACKGROUND, loadOp: "clear", storeOp: "discard" }],
      depthStencilAttachment: { view: this.depth!.createView(), depthClearValue: 1, depthLoadOp: "clear", depthStoreOp: "discard" },
    });
    pass.setBindGroup(0, this.bindGroup);
    if (this.vertices && this.triangles && this.lines) {
      pass.setPipeline(this.lit);
      pass.setVertexBuffer(0, this.vertices);
      pass.setIndexBuffer(this.triangles, "uint32");
      pass.drawIndexed(this.triangleCount);
      pass.setPipeline(this.flat);
      pass.setVertexBuffer(0, this.lines);
      pass.draw(this.lineVertexCount);
    }
    pass.end();
    const bytesPerRow = Math.ceil((width * 4) / 256) * 256;
    const staging = this.staging!;
    const image = this.image!;
    encoder.copyTextureToBuffer({ texture: this.resolved! }, { buffer: staging, bytesPerRow }, [width, height]);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    try {
      const src = new Uint8Array(staging.getMappedRange());
      for (let row = 0; row < height; row++) image.data.set(src.subarray(row * bytesPerRow, row * bytesPerRow + width * 4), row * width * 4);
    } finally {
      staging.unmap();
    }
    if (this.disposed) return;
    this.context.putImageData(image, 0, 0);
    this.placeLabels(mvp as Float32Array);
    this.frames++;
  }

  /**
   * The fraction of pixels that are not background and the number of distinct colours (5 bits per
   * channel) of the latest frame, so a test can tell a rendered surface from a blank canvas.
   */
  async pixelStats(): Promise<{ covered: number; colours: number }> {
    await this.render();
    const px = this.context.getImageData(0, 0, this.canvas.width, this.canvas.height).data;
    let covered = 0;
    const colours = new Set<number>();
    for (let i = 0; i < px.length; i += 4) {
      if (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250) covered++;
      colours.add(((px[i] >> 3) << 10) | ((px[i + 1] >> 3) << 5) | (px[i + 2] >> 3));
    }
    return { covered: covered / (px.length / 4), colours: colours.size };
  }

  private attachCamera(): () => void {
    const canvas = this.canvas;
    let dragging: { x: number; y: number; id: number } | null = null;
    const down = (e: PointerEvent) => {
      dragging = { x: e.clientX, y: e.clientY, id: e.pointerId };
      canvas.setPointerCapture(e.pointerId);
    };
    const move = (e: PointerEvent) => {
      if (!dragging || e.pointerId !== dragging.id) return;
      this.camera.yaw -= (e.clientX - dragging.x) * 0.01;
      this.camera.pitch = Math.min(1.5, Math.max(-0.2, this.camera.pitch + (e.clientY - dragging.y) * 0.01));
      dragging.x = e.clientX;
      dragging.y = e.clientY;
      this.requestFrame();
    };
    const up = (e: PointerEvent) => {
      if (dragging && e.pointerId === dragging.id) dragging = null;
    };
    const wheel = (e: WheelEvent) => {
      e.preventDefault();
      this.camera.distance = Math.min(12, Math.max(1.5, this.camera.distance * Math.exp(e.deltaY * 0.001)));
      this.requestFrame();
    };
    const reset = () => this.resetCamera();
    const resize = new ResizeObserver(() => this.requestFrame());
    const untrack = trackAsyncView(() => this.rendering ?? Promise.resolve());
    canvas.addEventListener("pointerdown", down);
    canvas.addEventListener("pointermove", move);
    canvas.addEventListener("pointerup", up);
    canvas.addEventListener("pointercancel", up);
    canvas.addEventListener("wheel", wheel, { passive: false });
    canvas.addEventListener("dblclick", reset);
    resize.observe(canvas);
    return () => {
      untrack();
      canvas.removeEventListener("pointerdown", down);
      canvas.removeEventListener("pointermove", move);
      canvas.removeEventListener("pointerup", up);
      canvas.removeEventListener("pointercancel", up);
      canvas.removeEventListener("wheel", wheel);
      canvas.removeEventListener("dblclick", reset);
      resize.disconnect();
    };
  }

  dispose(): void {
    this.disposed = true;
    this.detach();
    for (const b of [this.vertices, this.triangles, this.lines, this.uniforms, this.staging]) b?.destroy();
    for (const t of [this.depth, this.msaa, this.resolved]) t?.destroy();
  }
}
