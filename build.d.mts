export function generateShaderModule(): string;
export function bundleBrowser(): Promise<void>;
export function bundleLibrary(): Promise<void>;
