import SharedKit
import SharedKitHTTP

#if canImport(Glibc)
import Glibc
#endif

// Run by cron (every minute under `make run`): reconciles provider jobs, retries output copies, times
// out stuck jobs and deletes expired codes. Safe to run twice at once: the second one skips.
exit(Maintenance.run(Services.start(function: "maintenance-cron", media: MediaStorages.configured).standaloneContext()))
