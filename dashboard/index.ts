/**
 * chard/dashboard: a web dashboard for Chard engines, as a request handler for `node:http` that
 * also mounts in Express and Connect. The page and its assets ship in the package (plain files, no
 * CDN); `import { Engine } from "chard"` loads none of it. See the README's Dashboard section.
 */
export { createDashboard, type DashboardHandler, type DashboardOptions } from "./server.js";
export type { ThroughputSample } from "./sampler.js";
