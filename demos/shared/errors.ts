/// <reference lib="dom" />
/**
 * Errors shown in the page, never a blank page: an error box (showError) that also lands in
 * `window.__demo.error`, handlers that route uncaught errors there, and isAbortError, which tells a
 * cancelled task (not an error) from a failure.
 */
import { el } from "./dom.ts";
import { errorMessage, publishError } from "./record.ts";

/** True for the error a cancelled task throws (see createTask). */
export function isAbortError(error: unknown): boolean {
  return (error instanceof DOMException || error instanceof Error) && error.name === "AbortError";
}

let errorHost: HTMLElement | null = null;

/**
 * Shows an error box at the top of `root` (or of the page) and publishes the error. Cancellation
 * (AbortError) is not an error and is ignored.
 */
export function showError(error: unknown, root?: HTMLElement): void {
  if (isAbortError(error)) return;
  const message = errorMessage(error);
  const host = root ?? errorHost ?? document.querySelector<HTMLElement>("main") ?? document.body;
  const box = el("div", { class: "demo-error", role: "alert" }, [el("strong", {}, "Something went wrong. "), el("span", {}, message)]);
  host.prepend(box);
  publishError(error);
}

/**
 * Routes uncaught errors and unhandled rejections into the page (showError) and into
 * window.__demo.error. Called once by requireBackend / requireWebGPU; `root` is where the boxes go.
 */
export function installErrorHandlers(root?: HTMLElement): void {
  if (root) errorHost = root;
  const w = window as Window & { __demoHandlers?: boolean };
  if (w.__demoHandlers) return;
  w.__demoHandlers = true;
  window.addEventListener("error", (event) => {
    // Browsers report a ResizeObserver that triggers another layout in the same frame as an error
    // event; it is benign (the notification is delivered next frame), so it must not alarm anyone.
    if (!event.error && /ResizeObserver loop/.test(String(event.message))) return;
    showError(event.error ?? event.message);
  });
  window.addEventListener("unhandledrejection", (event) => showError(event.reason));
}
