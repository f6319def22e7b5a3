// spaknockd end to end with its iptables backend, both capture modes: see daemon-scenarios.ts.
import { describeSpaknockdE2e } from "./daemon-scenarios.js";

describeSpaknockdE2e("iptables");
