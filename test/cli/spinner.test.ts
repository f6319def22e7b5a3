import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startSpinner } from "../../cli/spinner.js";
import { captureStream } from "./streams.js";

describe("startSpinner", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("redraws one line with the elapsed time on a terminal, and clears it on stop", () => {
    // Prepare
    const stderr = captureStream({ isTTY: true });
    let now = 1_000;

    // Act
    const spinner = startSpinner(stderr.stream, "knocked, waiting for host:22", {
      intervalMs: 100,
      now: () => now,
    });
    now += 1_200;
    vi.advanceTimersByTime(100);
    spinner.stop();
    spinner.stop();

    // Assess
    expect(stderr.text()).toBe(
      "\r\x1b[Kknocked, waiting for host:22 ⠋ 0.0s" +
        "\r\x1b[Kknocked, waiting for host:22 ⠙ 1.2s" +
        "\r\x1b[K",
    );
  });

  it("writes nothing at all when the stream is not a terminal", () => {
    const stderr = captureStream();

    const spinner = startSpinner(stderr.stream, "knocked, waiting for host:22");
    vi.advanceTimersByTime(5_000);
    spinner.stop();

    expect(stderr.text()).toBe("");
  });

  it("stops redrawing after stop()", () => {
    const stderr = captureStream({ isTTY: true });

    const spinner = startSpinner(stderr.stream, "waiting", { intervalMs: 50 });
    spinner.stop();
    const written = stderr.text();
    vi.advanceTimersByTime(1_000);

    expect(stderr.text()).toBe(written);
  });
});
