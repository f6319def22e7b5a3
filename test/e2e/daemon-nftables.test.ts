// spaknockd end to end with its nftables backend, both capture modes: see daemon-scenarios.ts.
import { describeSpaknockdE2e } from "./daemon-scenarios.js";

describeSpaknockdE2e("nftables");
