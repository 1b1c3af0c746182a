// elementwise.wgsl: the thread index of the one-element-per-thread kernels (activate, axpy,
// multiply, scale, sgd_momentum, adam, landscape_perturb, landscape_first_layer), spliced in by
// build.mjs where a kernel says `// #include "elementwise.wgsl"`.
// A dispatch has at most maxComputeWorkgroupsPerDimension (65535 by default) groups per dimension,
// i.e. 65535 * 256 elements in x alone, so the host (linearGroups in src/gpu/dispatch.ts, run in
// src/gpu/vectors.ts) spreads ceil(n / 256) groups over x and y: groups.x groups per row, rows y.
// Element i then belongs to
//   i = gid.x + gid.y * groups.x * 256      (gid.x = group.x * 256 + local.x spans one row),
// a bijection onto 0 .. groups.x * groups.y * 256 - 1; the last row is partial, so every kernel
// returns for i >= its element count. gid.z is left to the kernel (the point q in landscape_*).
// The workgroup size is this constant in both the kernels' @workgroup_size and the formula, so
// they cannot disagree; the host's 256 must match it.

const ELEMENTWISE_GROUP: u32 = 256u;

fn elementIndex(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
  return gid.x + gid.y * groups.x * ELEMENTWISE_GROUP;
}
