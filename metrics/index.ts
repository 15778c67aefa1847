/**
 * chard/metrics: Prometheus metrics for Chard engines, on prom-client (an optional peer
 * dependency: install it to use this module); `import { Engine } from "chard"` loads none of it.
 * See the README's Metrics section.
 */
export {
  DEFAULT_DURATION_BUCKETS,
  DEFAULT_WAIT_BUCKETS,
  createMetrics,
  type ChardMetrics,
  type MetricsOptions,
} from "./prometheus.js";
