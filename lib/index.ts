/**
 * Chard: background jobs for TypeScript, on Redis or in memory.
 * Every name of the public API contract is exported here.
 */
export {
  Engine,
  DEFAULT_NAMESPACE,
  type KeyHolder,
  type EngineOptions,
  type StartWorkersOptions,
  type StopWorkersOptions,
} from "./engine.js";
export {
  Task,
  Tasks,
  Batch,
  DEFAULT_QUEUE,
  DEFAULT_RESULT_TTL_MS,
  type TaskOptions,
  type PeriodicityOptions,
  type TaskFunction,
  type TaskRef,
  type BatchEntry,
  TaskWithOptions,
  withOptions,
} from "./tasks.js";
export { Job, JobStatus, type JobFields, type JobExtras, type ResultOptions } from "./jobs.js";
export { OPTION_LIMITS, DUPLICATE_POLICIES, type JobOptions, type DuplicatePolicy } from "./options.js";
export { currentJob, type JobContext } from "./context.js";
export { Transaction } from "./transaction.js";
export type { Middleware, EnqueueMiddleware, ExecuteMiddleware, EnqueueContext, ExecuteContext } from "./middleware.js";
export { RELIABLE_TASK_PREFIX, reliableTaskName, type ReliableOptions, type ReliableReceiver } from "./reliable.js";
export {
  ChardError,
  UnknownTaskError,
  InvalidOptionError,
  SerializationError,
  BrokerInUseError,
  StateError,
  RetryError,
  AbortJobError,
  UnknownJobError,
  JobTimeoutError,
  JobCancelledError,
  JobRevokedError,
  JobExpiredError,
  JobFailedError,
  ResultTimeoutError,
  DuplicateNameError,
  CorruptDataError,
  WorkerDiedError,
  WorkerStoppedError,
  CancelExecution,
  RateLimitError,
  InvalidCronError,
  UnknownTimeZoneError,
  UnknownScheduleError,
} from "./errors.js";
export {
  DEFAULT_MISFIRE_GRACE_MS,
  MAX_SCHEDULE_NAME,
  type ScheduleOptions,
  type ScheduleInfo,
  type ScheduleSource,
  type OverlapPolicy,
  type MisfirePolicy,
  type LastRunStatus,
} from "./schedules.js";
export type { ScheduleUpsert, ScheduleListOptions } from "./schedule-ops.js";
export {
  RateLimiter,
  RATE_LIMIT_MAX,
  type RateLimitOptions,
  type RateLimitInput,
  type RateLimitSpec,
} from "./rate-limits.js";
export {
  signals,
  SafeNamedSignal,
  type Receiver,
  type JobPayload,
  type JobDeduplicatedPayload,
  type JobErrorPayload,
  type JobResultPayload,
  type JobOutputPayload,
  type JobIterationPayload,
  type QueuePayload,
  type TaskPayload,
  type SchedulePayload,
  type ScheduleFiredPayload,
  type ScheduleSkippedPayload,
  type JobRateLimitedPayload,
  type SignalFailurePayload,
  type WorkerPayload,
} from "./signals.js";
export { setLogger, getLogger, type Logger } from "./logger.js";
export { exponentialBackoff } from "./backoff.js";
export { Cron } from "./cron.js";
export {
  JOB_STATES,
  DEFAULT_FAILED_RETENTION,
  DEFAULT_SUCCEEDED_RETENTION,
  MAX_PAGE,
  MAX_ACTION_BATCH,
  type JobStateName,
  type StateCounts,
  type CountRow,
  type RetentionOptions,
  type Retention,
  type StoreBounds,
  type ErrorRecord,
  type AttemptRecord,
  type StoredJob,
  type ListQuery,
  type ListPage,
  type ActionOutcome,
  type DeleteOutcome,
  type PurgeReport,
  type WorkerInfo,
  type LiveWorker,
} from "./operations.js";
export type { JobCounts, JobInfo, AttemptInfo, JobQuery, JobPage, WorkerSummary, BulkReport } from "./job-info.js";
export type { JobFilter } from "./actions.js";
export { systemClock, type Clock } from "./clock.js";
export type { DurationInput } from "./durations.js";
export type { PeriodicTaskInfo, PeriodChange, PeriodicRegistration } from "./periodic.js";
export type {
  AckReport,
  Broker,
  Duplicate,
  DuplicateAction,
  KeyLookup,
  KeyState,
  FetchResult,
  FinishedJob,
  JobState,
  Outcome,
  Recovery,
  ResultLookup,
  ScheduleClaim,
  ScheduleEntry,
  ScheduleRead,
  ScheduleUpsertReport,
  ScheduleWrite,
  ScheduleWriteResult,
  FireReport,
  SlotRelease,
  EnqueueOutcome,
} from "./broker.js";
export { STORED_BEFORE } from "./broker.js";
export { MemoryBroker, MemoryStore, type MemoryBrokerOptions } from "../brokers/memory.js";
export {
  RedisBroker,
  RedisConnectionError,
  RedisReplyError,
  DEFAULT_REDIS_URL,
  type RedisBrokerOptions,
  type RedisClient,
} from "../brokers/redis/index.js";
export type { BrokerOptions } from "../brokers/base.js";
