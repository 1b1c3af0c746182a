/** A worker of exit_race.ts: requests an adapter (on this thread), says so, closes when told. */
if (!(await navigator.gpu.requestAdapter())) throw new Error("no WebGPU adapter in a worker");
self.onmessage = () => self.close();
(self as unknown as Worker).postMessage("ready");
