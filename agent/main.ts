#!/usr/bin/env node
/** `spaknockd`: the host daemon. Not built yet: it says so instead of pretending. */
process.stderr.write(
  "spaknockd: the host daemon is not built yet (see README.md, 'What works today').\n",
);
process.exitCode = 1;
