export function generateShaderModule(): string;
export function bundleBrowser(): Promise<void>;
export function bundleLibrary(): Promise<void>;
export function generateWasmModule(): Promise<string>;
