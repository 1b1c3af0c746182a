// reduce.wgsl: deterministic two-stage sum of X[i] * Y[i] (MODE 0) or X[i] (MODE 1).
// Stage 1 (this file): G workgroups of 256 threads; thread t of group g sums, with Kahan compensation,
// the elements i = g*256 + t + j*G*256 in order; then a fixed tree in workgroup memory gives one
// partial per group. Stage 2 (reduce_finish.wgsl): one workgroup sums the G partials the same way. G depends only
// on n, so the same inputs always give the same bits.
// Bindings: 0 X (read), 1 Y (read), 2 partial (read_write), 3 params (uniform).
// CPU twin: HostVectorSpace.dot (src/reference/engine.ts).

struct Params {
  n: u32, offX: u32, offY: u32, mode: u32,
  groups: u32, offOut: u32, pad0: u32, pad1: u32,
}

var<workgroup> scratch: array<f32, 256>;

fn treeSum(t: u32) {
  for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
    workgroupBarrier();
    if (t < stride) {
      scratch[t] += scratch[t + stride];
    }
  }
  workgroupBarrier();
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.x;
  var s = 0.0;
  var comp = 0.0;
  var i = wid.x * 256u + t;
  let step = p.groups * 256u;
  for (; i < p.n; i += step) {
    var term = X[p.offX + i];
    if (p.mode == 0u) {
      term *= Y[p.offY + i];
    }
    let yk = term - comp;
    let tk = s + yk;
    comp = (tk - s) - yk;
    s = tk;
  }
  scratch[t] = s;
  treeSum(t);
  if (t == 0u) {
    partial[wid.x] = scratch[0];
  }
}
