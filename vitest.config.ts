import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Interop and e2e tests share network namespaces and firewall state: run files one at a time.
    fileParallelism: false,
    // The default output, then one line summing the tests skipped for a missing peer.
    reporters: ["default", "./test/setup/skip-summary.ts"],
  },
});
