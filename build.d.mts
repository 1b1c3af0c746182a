export function generateShaderModule(): string;
export function bundleBrowser(): Promise<void>;
