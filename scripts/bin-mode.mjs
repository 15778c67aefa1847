// Makes the built `chard` binary executable (tsc writes it 0644), so dist/cli/main.js runs as is;
// npm's bin links set the mode themselves on install.
import { chmodSync } from "node:fs";

chmodSync(new URL("../dist/cli/main.js", import.meta.url), 0o755);
