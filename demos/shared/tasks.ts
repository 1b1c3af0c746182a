/// <reference lib="dom" />
/**
 * Long work that keeps the page responsive: tasks with a progress bar and a Cancel button
 * (createTask, runTask), a runner that keeps one computation in step with sliders (liveRunner),
 * chunked work that yields to the browser (yieldToBrowser), and input coalesced per frame.
 */
import { el } from "./dom.ts";
import { isAbortError, showError } from "./errors.ts";
import { markBusy, markIdle } from "./record.ts";

export interface Task {
  /** Aborted when the user presses Cancel (or cancel() is called). */
  readonly signal: AbortSignal;
  /**
   * Updates the bar (fraction in [0, 1]) and message. Throws the AbortError when the task was
   * cancelled, so passing it as a library's onProgress callback stops the library's loop at its
   * next report (the library disposes what it made in its finally blocks).
   */
  progress(fraction: number, message?: string): void;
  /** Throws the AbortError when cancelled. */
  throwIfCancelled(): void;
  /** Cancels (as the button does). */
  cancel(): void;
  /** Marks the task finished: the bar fills, the button goes; the row is removed after a moment unless `keep`. */
  done(message?: string, keep?: boolean): void;
  /** Removes the row now. */
  remove(): void;
  /** The row: label, bar, message, Cancel button. */
  readonly element: HTMLElement;
}

/**
 * A task row appended to `container`: a label, a progress bar, a message and a Cancel button that
 * aborts `signal`. Cancelled tasks show "cancelled" and stay until removed.
 */
export function createTask(container: HTMLElement, label: string): Task {
  const controller = new AbortController();
  const bar = el("progress", { max: "1", value: "0" }) as HTMLProgressElement;
  const message = el("span", { class: "task-message" }, "starting…");
  const button = el("button", { type: "button", class: "task-cancel" }, "Cancel") as HTMLButtonElement;
  const element = el("div", { class: "task", role: "status", "aria-live": "polite" }, [el("span", { class: "task-label" }, label), bar, message, button]);
  container.append(element);
  const abortError = () => new DOMException(`${label}: cancelled`, "AbortError");
  const cancel = () => {
    if (controller.signal.aborted) return;
    controller.abort(abortError());
    message.textContent = "cancelled";
    button.disabled = true;
    element.classList.add("task-cancelled");
  };
  button.addEventListener("click", cancel);
  const throwIfCancelled = () => {
    if (controller.signal.aborted) throw controller.signal.reason ?? abortError();
  };
  return {
    signal: controller.signal,
    element,
    cancel,
    throwIfCancelled,
    progress(fraction: number, text?: string) {
      throwIfCancelled();
      if (Number.isFinite(fraction)) bar.value = Math.min(1, Math.max(0, fraction));
      if (text !== undefined) message.textContent = text;
    },
    done(text?: string, keep = false) {
      bar.value = 1;
      message.textContent = text ?? "done";
      button.remove();
      element.classList.add("task-done");
      if (!keep) setTimeout(() => element.remove(), 1500);
    },
    remove() {
      element.remove();
    },
  };
}

/**
 * Runs `work` as a task in `container`: returns its result, or null when it was cancelled; any
 * other error is shown in the page (showError) and rethrown.
 */
export async function runTask<T>(container: HTMLElement, label: string, work: (task: Task) => Promise<T>, options: { keep?: boolean } = {}): Promise<T | null> {
  const task = createTask(container, label);
  try {
    const result = await work(task);
    task.done(undefined, options.keep);
    return result;
  } catch (e) {
    if (isAbortError(e)) return null;
    task.remove();
    throw e;
  }
}

export interface LiveRunner {
  /**
   * Asks for a (re)computation with the page's current inputs: a run in progress is cancelled
   * (superseded), and a new one starts once the inputs have been still for `debounceMs`.
   */
  request(): void;
  /** Cancels a pending or running run without starting another; resolves once nothing runs. */
  stop(): Promise<void>;
  /** True while a run is pending or in progress. */
  readonly active: boolean;
}

/**
 * Keeps one computation in step with inputs that change while it runs (sliders): each request()
 * supersedes the run in progress; only the latest inputs are computed. `work(task, isCurrent)`
 * runs as a task in `container`; it should apply its results only while isCurrent() is true.
 * A run the user cancels (the task's button) is not restarted: `onCancel` is called and the page
 * is marked idle. Errors other than cancellation are shown in the page (showError).
 */
export function liveRunner(
  container: HTMLElement,
  label: string,
  work: (task: Task, isCurrent: () => boolean) => Promise<void>,
  options: { debounceMs?: number; onCancel?: () => void } = {},
): LiveRunner {
  const debounceMs = options.debounceMs ?? 150;
  let generation = 0;
  let done = 0;
  let lastRequest = 0;
  let looping = false;
  let current: Task | null = null;
  let finished: Promise<void> = Promise.resolve();
  const loop = async () => {
    looping = true;
    try {
      while (done < generation) {
        for (let wait = lastRequest + debounceMs - performance.now(); wait > 0; wait = lastRequest + debounceMs - performance.now()) {
          await new Promise((r) => setTimeout(r, wait));
        }
        const gen = generation;
        const task = createTask(container, label);
        current = task;
        try {
          await work(task, () => gen === generation);
          task.done();
          if (gen === generation) done = gen;
        } catch (e) {
          task.remove();
          if (!isAbortError(e)) throw e;
          if (gen === generation) {
            // Cancelled by the user, not superseded: stay idle until the next request.
            done = gen;
            options.onCancel?.();
            markIdle();
          }
        } finally {
          current = null;
        }
      }
    } finally {
      looping = false;
    }
  };
  return {
    request() {
      generation++;
      lastRequest = performance.now();
      markBusy();
      current?.cancel();
      if (!looping) finished = loop().catch((e) => showError(e));
    },
    async stop() {
      generation++;
      done = generation;
      current?.cancel();
      await finished;
    },
    get active() {
      return looping;
    },
  };
}

/**
 * Lets the browser paint and handle input between chunks of work: a macrotask (MessageChannel,
 * not clamped like setTimeout), or scheduler.yield() where the browser has it.
 */
export function yieldToBrowser(): Promise<void> {
  const scheduler = (globalThis as { scheduler?: { yield?: () => Promise<void> } }).scheduler;
  if (scheduler?.yield) return scheduler.yield();
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** Calls `fn` at most once per animation frame with the latest arguments (for slider input). */
export function coalesce<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  let pending: A | null = null;
  return (...args: A) => {
    const first = pending === null;
    pending = args;
    if (first) {
      requestAnimationFrame(() => {
        const a = pending!;
        pending = null;
        fn(...a);
      });
    }
  };
}
